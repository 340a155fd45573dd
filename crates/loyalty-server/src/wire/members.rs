//! What member apps read: the profile (balance and tier progress), the statement, the rewards
//! the member can redeem now.
use chrono::{DateTime, Utc};
use loyalty_core::MemberId;
use loyalty_engine::{
    BalanceView, HistoryPage as EngineHistoryPage, NextExpiryView, NextTierView, ProfileView,
    RewardView, StatementLine as EngineStatementLine, TierRefView, TierView,
};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::dto::PositionText;

/// A member: status, balance and tier progress, from the read models (`GET
/// /v1/members/{member_id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberProfile {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub status: MemberStatus,
    /// When the member enrolled (business time); null if the read models do not know it.
    #[schema(required = true)]
    pub enrolled_at: Option<DateTime<Utc>>,
    /// The member who referred them; null when none did.
    #[schema(value_type = Option<crate::schema::Id>, required = true)]
    pub referrer: Option<String>,
    pub balance: MemberBalance,
    pub tier: MemberTier,
}

impl From<&ProfileView> for MemberProfile {
    fn from(p: &ProfileView) -> Self {
        Self {
            member_id: p.member_id.to_string(),
            status: MemberStatus::from(p.status),
            enrolled_at: p.enrolled_at,
            referrer: p.referrer.as_ref().map(ToString::to_string),
            balance: MemberBalance::from(&p.balance),
            tier: MemberTier::from(&p.tier),
        }
    }
}

/// Where a member's account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    NotEnrolled,
    Active,
    Suspended,
    Closed,
}

impl From<loyalty_core::MemberStatus> for MemberStatus {
    fn from(s: loyalty_core::MemberStatus) -> Self {
        match s {
            loyalty_core::MemberStatus::NotEnrolled => MemberStatus::NotEnrolled,
            loyalty_core::MemberStatus::Active => MemberStatus::Active,
            loyalty_core::MemberStatus::Suspended => MemberStatus::Suspended,
            loyalty_core::MemberStatus::Closed => MemberStatus::Closed,
        }
    }
}

/// A member's points as of an instant. Pending points are not spendable yet; points past their
/// expiry count as expired even before the scheduler recorded the expiry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberBalance {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The instant the balance is evaluated at.
    pub as_of: DateTime<Utc>,
    /// Points the member can spend now.
    pub available: i64,
    /// Points still in their return window.
    pub pending: i64,
    /// Points owed (clawbacks under the `allow` policy), repaid first by later earnings.
    pub debt: i64,
    /// `available + pending - debt`.
    pub balance: i64,
    pub lifetime_earned: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub clawed_back: i64,
    pub adjusted: i64,
    pub forfeited: i64,
    /// Clawbacks a `clamp` policy could not take (recorded, not part of the balance).
    pub shortfall: i64,
    /// The next points to expire; null when none will.
    #[schema(required = true)]
    pub next_expiry: Option<NextExpiry>,
    /// Revision of the member's stream the balance reflects.
    pub stream_revision: u64,
}

impl From<&BalanceView> for MemberBalance {
    fn from(b: &BalanceView) -> Self {
        Self {
            member_id: b.member_id.to_string(),
            as_of: b.as_of,
            available: b.available.value(),
            pending: b.pending.value(),
            debt: b.debt.value(),
            balance: b.balance.value(),
            lifetime_earned: b.lifetime_earned.value(),
            redeemed: b.redeemed.value(),
            expired: b.expired.value(),
            clawed_back: b.clawed_back.value(),
            adjusted: b.adjusted.value(),
            forfeited: b.forfeited.value(),
            shortfall: b.shortfall.value(),
            next_expiry: b.next_expiry.as_ref().map(NextExpiry::from),
            stream_revision: b.stream_revision,
        }
    }
}

/// Points that expire next, and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextExpiry {
    pub points: i64,
    pub at: DateTime<Utc>,
}

impl From<&NextExpiryView> for NextExpiry {
    fn from(n: &NextExpiryView) -> Self {
        Self {
            points: n.points.value(),
            at: n.at,
        }
    }
}

/// A member's tier and their progress towards the next one, as of an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberTier {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub as_of: DateTime<Utc>,
    pub current: TierRef,
    /// Since when the member holds the current tier; null if never changed.
    #[schema(required = true)]
    pub since: Option<DateTime<Utc>>,
    /// What tiers are earned by.
    #[schema(value_type = TierMetric)]
    pub metric: String,
    /// The qualifying value over the window `[window_start, as_of]`: money for
    /// `qualifying_spend`, points for `points_earned` (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("182.40"))]
    pub qualifying_value: Decimal,
    pub window_start: DateTime<Utc>,
    /// The next tier up; null at the top tier.
    #[schema(required = true)]
    pub next: Option<NextTier>,
    /// The next tier review; null when none is scheduled.
    #[schema(required = true)]
    pub next_review_at: Option<DateTime<Utc>>,
    /// The last tier review; null before the first.
    #[schema(required = true)]
    pub last_review_at: Option<DateTime<Utc>>,
}

impl From<&TierView> for MemberTier {
    fn from(t: &TierView) -> Self {
        Self {
            member_id: t.member_id.to_string(),
            as_of: t.as_of,
            current: TierRef::from(&t.current),
            since: t.since,
            metric: t.metric.to_owned(),
            qualifying_value: t.qualifying_value,
            window_start: t.window_start,
            next: t.next.as_ref().map(NextTier::from),
            next_review_at: t.next_review_at,
            last_review_at: t.last_review_at,
        }
    }
}

/// What a program's tiers are earned by (its `tiers.metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TierMetric {
    /// Money spent on eligible lines (refunds deducted).
    QualifyingSpend,
    /// Points earned.
    PointsEarned,
}

/// A tier, by position in the program's list (0 is the lowest) and by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierRef {
    pub index: u32,
    pub name: String,
}

impl From<&TierRefView> for TierRef {
    fn from(t: &TierRefView) -> Self {
        Self {
            index: t.index,
            name: t.name.clone(),
        }
    }
}

impl From<&loyalty_core::TierRef> for TierRef {
    fn from(t: &loyalty_core::TierRef) -> Self {
        Self {
            index: t.index,
            name: t.name.clone(),
        }
    }
}

/// The next tier up and what is still missing to reach it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextTier {
    pub name: String,
    /// The tier's threshold, in the program's metric (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("250.00"))]
    pub threshold: Decimal,
    /// What is still missing to reach it (money for spend, points for points earned), never
    /// negative (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("67.60"))]
    pub remaining: Decimal,
}

impl From<&NextTierView> for NextTier {
    fn from(n: &NextTierView) -> Self {
        Self {
            name: n.name.clone(),
            threshold: n.threshold,
            remaining: n.remaining,
        }
    }
}

/// A page of a member's statement, newest first (`GET /v1/members/{member_id}/history`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPage {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub lines: Vec<StatementLine>,
    /// Pass it as `?cursor=` for the next (older) page; null when this page reaches the first
    /// event.
    #[schema(required = true, minimum = 1)]
    pub next_cursor: Option<u64>,
}

impl From<&EngineHistoryPage> for HistoryPage {
    fn from(p: &EngineHistoryPage) -> Self {
        Self {
            member_id: p.member_id.to_string(),
            lines: p.lines.iter().map(StatementLine::from).collect(),
            next_cursor: p.next_cursor.map(|c| c.0),
        }
    }
}

/// One line of a member's statement: one event of their stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatementLine {
    /// The event's revision in the member's stream (from 0).
    pub revision: u64,
    /// The event's position in the log.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    /// The stored event's type (`PurchaseRecorded`...).
    pub event_type: String,
    /// Business time: when it happened at the till or in the app. (Never null: the engine
    /// fills it from every event it reads, though its type allows none.)
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Server time: when the ledger recorded it; null for events recorded without the engine's
    /// metadata.
    #[schema(required = true)]
    pub recorded_at: Option<DateTime<Utc>>,
    /// Signed change of the balance this event made (0 for events that move no points).
    pub points: i64,
    /// The line as a person reads it.
    pub description: String,
    /// The stored event document.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The event's support note, opened (`erased` once the member's personal data was
    /// erased); null for an event that carries none.
    #[schema(required = true)]
    pub note: Option<super::privacy::RevealedNote>,
}

impl From<&EngineStatementLine> for StatementLine {
    fn from(l: &EngineStatementLine) -> Self {
        Self {
            revision: l.revision,
            position: PositionText(l.position),
            event_type: l.event_type.clone(),
            occurred_at: l.occurred_at,
            recorded_at: l.recorded_at,
            points: l.points.value(),
            description: l.description.clone(),
            data: l.data.clone(),
            note: l.note.as_ref().map(super::privacy::RevealedNote::from),
        }
    }
}

/// The rewards a member can redeem now (`GET /v1/members/{member_id}/rewards`): active
/// member, available dates, minimum tier, enough points, uses left.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RewardsList {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub rewards: Vec<Reward>,
}

impl RewardsList {
    /// The answer for `member`, from the engine's `redeemable_rewards`.
    pub fn new(member: &MemberId, rewards: &[RewardView]) -> Self {
        Self {
            member_id: member.to_string(),
            rewards: rewards.iter().map(Reward::from).collect(),
        }
    }
}

/// A reward of the catalog the member can redeem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reward {
    #[schema(value_type = crate::schema::Id)]
    pub reward_id: String,
    pub name: String,
    /// Points it costs.
    pub cost: i64,
    /// Times the member may still redeem it; null: no limit.
    #[schema(required = true, minimum = 1)]
    pub remaining_uses: Option<u32>,
}

impl From<&RewardView> for Reward {
    fn from(r: &RewardView) -> Self {
        Self {
            reward_id: r.reward_id.to_string(),
            name: r.name.clone(),
            cost: r.cost.value(),
            remaining_uses: r.remaining_uses,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::wire::testkit::{self, assert_same_json, assert_same_json_value, assert_valid};

    #[tokio::test]
    async fn profiles_serialise_as_the_engine_views_did() {
        let world = testkit::world().await;
        for member in [&world.member, &world.referrer, &world.newcomer] {
            let profile = world.engine.member_profile(member).unwrap();
            let wire = MemberProfile::from(&profile);
            assert_same_json(&wire, &profile);
            assert_valid::<MemberProfile>(&wire);
        }
        let profile = world.engine.member_profile(&world.member).unwrap();
        // The member has points pending and a next tier: no field of the sample is null
        // except those that are null for every new member.
        assert!(profile.balance.next_expiry.is_some());
        assert!(profile.tier.next.is_some());
    }

    #[tokio::test]
    async fn history_pages_serialise_as_the_engine_pages_did() {
        let world = testkit::world().await;
        let first = world.engine.history(&world.member, None, 3).await.unwrap();
        assert!(first.next_cursor.is_some());
        let last = world
            .engine
            .history(&world.member, first.next_cursor, 1000)
            .await
            .unwrap();
        assert!(last.next_cursor.is_none());
        for page in [&first, &last] {
            let wire = HistoryPage::from(page);
            assert_same_json(&wire, page);
            assert_valid::<HistoryPage>(&wire);
        }
    }

    #[tokio::test]
    async fn the_rewards_list_serialises_as_the_handler_did() {
        let world = testkit::world().await;
        let rewards = world.engine.redeemable_rewards(&world.member);
        assert!(rewards.iter().any(|r| r.remaining_uses.is_some()));
        assert!(rewards.iter().any(|r| r.remaining_uses.is_none()));
        let wire = RewardsList::new(&world.member, &rewards);
        assert_same_json_value(
            &wire,
            &json!({ "member_id": world.member, "rewards": rewards }),
        );
        assert_valid::<RewardsList>(&wire);
    }

    #[test]
    fn tier_metrics_are_the_names_the_program_uses() {
        use loyalty_core::program::QualifyingMetric;
        // The program reads these names from `tiers.metric`; the engine writes them back.
        for (wire, core) in [
            (
                TierMetric::QualifyingSpend,
                QualifyingMetric::QualifyingSpend,
            ),
            (TierMetric::PointsEarned, QualifyingMetric::PointsEarned),
        ] {
            let name = serde_json::to_value(wire).unwrap();
            assert_eq!(
                serde_json::from_value::<QualifyingMetric>(name).unwrap(),
                core
            );
        }
    }
}
