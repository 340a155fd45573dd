//! Calendar arithmetic in the program's timezone. Instants are UTC; "the end of the month",
//! "14 days later", "this week" are questions about the local calendar, so they are answered
//! on local date-times and converted back. DST gaps and overlaps resolve deterministically.

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc,
};
use chrono_tz::Tz;

use crate::program::Period;

pub fn local(instant: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    instant.with_timezone(&tz).naive_local()
}

pub fn local_date(instant: DateTime<Utc>, tz: Tz) -> NaiveDate {
    local(instant, tz).date()
}

/// The instant of a local date-time. In an overlap (clocks go back) the earlier instant; in a
/// gap (clocks go forward) the first valid local time after it.
pub fn resolve(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let mut candidate = naive;
    // Gaps are at most a few hours; step by 15 minutes until a valid local time appears.
    for _ in 0..(4 * 26) {
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => {
                candidate = candidate.checked_add_signed(chrono::Duration::minutes(15))?
            }
        }
    }
    None
}

/// The first instant of a local date.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    resolve(date.and_time(NaiveTime::MIN), tz)
}

/// The same local time `days` calendar days later (not `days x 24h`: across a DST change the
/// two differ by an hour).
pub fn add_days(instant: DateTime<Utc>, days: u32, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = local(instant, tz).checked_add_days(Days::new(u64::from(days)))?;
    resolve(naive, tz)
}

/// The same local time `months` later; a day past the target month's end becomes its last day.
pub fn add_months(instant: DateTime<Utc>, months: u32, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = local(instant, tz).checked_add_months(Months::new(months))?;
    resolve(naive, tz)
}

pub fn sub_months(instant: DateTime<Utc>, months: u32, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = local(instant, tz).checked_sub_months(Months::new(months))?;
    resolve(naive, tz)
}

/// The end of the local month holding `instant`: the first instant of the next local month
/// (a lot "expiring at the end of November" is spendable until 23:59:59.999 on 30 November).
pub fn end_of_month(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let date = local_date(instant, tz);
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    start_of_day(first.checked_add_months(Months::new(1))?, tz)
}

/// The first instant of the local calendar year holding `instant`.
pub fn start_of_year(instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let date = local_date(instant, tz);
    start_of_day(NaiveDate::from_ymd_opt(date.year(), 1, 1)?, tz)
}

/// Whether `instant` falls on a local date in `[from, until]` (inclusive both ends).
pub fn within_local_dates(
    instant: DateTime<Utc>,
    from: Option<NaiveDate>,
    until: Option<NaiveDate>,
    tz: Tz,
) -> bool {
    let date = local_date(instant, tz);
    from.is_none_or(|f| date >= f) && until.is_none_or(|u| date <= u)
}

/// The key of the limit period holding `instant`, in local time.
pub fn period_key(instant: DateTime<Utc>, period: Period, tz: Tz) -> String {
    let date = local_date(instant, tz);
    match period {
        Period::Once => "once".to_owned(),
        Period::Day => format!("day:{}", date.format("%Y-%m-%d")),
        Period::Week => {
            let week = date.iso_week();
            format!("week:{}-W{:02}", week.year(), week.week())
        }
        Period::Month => format!("month:{}", date.format("%Y-%m")),
        Period::Year => format!("year:{}", date.year()),
    }
}

/// A yearly date (month, day) in a given year; 29 February becomes 28 February in other years.
pub fn yearly_date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
        .or_else(|| NaiveDate::from_ymd_opt(year, month, day.saturating_sub(1)))
}
