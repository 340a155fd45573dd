//! The JSON bodies of the API. Requests deny unknown fields (a misspelt field is an error, not
//! a silently ignored option); money travels as a string ("4.50"), points as integers, times as
//! RFC 3339. Conversion to the core's commands validates ids and the server's limits.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
                Decimal::from_str_exact(v)
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub member_id: String,
    #[serde(default)]
    pub referrer: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    pub member_id: String,
    pub transaction_id: String,
    pub store: String,
    pub terminal: String,
    pub occurred_at: DateTime<Utc>,
    pub currency: String,
    pub lines: Vec<PurchaseLineRequest>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseLineRequest {
    pub sku: String,
    pub category: String,
    #[serde(default = "one")]
    pub quantity: Money,
    pub amount: Money,
}

fn one() -> Money {
    Money(Decimal::ONE)
}

/// A refund names the original sale only (its store and transaction id); the member is found
/// by the engine. Either `amount` (spread over the purchase) or `lines` (amounts on given
/// lines), not both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub refund_id: String,
    pub transaction_id: String,
    /// The store taking the return: a terminal key must be bound to it.
    pub store: String,
    /// The store of the original sale, when the return is taken elsewhere (defaults to
    /// `store`): transaction ids are unique per store.
    #[serde(default)]
    pub purchase_store: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub currency: String,
    #[serde(default)]
    pub amount: Option<Money>,
    #[serde(default)]
    pub lines: Option<Vec<RefundLineRequest>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundLineRequest {
    pub line: u32,
    pub amount: Money,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityRequest {
    pub member_id: String,
    pub activity_id: String,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
}

/// Redeem a reward of the catalog (`reward_id`) or a number of points (`points`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub redemption_id: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub reward_id: Option<String>,
    #[serde(default)]
    pub points: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRedemptionRequest {
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    pub adjustment_id: String,
    /// Positive to credit, negative to debit.
    pub points: i64,
    pub reason_code: String,
    pub note: String,
    pub occurred_at: DateTime<Utc>,
    /// The staff member; defaults to the API key's name.
    #[serde(default)]
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodwillRequest {
    pub complaint_id: String,
    pub points: i64,
    pub reason_code: String,
    /// Why the complaint was upheld: read by auditors.
    pub note: String,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub operator: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerRunRequest {
    /// The time to run as of; defaults to the server clock, and may not be ahead of it.
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------- query strings

/// `?min_position=` on reads: wait (bounded) until the read models reached it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    #[serde(default)]
    pub min_position: Option<PositionText>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub min_position: Option<PositionText>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Events strictly after this position; the start of the log when absent.
    #[serde(default)]
    pub after: Option<PositionText>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEventsQuery {
    #[serde(default)]
    pub from_revision: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    pub as_of: DateTime<Utc>,
}

/// `?period=month|quarter|year&from=DATE&to=DATE` (local dates of the program).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodsQuery {
    #[serde(default)]
    pub period: Option<loyalty_analytics::PeriodKind>,
    #[serde(default)]
    pub from: Option<chrono::NaiveDate>,
    #[serde(default)]
    pub to: Option<chrono::NaiveDate>,
}

/// `?after=MEMBER&limit=N`: a page of members by id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersPageQuery {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `?limit=N`: the first members of a ranking.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `?calibration_end=DATE`: the models fitted on the history up to that day.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelQuery {
    #[serde(default)]
    pub calibration_end: Option<chrono::NaiveDate>,
}

/// `?calibration_end=DATE&holdout_end=DATE`: fit on the history up to the first, compare the
/// predictions with what happened up to the second (today by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestQuery {
    pub calibration_end: chrono::NaiveDate,
    #[serde(default)]
    pub holdout_end: Option<chrono::NaiveDate>,
}

/// `POST /v1/admin/import`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Names the batch in the imported events' metadata.
    pub batch_id: String,
    pub points: crate::import::PointsMode,
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
