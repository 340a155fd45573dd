//! The wire format of an import's rows, shared by `POST /v1/admin/import` and `loyalty import`
//! (CSV columns or NDJSON keys, the same names): every column optional, checked by `type`.
//!
//! | column | rows | |
//! |---|---|---|
//! | `type` | all | `member`, `purchase`, `refund` or `balance` |
//! | `member_id` | all | |
//! | `occurred_at` | all | RFC 3339 instant, or a local date (`2024-03-01`: members at 00:00, other rows at 12:00 in the program's timezone) |
//! | `store`, `transaction_id` | purchase, refund | the sale (a refund names the purchase it refunds) |
//! | `amount` | purchase, refund | decimal string, in the program's currency |
//! | `category`, `sku` | purchase | optional (`imported`, `IMPORTED`): categories pick earning rules |
//! | `refund_id` | refund | |
//! | `points` | purchase (points `explicit`), balance | integer |
//! | `balance_id` | balance | optional (`opening-<member>`) |
//! | `expires_at` | balance | optional: instant or local date (end of that day) |

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use loyalty_core::{
    AdjustmentId, CategoryId, Command, Currency, Enroll, ImportedAward, MemberId, OpenBalance,
    Points, PurchaseLine, RecordPurchase, Refund, RefundId, RefundScope, Sku, StoreId, TerminalId,
    TransactionId,
};
use rust_decimal::Decimal;
use serde::Deserialize;

/// How historical purchases earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointsMode {
    /// By today's rules.
    Rules,
    /// Nothing: history for the analytics and tier qualification (balances come as `balance`
    /// rows).
    None,
    /// The `points` column.
    Explicit,
}

/// One row as written: every column but the first three optional, checked by `type` (a row
/// missing a column its type needs is refused with the batch, 422 `import-refused`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRowDto {
    /// `member`, `purchase`, `refund` or `balance`.
    #[serde(rename = "type")]
    #[schema(value_type = ImportRowType)]
    pub kind: String,
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// An RFC 3339 instant, or a local date (members at 00:00, other rows at 12:00 in the
    /// program's timezone).
    #[schema(value_type = crate::schema::InstantOrDate)]
    pub occurred_at: String,
    /// Purchase and refund rows: the store of the sale.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::IdOrEmpty>)]
    pub store: Option<String>,
    /// Purchase and refund rows: the sale (a refund names the purchase it refunds).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::IdOrEmpty>)]
    pub transaction_id: Option<String>,
    /// Purchase and refund rows: a decimal string in the program's currency.
    #[serde(default)]
    pub amount: Option<String>,
    /// Purchase rows (`imported` when absent): categories pick earning rules.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::IdOrEmpty>)]
    pub category: Option<String>,
    /// Purchase rows (`IMPORTED` when absent).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::IdOrEmpty>)]
    pub sku: Option<String>,
    /// Refund rows.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::IdOrEmpty>)]
    pub refund_id: Option<String>,
    /// Purchase rows when points are `explicit`, and balance rows.
    #[serde(default)]
    pub points: Option<i64>,
    /// Balance rows (`opening-<member>` when absent).
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::IdOrEmpty>)]
    pub balance_id: Option<String>,
    /// Balance rows: an instant or a local date (the end of that day); the program's expiry
    /// policy when absent.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The kinds of import rows.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ImportRowType {
    Member,
    Purchase,
    Refund,
    Balance,
}

/// An instant, or a local date at `time` in the program's timezone.
fn instant(text: &str, tz: Tz, time: NaiveTime) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let day: NaiveDate = text
        .parse()
        .map_err(|_| format!("{text:?} is neither an RFC 3339 instant nor a date"))?;
    // The program's own rule for local times (a gap moves forward, an overlap takes the first).
    loyalty_core::calendar::resolve(day.and_time(time), tz)
        .ok_or_else(|| format!("{text} {time} does not exist in {tz}"))
}

fn required<'a>(value: &'a Option<String>, column: &str) -> Result<&'a str, String> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{column} is required"))
}

fn id<'a, T>(
    parse: impl Fn(&'a str) -> Result<T, loyalty_core::DomainError>,
    text: &'a str,
) -> Result<T, String> {
    parse(text).map_err(|e| e.to_string())
}

/// The command a row stands for, and how it earns; `Err` says why the row is refused.
pub fn to_command(
    row: &ImportRowDto,
    mode: PointsMode,
    tz: Tz,
    currency: &Currency,
) -> Result<(Command, ImportedAward), String> {
    let member_id = id(MemberId::parse, &row.member_id)?;
    // Every id column given is an id, whether or not this row's type reads it: a malformed
    // column is a mistake in the file, never silently ignored.
    for (column, value) in [
        ("store", &row.store),
        ("transaction_id", &row.transaction_id),
        ("category", &row.category),
        ("sku", &row.sku),
        ("refund_id", &row.refund_id),
        ("balance_id", &row.balance_id),
    ] {
        if let Some(text) = value.as_deref().filter(|t| !t.is_empty()) {
            StoreId::parse(text).map_err(|_| format!("{column} {text:?} is not an id"))?;
        }
    }
    let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN);
    let award = match mode {
        PointsMode::Rules => ImportedAward::Rules,
        PointsMode::None => ImportedAward::Nothing,
        PointsMode::Explicit => ImportedAward::Explicit(Points::new(0)),
    };
    let amount = || -> Result<Decimal, String> {
        let text = required(&row.amount, "amount")?;
        text.parse::<Decimal>()
            .map_err(|_| format!("amount {text:?} is not a decimal number"))
    };
    Ok(match row.kind.as_str() {
        "member" => (
            Command::Enroll(Enroll {
                member_id,
                referrer: None,
                occurred_at: instant(&row.occurred_at, tz, NaiveTime::MIN)?,
            }),
            award,
        ),
        "purchase" => {
            let award = match mode {
                PointsMode::Explicit => ImportedAward::Explicit(Points::new(
                    row.points
                        .ok_or("points is required with --points explicit")?,
                )),
                _ => award,
            };
            (
                Command::RecordPurchase(RecordPurchase {
                    member_id,
                    transaction_id: id(
                        TransactionId::parse,
                        required(&row.transaction_id, "transaction_id")?,
                    )?,
                    store: id(StoreId::parse, required(&row.store, "store")?)?,
                    terminal: id(TerminalId::parse, "import")?,
                    occurred_at: instant(&row.occurred_at, tz, noon)?,
                    currency: currency.clone(),
                    lines: vec![PurchaseLine {
                        sku: id(Sku::parse, row.sku.as_deref().unwrap_or("IMPORTED"))?,
                        category: id(
                            CategoryId::parse,
                            row.category.as_deref().unwrap_or("imported"),
                        )?,
                        quantity: Decimal::ONE,
                        amount: amount()?,
                    }],
                }),
                award,
            )
        }
        "refund" => {
            let store = id(StoreId::parse, required(&row.store, "store")?)?;
            (
                Command::Refund(Refund {
                    member_id,
                    refund_id: id(RefundId::parse, required(&row.refund_id, "refund_id")?)?,
                    store: store.clone(),
                    purchase_store: store,
                    transaction_id: id(
                        TransactionId::parse,
                        required(&row.transaction_id, "transaction_id")?,
                    )?,
                    occurred_at: instant(&row.occurred_at, tz, noon)?,
                    currency: currency.clone(),
                    scope: RefundScope::Amount(amount()?),
                }),
                award,
            )
        }
        "balance" => {
            let end_of_day = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
            let balance_id = row
                .balance_id
                .clone()
                .unwrap_or_else(|| format!("opening-{member_id}"));
            (
                Command::OpenBalance(OpenBalance {
                    balance_id: id(AdjustmentId::parse, &balance_id)?,
                    points: Points::new(row.points.ok_or("points is required")?),
                    expires_at: row
                        .expires_at
                        .as_deref()
                        .filter(|t| !t.is_empty())
                        .map(|t| instant(t, tz, end_of_day))
                        .transpose()?,
                    occurred_at: instant(&row.occurred_at, tz, noon)?,
                    member_id,
                }),
                award,
            )
        }
        other => {
            return Err(format!(
                "type {other:?} is not member, purchase, refund or balance"
            ));
        }
    })
}
