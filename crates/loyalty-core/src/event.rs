//! Events: what happened, in the past tense. Each records the decision in full (points per line
//! and per rule, lots and points taken from each, the rules version), so replaying history never
//! runs a rule again: changing the program tomorrow cannot change yesterday.
//!
//! This enum is the domain's view; the stored form lives in [`crate::schema`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::command::RevocationReason;
use crate::ids::{
    ActivityId, ActivityKind, AdjustmentId, CampaignId, CategoryId, ComplaintId, LotId, MemberId,
    OperatorId, ReasonCode, RedemptionId, RefundId, RewardId, Sku, StoreId, TerminalId,
    TransactionId,
};
use crate::money::Currency;
use crate::points::Points;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Enrolled(Enrolled),
    PurchaseRecorded(PurchaseRecorded),
    ReferralQualified(ReferralQualified),
    TierChanged(TierChanged),
    RefundRecorded(RefundRecorded),
    PointsRedeemed(PointsRedeemed),
    RedemptionCancelled(RedemptionCancelled),
    PointsExpired(PointsExpired),
    ActivityRewarded(ActivityRewarded),
    ActivityRefused(ActivityRefused),
    PointsAdjusted(PointsAdjusted),
    GoodwillGranted(GoodwillGranted),
    ReferralBonusCredited(ReferralBonusCredited),
    ReferralRevoked(ReferralRevoked),
    ReferralBonusRevoked(ReferralBonusRevoked),
    MemberSuspended(MemberSuspended),
    MemberReinstated(MemberReinstated),
    AccountClosed(AccountClosed),
    WinBackAwarded(WinBackAwarded),
    BalanceOpened(BalanceOpened),
    ExpiryNotified(ExpiryNotified),
}

/// The scheduler told the member that dated lots expire soon (`[notices]
/// points_expiring_days` ahead). Changes no balance: it only marks the lots notified, so each
/// lot is announced once ever.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryNotified {
    /// The server's clock when the notice was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Soonest expiry first; never empty.
    pub lots: Vec<NotifiedLot>,
}

/// One lot a notice announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifiedLot {
    pub lot_id: LotId,
    /// Points left in the lot when the notice was recorded (spends may take some before the
    /// expiry).
    pub points: Points,
    pub expires_at: DateTime<Utc>,
}

/// A balance carried over from a legacy program (an import).
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceOpened {
    pub balance_id: AdjustmentId,
    pub occurred_at: DateTime<Utc>,
    pub credit: Credit,
    pub fingerprint: String,
}

/// The program's win-back rule selected the member (the measurements that did, as the engine
/// made them then) and credited its bonus.
#[derive(Debug, Clone, PartialEq)]
pub struct WinBackAwarded {
    pub occurred_at: DateTime<Utc>,
    pub p_alive: Option<Decimal>,
    pub inactive_days: u32,
    pub purchase_days: u32,
    pub model_version: Option<String>,
    pub credit: Credit,
    pub rules_version: String,
    pub fingerprint: String,
}

/// When a lot's points expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum LotExpiry {
    At(DateTime<Utc>),
    /// With every other point, once the member has been inactive long enough (the deadline
    /// travels in the events that count as activity).
    OnInactivity,
    Never,
}

/// A new lot of points. `points` is the award; `debt_repaid` of it went to repay a debt first,
/// so the lot holds `points - debt_repaid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credit {
    pub lot_id: LotId,
    pub points: Points,
    pub debt_repaid: Points,
    pub earned_at: DateTime<Utc>,
    pub spendable_from: DateTime<Utc>,
    pub expiry: LotExpiry,
    /// Set under the inactivity policy: when all points expire if nothing else happens.
    pub activity_deadline: Option<DateTime<Utc>>,
}

impl Credit {
    /// Points that went into the lot.
    pub fn lot_points(&self) -> Points {
        self.points.saturating_sub(self.debt_repaid)
    }
}

/// Points taken from one lot (by a redemption, clawback, forfeit) or given back to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotDraw {
    pub lot_id: LotId,
    pub points: Points,
}

/// Points taken from the member: from lots, then as a debt (`allow`) or recorded as a shortfall
/// that was not taken (`clamp`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Debit {
    pub draws: Vec<LotDraw>,
    pub debt_added: Points,
    pub shortfall: Points,
}

impl Debit {
    /// Points actually taken (from lots and as debt).
    pub fn taken(&self) -> Points {
        crate::points::sum(self.draws.iter().map(|d| d.points)).saturating_add(self.debt_added)
    }
}

/// A tier, by position in the program's list and by name (names are what people read; the
/// index orders them without the program at hand).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TierRef {
    pub index: u32,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrolled {
    pub member_id: MemberId,
    pub referrer: Option<MemberId>,
    pub enrolled_at: DateTime<Utc>,
    pub tier: TierRef,
    pub welcome: Option<Credit>,
    pub rules_version: String,
    pub fingerprint: String,
}

/// Points awarded by one rule (`base`, `multiplier:category:beans`, `tier:Gold`,
/// `campaign:easter`, `cap`...). A cap appears as a negative entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleAward {
    pub rule: String,
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineAward {
    pub sku: Sku,
    pub category: CategoryId,
    pub quantity: Decimal,
    pub amount: Decimal,
    /// Zero for excluded categories (gift cards...).
    pub eligible_amount: Decimal,
    pub rules: Vec<RuleAward>,
    /// Sum of `rules`, never negative.
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseRecorded {
    pub transaction_id: TransactionId,
    pub store: StoreId,
    pub terminal: TerminalId,
    pub occurred_at: DateTime<Utc>,
    pub currency: Currency,
    pub lines: Vec<LineAward>,
    /// Rules that award the purchase as a whole (fixed campaign bonuses, a cap on them).
    pub transaction_rules: Vec<RuleAward>,
    /// Total award: lines plus transaction rules.
    pub points: Points,
    /// Sum of eligible amounts: what counts as qualifying spend.
    pub eligible_amount: Decimal,
    pub campaigns_applied: Vec<CampaignId>,
    /// `None` when the purchase earned nothing.
    pub credit: Option<Credit>,
    pub activity_deadline: Option<DateTime<Utc>>,
    pub rules_version: String,
    pub fingerprint: String,
}

/// The newcomer's first qualifying purchase qualified their referral: the newcomer's bonus is
/// credited here, the referrer's is due (the engine sends `CreditReferralBonus` to the referrer).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralQualified {
    pub referrer: MemberId,
    /// The qualifying purchase's store; `None` in events recorded before stores scoped ids.
    pub store: Option<StoreId>,
    pub transaction_id: TransactionId,
    /// The minimum eligible amount that qualified it, as the rules said then: refunds that take
    /// the purchase below it revoke the referral. `None` in older events (then only a full
    /// refund revokes it).
    pub min_purchase: Option<Decimal>,
    pub occurred_at: DateTime<Utc>,
    pub newcomer_credit: Option<Credit>,
    pub referrer_points: Points,
    pub rules_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TierChangeReason {
    /// The qualifying value crossed a higher threshold (upgrades happen at once).
    ThresholdReached,
    /// A review found the member below their tier's threshold (or above it).
    Review,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierChanged {
    pub from: TierRef,
    pub to: TierRef,
    pub reason: TierChangeReason,
    pub qualifying_value: Decimal,
    pub occurred_at: DateTime<Utc>,
    /// The review date this change settles, for `Review`.
    pub review_at: Option<DateTime<Utc>>,
    pub rules_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundedLine {
    pub line: u32,
    pub amount: Decimal,
    /// Eligible part of `amount` (qualifying spend given back).
    pub eligible_amount: Decimal,
    pub points: Points,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefundRecorded {
    pub refund_id: RefundId,
    /// The store that took the return; `None` in events recorded before it was kept.
    pub store: Option<StoreId>,
    /// The store of the original sale; `None` in older events (then the transaction id alone
    /// named the purchase).
    pub purchase_store: Option<StoreId>,
    pub transaction_id: TransactionId,
    pub occurred_at: DateTime<Utc>,
    pub currency: Currency,
    pub lines: Vec<RefundedLine>,
    /// Clawback of the purchase's transaction-level rules.
    pub transaction_points: Points,
    /// Total clawback: lines plus transaction points (what the debit took or recorded short).
    pub points: Points,
    pub amount: Decimal,
    pub eligible_amount: Decimal,
    pub debit: Debit,
    /// This refund completes the purchase: every awarded point has now been clawed back.
    pub completes_purchase: bool,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointsRedeemed {
    pub redemption_id: RedemptionId,
    pub reward_id: Option<RewardId>,
    pub points: Points,
    /// Lots consumed, soonest-expiring first, with the points taken from each.
    pub draws: Vec<LotDraw>,
    pub occurred_at: DateTime<Utc>,
    pub activity_deadline: Option<DateTime<Utc>>,
    pub fingerprint: String,
}

/// Gives back exactly the lots the redemption took. Points of lots that expired meanwhile are
/// expired at once by `PointsExpired` events that follow in the same decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RedemptionCancelled {
    pub redemption_id: RedemptionId,
    pub restored: Vec<LotDraw>,
    pub occurred_at: DateTime<Utc>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointsExpired {
    pub lot_id: LotId,
    pub points: Points,
    /// When the lot expired (its expiry date or the inactivity deadline), at or before the
    /// server's clock when it was recorded.
    pub expired_at: DateTime<Utc>,
    /// The server's clock when the expiry was recorded (never a caller's business time: a
    /// caller's clock does not expire anything).
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRewarded {
    pub activity_id: ActivityId,
    pub kind: ActivityKind,
    /// The limit period this counts against (`month:2026-11`, `once`...), in local time.
    pub period_key: String,
    pub credit: Credit,
    pub rules_version: String,
    pub fingerprint: String,
}

/// An activity past its limit: recorded, so that a retry gets the same answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRefused {
    pub activity_id: ActivityId,
    pub kind: ActivityKind,
    pub period_key: String,
    pub limit: u32,
    pub period: String,
    pub occurred_at: DateTime<Utc>,
    pub rules_version: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointsAdjusted {
    pub adjustment_id: AdjustmentId,
    /// Requested, signed.
    pub points: Points,
    pub reason_code: ReasonCode,
    /// Personal data: sealed once stored (see [`crate::Note`]).
    pub note: crate::Note,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
    /// For a positive adjustment.
    pub credit: Option<Credit>,
    /// For a negative adjustment.
    pub debit: Option<Debit>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GoodwillGranted {
    pub complaint_id: ComplaintId,
    pub reason_code: ReasonCode,
    /// Personal data: sealed once stored (see [`crate::Note`]).
    pub note: crate::Note,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
    pub credit: Credit,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferralBonusCredited {
    pub newcomer: MemberId,
    pub credit: Credit,
    pub rules_version: String,
    pub fingerprint: String,
}

/// On the newcomer's stream: the purchase that qualified the referral was refunded in full or
/// below the qualifying minimum. The newcomer's bonus is taken back here (`debit`, under the
/// program's negative-balance policy); the referrer's is taken back by the engine
/// (`RevokeReferralBonus`, recorded as [`ReferralBonusRevoked`] on the referrer's stream).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralRevoked {
    pub referrer: MemberId,
    pub store: Option<StoreId>,
    pub transaction_id: TransactionId,
    /// The refund that revoked it.
    pub refund_id: RefundId,
    pub reason: RevocationReason,
    /// Eligible amount of the purchase left after the refund.
    pub remaining_eligible_amount: Decimal,
    /// The newcomer's bonus, taken back.
    pub points: Points,
    pub debit: Debit,
    pub occurred_at: DateTime<Utc>,
}

/// On the referrer's stream: the bonus credited for `newcomer` is taken back (zero points if
/// none was credited; no bonus for that newcomer can be credited afterwards).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferralBonusRevoked {
    pub newcomer: MemberId,
    pub reason: RevocationReason,
    pub points: Points,
    pub debit: Debit,
    pub occurred_at: DateTime<Utc>,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberSuspended {
    pub reason_code: ReasonCode,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberReinstated {
    /// Absent in events recorded before reinstatements carried a reason.
    pub reason_code: Option<ReasonCode>,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

/// The account is closed; its remaining points are forfeited, lot by lot.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountClosed {
    pub reason_code: ReasonCode,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
    pub forfeited: Vec<LotDraw>,
}

impl Event {
    /// The stored event type name (also the schema DTO's name).
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::Enrolled(_) => "Enrolled",
            Event::PurchaseRecorded(_) => "PurchaseRecorded",
            Event::ReferralQualified(_) => "ReferralQualified",
            Event::TierChanged(_) => "TierChanged",
            Event::RefundRecorded(_) => "RefundRecorded",
            Event::PointsRedeemed(_) => "PointsRedeemed",
            Event::RedemptionCancelled(_) => "RedemptionCancelled",
            Event::PointsExpired(_) => "PointsExpired",
            Event::ActivityRewarded(_) => "ActivityRewarded",
            Event::ActivityRefused(_) => "ActivityRefused",
            Event::PointsAdjusted(_) => "PointsAdjusted",
            Event::GoodwillGranted(_) => "GoodwillGranted",
            Event::ReferralBonusCredited(_) => "ReferralBonusCredited",
            Event::ReferralRevoked(_) => "ReferralRevoked",
            Event::ReferralBonusRevoked(_) => "ReferralBonusRevoked",
            Event::MemberSuspended(_) => "MemberSuspended",
            Event::MemberReinstated(_) => "MemberReinstated",
            Event::AccountClosed(_) => "AccountClosed",
            Event::WinBackAwarded(_) => "WinBackAwarded",
            Event::BalanceOpened(_) => "BalanceOpened",
            Event::ExpiryNotified(_) => "ExpiryNotified",
        }
    }

    /// The business time the event carries.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Event::Enrolled(e) => e.enrolled_at,
            Event::PurchaseRecorded(e) => e.occurred_at,
            Event::ReferralQualified(e) => e.occurred_at,
            Event::TierChanged(e) => e.occurred_at,
            Event::RefundRecorded(e) => e.occurred_at,
            Event::PointsRedeemed(e) => e.occurred_at,
            Event::RedemptionCancelled(e) => e.occurred_at,
            Event::PointsExpired(e) => e.occurred_at,
            Event::ActivityRewarded(e) => e.credit.earned_at,
            Event::ActivityRefused(e) => e.occurred_at,
            Event::PointsAdjusted(e) => e.occurred_at,
            Event::GoodwillGranted(e) => e.occurred_at,
            Event::ReferralBonusCredited(e) => e.credit.earned_at,
            Event::ReferralRevoked(e) => e.occurred_at,
            Event::ReferralBonusRevoked(e) => e.occurred_at,
            Event::MemberSuspended(e) => e.occurred_at,
            Event::MemberReinstated(e) => e.occurred_at,
            Event::AccountClosed(e) => e.occurred_at,
            Event::WinBackAwarded(e) => e.occurred_at,
            Event::BalanceOpened(e) => e.occurred_at,
            Event::ExpiryNotified(e) => e.occurred_at,
        }
    }
}
