//! The read models: one compact row per member (integers and small vectors, no maps of
//! strings), folded from the member's events by the same rules as the core's `evolve`, and the
//! views computed from it at read time (pending and due points depend on "now").
//!
//! Why not keep the core's `MemberState` per member: it holds everything idempotency and refunds
//! need (processed client ids, purchases with their lines...), several KiB per member; the
//! rows here keep only what balances, tiers and rewards need.

use std::collections::HashMap;
use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use loyalty_core::{
    Credit, Debit, Event, LotDraw, LotExpiry, MemberId, MemberStatus, Points, Program,
    program::QualifyingMetric,
};
use loyalty_store::{Position, RecordedEvent};
use parking_lot::RwLock;
use rust_decimal::Decimal;

use crate::codec;
use crate::views::{
    BalanceView, NextExpiryView, NextTierView, ProgramTotals, RewardView, TierRefView, TierView,
};

const SHARDS: usize = 64;
const NONE: i64 = i64::MIN;
const NEVER: i64 = i64::MAX;
/// Expiry marker for lots that expire with the member's inactivity deadline.
const ON_INACTIVITY: i64 = i64::MIN + 1;

/// Instants as nanoseconds since the epoch (exact, like the core's comparisons); dates outside
/// 1677..2262 saturate, which no loyalty program reaches.
pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        NONE + 2
    } else {
        NEVER - 1
    })
}

fn instant(n: i64) -> Option<DateTime<Utc>> {
    if n == NONE || n == NEVER || n == ON_INACTIVITY {
        None
    } else {
        Some(DateTime::from_timestamp_nanos(n))
    }
}

/// The key of a sale (`store/transaction`; `/` is outside the id alphabet).
fn sale_key(store: &str, transaction: &str) -> u64 {
    key(&format!("{store}/{transaction}"))
}

/// FNV-1a 64: a stable, compact key for lot, redemption and reward ids within one member.
/// Ids are at most 64 characters and a member holds few of them, so a collision is not a
/// practical concern.
pub(crate) fn key(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LotRow {
    key: u64,
    remaining: i64,
    spendable_from: i64,
    /// Nanoseconds, `NEVER` or `ON_INACTIVITY`.
    expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct QualifyingRow {
    /// The sale the entry belongs to (refunds are dated by their purchase): the key of
    /// `store/transaction`.
    sale: u64,
    /// The key of the transaction id alone, for refunds recorded before stores scoped ids.
    txn: u64,
    at: i64,
    spend: Decimal,
    points: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extras {
    referrer: Option<Box<str>>,
    /// (reward key, redemptions not cancelled).
    rewards: Vec<(u64, u32)>,
    /// (redemption key, reward key) for redemptions of catalog rewards, to undo the count on a
    /// cancellation (the cancellation event names only the redemption).
    reward_redemptions: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberRow {
    status: MemberStatus,
    tier: u32,
    enrolled_at: i64,
    tier_since: i64,
    last_review_at: i64,
    inactivity_deadline: i64,
    /// What few members have, kept out of line so that the row stays small.
    extras: Option<Box<Extras>>,
    debt: i64,
    earned: i64,
    redeemed: i64,
    expired: i64,
    clawed_back: i64,
    adjusted: i64,
    forfeited: i64,
    shortfall: i64,
    lots: Vec<LotRow>,
    qualifying: Vec<QualifyingRow>,
    pub(crate) revision: u64,
    pub(crate) last_position: Position,
    /// Scheduler's note (not part of the log): a review due at or before this instant already
    /// ran without changing the tier, so it need not run again. Lost on restart, which only
    /// costs one more idempotent review.
    reviewed_through: i64,
}

impl Default for MemberRow {
    fn default() -> Self {
        Self {
            status: MemberStatus::NotEnrolled,
            tier: 0,
            enrolled_at: NONE,
            tier_since: NONE,
            last_review_at: NONE,
            inactivity_deadline: NONE,
            extras: None,
            debt: 0,
            earned: 0,
            redeemed: 0,
            expired: 0,
            clawed_back: 0,
            adjusted: 0,
            forfeited: 0,
            shortfall: 0,
            lots: Vec::new(),
            qualifying: Vec::new(),
            revision: 0,
            last_position: Position::START,
            reviewed_through: NONE,
        }
    }
}

/// Pushes with modest growth: most members hold a handful of lots, and `Vec`'s doubling (from
/// a capacity of 4) would spend more memory on empty slots than on the lots themselves.
fn push_compact<T>(items: &mut Vec<T>, item: T) {
    if items.len() == items.capacity() {
        items.reserve_exact((items.len() / 2).max(1));
    }
    items.push(item);
}

#[derive(Clone, Copy)]
enum Kind {
    Earned,
    Adjusted,
}

/// What a member's balance is made of at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BalanceParts {
    pub(crate) available: i64,
    pub(crate) pending: i64,
    pub(crate) due: i64,
    pub(crate) next_expiry: Option<(i64, i64)>,
}

impl MemberRow {
    pub(crate) fn status(&self) -> MemberStatus {
        self.status
    }

    pub(crate) fn enrolled_at(&self) -> Option<DateTime<Utc>> {
        instant(self.enrolled_at)
    }

    pub(crate) fn referrer(&self) -> Option<MemberId> {
        self.extras
            .as_ref()
            .and_then(|x| x.referrer.as_deref())
            .and_then(|r| MemberId::parse(r).ok())
    }

    /// Applies one event of this member's stream (the core's `evolve`, restricted to what the
    /// views need).
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::Enrolled(e) => {
                self.status = MemberStatus::Active;
                self.enrolled_at = nanos(e.enrolled_at);
                if let Some(referrer) = &e.referrer {
                    self.extras_mut().referrer = Some(referrer.as_str().into());
                }
                self.tier = e.tier.index;
                self.tier_since = nanos(e.enrolled_at);
                if let Some(c) = &e.welcome {
                    self.credit(c, Kind::Earned);
                }
            }
            Event::PurchaseRecorded(e) => {
                if let Some(c) = &e.credit {
                    self.credit(c, Kind::Earned);
                }
                self.note_activity(e.activity_deadline);
                push_compact(
                    &mut self.qualifying,
                    QualifyingRow {
                        sale: sale_key(e.store.as_str(), e.transaction_id.as_str()),
                        txn: key(e.transaction_id.as_str()),
                        at: nanos(e.occurred_at),
                        spend: e.eligible_amount,
                        points: e.points.value(),
                    },
                );
            }
            Event::ReferralQualified(e) => {
                if let Some(c) = &e.newcomer_credit {
                    self.credit(c, Kind::Earned);
                }
            }
            Event::TierChanged(e) => {
                self.tier = e.to.index;
                self.tier_since = nanos(e.occurred_at);
                if let Some(at) = e.review_at {
                    self.last_review_at = self.last_review_at.max(nanos(at));
                }
            }
            Event::RefundRecorded(e) => {
                let txn = key(e.transaction_id.as_str());
                let purchase = match &e.purchase_store {
                    Some(store) => {
                        let sale = sale_key(store.as_str(), e.transaction_id.as_str());
                        self.qualifying.iter().find(|q| q.sale == sale)
                    }
                    None => self.qualifying.iter().find(|q| q.txn == txn),
                };
                let (sale, at) = purchase.map_or((0, nanos(e.occurred_at)), |q| (q.sale, q.at));
                self.claw_back(&e.debit);
                push_compact(
                    &mut self.qualifying,
                    QualifyingRow {
                        sale,
                        txn,
                        at,
                        spend: -e.eligible_amount,
                        points: e.points.value().saturating_neg(),
                    },
                );
            }
            Event::PointsRedeemed(e) => {
                self.draw(&e.draws);
                self.redeemed = self.redeemed.saturating_add(e.points.value());
                if let Some(reward) = &e.reward_id {
                    let reward = key(reward.as_str());
                    let extras = self.extras_mut();
                    match extras.rewards.iter_mut().find(|(k, _)| *k == reward) {
                        Some((_, n)) => *n = n.saturating_add(1),
                        None => extras.rewards.push((reward, 1)),
                    }
                    extras
                        .reward_redemptions
                        .push((key(e.redemption_id.as_str()), reward));
                }
                self.note_activity(e.activity_deadline);
            }
            Event::RedemptionCancelled(e) => {
                let mut restored = 0i64;
                for d in &e.restored {
                    let k = key(d.lot_id.as_str());
                    if let Some(lot) = self.lots.iter_mut().find(|l| l.key == k) {
                        lot.remaining = lot.remaining.saturating_add(d.points.value());
                    }
                    restored = restored.saturating_add(d.points.value());
                }
                self.redeemed = self.redeemed.saturating_sub(restored);
                let redemption = key(e.redemption_id.as_str());
                if let Some(extras) = self.extras.as_deref_mut()
                    && let Some(i) = extras
                        .reward_redemptions
                        .iter()
                        .position(|(r, _)| *r == redemption)
                {
                    let (_, reward) = extras.reward_redemptions.swap_remove(i);
                    if let Some((_, n)) = extras.rewards.iter_mut().find(|(k, _)| *k == reward) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            Event::PointsExpired(e) => {
                let k = key(e.lot_id.as_str());
                if let Some(lot) = self.lots.iter_mut().find(|l| l.key == k) {
                    lot.remaining = lot.remaining.saturating_sub(e.points.value());
                }
                self.expired = self.expired.saturating_add(e.points.value());
            }
            Event::ActivityRewarded(e) => self.credit(&e.credit, Kind::Earned),
            Event::ActivityRefused(_) => {}
            Event::PointsAdjusted(e) => {
                if let Some(c) = &e.credit {
                    self.credit(c, Kind::Adjusted);
                }
                if let Some(d) = &e.debit {
                    self.debit(d);
                    self.adjusted = self.adjusted.saturating_sub(d.taken().value());
                    self.shortfall = self.shortfall.saturating_add(d.shortfall.value());
                }
            }
            Event::GoodwillGranted(e) => self.credit(&e.credit, Kind::Earned),
            Event::ReferralBonusCredited(e) => self.credit(&e.credit, Kind::Earned),
            Event::ReferralRevoked(e) => self.claw_back(&e.debit),
            Event::ReferralBonusRevoked(e) => self.claw_back(&e.debit),
            Event::MemberSuspended(_) => self.status = MemberStatus::Suspended,
            Event::MemberReinstated(_) => self.status = MemberStatus::Active,
            Event::AccountClosed(e) => {
                self.draw(&e.forfeited);
                let forfeited: i64 = e
                    .forfeited
                    .iter()
                    .fold(0i64, |a, d| a.saturating_add(d.points.value()));
                self.forfeited = self.forfeited.saturating_add(forfeited);
                self.status = MemberStatus::Closed;
            }
        }
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    fn note_activity(&mut self, deadline: Option<DateTime<Utc>>) {
        if let Some(d) = deadline {
            let d = nanos(d);
            self.inactivity_deadline = if self.inactivity_deadline == NONE {
                d
            } else {
                self.inactivity_deadline.max(d)
            };
        }
    }

    fn credit(&mut self, c: &Credit, kind: Kind) {
        self.debt = self.debt.saturating_sub(c.debt_repaid.value()).max(0);
        push_compact(
            &mut self.lots,
            LotRow {
                key: key(c.lot_id.as_str()),
                remaining: c.lot_points().value(),
                spendable_from: nanos(c.spendable_from),
                expires_at: match c.expiry {
                    LotExpiry::At(t) => nanos(t),
                    LotExpiry::OnInactivity => ON_INACTIVITY,
                    LotExpiry::Never => NEVER,
                },
            },
        );
        match kind {
            Kind::Earned => self.earned = self.earned.saturating_add(c.points.value()),
            Kind::Adjusted => self.adjusted = self.adjusted.saturating_add(c.points.value()),
        }
        self.note_activity(c.activity_deadline);
    }

    fn draw(&mut self, draws: &[LotDraw]) {
        for d in draws {
            let k = key(d.lot_id.as_str());
            if let Some(lot) = self.lots.iter_mut().find(|l| l.key == k) {
                lot.remaining = lot.remaining.saturating_sub(d.points.value());
            }
        }
    }

    fn debit(&mut self, d: &Debit) {
        self.draw(&d.draws);
        self.debt = self.debt.saturating_add(d.debt_added.value());
    }

    /// Points taken back because what earned them was undone (a refund, a revoked referral).
    fn claw_back(&mut self, d: &Debit) {
        self.debit(d);
        self.clawed_back = self.clawed_back.saturating_add(d.taken().value());
        self.shortfall = self.shortfall.saturating_add(d.shortfall.value());
    }

    /// When a lot expires, `None` for never.
    fn expires_at(&self, lot: &LotRow) -> Option<i64> {
        match lot.expires_at {
            NEVER => None,
            ON_INACTIVITY => (self.inactivity_deadline != NONE).then_some(self.inactivity_deadline),
            t => Some(t),
        }
    }

    /// The same arithmetic as the core's `MemberState::balance`.
    pub(crate) fn balance_parts(&self, as_of: i64) -> BalanceParts {
        let mut parts = BalanceParts::default();
        for lot in self.lots.iter().filter(|l| l.remaining > 0) {
            let expires = self.expires_at(lot);
            if expires.is_some_and(|t| t <= as_of) {
                parts.due = parts.due.saturating_add(lot.remaining);
                continue;
            }
            if lot.spendable_from <= as_of {
                parts.available = parts.available.saturating_add(lot.remaining);
            } else {
                parts.pending = parts.pending.saturating_add(lot.remaining);
            }
            if let Some(at) = expires {
                parts.next_expiry = match parts.next_expiry {
                    Some((n_at, n)) if n_at < at => Some((n_at, n)),
                    Some((n_at, n)) if n_at == at => Some((at, n.saturating_add(lot.remaining))),
                    _ => Some((at, lot.remaining)),
                };
            }
        }
        parts
    }

    /// The soonest instant at which a lot holding points expires (recorded or not), for the
    /// scheduler.
    pub(crate) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.lots
            .iter()
            .filter(|l| l.remaining > 0)
            .filter_map(|l| self.expires_at(l))
            .min()
            .and_then(instant)
    }

    /// A tier review is due as of `now` and has not run yet (by the log or the scheduler's note).
    pub(crate) fn review_due(
        &self,
        program: &Program,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !matches!(self.status, MemberStatus::Active | MemberStatus::Suspended) {
            return None;
        }
        let enrolled = self.enrolled_at()?;
        let due = loyalty_core::tiers::last_review_at(program, enrolled, now)?;
        let due_n = nanos(due);
        (due_n > self.last_review_at && due_n > self.reviewed_through).then_some(due)
    }

    /// The same read model, the scheduler's note aside (for comparisons).
    pub(crate) fn same_as(&self, other: &MemberRow) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.reviewed_through = NONE;
        b.reviewed_through = NONE;
        a == b
    }

    pub(crate) fn balance_view(&self, member: &MemberId, as_of: DateTime<Utc>) -> BalanceView {
        let parts = self.balance_parts(nanos(as_of));
        BalanceView {
            member_id: member.clone(),
            as_of,
            available: Points::new(parts.available),
            pending: Points::new(parts.pending),
            debt: Points::new(self.debt),
            balance: Points::new(
                parts
                    .available
                    .saturating_add(parts.pending)
                    .saturating_sub(self.debt),
            ),
            lifetime_earned: Points::new(self.earned),
            redeemed: Points::new(self.redeemed),
            expired: Points::new(self.expired.saturating_add(parts.due)),
            clawed_back: Points::new(self.clawed_back),
            adjusted: Points::new(self.adjusted),
            forfeited: Points::new(self.forfeited),
            shortfall: Points::new(self.shortfall),
            next_expiry: parts.next_expiry.and_then(|(at, points)| {
                instant(at).map(|at| NextExpiryView {
                    points: Points::new(points),
                    at,
                })
            }),
            stream_revision: self.revision,
        }
    }

    fn qualifying_value(&self, metric: QualifyingMetric, from: i64, to: i64) -> Decimal {
        self.qualifying
            .iter()
            .filter(|q| q.at >= from && q.at <= to)
            .map(|q| match metric {
                QualifyingMetric::QualifyingSpend => q.spend,
                QualifyingMetric::PointsEarned => Decimal::from(q.points),
            })
            .sum()
    }

    pub(crate) fn tier_view(
        &self,
        member: &MemberId,
        program: &Program,
        as_of: DateTime<Utc>,
    ) -> TierView {
        let window_start = loyalty_core::tiers::window_start(program, as_of);
        let metric = program.tiers.metric;
        let value = self.qualifying_value(metric, nanos(window_start), nanos(as_of));
        let levels = program.tiers();
        let index = self.tier as usize;
        let next = levels.get(index.saturating_add(1)).map(|l| NextTierView {
            name: l.name.clone(),
            threshold: l.threshold,
            remaining: (l.threshold - value).max(Decimal::ZERO),
        });
        TierView {
            member_id: member.clone(),
            as_of,
            current: TierRefView {
                index: self.tier,
                name: levels
                    .get(index)
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
            },
            since: instant(self.tier_since),
            metric: match metric {
                QualifyingMetric::QualifyingSpend => "qualifying_spend",
                QualifyingMetric::PointsEarned => "points_earned",
            },
            qualifying_value: value,
            window_start,
            next,
            next_review_at: self
                .enrolled_at()
                .and_then(|enrolled| loyalty_core::tiers::next_review_at(program, enrolled, as_of)),
            last_review_at: instant(self.last_review_at),
        }
    }

    /// Times the member redeemed a reward (cancellations deducted).
    pub(crate) fn reward_count(&self, reward: &loyalty_core::RewardId) -> u32 {
        let k = key(reward.as_str());
        self.extras
            .as_ref()
            .and_then(|x| x.rewards.iter().find(|(r, _)| *r == k))
            .map_or(0, |(_, n)| *n)
    }

    pub(crate) fn rewards_view(&self, program: &Program, as_of: DateTime<Utc>) -> Vec<RewardView> {
        if self.status != MemberStatus::Active {
            return Vec::new();
        }
        let available = self.balance_parts(nanos(as_of)).available;
        let today = loyalty_core::calendar::local_date(as_of, program.timezone());
        program
            .rewards()
            .iter()
            .filter(|r| r.available_from.is_none_or(|d| d <= today))
            .filter(|r| r.available_until.is_none_or(|d| today <= d))
            .filter(|r| {
                r.min_tier
                    .as_deref()
                    .and_then(|t| program.tier_index(t))
                    .is_none_or(|required| self.tier as usize >= required)
            })
            .filter(|r| r.cost.value() <= available)
            .filter_map(|r| {
                let used = self.reward_count(&r.id);
                let remaining_uses = r.per_member_limit.map(|l| l.saturating_sub(used));
                (remaining_uses != Some(0)).then(|| RewardView {
                    reward_id: r.id.clone(),
                    name: r.name.clone(),
                    cost: r.cost,
                    remaining_uses,
                })
            })
            .collect()
    }
}

/// Sums of the views over every member.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TotalsAcc {
    members: u64,
    active: u64,
    suspended: u64,
    closed: u64,
    available: i64,
    pending: i64,
    debt: i64,
    breakage: i64,
    earned: i64,
    redeemed: i64,
    clawed_back: i64,
    forfeited: i64,
}

impl TotalsAcc {
    pub(crate) fn add(&mut self, row: &MemberRow, as_of: i64) {
        match row.status {
            MemberStatus::NotEnrolled => return,
            MemberStatus::Active => self.active += 1,
            MemberStatus::Suspended => self.suspended += 1,
            MemberStatus::Closed => self.closed += 1,
        }
        self.members += 1;
        let parts = row.balance_parts(as_of);
        self.available = self.available.saturating_add(parts.available);
        self.pending = self.pending.saturating_add(parts.pending);
        self.debt = self.debt.saturating_add(row.debt);
        self.breakage = self
            .breakage
            .saturating_add(row.expired.saturating_add(parts.due));
        self.earned = self.earned.saturating_add(row.earned);
        self.redeemed = self.redeemed.saturating_add(row.redeemed);
        self.clawed_back = self.clawed_back.saturating_add(row.clawed_back);
        self.forfeited = self.forfeited.saturating_add(row.forfeited);
    }

    pub(crate) fn finish(
        self,
        program: &Program,
        as_of: DateTime<Utc>,
        position: Position,
    ) -> ProgramTotals {
        let outstanding = self.available.saturating_add(self.pending);
        let value = program.point_value();
        ProgramTotals {
            as_of,
            position,
            members: self.members,
            active_members: self.active,
            suspended_members: self.suspended,
            closed_members: self.closed,
            points_outstanding: Points::new(outstanding),
            points_available: Points::new(self.available),
            points_pending: Points::new(self.pending),
            debt: Points::new(self.debt),
            point_value: value,
            liability: program
                .points_value(Points::new(outstanding))
                .unwrap_or(Decimal::MAX),
            currency: program.currency().clone(),
            breakage_points: Points::new(self.breakage),
            breakage_value: program
                .points_value(Points::new(self.breakage))
                .unwrap_or(Decimal::MAX),
            lifetime_earned: Points::new(self.earned),
            redeemed: Points::new(self.redeemed),
            clawed_back: Points::new(self.clawed_back),
            forfeited: Points::new(self.forfeited),
        }
    }
}

/// Rows boxed, keys as `Box<str>`: a table slot is 24 bytes, so the slack a hash table keeps
/// (up to half of its slots after it grows) costs little; the rows themselves are allocated
/// exactly.
type Shard = HashMap<Box<str>, Box<MemberRow>>;

/// Every member's row, sharded so that readers rarely wait for the single writer.
pub(crate) struct ReadModel {
    shards: Vec<RwLock<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Last position applied, and events that could not be read.
    state: RwLock<ApplyState>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ApplyState {
    pub(crate) position: Position,
    pub(crate) events: u64,
    pub(crate) unreadable: u64,
    pub(crate) errors: Vec<String>,
}

/// Most unreadable-event messages kept (the count goes on).
const MAX_ERRORS_KEPT: usize = 100;

impl ReadModel {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: Default::default(),
            state: RwLock::new(ApplyState::default()),
        }
    }

    fn shard(&self, member: &str) -> &RwLock<Shard> {
        let i = (self.hasher.hash_one(member) as usize) % SHARDS;
        &self.shards[i]
    }

    pub(crate) fn position(&self) -> Position {
        self.state.read().position
    }

    pub(crate) fn apply_state(&self) -> ApplyState {
        self.state.read().clone()
    }

    /// Applies one recorded event of `$all` (events of other streams only move the position).
    pub(crate) fn apply_recorded(&self, recorded: &RecordedEvent) {
        if let Some(member) = recorded.stream.strip_prefix(codec::MEMBER_PREFIX) {
            match codec::decode(recorded) {
                Ok(event) => {
                    let mut shard = self.shard(member).write();
                    if !shard.contains_key(member) {
                        shard.insert(member.into(), Box::default());
                    }
                    if let Some(row) = shard.get_mut(member) {
                        row.apply(&event);
                        row.revision = recorded.revision;
                        row.last_position = recorded.position;
                    }
                }
                Err(e) => {
                    let mut state = self.state.write();
                    state.unreadable += 1;
                    if state.errors.len() < MAX_ERRORS_KEPT {
                        state.errors.push(format!(
                            "{} revision {} ({}): {e}",
                            recorded.stream, recorded.revision, recorded.position
                        ));
                    }
                }
            }
        }
        let mut state = self.state.write();
        state.events += 1;
        if recorded.position > state.position {
            state.position = recorded.position;
        }
    }

    pub(crate) fn with_row<T>(
        &self,
        member: &MemberId,
        f: impl FnOnce(&MemberRow) -> T,
    ) -> Option<T> {
        let shard = self.shard(member.as_str()).read();
        shard
            .get(member.as_str())
            .filter(|r| r.status != MemberStatus::NotEnrolled)
            .map(|r| f(r))
    }

    pub(crate) fn totals(&self, program: &Program, as_of: DateTime<Utc>) -> ProgramTotals {
        let at = nanos(as_of);
        let mut acc = TotalsAcc::default();
        for shard in &self.shards {
            for row in shard.read().values() {
                acc.add(row, at);
            }
        }
        acc.finish(program, as_of, self.position())
    }

    /// Visits every row (one shard locked at a time), with the member id as stored in the
    /// stream name.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &MemberRow)) {
        for shard in &self.shards {
            for (member, row) in shard.read().iter() {
                f(member, row);
            }
        }
    }

    pub(crate) fn note_reviewed(&self, member: &MemberId, through: DateTime<Utc>) {
        if let Some(row) = self.shard(member.as_str()).write().get_mut(member.as_str()) {
            row.reviewed_through = row.reviewed_through.max(nanos(through));
        }
    }

    pub(crate) fn get(&self, member: &str) -> Option<MemberRow> {
        self.shard(member)
            .read()
            .get(member)
            .map(|r| MemberRow::clone(r))
    }
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    //! The compact rows must read exactly like the core's `MemberState`: random histories are
    //! decided and evolved by the core, folded into a row, and both are read at several instants.

    use super::*;
    use chrono::TimeZone;
    use loyalty_core::{
        Adjust, AdjustmentId, CancelRedemption, CategoryId, Command, Currency, Enroll, Expire,
        Goodwill, MemberState, OperatorId, PurchaseLine, ReasonCode, RecordPurchase, Redeem,
        RedeemTarget, RedemptionId, Refund, RefundId, RefundScope, ReviewTier, ServerTime, Sku,
        StoreId, TerminalId, TransactionId, decide, evolve,
    };
    use proptest::prelude::*;

    const DEMO: &str = include_str!("../../../config/program.toml");

    fn programs() -> Vec<Program> {
        let demo = Program::from_toml_str(DEMO).unwrap();
        let mut inactivity = demo.clone();
        inactivity.expiry = loyalty_core::program::ExpiryPolicy::Inactivity { months: 2 };
        let mut clamp = demo.clone();
        clamp.clawback.policy = loyalty_core::program::ClawbackPolicy::Clamp;
        clamp.pending.days = 0;
        vec![demo, inactivity, clamp]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Purchase { amount: i64, beans: bool },
        Redeem(i64),
        RedeemReward(usize),
        Refund { purchase: usize, amount: i64 },
        Cancel(usize),
        Adjust(i64),
        Goodwill(i64),
        Advance(i64),
        Expire,
        Review,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1i64..400, any::<bool>()).prop_map(|(amount, beans)| Op::Purchase { amount, beans }),
            4 => (1i64..120).prop_map(Op::Redeem),
            2 => (0usize..4).prop_map(Op::RedeemReward),
            2 => (0usize..16, 1i64..200).prop_map(|(purchase, amount)| Op::Refund { purchase, amount }),
            2 => (0usize..16).prop_map(Op::Cancel),
            1 => (-150i64..150).prop_map(Op::Adjust),
            1 => (1i64..100).prop_map(Op::Goodwill),
            3 => (0i64..90).prop_map(Op::Advance),
            1 => Just(Op::Expire),
            1 => Just(Op::Review),
        ]
    }

    fn command(
        op: &Op,
        i: usize,
        at: DateTime<Utc>,
        m: &MemberId,
        program: &Program,
    ) -> Option<Command> {
        let member_id = m.clone();
        let occurred_at = at;
        Some(match op {
            Op::Purchase { amount, beans } => Command::RecordPurchase(RecordPurchase {
                member_id,
                transaction_id: TransactionId::parse(format!("T{i}")).unwrap(),
                store: StoreId::parse("paris-opera").unwrap(),
                terminal: TerminalId::parse("till").unwrap(),
                occurred_at,
                currency: Currency::parse("EUR").unwrap(),
                lines: vec![PurchaseLine {
                    sku: Sku::parse("SKU").unwrap(),
                    category: CategoryId::parse(if *beans { "coffee-beans" } else { "pastry" })
                        .unwrap(),
                    quantity: Decimal::ONE,
                    amount: Decimal::from(*amount),
                }],
            }),
            Op::Redeem(points) => Command::Redeem(Redeem {
                member_id,
                redemption_id: RedemptionId::parse(format!("R{i}")).unwrap(),
                occurred_at,
                target: RedeemTarget::Points(Points::new(*points)),
            }),
            Op::RedeemReward(reward) => Command::Redeem(Redeem {
                member_id,
                redemption_id: RedemptionId::parse(format!("R{i}")).unwrap(),
                occurred_at,
                target: RedeemTarget::Reward(program.rewards()[*reward].id.clone()),
            }),
            Op::Refund { purchase, amount } => Command::Refund(Refund {
                member_id,
                refund_id: RefundId::parse(format!("RF{i}")).unwrap(),
                store: StoreId::parse("paris-opera").unwrap(),
                purchase_store: StoreId::parse("paris-opera").unwrap(),
                transaction_id: TransactionId::parse(format!("T{purchase}")).unwrap(),
                occurred_at,
                currency: Currency::parse("EUR").unwrap(),
                scope: RefundScope::Amount(Decimal::from(*amount)),
            }),
            Op::Cancel(redemption) => Command::CancelRedemption(CancelRedemption {
                member_id,
                redemption_id: RedemptionId::parse(format!("R{redemption}")).unwrap(),
                occurred_at,
            }),
            Op::Adjust(points) if *points != 0 => Command::Adjust(Adjust {
                member_id,
                adjustment_id: AdjustmentId::parse(format!("A{i}")).unwrap(),
                points: Points::new(*points),
                reason_code: ReasonCode::parse("correction").unwrap(),
                note: String::new(),
                operator: OperatorId::parse("op").unwrap(),
                occurred_at,
            }),
            Op::Adjust(_) => return None,
            Op::Goodwill(points) => Command::Goodwill(Goodwill {
                member_id,
                complaint_id: loyalty_core::ComplaintId::parse(format!("C{i}")).unwrap(),
                points: Points::new(*points),
                reason_code: ReasonCode::parse("complaint").unwrap(),
                note: String::new(),
                operator: OperatorId::parse("op").unwrap(),
                occurred_at,
            }),
            Op::Advance(_) => return None,
            Op::Expire => Command::Expire(Expire {
                member_id,
                occurred_at,
            }),
            Op::Review => Command::ReviewTier(ReviewTier {
                member_id,
                occurred_at,
            }),
        })
    }

    fn assert_same(
        row: &MemberRow,
        state: &MemberState,
        program: &Program,
        m: &MemberId,
        at: DateTime<Utc>,
    ) {
        let core = state.balance(at);
        let view = row.balance_view(m, at);
        assert_eq!(view.available, core.available, "available at {at}");
        assert_eq!(view.pending, core.pending, "pending at {at}");
        assert_eq!(view.debt, core.debt, "debt at {at}");
        assert_eq!(view.balance, core.balance, "balance at {at}");
        assert_eq!(view.lifetime_earned, core.lifetime.earned, "earned at {at}");
        assert_eq!(view.redeemed, core.lifetime.redeemed, "redeemed at {at}");
        assert_eq!(view.expired, core.lifetime.expired, "expired at {at}");
        assert_eq!(
            view.clawed_back, core.lifetime.clawed_back,
            "clawed back at {at}"
        );
        assert_eq!(view.adjusted, core.lifetime.adjusted, "adjusted at {at}");
        assert_eq!(view.forfeited, core.lifetime.forfeited, "forfeited at {at}");
        assert_eq!(view.shortfall, core.lifetime.shortfall, "shortfall at {at}");
        assert_eq!(
            view.next_expiry.map(|n| (n.points, n.at)),
            core.next_expiry.map(|n| (n.points, n.at)),
            "next expiry at {at}"
        );
        let tier = row.tier_view(m, program, at);
        assert_eq!(tier.current.index, state.tier().index, "tier at {at}");
        assert_eq!(
            tier.qualifying_value,
            state.qualifying_value(program, at),
            "qualifying at {at}"
        );
        assert_eq!(row.status(), state.status());
        for reward in program.rewards() {
            assert_eq!(row.reward_count(&reward.id), state.reward_count(&reward.id));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn a_row_reads_like_the_cores_state_after_any_history(
            ops in proptest::collection::vec(op(), 1..40),
            which in 0usize..3,
        ) {
            let program = &programs()[which];
            let m = MemberId::parse("m").unwrap();
            let mut at = Utc.with_ymd_and_hms(2026, 3, 20, 9, 30, 0).unwrap();
            let mut state = MemberState::default();
            let mut row = MemberRow::default();
            let enroll = Command::Enroll(Enroll { member_id: m.clone(), referrer: None, occurred_at: at });
            for event in decide(&state, &enroll, program, ServerTime::at(at)).unwrap().events {
                evolve(&mut state, &event);
                row.apply(&event);
            }
            for (i, op) in ops.iter().enumerate() {
                if let Op::Advance(days) = op {
                    at += chrono::Duration::days(*days);
                    continue;
                }
                let Some(command) = command(op, i, at, &m, program) else { continue };
                if let Ok(decision) = decide(&state, &command, program, ServerTime::at(at)) {
                    for event in &decision.events {
                        evolve(&mut state, event);
                        row.apply(event);
                    }
                }
                assert_same(&row, &state, program, &m, at);
            }
            for later in [0, 1, 15, 45, 100, 400, 800] {
                assert_same(&row, &state, program, &m, at + chrono::Duration::days(later));
            }
            let next_due = state
                .lots()
                .iter()
                .filter(|l| l.remaining.is_positive())
                .filter_map(|l| state.lot_expires_at(l))
                .min();
            prop_assert_eq!(row.next_due(), next_due);
        }
    }
}
