//! Points: whole numbers only, with checked arithmetic so a corrupt input cannot wrap around.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A signed number of points. Balances are derived from lots, so a negative value only appears
/// as a delta (a clawback, a negative adjustment) or as a debt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Points(i64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub const fn new(value: i64) -> Self {
        Points(value)
    }

    pub const fn value(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Points) -> Option<Points> {
        self.0.checked_add(other.0).map(Points)
    }

    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.0.checked_sub(other.0).map(Points)
    }

    pub fn checked_neg(self) -> Option<Points> {
        self.0.checked_neg().map(Points)
    }

    /// Addition for totals whose inputs were validated against program limits: saturates
    /// instead of panicking, because a reporting total must never bring the process down.
    pub fn saturating_add(self, other: Points) -> Points {
        Points(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Points) -> Points {
        Points(self.0.saturating_sub(other.0))
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn min(self, other: Points) -> Points {
        Points(self.0.min(other.0))
    }

    pub fn max(self, other: Points) -> Points {
        Points(self.0.max(other.0))
    }

    pub fn abs(self) -> Points {
        Points(self.0.saturating_abs())
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<i64> for Points {
    fn from(value: i64) -> Self {
        Points(value)
    }
}

/// Sums points, saturating (see [`Points::saturating_add`]).
pub fn sum<I: IntoIterator<Item = Points>>(items: I) -> Points {
    items.into_iter().fold(Points::ZERO, Points::saturating_add)
}
