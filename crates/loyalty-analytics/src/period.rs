//! Calendar periods: months, quarters and years of the program's local calendar.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Month,
    Quarter,
    Year,
}

impl PeriodKind {
    /// The period's length in calendar months.
    pub fn months(self) -> u32 {
        match self {
            PeriodKind::Month => 1,
            PeriodKind::Quarter => 3,
            PeriodKind::Year => 12,
        }
    }
}

/// `[start, end)`: from its first day up to, not including, the next period's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    /// The period of `kind` that contains `day`.
    pub fn containing(kind: PeriodKind, day: NaiveDate) -> Period {
        let month0 = match kind {
            PeriodKind::Month => day.month0(),
            PeriodKind::Quarter => day.month0() / 3 * 3,
            PeriodKind::Year => 0,
        };
        let start = NaiveDate::from_ymd_opt(day.year(), month0 + 1, 1).unwrap_or(day);
        Period {
            start,
            end: start + Months::new(kind.months()),
        }
    }

    /// The periods of `kind` from the one containing `from` to the one containing `to`.
    pub fn range(kind: PeriodKind, from: NaiveDate, to: NaiveDate) -> Vec<Period> {
        let mut periods = Vec::new();
        let mut p = Period::containing(kind, from);
        while p.start <= to {
            periods.push(p);
            p = Period {
                start: p.end,
                end: p.end + Months::new(kind.months()),
            };
        }
        periods
    }

    /// The same length of time just before this period (a year before, for a year).
    pub fn months_before(&self, months: u32) -> NaiveDate {
        self.start - Months::new(months)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_are_calendar_months_quarters_and_years() {
        let q = Period::containing(PeriodKind::Quarter, d("2026-05-17"));
        assert_eq!((q.start, q.end), (d("2026-04-01"), d("2026-07-01")));
        let y = Period::containing(PeriodKind::Year, d("2026-05-17"));
        assert_eq!((y.start, y.end), (d("2026-01-01"), d("2027-01-01")));
        let months = Period::range(PeriodKind::Month, d("2026-11-15"), d("2027-02-01"));
        assert_eq!(months.len(), 4);
        assert_eq!(months[3].start, d("2027-02-01"));
    }
}
