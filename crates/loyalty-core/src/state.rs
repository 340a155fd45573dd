//! The member aggregate's state: lots, debt, lifetime totals, tier, and what idempotency needs.
//! Built only by [`crate::evolve`] from events, so projections can reuse it read-side.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::event::{LotExpiry, TierRef};
use crate::ids::{
    ActivityKind, CampaignId, LotId, MemberId, PurchaseKey, RedemptionId, RewardId, StoreId,
    TransactionId,
};
use crate::money::Currency;
use crate::outcome::Outcome;
use crate::points::{self, Points};
use crate::program::{Program, QualifyingMetric};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    #[default]
    NotEnrolled,
    Active,
    Suspended,
    Closed,
}

/// A lot: the points of one award, consumed by spends and given back by cancellations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub id: LotId,
    /// Points the lot received (the award minus any debt it repaid).
    pub points: Points,
    /// Points still in the lot.
    pub remaining: Points,
    pub earned_at: DateTime<Utc>,
    pub spendable_from: DateTime<Utc>,
    pub expiry: LotExpiry,
    /// An expiry event has been recorded for the lot.
    pub expired: bool,
    /// An expiry notice (`ExpiryNotified`) announced the lot: it is never announced again.
    /// Defaults when absent, so member snapshots taken before notices existed still read
    /// (rightly: no lot had been announced then).
    #[serde(default)]
    pub notified: bool,
}

/// Lifetime totals. The ledger identity:
/// `earned - redeemed - expired - clawed_back - forfeited + adjusted = available + pending - debt`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lifetime {
    /// Awards: purchases, bonuses, goodwill, referrals (debt repayments included).
    pub earned: Points,
    /// Net of cancelled redemptions.
    pub redeemed: Points,
    pub expired: Points,
    /// Taken back by refunds (from lots and as debt).
    pub clawed_back: Points,
    /// Net of manual adjustments (signed).
    pub adjusted: Points,
    pub forfeited: Points,
    /// Clawbacks a `clamp` policy could not take (recorded, not part of the identity).
    pub shortfall: Points,
}

/// The soonest expiry ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextExpiry {
    pub points: Points,
    pub at: DateTime<Utc>,
}

/// A member's balance as of an instant. Points whose lot is not yet spendable are pending;
/// points whose expiry has passed count as expired even before the expiry event is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub as_of: DateTime<Utc>,
    pub available: Points,
    pub pending: Points,
    pub debt: Points,
    /// `available + pending - debt`.
    pub balance: Points,
    pub lifetime: Lifetime,
    pub next_expiry: Option<NextExpiry>,
}

impl Balance {
    /// The balance lots sorted into `parts` make with a debt and lifetime totals as recorded
    /// (points past their expiry count as expired before the expiry is recorded).
    pub fn from_parts(
        as_of: DateTime<Utc>,
        parts: crate::fold::BalanceParts,
        debt: Points,
        recorded: &Lifetime,
    ) -> Balance {
        let mut lifetime = recorded.clone();
        lifetime.expired = lifetime.expired.saturating_add(parts.due);
        Balance {
            as_of,
            available: parts.available,
            pending: parts.pending,
            debt,
            balance: parts
                .available
                .saturating_add(parts.pending)
                .saturating_sub(debt),
            lifetime,
            next_expiry: parts
                .next_expiry
                .map(|(at, points)| NextExpiry { points, at }),
        }
    }
}

/// What the aggregate keeps of a purchase, for refunds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRecord {
    pub store: StoreId,
    pub transaction_id: TransactionId,
    pub occurred_at: DateTime<Utc>,
    pub currency: Currency,
    pub lines: Vec<LineRecord>,
    pub transaction_points: Points,
    pub transaction_clawed: Points,
    pub points: Points,
    pub lot_id: Option<LotId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRecord {
    pub amount: Decimal,
    pub eligible_amount: Decimal,
    pub points: Points,
    pub refunded_amount: Decimal,
    pub clawed: Points,
}

impl PurchaseRecord {
    pub fn total_amount(&self) -> Decimal {
        self.lines.iter().map(|l| l.amount).sum()
    }

    pub fn refunded_amount(&self) -> Decimal {
        self.lines.iter().map(|l| l.refunded_amount).sum()
    }

    /// The amount that earned points (gift cards and other excluded lines left out).
    pub fn eligible_amount(&self) -> Decimal {
        self.lines.iter().map(|l| l.eligible_amount).sum()
    }

    /// The eligible amount refunded so far.
    pub fn refunded_eligible_amount(&self) -> Decimal {
        self.lines
            .iter()
            .filter(|l| !l.eligible_amount.is_zero())
            .map(|l| l.refunded_amount)
            .sum()
    }

    pub fn key(&self) -> PurchaseKey {
        PurchaseKey::new(self.store.clone(), self.transaction_id.clone())
    }

    /// Points clawed back so far.
    pub fn clawed(&self) -> Points {
        points::sum(self.lines.iter().map(|l| l.clawed)).saturating_add(self.transaction_clawed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionRecord {
    pub redemption_id: RedemptionId,
    pub reward_id: Option<RewardId>,
    pub points: Points,
    pub draws: Vec<crate::event::LotDraw>,
    pub occurred_at: DateTime<Utc>,
    pub cancelled: bool,
}

/// A contribution to the tier metric, dated by the purchase it belongs to (a refund lowers
/// the value of its purchase's date, so a rolling window forgets both together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifyingEntry {
    pub at: DateTime<Utc>,
    pub spend: Decimal,
    pub points: Points,
}

/// The newcomer's side of a referral that qualified: which purchase qualified it and what the
/// newcomer was credited, so that a refund of that purchase can revoke it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralRecord {
    pub referrer: MemberId,
    /// `None` for referrals recorded before stores scoped transaction ids.
    pub store: Option<StoreId>,
    pub transaction_id: TransactionId,
    pub min_purchase: Option<Decimal>,
    pub newcomer_points: Points,
    pub lot_id: Option<LotId>,
    pub revoked: bool,
}

impl ReferralRecord {
    /// Whether `purchase` is the one that qualified this referral.
    pub fn qualified_by(&self, purchase: &PurchaseRecord) -> bool {
        self.transaction_id == purchase.transaction_id
            && self.store.as_ref().is_none_or(|s| s == &purchase.store)
    }
}

/// The referrer's side: the bonus credited for one newcomer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralBonusRecord {
    pub points: Points,
    /// `None` when the referral was revoked before any bonus was credited.
    pub lot_id: Option<LotId>,
    pub revoked: bool,
}

/// A processed client id: its content fingerprint and the outcome to repeat on a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    pub fingerprint: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    pub(crate) member_id: Option<MemberId>,
    pub(crate) status: MemberStatus,
    pub(crate) enrolled_at: Option<DateTime<Utc>>,
    pub(crate) referrer: Option<MemberId>,
    /// The newcomer's referral, once a purchase qualified it.
    pub(crate) referral: Option<ReferralRecord>,
    /// The referrer's bonuses, by newcomer.
    pub(crate) referral_bonuses: BTreeMap<MemberId, ReferralBonusRecord>,
    pub(crate) tier: TierRef,
    pub(crate) tier_since: Option<DateTime<Utc>>,
    pub(crate) last_review_at: Option<DateTime<Utc>>,
    pub(crate) lots: Vec<Lot>,
    pub(crate) debt: Points,
    pub(crate) totals: Lifetime,
    pub(crate) purchases: BTreeMap<PurchaseKey, PurchaseRecord>,
    pub(crate) redemptions: BTreeMap<RedemptionId, RedemptionRecord>,
    pub(crate) reward_counts: BTreeMap<RewardId, u32>,
    pub(crate) campaign_uses: BTreeMap<CampaignId, u32>,
    pub(crate) activity_counts: BTreeMap<(ActivityKind, String), u32>,
    pub(crate) qualifying: Vec<QualifyingEntry>,
    pub(crate) processed: BTreeMap<String, Processed>,
    pub(crate) inactivity_deadline: Option<DateTime<Utc>>,
    /// The last win-back bonus (the rule grants one per configured period).
    #[serde(default)]
    pub(crate) last_win_back_at: Option<DateTime<Utc>>,
    pub(crate) events_applied: u64,
    /// Where each lot is in `lots` (rebuilt after a snapshot is read: [`MemberState::restored`]).
    #[serde(skip)]
    pub(crate) lot_index: HashMap<LotId, usize>,
    /// Insertion order of purchases, redemptions and the client ids a compaction may retire:
    /// the oldest leave the hot state first.
    pub(crate) purchase_order: VecDeque<PurchaseKey>,
    pub(crate) redemption_order: VecDeque<RedemptionId>,
    pub(crate) processed_order: VecDeque<String>,
    /// The newest business time folded in.
    pub(crate) latest_at: Option<DateTime<Utc>>,
    /// Set once the state was compacted (see [`crate::hot`]).
    pub(crate) hot: Option<Box<crate::hot::HotPart>>,
}

impl MemberState {
    /// A state read back from a snapshot (serde): rebuilds what snapshots do not keep (the lot
    /// index). Its hot part has no limits until the reader compacts it with its own.
    pub fn restored(mut self) -> MemberState {
        self.rebuild_lot_index();
        self
    }

    /// Where each lot is, after `lots` was read back or had lots taken out.
    pub(crate) fn rebuild_lot_index(&mut self) {
        self.lot_index = self
            .lots
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id.clone(), i))
            .collect();
    }

    /// Rebuilds a state from its history.
    pub fn from_events<'a, I: IntoIterator<Item = &'a crate::Event>>(events: I) -> MemberState {
        let mut state = MemberState::default();
        for e in events {
            crate::evolve(&mut state, e);
        }
        state
    }

    pub fn member_id(&self) -> Option<&MemberId> {
        self.member_id.as_ref()
    }

    pub fn status(&self) -> MemberStatus {
        self.status
    }

    pub fn is_enrolled(&self) -> bool {
        self.status != MemberStatus::NotEnrolled
    }

    pub fn enrolled_at(&self) -> Option<DateTime<Utc>> {
        self.enrolled_at
    }

    pub fn referrer(&self) -> Option<&MemberId> {
        self.referrer.as_ref()
    }

    /// The current tier (index in the program's list and name).
    pub fn tier(&self) -> &TierRef {
        &self.tier
    }

    pub fn tier_since(&self) -> Option<DateTime<Utc>> {
        self.tier_since
    }

    pub fn last_review_at(&self) -> Option<DateTime<Utc>> {
        self.last_review_at
    }

    /// Every lot, in the order they were created (spent and expired ones included, unless a
    /// compaction retired them).
    pub fn lots(&self) -> &[Lot] {
        &self.lots
    }

    pub fn lot(&self, id: &LotId) -> Option<&Lot> {
        self.lot_index.get(id).and_then(|i| self.lots.get(*i))
    }

    pub(crate) fn lot_mut(&mut self, id: &LotId) -> Option<&mut Lot> {
        let i = *self.lot_index.get(id)?;
        self.lots.get_mut(i)
    }

    /// The newest business time of the events folded in.
    pub fn latest_at(&self) -> Option<DateTime<Utc>> {
        self.latest_at
    }

    pub fn debt(&self) -> Points {
        self.debt
    }

    /// Lifetime totals as recorded (without expiries not yet recorded; see [`Self::balance`]).
    pub fn lifetime(&self) -> &Lifetime {
        &self.totals
    }

    pub fn purchase(&self, key: &PurchaseKey) -> Option<&PurchaseRecord> {
        self.purchases.get(key)
    }

    /// The purchase with this transaction id in any store: how refunds recorded before stores
    /// scoped transaction ids name their purchase (ids were unique per member then).
    pub(crate) fn purchase_by_transaction(&self, id: &TransactionId) -> Option<&PurchaseRecord> {
        self.purchases.values().find(|p| &p.transaction_id == id)
    }

    /// The newcomer's referral, once qualified.
    pub fn referral(&self) -> Option<&ReferralRecord> {
        self.referral.as_ref()
    }

    /// The bonus this member (as a referrer) was credited for `newcomer`.
    pub fn referral_bonus(&self, newcomer: &MemberId) -> Option<&ReferralBonusRecord> {
        self.referral_bonuses.get(newcomer)
    }

    pub fn purchases(&self) -> impl Iterator<Item = &PurchaseRecord> {
        self.purchases.values()
    }

    pub fn redemption(&self, id: &RedemptionId) -> Option<&RedemptionRecord> {
        self.redemptions.get(id)
    }

    pub fn redemptions(&self) -> impl Iterator<Item = &RedemptionRecord> {
        self.redemptions.values()
    }

    /// What was decided for a client id (`purchase:T1`, see [`crate::Command::client_id`]).
    pub fn processed(&self, client_id: &str) -> Option<&Processed> {
        self.processed.get(client_id)
    }

    pub fn campaign_uses(&self, campaign: &CampaignId) -> u32 {
        self.campaign_uses.get(campaign).copied().unwrap_or(0)
    }

    /// Times a reward was redeemed and not cancelled.
    pub fn reward_count(&self, reward: &RewardId) -> u32 {
        self.reward_counts.get(reward).copied().unwrap_or(0)
    }

    pub fn qualifying_entries(&self) -> &[QualifyingEntry] {
        &self.qualifying
    }

    /// Under the inactivity policy: when every point expires if nothing happens before.
    pub fn inactivity_deadline(&self) -> Option<DateTime<Utc>> {
        self.inactivity_deadline
    }

    /// Number of events this state was built from.
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// When a lot's points expire, `None` for never.
    pub fn lot_expires_at(&self, lot: &Lot) -> Option<DateTime<Utc>> {
        match lot.expiry {
            LotExpiry::At(t) => Some(t),
            LotExpiry::OnInactivity => self.inactivity_deadline,
            LotExpiry::Never => None,
        }
    }

    /// A lot holding points whose expiry has passed as of `as_of` (recorded or not).
    pub fn is_due(&self, lot: &Lot, as_of: DateTime<Utc>) -> bool {
        lot.remaining.is_positive() && self.lot_expires_at(lot).is_some_and(|t| t <= as_of)
    }

    /// Lots holding points that are neither expired nor due as of `as_of`.
    pub(crate) fn live_lots(&self, as_of: DateTime<Utc>) -> impl Iterator<Item = &Lot> {
        self.lots
            .iter()
            .filter(move |l| l.remaining.is_positive() && !self.is_due(l, as_of))
    }

    /// Lots that can be spent as of `as_of`, soonest-expiring first, then oldest.
    pub(crate) fn spendable_lots(&self, as_of: DateTime<Utc>) -> Vec<&Lot> {
        let mut lots: Vec<&Lot> = self
            .live_lots(as_of)
            .filter(|l| l.spendable_from <= as_of)
            .collect();
        self.sort_for_spending(&mut lots);
        lots
    }

    pub(crate) fn sort_for_spending(&self, lots: &mut [&Lot]) {
        lots.sort_by(|a, b| {
            let ea = self.lot_expires_at(a);
            let eb = self.lot_expires_at(b);
            // `None` (never expires) sorts last.
            let key = |e: Option<DateTime<Utc>>| (e.is_none(), e);
            key(ea)
                .cmp(&key(eb))
                .then(a.earned_at.cmp(&b.earned_at))
                .then(a.id.cmp(&b.id))
        });
    }

    /// Points that can be spent as of `as_of`.
    pub fn available(&self, as_of: DateTime<Utc>) -> Points {
        points::sum(self.spendable_lots(as_of).iter().map(|l| l.remaining))
    }

    /// The lots holding points, as a balance sees them.
    pub fn lot_facts(&self) -> impl Iterator<Item = crate::fold::LotFacts> + '_ {
        self.lots
            .iter()
            .filter(|l| l.remaining.is_positive())
            .map(|l| crate::fold::LotFacts {
                remaining: l.remaining,
                spendable_from: l.spendable_from,
                expires_at: self.lot_expires_at(l),
            })
    }

    pub fn balance(&self, as_of: DateTime<Utc>) -> Balance {
        let parts = crate::fold::balance_parts(self.lot_facts(), as_of);
        Balance::from_parts(as_of, parts, self.debt, &self.totals)
    }

    /// The tier metric over `[from, to]`.
    pub fn qualifying_value_between(
        &self,
        metric: QualifyingMetric,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Decimal {
        crate::tiers::qualifying_sum(
            metric,
            self.qualifying.iter().map(|q| (q.at, q.spend, q.points)),
            from,
            to,
        )
    }

    /// The tier metric as of `as_of`, over the program's window.
    pub fn qualifying_value(&self, program: &Program, as_of: DateTime<Utc>) -> Decimal {
        let from = crate::tiers::window_start(program, as_of);
        self.qualifying_value_between(program.tiers.metric, from, as_of)
    }
}
