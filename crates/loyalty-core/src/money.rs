//! Money: a decimal amount and an ISO 4217 currency code. Never floats.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// An ISO 4217 currency code (three upper-case letters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
        let value = value.into();
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(value))
        } else {
            Err(DomainError::InvalidCurrency {
                value: value.chars().take(8).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Currency {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> String {
        value.0
    }
}

/// How a decimal number of points becomes whole points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Towards negative infinity: the member never gets a fraction they did not earn.
    #[default]
    Floor,
    Ceiling,
    /// 0.5 goes away from zero.
    HalfUp,
    /// 0.5 goes to the even neighbour (banker's rounding).
    HalfEven,
}

impl RoundingMode {
    /// Rounds to whole points; `None` if the value does not fit in an i64.
    pub fn to_points(self, value: Decimal) -> Option<crate::Points> {
        use rust_decimal::prelude::ToPrimitive;
        let strategy = match self {
            RoundingMode::Floor => RoundingStrategy::ToNegativeInfinity,
            RoundingMode::Ceiling => RoundingStrategy::ToPositiveInfinity,
            RoundingMode::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            RoundingMode::HalfEven => RoundingStrategy::MidpointNearestEven,
        };
        value
            .round_dp_with_strategy(0, strategy)
            .to_i64()
            .map(crate::Points::new)
    }
}

/// Where money becomes whole points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingScope {
    /// The purchase's exact points are rounded once, then shared out over its lines (largest
    /// fraction first), so five lines at 1.99 earn what 9.95 earns. Each line records the
    /// share it got as a `rounding` rule.
    #[default]
    Transaction,
    /// Every line is rounded on its own: simpler receipts, but a basket of small lines loses up
    /// to a point per line under `floor`.
    Line,
}

/// Canonical text of an amount (`4.50` and `4.5` are the same amount).
pub(crate) fn canonical(amount: Decimal) -> String {
    amount.normalize().to_string()
}
