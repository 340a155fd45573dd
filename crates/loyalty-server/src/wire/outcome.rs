//! The answer to a command: where it landed in the log and what it did (`outcome`).
use chrono::{DateTime, Utc};
use loyalty_core::Outcome;
use loyalty_engine::CommandResult;
use serde::Serialize;
use utoipa::ToSchema;

use super::members::TierRef;
use crate::dto::PositionText;

/// The answer to a command (`200`, for a first run and for a replay alike).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandResponse {
    /// The member the command was about.
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// True when the request repeated one already recorded (same client id and content): the
    /// original outcome is answered and nothing new was written (header
    /// `Idempotent-Replayed: true`).
    pub replayed: bool,
    /// The log position the command reached. Pass it as `?min_position=` to a read to see
    /// this write.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    /// Revision of the member's stream after the command.
    pub stream_revision: u64,
    pub outcome: CommandOutcome,
}

impl From<&CommandResult> for CommandResponse {
    fn from(r: &CommandResult) -> Self {
        Self {
            member_id: r.member.to_string(),
            replayed: r.replayed,
            position: PositionText(r.position),
            stream_revision: r.stream_revision,
            outcome: CommandOutcome::from(&r.outcome),
        }
    }
}

impl From<CommandResult> for CommandResponse {
    fn from(r: CommandResult) -> Self {
        Self::from(&r)
    }
}

/// What a command did, told by the `outcome` property.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(
    property_name = "outcome",
    mapping(
        ("enrolled" = "#/components/schemas/EnrolledOutcome"),
        ("purchase_recorded" = "#/components/schemas/PurchaseRecordedOutcome"),
        ("refund_recorded" = "#/components/schemas/RefundRecordedOutcome"),
        ("redeemed" = "#/components/schemas/RedeemedOutcome"),
        ("redemption_cancelled" = "#/components/schemas/RedemptionCancelledOutcome"),
        ("expired" = "#/components/schemas/ExpiredOutcome"),
        ("expiry_notified" = "#/components/schemas/ExpiryNotifiedOutcome"),
        ("activity_rewarded" = "#/components/schemas/ActivityRewardedOutcome"),
        ("activity_refused" = "#/components/schemas/ActivityRefusedOutcome"),
        ("adjusted" = "#/components/schemas/AdjustedOutcome"),
        ("goodwill_granted" = "#/components/schemas/GoodwillGrantedOutcome"),
        ("referral_bonus_credited" = "#/components/schemas/ReferralBonusCreditedOutcome"),
        ("win_back_awarded" = "#/components/schemas/WinBackAwardedOutcome"),
        ("balance_opened" = "#/components/schemas/BalanceOpenedOutcome"),
        ("referral_bonus_revoked" = "#/components/schemas/ReferralBonusRevokedOutcome"),
        ("tier_changed" = "#/components/schemas/TierChangedOutcome"),
        ("tier_unchanged" = "#/components/schemas/TierUnchangedOutcome"),
        ("suspended" = "#/components/schemas/SuspendedOutcome"),
        ("reinstated" = "#/components/schemas/ReinstatedOutcome"),
        ("closed" = "#/components/schemas/ClosedOutcome"),
        ("unchanged" = "#/components/schemas/UnchangedOutcome"),
    )
))]
pub enum CommandOutcome {
    Enrolled(EnrolledOutcome),
    PurchaseRecorded(PurchaseRecordedOutcome),
    RefundRecorded(RefundRecordedOutcome),
    Redeemed(RedeemedOutcome),
    RedemptionCancelled(RedemptionCancelledOutcome),
    Expired(ExpiredOutcome),
    ExpiryNotified(ExpiryNotifiedOutcome),
    ActivityRewarded(ActivityRewardedOutcome),
    ActivityRefused(ActivityRefusedOutcome),
    Adjusted(AdjustedOutcome),
    GoodwillGranted(GoodwillGrantedOutcome),
    ReferralBonusCredited(ReferralBonusCreditedOutcome),
    WinBackAwarded(WinBackAwardedOutcome),
    BalanceOpened(BalanceOpenedOutcome),
    ReferralBonusRevoked(ReferralBonusRevokedOutcome),
    TierChanged(TierChangedOutcome),
    TierUnchanged(TierUnchangedOutcome),
    Suspended(SuspendedOutcome),
    Reinstated(ReinstatedOutcome),
    Closed(ClosedOutcome),
    Unchanged(UnchangedOutcome),
}

/// The value of `outcome` in one variant: a string with a single allowed value.
macro_rules! outcome_tag {
    ($name:ident = $value:tt) => {
        #[doc = concat!("Always `\"", $value, "\"`.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
        pub enum $name {
            #[default]
            #[serde(rename = $value)]
            Tag,
        }
    };
}

outcome_tag!(EnrolledTag = "enrolled");
outcome_tag!(PurchaseRecordedTag = "purchase_recorded");
outcome_tag!(RefundRecordedTag = "refund_recorded");
outcome_tag!(RedeemedTag = "redeemed");
outcome_tag!(RedemptionCancelledTag = "redemption_cancelled");
outcome_tag!(ExpiredTag = "expired");
outcome_tag!(ExpiryNotifiedTag = "expiry_notified");
outcome_tag!(ActivityRewardedTag = "activity_rewarded");
outcome_tag!(ActivityRefusedTag = "activity_refused");
outcome_tag!(AdjustedTag = "adjusted");
outcome_tag!(GoodwillGrantedTag = "goodwill_granted");
outcome_tag!(ReferralBonusCreditedTag = "referral_bonus_credited");
outcome_tag!(WinBackAwardedTag = "win_back_awarded");
outcome_tag!(BalanceOpenedTag = "balance_opened");
outcome_tag!(ReferralBonusRevokedTag = "referral_bonus_revoked");
outcome_tag!(TierChangedTag = "tier_changed");
outcome_tag!(TierUnchangedTag = "tier_unchanged");
outcome_tag!(SuspendedTag = "suspended");
outcome_tag!(ReinstatedTag = "reinstated");
outcome_tag!(ClosedTag = "closed");
outcome_tag!(UnchangedTag = "unchanged");

/// The member was enrolled.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrolledOutcome {
    #[schema(inline)]
    pub outcome: EnrolledTag,
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// Welcome points credited (0 when the program gives none).
    pub welcome_points: i64,
}

/// The purchase was recorded and earned points.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PurchaseRecordedOutcome {
    #[schema(inline)]
    pub outcome: PurchaseRecordedTag,
    #[schema(value_type = crate::schema::Id)]
    pub store: String,
    #[schema(value_type = crate::schema::Id)]
    pub transaction_id: String,
    /// Points the purchase earned (before repaying any debt).
    pub points: i64,
    /// Part of `points` that repaid a debt first.
    pub debt_repaid: i64,
    /// The lot the points went into; null when none was created (no points, or all of them
    /// repaid a debt).
    #[schema(required = true)]
    pub lot: Option<LotSummary>,
}

/// The refund was recorded and took points back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundRecordedOutcome {
    #[schema(inline)]
    pub outcome: RefundRecordedTag,
    #[schema(value_type = crate::schema::Id)]
    pub refund_id: String,
    #[schema(value_type = crate::schema::Id)]
    pub transaction_id: String,
    /// Points taken back (from lots and as debt).
    pub points_clawed_back: i64,
    /// Part of the clawback recorded as a debt (`allow` policy).
    pub debt_added: i64,
    /// Points a `clamp` policy could not take back.
    pub shortfall: i64,
}

/// Points were redeemed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedeemedOutcome {
    #[schema(inline)]
    pub outcome: RedeemedTag,
    #[schema(value_type = crate::schema::Id)]
    pub redemption_id: String,
    /// The reward redeemed; null for a redemption of points.
    #[schema(value_type = Option<crate::schema::Id>, required = true)]
    pub reward_id: Option<String>,
    pub points: i64,
    /// The lots the points were taken from, soonest-expiring first.
    pub lots: Vec<LotDraw>,
}

/// The redemption was cancelled and its points given back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedemptionCancelledOutcome {
    #[schema(inline)]
    pub outcome: RedemptionCancelledTag,
    #[schema(value_type = crate::schema::Id)]
    pub redemption_id: String,
    pub points_restored: i64,
    /// The lots given back exactly what the redemption took.
    pub lots: Vec<LotDraw>,
}

/// Points expired.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExpiredOutcome {
    #[schema(inline)]
    pub outcome: ExpiredTag,
    pub points: i64,
    pub lots: Vec<LotDraw>,
}

/// The lots a notice announced (the scheduler's `points.expiring`), with what they hold.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExpiryNotifiedOutcome {
    #[schema(inline)]
    pub outcome: ExpiryNotifiedTag,
    pub points: i64,
    pub lots: Vec<NotifiedLot>,
}

/// A lot a notice announced: what it holds and when it expires.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotifiedLot {
    #[schema(value_type = crate::schema::Id)]
    pub lot_id: String,
    pub points: i64,
    pub expires_at: DateTime<Utc>,
}

/// The activity earned points.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityRewardedOutcome {
    #[schema(inline)]
    pub outcome: ActivityRewardedTag,
    #[schema(value_type = crate::schema::Id)]
    pub activity_id: String,
    /// The kind of activity (`survey_answered`...).
    #[schema(value_type = crate::schema::Id)]
    pub kind: String,
    pub points: i64,
}

/// The activity was past its limit: the refusal is recorded, no points.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityRefusedOutcome {
    #[schema(inline)]
    pub outcome: ActivityRefusedTag,
    #[schema(value_type = crate::schema::Id)]
    pub activity_id: String,
    #[schema(value_type = crate::schema::Id)]
    pub kind: String,
    /// Times the activity earns points per period.
    pub limit: u32,
    /// The limit's period (`once`, `day`, `week`, `month`, `year`).
    pub period: String,
}

/// An operator's adjustment was applied.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdjustedOutcome {
    #[schema(inline)]
    pub outcome: AdjustedTag,
    #[schema(value_type = crate::schema::Id)]
    pub adjustment_id: String,
    /// Signed points actually applied (a `clamp` policy may apply less than requested).
    pub points: i64,
    /// Points a `clamp` policy could not take.
    pub shortfall: i64,
}

/// Goodwill points were granted for the complaint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GoodwillGrantedOutcome {
    #[schema(inline)]
    pub outcome: GoodwillGrantedTag,
    #[schema(value_type = crate::schema::Id)]
    pub complaint_id: String,
    pub points: i64,
}

/// The referrer was credited for a newcomer's qualifying purchase.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReferralBonusCreditedOutcome {
    #[schema(inline)]
    pub outcome: ReferralBonusCreditedTag,
    #[schema(value_type = crate::schema::Id)]
    pub newcomer: String,
    pub points: i64,
}

/// A win-back bonus was awarded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WinBackAwardedOutcome {
    #[schema(inline)]
    pub outcome: WinBackAwardedTag,
    pub points: i64,
}

/// An opening balance (imported history) was credited.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceOpenedOutcome {
    #[schema(inline)]
    pub outcome: BalanceOpenedTag,
    #[schema(value_type = crate::schema::Id)]
    pub balance_id: String,
    pub points: i64,
}

/// The referrer's bonus was taken back (the newcomer's qualifying purchase was refunded).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReferralBonusRevokedOutcome {
    #[schema(inline)]
    pub outcome: ReferralBonusRevokedTag,
    #[schema(value_type = crate::schema::Id)]
    pub newcomer: String,
    pub points_clawed_back: i64,
    pub debt_added: i64,
    pub shortfall: i64,
}

/// A tier review moved the member to another tier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierChangedOutcome {
    #[schema(inline)]
    pub outcome: TierChangedTag,
    pub from: TierRef,
    pub to: TierRef,
}

/// A tier review kept the member's tier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TierUnchangedOutcome {
    #[schema(inline)]
    pub outcome: TierUnchangedTag,
    pub tier: TierRef,
}

/// The member was suspended.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuspendedOutcome {
    #[schema(inline)]
    pub outcome: SuspendedTag,
}

/// The member was reinstated.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReinstatedOutcome {
    #[schema(inline)]
    pub outcome: ReinstatedTag,
}

/// The account was closed; its points were forfeited.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClosedOutcome {
    #[schema(inline)]
    pub outcome: ClosedTag,
    pub forfeited: i64,
}

/// Nothing to do (suspending a suspended member, reinstating an active one).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnchangedOutcome {
    #[schema(inline)]
    pub outcome: UnchangedTag,
}

/// The lot an award created.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotSummary {
    #[schema(value_type = crate::schema::Id)]
    pub lot_id: String,
    /// Points that went into the lot (the award less any debt it repaid).
    pub points: i64,
    /// When the points become spendable (after the return window for purchases).
    pub spendable_from: DateTime<Utc>,
    pub expiry: LotExpiry,
}

impl From<&loyalty_core::LotSummary> for LotSummary {
    fn from(l: &loyalty_core::LotSummary) -> Self {
        Self {
            lot_id: l.lot_id.to_string(),
            points: l.points.value(),
            spendable_from: l.spendable_from,
            expiry: LotExpiry::from(l.expiry),
        }
    }
}

/// When a lot's points expire, told by `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum LotExpiry {
    /// The points expire at the instant `at`.
    At(DateTime<Utc>),
    /// The points expire with every other point, once the member has been inactive long
    /// enough.
    OnInactivity,
    /// The points never expire.
    Never,
}

impl From<loyalty_core::LotExpiry> for LotExpiry {
    fn from(e: loyalty_core::LotExpiry) -> Self {
        match e {
            loyalty_core::LotExpiry::At(at) => LotExpiry::At(at),
            loyalty_core::LotExpiry::OnInactivity => LotExpiry::OnInactivity,
            loyalty_core::LotExpiry::Never => LotExpiry::Never,
        }
    }
}

/// Points taken from one lot (by a redemption, clawback, expiry) or given back to it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotDraw {
    #[schema(value_type = crate::schema::Id)]
    pub lot_id: String,
    pub points: i64,
}

impl From<&loyalty_core::LotDraw> for LotDraw {
    fn from(d: &loyalty_core::LotDraw) -> Self {
        Self {
            lot_id: d.lot_id.to_string(),
            points: d.points.value(),
        }
    }
}

fn draws(lots: &[loyalty_core::LotDraw]) -> Vec<LotDraw> {
    lots.iter().map(LotDraw::from).collect()
}

impl From<&Outcome> for CommandOutcome {
    fn from(o: &Outcome) -> Self {
        match o {
            Outcome::Enrolled {
                member_id,
                welcome_points,
            } => CommandOutcome::Enrolled(EnrolledOutcome {
                outcome: EnrolledTag::Tag,
                member_id: member_id.to_string(),
                welcome_points: welcome_points.value(),
            }),
            Outcome::PurchaseRecorded {
                store,
                transaction_id,
                points,
                debt_repaid,
                lot,
            } => CommandOutcome::PurchaseRecorded(PurchaseRecordedOutcome {
                outcome: PurchaseRecordedTag::Tag,
                store: store.to_string(),
                transaction_id: transaction_id.to_string(),
                points: points.value(),
                debt_repaid: debt_repaid.value(),
                lot: lot.as_ref().map(LotSummary::from),
            }),
            Outcome::RefundRecorded {
                refund_id,
                transaction_id,
                points_clawed_back,
                debt_added,
                shortfall,
            } => CommandOutcome::RefundRecorded(RefundRecordedOutcome {
                outcome: RefundRecordedTag::Tag,
                refund_id: refund_id.to_string(),
                transaction_id: transaction_id.to_string(),
                points_clawed_back: points_clawed_back.value(),
                debt_added: debt_added.value(),
                shortfall: shortfall.value(),
            }),
            Outcome::Redeemed {
                redemption_id,
                reward_id,
                points,
                lots,
            } => CommandOutcome::Redeemed(RedeemedOutcome {
                outcome: RedeemedTag::Tag,
                redemption_id: redemption_id.to_string(),
                reward_id: reward_id.as_ref().map(ToString::to_string),
                points: points.value(),
                lots: draws(lots),
            }),
            Outcome::RedemptionCancelled {
                redemption_id,
                points_restored,
                lots,
            } => CommandOutcome::RedemptionCancelled(RedemptionCancelledOutcome {
                outcome: RedemptionCancelledTag::Tag,
                redemption_id: redemption_id.to_string(),
                points_restored: points_restored.value(),
                lots: draws(lots),
            }),
            Outcome::Expired { points, lots } => CommandOutcome::Expired(ExpiredOutcome {
                outcome: ExpiredTag::Tag,
                points: points.value(),
                lots: draws(lots),
            }),
            Outcome::ExpiryNotified { points, lots } => {
                CommandOutcome::ExpiryNotified(ExpiryNotifiedOutcome {
                    outcome: ExpiryNotifiedTag::Tag,
                    points: points.value(),
                    lots: lots
                        .iter()
                        .map(|l| NotifiedLot {
                            lot_id: l.lot_id.to_string(),
                            points: l.points.value(),
                            expires_at: l.expires_at,
                        })
                        .collect(),
                })
            }
            Outcome::ActivityRewarded {
                activity_id,
                kind,
                points,
            } => CommandOutcome::ActivityRewarded(ActivityRewardedOutcome {
                outcome: ActivityRewardedTag::Tag,
                activity_id: activity_id.to_string(),
                kind: kind.to_string(),
                points: points.value(),
            }),
            Outcome::ActivityRefused {
                activity_id,
                kind,
                limit,
                period,
            } => CommandOutcome::ActivityRefused(ActivityRefusedOutcome {
                outcome: ActivityRefusedTag::Tag,
                activity_id: activity_id.to_string(),
                kind: kind.to_string(),
                limit: *limit,
                period: period.clone(),
            }),
            Outcome::Adjusted {
                adjustment_id,
                points,
                shortfall,
            } => CommandOutcome::Adjusted(AdjustedOutcome {
                outcome: AdjustedTag::Tag,
                adjustment_id: adjustment_id.to_string(),
                points: points.value(),
                shortfall: shortfall.value(),
            }),
            Outcome::GoodwillGranted {
                complaint_id,
                points,
            } => CommandOutcome::GoodwillGranted(GoodwillGrantedOutcome {
                outcome: GoodwillGrantedTag::Tag,
                complaint_id: complaint_id.to_string(),
                points: points.value(),
            }),
            Outcome::ReferralBonusCredited { newcomer, points } => {
                CommandOutcome::ReferralBonusCredited(ReferralBonusCreditedOutcome {
                    outcome: ReferralBonusCreditedTag::Tag,
                    newcomer: newcomer.to_string(),
                    points: points.value(),
                })
            }
            Outcome::WinBackAwarded { points } => {
                CommandOutcome::WinBackAwarded(WinBackAwardedOutcome {
                    outcome: WinBackAwardedTag::Tag,
                    points: points.value(),
                })
            }
            Outcome::BalanceOpened { balance_id, points } => {
                CommandOutcome::BalanceOpened(BalanceOpenedOutcome {
                    outcome: BalanceOpenedTag::Tag,
                    balance_id: balance_id.to_string(),
                    points: points.value(),
                })
            }
            Outcome::ReferralBonusRevoked {
                newcomer,
                points_clawed_back,
                debt_added,
                shortfall,
            } => CommandOutcome::ReferralBonusRevoked(ReferralBonusRevokedOutcome {
                outcome: ReferralBonusRevokedTag::Tag,
                newcomer: newcomer.to_string(),
                points_clawed_back: points_clawed_back.value(),
                debt_added: debt_added.value(),
                shortfall: shortfall.value(),
            }),
            Outcome::TierChanged { from, to } => CommandOutcome::TierChanged(TierChangedOutcome {
                outcome: TierChangedTag::Tag,
                from: TierRef::from(from),
                to: TierRef::from(to),
            }),
            Outcome::TierUnchanged { tier } => {
                CommandOutcome::TierUnchanged(TierUnchangedOutcome {
                    outcome: TierUnchangedTag::Tag,
                    tier: TierRef::from(tier),
                })
            }
            Outcome::Suspended => CommandOutcome::Suspended(SuspendedOutcome {
                outcome: SuspendedTag::Tag,
            }),
            Outcome::Reinstated => CommandOutcome::Reinstated(ReinstatedOutcome {
                outcome: ReinstatedTag::Tag,
            }),
            Outcome::Closed { forfeited } => CommandOutcome::Closed(ClosedOutcome {
                outcome: ClosedTag::Tag,
                forfeited: forfeited.value(),
            }),
            Outcome::Unchanged => CommandOutcome::Unchanged(UnchangedOutcome {
                outcome: UnchangedTag::Tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use loyalty_core::{
        ActivityId, ActivityKind, AdjustmentId, ComplaintId, LotId, MemberId, Points, RedemptionId,
        RefundId, RewardId, StoreId, TransactionId,
    };

    use super::*;
    use crate::wire::testkit::{self, assert_same_json};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 16, 10, 0, 0)
            .single()
            .unwrap()
    }

    fn draw(lot: &str, points: i64) -> loyalty_core::LotDraw {
        loyalty_core::LotDraw {
            lot_id: LotId::parse(lot).unwrap(),
            points: Points::new(points),
        }
    }

    fn tier(index: u32, name: &str) -> loyalty_core::TierRef {
        loyalty_core::TierRef {
            index,
            name: name.into(),
        }
    }

    /// Every variant of the core's outcome, each expiry kind and a lot or none.
    fn every_outcome() -> Vec<Outcome> {
        let p = Points::new;
        let lot = |expiry| loyalty_core::LotSummary {
            lot_id: LotId::parse("purchase:store-1:T1").unwrap(),
            points: p(12),
            spendable_from: at(),
            expiry,
        };
        vec![
            Outcome::Enrolled {
                member_id: MemberId::parse("m-1").unwrap(),
                welcome_points: p(50),
            },
            Outcome::PurchaseRecorded {
                store: StoreId::parse("store-1").unwrap(),
                transaction_id: TransactionId::parse("T1").unwrap(),
                points: p(12),
                debt_repaid: p(0),
                lot: Some(lot(loyalty_core::LotExpiry::At(at()))),
            },
            Outcome::PurchaseRecorded {
                store: StoreId::parse("store-1").unwrap(),
                transaction_id: TransactionId::parse("T2").unwrap(),
                points: p(3),
                debt_repaid: p(3),
                lot: None,
            },
            Outcome::PurchaseRecorded {
                store: StoreId::parse("store-1").unwrap(),
                transaction_id: TransactionId::parse("T3").unwrap(),
                points: p(12),
                debt_repaid: p(0),
                lot: Some(lot(loyalty_core::LotExpiry::OnInactivity)),
            },
            Outcome::PurchaseRecorded {
                store: StoreId::parse("store-1").unwrap(),
                transaction_id: TransactionId::parse("T4").unwrap(),
                points: p(12),
                debt_repaid: p(0),
                lot: Some(lot(loyalty_core::LotExpiry::Never)),
            },
            Outcome::RefundRecorded {
                refund_id: RefundId::parse("R1").unwrap(),
                transaction_id: TransactionId::parse("T1").unwrap(),
                points_clawed_back: p(6),
                debt_added: p(1),
                shortfall: p(0),
            },
            Outcome::Redeemed {
                redemption_id: RedemptionId::parse("rd-1").unwrap(),
                reward_id: Some(RewardId::parse("free-espresso").unwrap()),
                points: p(60),
                lots: vec![draw("welcome:m-1", 50), draw("purchase:T1", 10)],
            },
            Outcome::Redeemed {
                redemption_id: RedemptionId::parse("rd-2").unwrap(),
                reward_id: None,
                points: p(5),
                lots: vec![draw("welcome:m-1", 5)],
            },
            Outcome::RedemptionCancelled {
                redemption_id: RedemptionId::parse("rd-1").unwrap(),
                points_restored: p(60),
                lots: vec![draw("welcome:m-1", 50), draw("purchase:T1", 10)],
            },
            Outcome::Expired {
                points: p(7),
                lots: vec![draw("purchase:T1", 7)],
            },
            Outcome::ExpiryNotified {
                points: p(12),
                lots: vec![loyalty_core::NotifiedLot {
                    lot_id: LotId::parse("purchase:T1").unwrap(),
                    points: p(12),
                    expires_at: at(),
                }],
            },
            Outcome::ActivityRewarded {
                activity_id: ActivityId::parse("a-1").unwrap(),
                kind: ActivityKind::parse("survey_answered").unwrap(),
                points: p(25),
            },
            Outcome::ActivityRefused {
                activity_id: ActivityId::parse("a-2").unwrap(),
                kind: ActivityKind::parse("survey_answered").unwrap(),
                limit: 1,
                period: "month".into(),
            },
            Outcome::Adjusted {
                adjustment_id: AdjustmentId::parse("adj-1").unwrap(),
                points: p(-40),
                shortfall: p(2),
            },
            Outcome::GoodwillGranted {
                complaint_id: ComplaintId::parse("c-1").unwrap(),
                points: p(100),
            },
            Outcome::ReferralBonusCredited {
                newcomer: MemberId::parse("m-2").unwrap(),
                points: p(200),
            },
            Outcome::WinBackAwarded { points: p(75) },
            Outcome::BalanceOpened {
                balance_id: AdjustmentId::parse("legacy-1:3").unwrap(),
                points: p(420),
            },
            Outcome::ReferralBonusRevoked {
                newcomer: MemberId::parse("m-2").unwrap(),
                points_clawed_back: p(200),
                debt_added: p(50),
                shortfall: p(0),
            },
            Outcome::TierChanged {
                from: tier(0, "Bronze"),
                to: tier(1, "Silver"),
            },
            Outcome::TierUnchanged {
                tier: tier(2, "Gold"),
            },
            Outcome::Suspended,
            Outcome::Reinstated,
            Outcome::Closed { forfeited: p(310) },
            Outcome::Unchanged,
        ]
    }

    #[test]
    fn every_outcome_serialises_as_the_core_outcome_does() {
        for outcome in every_outcome() {
            let wire = CommandOutcome::from(&outcome);
            assert_same_json(&wire, &outcome);
            // The tag comes first, as serde writes an internally tagged enum.
            let text = serde_json::to_string(&wire).unwrap();
            assert!(text.starts_with(r#"{"outcome":"#), "{text}");
        }
    }

    #[tokio::test]
    async fn command_answers_from_the_engine_serialise_as_the_handlers_did() {
        let world = testkit::world().await;
        assert!(world.results.len() >= 8);
        for result in &world.results {
            let wire = CommandResponse::from(result);
            assert_eq!(
                serde_json::to_string(&wire).unwrap(),
                testkit::legacy_command_response(result)
            );
            testkit::assert_valid::<CommandResponse>(&wire);
        }
    }
}
