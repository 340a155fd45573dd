//! Commands: what a client asks of a member's account. Each carries the member id, the business
//! time from the terminal (`occurred_at`) and, where a client may retry, the client's own id.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::fingerprint::Fingerprint;
use crate::ids::{
    ActivityId, ActivityKind, AdjustmentId, CategoryId, ComplaintId, MemberId, OperatorId,
    PurchaseKey, ReasonCode, RedemptionId, RefundId, RewardId, Sku, StoreId, TerminalId,
    TransactionId,
};
use crate::money::Currency;
use crate::points::Points;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Enroll(Enroll),
    RecordPurchase(RecordPurchase),
    Refund(Refund),
    Redeem(Redeem),
    CancelRedemption(CancelRedemption),
    Expire(Expire),
    RecordActivity(RecordActivity),
    Adjust(Adjust),
    Goodwill(Goodwill),
    ReviewTier(ReviewTier),
    Suspend(Suspend),
    Reinstate(Reinstate),
    Close(Close),
    CreditReferralBonus(CreditReferralBonus),
    RevokeReferralBonus(RevokeReferralBonus),
    WinBack(WinBack),
    OpenBalance(OpenBalance),
    NotifyExpiry(NotifyExpiry),
}

/// Sent by the scheduler with the server's clock: records one notice of the member's dated
/// lots that expire within the program's `[notices] points_expiring_days` and were never
/// announced (nothing, if none). Naturally idempotent: a second run finds them notified.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyExpiry {
    pub member_id: MemberId,
    pub occurred_at: DateTime<Utc>,
}

/// A balance carried over from a legacy program (an import): `points` as of `occurred_at`,
/// expiring at `expires_at` (by this program's policy when absent). Once per `balance_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenBalance {
    pub member_id: MemberId,
    pub balance_id: AdjustmentId,
    pub points: Points,
    pub expires_at: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
}

/// Sent by the engine's scheduler to a member the program's win-back rule selects: it carries
/// the measurements that selected them (recorded in the event, so replay never recomputes
/// them). The core checks them against the rule and the member's last win-back.
#[derive(Debug, Clone, PartialEq)]
pub struct WinBack {
    pub member_id: MemberId,
    pub occurred_at: DateTime<Utc>,
    /// The purchase model's probability that the member is still buying, when a model was
    /// fitted (4 decimals).
    pub p_alive: Option<rust_decimal::Decimal>,
    /// Days since the member's last purchase day.
    pub inactive_days: u32,
    /// Days with a purchase so far.
    pub purchase_days: u32,
    /// The fitted model's version (calibration date and parameters' hash), with `p_alive`.
    pub model_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enroll {
    pub member_id: MemberId,
    pub referrer: Option<MemberId>,
    /// When the member enrolled (the anniversary for tier reviews).
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordPurchase {
    pub member_id: MemberId,
    pub transaction_id: TransactionId,
    pub store: StoreId,
    pub terminal: TerminalId,
    pub occurred_at: DateTime<Utc>,
    pub currency: Currency,
    pub lines: Vec<PurchaseLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PurchaseLine {
    pub sku: Sku,
    pub category: CategoryId,
    pub quantity: Decimal,
    /// The amount paid for the line (all units), in the purchase's currency.
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub member_id: MemberId,
    pub refund_id: RefundId,
    /// The store taking the return (recorded; part of the refund's content).
    pub store: StoreId,
    /// The store of the original sale: with `transaction_id`, it names the purchase.
    pub purchase_store: StoreId,
    pub transaction_id: TransactionId,
    pub occurred_at: DateTime<Utc>,
    pub currency: Currency,
    pub scope: RefundScope,
}

/// What is refunded: amounts on given lines, or an amount spread over the purchase's lines in
/// proportion to what is left of each.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundScope {
    Lines(Vec<RefundLine>),
    Amount(Decimal),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefundLine {
    /// Index of the line in the purchase, from 0.
    pub line: u32,
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redeem {
    pub member_id: MemberId,
    pub redemption_id: RedemptionId,
    pub occurred_at: DateTime<Utc>,
    pub target: RedeemTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RedeemTarget {
    Reward(RewardId),
    Points(Points),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CancelRedemption {
    pub member_id: MemberId,
    pub redemption_id: RedemptionId,
    pub occurred_at: DateTime<Utc>,
}

/// Expires every lot due as of `occurred_at` (a scheduler sends it; balances never count due
/// points as spendable even before it runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Expire {
    pub member_id: MemberId,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordActivity {
    pub member_id: MemberId,
    pub activity_id: ActivityId,
    pub kind: ActivityKind,
    pub occurred_at: DateTime<Utc>,
}

/// A manual correction, positive or negative, with a reason code for auditors.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjust {
    pub member_id: MemberId,
    pub adjustment_id: AdjustmentId,
    pub points: Points,
    pub reason_code: ReasonCode,
    pub note: String,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

/// Points granted for an upheld complaint: at most once per complaint.
#[derive(Debug, Clone, PartialEq)]
pub struct Goodwill {
    pub member_id: MemberId,
    pub complaint_id: ComplaintId,
    pub points: Points,
    pub reason_code: ReasonCode,
    pub note: String,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

/// Runs the tier review due as of `occurred_at`, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewTier {
    pub member_id: MemberId,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suspend {
    pub member_id: MemberId,
    pub reason_code: ReasonCode,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reinstate {
    pub member_id: MemberId,
    /// Why the suspension is lifted (read by auditors).
    pub reason_code: ReasonCode,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

/// Closes the account; the balance is forfeited (and recorded as such).
#[derive(Debug, Clone, PartialEq)]
pub struct Close {
    pub member_id: MemberId,
    pub reason_code: ReasonCode,
    pub operator: OperatorId,
    pub occurred_at: DateTime<Utc>,
}

/// Sent to the referrer's account by the engine's process manager once the newcomer's account
/// recorded `ReferralQualified`. Idempotent per newcomer.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditReferralBonus {
    pub member_id: MemberId,
    pub newcomer: MemberId,
    pub occurred_at: DateTime<Utc>,
}

/// Sent to the referrer's account by the engine's process manager once the newcomer's account
/// recorded `ReferralRevoked`: the bonus it credited for that newcomer is taken back. Idempotent
/// per newcomer; recorded even when no bonus was credited, so that none can be credited later.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeReferralBonus {
    pub member_id: MemberId,
    pub newcomer: MemberId,
    pub reason: RevocationReason,
    pub occurred_at: DateTime<Utc>,
}

/// Why a referral was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The qualifying purchase was refunded in full.
    PurchaseRefunded,
    /// Refunds took the qualifying purchase's eligible amount below the program's minimum.
    BelowMinimum,
}

impl RevocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::PurchaseRefunded => "purchase_refunded",
            RevocationReason::BelowMinimum => "below_minimum",
        }
    }
}

impl RecordPurchase {
    /// The sale this purchase records (its transaction id is unique within its store).
    pub fn key(&self) -> PurchaseKey {
        PurchaseKey::new(self.store.clone(), self.transaction_id.clone())
    }
}

impl Refund {
    /// The sale this refund returns.
    pub fn purchase_key(&self) -> PurchaseKey {
        PurchaseKey::new(self.purchase_store.clone(), self.transaction_id.clone())
    }
}

impl Command {
    pub fn member_id(&self) -> &MemberId {
        match self {
            Command::Enroll(c) => &c.member_id,
            Command::RecordPurchase(c) => &c.member_id,
            Command::Refund(c) => &c.member_id,
            Command::Redeem(c) => &c.member_id,
            Command::CancelRedemption(c) => &c.member_id,
            Command::Expire(c) => &c.member_id,
            Command::RecordActivity(c) => &c.member_id,
            Command::Adjust(c) => &c.member_id,
            Command::Goodwill(c) => &c.member_id,
            Command::ReviewTier(c) => &c.member_id,
            Command::Suspend(c) => &c.member_id,
            Command::Reinstate(c) => &c.member_id,
            Command::Close(c) => &c.member_id,
            Command::CreditReferralBonus(c) => &c.member_id,
            Command::RevokeReferralBonus(c) => &c.member_id,
            Command::WinBack(c) => &c.member_id,
            Command::OpenBalance(c) => &c.member_id,
            Command::NotifyExpiry(c) => &c.member_id,
        }
    }

    /// The command's name, as stored in event metadata and shown to auditors.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Enroll(_) => "Enroll",
            Command::RecordPurchase(_) => "RecordPurchase",
            Command::Refund(_) => "Refund",
            Command::Redeem(_) => "Redeem",
            Command::CancelRedemption(_) => "CancelRedemption",
            Command::Expire(_) => "Expire",
            Command::RecordActivity(_) => "RecordActivity",
            Command::Adjust(_) => "Adjust",
            Command::Goodwill(_) => "Goodwill",
            Command::ReviewTier(_) => "ReviewTier",
            Command::Suspend(_) => "Suspend",
            Command::Reinstate(_) => "Reinstate",
            Command::Close(_) => "Close",
            Command::CreditReferralBonus(_) => "CreditReferralBonus",
            Command::RevokeReferralBonus(_) => "RevokeReferralBonus",
            Command::WinBack(_) => "WinBack",
            Command::OpenBalance(_) => "OpenBalance",
            Command::NotifyExpiry(_) => "NotifyExpiry",
        }
    }

    /// The business time of the command.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Command::Enroll(c) => c.occurred_at,
            Command::RecordPurchase(c) => c.occurred_at,
            Command::Refund(c) => c.occurred_at,
            Command::Redeem(c) => c.occurred_at,
            Command::CancelRedemption(c) => c.occurred_at,
            Command::Expire(c) => c.occurred_at,
            Command::RecordActivity(c) => c.occurred_at,
            Command::Adjust(c) => c.occurred_at,
            Command::Goodwill(c) => c.occurred_at,
            Command::ReviewTier(c) => c.occurred_at,
            Command::Suspend(c) => c.occurred_at,
            Command::Reinstate(c) => c.occurred_at,
            Command::Close(c) => c.occurred_at,
            Command::CreditReferralBonus(c) => c.occurred_at,
            Command::RevokeReferralBonus(c) => c.occurred_at,
            Command::WinBack(c) => c.occurred_at,
            Command::OpenBalance(c) => c.occurred_at,
            Command::NotifyExpiry(c) => c.occurred_at,
        }
    }

    /// The idempotency key: the client's id, prefixed by the kind of command so that a refund
    /// and a purchase sharing an id stay apart. `None` for commands that are naturally
    /// idempotent (expire, expiry notices, review, suspend, reinstate, close).
    pub fn client_id(&self) -> Option<String> {
        match self {
            Command::Enroll(c) => Some(format!("enroll:{}", c.member_id)),
            Command::RecordPurchase(c) => Some(purchase_client_id(&c.key())),
            Command::Refund(c) => Some(format!("refund:{}", c.refund_id)),
            Command::Redeem(c) => Some(format!("redeem:{}", c.redemption_id)),
            Command::CancelRedemption(c) => Some(format!("cancel:{}", c.redemption_id)),
            Command::RecordActivity(c) => Some(format!("activity:{}", c.activity_id)),
            Command::Adjust(c) => Some(format!("adjust:{}", c.adjustment_id)),
            Command::Goodwill(c) => Some(format!("goodwill:{}", c.complaint_id)),
            Command::CreditReferralBonus(c) => Some(format!("referral:{}", c.newcomer)),
            Command::RevokeReferralBonus(c) => Some(format!("referral-revoke:{}", c.newcomer)),
            // One a day at most: a second run of the same day replays the first's outcome.
            Command::WinBack(c) => Some(win_back_client_id(c.occurred_at)),
            Command::OpenBalance(c) => Some(format!("balance:{}", c.balance_id)),
            Command::Expire(_)
            | Command::NotifyExpiry(_)
            | Command::ReviewTier(_)
            | Command::Suspend(_)
            | Command::Reinstate(_)
            | Command::Close(_) => None,
        }
    }

    /// The fingerprint adjustments and goodwill grants were recorded with before notes were
    /// sealed (the note included): a retry of one of those must still be recognised.
    pub(crate) fn legacy_fingerprint(&self) -> Option<String> {
        match self {
            Command::Adjust(c) => Some(grant_fingerprint(
                "adjust",
                &c.adjustment_id,
                c.points,
                &c.reason_code,
                Some(&c.note),
                &c.operator,
                c.occurred_at,
            )),
            Command::Goodwill(c) => Some(grant_fingerprint(
                "goodwill",
                &c.complaint_id,
                c.points,
                &c.reason_code,
                Some(&c.note),
                &c.operator,
                c.occurred_at,
            )),
            _ => None,
        }
    }

    /// A digest of the command's content, stored in its events: a retry must match it exactly.
    /// `occurred_at` is part of the content (a terminal's retry resends the same time).
    pub fn fingerprint(&self) -> String {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        match self {
            Command::Enroll(c) => Fingerprint::new("enroll")
                .field(&c.member_id)
                .field(c.referrer.as_ref().map(|r| r.as_str()).unwrap_or("-"))
                .field(at(c.occurred_at))
                .finish(),
            Command::RecordPurchase(c) => {
                let mut f = Fingerprint::new("purchase")
                    .field(&c.transaction_id)
                    .field(&c.store)
                    .field(&c.terminal)
                    .field(at(c.occurred_at))
                    .field(c.currency.as_str());
                for l in &c.lines {
                    f = f
                        .field(&l.sku)
                        .field(&l.category)
                        .amount(l.quantity)
                        .amount(l.amount);
                }
                f.finish()
            }
            Command::Refund(c) => {
                let mut f = Fingerprint::new("refund")
                    .field(&c.refund_id)
                    .field(&c.store)
                    .field(&c.purchase_store)
                    .field(&c.transaction_id)
                    .field(at(c.occurred_at))
                    .field(c.currency.as_str());
                match &c.scope {
                    RefundScope::Amount(a) => f = f.field("amount").amount(*a),
                    RefundScope::Lines(lines) => {
                        f = f.field("lines");
                        for l in lines {
                            f = f.field(l.line.to_string()).amount(l.amount);
                        }
                    }
                }
                f.finish()
            }
            Command::Redeem(c) => {
                let f = Fingerprint::new("redeem")
                    .field(&c.redemption_id)
                    .field(at(c.occurred_at));
                match &c.target {
                    RedeemTarget::Reward(r) => f.field("reward").field(r),
                    RedeemTarget::Points(p) => f.field("points").field(p.to_string()),
                }
                .finish()
            }
            // A redemption is cancelled once: any later cancellation of it, whenever sent,
            // is a retry of the first.
            Command::CancelRedemption(c) => {
                Fingerprint::new("cancel").field(&c.redemption_id).finish()
            }
            Command::RecordActivity(c) => Fingerprint::new("activity")
                .field(&c.activity_id)
                .field(&c.kind)
                .field(at(c.occurred_at))
                .finish(),
            // Without the note: the fingerprint is stored in clear and FNV-1a can be run
            // backwards, so a note in it would outlive the note's erasure (a short note, a
            // phone number, can be recovered from it in a second). A note never changes a
            // decision, so a retry with another note is the same adjustment.
            Command::Adjust(c) => grant_fingerprint(
                "adjust/2",
                &c.adjustment_id,
                c.points,
                &c.reason_code,
                None,
                &c.operator,
                c.occurred_at,
            ),
            Command::Goodwill(c) => grant_fingerprint(
                "goodwill/2",
                &c.complaint_id,
                c.points,
                &c.reason_code,
                None,
                &c.operator,
                c.occurred_at,
            ),
            Command::CreditReferralBonus(c) => {
                Fingerprint::new("referral").field(&c.newcomer).finish()
            }
            // One revocation per newcomer, whenever and however often the engine sends it.
            Command::RevokeReferralBonus(c) => Fingerprint::new("referral-revoke")
                .field(&c.newcomer)
                .finish(),
            // The day alone: a second run that day (with fresher measurements) is the same
            // decision, not a conflicting one.
            Command::WinBack(c) => Fingerprint::new("win-back")
                .field(c.occurred_at.date_naive().to_string())
                .finish(),
            Command::OpenBalance(c) => Fingerprint::new("balance")
                .field(&c.balance_id)
                .field(c.points.to_string())
                .field(c.expires_at.map(at).unwrap_or_default())
                .field(at(c.occurred_at))
                .finish(),
            Command::Expire(_)
            | Command::NotifyExpiry(_)
            | Command::ReviewTier(_)
            | Command::Suspend(_)
            | Command::Reinstate(_)
            | Command::Close(_) => String::new(),
        }
    }
}

macro_rules! from_command {
    ($($variant:ident),*) => {
        $(impl From<$variant> for Command {
            fn from(c: $variant) -> Command {
                Command::$variant(c)
            }
        })*
    };
}

from_command!(
    Enroll,
    RecordPurchase,
    Refund,
    Redeem,
    CancelRedemption,
    Expire,
    RecordActivity,
    Adjust,
    Goodwill,
    ReviewTier,
    Suspend,
    Reinstate,
    Close,
    CreditReferralBonus,
    RevokeReferralBonus,
    WinBack,
    OpenBalance,
    NotifyExpiry
);

/// The idempotency key of a win-back: its (UTC) day.
pub(crate) fn win_back_client_id(at: DateTime<Utc>) -> String {
    format!("win-back:{}", at.date_naive())
}

/// The idempotency key of a purchase: scoped by store, like its transaction id.
pub(crate) fn purchase_client_id(key: &PurchaseKey) -> String {
    format!("purchase:{key}")
}

/// The fingerprint of a support grant (an adjustment or a goodwill grant): `kind` names the
/// command and its version. Version 1 included the `note`; version 2 leaves it out (see
/// `fingerprint`), and version 1 is still computed to recognise retries of older grants.
fn grant_fingerprint(
    kind: &str,
    id: impl AsRef<str>,
    points: Points,
    reason_code: impl AsRef<str>,
    note: Option<&str>,
    operator: impl AsRef<str>,
    occurred_at: DateTime<Utc>,
) -> String {
    let fingerprint = Fingerprint::new(kind)
        .field(id)
        .field(points.to_string())
        .field(reason_code);
    let fingerprint = match note {
        Some(note) => fingerprint.field(note),
        None => fingerprint,
    };
    fingerprint
        .field(operator)
        .field(occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .finish()
}
