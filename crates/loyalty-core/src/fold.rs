//! The accounting rules of the log, written once: which lots, debt, lifetime totals, tier,
//! status and tier metric each event changes.
//!
//! The aggregate ([`crate::MemberState`], through [`crate::evolve`]) and the engine's compact
//! read models fold the same events through [`fold`], each into storage of its own that
//! implements [`Ledger`]. A rule changed here changes both; neither keeps a second copy of it.
//! Like `evolve`, folding cannot fail and never consults the program.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::event::{Credit, Debit, Enrolled, Event, LotDraw, TierRef};
use crate::ids::{LotId, RedemptionId, RewardId, StoreId, TransactionId};
use crate::points::{self, Points};
use crate::state::{Lifetime, MemberStatus};

/// Where a fold keeps what it changes. Each method is a plain storage operation; the rules of
/// which event calls which live in [`fold`].
pub trait Ledger {
    /// The member enrolled: their id, referrer, enrollment time and entry tier.
    fn enrolled(&mut self, event: &Enrolled);
    /// A new lot of `credit.lot_points()` points.
    fn add_lot(&mut self, credit: &Credit);
    /// Adds `delta` (negative: drawn, positive: given back) to a lot's remaining points.
    fn change_lot(&mut self, lot: &LotId, delta: Points);
    /// An expiry was recorded for the lot.
    fn lot_expired(&mut self, _lot: &LotId) {}
    /// An expiry notice announced the lot (a fact about the lot, not about its points).
    fn lot_notified(&mut self, _lot: &LotId) {}
    fn debt_mut(&mut self) -> &mut Points;
    fn totals_mut(&mut self) -> &mut Lifetime;
    /// Under the inactivity policy: an activity moved the deadline (the latest one wins).
    fn note_activity(&mut self, deadline: DateTime<Utc>);
    fn set_status(&mut self, status: MemberStatus);
    /// The tier changed at `since`; `review_at` is the review it settles, if any.
    fn set_tier(&mut self, tier: &TierRef, since: DateTime<Utc>, review_at: Option<DateTime<Utc>>);
    /// A purchase's contribution to the tier metric, dated by the purchase.
    fn qualify(
        &mut self,
        store: &StoreId,
        transaction: &TransactionId,
        at: DateTime<Utc>,
        spend: Decimal,
        points: Points,
    );
    /// A refund's contribution (negative), dated by its purchase: `store` is `None` for refunds
    /// recorded before stores scoped transaction ids (the transaction id alone named the
    /// purchase then); `fallback_at` dates it if the purchase is unknown.
    fn unqualify(
        &mut self,
        store: Option<&StoreId>,
        transaction: &TransactionId,
        fallback_at: DateTime<Utc>,
        spend: Decimal,
        points: Points,
    );
    /// A catalog reward was redeemed by `redemption`.
    fn reward_redeemed(&mut self, redemption: &RedemptionId, reward: &RewardId);
    /// `redemption` was cancelled: its reward, if any, counts once less.
    fn redemption_cancelled(&mut self, redemption: &RedemptionId);
}

/// Which lifetime total an award counts in.
#[derive(Clone, Copy)]
enum Kind {
    Earned,
    Adjusted,
}

/// Applies one event's accounting to `ledger`.
pub fn fold<L: Ledger + ?Sized>(ledger: &mut L, event: &Event) {
    match event {
        Event::Enrolled(e) => {
            ledger.enrolled(e);
            if let Some(c) = &e.welcome {
                credit(ledger, c, Kind::Earned);
            }
        }
        Event::PurchaseRecorded(e) => {
            if let Some(c) = &e.credit {
                credit(ledger, c, Kind::Earned);
            }
            if let Some(d) = e.activity_deadline {
                ledger.note_activity(d);
            }
            ledger.qualify(
                &e.store,
                &e.transaction_id,
                e.occurred_at,
                e.eligible_amount,
                e.points,
            );
        }
        Event::ReferralQualified(e) => {
            if let Some(c) = &e.newcomer_credit {
                credit(ledger, c, Kind::Earned);
            }
        }
        Event::TierChanged(e) => ledger.set_tier(&e.to, e.occurred_at, e.review_at),
        Event::RefundRecorded(e) => {
            claw_back(ledger, &e.debit);
            ledger.unqualify(
                e.purchase_store.as_ref(),
                &e.transaction_id,
                e.occurred_at,
                -e.eligible_amount,
                e.points.checked_neg().unwrap_or(Points::ZERO),
            );
        }
        Event::PointsRedeemed(e) => {
            draw(ledger, &e.draws);
            let totals = ledger.totals_mut();
            totals.redeemed = totals.redeemed.saturating_add(e.points);
            if let Some(reward) = &e.reward_id {
                ledger.reward_redeemed(&e.redemption_id, reward);
            }
            if let Some(d) = e.activity_deadline {
                ledger.note_activity(d);
            }
        }
        Event::RedemptionCancelled(e) => {
            for d in &e.restored {
                ledger.change_lot(&d.lot_id, d.points);
            }
            let restored = points::sum(e.restored.iter().map(|d| d.points));
            let totals = ledger.totals_mut();
            totals.redeemed = totals.redeemed.saturating_sub(restored);
            ledger.redemption_cancelled(&e.redemption_id);
        }
        Event::PointsExpired(e) => {
            ledger.change_lot(&e.lot_id, e.points.checked_neg().unwrap_or(Points::ZERO));
            ledger.lot_expired(&e.lot_id);
            let totals = ledger.totals_mut();
            totals.expired = totals.expired.saturating_add(e.points);
        }
        // A notice moves no point: the ledger identity is untouched, only the lots are marked.
        Event::ExpiryNotified(e) => {
            for lot in &e.lots {
                ledger.lot_notified(&lot.lot_id);
            }
        }
        Event::ActivityRewarded(e) => credit(ledger, &e.credit, Kind::Earned),
        Event::ActivityRefused(_) => {}
        Event::PointsAdjusted(e) => {
            if let Some(c) = &e.credit {
                credit(ledger, c, Kind::Adjusted);
            }
            if let Some(d) = &e.debit {
                debit(ledger, d);
                let totals = ledger.totals_mut();
                totals.adjusted = totals.adjusted.saturating_sub(d.taken());
                totals.shortfall = totals.shortfall.saturating_add(d.shortfall);
            }
        }
        Event::GoodwillGranted(e) => credit(ledger, &e.credit, Kind::Earned),
        Event::WinBackAwarded(e) => credit(ledger, &e.credit, Kind::Earned),
        Event::BalanceOpened(e) => credit(ledger, &e.credit, Kind::Earned),
        Event::ReferralBonusCredited(e) => credit(ledger, &e.credit, Kind::Earned),
        Event::ReferralRevoked(e) => claw_back(ledger, &e.debit),
        Event::ReferralBonusRevoked(e) => claw_back(ledger, &e.debit),
        Event::MemberSuspended(_) => ledger.set_status(MemberStatus::Suspended),
        Event::MemberReinstated(_) => ledger.set_status(MemberStatus::Active),
        Event::AccountClosed(e) => {
            draw(ledger, &e.forfeited);
            let forfeited = points::sum(e.forfeited.iter().map(|d| d.points));
            let totals = ledger.totals_mut();
            totals.forfeited = totals.forfeited.saturating_add(forfeited);
            ledger.set_status(MemberStatus::Closed);
        }
    }
}

fn credit<L: Ledger + ?Sized>(ledger: &mut L, c: &Credit, kind: Kind) {
    let debt = ledger.debt_mut();
    *debt = debt.saturating_sub(c.debt_repaid).max(Points::ZERO);
    ledger.add_lot(c);
    let totals = ledger.totals_mut();
    match kind {
        Kind::Earned => totals.earned = totals.earned.saturating_add(c.points),
        Kind::Adjusted => totals.adjusted = totals.adjusted.saturating_add(c.points),
    }
    if let Some(d) = c.activity_deadline {
        ledger.note_activity(d);
    }
}

fn draw<L: Ledger + ?Sized>(ledger: &mut L, draws: &[LotDraw]) {
    for d in draws {
        ledger.change_lot(&d.lot_id, d.points.checked_neg().unwrap_or(Points::ZERO));
    }
}

fn debit<L: Ledger + ?Sized>(ledger: &mut L, d: &Debit) {
    draw(ledger, &d.draws);
    let debt = ledger.debt_mut();
    *debt = debt.saturating_add(d.debt_added);
}

/// Points taken back because what earned them was undone (a refund, a revoked referral).
fn claw_back<L: Ledger + ?Sized>(ledger: &mut L, d: &Debit) {
    debit(ledger, d);
    let totals = ledger.totals_mut();
    totals.clawed_back = totals.clawed_back.saturating_add(d.taken());
    totals.shortfall = totals.shortfall.saturating_add(d.shortfall);
}

/// One lot as a balance sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotFacts {
    pub remaining: Points,
    pub spendable_from: DateTime<Utc>,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a balance is made of as of an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BalanceParts {
    pub available: Points,
    pub pending: Points,
    /// Past their expiry as of the instant, recorded or not.
    pub due: Points,
    /// The soonest expiry ahead and the points it takes.
    pub next_expiry: Option<(DateTime<Utc>, Points)>,
}

/// Sorts lots into available, pending and due as of `as_of`: points whose lot is not yet
/// spendable are pending; points past their expiry count as expired before the expiry event is
/// recorded. The one place this arithmetic lives.
pub fn balance_parts(
    lots: impl IntoIterator<Item = LotFacts>,
    as_of: DateTime<Utc>,
) -> BalanceParts {
    let mut parts = BalanceParts::default();
    for lot in lots.into_iter().filter(|l| l.remaining.is_positive()) {
        if lot.expires_at.is_some_and(|t| t <= as_of) {
            parts.due = parts.due.saturating_add(lot.remaining);
            continue;
        }
        if lot.spendable_from <= as_of {
            parts.available = parts.available.saturating_add(lot.remaining);
        } else {
            parts.pending = parts.pending.saturating_add(lot.remaining);
        }
        if let Some(at) = lot.expires_at {
            parts.next_expiry = match parts.next_expiry {
                Some((n_at, n)) if n_at < at => Some((n_at, n)),
                Some((n_at, n)) if n_at == at => Some((at, n.saturating_add(lot.remaining))),
                _ => Some((at, lot.remaining)),
            };
        }
    }
    parts
}
