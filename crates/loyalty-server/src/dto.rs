//! The JSON bodies of the API. Requests deny unknown fields (a misspelt field is an error, not
//! a silently ignored option); money travels as a string ("4.50"), points as integers, times as
//! RFC 3339. Conversion to the core's commands validates ids and the server's limits.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

#[allow(unused_imports)]
use crate::schema::{CurrencyCode, Id, Quantity};

use loyalty_store::Position;

use crate::error::ApiError;

/// The pattern of a money string, as the OpenAPI document states it and as requests are
/// checked: digits, optionally a point and more digits, optionally a leading minus (refused
/// later as not positive, with its own problem). `"4."`, `".5"`, `"1e3"` and `" 4"` do not match.
pub const MONEY_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// The longest money string accepted (a decimal has at most 28 significant digits).
pub const MONEY_MAX_LENGTH: usize = 32;

fn money_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(MONEY_PATTERN).expect("MONEY_PATTERN is a valid regular expression")
    });
    &PATTERN
}

/// An amount of money: a JSON string of a plain decimal number ("4.50") matching
/// [`MONEY_PATTERN`]. JSON numbers are refused, so a float can never sneak in and round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money(pub Decimal);

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount as a string of a decimal number, such as \"4.50\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                if v.len() > MONEY_MAX_LENGTH || !money_pattern().is_match(v) {
                    let shown: String = v.chars().take(MONEY_MAX_LENGTH + 1).collect();
                    return Err(E::custom(format!(
                        "{shown:?} is not a plain decimal amount (digits, optionally a point \
                         and more digits, such as \"4.50\")"
                    )));
                }
                // A decimal holds 28 decimals: trailing zeros beyond them change nothing and
                // are dropped ("1.000...0" is 1), anything else beyond them is refused.
                let trimmed = match v.split_once('.') {
                    Some((whole, fraction)) if fraction.len() > 28 => {
                        let fraction = fraction.trim_end_matches('0');
                        if fraction.is_empty() {
                            whole.to_owned()
                        } else {
                            format!("{whole}.{fraction}")
                        }
                    }
                    _ => v.to_owned(),
                };
                Decimal::from_str_exact(&trimmed)
                    .map(Money)
                    .map_err(|_| E::custom(format!("{v:?} is not a decimal amount")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A position in the log as text: `commit/prepare` (both equal for the embedded store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionText(pub Position);

impl FromStr for PositionText {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a position (commit/prepare, e.g. \"42/42\")");
        let (c, p) = s.split_once('/').ok_or_else(bad)?;
        let commit = c.parse::<u64>().map_err(|_| bad())?;
        let prepare = p.parse::<u64>().map_err(|_| bad())?;
        Ok(PositionText(Position::new(commit, prepare)))
    }
}

impl<'de> Deserialize<'de> for PositionText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PositionText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

// ---------------------------------------------------------------- requests

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    #[schema(value_type = Id)]
    pub member_id: String,
    /// The member who referred this one (a referral bonus, if the program has one).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub referrer: Option<String>,
    /// Business time: see the `OccurredAt` note in the document's description.
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    #[schema(value_type = Id)]
    pub member_id: String,
    /// Unique per store: the idempotency key of the purchase (a retry with the same id and
    /// content is answered with the first outcome; with other content, 409).
    #[schema(value_type = Id)]
    pub transaction_id: String,
    /// A terminal key must be bound to this store.
    #[schema(value_type = Id)]
    pub store: String,
    #[schema(value_type = Id)]
    pub terminal: String,
    pub occurred_at: DateTime<Utc>,
    /// The program's currency.
    #[schema(value_type = CurrencyCode)]
    pub currency: String,
    /// 1 to `limits.max_lines` lines.
    #[schema(min_items = 1)]
    pub lines: Vec<PurchaseLineRequest>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseLineRequest {
    #[schema(value_type = Id)]
    pub sku: String,
    /// Categories pick the program's earning rules.
    #[schema(value_type = Id)]
    pub category: String,
    /// 1 when absent.
    #[serde(default = "one")]
    #[schema(value_type = Quantity)]
    pub quantity: Money,
    /// The line's total, in the program's currency.
    pub amount: Money,
}

/// An optional field of a request body: absent means its default, `null` is refused (the
/// document does not call these fields nullable, and a client sending `null` most likely
/// meant something else).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A whole number, as JSON Schema's `integer` has it: `5` and also `5.0` (a fraction of zero),
/// never `5.5` and never rounded. Generated clients may write either; both mean 5.
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    struct Visitor<T>(std::marker::PhantomData<T>);
    impl<T: TryFrom<i64> + TryFrom<u64>> serde::de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number in range")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
            // Only integral values that i64 holds exactly; the conversion is then exact.
            const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
            if v.fract() != 0.0 || !v.is_finite() || v.abs() > LIMIT {
                return Err(E::custom(format!("{v} is not a whole number in range")));
            }
            #[allow(clippy::cast_possible_truncation)]
            let n = v as i64;
            self.visit_i64(n)
        }
    }
    deserializer.deserialize_any(Visitor(std::marker::PhantomData))
}

/// [`whole`], for an optional field that may be absent but not `null`.
pub fn present_whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    whole(deserializer).map(Some)
}

fn one() -> Money {
    Money(Decimal::ONE)
}

/// A refund names the original sale only (its store and transaction id); the member is found
/// by the engine. Either `amount` (spread over the purchase) or `lines` (amounts on given
/// lines), not both.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The idempotency key of the refund.
    #[schema(value_type = Id)]
    pub refund_id: String,
    #[schema(value_type = Id)]
    pub transaction_id: String,
    /// The store taking the return: a terminal key must be bound to it.
    #[schema(value_type = Id)]
    pub store: String,
    /// The store of the original sale, when the return is taken elsewhere (defaults to
    /// `store`): transaction ids are unique per store.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub purchase_store: Option<String>,
    pub occurred_at: DateTime<Utc>,
    #[schema(value_type = CurrencyCode)]
    pub currency: String,
    /// Refund this much, spread over the purchase's lines.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub amount: Option<Money>,
    /// Refund these amounts on these lines.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub lines: Option<Vec<RefundLineRequest>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLineRequest {
    /// The purchase line's index, from 0.
    #[schema(maximum = 4_294_967_295_u64)]
    #[serde(deserialize_with = "whole")]
    pub line: u32,
    pub amount: Money,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityRequest {
    #[schema(value_type = Id)]
    pub member_id: String,
    /// The idempotency key of the activity.
    #[schema(value_type = Id)]
    pub activity_id: String,
    /// One of the program's activity kinds.
    #[schema(value_type = Id)]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
}

/// Redeem a reward of the catalog (`reward_id`) or a number of points (`points`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The idempotency key of the redemption.
    #[schema(value_type = Id)]
    pub redemption_id: String,
    pub occurred_at: DateTime<Utc>,
    /// A reward of the program's catalog.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub reward_id: Option<String>,
    /// A number of points.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(minimum = 1, nullable = false)]
    pub points: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRedemptionRequest {
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// The idempotency key of the adjustment.
    #[schema(value_type = Id)]
    pub adjustment_id: String,
    /// Positive to credit, negative to debit; never 0, at most `limits.max_adjust_points`
    /// either way.
    #[serde(deserialize_with = "whole")]
    pub points: i64,
    #[schema(value_type = Id)]
    pub reason_code: String,
    /// Read by auditors.
    pub note: String,
    pub occurred_at: DateTime<Utc>,
    /// The staff member; defaults to the API key's name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoodwillRequest {
    /// The idempotency key of the grant: one per complaint.
    #[schema(value_type = Id)]
    pub complaint_id: String,
    /// 1 to `limits.max_adjust_points`.
    #[serde(deserialize_with = "whole")]
    pub points: i64,
    #[schema(value_type = Id)]
    pub reason_code: String,
    /// Why the complaint was upheld: read by auditors. Not blank.
    #[schema(pattern = "\\S")]
    pub note: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub operator: Option<String>,
}

/// Suspend, reinstate or close a member's account: why, when, and who.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountStatusRequest {
    /// Why (read by auditors), such as `fraud-check`, `appeal-upheld`, `member-request`.
    #[schema(value_type = Id)]
    pub reason_code: String,
    pub occurred_at: DateTime<Utc>,
    /// The staff member; defaults to the API key's name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub operator: Option<String>,
}

/// Erase a member's personal data: why, and who. No `occurred_at`: an erasure happens when
/// the server carries it out (the server's clock), not at a business time.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Why (recorded in the log for auditors), such as `member-request`.
    #[schema(value_type = Id)]
    pub reason_code: String,
    /// The staff member; defaults to the API key's name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Id>, nullable = false)]
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulerRunRequest {
    /// The time to run as of; defaults to the server clock, and may not be ahead of it.
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub now: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------- query strings

/// `?min_position=` on reads: wait (bounded) until the read models reached it.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Wait (bounded by `limits.read_wait_ms`) until the read models reached this position
    /// (read-your-writes).
    #[serde(default)]
    pub min_position: Option<PositionText>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(pattern = "^[0-9]{1,19}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to `limits.history_page_max`.
    #[serde(default)]
    #[param(minimum = 1)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub min_position: Option<PositionText>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Events strictly after this position; the start of the log when absent.
    #[serde(default)]
    pub after: Option<PositionText>,
    /// Page size, 1 to `limits.log_page_max`.
    #[serde(default)]
    #[param(minimum = 1)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberEventsQuery {
    /// The first stream revision (0 by default).
    #[serde(default)]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub from_revision: Option<u64>,
    /// Page size, 1 to `limits.log_page_max`.
    #[serde(default)]
    #[param(minimum = 1)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The instant to replay to.
    pub as_of: DateTime<Utc>,
}

/// `?period=month|quarter|year&periods=N&to=DATE` (local dates of the program): the `periods`
/// periods ending with the one holding `to`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodsQuery {
    /// Period length (month by default).
    #[serde(default)]
    #[param(value_type = Option<PeriodKindName>)]
    pub period: Option<loyalty_analytics::PeriodKind>,
    /// How many periods, 1 to 120 (12 months, 8 quarters or 5 years by default).
    #[serde(default)]
    #[param(minimum = 1, maximum = 120)]
    pub periods: Option<u32>,
    /// A day of the last period (today by default).
    #[serde(default)]
    pub to: Option<chrono::NaiveDate>,
}

/// The names of the period lengths.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PeriodKind)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKindName {
    Month,
    Quarter,
    Year,
}

/// `?after=MEMBER&limit=N`: a page of members by id.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MembersPageQuery {
    /// Members after this id (the `next_after` of the previous page).
    #[serde(default)]
    #[param(value_type = Option<Id>)]
    pub after: Option<String>,
    /// Page size, 1 to 1000.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// `?limit=N`: the first members of a ranking.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// Members listed, 1 to 1000.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// `?calibration_end=DATE`: the models fitted on the history up to that day.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// The last day of history the models are fitted on (yesterday by default).
    #[serde(default)]
    pub calibration_end: Option<chrono::NaiveDate>,
}

/// `?calibration_end=DATE&holdout_days=N`: fit on the history up to the first, compare the
/// predictions with what happened over the holdout days after it (up to today by default).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BacktestQuery {
    /// The last day of history the models are fitted on.
    pub calibration_end: chrono::NaiveDate,
    /// The days after calibration_end the predictions are compared over, 1 to 3660 (up to
    /// yesterday by default). A holdout that is not over yet is 409 `holdout-not-over`.
    #[serde(default)]
    #[param(minimum = 1, maximum = 3660)]
    pub holdout_days: Option<u32>,
}

/// Longest backtest holdout, in days (ten years).
pub const MAX_HOLDOUT_DAYS: u32 = 3660;

/// `POST /v1/admin/import`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Names the batch in the imported events' metadata.
    #[schema(value_type = Id)]
    pub batch_id: String,
    pub points: crate::import::PointsMode,
    /// 1 to 10,000 rows.
    #[schema(min_items = 1, max_items = 10_000)]
    pub rows: Vec<crate::import::ImportRowDto>,
}

// ---------------------------------------------------------------- webhooks

/// The longest webhook URL (the registry's limit).
pub const WEBHOOK_URL_MAX_LENGTH: usize = loyalty_webhooks::endpoint::MAX_URL_LEN;

/// The longest description of a webhook endpoint (the registry's limit).
pub const WEBHOOK_DESCRIPTION_MAX_LENGTH: usize = loyalty_webhooks::endpoint::MAX_DESCRIPTION_CHARS;

/// The longest overlap of a secret rotation (the previous secret signs too): the registry's,
/// 30 days.
pub const MAX_ROTATION_OVERLAP_SECS: u64 =
    loyalty_webhooks::endpoint::MAX_ROTATION_OVERLAP.as_secs();

/// The shape of a webhook URL, as the document states it and as requests are checked (the
/// registry then checks what it leads to): `http` or `https`, a host name whose last label
/// starts with a letter (`localhost`, `hooks.example.com`) or a dotted IPv4 address without
/// leading zeros, an optional port up to 65535, then an optional path and query of the
/// characters RFC 3986 allows there (anything else percent-encoded). No user name or password
/// (they would be shown to every admin who lists the endpoints) and no fragment (never sent). A last label of digits is refused unless the
/// whole host is an IPv4 address because URL parsers read such hosts as numbers.
pub const WEBHOOK_URL_PATTERN: &str = concat!(
    r"^https?://",
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*",
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    r"|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}",
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?",
    r"(?:[/?](?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$",
);

/// The shape of a signing secret: `whsec_` and the standard base64 (padded, canonical) of 24
/// to 64 random bytes, as the Standard Webhooks libraries write them.
pub const WEBHOOK_SECRET_PATTERN: &str = concat!(
    r"^whsec_(?:",
    // 24 to 62 bytes: 8 to 20 whole groups of three bytes, then maybe one or two more bytes.
    r"(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?",
    // 63 or 64 bytes.
    r"|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/][AQgw]==)?",
    r")$",
);

fn webhook_url_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(WEBHOOK_URL_PATTERN).expect("WEBHOOK_URL_PATTERN is a valid regex")
    });
    &PATTERN
}

fn webhook_secret_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(WEBHOOK_SECRET_PATTERN).expect("WEBHOOK_SECRET_PATTERN is a valid regex")
    });
    &PATTERN
}

/// The shape of a description: no control characters (line breaks included: it is one line
/// in a listing).
pub const WEBHOOK_DESCRIPTION_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// The shape of a delivery log cursor (`next_cursor`): the stored batch and the attempt in it.
pub const DELIVERIES_CURSOR_PATTERN: &str = r"^[0-9]{1,18}\.[0-9]{1,18}$";

fn description_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(WEBHOOK_DESCRIPTION_PATTERN).expect("a valid regex")
    });
    &PATTERN
}

fn cursor_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(DELIVERIES_CURSOR_PATTERN).expect("a valid regex")
    });
    &PATTERN
}

/// Whether `text` is a description as documented (length and characters).
pub fn is_webhook_description(text: &str) -> bool {
    text.chars().count() <= WEBHOOK_DESCRIPTION_MAX_LENGTH && description_pattern().is_match(text)
}

/// Whether `text` is shaped as a delivery log cursor.
pub fn is_deliveries_cursor(text: &str) -> bool {
    cursor_pattern().is_match(text)
}

/// Whether `url` has the documented shape of a webhook URL (and length).
pub fn is_webhook_url(url: &str) -> bool {
    url.len() <= WEBHOOK_URL_MAX_LENGTH && webhook_url_pattern().is_match(url)
}

/// Whether `secret` has the documented shape of a signing secret.
pub fn is_webhook_secret(secret: &str) -> bool {
    webhook_secret_pattern().is_match(secret)
}

/// A webhook URL (its schema: [`WEBHOOK_URL_PATTERN`], at most 2048 characters).
#[derive(Debug)]
pub struct WebhookUrl;

impl utoipa::PartialSchema for WebhookUrl {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
            .pattern(Some(WEBHOOK_URL_PATTERN))
            .max_length(Some(WEBHOOK_URL_MAX_LENGTH))
            .description(Some(
                "Where messages are POSTed: http or https, a host name or an IPv4 address, an \
                 optional port, path and query; no user name, password or fragment. A loopback, \
                 private or link-local address, or a localhost name, is 422 \
                 `webhook-target-not-allowed` unless the server allows it \
                 (`webhooks.allow_private_targets`); a host name is resolved at each delivery, \
                 and an attempt to an internal address fails.",
            ))
            .examples(["https://crm.example.com/hooks/loyalty"])
            .into()
    }
}

impl ToSchema for WebhookUrl {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("WebhookUrl")
    }
}

/// A signing secret (its schema: [`WEBHOOK_SECRET_PATTERN`]).
#[derive(Debug)]
pub struct WebhookSecretText;

impl utoipa::PartialSchema for WebhookSecretText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(WEBHOOK_SECRET_PATTERN))
            .description(Some(
                "A Standard Webhooks signing secret: `whsec_` and the standard base64 of 24 to \
                 64 random bytes",
            ))
            .examples(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
            .into()
    }
}

impl ToSchema for WebhookSecretText {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("WebhookSecret")
    }
}

/// Where a new endpoint's deliveries start: `"now"` (the events appended after its creation,
/// the default), `"start"` (the whole log) or a position of the log (the events after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookStart(pub loyalty_webhooks::endpoint::StartFrom);

impl<'de> Deserialize<'de> for WebhookStart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use loyalty_webhooks::endpoint::StartFrom;
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "now" => Ok(WebhookStart(StartFrom::Now)),
            "start" => Ok(WebhookStart(StartFrom::Start)),
            _ => text
                .parse::<PositionText>()
                .map(|p| WebhookStart(StartFrom::After(p.0)))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{:?} is not \"now\", \"start\" or a position (commit/prepare)",
                        text.chars().take(40).collect::<String>()
                    ))
                }),
        }
    }
}

impl utoipa::PartialSchema for WebhookStart {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some(
                "Where deliveries start: \"now\" (the events appended after the creation, the \
                 default), \"start\" (the whole log), or a position (the events after it; a \
                 position past the head of the log is 409 `position-ahead-of-log`)",
            ))
            .item(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(["now", "start"])),
            )
            .item(utoipa::openapi::RefOr::Ref(
                utoipa::openapi::Ref::from_schema_name("Position"),
            ))
            .into()
    }
}

impl ToSchema for WebhookStart {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("WebhookStart")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((PositionText::name().into_owned(), PositionText::schema()));
    }
}

/// `POST /v1/webhooks/endpoints`: a new endpoint. Its id is the idempotency key: the same
/// request again answers the same endpoint; another one with the same id is 409.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpointRequest {
    /// The endpoint's id, chosen by the caller (never reused, even once deleted).
    #[schema(value_type = Id)]
    pub endpoint_id: String,
    #[schema(value_type = WebhookUrl)]
    pub url: String,
    /// The types delivered; absent or empty: every type.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<crate::wire::webhooks::WebhookEventType>>, nullable = false)]
    pub event_types: Option<Vec<loyalty_webhooks::endpoint::EventType>>,
    /// What the endpoint is for, for the admins: one line of at most 256 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub description: Option<String>,
    /// The signing secret; absent: the server generates one. Either way it is in the answer.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<WebhookSecretText>, nullable = false)]
    pub secret: Option<String>,
    /// Each request's timeout (`webhooks.default_timeout_ms` when absent), at most
    /// `webhooks.max_timeout_ms`.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(minimum = 1, nullable = false)]
    pub timeout_ms: Option<u64>,
    /// Messages in flight at once (`webhooks.default_max_in_flight` when absent), at most
    /// `webhooks.max_in_flight`; one member's messages are never in flight together.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(minimum = 1, nullable = false)]
    pub max_in_flight: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<WebhookStart>, nullable = false)]
    pub start: Option<WebhookStart>,
}

/// `PATCH /v1/webhooks/endpoints/{endpoint_id}`: what changes (at least one field; the others
/// stay).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpointRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<WebhookUrl>, nullable = false)]
    pub url: Option<String>,
    /// The types delivered from now on; empty: every type.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<crate::wire::webhooks::WebhookEventType>>, nullable = false)]
    pub event_types: Option<Vec<loyalty_webhooks::endpoint::EventType>>,
    /// One line of at most 256 characters; empty: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        nullable = false,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(minimum = 1, nullable = false)]
    pub timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(minimum = 1, nullable = false)]
    pub max_in_flight: Option<u32>,
}

/// `POST /v1/webhooks/endpoints/{endpoint_id}/rotate-secret`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookSecretRequest {
    /// The new secret; absent: the server generates one. It is in the answer.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<WebhookSecretText>, nullable = false)]
    pub secret: Option<String>,
    /// How long the previous secret still signs too, so that receivers can switch
    /// (`webhooks.rotation_overlap_secs` when absent; 0: not at all), at most 30 days.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(minimum = 0, maximum = 2_592_000, nullable = false)]
    pub overlap_secs: Option<u64>,
}

/// `POST /v1/webhooks/endpoints/{endpoint_id}/replay`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayWebhookRequest {
    /// Every message after this position is delivered again, in order, with its original id.
    #[schema(value_type = PositionText)]
    pub after: PositionText,
}

/// `?limit=N&cursor=C&message_id=M`: a page of an endpoint's delivery log, newest first.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 500 (50 by default).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<crate::schema::DeliveryCursor>)]
    pub cursor: Option<String>,
    /// Only this message's attempts.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Picks a page size: the default when absent, an error when outside 1..=max.
pub fn page_size(requested: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match requested {
        None => Ok(default.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => {
            Err(ApiError::invalid(format!("limit={n} is not between 1 and {max}")).with("max", max))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_read_from_a_string_exactly() {
        let m: Money = serde_json::from_str("\"4.50\"").unwrap();
        assert_eq!(m.0, Decimal::new(450, 2));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"4.50\"");
    }

    #[test]
    fn money_as_a_json_number_is_refused() {
        assert!(serde_json::from_str::<Money>("4.5").is_err());
        assert!(serde_json::from_str::<Money>("4").is_err());
    }

    #[test]
    fn money_in_exponent_notation_or_with_junk_is_refused() {
        assert!(serde_json::from_str::<Money>("\"1e3\"").is_err());
        assert!(serde_json::from_str::<Money>("\" 4.50\"").is_err());
        assert!(serde_json::from_str::<Money>("\"\"").is_err());
    }

    /// The documented pattern is the check: every string it matches is read, and nothing else.
    #[test]
    fn money_strings_are_read_exactly_when_they_match_the_documented_pattern() {
        let accepted = ["4.50", "4", "0.5", "-4.50", "007.10", "100000.00"];
        let refused = [
            "4.", ".5", "-", "-.5", "+4", "4,50", "4.5.0", "1e3", "", " 4", "0x10",
        ];
        for text in accepted {
            let json = format!("{text:?}");
            let money: Money =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(money.0, text.parse::<Decimal>().unwrap(), "{text}");
        }
        for text in refused {
            assert!(
                serde_json::from_str::<Money>(&format!("{text:?}")).is_err(),
                "{text:?} must be refused"
            );
        }
        let long = "1".repeat(MONEY_MAX_LENGTH + 1);
        assert!(serde_json::from_str::<Money>(&format!("{long:?}")).is_err());
    }

    #[test]
    fn a_position_round_trips_through_its_text() {
        let p: PositionText = "42/41".parse().unwrap();
        assert_eq!(p.0, Position::new(42, 41));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"42/41\"");
        assert!("42".parse::<PositionText>().is_err());
    }

    #[test]
    fn an_unknown_field_in_a_request_is_refused() {
        let body = r#"{"member_id":"m1","occurred_at":"2026-01-01T00:00:00Z","bonus":5}"#;
        assert!(serde_json::from_str::<EnrollRequest>(body).is_err());
    }

    #[test]
    fn points_as_a_fraction_are_refused() {
        let body = r#"{"redemption_id":"r1","occurred_at":"2026-01-01T00:00:00Z","points":1.5}"#;
        assert!(serde_json::from_str::<RedeemRequest>(body).is_err());
    }

    #[test]
    fn webhook_urls_are_read_exactly_when_they_match_the_documented_pattern() {
        let accepted = [
            "https://crm.example.com/hooks/loyalty",
            "http://localhost:8080/hooks",
            "http://127.0.0.1:65535",
            "https://a.example/x?y=1&z=%20",
            "http://10.0.0.255/",
            "https://hooks.example.com?x",
        ];
        let refused = [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://example.com:65536/",
            "https://example.com:/",
            "https://1.2.3/",
            "https://010.0.0.1/",
            "https://a..b/",
            "https://-a.com/",
            "https://example.com/a b",
            "https://example.com/a`b",
            "https://example.com/a{b}",
            "https://example.com/%zz",
            "https://example.com/\u{e9}",
            "https://[::1]/",
            "example.com",
            "",
        ];
        for url in accepted {
            assert!(is_webhook_url(url), "{url} must be accepted");
        }
        for url in refused {
            assert!(!is_webhook_url(url), "{url} must be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(WEBHOOK_URL_MAX_LENGTH));
        assert!(!is_webhook_url(&long));
    }

    #[test]
    fn webhook_secrets_are_read_exactly_when_they_are_canonical_base64_of_24_to_64_bytes() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        for bytes in 0..=70usize {
            let secret = format!("whsec_{}", b64.encode(vec![0xA5u8; bytes]));
            assert_eq!(
                is_webhook_secret(&secret),
                (24..=64).contains(&bytes),
                "{bytes} bytes: {secret}"
            );
        }
        // Non-canonical trailing bits, a missing padding, a foreign alphabet.
        let good = format!("whsec_{}", b64.encode([7u8; 25]));
        assert!(is_webhook_secret(&good));
        let mut bits = good.clone();
        bits.replace_range(bits.len() - 3..bits.len() - 2, "B");
        assert!(!is_webhook_secret(&bits), "{bits}");
        assert!(!is_webhook_secret(good.trim_end_matches('=')));
        assert!(!is_webhook_secret(&format!("whsec_{}", "-_".repeat(16))));
        assert!(!is_webhook_secret(&good.replacen("whsec_", "", 1)));
    }

    #[test]
    fn a_webhook_start_is_now_start_or_a_position() {
        use loyalty_webhooks::endpoint::StartFrom;
        let read = |s: &str| serde_json::from_str::<WebhookStart>(s).map(|w| w.0);
        assert_eq!(read("\"now\"").unwrap(), StartFrom::Now);
        assert_eq!(read("\"start\"").unwrap(), StartFrom::Start);
        assert_eq!(
            read("\"42/41\"").unwrap(),
            StartFrom::After(Position::new(42, 41))
        );
        assert!(read("\"later\"").is_err());
        assert!(read("42").is_err());
    }

    #[test]
    fn the_documented_webhook_patterns_and_limits_are_the_ones_checked() {
        use utoipa::PartialSchema;
        for schema in [
            CreateWebhookEndpointRequest::schema(),
            UpdateWebhookEndpointRequest::schema(),
        ] {
            let schema = serde_json::to_value(schema).unwrap();
            let description = &schema["properties"]["description"];
            assert_eq!(description["pattern"], WEBHOOK_DESCRIPTION_PATTERN);
            assert_eq!(description["maxLength"], WEBHOOK_DESCRIPTION_MAX_LENGTH);
        }
        let rotate = serde_json::to_value(RotateWebhookSecretRequest::schema()).unwrap();
        assert_eq!(
            rotate["properties"]["overlap_secs"]["maximum"],
            MAX_ROTATION_OVERLAP_SECS
        );
        let params = <DeliveriesQuery as IntoParams>::into_params(|| None);
        let cursor = params.iter().find(|p| p.name == "cursor").unwrap();
        // Both the query and the answer refer to the one cursor schema, which states the
        // pattern the handler checks.
        let cursor = serde_json::to_string(&cursor.schema).unwrap();
        assert!(
            cursor.contains("#/components/schemas/DeliveryCursor"),
            "{cursor}"
        );
        let page =
            serde_json::to_value(crate::wire::webhooks::WebhookDeliveryPage::schema()).unwrap();
        assert!(
            page["properties"]["next_cursor"]
                .to_string()
                .contains("#/components/schemas/DeliveryCursor"),
            "{page}"
        );
        let shared = serde_json::to_value(crate::schema::DeliveryCursor::schema()).unwrap();
        assert_eq!(shared["pattern"], DELIVERIES_CURSOR_PATTERN);
        assert!(is_deliveries_cursor("12.3"));
        assert!(!is_deliveries_cursor("12"));
        assert!(!is_deliveries_cursor("1234567890123456789.1"));
        assert!(is_webhook_description("The CRM, in Lyon \u{e9}"));
        assert!(!is_webhook_description("two\nlines"));
        assert!(!is_webhook_description("\u{85}"));
        assert!(!is_webhook_description(&"a".repeat(257)));
        assert!(is_webhook_description(&"\u{e9}".repeat(256)));
    }

    proptest::proptest! {
        /// What the documented pattern lets through, the registry accepts (where the host
        /// leads aside), and the URL it stores still has the documented shape (it is in the
        /// answers).
        #[test]
        fn every_url_of_the_documented_shape_is_accepted_and_stored_in_that_shape(
            url in proptest::string::string_regex(
                WEBHOOK_URL_PATTERN.trim_start_matches('^').trim_end_matches('$'),
            ).unwrap()
        ) {
            proptest::prop_assume!(url.len() <= WEBHOOK_URL_MAX_LENGTH);
            proptest::prop_assert!(is_webhook_url(&url));
            let stored = loyalty_webhooks::endpoint::check_url(&url, true);
            proptest::prop_assert!(stored.is_ok(), "{url}: {stored:?}");
            let stored = stored.unwrap();
            proptest::prop_assert!(is_webhook_url(&stored), "{url} stored as {stored}");
        }
    }

    #[test]
    fn a_page_size_outside_the_limit_is_an_error() {
        assert_eq!(page_size(None, 50, 100).unwrap(), 50);
        assert_eq!(page_size(Some(100), 50, 100).unwrap(), 100);
        assert!(page_size(Some(0), 50, 100).is_err());
        assert!(page_size(Some(101), 50, 100).is_err());
    }
}
