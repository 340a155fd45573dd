//! Spending: redemptions, their cancellation, expiry and its notices.

use super::Ctx;
use crate::calendar;
use crate::command::{CancelRedemption, Redeem, RedeemTarget};
use crate::error::DomainError;
use crate::event::{
    Event, ExpiryNotified, LotDraw, LotExpiry, NotifiedLot, PointsExpired, PointsRedeemed,
    RedemptionCancelled,
};
use crate::outcome::{Decision, Outcome};
use crate::points::{self, Points};

pub(super) fn redeem(mut ctx: Ctx<'_>, c: &Redeem) -> Result<Decision, DomainError> {
    let program = ctx.program;
    let state = ctx.state;
    let (reward_id, points) = match &c.target {
        RedeemTarget::Reward(id) => {
            let reward = program
                .reward(id)
                .ok_or_else(|| DomainError::UnknownReward {
                    reward_id: id.to_string(),
                })?;
            if !calendar::within_local_dates(
                ctx.at,
                reward.available_from,
                reward.available_until,
                program.timezone(),
            ) {
                return Err(DomainError::RewardNotAvailable {
                    reward_id: id.to_string(),
                });
            }
            if let Some(required) = &reward.min_tier {
                let needed = program.tier_index(required).unwrap_or(0);
                if (crate::tiers::position(program, state.tier()) as usize) < needed {
                    return Err(DomainError::TierTooLow {
                        required: required.clone(),
                        current: state.tier().name.clone(),
                    });
                }
            }
            if let Some(limit) = reward.per_member_limit
                && state.reward_count(id) >= limit
            {
                return Err(DomainError::RewardLimitReached {
                    reward_id: id.to_string(),
                    limit,
                });
            }
            (Some(id.clone()), reward.cost)
        }
        RedeemTarget::Points(p) => {
            if !p.is_positive() {
                return Err(DomainError::PointsNotPositive);
            }
            let max = program.limits.max_points_per_redemption;
            if *p > max {
                return Err(DomainError::PointsTooLarge { max });
            }
            (None, *p)
        }
    };
    // A debt is owed before anything can be spent. What is spendable is the server's call:
    // points still pending or past their expiry by its clock are never drawn, whatever date
    // the caller put on the redemption.
    let available = state
        .available(ctx.now)
        .saturating_sub(state.debt())
        .max(Points::ZERO);
    if points > available {
        return Err(DomainError::InsufficientPoints {
            available,
            requested: points,
        });
    }
    let mut left = points;
    let mut draws = Vec::new();
    for lot in state.spendable_lots(ctx.now) {
        if !left.is_positive() {
            break;
        }
        let take = left.min(lot.remaining);
        draws.push(LotDraw {
            lot_id: lot.id.clone(),
            points: take,
        });
        left = left.saturating_sub(take);
    }
    let primary = ctx.push(Event::PointsRedeemed(PointsRedeemed {
        redemption_id: c.redemption_id.clone(),
        reward_id,
        points,
        draws,
        occurred_at: ctx.at,
        activity_deadline: ctx.activity_deadline()?,
        fingerprint: crate::Command::Redeem(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

pub(super) fn cancel(mut ctx: Ctx<'_>, c: &CancelRedemption) -> Result<Decision, DomainError> {
    let state = ctx.state;
    let redemption =
        state
            .redemption(&c.redemption_id)
            .ok_or_else(|| DomainError::UnknownRedemption {
                redemption_id: c.redemption_id.to_string(),
            })?;
    if redemption.cancelled {
        return Err(DomainError::RedemptionAlreadyCancelled {
            redemption_id: c.redemption_id.to_string(),
        });
    }
    let primary = ctx.push(Event::RedemptionCancelled(RedemptionCancelled {
        redemption_id: c.redemption_id.clone(),
        restored: redemption.draws.clone(),
        occurred_at: ctx.at,
        fingerprint: crate::Command::CancelRedemption(c.clone()).fingerprint(),
    }));
    // Points given back to a lot whose expiry passed meanwhile (by the server's clock) expire
    // at once.
    for d in &redemption.draws {
        if let Some(lot) = state.lot(&d.lot_id)
            && let Some(expired_at) = state.lot_expires_at(lot)
            && expired_at <= ctx.now
            && d.points.is_positive()
        {
            ctx.push(Event::PointsExpired(PointsExpired {
                lot_id: d.lot_id.clone(),
                points: d.points,
                expired_at,
                occurred_at: ctx.now,
            }));
        }
    }
    ctx.finish_with_primary(primary)
}

pub(super) fn expire(ctx: Ctx<'_>) -> Result<Decision, DomainError> {
    // `Ctx::new` already recorded every expiry due.
    let lots: Vec<LotDraw> = ctx
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PointsExpired(x) => Some(LotDraw {
                lot_id: x.lot_id.clone(),
                points: x.points,
            }),
            _ => None,
        })
        .collect();
    let outcome = Outcome::Expired {
        points: points::sum(lots.iter().map(|d| d.points)),
        lots,
    };
    Ok(ctx.finish(outcome))
}

/// The notice of the dated lots that expire soon, as of the server's clock (`now`): lots
/// holding points, not expired yet (`now < expiry`), expiring by the program's
/// [`crate::Program::points_expiring_until`] and never announced before. One event names them
/// all; none due (or no notices in the program): no event, and an empty outcome.
pub(super) fn notify_expiry(mut ctx: Ctx<'_>) -> Result<Decision, DomainError> {
    let now = ctx.now;
    let mut lots: Vec<NotifiedLot> = match ctx.program.points_expiring_until(now) {
        None => Vec::new(),
        Some(until) => ctx
            .state
            .lots()
            .iter()
            .filter(|l| l.remaining.is_positive() && !l.notified)
            .filter_map(|l| match l.expiry {
                LotExpiry::At(expires_at) if now < expires_at && expires_at <= until => {
                    Some(NotifiedLot {
                        lot_id: l.id.clone(),
                        points: l.remaining,
                        expires_at,
                    })
                }
                // Lots that expire with the member's inactivity get no notice: every activity
                // moves their deadline, so a notice could announce an expiry that never comes.
                LotExpiry::At(_) | LotExpiry::OnInactivity | LotExpiry::Never => None,
            })
            .collect(),
    };
    // Soonest first; lots expiring together stay in the order they were earned (stable sort).
    lots.sort_by_key(|l| l.expires_at);
    if !lots.is_empty() {
        ctx.push(Event::ExpiryNotified(ExpiryNotified {
            occurred_at: now,
            lots: lots.clone(),
        }));
    }
    let outcome = Outcome::ExpiryNotified {
        points: points::sum(lots.iter().map(|l| l.points)),
        lots,
    };
    Ok(ctx.finish(outcome))
}
