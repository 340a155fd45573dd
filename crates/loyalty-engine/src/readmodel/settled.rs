//! Points settled across the program (expired, or redeemed net of cancellations) by the UTC
//! day they were recorded on: what the liability report's breakage estimate needs about the
//! past, so that the report "now" is answered from the read models instead of a replay of the
//! whole log (`liability.rs`).
//!
//! Days, not events: a day is 40 bytes, and the longest lookback is
//! [`crate::MAX_BREAKAGE_LOOKBACK_DAYS`], so the ledger stays under 150 KiB however long the log
//! (older days are dropped). A lookback that starts inside a day counts that day's events after
//! its start by reading the log from the day's first settlement (`SettledDay::before`): about a
//! day of the log, not all of it.
//!
//! Each settlement is counted once by its event's position (the ledger's own `position`), not
//! by the rows' revisions: a snapshot holds the ledger as of a position at least the rows' one,
//! and after a restore the events between the two are the ledger's already.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use loyalty_core::{Event, Points};
use loyalty_store::Position;

use super::row::{NONE, nanos};

pub(crate) const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
/// Days kept: the longest lookback, the day it starts inside, and a day of slack.
const KEEP_DAYS: i64 = crate::liability::MAX_BREAKAGE_LOOKBACK_DAYS as i64 + 2;

/// The UTC day an instant falls on (days since 1970-01-01).
pub(crate) fn day_of(at: DateTime<Utc>) -> i64 {
    nanos(at).div_euclid(NANOS_PER_DAY)
}

/// The first instant of a UTC day.
pub(crate) fn start_of(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(day.saturating_mul(NANOS_PER_DAY))
}

/// The points an event settles: (expired, redeemed net of cancellations), as the core's fold
/// changes the lifetime totals (`loyalty_core::fold`).
pub(crate) fn settled_by(event: &Event) -> (i64, i64) {
    match event {
        Event::PointsExpired(e) => (e.points.value(), 0),
        Event::PointsRedeemed(e) => (0, e.points.value()),
        Event::RedemptionCancelled(e) => {
            let restored = e
                .restored
                .iter()
                .fold(Points::ZERO, |sum, d| sum.saturating_add(d.points));
            (0, restored.value().saturating_neg())
        }
        _ => (0, 0),
    }
}

/// One day's settlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SettledDay {
    /// The log's position before the day's first settlement: every settlement recorded that
    /// day is after it (the log is in append order).
    pub(crate) before: Position,
    pub(crate) expired: i64,
    pub(crate) redeemed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) days: BTreeMap<i64, SettledDay>,
    /// Every settlement recorded at or after this instant (nanoseconds) is counted; [`NONE`]:
    /// since the start of the log.
    pub(crate) complete_from: i64,
    /// The last event counted or passed.
    pub(crate) position: Position,
    /// The latest recording instant of a member event seen (nanoseconds; [`NONE`]: none).
    pub(crate) latest_recorded: i64,
}

impl Default for Settled {
    fn default() -> Self {
        Settled {
            days: BTreeMap::new(),
            complete_from: NONE,
            position: Position::START,
            latest_recorded: NONE,
        }
    }
}

impl Settled {
    /// A ledger that knows nothing of the events up to `position`, all recorded before
    /// `taken_at` (a snapshot without a ledger, restored): the events recorded from a little
    /// after it on all follow `position` in the log.
    pub(crate) fn starting_at(position: Position, taken_at: DateTime<Utc>) -> Self {
        Settled {
            complete_from: nanos(taken_at + crate::audit::RECORDED_ORDER_MARGIN),
            position,
            latest_recorded: nanos(taken_at),
            ..Settled::default()
        }
    }

    /// Notes a member event, recorded at `at`, read after the log's position `before`.
    pub(crate) fn note(
        &mut self,
        position: Position,
        before: Position,
        at: DateTime<Utc>,
        event: &Event,
    ) {
        if position <= self.position {
            return;
        }
        self.position = position;
        self.latest_recorded = self.latest_recorded.max(nanos(at));
        let (expired, redeemed) = settled_by(event);
        if expired == 0 && redeemed == 0 {
            return;
        }
        let day = day_of(at);
        if self
            .days
            .last_key_value()
            .is_some_and(|(newest, _)| day < *newest - KEEP_DAYS)
        {
            // Older than anything a lookback reaches (a late import of old history).
            return;
        }
        let entry = self.days.entry(day).or_insert(SettledDay {
            before,
            expired: 0,
            redeemed: 0,
        });
        entry.expired = entry.expired.saturating_add(expired);
        entry.redeemed = entry.redeemed.saturating_add(redeemed);
        while let Some((&oldest, _)) = self.days.first_key_value() {
            let newest = self.days.last_key_value().map_or(oldest, |(d, _)| *d);
            if oldest >= newest - KEEP_DAYS {
                break;
            }
            self.days.remove(&oldest);
            let after = oldest.saturating_add(1).saturating_mul(NANOS_PER_DAY);
            self.complete_from = self.complete_from.max(after);
        }
    }

    /// Moves the position on past an event of another stream (or one that does not read).
    pub(crate) fn pass(&mut self, position: Position) {
        self.position = self.position.max(position);
    }

    /// Whether every settlement recorded from the start of `day` on is counted.
    pub(crate) fn covers(&self, day: i64) -> bool {
        self.complete_from <= day.saturating_mul(NANOS_PER_DAY)
    }

    /// The settlements of the days after `day`: (expired, redeemed).
    pub(crate) fn after_day(&self, day: i64) -> (i64, i64) {
        self.days
            .range(day.saturating_add(1)..)
            .fold((0i64, 0i64), |(e, r), (_, d)| {
                (e.saturating_add(d.expired), r.saturating_add(d.redeemed))
            })
    }

    /// The latest recording instant of a member event seen, if any.
    pub(crate) fn latest_recorded(&self) -> Option<DateTime<Utc>> {
        (self.latest_recorded != NONE).then(|| DateTime::from_timestamp_nanos(self.latest_recorded))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use loyalty_core::{LotId, PointsExpired};

    use super::*;

    fn expired(points: i64, at: DateTime<Utc>) -> Event {
        Event::PointsExpired(PointsExpired {
            lot_id: LotId::parse("lot-1").unwrap(),
            points: Points::new(points),
            expired_at: at,
            occurred_at: at,
        })
    }

    fn day(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap()
    }

    #[test]
    fn a_settlement_is_counted_once_on_its_day_with_the_position_before_the_first() {
        let mut ledger = Settled::default();
        let p = |n| Position::new(n, n);
        ledger.note(p(2), p(1), day(1, 10), &expired(5, day(1, 10)));
        ledger.note(p(3), p(2), day(1, 11), &expired(7, day(1, 11)));
        // The same event again (after a restore): not counted twice
        ledger.note(p(3), p(2), day(1, 11), &expired(7, day(1, 11)));
        ledger.note(p(5), p(4), day(2, 9), &expired(1, day(2, 9)));
        let first = ledger.days[&day_of(day(1, 0))];
        assert_eq!((first.before, first.expired, first.redeemed), (p(1), 12, 0));
        assert_eq!(ledger.after_day(day_of(day(1, 0))), (1, 0));
        assert_eq!(ledger.after_day(day_of(day(1, 0)) - 1), (13, 0));
        assert!(ledger.covers(0));
        assert_eq!(ledger.latest_recorded(), Some(day(2, 9)));
    }

    #[test]
    fn days_beyond_the_longest_lookback_are_dropped_and_the_ledger_says_so() {
        let mut ledger = Settled::default();
        let p = |n| Position::new(n, n);
        let first = day(1, 10);
        ledger.note(p(1), p(0), first, &expired(5, first));
        let later = first + chrono::TimeDelta::days(KEEP_DAYS + 1);
        ledger.note(p(2), p(1), later, &expired(1, later));
        assert_eq!(ledger.days.len(), 1);
        assert!(!ledger.covers(day_of(first)));
        assert!(ledger.covers(day_of(first) + 1));
    }
}
