//! What the analytics know of one member: when they enrolled, the days they bought on, and
//! what they spent net of refunds.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One member's purchase history, summarised. Purchases on the same day count once (as in
/// the literature on repeat buying): `purchase_days` is sorted and holds each day once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSummary {
    pub member_id: String,
    pub enrolled_on: NaiveDate,
    pub purchase_days: Vec<NaiveDate>,
    /// Spend net of refunds, in the program's currency.
    pub net_spend: Decimal,
    /// The same by day, sorted, one entry per day with a purchase or a refund (refunds are
    /// dated by the day they were taken): what a period's spend and a model's average spend
    /// per purchase day are summed from.
    pub daily_spend: Vec<(NaiveDate, Decimal)>,
}

impl MemberSummary {
    pub fn new(member_id: impl Into<String>, enrolled_on: NaiveDate) -> MemberSummary {
        MemberSummary {
            member_id: member_id.into(),
            enrolled_on,
            purchase_days: Vec::new(),
            net_spend: Decimal::ZERO,
            daily_spend: Vec::new(),
        }
    }

    /// Records a purchase (or, with a negative amount, a refund) on `day`.
    pub fn record(&mut self, day: NaiveDate, amount: Decimal) {
        self.net_spend += amount;
        match self.daily_spend.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(at) => self.daily_spend[at].1 += amount,
            Err(at) => self.daily_spend.insert(at, (day, amount)),
        }
        if amount > Decimal::ZERO
            && let Err(at) = self.purchase_days.binary_search(&day)
        {
            self.purchase_days.insert(at, day);
        }
    }

    /// The last day they bought on, up to and including `day`.
    pub fn last_purchase_by(&self, day: NaiveDate) -> Option<NaiveDate> {
        let end = self.purchase_days.partition_point(|d| *d <= day);
        end.checked_sub(1).map(|i| self.purchase_days[i])
    }

    /// Whether they bought on a day in `[from, until)`.
    pub fn bought_between(&self, from: NaiveDate, until: NaiveDate) -> bool {
        let start = self.purchase_days.partition_point(|d| *d < from);
        self.purchase_days.get(start).is_some_and(|d| *d < until)
    }

    /// Net spend on the days in `[from, until)`.
    pub fn spend_between(&self, from: NaiveDate, until: NaiveDate) -> Decimal {
        let start = self.daily_spend.partition_point(|(d, _)| *d < from);
        self.daily_spend[start..]
            .iter()
            .take_while(|(d, _)| *d < until)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Days with a purchase up to and including `day`.
    pub fn frequency_by(&self, day: NaiveDate) -> usize {
        self.purchase_days.partition_point(|d| *d <= day)
    }
}

/// The first day of `day`'s month.
pub(crate) fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn purchases_on_one_day_count_once_and_refunds_only_lower_the_spend() {
        let mut m = MemberSummary::new("alice", d("2026-01-01"));
        m.record(d("2026-02-03"), dec!(10.00));
        m.record(d("2026-02-01"), dec!(5.00));
        m.record(d("2026-02-03"), dec!(2.50));
        m.record(d("2026-02-05"), dec!(-4.00));
        assert_eq!(m.purchase_days, vec![d("2026-02-01"), d("2026-02-03")]);
        assert_eq!(m.net_spend, dec!(13.50));
        assert_eq!(m.last_purchase_by(d("2026-02-02")), Some(d("2026-02-01")));
        assert_eq!(m.last_purchase_by(d("2026-01-31")), None);
        assert!(m.bought_between(d("2026-02-02"), d("2026-02-04")));
        assert!(!m.bought_between(d("2026-02-04"), d("2026-03-01")));
        assert_eq!(m.frequency_by(d("2026-12-31")), 2);
        assert_eq!(
            m.spend_between(d("2026-02-01"), d("2026-03-01")),
            dec!(13.50)
        );
        assert_eq!(m.spend_between(d("2026-03-01"), d("2026-04-01")), dec!(0));
    }
}
