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
    fn a_page_size_outside_the_limit_is_an_error() {
        assert_eq!(page_size(None, 50, 100).unwrap(), 50);
        assert_eq!(page_size(Some(100), 50, 100).unwrap(), 100);
        assert!(page_size(Some(0), 50, 100).is_err());
        assert!(page_size(Some(101), 50, 100).is_err());
    }
}
