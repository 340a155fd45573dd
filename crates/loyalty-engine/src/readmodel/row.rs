//! One member's compact row: integers and small vectors, no maps of strings. Events are folded
//! into it by the core's own accounting rules ([`loyalty_core::fold`]); the row only decides how
//! to store what they change.

use chrono::{DateTime, Utc};
use loyalty_core::fold::{self, Ledger, LotFacts};
use loyalty_core::{
    Credit, Enrolled, Event, Lifetime, LotExpiry, LotId, MemberId, MemberStatus, Points,
    RedemptionId, RewardId, StoreId, TierRef, TransactionId,
};
use loyalty_store::Position;
use rust_decimal::Decimal;

pub(crate) const NONE: i64 = i64::MIN;
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

pub(crate) fn instant(n: i64) -> Option<DateTime<Utc>> {
    if n == NONE || n == NEVER || n == ON_INACTIVITY {
        None
    } else {
        Some(DateTime::from_timestamp_nanos(n))
    }
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

/// The key of a sale (`store/transaction`; `/` is outside the id alphabet).
fn sale_key(store: &str, transaction: &str) -> u64 {
    key(&format!("{store}/{transaction}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LotRow {
    key: u64,
    pub(crate) remaining: i64,
    pub(crate) spendable_from: i64,
    /// Nanoseconds, `NEVER` or `ON_INACTIVITY`.
    expires_at: i64,
    /// An expiry notice announced the lot (never again, as the core decides).
    notified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QualifyingRow {
    /// The sale the entry belongs to (refunds are dated by their purchase): the key of
    /// `store/transaction`.
    sale: u64,
    /// The key of the transaction id alone, for refunds recorded before stores scoped ids.
    txn: u64,
    pub(crate) at: i64,
    pub(crate) spend: Decimal,
    pub(crate) points: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    referrer: Option<Box<str>>,
    /// (reward key, redemptions not cancelled).
    rewards: Vec<(u64, u32)>,
    /// (redemption key, reward key) for redemptions of catalog rewards, to undo the count on a
    /// cancellation (the cancellation event names only the redemption).
    reward_redemptions: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberRow {
    pub(crate) status: MemberStatus,
    /// The tier as recorded: its index then and its name. Views place it in today's program
    /// by name, as decisions do (a program may reorder its tiers).
    pub(crate) tier_index: u32,
    pub(crate) tier_name: Box<str>,
    pub(crate) enrolled_at: i64,
    pub(crate) tier_since: i64,
    pub(crate) last_review_at: i64,
    inactivity_deadline: i64,
    /// What few members have, kept out of line so that the row stays small.
    extras: Option<Box<Extras>>,
    pub(crate) debt: Points,
    pub(crate) totals: Lifetime,
    pub(crate) lots: Vec<LotRow>,
    pub(crate) qualifying: Vec<QualifyingRow>,
    /// Days with purchases or refunds, for the analytics (`activity.rs`).
    pub(crate) activity: Vec<super::activity::DayRow>,
    /// The last win-back bonus (nanoseconds, `NONE` for never), so the scheduler does not
    /// send the rule a member it granted one within its period.
    pub(crate) last_win_back_at: i64,
    pub(crate) revision: u64,
    pub(crate) last_position: Position,
    /// Scheduler's note (not part of the log): a review due at or before this instant already
    /// ran without changing the tier, so it need not run again. Lost on restart, which only
    /// costs one more idempotent review.
    pub(crate) reviewed_through: i64,
}

impl Default for MemberRow {
    fn default() -> Self {
        Self {
            status: MemberStatus::NotEnrolled,
            tier_index: 0,
            tier_name: Box::from(""),
            enrolled_at: NONE,
            tier_since: NONE,
            last_review_at: NONE,
            inactivity_deadline: NONE,
            extras: None,
            debt: Points::ZERO,
            totals: Lifetime::default(),
            lots: Vec::new(),
            qualifying: Vec::new(),
            activity: Vec::new(),
            last_win_back_at: NONE,
            revision: 0,
            last_position: Position::START,
            reviewed_through: NONE,
        }
    }
}

/// Pushes with modest growth: most members hold a handful of lots, and `Vec`'s doubling (from
/// a capacity of 4) would spend more memory on empty slots than on the lots themselves.
pub(super) fn push_compact<T>(items: &mut Vec<T>, item: T) {
    if items.len() == items.capacity() {
        items.reserve_exact((items.len() / 2).max(1));
    }
    items.push(item);
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

    /// Applies one event of this member's stream, by the core's rules; days are local dates
    /// in `tz`, the program's timezone.
    pub(crate) fn apply(&mut self, event: &Event, tz: chrono_tz::Tz) {
        fold::fold(self, event);
        self.note_spend(event, tz);
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// When a lot expires, `None` for never.
    fn expires_at(&self, lot: &LotRow) -> Option<i64> {
        match lot.expires_at {
            NEVER => None,
            ON_INACTIVITY => (self.inactivity_deadline != NONE).then_some(self.inactivity_deadline),
            t => Some(t),
        }
    }

    /// The lots holding points, as the core's balance arithmetic reads them.
    pub(crate) fn lot_facts(&self) -> impl Iterator<Item = LotFacts> + '_ {
        self.lots
            .iter()
            .filter(|l| l.remaining > 0)
            .map(|l| LotFacts {
                remaining: Points::new(l.remaining),
                spendable_from: DateTime::from_timestamp_nanos(l.spendable_from),
                expires_at: self.expires_at(l).map(DateTime::from_timestamp_nanos),
            })
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

    /// Whether an expiry notice is due: a dated lot holding points that no notice announced
    /// yet expires after `now` and by `until` (the end of the program's notice period). Lots
    /// past `now` are the expiry's business, and lots that expire with the member's inactivity
    /// get no notice. The core decides `NotifyExpiry` by the same rule.
    pub(crate) fn notice_due(&self, now: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        let (now, until) = (nanos(now), nanos(until));
        self.lots.iter().any(|l| {
            l.remaining > 0
                && !l.notified
                && l.expires_at != NEVER
                && l.expires_at != ON_INACTIVITY
                && l.expires_at > now
                && l.expires_at <= until
        })
    }

    /// Times the member redeemed a reward (cancellations deducted).
    pub(crate) fn reward_count(&self, reward: &RewardId) -> u32 {
        let k = key(reward.as_str());
        self.extras
            .as_ref()
            .and_then(|x| x.rewards.iter().find(|(r, _)| *r == k))
            .map_or(0, |(_, n)| *n)
    }

    /// The same read model, the scheduler's note aside (for comparisons).
    pub(crate) fn same_as(&self, other: &MemberRow) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.reviewed_through = NONE;
        b.reviewed_through = NONE;
        a == b
    }
}

impl Ledger for MemberRow {
    fn enrolled(&mut self, e: &Enrolled) {
        self.status = MemberStatus::Active;
        self.enrolled_at = nanos(e.enrolled_at);
        if let Some(referrer) = &e.referrer {
            self.extras_mut().referrer = Some(referrer.as_str().into());
        }
        self.tier_index = e.tier.index;
        self.tier_name = e.tier.name.as_str().into();
        self.tier_since = nanos(e.enrolled_at);
    }

    fn add_lot(&mut self, c: &Credit) {
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
                notified: false,
            },
        );
    }

    fn change_lot(&mut self, lot: &LotId, delta: Points) {
        let k = key(lot.as_str());
        if let Some(lot) = self.lots.iter_mut().find(|l| l.key == k) {
            lot.remaining = lot.remaining.saturating_add(delta.value());
        }
    }

    fn lot_notified(&mut self, lot: &LotId) {
        let k = key(lot.as_str());
        if let Some(lot) = self.lots.iter_mut().find(|l| l.key == k) {
            lot.notified = true;
        }
    }

    fn debt_mut(&mut self) -> &mut Points {
        &mut self.debt
    }

    fn totals_mut(&mut self) -> &mut Lifetime {
        &mut self.totals
    }

    fn note_activity(&mut self, deadline: DateTime<Utc>) {
        let d = nanos(deadline);
        self.inactivity_deadline = if self.inactivity_deadline == NONE {
            d
        } else {
            self.inactivity_deadline.max(d)
        };
    }

    fn set_status(&mut self, status: MemberStatus) {
        self.status = status;
    }

    fn set_tier(&mut self, tier: &TierRef, since: DateTime<Utc>, review_at: Option<DateTime<Utc>>) {
        self.tier_index = tier.index;
        self.tier_name = tier.name.as_str().into();
        self.tier_since = nanos(since);
        if let Some(at) = review_at {
            self.last_review_at = self.last_review_at.max(nanos(at));
        }
    }

    fn qualify(
        &mut self,
        store: &StoreId,
        transaction: &TransactionId,
        at: DateTime<Utc>,
        spend: Decimal,
        points: Points,
    ) {
        push_compact(
            &mut self.qualifying,
            QualifyingRow {
                sale: sale_key(store.as_str(), transaction.as_str()),
                txn: key(transaction.as_str()),
                at: nanos(at),
                spend,
                points: points.value(),
            },
        );
    }

    fn unqualify(
        &mut self,
        store: Option<&StoreId>,
        transaction: &TransactionId,
        fallback_at: DateTime<Utc>,
        spend: Decimal,
        points: Points,
    ) {
        let txn = key(transaction.as_str());
        let purchase = match store {
            Some(store) => {
                let sale = sale_key(store.as_str(), transaction.as_str());
                self.qualifying.iter().find(|q| q.sale == sale)
            }
            None => self.qualifying.iter().find(|q| q.txn == txn),
        };
        let (sale, at) = purchase.map_or((0, nanos(fallback_at)), |q| (q.sale, q.at));
        push_compact(
            &mut self.qualifying,
            QualifyingRow {
                sale,
                txn,
                at,
                spend,
                points: points.value(),
            },
        );
    }

    fn reward_redeemed(&mut self, redemption: &RedemptionId, reward: &RewardId) {
        let reward = key(reward.as_str());
        let extras = self.extras_mut();
        match extras.rewards.iter_mut().find(|(k, _)| *k == reward) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => extras.rewards.push((reward, 1)),
        }
        extras
            .reward_redemptions
            .push((key(redemption.as_str()), reward));
    }

    fn redemption_cancelled(&mut self, redemption: &RedemptionId) {
        let redemption = key(redemption.as_str());
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
}

impl MemberRow {
    /// The row as a snapshot stores it.
    pub(super) fn to_stored(&self, member: &str) -> super::snapshot::StoredRow {
        let t = &self.totals;
        let extras = self.extras.as_deref();
        super::snapshot::StoredRow {
            member: member.to_owned(),
            status: match self.status {
                MemberStatus::NotEnrolled => 0,
                MemberStatus::Active => 1,
                MemberStatus::Suspended => 2,
                MemberStatus::Closed => 3,
            },
            tier_index: self.tier_index,
            tier_name: self.tier_name.to_string(),
            enrolled_at: self.enrolled_at,
            tier_since: self.tier_since,
            last_review_at: self.last_review_at,
            inactivity_deadline: self.inactivity_deadline,
            referrer: extras.and_then(|x| x.referrer.as_deref().map(str::to_owned)),
            rewards: extras.map(|x| x.rewards.clone()).unwrap_or_default(),
            reward_redemptions: extras
                .map(|x| x.reward_redemptions.clone())
                .unwrap_or_default(),
            debt: self.debt.value(),
            totals: [
                t.earned.value(),
                t.redeemed.value(),
                t.expired.value(),
                t.clawed_back.value(),
                t.adjusted.value(),
                t.forfeited.value(),
                t.shortfall.value(),
            ],
            lots: self
                .lots
                .iter()
                .map(|l| {
                    (
                        l.key,
                        l.remaining,
                        l.spendable_from,
                        l.expires_at,
                        l.notified,
                    )
                })
                .collect(),
            qualifying: self
                .qualifying
                .iter()
                .map(|q| (q.sale, q.txn, q.at, q.spend.serialize(), q.points))
                .collect(),
            activity: self
                .activity
                .iter()
                .map(|d| (d.day, d.purchases, d.spend.serialize()))
                .collect(),
            last_win_back_at: self.last_win_back_at,
            revision: self.revision,
            commit: self.last_position.commit,
            prepare: self.last_position.prepare,
        }
    }

    /// A row read back from a snapshot, with its member id; `None` if it does not make sense.
    pub(super) fn from_stored(v: super::snapshot::StoredRow) -> Option<(Box<str>, MemberRow)> {
        let status = match v.status {
            0 => MemberStatus::NotEnrolled,
            1 => MemberStatus::Active,
            2 => MemberStatus::Suspended,
            3 => MemberStatus::Closed,
            _ => return None,
        };
        let [
            earned,
            redeemed,
            expired,
            clawed_back,
            adjusted,
            forfeited,
            shortfall,
        ] = v.totals.map(Points::new);
        let extras =
            (v.referrer.is_some() || !v.rewards.is_empty() || !v.reward_redemptions.is_empty())
                .then(|| {
                    Box::new(Extras {
                        referrer: v.referrer.map(Box::from),
                        rewards: v.rewards,
                        reward_redemptions: v.reward_redemptions,
                    })
                });
        let row = MemberRow {
            status,
            tier_index: v.tier_index,
            tier_name: v.tier_name.into_boxed_str(),
            enrolled_at: v.enrolled_at,
            tier_since: v.tier_since,
            last_review_at: v.last_review_at,
            inactivity_deadline: v.inactivity_deadline,
            extras,
            debt: Points::new(v.debt),
            totals: Lifetime {
                earned,
                redeemed,
                expired,
                clawed_back,
                adjusted,
                forfeited,
                shortfall,
            },
            lots: v
                .lots
                .into_iter()
                .map(
                    |(key, remaining, spendable_from, expires_at, notified)| LotRow {
                        key,
                        remaining,
                        spendable_from,
                        expires_at,
                        notified,
                    },
                )
                .collect(),
            qualifying: v
                .qualifying
                .into_iter()
                .map(|(sale, txn, at, spend, points)| QualifyingRow {
                    sale,
                    txn,
                    at,
                    spend: Decimal::deserialize(spend),
                    points,
                })
                .collect(),
            activity: v
                .activity
                .into_iter()
                .map(|(day, purchases, spend)| super::activity::DayRow {
                    day,
                    purchases,
                    spend: Decimal::deserialize(spend),
                })
                .collect(),
            last_win_back_at: v.last_win_back_at,
            revision: v.revision,
            last_position: Position::new(v.commit, v.prepare),
            reviewed_through: NONE,
        };
        Some((v.member.into_boxed_str(), row))
    }

    /// Whether the row already holds the event at `revision` of its stream (a snapshot taken
    /// while the projection ran may hold a few events past its recorded position).
    pub(crate) fn holds(&self, revision: u64) -> bool {
        self.last_position != Position::START && revision <= self.revision
    }
}
