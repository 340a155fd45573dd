//! Program validation: every rule is checked on load, and the bounds chosen here are what keeps
//! the earning arithmetic far from overflow (amount x rate x multipliers fits easily in an i64).

use std::collections::HashSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{ExpiryPolicy, Program, QualifyingWindow, ReviewSchedule};
use crate::error::ProgramError;
use crate::points::Points;

/// Largest rate or multiplier a program may use.
const MAX_RATE: i64 = 100;
const MAX_MULTIPLIER: i64 = 10;
const MAX_MONTHS: u32 = 120;
/// A notice more than a year ahead would announce most lots the day they are earned.
const MAX_NOTICE_DAYS: u32 = 365;

type Check = Result<(), ProgramError>;

fn err(field: impl Into<String>, reason: impl Into<String>) -> ProgramError {
    ProgramError::invalid(field, reason)
}

fn text(field: &str, value: &str, max: usize) -> Check {
    if value.trim().is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(err(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

fn decimal_in(
    field: &str,
    value: Decimal,
    min: Decimal,
    max: Decimal,
    min_inclusive: bool,
) -> Check {
    let low_ok = if min_inclusive {
        value >= min
    } else {
        value > min
    };
    if !low_ok {
        let op = if min_inclusive {
            "at least"
        } else {
            "greater than"
        };
        return Err(err(field, format!("must be {op} {min}, got {value}")));
    }
    if value > max {
        return Err(err(field, format!("must be at most {max}, got {value}")));
    }
    Ok(())
}

fn points_in(field: &str, value: Points, min: i64, max: i64) -> Check {
    if value.value() < min || value.value() > max {
        return Err(err(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

fn months(field: &str, value: u32) -> Check {
    if value == 0 || value > MAX_MONTHS {
        return Err(err(
            field,
            format!("must be between 1 and {MAX_MONTHS} months"),
        ));
    }
    Ok(())
}

fn unique<'a, I: IntoIterator<Item = &'a str>>(field: &str, items: I) -> Check {
    let mut seen = HashSet::new();
    for item in items {
        if !seen.insert(item) {
            return Err(err(field, format!("{item:?} appears twice")));
        }
    }
    Ok(())
}

pub(super) fn validate(p: &Program) -> Check {
    let limits = &p.limits;
    // Limits first: other checks refer to them.
    if limits.max_lines_per_purchase == 0 || limits.max_lines_per_purchase > 1000 {
        return Err(err(
            "limits.max_lines_per_purchase",
            "must be between 1 and 1000",
        ));
    }
    decimal_in(
        "limits.max_amount_per_line",
        limits.max_amount_per_line,
        Decimal::ZERO,
        Decimal::new(10_000_000, 0),
        false,
    )?;
    decimal_in(
        "limits.max_quantity_per_line",
        limits.max_quantity_per_line,
        Decimal::ZERO,
        Decimal::new(1_000_000, 0),
        false,
    )?;
    points_in(
        "limits.max_points_per_adjustment",
        limits.max_points_per_adjustment,
        1,
        1_000_000_000,
    )?;
    points_in(
        "limits.max_points_per_redemption",
        limits.max_points_per_redemption,
        1,
        1_000_000_000_000,
    )?;
    if limits.max_text_length == 0 || limits.max_text_length > 10_000 {
        return Err(err("limits.max_text_length", "must be between 1 and 10000"));
    }

    let a = &p.analytics;
    if a.active_days == 0 || a.active_days > 3660 {
        return Err(err("analytics.active_days", "must be between 1 and 3660"));
    }
    if a.horizon == 0 || a.horizon > 3660 {
        return Err(err("analytics.horizon", "must be between 1 and 3660"));
    }
    decimal_in(
        "analytics.discount_rate",
        a.discount_rate,
        Decimal::ZERO,
        Decimal::ONE,
        true,
    )?;
    decimal_in(
        "analytics.at_risk_below",
        a.at_risk_below,
        Decimal::ZERO,
        Decimal::ONE,
        false,
    )?;

    let info = &p.program;
    text("program.name", &info.name, 100)?;
    if let Some(label) = &info.label {
        text("program.label", label, 64)?;
    }
    if info.minor_units > 6 {
        return Err(err("program.minor_units", "must be between 0 and 6"));
    }

    let e = &p.earning;
    decimal_in(
        "earning.points_per_unit",
        e.points_per_unit,
        Decimal::ZERO,
        Decimal::new(MAX_RATE, 0),
        true,
    )?;
    unique(
        "earning.excluded_categories",
        e.excluded_categories.iter().map(|c| c.as_str()),
    )?;
    let mut rule_keys = HashSet::new();
    for (i, m) in e.multipliers.iter().enumerate() {
        let field = format!("earning.multipliers[{i}]");
        let key = match (&m.category, &m.sku) {
            (Some(c), None) => format!("category:{c}"),
            (None, Some(s)) => format!("sku:{s}"),
            _ => return Err(err(field, "needs exactly one of `category` or `sku`")),
        };
        if !rule_keys.insert(key.clone()) {
            return Err(err(field, format!("a second multiplier for {key}")));
        }
        decimal_in(
            &format!("{field}.multiplier"),
            m.multiplier,
            Decimal::ZERO,
            Decimal::new(MAX_MULTIPLIER, 0),
            false,
        )?;
    }
    unique(
        "earning.campaigns",
        e.campaigns.iter().map(|c| c.id.as_str()),
    )?;
    for (i, c) in e.campaigns.iter().enumerate() {
        let field = format!("earning.campaigns[{i}]");
        text(&format!("{field}.name"), &c.name, 100)?;
        if c.ends_on < c.starts_on {
            return Err(err(format!("{field}.ends_on"), "is before starts_on"));
        }
        match (c.multiplier, c.bonus_points) {
            (Some(m), None) => decimal_in(
                &format!("{field}.multiplier"),
                m,
                Decimal::ONE,
                Decimal::new(MAX_MULTIPLIER, 0),
                false,
            )?,
            (None, Some(b)) => points_in(&format!("{field}.bonus_points"), b, 1, 1_000_000)?,
            _ => {
                return Err(err(
                    field,
                    "needs exactly one of `multiplier` or `bonus_points`",
                ));
            }
        }
        if let Some(min) = c.min_spend {
            decimal_in(
                &format!("{field}.min_spend"),
                min,
                Decimal::ZERO,
                Decimal::new(1_000_000_000, 0),
                true,
            )?;
        }
        if c.per_member_limit == Some(0) {
            return Err(err(
                format!("{field}.per_member_limit"),
                "must be at least 1",
            ));
        }
    }
    if let Some(cap) = e.max_points_per_transaction {
        points_in("earning.max_points_per_transaction", cap, 1, 1_000_000_000)?;
    }

    if p.pending.days > 366 {
        return Err(err("pending.days", "must be at most 366"));
    }
    match p.expiry {
        ExpiryPolicy::LotMonths { months: m, .. } | ExpiryPolicy::Inactivity { months: m } => {
            months("expiry.months", m)?
        }
        ExpiryPolicy::Never => {}
    }

    let t = &p.tiers;
    if t.levels.is_empty() {
        return Err(err("tiers.levels", "needs at least one tier"));
    }
    unique("tiers.levels", t.levels.iter().map(|l| l.name.as_str()))?;
    for (i, level) in t.levels.iter().enumerate() {
        let field = format!("tiers.levels[{i}]");
        text(&format!("{field}.name"), &level.name, 64)?;
        decimal_in(
            &format!("{field}.multiplier"),
            level.multiplier,
            Decimal::ZERO,
            Decimal::new(MAX_MULTIPLIER, 0),
            false,
        )?;
        if i == 0 && !level.threshold.is_zero() {
            return Err(err(
                format!("{field}.threshold"),
                "the entry tier's threshold must be 0",
            ));
        }
        if i > 0 && level.threshold <= t.levels[i - 1].threshold {
            return Err(err(
                format!("{field}.threshold"),
                "thresholds must increase from one tier to the next",
            ));
        }
    }
    if let QualifyingWindow::Rolling { months: m } = t.window {
        months("tiers.window.months", m)?;
    }
    if let ReviewSchedule::FixedDate { month, day } = t.review {
        // 2023 is not a leap year: a review on 29 February would be skipped three years in four.
        if NaiveDate::from_ymd_opt(2023, month, day).is_none() {
            return Err(err(
                "tiers.review",
                format!("{month:02}-{day:02} is not a date every year"),
            ));
        }
    }
    if t.max_levels_down_per_review == 0 {
        return Err(err(
            "tiers.max_levels_down_per_review",
            "must be at least 1",
        ));
    }

    unique("rewards", p.rewards.iter().map(|r| r.id.as_str()))?;
    for (i, r) in p.rewards.iter().enumerate() {
        let field = format!("rewards[{i}]");
        text(&format!("{field}.name"), &r.name, 100)?;
        points_in(
            &format!("{field}.cost"),
            r.cost,
            1,
            limits.max_points_per_redemption.value(),
        )?;
        if let Some(tier) = &r.min_tier
            && p.tier_index(tier).is_none()
        {
            return Err(err(
                format!("{field}.min_tier"),
                format!("no tier named {tier:?}"),
            ));
        }
        if r.per_member_limit == Some(0) {
            return Err(err(
                format!("{field}.per_member_limit"),
                "must be at least 1",
            ));
        }
        if let (Some(from), Some(until)) = (r.available_from, r.available_until)
            && until < from
        {
            return Err(err(
                format!("{field}.available_until"),
                "is before available_from",
            ));
        }
    }

    let max_adjust = limits.max_points_per_adjustment.value();
    points_in(
        "bonuses.welcome_points",
        p.bonuses.welcome_points,
        0,
        max_adjust,
    )?;
    unique(
        "bonuses.activities",
        p.bonuses.activities.iter().map(|a| a.kind.as_str()),
    )?;
    for (i, a) in p.bonuses.activities.iter().enumerate() {
        let field = format!("bonuses.activities[{i}]");
        points_in(&format!("{field}.points"), a.points, 1, max_adjust)?;
        if a.limit == 0 {
            return Err(err(format!("{field}.limit"), "must be at least 1"));
        }
    }
    if let Some(r) = &p.referral {
        points_in("referral.referrer_points", r.referrer_points, 0, max_adjust)?;
        points_in("referral.newcomer_points", r.newcomer_points, 0, max_adjust)?;
        decimal_in(
            "referral.min_first_purchase",
            r.min_first_purchase,
            Decimal::ZERO,
            Decimal::new(1_000_000_000, 0),
            true,
        )?;
    }
    if let Some(w) = &p.win_back {
        if w.below_p_alive.is_none() && w.inactive_days.is_none() {
            return Err(err(
                "win_back",
                "needs below_p_alive or inactive_days (or both)",
            ));
        }
        if let Some(p_alive) = w.below_p_alive {
            decimal_in(
                "win_back.below_p_alive",
                p_alive,
                Decimal::ZERO,
                Decimal::ONE,
                false,
            )?;
        }
        if w.inactive_days.is_some_and(|d| d == 0 || d > 3660) {
            return Err(err("win_back.inactive_days", "must be between 1 and 3660"));
        }
        if w.min_purchase_days > 1000 {
            return Err(err("win_back.min_purchase_days", "must be at most 1000"));
        }
        points_in("win_back.points", w.points, 1, max_adjust)?;
        if w.once_every_days == 0 || w.once_every_days > 3660 {
            return Err(err(
                "win_back.once_every_days",
                "must be between 1 and 3660",
            ));
        }
    }
    if let Some(days) = p.notices.points_expiring_days
        && !(1..=MAX_NOTICE_DAYS).contains(&days)
    {
        return Err(err(
            "notices.points_expiring_days",
            format!("must be between 1 and {MAX_NOTICE_DAYS}"),
        ));
    }
    decimal_in(
        "valuation.point_value",
        p.valuation.point_value,
        Decimal::ZERO,
        Decimal::new(1_000_000, 0),
        false,
    )?;
    Ok(())
}
