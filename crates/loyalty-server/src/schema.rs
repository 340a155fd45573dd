//! The OpenAPI schemas of the wire's scalar shapes (ids, money, positions, currencies), written
//! once here from the same constants the server checks against, and referenced by name from
//! every request and response type (`#[schema(value_type = Id)]`).
use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

/// The pattern of every client id, as the core checks it (`loyalty_core::ids`): 1 to 64 of
/// `A-Z a-z 0-9 . _ : -`.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";

/// The pattern of a log position: `commit/prepare`.
///
/// 19 digits at most: every such number fits the 64-bit positions of the stores.
pub const POSITION_PATTERN: &str = "^[0-9]{1,19}/[0-9]{1,19}$";

/// A decimal string, as every `Decimal` of the API is written: digits, optionally a point and
/// more digits, optionally a leading minus (the shape requests' money is read with).
pub const DECIMAL_PATTERN: &str = crate::dto::MONEY_PATTERN;

/// The pattern of a currency code (ISO 4217 letters, as the core checks it).
pub const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";

fn string(pattern: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

/// A client id (member, transaction, store, reward...).
#[derive(Debug)]
pub struct Id;

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        string(
            ID_PATTERN,
            "An identifier chosen by the client: 1 to 64 of A-Z a-z 0-9 . _ : -",
        )
        .min_length(Some(1))
        .max_length(Some(64))
        .examples(["m-1001"])
        .into()
    }
}

impl ToSchema for Id {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Id")
    }
}

/// An id column of an imported row: an id, or empty (as an empty CSV column), which is the
/// same as leaving it out.
#[derive(Debug)]
pub struct IdOrEmpty;

impl PartialSchema for IdOrEmpty {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some("An id, or empty: the same as leaving the column out"))
            .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Id")))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(0)),
            )
            .into()
    }
}

impl ToSchema for IdOrEmpty {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IdOrEmpty")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Id::name().into_owned(), Id::schema()));
    }
}

/// The cursor of a webhook delivery-log page (`revision.index`).
#[derive(Debug)]
pub struct DeliveryCursor;

impl PartialSchema for DeliveryCursor {
    fn schema() -> RefOr<Schema> {
        string(
            crate::dto::DELIVERIES_CURSOR_PATTERN,
            "Where the next (older) page of a delivery log starts: a page's next_cursor",
        )
        .examples(["12.3"])
        .into()
    }
}

impl ToSchema for DeliveryCursor {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DeliveryCursor")
    }
}

/// A position in the log.
impl PartialSchema for crate::dto::PositionText {
    fn schema() -> RefOr<Schema> {
        string(
            POSITION_PATTERN,
            "A position in the log, commit/prepare (both equal on the embedded store); pass a \
             write's position as ?min_position= to a read to see that write",
        )
        .examples(["42/42"])
        .into()
    }
}

impl ToSchema for crate::dto::PositionText {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Position")
    }
}

/// An amount of money in a request: see [`crate::dto::Money`].
impl PartialSchema for crate::dto::Money {
    fn schema() -> RefOr<Schema> {
        // The served document states the exact pattern for the configured limit and the
        // program's minor units (`openapi::document`); this is its shape without them.
        string(
            &amount_pattern(DEFAULT_MAX_AMOUNT, 2),
            "An amount of money as a string of a positive decimal number (\"4.50\"), at most \
             `limits.max_amount` and with at most the currency's minor units of decimals: JSON \
             numbers are refused so that no amount ever passes through binary floating point",
        )
        .max_length(Some(crate::dto::MONEY_MAX_LENGTH))
        .examples(["4.50"])
        .into()
    }
}

impl ToSchema for crate::dto::Money {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

/// `limits.max_amount`'s default, for the document's shape before settings are applied.
pub const DEFAULT_MAX_AMOUNT: u64 = 100_000;

/// The most units of one purchase line (as `validate::quantity` checks).
pub const MAX_QUANTITY: u64 = 1_000_000;

/// The most decimals of a quantity.
pub const QUANTITY_DECIMALS: u32 = 6;

/// A quantity of a purchase line: positive, at most a million, at most 6 decimals.
#[derive(Debug)]
pub struct Quantity;

impl PartialSchema for Quantity {
    fn schema() -> RefOr<Schema> {
        string(
            &amount_pattern(MAX_QUANTITY, QUANTITY_DECIMALS),
            "A quantity as a string of a positive decimal number, at most 1000000 with at most 6 \
             decimals (1 when absent)",
        )
        .max_length(Some(crate::dto::MONEY_MAX_LENGTH))
        .examples(["1", "0.350"])
        .into()
    }
}

impl ToSchema for Quantity {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Quantity")
    }
}

/// An amount of money in an answer: a decimal string, possibly zero or negative (a net spend
/// after refunds).
#[derive(Debug)]
pub struct Amount;

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        string(
            DECIMAL_PATTERN,
            "An amount of money or a rate as a string of a decimal number",
        )
        .examples(["4.50"])
        .into()
    }
}

impl ToSchema for Amount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Amount")
    }
}

/// A currency code.
#[derive(Debug)]
pub struct CurrencyCode;

impl PartialSchema for CurrencyCode {
    fn schema() -> RefOr<Schema> {
        string(CURRENCY_PATTERN, "An ISO 4217 currency code")
            .examples(["EUR"])
            .into()
    }
}

impl ToSchema for CurrencyCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Currency")
    }
}

/// An instant, or a local date of the program's timezone (in imported rows).
#[derive(Debug)]
pub struct InstantOrDate;

impl PartialSchema for InstantOrDate {
    fn schema() -> RefOr<Schema> {
        let instant =
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )));
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some(
                "An RFC 3339 instant, or a local date of the program's timezone",
            ))
            .item(instant)
            .item(date())
            .into()
    }
}

impl ToSchema for InstantOrDate {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("InstantOrDate")
    }
}

/// A calendar date of the program's timezone.
pub fn date() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        )))
}

/// The exact pattern of a positive amount of at most `max` (a whole number) with at most
/// `decimals` significant decimals: what the server accepts as an amount, stated so that a
/// client generated from the document refuses what the server would refuse.
///
/// Built without look-around (JSON Schema's patterns and the `regex` crate share that subset):
/// leading zeros, then either a whole part shorter than `max`'s, or as long and smaller digit
/// by digit, with any allowed decimals; or `max` itself with zero decimals; or a zero whole
/// part with a decimal that is not all zeros.
pub fn amount_pattern(max: u64, decimals: u32) -> String {
    let digits: Vec<u32> = max
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let n = digits.len();
    let fraction = if decimals == 0 {
        r"(\.0+)?".to_owned()
    } else {
        format!(r"(\.[0-9]{{1,{decimals}}}0*)?")
    };
    let mut whole: Vec<String> = Vec::new();
    // Shorter than max: 1 to n-1 digits, not starting with 0.
    if n >= 2 {
        whole.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    // As long as max and smaller: equal up to position k, smaller at k, anything after.
    for k in 0..n {
        let low = u32::from(k == 0);
        if digits[k] > low {
            let prefix: String = digits[..k].iter().map(u32::to_string).collect();
            let rest = n - k - 1;
            whole.push(format!("{prefix}[{low}-{}][0-9]{{{rest}}}", digits[k] - 1));
        }
    }
    let mut choices: Vec<String> = Vec::new();
    if !whole.is_empty() {
        choices.push(format!("({}){fraction}", whole.join("|")));
    }
    if max > 0 {
        choices.push(format!(r"{max}(\.0+)?"));
    }
    if decimals > 0 {
        // A zero whole part: some decimal must be non-zero.
        let d = decimals - 1;
        choices.push(format!(r"0\.[0-9]{{0,{d}}}[1-9]0*"));
    }
    format!("^0*({})$", choices.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn accepted_by_the_server(text: &str, max: u64, decimals: u32) -> bool {
        let plain = regex::Regex::new(crate::dto::MONEY_PATTERN).unwrap();
        if !plain.is_match(text) {
            return false;
        }
        let Ok(value) = Decimal::from_str_exact(text) else {
            return false;
        };
        value > Decimal::ZERO
            && value <= Decimal::from(max)
            && value.normalize().scale() <= decimals
    }

    #[test]
    fn the_amount_pattern_draws_the_line_where_the_server_does() {
        let p = regex::Regex::new(&amount_pattern(100_000, 2)).unwrap();
        for ok in [
            "4.50",
            "1",
            "0.01",
            "007.10",
            "100000",
            "100000.00",
            "99999.99",
            "4.500",
        ] {
            assert!(p.is_match(ok), "{ok} must match");
        }
        for bad in [
            "0",
            "0.00",
            "100000.01",
            "100001",
            "999999",
            "4.505",
            "-1",
            "4.",
            ".5",
        ] {
            assert!(!p.is_match(bad), "{bad} must not match");
        }
    }

    proptest! {
        #[test]
        fn the_amount_pattern_matches_exactly_what_the_server_accepts(
            max in 1u64..2_000_000,
            decimals in 0u32..4,
            whole in "0{0,2}[0-9]{1,8}",
            fraction in proptest::option::of("[0-9]{1,5}"),
        ) {
            let text = match fraction {
                Some(f) => format!("{whole}.{f}"),
                None => whole,
            };
            let pattern = regex::Regex::new(&amount_pattern(max, decimals)).unwrap();
            prop_assert_eq!(
                pattern.is_match(&text),
                accepted_by_the_server(&text, max, decimals),
                "{} with max {} and {} decimals", text, max, decimals
            );
        }
    }
}
