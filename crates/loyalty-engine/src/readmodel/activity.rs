//! What the retention analytics read per member: the days they bought on and what they spent
//! each day, net of refunds. Kept in the member's row, so it is projected, snapshotted and
//! restored with the rest of the read model, and the analytics never scan the log.
//!
//! Days are local dates in the program's timezone (purchases on one day count once in the
//! models, and a day is the retailer's, not UTC's). A row grows by one entry per day with a
//! purchase or a refund: 24 bytes, next to the hundreds a row already holds.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use loyalty_analytics::MemberSummary;
use loyalty_core::Event;
use rust_decimal::Decimal;

use super::row::{MemberRow, instant, push_compact};

/// One day of a member's activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayRow {
    /// Days from the common era's first day (`NaiveDate::num_days_from_ce`).
    pub(crate) day: i32,
    /// Purchases recorded for the day (0: a day with refunds only).
    pub(crate) purchases: u32,
    /// Spend net of refunds taken that day.
    pub(crate) spend: Decimal,
}

/// `at`'s local date in `tz`, as a day number.
pub(crate) fn local_day(at: DateTime<Utc>, tz: Tz) -> i32 {
    loyalty_core::calendar::local_date(at, tz).num_days_from_ce()
}

fn date(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(day)
}

impl MemberRow {
    /// Notes a purchase's or a refund's spend (other events change nothing here).
    pub(crate) fn note_spend(&mut self, event: &Event, tz: Tz) {
        let (at, amount, purchases) = match event {
            Event::PurchaseRecorded(e) => (
                e.occurred_at,
                e.lines.iter().map(|l| l.amount).sum::<Decimal>(),
                1,
            ),
            Event::RefundRecorded(e) => (e.occurred_at, -e.amount, 0),
            Event::WinBackAwarded(e) => {
                self.last_win_back_at = super::nanos(e.occurred_at);
                return;
            }
            _ => return,
        };
        let day = local_day(at, tz);
        match self.activity.binary_search_by_key(&day, |d| d.day) {
            Ok(i) => {
                let d = &mut self.activity[i];
                d.purchases = d.purchases.saturating_add(purchases);
                d.spend += amount;
            }
            // Purchases arrive mostly in order: the insertion is nearly always at the end.
            Err(i) if i == self.activity.len() => push_compact(
                &mut self.activity,
                DayRow {
                    day,
                    purchases,
                    spend: amount,
                },
            ),
            Err(i) => self.activity.insert(
                i,
                DayRow {
                    day,
                    purchases,
                    spend: amount,
                },
            ),
        }
    }

    /// The member as the analytics see them; `None` before they enrolled.
    pub(crate) fn summary(&self, member: &str, tz: Tz) -> Option<MemberSummary> {
        let enrolled = instant(self.enrolled_at)?;
        let mut summary = MemberSummary::new(member, date(local_day(enrolled, tz))?);
        summary.purchase_days = self
            .activity
            .iter()
            .filter(|d| d.purchases > 0)
            .filter_map(|d| date(d.day))
            .collect();
        summary.daily_spend = self
            .activity
            .iter()
            .filter_map(|d| Some((date(d.day)?, d.spend)))
            .collect();
        summary.net_spend = self.activity.iter().map(|d| d.spend).sum();
        Some(summary)
    }
}
