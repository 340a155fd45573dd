//! What a client is told. An outcome is derived from the decision's events only, so a replay
//! (same client id, same content) rebuilds exactly the original answer from the log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Event, LotDraw, LotExpiry, NotifiedLot, TierRef};
use crate::ids::{
    ActivityId, ActivityKind, AdjustmentId, ComplaintId, LotId, MemberId, PurchaseKey,
    RedemptionId, RefundId, RewardId, StoreId, TransactionId,
};
use crate::points::{self, Points};

/// The answer to a command, given alongside the events it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub events: Vec<Event>,
    pub outcome: Outcome,
    /// True when the command was a retry of one already processed: no new events.
    pub replayed: bool,
}

/// The lot an award created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotSummary {
    pub lot_id: LotId,
    pub points: Points,
    pub spendable_from: DateTime<Utc>,
    pub expiry: LotExpiry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Enrolled {
        member_id: MemberId,
        welcome_points: Points,
    },
    PurchaseRecorded {
        store: StoreId,
        transaction_id: TransactionId,
        points: Points,
        debt_repaid: Points,
        lot: Option<LotSummary>,
    },
    RefundRecorded {
        refund_id: RefundId,
        transaction_id: TransactionId,
        points_clawed_back: Points,
        debt_added: Points,
        shortfall: Points,
    },
    Redeemed {
        redemption_id: RedemptionId,
        reward_id: Option<RewardId>,
        points: Points,
        lots: Vec<LotDraw>,
    },
    RedemptionCancelled {
        redemption_id: RedemptionId,
        points_restored: Points,
        lots: Vec<LotDraw>,
    },
    Expired {
        points: Points,
        lots: Vec<LotDraw>,
    },
    /// The lots a notice announced (none: nothing was due for one), with their points.
    ExpiryNotified {
        points: Points,
        lots: Vec<NotifiedLot>,
    },
    ActivityRewarded {
        activity_id: ActivityId,
        kind: ActivityKind,
        points: Points,
    },
    /// The activity was past its limit; the refusal is recorded.
    ActivityRefused {
        activity_id: ActivityId,
        kind: ActivityKind,
        limit: u32,
        period: String,
    },
    Adjusted {
        adjustment_id: AdjustmentId,
        /// Signed points actually applied (a `clamp` policy may apply less than requested).
        points: Points,
        shortfall: Points,
    },
    GoodwillGranted {
        complaint_id: ComplaintId,
        points: Points,
    },
    ReferralBonusCredited {
        newcomer: MemberId,
        points: Points,
    },
    WinBackAwarded {
        points: Points,
    },
    BalanceOpened {
        balance_id: AdjustmentId,
        points: Points,
    },
    ReferralBonusRevoked {
        newcomer: MemberId,
        points_clawed_back: Points,
        debt_added: Points,
        shortfall: Points,
    },
    TierChanged {
        from: TierRef,
        to: TierRef,
    },
    TierUnchanged {
        tier: TierRef,
    },
    Suspended,
    Reinstated,
    Closed {
        forfeited: Points,
    },
    /// Nothing to do (suspending a suspended member, reinstating an active one).
    Unchanged,
}

/// The client id and fingerprint a primary event settles, with the outcome to report.
pub(crate) fn from_event(event: &Event) -> Option<(String, String, Outcome)> {
    let r = match event {
        Event::Enrolled(e) => (
            format!("enroll:{}", e.member_id),
            e.fingerprint.clone(),
            Outcome::Enrolled {
                member_id: e.member_id.clone(),
                welcome_points: e.welcome.as_ref().map_or(Points::ZERO, |c| c.points),
            },
        ),
        Event::PurchaseRecorded(e) => (
            crate::command::purchase_client_id(&PurchaseKey::new(
                e.store.clone(),
                e.transaction_id.clone(),
            )),
            e.fingerprint.clone(),
            Outcome::PurchaseRecorded {
                store: e.store.clone(),
                transaction_id: e.transaction_id.clone(),
                points: e.points,
                debt_repaid: e.credit.as_ref().map_or(Points::ZERO, |c| c.debt_repaid),
                lot: e.credit.as_ref().map(|c| LotSummary {
                    lot_id: c.lot_id.clone(),
                    points: c.lot_points(),
                    spendable_from: c.spendable_from,
                    expiry: c.expiry,
                }),
            },
        ),
        Event::RefundRecorded(e) => (
            format!("refund:{}", e.refund_id),
            e.fingerprint.clone(),
            Outcome::RefundRecorded {
                refund_id: e.refund_id.clone(),
                transaction_id: e.transaction_id.clone(),
                points_clawed_back: e.debit.taken(),
                debt_added: e.debit.debt_added,
                shortfall: e.debit.shortfall,
            },
        ),
        Event::PointsRedeemed(e) => (
            format!("redeem:{}", e.redemption_id),
            e.fingerprint.clone(),
            Outcome::Redeemed {
                redemption_id: e.redemption_id.clone(),
                reward_id: e.reward_id.clone(),
                points: e.points,
                lots: e.draws.clone(),
            },
        ),
        Event::RedemptionCancelled(e) => (
            format!("cancel:{}", e.redemption_id),
            e.fingerprint.clone(),
            Outcome::RedemptionCancelled {
                redemption_id: e.redemption_id.clone(),
                points_restored: points::sum(e.restored.iter().map(|d| d.points)),
                lots: e.restored.clone(),
            },
        ),
        Event::ActivityRewarded(e) => (
            format!("activity:{}", e.activity_id),
            e.fingerprint.clone(),
            Outcome::ActivityRewarded {
                activity_id: e.activity_id.clone(),
                kind: e.kind.clone(),
                points: e.credit.points,
            },
        ),
        Event::ActivityRefused(e) => (
            format!("activity:{}", e.activity_id),
            e.fingerprint.clone(),
            Outcome::ActivityRefused {
                activity_id: e.activity_id.clone(),
                kind: e.kind.clone(),
                limit: e.limit,
                period: e.period.clone(),
            },
        ),
        Event::PointsAdjusted(e) => {
            let (applied, shortfall) = match (&e.credit, &e.debit) {
                (Some(c), _) => (c.points, Points::ZERO),
                (None, Some(d)) => (d.taken().checked_neg().unwrap_or(Points::ZERO), d.shortfall),
                (None, None) => (Points::ZERO, Points::ZERO),
            };
            (
                format!("adjust:{}", e.adjustment_id),
                e.fingerprint.clone(),
                Outcome::Adjusted {
                    adjustment_id: e.adjustment_id.clone(),
                    points: applied,
                    shortfall,
                },
            )
        }
        Event::GoodwillGranted(e) => (
            format!("goodwill:{}", e.complaint_id),
            e.fingerprint.clone(),
            Outcome::GoodwillGranted {
                complaint_id: e.complaint_id.clone(),
                points: e.credit.points,
            },
        ),
        Event::BalanceOpened(e) => (
            format!("balance:{}", e.balance_id),
            e.fingerprint.clone(),
            Outcome::BalanceOpened {
                balance_id: e.balance_id.clone(),
                points: e.credit.points,
            },
        ),
        Event::WinBackAwarded(e) => (
            crate::command::win_back_client_id(e.occurred_at),
            e.fingerprint.clone(),
            Outcome::WinBackAwarded {
                points: e.credit.points,
            },
        ),
        Event::ReferralBonusCredited(e) => (
            format!("referral:{}", e.newcomer),
            e.fingerprint.clone(),
            Outcome::ReferralBonusCredited {
                newcomer: e.newcomer.clone(),
                points: e.credit.points,
            },
        ),
        Event::ReferralBonusRevoked(e) => (
            format!("referral-revoke:{}", e.newcomer),
            e.fingerprint.clone(),
            Outcome::ReferralBonusRevoked {
                newcomer: e.newcomer.clone(),
                points_clawed_back: e.debit.taken(),
                debt_added: e.debit.debt_added,
                shortfall: e.debit.shortfall,
            },
        ),
        Event::ReferralQualified(_)
        | Event::ReferralRevoked(_)
        | Event::TierChanged(_)
        | Event::PointsExpired(_)
        | Event::ExpiryNotified(_)
        | Event::MemberSuspended(_)
        | Event::MemberReinstated(_)
        | Event::AccountClosed(_) => return None,
    };
    Some(r)
}
