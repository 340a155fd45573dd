//! `evolve`: applies one event to the state. It cannot fail and never consults the program:
//! everything it needs was recorded in the event when it was decided.

use rust_decimal::Decimal;

use crate::event::{Credit, Debit, Event, LotDraw};
use crate::ids::PurchaseKey;
use crate::outcome;
use crate::points::{self, Points};
use crate::state::{
    LineRecord, Lot, MemberState, MemberStatus, Processed, PurchaseRecord, QualifyingEntry,
    RedemptionRecord, ReferralBonusRecord, ReferralRecord,
};

/// Which lifetime total an award counts in.
#[derive(Clone, Copy)]
enum Kind {
    Earned,
    Adjusted,
}

pub fn evolve(state: &mut MemberState, event: &Event) {
    state.events_applied = state.events_applied.saturating_add(1);
    if let Some((client_id, fingerprint, outcome)) = outcome::from_event(event) {
        state.processed.insert(
            client_id,
            Processed {
                fingerprint,
                outcome,
            },
        );
    }
    match event {
        Event::Enrolled(e) => {
            state.member_id = Some(e.member_id.clone());
            state.status = MemberStatus::Active;
            state.enrolled_at = Some(e.enrolled_at);
            state.referrer = e.referrer.clone();
            state.tier = e.tier.clone();
            state.tier_since = Some(e.enrolled_at);
            if let Some(c) = &e.welcome {
                credit(state, c, Kind::Earned);
            }
        }
        Event::PurchaseRecorded(e) => {
            state.purchases.insert(
                PurchaseKey::new(e.store.clone(), e.transaction_id.clone()),
                PurchaseRecord {
                    store: e.store.clone(),
                    transaction_id: e.transaction_id.clone(),
                    occurred_at: e.occurred_at,
                    currency: e.currency.clone(),
                    lines: e
                        .lines
                        .iter()
                        .map(|l| LineRecord {
                            amount: l.amount,
                            eligible_amount: l.eligible_amount,
                            points: l.points,
                            refunded_amount: Decimal::ZERO,
                            clawed: Points::ZERO,
                        })
                        .collect(),
                    transaction_points: points::sum(e.transaction_rules.iter().map(|r| r.points)),
                    transaction_clawed: Points::ZERO,
                    points: e.points,
                    lot_id: e.credit.as_ref().map(|c| c.lot_id.clone()),
                },
            );
            if let Some(c) = &e.credit {
                credit(state, c, Kind::Earned);
            }
            note_activity(state, e.activity_deadline);
            for c in &e.campaigns_applied {
                let uses = state.campaign_uses.entry(c.clone()).or_insert(0);
                *uses = uses.saturating_add(1);
            }
            state.qualifying.push(QualifyingEntry {
                at: e.occurred_at,
                spend: e.eligible_amount,
                points: e.points,
            });
        }
        Event::ReferralQualified(e) => {
            if let Some(c) = &e.newcomer_credit {
                credit(state, c, Kind::Earned);
            }
            state.referral = Some(ReferralRecord {
                referrer: e.referrer.clone(),
                store: e.store.clone(),
                transaction_id: e.transaction_id.clone(),
                min_purchase: e.min_purchase,
                newcomer_points: e
                    .newcomer_credit
                    .as_ref()
                    .map_or(Points::ZERO, |c| c.points),
                lot_id: e.newcomer_credit.as_ref().map(|c| c.lot_id.clone()),
                revoked: false,
            });
        }
        Event::TierChanged(e) => {
            state.tier = e.to.clone();
            state.tier_since = Some(e.occurred_at);
            if let Some(at) = e.review_at {
                state.last_review_at = Some(state.last_review_at.map_or(at, |l| l.max(at)));
            }
        }
        Event::RefundRecorded(e) => {
            let mut purchase_at = e.occurred_at;
            let key = match &e.purchase_store {
                Some(store) => Some(PurchaseKey::new(store.clone(), e.transaction_id.clone())),
                None => state
                    .purchase_by_transaction(&e.transaction_id)
                    .map(PurchaseRecord::key),
            };
            if let Some(p) = key.and_then(|k| state.purchases.get_mut(&k)) {
                purchase_at = p.occurred_at;
                for r in &e.lines {
                    if let Some(line) = p.lines.get_mut(r.line as usize) {
                        line.refunded_amount = line.refunded_amount.saturating_add(r.amount);
                        line.clawed = line.clawed.saturating_add(r.points);
                    }
                }
                p.transaction_clawed = p.transaction_clawed.saturating_add(e.transaction_points);
            }
            claw_back(state, &e.debit);
            state.qualifying.push(QualifyingEntry {
                at: purchase_at,
                spend: -e.eligible_amount,
                points: e.points.checked_neg().unwrap_or(Points::ZERO),
            });
        }
        Event::PointsRedeemed(e) => {
            draw(state, &e.draws);
            state.totals.redeemed = state.totals.redeemed.saturating_add(e.points);
            if let Some(r) = &e.reward_id {
                let count = state.reward_counts.entry(r.clone()).or_insert(0);
                *count = count.saturating_add(1);
            }
            state.redemptions.insert(
                e.redemption_id.clone(),
                RedemptionRecord {
                    redemption_id: e.redemption_id.clone(),
                    reward_id: e.reward_id.clone(),
                    points: e.points,
                    draws: e.draws.clone(),
                    occurred_at: e.occurred_at,
                    cancelled: false,
                },
            );
            note_activity(state, e.activity_deadline);
        }
        Event::RedemptionCancelled(e) => {
            for d in &e.restored {
                if let Some(lot) = state.lots.iter_mut().find(|l| l.id == d.lot_id) {
                    lot.remaining = lot.remaining.saturating_add(d.points);
                }
            }
            let restored = points::sum(e.restored.iter().map(|d| d.points));
            state.totals.redeemed = state.totals.redeemed.saturating_sub(restored);
            if let Some(r) = state.redemptions.get_mut(&e.redemption_id) {
                r.cancelled = true;
                if let Some(reward) = &r.reward_id
                    && let Some(count) = state.reward_counts.get_mut(reward)
                {
                    *count = count.saturating_sub(1);
                }
            }
        }
        Event::PointsExpired(e) => {
            if let Some(lot) = state.lots.iter_mut().find(|l| l.id == e.lot_id) {
                lot.remaining = lot.remaining.saturating_sub(e.points);
                lot.expired = true;
            }
            state.totals.expired = state.totals.expired.saturating_add(e.points);
        }
        Event::ActivityRewarded(e) => {
            credit(state, &e.credit, Kind::Earned);
            let count = state
                .activity_counts
                .entry((e.kind.clone(), e.period_key.clone()))
                .or_insert(0);
            *count = count.saturating_add(1);
        }
        Event::ActivityRefused(_) => {}
        Event::PointsAdjusted(e) => {
            if let Some(c) = &e.credit {
                credit(state, c, Kind::Adjusted);
            }
            if let Some(d) = &e.debit {
                debit(state, d);
                state.totals.adjusted = state.totals.adjusted.saturating_sub(d.taken());
                state.totals.shortfall = state.totals.shortfall.saturating_add(d.shortfall);
            }
        }
        Event::GoodwillGranted(e) => credit(state, &e.credit, Kind::Earned),
        Event::ReferralBonusCredited(e) => {
            credit(state, &e.credit, Kind::Earned);
            state.referral_bonuses.insert(
                e.newcomer.clone(),
                ReferralBonusRecord {
                    points: e.credit.points,
                    lot_id: Some(e.credit.lot_id.clone()),
                    revoked: false,
                },
            );
        }
        Event::ReferralRevoked(e) => {
            claw_back(state, &e.debit);
            if let Some(r) = &mut state.referral {
                r.revoked = true;
            }
        }
        Event::ReferralBonusRevoked(e) => {
            claw_back(state, &e.debit);
            state
                .referral_bonuses
                .entry(e.newcomer.clone())
                .or_insert(ReferralBonusRecord {
                    points: Points::ZERO,
                    lot_id: None,
                    revoked: true,
                })
                .revoked = true;
        }
        Event::MemberSuspended(_) => state.status = MemberStatus::Suspended,
        Event::MemberReinstated(_) => state.status = MemberStatus::Active,
        Event::AccountClosed(e) => {
            draw(state, &e.forfeited);
            let forfeited = points::sum(e.forfeited.iter().map(|d| d.points));
            state.totals.forfeited = state.totals.forfeited.saturating_add(forfeited);
            state.status = MemberStatus::Closed;
        }
    }
}

fn note_activity(state: &mut MemberState, deadline: Option<chrono::DateTime<chrono::Utc>>) {
    if let Some(d) = deadline {
        state.inactivity_deadline = Some(state.inactivity_deadline.map_or(d, |old| old.max(d)));
    }
}

fn credit(state: &mut MemberState, c: &Credit, kind: Kind) {
    state.debt = state.debt.saturating_sub(c.debt_repaid).max(Points::ZERO);
    let lot_points = c.lot_points();
    state.lots.push(Lot {
        id: c.lot_id.clone(),
        points: lot_points,
        remaining: lot_points,
        earned_at: c.earned_at,
        spendable_from: c.spendable_from,
        expiry: c.expiry,
        expired: false,
    });
    match kind {
        Kind::Earned => state.totals.earned = state.totals.earned.saturating_add(c.points),
        Kind::Adjusted => state.totals.adjusted = state.totals.adjusted.saturating_add(c.points),
    }
    note_activity(state, c.activity_deadline);
}

fn draw(state: &mut MemberState, draws: &[LotDraw]) {
    for d in draws {
        if let Some(lot) = state.lots.iter_mut().find(|l| l.id == d.lot_id) {
            lot.remaining = lot.remaining.saturating_sub(d.points);
        }
    }
}

fn debit(state: &mut MemberState, d: &Debit) {
    draw(state, &d.draws);
    state.debt = state.debt.saturating_add(d.debt_added);
}

/// Points taken back because what earned them was undone (a refund, a revoked referral).
fn claw_back(state: &mut MemberState, d: &Debit) {
    debit(state, d);
    state.totals.clawed_back = state.totals.clawed_back.saturating_add(d.taken());
    state.totals.shortfall = state.totals.shortfall.saturating_add(d.shortfall);
}
