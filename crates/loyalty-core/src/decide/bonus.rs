//! Enrollment, activity bonuses, adjustments, goodwill and referral credits.

use chrono::{DateTime, Utc};

use super::{Ctx, Hold};
use crate::calendar;
use crate::command::{
    Adjust, CreditReferralBonus, Enroll, Goodwill, OpenBalance, RecordActivity,
    RevokeReferralBonus, WinBack,
};
use crate::error::DomainError;
use crate::event::{
    ActivityRefused, ActivityRewarded, BalanceOpened, Enrolled, Event, GoodwillGranted,
    PointsAdjusted, ReferralBonusCredited, ReferralBonusRevoked, WinBackAwarded,
};
use crate::ids::LotId;
use crate::outcome::Decision;
use crate::points::Points;
use crate::program::Program;
use crate::state::MemberState;
use crate::tiers;

pub(super) fn enroll(
    state: &MemberState,
    c: &Enroll,
    program: &Program,
    now: DateTime<Utc>,
    welcome_bonus: bool,
) -> Result<Decision, DomainError> {
    if c.referrer.as_ref() == Some(&c.member_id) {
        return Err(DomainError::SelfReferral);
    }
    let mut ctx = Ctx::new(state, program, c.occurred_at, now);
    let welcome_points = program.bonuses.welcome_points;
    let welcome = if welcome_bonus && welcome_points.is_positive() {
        Some(ctx.credit(
            LotId::derived("welcome", c.member_id.as_str()),
            welcome_points,
            Hold::None,
        )?)
    } else {
        None
    };
    let primary = ctx.push(Event::Enrolled(Enrolled {
        member_id: c.member_id.clone(),
        referrer: c.referrer.clone(),
        enrolled_at: c.occurred_at,
        tier: tiers::tier_ref(program, 0),
        welcome,
        rules_version: ctx.rules_version(),
        fingerprint: crate::Command::Enroll(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

pub(super) fn activity(mut ctx: Ctx<'_>, c: &RecordActivity) -> Result<Decision, DomainError> {
    let program = ctx.program;
    let rule = program
        .activity(&c.kind)
        .ok_or_else(|| DomainError::UnknownActivity {
            kind: c.kind.to_string(),
        })?;
    let period_key = calendar::period_key(ctx.at, rule.period, program.timezone());
    let used = ctx
        .state
        .activity_counts
        .get(&(c.kind.clone(), period_key.clone()))
        .copied()
        .unwrap_or(0);
    let fingerprint = crate::Command::RecordActivity(c.clone()).fingerprint();
    let event = if used >= rule.limit {
        Event::ActivityRefused(ActivityRefused {
            activity_id: c.activity_id.clone(),
            kind: c.kind.clone(),
            period_key,
            limit: rule.limit,
            period: rule.period.as_str().to_owned(),
            occurred_at: ctx.at,
            rules_version: ctx.rules_version(),
            fingerprint,
        })
    } else {
        let credit = ctx.credit(
            LotId::derived("activity", c.activity_id.as_str()),
            rule.points,
            Hold::None,
        )?;
        Event::ActivityRewarded(ActivityRewarded {
            activity_id: c.activity_id.clone(),
            kind: c.kind.clone(),
            period_key,
            credit,
            rules_version: ctx.rules_version(),
            fingerprint,
        })
    };
    let primary = ctx.push(event);
    ctx.finish_with_primary(primary)
}

fn check_manual_points(ctx: &Ctx<'_>, points: Points) -> Result<(), DomainError> {
    let max = ctx.program.limits.max_points_per_adjustment;
    if points.abs() > max {
        return Err(DomainError::PointsTooLarge { max });
    }
    Ok(())
}

pub(super) fn adjust(mut ctx: Ctx<'_>, c: &Adjust) -> Result<Decision, DomainError> {
    if c.points.is_zero() {
        return Err(DomainError::PointsZero);
    }
    check_manual_points(&ctx, c.points)?;
    ctx.check_text("note", &c.note)?;
    let (credit, debit) = if c.points.is_positive() {
        let credit = ctx.credit(
            LotId::derived("adjust", c.adjustment_id.as_str()),
            c.points,
            Hold::None,
        )?;
        (Some(credit), None)
    } else {
        let wanted = c
            .points
            .checked_neg()
            .ok_or(DomainError::ArithmeticOverflow)?;
        (None, Some(ctx.debit(wanted, None)))
    };
    let primary = ctx.push(Event::PointsAdjusted(PointsAdjusted {
        adjustment_id: c.adjustment_id.clone(),
        points: c.points,
        reason_code: c.reason_code.clone(),
        note: crate::Note::Plain(c.note.clone()),
        operator: c.operator.clone(),
        occurred_at: ctx.at,
        credit,
        debit,
        fingerprint: crate::Command::Adjust(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

pub(super) fn goodwill(mut ctx: Ctx<'_>, c: &Goodwill) -> Result<Decision, DomainError> {
    if !c.points.is_positive() {
        return Err(DomainError::PointsNotPositive);
    }
    check_manual_points(&ctx, c.points)?;
    ctx.check_text("note", &c.note)?;
    let credit = ctx.credit(
        LotId::derived("goodwill", c.complaint_id.as_str()),
        c.points,
        Hold::None,
    )?;
    let primary = ctx.push(Event::GoodwillGranted(GoodwillGranted {
        complaint_id: c.complaint_id.clone(),
        reason_code: c.reason_code.clone(),
        note: crate::Note::Plain(c.note.clone()),
        operator: c.operator.clone(),
        occurred_at: ctx.at,
        credit,
        fingerprint: crate::Command::Goodwill(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

/// A balance carried over from a legacy program: its points, as of `occurred_at`, expiring
/// when the legacy program said (or by this program's policy).
pub(super) fn open_balance(mut ctx: Ctx<'_>, c: &OpenBalance) -> Result<Decision, DomainError> {
    if !c.points.is_positive() {
        return Err(DomainError::PointsNotPositive);
    }
    // A legacy balance may exceed what one adjustment may give; a billion bounds the sums.
    let max = Points::new(1_000_000_000);
    if c.points > max {
        return Err(DomainError::PointsTooLarge { max });
    }
    let mut credit = ctx.credit(
        LotId::derived("balance", c.balance_id.as_str()),
        c.points,
        Hold::None,
    )?;
    if let Some(expires_at) = c.expires_at {
        if expires_at <= c.occurred_at {
            return Err(DomainError::ExpiryBeforeOpening {
                occurred_at: c.occurred_at,
                expires_at,
            });
        }
        credit.expiry = crate::event::LotExpiry::At(crate::time::check_representable(expires_at)?);
    }
    let primary = ctx.push(Event::BalanceOpened(BalanceOpened {
        balance_id: c.balance_id.clone(),
        occurred_at: ctx.at,
        credit,
        fingerprint: crate::Command::OpenBalance(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

/// The program's win-back rule, checked against the measurements the scheduler sent (they are
/// recorded as they are: replay never measures again).
pub(super) fn win_back(mut ctx: Ctx<'_>, c: &WinBack) -> Result<Decision, DomainError> {
    let rule = ctx
        .program
        .win_back
        .as_ref()
        .ok_or(DomainError::WinBackNotConfigured)?;
    if let Some(last) = ctx.state.last_win_back_at {
        let next = last
            .checked_add_signed(chrono::TimeDelta::days(i64::from(rule.once_every_days)))
            .ok_or(DomainError::TimeOutOfRange)?;
        if ctx.at < next {
            return Err(DomainError::WinBackTooSoon { last, next });
        }
    }
    if !rule.qualifies(c.p_alive, c.inactive_days, c.purchase_days) {
        return Err(DomainError::WinBackNotDue);
    }
    let credit = ctx.credit(
        LotId::derived("win-back", &ctx.at.date_naive().to_string()),
        rule.points,
        Hold::None,
    )?;
    let primary = ctx.push(Event::WinBackAwarded(WinBackAwarded {
        occurred_at: ctx.at,
        p_alive: c.p_alive,
        inactive_days: c.inactive_days,
        purchase_days: c.purchase_days,
        model_version: c.model_version.clone(),
        credit,
        rules_version: ctx.program.rules_version().to_owned(),
        fingerprint: crate::Command::WinBack(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

pub(super) fn referral(mut ctx: Ctx<'_>, c: &CreditReferralBonus) -> Result<Decision, DomainError> {
    let rule = ctx
        .program
        .referral
        .as_ref()
        .ok_or(DomainError::ReferralNotConfigured)?;
    if c.newcomer == c.member_id {
        return Err(DomainError::SelfReferral);
    }
    // A referral revoked before its bonus arrived (a process running late) stays revoked.
    if ctx
        .state
        .referral_bonus(&c.newcomer)
        .is_some_and(|b| b.revoked)
    {
        return Err(DomainError::ReferralRevoked {
            newcomer: c.newcomer.to_string(),
        });
    }
    let credit = ctx.credit(
        LotId::derived("referral", c.newcomer.as_str()),
        rule.referrer_points,
        Hold::ReturnWindow,
    )?;
    let primary = ctx.push(Event::ReferralBonusCredited(ReferralBonusCredited {
        newcomer: c.newcomer.clone(),
        credit,
        rules_version: ctx.rules_version(),
        fingerprint: crate::Command::CreditReferralBonus(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}

/// Takes back the bonus credited for a newcomer whose qualifying purchase was refunded: from
/// that bonus's lot first, then the other live lots, then under the negative-balance policy.
pub(super) fn revoke_referral(
    mut ctx: Ctx<'_>,
    c: &RevokeReferralBonus,
) -> Result<Decision, DomainError> {
    let bonus = ctx.state.referral_bonus(&c.newcomer);
    let points = bonus.map_or(Points::ZERO, |b| b.points);
    let lot = bonus.and_then(|b| b.lot_id.clone());
    let debit = ctx.debit(points, lot.as_ref());
    let primary = ctx.push(Event::ReferralBonusRevoked(ReferralBonusRevoked {
        newcomer: c.newcomer.clone(),
        reason: c.reason,
        points,
        debit,
        occurred_at: ctx.at,
        fingerprint: crate::Command::RevokeReferralBonus(c.clone()).fingerprint(),
    }));
    ctx.finish_with_primary(primary)
}
