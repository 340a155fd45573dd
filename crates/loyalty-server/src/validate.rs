//! The server's own checks before a command reaches the engine: ids, and the configured limits
//! on amounts, points and lines (a typo guard; the domain checks its own rules too).
use rust_decimal::Decimal;

use crate::dto::Money;
use crate::error::ApiError;
use crate::settings::LimitSettings;

/// Parses a client id with the core's rules (the error names the field).
pub fn id<T, F>(parse: F, value: &str) -> Result<T, ApiError>
where
    F: FnOnce(String) -> Result<T, loyalty_core::DomainError>,
{
    parse(value.to_owned()).map_err(ApiError::from)
}

/// An amount must be positive and at most `limits.max_amount`.
pub fn amount(
    field: &'static str,
    money: Money,
    limits: &LimitSettings,
) -> Result<Decimal, ApiError> {
    let value = money.0;
    if value <= Decimal::ZERO {
        return Err(invalid_amount(
            field,
            format!("{field} must be positive, got {value}"),
        ));
    }
    if value > limits.max_amount {
        return Err(invalid_amount(
            field,
            format!(
                "{field} = {value} exceeds the limit of {}",
                limits.max_amount
            ),
        )
        .with("max", limits.max_amount.to_string()));
    }
    Ok(value)
}

/// A quantity must be positive, at most a million units, with at most
/// [`crate::schema::QUANTITY_DECIMALS`] decimals (weights to the milligram).
pub fn quantity(money: Money) -> Result<Decimal, ApiError> {
    let value = money.0;
    let max = crate::schema::MAX_QUANTITY;
    if value <= Decimal::ZERO
        || value > Decimal::from(max)
        || value.normalize().scale() > crate::schema::QUANTITY_DECIMALS
    {
        return Err(invalid_amount(
            "quantity",
            format!(
                "quantity must be above 0 and at most {max}, with at most {} decimals, got {value}",
                crate::schema::QUANTITY_DECIMALS
            ),
        ));
    }
    Ok(value)
}

fn invalid_amount(field: &'static str, detail: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-amount",
        "Invalid amount",
        detail,
    )
    .with("field", field)
}

/// Points moved by hand: not zero, and at most `limits.max_adjust_points` either way.
pub fn manual_points(
    points: i64,
    positive_only: bool,
    limits: &LimitSettings,
) -> Result<i64, ApiError> {
    let too_big = points
        .checked_abs()
        .is_none_or(|a| a > limits.max_adjust_points);
    if points == 0 || (positive_only && points < 0) || too_big {
        let range = if positive_only { "1" } else { "-max..-1 or 1" };
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-points",
            "Invalid number of points",
            format!(
                "points = {points} is not in {range}..={}",
                limits.max_adjust_points
            ),
        )
        .with("max", limits.max_adjust_points));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_and_absurd_amounts_are_refused() {
        let limits = LimitSettings::default();
        assert!(amount("amount", Money(Decimal::new(-450, 2)), &limits).is_err());
        assert!(amount("amount", Money(Decimal::ZERO), &limits).is_err());
        assert!(amount("amount", Money(Decimal::new(1_000_000_000, 0)), &limits).is_err());
        assert_eq!(
            amount("amount", Money(Decimal::new(450, 2)), &limits).unwrap(),
            Decimal::new(450, 2)
        );
    }

    #[test]
    fn manual_points_are_bounded_both_ways() {
        let limits = LimitSettings::default();
        assert!(manual_points(0, false, &limits).is_err());
        assert!(manual_points(-5, true, &limits).is_err());
        assert!(manual_points(-5, false, &limits).is_ok());
        assert!(manual_points(i64::MIN, false, &limits).is_err());
        assert!(manual_points(limits.max_adjust_points + 1, false, &limits).is_err());
    }
}
