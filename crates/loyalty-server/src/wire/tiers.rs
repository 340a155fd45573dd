//! The tier distribution (`GET /v1/analytics/tiers`): how many members hold each tier now, and
//! in which month each of them reached the tier they hold, from the read models.
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::analytics::Period;

/// The members of each tier now, and the months they reached it in.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierReport {
    /// The read models' now (the server's clock).
    pub as_of: DateTime<Utc>,
    /// Members counted: enrolled and not closed.
    pub members: u64,
    /// Every tier of the program, lowest first, with the members holding it now (empty tiers
    /// included); a tier a member holds that the program no longer lists comes last.
    pub tiers: Vec<TierCount>,
    /// The last `months` calendar months of the program's timezone, oldest first (the last
    /// one is in progress): per tier, the members who reached the tier they hold now in that
    /// month, by a tier change (not by enrolling). The read models keep each member's latest
    /// change only, so a member who changed tier twice counts once, in the month of the
    /// latest change.
    pub months: Vec<TierMonth>,
}

/// A tier and a number of members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TierCount {
    /// The tier's position in the program's list (0 is the lowest).
    pub index: u32,
    pub name: String,
    pub members: u64,
}

/// One month's tier changes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierMonth {
    pub period: Period,
    /// Members who reached each tier in this month and hold it now, in `tiers` order.
    pub reached: Vec<TierCount>,
}
