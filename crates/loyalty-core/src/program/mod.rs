//! The program: every rule of a loyalty program, typed, read from TOML and validated on load.
//!
//! Fields are public so the engine and reports can read them; build a `Program` with
//! [`Program::from_toml_str`], because `decide` relies on the limits being checked and the
//! program's version (what decisions record) is derived from its text ([`version`]).

mod validate;
pub mod version;

use chrono::NaiveDate;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::error::ProgramError;
use crate::ids::{ActivityKind, CampaignId, CategoryId, RewardId, Sku, StoreId};
use crate::money::{Currency, RoundingMode, RoundingScope};
use crate::points::Points;
use version::ProgramSource;

/// A complete loyalty program.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub program: ProgramInfo,
    pub earning: Earning,
    #[serde(default)]
    pub pending: Pending,
    pub expiry: ExpiryPolicy,
    pub tiers: Tiers,
    #[serde(default)]
    pub rewards: Vec<Reward>,
    #[serde(default)]
    pub bonuses: Bonuses,
    #[serde(default)]
    pub referral: Option<Referral>,
    pub clawback: Clawback,
    pub valuation: Valuation,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub analytics: Analytics,
    #[serde(default)]
    pub win_back: Option<WinBack>,
    #[serde(default)]
    pub notices: Notices,
    /// The normalised text this program was parsed from and its version (see [`version`]).
    /// Set by [`Program::from_toml_str`]; a program changed in code after parsing keeps the
    /// source it was parsed from.
    #[serde(skip)]
    source: ProgramSource,
}

/// `[program]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramInfo {
    pub name: String,
    pub currency: Currency,
    /// Decimals of the currency's minor unit (2 for EUR, 0 for JPY): amounts with more are refused.
    #[serde(default = "default_minor_units")]
    pub minor_units: u32,
    /// IANA name (`Europe/Paris`): every calendar computation happens in this zone.
    #[serde(deserialize_with = "deserialize_tz")]
    pub timezone: Tz,
    #[serde(default)]
    pub rounding: RoundingMode,
    /// Whether points are rounded per purchase (the default) or per line.
    #[serde(default)]
    pub rounding_scope: RoundingScope,
    /// A name for this version of the rules, for people (`2026.11.2`). Optional, and not what
    /// decisions record: they record [`Program::version`], the hash of the program's text. Read
    /// from `label`, or from `rules_version` as program files written before versions were
    /// hashes name it.
    #[serde(default, alias = "rules_version")]
    pub label: Option<String>,
}

fn default_minor_units() -> u32 {
    2
}

fn deserialize_tz<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse::<Tz>()
        .map_err(|_| serde::de::Error::custom(format!("unknown IANA timezone {name:?}")))
}

/// Decimals in a program are quoted strings: a TOML float would pass through binary floating point first.
fn decimal_str<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim()
        .parse::<Decimal>()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a decimal number")))
}

fn option_decimal_str<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    decimal_str(deserializer).map(Some)
}

/// `[earning]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earning {
    /// Points per currency unit of eligible amount, before multipliers.
    #[serde(deserialize_with = "decimal_str")]
    pub points_per_unit: Decimal,
    #[serde(default)]
    pub excluded_categories: Vec<CategoryId>,
    #[serde(default)]
    pub multipliers: Vec<ProductMultiplier>,
    #[serde(default)]
    pub campaigns: Vec<Campaign>,
    /// Most points one purchase may earn, all rules included.
    pub max_points_per_transaction: Option<Points>,
}

/// A permanent multiplier on a category or a sku (a sku rule wins over its category's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductMultiplier {
    pub category: Option<CategoryId>,
    pub sku: Option<Sku>,
    #[serde(deserialize_with = "decimal_str")]
    pub multiplier: Decimal,
}

/// A time-limited campaign. Dates are local dates in the program's timezone, both inclusive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// Empty: every store.
    #[serde(default)]
    pub stores: Vec<StoreId>,
    /// Empty (with `skus` empty too): every eligible line.
    #[serde(default)]
    pub categories: Vec<CategoryId>,
    #[serde(default)]
    pub skus: Vec<Sku>,
    /// Multiplies the points of matching lines (`2` doubles them).
    #[serde(default, deserialize_with = "option_decimal_str")]
    pub multiplier: Option<Decimal>,
    /// Fixed points for a matching purchase.
    pub bonus_points: Option<Points>,
    /// Minimum eligible amount of the matching lines.
    #[serde(default, deserialize_with = "option_decimal_str")]
    pub min_spend: Option<Decimal>,
    /// How many purchases of one member the campaign rewards.
    pub per_member_limit: Option<u32>,
}

/// `[pending]`: earned points wait this many days (the return window) before they can be spent.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    #[serde(default)]
    pub days: u32,
}

/// `[expiry]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExpiryPolicy {
    /// Each lot expires `months` after it becomes spendable, optionally at the end of that month.
    LotMonths {
        months: u32,
        #[serde(default)]
        end_of_month: bool,
    },
    /// All points expire after `months` without activity (an earning or a redemption).
    Inactivity {
        months: u32,
    },
    Never,
}

/// `[notices]`: what the scheduler tells members ahead of time. Each notice is off unless set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notices {
    /// Days (calendar days in the program's timezone) before a dated lot expires that the
    /// scheduler records its `ExpiryNotified` notice (`points.expiring`), once per lot.
    /// Lots expiring with the member's inactivity get none: their deadline moves with every
    /// activity, so a notice could announce an expiry that never comes.
    #[serde(default)]
    pub points_expiring_days: Option<u32>,
}

/// `[tiers]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiers {
    pub metric: QualifyingMetric,
    pub window: QualifyingWindow,
    pub review: ReviewSchedule,
    #[serde(default = "one")]
    pub max_levels_down_per_review: u32,
    /// Ordered from the entry tier (threshold 0) upwards.
    pub levels: Vec<TierLevel>,
}

fn one() -> u32 {
    1
}

/// What qualifies a member for a tier. Never the balance: spending must not demote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualifyingMetric {
    QualifyingSpend,
    PointsEarned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QualifyingWindow {
    Rolling { months: u32 },
    CalendarYear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReviewSchedule {
    /// Each anniversary of the enrollment date (local date).
    Anniversary,
    /// Every year on this local date.
    FixedDate { month: u32, day: u32 },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLevel {
    pub name: String,
    /// Money for `qualifying_spend`, points for `points_earned`.
    #[serde(deserialize_with = "decimal_str")]
    pub threshold: Decimal,
    #[serde(deserialize_with = "decimal_str")]
    pub multiplier: Decimal,
}

/// A reward of the catalog. Dates are local, inclusive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reward {
    pub id: RewardId,
    pub name: String,
    pub cost: Points,
    pub min_tier: Option<String>,
    pub per_member_limit: Option<u32>,
    pub available_from: Option<NaiveDate>,
    pub available_until: Option<NaiveDate>,
}

/// `[bonuses]`
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonuses {
    #[serde(default)]
    pub welcome_points: Points,
    #[serde(default)]
    pub activities: Vec<ActivityRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityRule {
    pub kind: ActivityKind,
    pub points: Points,
    /// How many times per period (default once).
    #[serde(default = "one")]
    pub limit: u32,
    pub period: Period,
}

/// A period for limits, in the program's timezone. Weeks are ISO weeks (Monday first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Once,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Once => "once",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }
}

/// `[referral]`: due when a purchase of the newcomer first reaches `min_first_purchase` of
/// eligible amount (smaller purchases before it do not use the chance up); revoked when refunds
/// take that purchase back below it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    pub referrer_points: Points,
    pub newcomer_points: Points,
    #[serde(deserialize_with = "decimal_str")]
    pub min_first_purchase: Decimal,
}

/// `[clawback]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clawback {
    pub policy: ClawbackPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClawbackPolicy {
    /// A clawback larger than the balance leaves a debt, repaid first by later earnings.
    Allow,
    /// Take what is there and record the shortfall.
    Clamp,
}

/// `[valuation]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Valuation {
    /// Money value of one point, for the liability report.
    #[serde(deserialize_with = "decimal_str")]
    pub point_value: Decimal,
}

/// `[limits]`: bounds on every input, so that arithmetic cannot overflow.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_lines_per_purchase: u32,
    #[serde(deserialize_with = "decimal_str")]
    pub max_amount_per_line: Decimal,
    #[serde(deserialize_with = "decimal_str")]
    pub max_quantity_per_line: Decimal,
    pub max_points_per_adjustment: Points,
    pub max_points_per_redemption: Points,
    pub max_text_length: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_lines_per_purchase: 200,
            max_amount_per_line: Decimal::new(100_000, 0),
            max_quantity_per_line: Decimal::new(10_000, 0),
            max_points_per_adjustment: Points::new(1_000_000),
            max_points_per_redemption: Points::new(10_000_000),
            max_text_length: 500,
        }
    }
}

/// The time unit of the retention models: purchases are counted per day, and a model may
/// measure recency and age in days or in weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelTimeUnit {
    Days,
    Weeks,
}

/// `[analytics]`: how the retention analytics read this program's history.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analytics {
    /// A member is a customer while they bought in the last `active_days` days.
    pub active_days: u32,
    /// The models' time unit.
    pub time_unit: ModelTimeUnit,
    /// The horizon of expected purchases, lifetime value and value at risk, in `time_unit`s.
    pub horizon: u32,
    /// Yearly discount rate of the lifetime value (`0.10` is 10% a year).
    #[serde(deserialize_with = "decimal_str")]
    pub discount_rate: Decimal,
    /// Members whose probability of being alive is below this are at risk.
    #[serde(deserialize_with = "decimal_str")]
    pub at_risk_below: Decimal,
}

/// `[win_back]`: a bonus for members drifting away, applied by the scheduler. A member
/// qualifies when the purchase model says they are probably no longer buying (probability of
/// being alive below `below_p_alive`) or they have not bought for `inactive_days`; either
/// trigger may be left out, not both. At most once every `once_every_days`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinBack {
    #[serde(default, deserialize_with = "option_decimal_str")]
    pub below_p_alive: Option<Decimal>,
    #[serde(default)]
    pub inactive_days: Option<u32>,
    /// Only members who bought at least this many days (new members are not drifting away).
    #[serde(default = "default_win_back_min_purchase_days")]
    pub min_purchase_days: u32,
    pub points: Points,
    pub once_every_days: u32,
}

fn default_win_back_min_purchase_days() -> u32 {
    2
}

impl WinBack {
    /// Whether a member measured so qualifies: bought on enough days, and probably gone by
    /// the model (`p_alive` below the threshold) or silent for long enough. The core decides
    /// with it; the scheduler selects with it, so it sends only members the rule takes.
    pub fn qualifies(
        &self,
        p_alive: Option<Decimal>,
        inactive_days: u32,
        purchase_days: u32,
    ) -> bool {
        let by_model = self
            .below_p_alive
            .zip(p_alive)
            .is_some_and(|(below, p)| p < below);
        let by_inactivity = self.inactive_days.is_some_and(|d| inactive_days >= d);
        purchase_days >= self.min_purchase_days && (by_model || by_inactivity)
    }
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics {
            active_days: 365,
            time_unit: ModelTimeUnit::Weeks,
            horizon: 52,
            discount_rate: Decimal::new(10, 2),
            at_risk_below: Decimal::new(5, 1),
        }
    }
}

impl Program {
    /// Parses and validates a program, and derives its version from its normalised text.
    /// Errors name the field and the reason.
    pub fn from_toml_str(text: &str) -> Result<Program, ProgramError> {
        let mut program: Program =
            toml::from_str(text).map_err(|e| ProgramError::Parse(e.to_string()))?;
        program.validate()?;
        program.source = ProgramSource::from_toml_str(text)?;
        Ok(program)
    }

    /// Checks every rule; `from_toml_str` calls it.
    pub fn validate(&self) -> Result<(), ProgramError> {
        validate::validate(self)
    }

    pub fn name(&self) -> &str {
        &self.program.name
    }

    pub fn currency(&self) -> &Currency {
        &self.program.currency
    }

    pub fn timezone(&self) -> Tz {
        self.program.timezone
    }

    /// The version of these rules: the lowercase hex SHA-256 of the program's normalised text
    /// (64 characters; see [`version`]). Comments, spacing and key order do not change it.
    pub fn version(&self) -> &str {
        self.source.version()
    }

    /// The program's normalised text, which [`Program::version`] is the hash of.
    pub fn normalized_text(&self) -> &str {
        self.source.text()
    }

    /// What every decision records as its `rules_version`: [`Program::version`].
    pub fn rules_version(&self) -> &str {
        self.version()
    }

    /// The optional label of `[program] label` (or `rules_version` in older files).
    pub fn label(&self) -> Option<&str> {
        self.program.label.as_deref()
    }

    pub fn rounding(&self) -> RoundingMode {
        self.program.rounding
    }

    pub fn rounding_scope(&self) -> RoundingScope {
        self.program.rounding_scope
    }

    pub fn point_value(&self) -> Decimal {
        self.valuation.point_value
    }

    /// The money value of `points` (for the liability report); `None` only on overflow.
    pub fn points_value(&self, points: Points) -> Option<Decimal> {
        Decimal::from(points.value()).checked_mul(self.valuation.point_value)
    }

    /// The rewards catalog.
    pub fn rewards(&self) -> &[Reward] {
        &self.rewards
    }

    pub fn reward(&self, id: &RewardId) -> Option<&Reward> {
        self.rewards.iter().find(|r| &r.id == id)
    }

    /// The tier levels, entry tier first.
    pub fn tiers(&self) -> &[TierLevel] {
        &self.tiers.levels
    }

    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers.levels.iter().position(|t| t.name == name)
    }

    pub fn activity(&self, kind: &ActivityKind) -> Option<&ActivityRule> {
        self.bonuses.activities.iter().find(|a| &a.kind == kind)
    }

    pub fn clawback_policy(&self) -> ClawbackPolicy {
        self.clawback.policy
    }

    /// Under `[notices] points_expiring_days`: the latest expiry a notice sent at `now` covers,
    /// the same local time that many calendar days later (so a lot expiring at local midnight
    /// is announced at local midnight, whatever DST does meanwhile). `None` when the program
    /// sends no such notice. The core decides with it and the scheduler selects with it.
    pub fn points_expiring_until(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let days = self.notices.points_expiring_days?;
        crate::calendar::add_days(now, days, self.timezone())
    }
}
