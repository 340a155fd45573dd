//! Tier reviews and the account's life: suspend, reinstate, close.

use super::Ctx;
use crate::command::{Close, Reinstate, Suspend};
use crate::error::DomainError;
use crate::event::{
    AccountClosed, Event, LotDraw, MemberReinstated, MemberSuspended, TierChangeReason, TierChanged,
};
use crate::outcome::{Decision, Outcome};
use crate::points;
use crate::state::MemberStatus;
use crate::tiers;

pub(super) fn review(mut ctx: Ctx<'_>) -> Result<Decision, DomainError> {
    let program = ctx.program;
    let state = ctx.state;
    let current = state.tier().clone();
    let unchanged = |ctx: Ctx<'_>| {
        let tier = ctx.state.tier().clone();
        Ok(ctx.finish(Outcome::TierUnchanged { tier }))
    };
    let Some(enrolled_at) = state.enrolled_at() else {
        return unchanged(ctx);
    };
    let Some(review_at) = tiers::last_review_at(program, enrolled_at, ctx.at) else {
        return unchanged(ctx);
    };
    if state.last_review_at().is_some_and(|l| l >= review_at) {
        return unchanged(ctx);
    }
    let value = state.qualifying_value(program, review_at);
    let reached = tiers::tier_for(program, value);
    let current_index = tiers::position(program, &current);
    let to_index = if reached.index < current_index {
        // Down by at most the configured number of levels per review.
        reached.index.max(
            current
                .index
                .saturating_sub(program.tiers.max_levels_down_per_review),
        )
    } else {
        reached.index
    };
    // A tier earned after the review date was not part of that review: it is reviewed next time.
    let earned_since = state.tier_since().is_some_and(|since| since > review_at);
    if to_index == current_index || (to_index < current_index && earned_since) {
        return unchanged(ctx);
    }
    let to = tiers::tier_ref(program, to_index as usize);
    ctx.push(Event::TierChanged(TierChanged {
        from: current.clone(),
        to: to.clone(),
        reason: TierChangeReason::Review,
        qualifying_value: value,
        occurred_at: ctx.at,
        review_at: Some(review_at),
        rules_version: ctx.rules_version(),
    }));
    Ok(ctx.finish(Outcome::TierChanged { from: current, to }))
}

pub(super) fn suspend(mut ctx: Ctx<'_>, c: &Suspend) -> Result<Decision, DomainError> {
    if ctx.state.status() == MemberStatus::Suspended {
        return Ok(ctx.finish(Outcome::Unchanged));
    }
    ctx.push(Event::MemberSuspended(MemberSuspended {
        reason_code: c.reason_code.clone(),
        operator: c.operator.clone(),
        occurred_at: ctx.at,
    }));
    Ok(ctx.finish(Outcome::Suspended))
}

pub(super) fn reinstate(mut ctx: Ctx<'_>, c: &Reinstate) -> Result<Decision, DomainError> {
    if ctx.state.status() != MemberStatus::Suspended {
        return Ok(ctx.finish(Outcome::Unchanged));
    }
    ctx.push(Event::MemberReinstated(MemberReinstated {
        reason_code: Some(c.reason_code.clone()),
        operator: c.operator.clone(),
        occurred_at: ctx.at,
    }));
    Ok(ctx.finish(Outcome::Reinstated))
}

pub(super) fn close(mut ctx: Ctx<'_>, c: &Close) -> Result<Decision, DomainError> {
    let forfeited: Vec<LotDraw> = ctx
        .state
        .live_lots(ctx.now)
        .map(|l| LotDraw {
            lot_id: l.id.clone(),
            points: l.remaining,
        })
        .collect();
    let total = points::sum(forfeited.iter().map(|d| d.points));
    ctx.push(Event::AccountClosed(AccountClosed {
        reason_code: c.reason_code.clone(),
        operator: c.operator.clone(),
        occurred_at: ctx.at,
        forfeited,
    }));
    Ok(ctx.finish(Outcome::Closed { forfeited: total }))
}
