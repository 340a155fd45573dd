//! `evolve`: applies one event to the state. It cannot fail and never consults the program:
//! everything it needs was recorded in the event when it was decided.
//!
//! The accounting (lots, debt, totals, tier, status, tier metric) is [`crate::fold`]'s, shared
//! with the read models; what only decisions need (idempotency, purchases for refunds,
//! redemptions for cancellations, limits, referrals) is kept here.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::event::{Credit, Enrolled, Event, TierRef};
use crate::fold::{self, Ledger};
use crate::ids::{LotId, PurchaseKey, RedemptionId, RewardId, StoreId, TransactionId};
use crate::outcome;
use crate::points::{self, Points};
use crate::state::{
    Lifetime, LineRecord, Lot, MemberState, MemberStatus, Processed, PurchaseRecord,
    QualifyingEntry, RedemptionRecord, ReferralBonusRecord, ReferralRecord,
};

pub fn evolve(state: &mut MemberState, event: &Event) {
    state.events_applied = state.events_applied.saturating_add(1);
    let at = event.occurred_at();
    state.latest_at = Some(state.latest_at.map_or(at, |l| l.max(at)));
    if let Some((client_id, fingerprint, outcome)) = outcome::from_event(event) {
        if crate::hot::retirable(&client_id) && !state.processed.contains_key(&client_id) {
            state.processed_order.push_back(client_id.clone());
        }
        state.processed.insert(
            client_id,
            Processed {
                fingerprint,
                outcome,
            },
        );
    }
    // What decisions need beyond the accounting, recorded before the fold (a cancellation's
    // fold looks up the redemption it cancels).
    match event {
        Event::PurchaseRecorded(e) => {
            let key = PurchaseKey::new(e.store.clone(), e.transaction_id.clone());
            state.purchase_order.push_back(key.clone());
            state.purchases.insert(
                key,
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
            for c in &e.campaigns_applied {
                let uses = state.campaign_uses.entry(c.clone()).or_insert(0);
                *uses = uses.saturating_add(1);
            }
        }
        Event::ReferralQualified(e) => {
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
        Event::RefundRecorded(e) => {
            let key = match &e.purchase_store {
                Some(store) => Some(PurchaseKey::new(store.clone(), e.transaction_id.clone())),
                None => state
                    .purchase_by_transaction(&e.transaction_id)
                    .map(PurchaseRecord::key),
            };
            if let Some(p) = key.and_then(|k| state.purchases.get_mut(&k)) {
                for r in &e.lines {
                    if let Some(line) = p.lines.get_mut(r.line as usize) {
                        line.refunded_amount = line.refunded_amount.saturating_add(r.amount);
                        line.clawed = line.clawed.saturating_add(r.points);
                    }
                }
                p.transaction_clawed = p.transaction_clawed.saturating_add(e.transaction_points);
            }
        }
        Event::PointsRedeemed(e) => {
            state.redemption_order.push_back(e.redemption_id.clone());
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
        }
        Event::ActivityRewarded(e) => {
            let count = state
                .activity_counts
                .entry((e.kind.clone(), e.period_key.clone()))
                .or_insert(0);
            *count = count.saturating_add(1);
        }
        Event::WinBackAwarded(e) => state.last_win_back_at = Some(e.occurred_at),
        Event::ReferralBonusCredited(e) => {
            state.referral_bonuses.insert(
                e.newcomer.clone(),
                ReferralBonusRecord {
                    points: e.credit.points,
                    lot_id: Some(e.credit.lot_id.clone()),
                    revoked: false,
                },
            );
        }
        Event::ReferralRevoked(_) => {
            if let Some(r) = &mut state.referral {
                r.revoked = true;
            }
        }
        Event::ReferralBonusRevoked(e) => {
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
        _ => {}
    }
    fold::fold(state, event);
}

impl Ledger for MemberState {
    fn enrolled(&mut self, e: &Enrolled) {
        self.member_id = Some(e.member_id.clone());
        self.status = MemberStatus::Active;
        self.enrolled_at = Some(e.enrolled_at);
        self.referrer = e.referrer.clone();
        self.tier = e.tier.clone();
        self.tier_since = Some(e.enrolled_at);
    }

    fn add_lot(&mut self, c: &Credit) {
        let lot_points = c.lot_points();
        self.lot_index.insert(c.lot_id.clone(), self.lots.len());
        self.lots.push(Lot {
            id: c.lot_id.clone(),
            points: lot_points,
            remaining: lot_points,
            earned_at: c.earned_at,
            spendable_from: c.spendable_from,
            expiry: c.expiry,
            expired: false,
            notified: false,
        });
    }

    fn change_lot(&mut self, lot: &LotId, delta: Points) {
        if let Some(lot) = self.lot_mut(lot) {
            lot.remaining = lot.remaining.saturating_add(delta);
        }
    }

    fn lot_expired(&mut self, lot: &LotId) {
        if let Some(lot) = self.lot_mut(lot) {
            lot.expired = true;
        }
    }

    fn lot_notified(&mut self, lot: &LotId) {
        if let Some(lot) = self.lot_mut(lot) {
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
        self.inactivity_deadline = Some(
            self.inactivity_deadline
                .map_or(deadline, |old| old.max(deadline)),
        );
    }

    fn set_status(&mut self, status: MemberStatus) {
        self.status = status;
    }

    fn set_tier(&mut self, tier: &TierRef, since: DateTime<Utc>, review_at: Option<DateTime<Utc>>) {
        self.tier = tier.clone();
        self.tier_since = Some(since);
        if let Some(at) = review_at {
            self.last_review_at = Some(self.last_review_at.map_or(at, |l| l.max(at)));
        }
    }

    fn qualify(
        &mut self,
        _store: &StoreId,
        _transaction: &TransactionId,
        at: DateTime<Utc>,
        spend: Decimal,
        points: Points,
    ) {
        self.qualifying.push(QualifyingEntry { at, spend, points });
    }

    fn unqualify(
        &mut self,
        store: Option<&StoreId>,
        transaction: &TransactionId,
        fallback_at: DateTime<Utc>,
        spend: Decimal,
        points: Points,
    ) {
        let purchase = match store {
            Some(store) => self
                .purchases
                .get(&PurchaseKey::new(store.clone(), transaction.clone())),
            None => self.purchase_by_transaction(transaction),
        };
        let at = purchase.map_or(fallback_at, |p| p.occurred_at);
        self.qualifying.push(QualifyingEntry { at, spend, points });
    }

    fn reward_redeemed(&mut self, _redemption: &RedemptionId, reward: &RewardId) {
        let count = self.reward_counts.entry(reward.clone()).or_insert(0);
        *count = count.saturating_add(1);
    }

    fn redemption_cancelled(&mut self, redemption: &RedemptionId) {
        if let Some(r) = self.redemptions.get_mut(redemption) {
            r.cancelled = true;
            if let Some(reward) = &r.reward_id
                && let Some(count) = self.reward_counts.get_mut(reward)
            {
                *count = count.saturating_sub(1);
            }
        }
    }
}
