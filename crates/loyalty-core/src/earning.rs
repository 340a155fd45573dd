//! Earning rules: from a purchase's lines to points per line and per rule.
//!
//! Each line's points are built as a running product: base (eligible amount x rate), then the
//! product multiplier, the tier multiplier, then each campaign multiplier applied to the
//! product-multiplied base. Each rule is recorded as the difference of the rounded running
//! totals, so the rules of a line add up to exactly the rounded final value and a line never
//! goes negative whatever the rounding mode.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::calendar;
use crate::command::PurchaseLine;
use crate::error::DomainError;
use crate::event::{LineAward, RuleAward};
use crate::ids::{CampaignId, StoreId};
use crate::money::{RoundingMode, RoundingScope};
use crate::points::{self, Points};
use crate::program::{Campaign, Program};
use crate::state::MemberState;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Award {
    pub lines: Vec<LineAward>,
    pub transaction_rules: Vec<RuleAward>,
    pub points: Points,
    pub eligible_amount: Decimal,
    pub campaigns_applied: Vec<CampaignId>,
}

impl Award {
    /// The award an import sets: the lines keep their amounts and eligible amounts (the
    /// history and the tier's qualifying spend), the rules' points give way to `points`, one
    /// transaction-level rule `imported` (none for zero).
    pub(crate) fn imported(mut self, points: Points) -> Award {
        for line in &mut self.lines {
            line.points = Points::ZERO;
            line.rules.clear();
        }
        self.campaigns_applied.clear();
        self.transaction_rules = if points.is_positive() {
            vec![RuleAward {
                rule: "imported".to_owned(),
                points,
            }]
        } else {
            Vec::new()
        };
        self.points = points;
        self
    }
}

fn overflow() -> DomainError {
    DomainError::ArithmeticOverflow
}

fn mul(a: Decimal, b: Decimal) -> Result<Decimal, DomainError> {
    a.checked_mul(b).ok_or_else(overflow)
}

fn add(a: Decimal, b: Decimal) -> Result<Decimal, DomainError> {
    a.checked_add(b).ok_or_else(overflow)
}

fn campaign_matches_line(c: &Campaign, line: &PurchaseLine) -> bool {
    (c.categories.is_empty() && c.skus.is_empty())
        || c.categories.contains(&line.category)
        || c.skus.contains(&line.sku)
}

/// Campaigns running at `at` in `store` that the member has not used up.
fn running_campaigns<'p>(
    program: &'p Program,
    state: &MemberState,
    store: &StoreId,
    at: DateTime<Utc>,
) -> impl Iterator<Item = &'p Campaign> {
    let tz = program.timezone();
    program.earning.campaigns.iter().filter(move |c| {
        calendar::within_local_dates(at, Some(c.starts_on), Some(c.ends_on), tz)
            && (c.stores.is_empty() || c.stores.contains(store))
            && c.per_member_limit
                .is_none_or(|limit| state.campaign_uses(&c.id) < limit)
    })
}

pub(crate) fn compute(
    program: &Program,
    state: &MemberState,
    store: &StoreId,
    at: DateTime<Utc>,
    lines: &[PurchaseLine],
) -> Result<Award, DomainError> {
    let rounding = program.rounding();
    let round = |v: Decimal| rounding.to_points(v).ok_or_else(overflow);
    let earning = &program.earning;
    let tier = program
        .tiers()
        .get(crate::tiers::position(program, state.tier()) as usize)
        .or_else(|| program.tiers().first());

    let eligible: Vec<Decimal> = lines
        .iter()
        .map(|l| {
            if earning.excluded_categories.contains(&l.category) {
                Decimal::ZERO
            } else {
                l.amount
            }
        })
        .collect();

    // Campaigns that apply: running, with matching eligible lines reaching the minimum spend.
    let mut applied: Vec<&Campaign> = Vec::new();
    for c in running_campaigns(program, state, store, at) {
        let mut matching = Decimal::ZERO;
        let mut any = false;
        for (line, amount) in lines.iter().zip(&eligible) {
            if amount.is_sign_positive() && !amount.is_zero() && campaign_matches_line(c, line) {
                matching = add(matching, *amount)?;
                any = true;
            }
        }
        if any && c.min_spend.is_none_or(|min| matching >= min) {
            applied.push(c);
        }
    }

    let mut awards = Vec::with_capacity(lines.len());
    // Each line's exact (unrounded) points, for rounding per transaction.
    let mut exact = Vec::with_capacity(lines.len());
    for (line, amount) in lines.iter().zip(&eligible) {
        let mut rules = Vec::new();
        let mut push = |rule: String, before: Decimal, after: Decimal| -> Result<(), DomainError> {
            let points = round(after)?
                .checked_sub(round(before)?)
                .ok_or_else(overflow)?;
            rules.push(RuleAward { rule, points });
            Ok(())
        };
        let base = mul(*amount, earning.points_per_unit)?;
        push("base".to_owned(), Decimal::ZERO, base)?;
        let mut running = base;
        let product = earning
            .multipliers
            .iter()
            .find(|m| m.sku.as_ref() == Some(&line.sku))
            .map(|m| (format!("multiplier:sku:{}", line.sku), m.multiplier))
            .or_else(|| {
                earning
                    .multipliers
                    .iter()
                    .find(|m| m.category.as_ref() == Some(&line.category))
                    .map(|m| {
                        (
                            format!("multiplier:category:{}", line.category),
                            m.multiplier,
                        )
                    })
            });
        if let Some((rule, m)) = product {
            let next = mul(running, m)?;
            push(rule, running, next)?;
            running = next;
        }
        let multiplied = running;
        if let Some(t) = tier
            && t.multiplier != Decimal::ONE
        {
            let next = mul(multiplied, t.multiplier)?;
            push(format!("tier:{}", t.name), running, next)?;
            running = next;
        }
        if !amount.is_zero() {
            for c in applied.iter().filter(|c| campaign_matches_line(c, line)) {
                if let Some(m) = c.multiplier {
                    let extra = mul(multiplied, m - Decimal::ONE)?;
                    let next = add(running, extra)?;
                    push(format!("campaign:{}", c.id), running, next)?;
                    running = next;
                }
            }
        }
        let points = round(running)?;
        exact.push(running);
        awards.push(LineAward {
            sku: line.sku.clone(),
            category: line.category.clone(),
            quantity: line.quantity,
            amount: line.amount,
            eligible_amount: *amount,
            rules,
            points,
        });
    }

    if program.rounding_scope() == RoundingScope::Transaction {
        round_per_transaction(rounding, &exact, &mut awards)?;
    }

    let mut transaction_rules: Vec<RuleAward> = applied
        .iter()
        .filter_map(|c| {
            c.bonus_points.map(|b| RuleAward {
                rule: format!("campaign:{}", c.id),
                points: b,
            })
        })
        .collect();

    let line_total = points::sum(awards.iter().map(|a| a.points));
    let transaction_total = points::sum(transaction_rules.iter().map(|r| r.points));
    let mut total = line_total
        .checked_add(transaction_total)
        .ok_or_else(overflow)?;

    if let Some(cap) = earning.max_points_per_transaction
        && total > cap
    {
        let mut excess = total.checked_sub(cap).ok_or_else(overflow)?;
        // Transaction bonuses give way first, then lines from the last one.
        let from_transaction = excess.min(transaction_total);
        if from_transaction.is_positive() {
            transaction_rules.push(RuleAward {
                rule: "cap".to_owned(),
                points: from_transaction.checked_neg().ok_or_else(overflow)?,
            });
            excess = excess.checked_sub(from_transaction).ok_or_else(overflow)?;
        }
        for award in awards.iter_mut().rev() {
            if !excess.is_positive() {
                break;
            }
            let take = excess.min(award.points);
            if take.is_positive() {
                award.rules.push(RuleAward {
                    rule: "cap".to_owned(),
                    points: take.checked_neg().ok_or_else(overflow)?,
                });
                award.points = award.points.checked_sub(take).ok_or_else(overflow)?;
                excess = excess.checked_sub(take).ok_or_else(overflow)?;
            }
        }
        total = cap;
    }

    let mut eligible_amount = Decimal::ZERO;
    for a in &eligible {
        eligible_amount = add(eligible_amount, *a)?;
    }
    Ok(Award {
        lines: awards,
        transaction_rules,
        points: total,
        eligible_amount,
        campaigns_applied: applied.iter().map(|c| c.id.clone()).collect(),
    })
}

/// Rounds the purchase's exact points once and shares the result out over the lines: each line
/// keeps its whole points, and the points the fractions add up to go one each to the lines with
/// the largest fractions (the earlier line on a tie). A line's share differs from its own
/// rounding by at most one point, recorded as its `rounding` rule, so the rules of a line still
/// add up to its points and a refund of a line takes back what that line was given.
fn round_per_transaction(
    rounding: RoundingMode,
    exact: &[Decimal],
    awards: &mut [LineAward],
) -> Result<(), DomainError> {
    let mut sum = Decimal::ZERO;
    for e in exact {
        sum = add(sum, *e)?;
    }
    let total = rounding.to_points(sum).ok_or_else(overflow)?;
    let floors: Vec<Points> = exact
        .iter()
        .map(|e| RoundingMode::Floor.to_points(*e).ok_or_else(overflow))
        .collect::<Result<_, _>>()?;
    let mut extra = total
        .checked_sub(points::sum(floors.iter().copied()))
        .ok_or_else(overflow)?
        .value();
    // Every line's exact value is at least zero, so the whole points left over are fewer than
    // the lines with a fraction: each gets at most one.
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|a, b| {
        let fa = exact[*a] - exact[*a].floor();
        let fb = exact[*b] - exact[*b].floor();
        fb.cmp(&fa).then(a.cmp(b))
    });
    let mut shares = floors;
    for i in order {
        if extra <= 0 {
            break;
        }
        if exact[i] > exact[i].floor() {
            shares[i] = shares[i].checked_add(Points::new(1)).ok_or_else(overflow)?;
            extra -= 1;
        }
    }
    debug_assert!(extra == 0, "points left to share: {extra}");
    if extra != 0 {
        // Not reachable with non-negative lines; keep each line's own rounding rather than
        // record points no line accounts for.
        return Ok(());
    }
    for (award, share) in awards.iter_mut().zip(shares) {
        let adjustment = share.checked_sub(award.points).ok_or_else(overflow)?;
        if !adjustment.is_zero() {
            award.rules.push(RuleAward {
                rule: "rounding".to_owned(),
                points: adjustment,
            });
            award.points = share;
        }
    }
    Ok(())
}
