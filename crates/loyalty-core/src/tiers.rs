//! Tier rules: the qualifying window, which tier a value reaches, and review dates.

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;

use crate::calendar;
use crate::event::TierRef;
use crate::points::Points;
use crate::program::{Program, QualifyingMetric, QualifyingWindow, ReviewSchedule};

/// The start of the qualifying window ending at `as_of`.
pub fn window_start(program: &Program, as_of: DateTime<Utc>) -> DateTime<Utc> {
    let tz = program.timezone();
    let start = match program.tiers.window {
        QualifyingWindow::Rolling { months } => calendar::sub_months(as_of, months, tz),
        QualifyingWindow::CalendarYear => calendar::start_of_year(as_of, tz),
    };
    // Only unrepresentable dates fail; an empty window is the safe reading then.
    start.unwrap_or(as_of)
}

/// The highest tier whose threshold `value` reaches.
pub fn tier_for(program: &Program, value: Decimal) -> TierRef {
    let levels = program.tiers();
    let index = levels
        .iter()
        .rposition(|l| value >= l.threshold)
        .unwrap_or(0);
    tier_ref(program, index)
}

/// Where a recorded tier stands in today's program: by name (a program may have inserted or
/// reordered tiers since the event was recorded), else by its recorded index.
pub fn position(program: &Program, tier: &TierRef) -> u32 {
    position_named(program, &tier.name, tier.index)
}

/// [`position`] of a tier recorded as `name` at `index`.
pub fn position_named(program: &Program, name: &str, index: u32) -> u32 {
    program
        .tier_index(name)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(index)
}

/// The tier metric over `[from, to]` from contributions dated by their purchase
/// (`(at, spend, points)`; refunds are negative).
pub fn qualifying_sum(
    metric: QualifyingMetric,
    entries: impl IntoIterator<Item = (DateTime<Utc>, Decimal, Points)>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Decimal {
    entries
        .into_iter()
        .filter(|(at, _, _)| *at >= from && *at <= to)
        .map(|(_, spend, points)| match metric {
            QualifyingMetric::QualifyingSpend => spend,
            QualifyingMetric::PointsEarned => Decimal::from(points.value()),
        })
        .sum()
}

pub fn tier_ref(program: &Program, index: usize) -> TierRef {
    TierRef {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        name: program
            .tiers()
            .get(index)
            .map(|l| l.name.clone())
            .unwrap_or_default(),
    }
}

/// The latest review date at or before `as_of` and after enrollment, if any.
pub fn last_review_at(
    program: &Program,
    enrolled_at: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tz = program.timezone();
    let enrolled = calendar::local_date(enrolled_at, tz);
    let (month, day) = match program.tiers.review {
        ReviewSchedule::Anniversary => (enrolled.month(), enrolled.day()),
        ReviewSchedule::FixedDate { month, day } => (month, day),
    };
    let today = calendar::local_date(as_of, tz);
    for year in [today.year(), today.year() - 1] {
        let date = calendar::yearly_date(year, month, day)?;
        let at = calendar::start_of_day(date, tz)?;
        if at <= as_of {
            return (at > enrolled_at && date > enrolled).then_some(at);
        }
    }
    None
}

/// The first review date strictly after `after` (for a scheduler that sends `ReviewTier`).
pub fn next_review_at(
    program: &Program,
    enrolled_at: DateTime<Utc>,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tz = program.timezone();
    let enrolled = calendar::local_date(enrolled_at, tz);
    let (month, day) = match program.tiers.review {
        ReviewSchedule::Anniversary => (enrolled.month(), enrolled.day()),
        ReviewSchedule::FixedDate { month, day } => (month, day),
    };
    let from = calendar::local_date(after.max(enrolled_at), tz);
    (from.year()..=from.year().saturating_add(2)).find_map(|year| {
        let date = calendar::yearly_date(year, month, day)?;
        let at = calendar::start_of_day(date, tz)?;
        (at > after && date > enrolled).then_some(at)
    })
}
