//! What the engine answers: read-model views, audit pages and reports. All serialise to JSON
//! with points as integers, money as strings and positions as `"commit/prepare"` strings.

use chrono::{DateTime, Utc};
use loyalty_core::{
    Currency, MemberId, MemberStatus, Outcome, Points, PurchaseKey, RefundId, RefundScope,
    RewardId, StoreId, TransactionId,
};
use loyalty_store::Position;
use rust_decimal::Decimal;
use serde::Serialize;

/// Serialises a [`Position`] as `"commit/prepare"` (what [`parse_position`] reads back).
pub mod position_text {
    use loyalty_store::Position;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(position: &Position, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(position)
    }
}

/// Serialises an optional position like [`position_text`].
pub mod option_position_text {
    use loyalty_store::Position;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(position: &Option<Position>, s: S) -> Result<S::Ok, S::Error> {
        match position {
            Some(p) => s.collect_str(p),
            None => s.serialize_none(),
        }
    }
}

/// Reads a position as written by [`Position`]'s `Display` (`"12/12"`); a single integer `n`
/// is read as `n/n` (the embedded stores use the same number for both halves).
pub fn parse_position(text: &str) -> Option<Position> {
    let text = text.trim();
    match text.split_once('/') {
        Some((c, p)) => Some(Position::new(c.parse().ok()?, p.parse().ok()?)),
        None => {
            let n = text.parse().ok()?;
            Some(Position::new(n, n))
        }
    }
}

/// The result of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandResult {
    pub outcome: Outcome,
    /// The command was a retry of one already recorded: nothing new was written.
    pub replayed: bool,
    /// Position of the last event of the member's stream after the command (for a replay:
    /// at or after the original events). Pass it as `min_position` to read your write.
    #[serde(with = "position_text")]
    pub position: Position,
    pub member: MemberId,
    /// Revision of the member's stream after the command.
    pub stream_revision: u64,
}

/// A refund that names only the sale: the engine finds the member.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRequest {
    pub refund_id: RefundId,
    /// The store taking the return.
    pub store: StoreId,
    /// The store of the original sale (often the same).
    pub purchase_store: StoreId,
    pub transaction_id: TransactionId,
    pub occurred_at: DateTime<Utc>,
    pub currency: Currency,
    pub scope: RefundScope,
}

impl RefundRequest {
    /// The sale being returned.
    pub fn sale(&self) -> PurchaseKey {
        PurchaseKey::new(self.purchase_store.clone(), self.transaction_id.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextExpiryView {
    pub points: Points,
    pub at: DateTime<Utc>,
}

/// A member's balance as of an instant. Pending points are not spendable yet; points past their
/// expiry count as expired even before the scheduler recorded the expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceView {
    pub member_id: MemberId,
    pub as_of: DateTime<Utc>,
    pub available: Points,
    pub pending: Points,
    pub debt: Points,
    /// `available + pending - debt`.
    pub balance: Points,
    pub lifetime_earned: Points,
    pub redeemed: Points,
    pub expired: Points,
    pub clawed_back: Points,
    pub adjusted: Points,
    pub forfeited: Points,
    /// Clawbacks a `clamp` policy could not take (recorded, not part of the identity).
    pub shortfall: Points,
    pub next_expiry: Option<NextExpiryView>,
    /// Revision of the member's stream the view reflects.
    pub stream_revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierRefView {
    pub index: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextTierView {
    pub name: String,
    pub threshold: Decimal,
    /// What is still missing to reach it (money for spend, points for points earned).
    pub remaining: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierView {
    pub member_id: MemberId,
    pub as_of: DateTime<Utc>,
    pub current: TierRefView,
    pub since: Option<DateTime<Utc>>,
    /// `qualifying_spend` or `points_earned`.
    pub metric: &'static str,
    /// The qualifying value over the window `[window_start, as_of]`.
    pub qualifying_value: Decimal,
    pub window_start: DateTime<Utc>,
    /// `None` at the top tier.
    pub next: Option<NextTierView>,
    pub next_review_at: Option<DateTime<Utc>>,
    pub last_review_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileView {
    pub member_id: MemberId,
    pub status: MemberStatus,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub referrer: Option<MemberId>,
    pub balance: BalanceView,
    pub tier: TierView,
}

/// Where the next page of a history starts: the stream revision to continue below (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct HistoryCursor(pub u64);

/// One line of a member's statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementLine {
    pub revision: u64,
    #[serde(with = "position_text")]
    pub position: Position,
    pub event_type: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// Signed change of the balance this event made (0 for events that move no points).
    pub points: Points,
    pub description: String,
    /// The stored event document.
    pub data: serde_json::Value,
    /// The support note of an adjustment or a goodwill grant: its text, or `erased`.
    pub note: Option<crate::privacy::RevealedNote>,
}

/// A page of statement lines, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    pub member_id: MemberId,
    pub lines: Vec<StatementLine>,
    /// `None` when this page reaches the first event.
    pub next_cursor: Option<HistoryCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewardView {
    pub reward_id: RewardId,
    pub name: String,
    pub cost: Points,
    /// Times the member may still redeem it (`None`: no limit).
    pub remaining_uses: Option<u32>,
}

/// The whole program as of an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramTotals {
    pub as_of: DateTime<Utc>,
    #[serde(with = "position_text")]
    pub position: Position,
    /// Enrolled members (closed ones included).
    pub members: u64,
    pub active_members: u64,
    pub suspended_members: u64,
    pub closed_members: u64,
    /// Points the retailer owes: available plus pending.
    pub points_outstanding: Points,
    pub points_available: Points,
    pub points_pending: Points,
    pub debt: Points,
    pub point_value: Decimal,
    /// `points_outstanding x point_value`.
    pub liability: Decimal,
    pub currency: Currency,
    /// Points that expired (breakage), recorded or due.
    pub breakage_points: Points,
    pub breakage_value: Decimal,
    pub lifetime_earned: Points,
    pub redeemed: Points,
    pub clawed_back: Points,
    pub forfeited: Points,
}

/// One stored event for auditors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub stream: String,
    pub revision: u64,
    #[serde(with = "position_text")]
    pub position: Position,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// For `log`: pass as `after` to get the next page. `None` when the page was short.
    #[serde(with = "option_position_text")]
    pub next_after: Option<Position>,
    /// For `member_events`: pass as `from_revision` to get the next page.
    pub next_revision: Option<u64>,
}

/// A member as the log recorded them at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberSnapshot {
    pub member_id: MemberId,
    pub as_of: DateTime<Utc>,
    pub status: MemberStatus,
    pub balance: BalanceView,
    pub tier: TierView,
    /// Events of the member's stream recorded at or before `as_of`.
    pub events_applied: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiabilityReport {
    pub as_of: DateTime<Utc>,
    pub events_replayed: u64,
    pub totals: ProgramTotals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledFailure {
    pub member_id: MemberId,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ScheduledReport {
    pub members_due: u64,
    pub expiry_runs: u64,
    pub points_expired: Points,
    pub lots_expired: u64,
    /// Expiry notices recorded (`ExpiryNotified`, one per member naming the lots that expire
    /// within the program's notice period).
    pub expiry_notices: u64,
    pub tier_reviews: u64,
    pub tier_changes: u64,
    /// At most 100 failures are listed; `failures_total` counts them all.
    pub failures: Vec<ScheduledFailure>,
    pub failures_total: u64,
    /// Members left for the next run (over the batch limit).
    pub deferred: u64,
    /// Win-back bonuses granted (the rule runs once a day).
    pub win_backs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events_replayed: u64,
    #[serde(with = "position_text")]
    pub position: Position,
    pub members_checked: u64,
    /// Members that changed after the rebuild's position (not compared).
    pub members_skipped: u64,
    /// At most 100 differences are listed; `differences_total` counts them all.
    pub differences: Vec<String>,
    pub differences_total: u64,
    /// Events the projections could not read (each is also a difference).
    pub unreadable_events: u64,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.differences_total == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub events_replayed: u64,
    #[serde(with = "position_text")]
    pub position: Position,
    pub members: u64,
    pub unreadable_events: u64,
    pub totals: ProgramTotals,
}
