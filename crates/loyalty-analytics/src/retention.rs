//! Retention, churn and the revenue at risk from churn, per period and per enrollment cohort.
//!
//! A member is a *customer* at a day `t` when they enrolled before it and bought at least once
//! in the [`RetentionPolicy::active_days`] before it (a year by default: a customer who has
//! not bought for a year is gone). Over a period `[start, end)`:
//! - `customers_at_start` (S) and `customers_at_end` (E) are the customers at those days;
//! - `new_customers` (N) are the customers at the end who were not at the start: enrolled
//!   during the period, or won back after lapsing (both counted, and told apart);
//! - the retention rate is `(E - N) / S`: the share of the start's customers still customers
//!   at the end; churn is `1 - retention`;
//! - the revenue at risk is `S x average yearly spend x churn`, the average yearly spend being
//!   what the start's customers spent, net of refunds, in the twelve months before it.

use chrono::{Months, NaiveDate, TimeDelta};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::period::{Period, PeriodKind};
use crate::summary::{MemberSummary, month_of};

/// What makes a member a customer at a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// A customer bought at least once in this many days before the day.
    pub active_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { active_days: 365 }
    }
}

impl RetentionPolicy {
    fn is_customer(&self, m: &MemberSummary, day: NaiveDate) -> bool {
        m.enrolled_on < day
            && m.bought_between(day - TimeDelta::days(i64::from(self.active_days)), day)
    }
}

/// Retention over one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub period: Period,
    pub customers_at_start: u64,
    pub customers_at_end: u64,
    /// Customers at the end who were not at the start (`enrolled` + `won_back`).
    pub new_customers: u64,
    pub enrolled: u64,
    pub won_back: u64,
    /// Customers at the start who were still customers at the end.
    pub retained: u64,
    pub churned: u64,
    /// `(E - N) / S`; `None` without customers at the start.
    pub retention_rate: Option<Decimal>,
    pub churn_rate: Option<Decimal>,
    /// What the start's customers spent in the twelve months before it, on average.
    pub average_yearly_spend: Option<Decimal>,
    /// `S x average yearly spend x churn rate`.
    pub revenue_at_risk: Decimal,
}

/// `customers x average yearly spend x churn rate`: what a year of the customers churn takes
/// away costs in sales (700 customers at 300 a year losing 20% of them: 42,000 a year).
pub fn revenue_at_risk(
    customers: u64,
    average_yearly_spend: Decimal,
    churn_rate: Decimal,
) -> Decimal {
    Decimal::from(customers) * average_yearly_spend * churn_rate
}

/// Retention over `period` of the members in `summaries`.
pub fn retention<'a>(
    summaries: impl IntoIterator<Item = &'a MemberSummary>,
    period: Period,
    policy: RetentionPolicy,
) -> Result<Retention, AnalyticsError> {
    if period.end <= period.start {
        return Err(AnalyticsError::EmptyPeriod {
            start: period.start,
            end: period.end,
        });
    }
    let year_before = month_of(period.start) - Months::new(12);
    let mut r = Retention {
        period,
        customers_at_start: 0,
        customers_at_end: 0,
        new_customers: 0,
        enrolled: 0,
        won_back: 0,
        retained: 0,
        churned: 0,
        retention_rate: None,
        churn_rate: None,
        average_yearly_spend: None,
        revenue_at_risk: Decimal::ZERO,
    };
    let mut spend_before = Decimal::ZERO;
    for m in summaries {
        let at_start = policy.is_customer(m, period.start);
        let at_end = policy.is_customer(m, period.end);
        if at_start {
            r.customers_at_start += 1;
            spend_before += m.spend_between(year_before, month_of(period.start));
            if at_end {
                r.retained += 1;
            } else {
                r.churned += 1;
            }
        }
        if at_end {
            r.customers_at_end += 1;
            if !at_start {
                r.new_customers += 1;
                if m.enrolled_on >= period.start {
                    r.enrolled += 1;
                } else {
                    r.won_back += 1;
                }
            }
        }
    }
    debug_assert_eq!(r.customers_at_end - r.new_customers, r.retained);
    if r.customers_at_start > 0 {
        let start = Decimal::from(r.customers_at_start);
        let retention = Decimal::from(r.customers_at_end - r.new_customers) / start;
        let churn = Decimal::ONE - retention;
        let average = spend_before / start;
        r.retention_rate = Some(retention);
        r.churn_rate = Some(churn);
        r.average_yearly_spend = Some(average);
        r.revenue_at_risk = revenue_at_risk(r.customers_at_start, average, churn);
    }
    Ok(r)
}

/// How one enrollment cohort (the members who enrolled in one period) kept buying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortRetention {
    pub cohort: Period,
    pub members: u64,
    /// For the cohort's period and each one after it (up to the last that started by
    /// `until`): how many of its members bought in it.
    pub active: Vec<u64>,
}

impl CohortRetention {
    /// The share of the cohort that bought in its `k`-th period.
    pub fn rate(&self, k: usize) -> Option<Decimal> {
        let active = *self.active.get(k)?;
        (self.members > 0).then(|| Decimal::from(active) / Decimal::from(self.members))
    }
}

/// The cohorts of `kind` that enrolled from `from` to `until`, and how each kept buying in
/// every period after it up to `until`.
pub fn cohort_retention<'a>(
    summaries: impl IntoIterator<Item = &'a MemberSummary>,
    kind: PeriodKind,
    from: NaiveDate,
    until: NaiveDate,
) -> Vec<CohortRetention> {
    let periods = Period::range(kind, from, until);
    let mut cohorts: Vec<CohortRetention> = periods
        .iter()
        .enumerate()
        .map(|(i, p)| CohortRetention {
            cohort: *p,
            members: 0,
            active: vec![0; periods.len() - i],
        })
        .collect();
    for m in summaries {
        let Some(c) = periods
            .iter()
            .position(|p| p.start <= m.enrolled_on && m.enrolled_on < p.end)
        else {
            continue;
        };
        let cohort = &mut cohorts[c];
        cohort.members += 1;
        for (k, p) in periods[c..].iter().enumerate() {
            if m.bought_between(p.start, p.end) {
                cohort.active[k] += 1;
            }
        }
    }
    cohorts
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// `n` members enrolled in 2024 who each spent `yearly` in 2025.
    fn customers(n: usize, yearly: Decimal) -> Vec<MemberSummary> {
        (0..n)
            .map(|i| {
                let mut m = MemberSummary::new(format!("m{i}"), d("2024-06-01"));
                m.record(d("2025-03-10"), yearly);
                m
            })
            .collect()
    }

    #[test]
    fn seven_hundred_customers_at_300_a_year_losing_20_percent_put_42000_at_risk() {
        assert_eq!(revenue_at_risk(700, dec!(300), dec!(0.20)), dec!(42000));
        // The same from the members: 700 customers who each spent 300 in 2025, of whom 560
        // buy again in 2026 and 140 do not.
        let mut members = customers(700, dec!(300));
        for m in members.iter_mut().take(560) {
            m.record(d("2026-04-02"), dec!(25));
        }
        let year = Period::containing(PeriodKind::Year, d("2026-01-01"));
        let r = retention(&members, year, RetentionPolicy::default()).unwrap();
        assert_eq!(r.customers_at_start, 700);
        assert_eq!(r.customers_at_end, 560);
        assert_eq!(r.retained, 560);
        assert_eq!(r.churned, 140);
        assert_eq!(r.retention_rate, Some(dec!(0.8)));
        assert_eq!(r.churn_rate, Some(dec!(0.2)));
        assert_eq!(r.average_yearly_spend, Some(dec!(300)));
        assert_eq!(r.revenue_at_risk, dec!(42000));
    }

    #[test]
    fn new_and_won_back_customers_do_not_count_as_retained() {
        let mut members = customers(10, dec!(100));
        for m in members.iter_mut().take(6) {
            m.record(d("2026-02-01"), dec!(10));
        }
        // A newcomer of 2026, and one who lapsed in 2025 and came back in 2026.
        let mut new = MemberSummary::new("new", d("2026-03-01"));
        new.record(d("2026-03-02"), dec!(40));
        let mut lapsed = MemberSummary::new("lapsed", d("2023-01-01"));
        lapsed.record(d("2024-01-05"), dec!(40));
        lapsed.record(d("2026-05-05"), dec!(40));
        members.push(new);
        members.push(lapsed);
        let year = Period::containing(PeriodKind::Year, d("2026-01-01"));
        let r = retention(&members, year, RetentionPolicy::default()).unwrap();
        assert_eq!((r.customers_at_start, r.customers_at_end), (10, 8));
        assert_eq!((r.new_customers, r.enrolled, r.won_back), (2, 1, 1));
        assert_eq!(r.retention_rate, Some(dec!(0.6)));
        assert_eq!(r.revenue_at_risk, dec!(400)); // 10 x 100 x 0.4
    }

    #[test]
    fn a_period_without_customers_at_its_start_has_no_rate() {
        let year = Period::containing(PeriodKind::Year, d("2026-01-01"));
        let r = retention(&[], year, RetentionPolicy::default()).unwrap();
        assert_eq!(r.retention_rate, None);
        assert_eq!(r.revenue_at_risk, Decimal::ZERO);
        let empty = Period {
            start: d("2026-01-01"),
            end: d("2026-01-01"),
        };
        assert!(retention(&[], empty, RetentionPolicy::default()).is_err());
    }

    #[test]
    fn a_cohort_is_followed_period_by_period() {
        let mut a = MemberSummary::new("a", d("2026-01-10"));
        a.record(d("2026-01-11"), dec!(5));
        a.record(d("2026-03-01"), dec!(5));
        let mut b = MemberSummary::new("b", d("2026-01-20"));
        b.record(d("2026-01-21"), dec!(5));
        let mut c = MemberSummary::new("c", d("2026-02-02"));
        c.record(d("2026-03-03"), dec!(5));
        let cohorts = cohort_retention(
            &[a, b, c],
            PeriodKind::Month,
            d("2026-01-01"),
            d("2026-03-31"),
        );
        assert_eq!(cohorts.len(), 3);
        assert_eq!(cohorts[0].members, 2);
        assert_eq!(cohorts[0].active, vec![2, 0, 1]);
        assert_eq!(cohorts[0].rate(2), Some(dec!(0.5)));
        assert_eq!(cohorts[1].active, vec![0, 1]);
        assert_eq!(cohorts[2].members, 0);
        assert_eq!(cohorts[2].rate(0), None);
    }
}
