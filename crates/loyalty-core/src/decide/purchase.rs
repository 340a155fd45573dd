//! Purchases and refunds.

use std::collections::BTreeSet;

use rust_decimal::{Decimal, RoundingStrategy};

use super::{Ctx, Hold};
use crate::command::{RecordPurchase, Refund, RefundLine, RefundScope, RevocationReason};
use crate::earning;
use crate::error::DomainError;
use crate::event::{
    Event, PurchaseRecorded, ReferralQualified, ReferralRevoked, RefundRecorded, RefundedLine,
    TierChangeReason, TierChanged,
};
use crate::ids::{LotId, StoreId, TransactionId};
use crate::outcome::Decision;
use crate::points::{self, Points};
use crate::program::QualifyingMetric;
use crate::state::{MemberState, PurchaseRecord};
use crate::tiers;

fn overflow() -> DomainError {
    DomainError::ArithmeticOverflow
}

pub(super) fn record(mut ctx: Ctx<'_>, c: &RecordPurchase) -> Result<Decision, DomainError> {
    let program = ctx.program;
    let state = ctx.state;
    if &c.currency != program.currency() {
        return Err(DomainError::CurrencyMismatch {
            expected: program.currency().to_string(),
            got: c.currency.to_string(),
        });
    }
    if c.lines.is_empty() {
        return Err(DomainError::NoLines);
    }
    let limits = &program.limits;
    if c.lines.len() > limits.max_lines_per_purchase as usize {
        return Err(DomainError::TooManyLines {
            max: limits.max_lines_per_purchase,
        });
    }
    for line in &c.lines {
        ctx.check_amount("amount", line.amount, limits.max_amount_per_line)?;
        if line.quantity <= Decimal::ZERO {
            return Err(DomainError::AmountNotPositive { field: "quantity" });
        }
        if line.quantity > limits.max_quantity_per_line {
            return Err(DomainError::AmountTooLarge {
                field: "quantity",
                max: limits.max_quantity_per_line,
            });
        }
    }

    let award = earning::compute(program, state, &c.store, ctx.at, &c.lines)?;
    let award = match ctx.award {
        super::ImportedAward::Rules => award,
        super::ImportedAward::Nothing => award.imported(Points::ZERO),
        super::ImportedAward::Explicit(points) => {
            if points.is_negative() {
                return Err(DomainError::PointsNotPositive);
            }
            if points > program.limits.max_points_per_redemption {
                return Err(DomainError::PointsTooLarge {
                    max: program.limits.max_points_per_redemption,
                });
            }
            award.imported(points)
        }
    };
    let credit = if award.points.is_positive() {
        Some(ctx.credit(
            fresh_lot_id(state, "purchase", &c.store, &c.transaction_id),
            award.points,
            Hold::ReturnWindow,
        )?)
    } else {
        None
    };
    let primary = ctx.push(Event::PurchaseRecorded(PurchaseRecorded {
        transaction_id: c.transaction_id.clone(),
        store: c.store.clone(),
        terminal: c.terminal.clone(),
        occurred_at: ctx.at,
        currency: c.currency.clone(),
        lines: award.lines.clone(),
        transaction_rules: award.transaction_rules.clone(),
        points: award.points,
        eligible_amount: award.eligible_amount,
        campaigns_applied: award.campaigns_applied.clone(),
        credit,
        activity_deadline: ctx.activity_deadline()?,
        rules_version: ctx.rules_version(),
        fingerprint: crate::Command::RecordPurchase(c.clone()).fingerprint(),
    }));

    // A referral is due on the newcomer's first qualifying purchase: the first whose eligible
    // amount reaches the minimum (smaller purchases before it do not use the chance up). It
    // qualifies once: a referral revoked by a refund does not qualify again.
    if let (Some(referrer), Some(rule)) = (state.referrer(), &program.referral)
        && state.referral().is_none()
        && award.eligible_amount >= rule.min_first_purchase
    {
        let newcomer_credit = if rule.newcomer_points.is_positive() {
            Some(ctx.credit(
                fresh_lot_id(state, "referee", &c.store, &c.transaction_id),
                rule.newcomer_points,
                Hold::ReturnWindow,
            )?)
        } else {
            None
        };
        ctx.push(Event::ReferralQualified(ReferralQualified {
            referrer: referrer.clone(),
            store: Some(c.store.clone()),
            transaction_id: c.transaction_id.clone(),
            min_purchase: Some(rule.min_first_purchase),
            occurred_at: ctx.at,
            newcomer_credit,
            referrer_points: rule.referrer_points,
            rules_version: ctx.rules_version(),
        }));
    }

    // Upgrades happen at once; the new multiplier applies from the next purchase.
    let contribution = match program.tiers.metric {
        QualifyingMetric::QualifyingSpend => award.eligible_amount,
        QualifyingMetric::PointsEarned => Decimal::from(award.points.value()),
    };
    let value = state
        .qualifying_value(program, ctx.at)
        .checked_add(contribution)
        .ok_or_else(overflow)?;
    let target = tiers::tier_for(program, value);
    if target.index > tiers::position(program, state.tier()) {
        ctx.push(Event::TierChanged(TierChanged {
            from: state.tier().clone(),
            to: target,
            reason: TierChangeReason::ThresholdReached,
            qualifying_value: value,
            occurred_at: ctx.at,
            review_at: None,
            rules_version: ctx.rules_version(),
        }));
    }
    ctx.finish_with_primary(primary)
}

/// The lot id of what `store`'s sale `transaction` earned. Lot ids are unique within a member;
/// a pair that reads like an older lot's id (ids may hold `:`) gets the digest form instead.
fn fresh_lot_id(
    state: &MemberState,
    prefix: &str,
    store: &StoreId,
    transaction: &TransactionId,
) -> LotId {
    let id = LotId::derived_pair(prefix, store.as_str(), transaction.as_str());
    if !state.has_lot_id(&id) {
        return id;
    }
    LotId::derived(prefix, &format!("{store}/{transaction}"))
}

/// Spreads an amount over the lines in proportion to what is left of each, in whole minor
/// units; the rounding remainder goes to the first lines with room left.
fn spread(
    purchase: &PurchaseRecord,
    amount: Decimal,
    minor_units: u32,
) -> Result<Vec<RefundLine>, DomainError> {
    let left: Vec<Decimal> = purchase
        .lines
        .iter()
        .map(|l| l.amount - l.refunded_amount)
        .collect();
    let total_left: Decimal = left.iter().copied().sum();
    let mut alloc = Vec::with_capacity(left.len());
    for l in &left {
        let share = amount
            .checked_mul(*l)
            .and_then(|v| v.checked_div(total_left))
            .ok_or_else(overflow)?
            .round_dp_with_strategy(minor_units, RoundingStrategy::ToZero)
            .min(*l);
        alloc.push(share);
    }
    let mut rest = amount - alloc.iter().copied().sum::<Decimal>();
    for (a, l) in alloc.iter_mut().zip(&left) {
        if rest <= Decimal::ZERO {
            break;
        }
        let room = (*l - *a).min(rest);
        *a += room;
        rest -= room;
    }
    Ok(alloc
        .into_iter()
        .enumerate()
        .filter(|(_, a)| *a > Decimal::ZERO)
        .map(|(i, amount)| RefundLine {
            line: u32::try_from(i).unwrap_or(u32::MAX),
            amount,
        })
        .collect())
}

/// `points x refunded / total`, floored, and exactly `points` once everything is refunded.
fn proportional(points: Points, refunded: Decimal, total: Decimal) -> Result<Points, DomainError> {
    if refunded >= total || total <= Decimal::ZERO {
        return Ok(points);
    }
    use rust_decimal::prelude::ToPrimitive;
    Decimal::from(points.value())
        .checked_mul(refunded)
        .and_then(|v| v.checked_div(total))
        .and_then(|v| v.floor().to_i64())
        .map(Points::new)
        .ok_or_else(overflow)
}

pub(super) fn refund(mut ctx: Ctx<'_>, c: &Refund) -> Result<Decision, DomainError> {
    let program = ctx.program;
    let state = ctx.state;
    let purchase =
        state
            .purchase(&c.purchase_key())
            .ok_or_else(|| DomainError::UnknownTransaction {
                store: c.purchase_store.to_string(),
                transaction_id: c.transaction_id.to_string(),
            })?;
    if c.occurred_at < purchase.occurred_at {
        return Err(DomainError::RefundBeforePurchase {
            purchased_at: purchase.occurred_at,
        });
    }
    if c.currency != purchase.currency {
        return Err(DomainError::CurrencyMismatch {
            expected: purchase.currency.to_string(),
            got: c.currency.to_string(),
        });
    }
    let max_line = program.limits.max_amount_per_line;
    let lines = match &c.scope {
        RefundScope::Lines(lines) => {
            if lines.is_empty() {
                return Err(DomainError::NoLines);
            }
            let mut seen = BTreeSet::new();
            for l in lines {
                if !seen.insert(l.line) {
                    return Err(DomainError::DuplicateRefundLine { line: l.line });
                }
                let record = purchase
                    .lines
                    .get(l.line as usize)
                    .ok_or(DomainError::UnknownLine { line: l.line })?;
                ctx.check_amount("amount", l.amount, max_line)?;
                let remaining = record.amount - record.refunded_amount;
                if l.amount > remaining {
                    return Err(DomainError::RefundExceedsRemaining {
                        line: Some(l.line),
                        remaining,
                    });
                }
            }
            lines.clone()
        }
        RefundScope::Amount(amount) => {
            let remaining = purchase.total_amount() - purchase.refunded_amount();
            let max_total = max_line
                .checked_mul(Decimal::from(program.limits.max_lines_per_purchase))
                .ok_or_else(overflow)?;
            ctx.check_amount("amount", *amount, max_total)?;
            if *amount > remaining {
                return Err(DomainError::RefundExceedsRemaining {
                    line: None,
                    remaining,
                });
            }
            spread(purchase, *amount, program.program.minor_units)?
        }
    };

    let mut refunded_lines = Vec::with_capacity(lines.len());
    let mut amount = Decimal::ZERO;
    let mut eligible_amount = Decimal::ZERO;
    for l in &lines {
        let Some(record) = purchase.lines.get(l.line as usize) else {
            return Err(DomainError::UnknownLine { line: l.line });
        };
        let refunded = record.refunded_amount + l.amount;
        let target = proportional(record.points, refunded, record.amount)?;
        let points = target
            .checked_sub(record.clawed)
            .ok_or_else(overflow)?
            .max(Points::ZERO);
        let eligible = if record.eligible_amount.is_zero() {
            Decimal::ZERO
        } else {
            l.amount
        };
        amount += l.amount;
        eligible_amount += eligible;
        refunded_lines.push(RefundedLine {
            line: l.line,
            amount: l.amount,
            eligible_amount: eligible,
            points,
        });
    }
    let total = purchase.total_amount();
    let refunded_total = purchase.refunded_amount() + amount;
    // Transaction-level awards (fixed campaign bonuses) were earned by the eligible lines: they
    // go back in proportion to the eligible amount refunded. A gift card's refund takes nothing
    // back; refunding every eligible line takes back all of it.
    let eligible_total = purchase.eligible_amount();
    let eligible_refunded = purchase.refunded_eligible_amount() + eligible_amount;
    let tx_target = if eligible_total > Decimal::ZERO {
        proportional(
            purchase.transaction_points,
            eligible_refunded,
            eligible_total,
        )?
    } else if refunded_total >= total {
        purchase.transaction_points
    } else {
        Points::ZERO
    };
    let transaction_points = tx_target
        .checked_sub(purchase.transaction_clawed)
        .ok_or_else(overflow)?
        .max(Points::ZERO);
    let points = points::sum(refunded_lines.iter().map(|l| l.points))
        .checked_add(transaction_points)
        .ok_or_else(overflow)?;
    let lot = purchase.lot_id.clone();
    let debit = ctx.debit(points, lot.as_ref());
    let primary = ctx.push(Event::RefundRecorded(RefundRecorded {
        refund_id: c.refund_id.clone(),
        store: Some(c.store.clone()),
        purchase_store: Some(c.purchase_store.clone()),
        transaction_id: c.transaction_id.clone(),
        occurred_at: ctx.at,
        currency: c.currency.clone(),
        lines: refunded_lines,
        transaction_points,
        points,
        amount,
        eligible_amount,
        debit,
        completes_purchase: refunded_total >= total,
        fingerprint: crate::Command::Refund(c.clone()).fingerprint(),
    }));

    // The referral this purchase qualified ends when the purchase no longer qualifies: refunded
    // in full, or below the minimum that qualified it (as recorded then).
    if let Some(referral) = state.referral()
        && !referral.revoked
        && referral.qualified_by(purchase)
    {
        let remaining = eligible_total - eligible_refunded;
        let reason = if refunded_total >= total {
            Some(RevocationReason::PurchaseRefunded)
        } else if referral.min_purchase.is_some_and(|min| remaining < min) {
            Some(RevocationReason::BelowMinimum)
        } else {
            None
        };
        if let Some(reason) = reason {
            let debit = ctx.debit(referral.newcomer_points, referral.lot_id.as_ref());
            ctx.push(Event::ReferralRevoked(ReferralRevoked {
                referrer: referral.referrer.clone(),
                store: referral.store.clone(),
                transaction_id: referral.transaction_id.clone(),
                refund_id: c.refund_id.clone(),
                reason,
                remaining_eligible_amount: remaining,
                points: referral.newcomer_points,
                debit,
                occurred_at: ctx.at,
            }));
        }
    }
    ctx.finish_with_primary(primary)
}
