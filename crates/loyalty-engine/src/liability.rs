//! The liability report (IFRS 15 style) as of an instant: the points outstanding by when they
//! expire, what they are worth at the program's valuation, and how much of them the program's
//! own history says will expire rather than be redeemed (breakage).
//!
//! # Buckets
//!
//! Every lot holding points as of the instant falls in one bucket, by its expiry date (a lot
//! that expires with the member's inactivity is dated by her current deadline):
//!
//! - `expired_not_swept`: past its expiry, the expiry not recorded yet (the next sweep records
//!   it). Shown for reconciliation; not owed, so not part of the liability;
//! - `within_30_days`, `within_90_days`, `within_180_days`, `within_365_days`: expiring after
//!   the instant and by the instant plus 30, 90, 180 or 365 days (calendar days in the
//!   program's timezone), each bucket after the previous one's bound;
//! - `later`: after 365 days;
//! - `no_expiry`: never expires (or by an inactivity deadline not set yet).
//!
//! The owed buckets add up to the totals' `points_outstanding` (available plus pending), and
//! each one's value is its points times the program's point value.
//!
//! # Breakage
//!
//! `rate = expired / (expired + redeemed)`, where `expired` are the points whose expiry was
//! recorded and `redeemed` the points redeemed (net of cancellations) by events recorded in the
//! lookback: after `as_of - lookback_days` and at or before `as_of`. It is the share of the
//! points whose fate was settled in that period that expired rather than were redeemed; 0 when
//! nothing was settled (no history). Rounded to 4 decimals (half to even). Points clawed back
//! by refunds, or forfeited at a closure, are neither: a refund takes back the revenue, and a
//! closure is the member's decision, not an expiry. The expected breakage of a dated owed
//! bucket is its points times the rate, rounded to a whole point (half to even); undated
//! points (`no_expiry`) cannot expire, so none is expected of them. The liability net of
//! breakage is the liability minus the expected breakage's value.
//!
//! # Cost
//!
//! As of an instant in the past ([`Engine::liability_statement`]): one pass over the log (from
//! the newest archived read-model snapshot taken before the lookback, else from the start),
//! folding every member's row as an as-of replay does: memory is one row per member, time grows
//! with the log.
//!
//! Now, or as of an instant at or after everything the read models hold
//! ([`Engine::liability_report`]): the live read models. The totals and buckets come from their
//! rows, the breakage from the points they keep settled by day (`readmodel::settled`): whole
//! days after the lookback's start from there, and the part of the day it starts in by reading
//! the log from that day's first settlement (about a day of the log). The answer is the one the
//! replay gives; the replay answers instead when the read models cannot (not caught up within
//! the read wait, restored from a snapshot that kept no settled days for the lookback, or
//! holding an event recorded after the instant).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use loyalty_core::{MemberStatus, Points, calendar};
use loyalty_store::{Position, ReadAhead};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::audit::{RECORDED_ORDER_MARGIN, recorded_at};
use crate::codec;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::readmodel::settled::{self, SettledDay};
use crate::readmodel::{MemberRow, TotalsAcc};
use crate::views::ProgramTotals;

/// The lookback of the breakage estimate when none is given.
pub const DEFAULT_BREAKAGE_LOOKBACK_DAYS: u32 = 365;
/// The longest lookback accepted (ten years).
pub const MAX_BREAKAGE_LOOKBACK_DAYS: u32 = 3_650;
/// The bounds of the dated buckets, in days after the instant.
const BUCKET_DAYS: [u32; 4] = [30, 90, 180, 365];
/// Decimals of the breakage rate.
const RATE_DECIMALS: u32 = 4;

/// Which expiry bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryBucketKind {
    ExpiredNotSwept,
    #[serde(rename = "within_30_days")]
    Within30Days,
    #[serde(rename = "within_90_days")]
    Within90Days,
    #[serde(rename = "within_180_days")]
    Within180Days,
    #[serde(rename = "within_365_days")]
    Within365Days,
    Later,
    NoExpiry,
}

impl ExpiryBucketKind {
    /// Every bucket, in the report's order.
    pub const ALL: [ExpiryBucketKind; 7] = [
        Self::ExpiredNotSwept,
        Self::Within30Days,
        Self::Within90Days,
        Self::Within180Days,
        Self::Within365Days,
        Self::Later,
        Self::NoExpiry,
    ];

    /// The name in JSON and CSV (`within_30_days`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExpiredNotSwept => "expired_not_swept",
            Self::Within30Days => "within_30_days",
            Self::Within90Days => "within_90_days",
            Self::Within180Days => "within_180_days",
            Self::Within365Days => "within_365_days",
            Self::Later => "later",
            Self::NoExpiry => "no_expiry",
        }
    }

    /// Whether the bucket's points are owed (part of the liability).
    pub fn owed(self) -> bool {
        self != Self::ExpiredNotSwept
    }

    /// Whether the bucket's points can still expire (breakage is expected of them).
    fn dated(self) -> bool {
        !matches!(self, Self::ExpiredNotSwept | Self::NoExpiry)
    }
}

/// The points of one expiry bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryBucket {
    pub bucket: ExpiryBucketKind,
    /// Lots expiring after this instant... (`None`: no lower bound).
    pub expires_after: Option<DateTime<Utc>>,
    /// ...and at or before this one (`None`: no upper bound).
    pub expires_by: Option<DateTime<Utc>>,
    /// Whether these points are owed (every bucket but `expired_not_swept`).
    pub owed: bool,
    /// Lots holding points.
    pub lots: u64,
    pub points: Points,
    /// `points x point_value`.
    pub value: Decimal,
    /// `points x rate`, rounded, for the dated owed buckets; 0 for the others.
    pub expected_breakage_points: Points,
    pub expected_breakage_value: Decimal,
}

/// The breakage estimate from the program's own history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakageEstimate {
    pub lookback_days: u32,
    /// The lookback: events recorded after `from` and at or before `to` (the report's instant).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Points whose expiry was recorded in the lookback.
    pub points_expired: Points,
    /// Points redeemed in the lookback, net of cancellations.
    pub points_redeemed: Points,
    /// `points_expired / (points_expired + points_redeemed)`, 4 decimals; 0 without history.
    pub rate: Decimal,
    /// The expected breakage of the points outstanding: the sum over the buckets.
    pub expected_points: Points,
    pub expected_value: Decimal,
}

/// The liability as of an instant, with its expiry buckets and breakage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiabilityStatement {
    pub as_of: DateTime<Utc>,
    /// Events of the log read for the report.
    pub events_replayed: u64,
    /// Member events that could not be read (skipped, as an as-of replay skips them).
    pub unreadable_events: u64,
    pub totals: ProgramTotals,
    /// Every bucket, in order, empty ones included.
    pub buckets: Vec<ExpiryBucket>,
    pub breakage: BreakageEstimate,
    /// `totals.liability - breakage.expected_value`.
    pub liability_net_of_breakage: Decimal,
}

/// What the pass over the log gathers.
struct Folded {
    rows: HashMap<Box<str>, MemberRow>,
    events: u64,
    unreadable: u64,
    position: Position,
    expired: Points,
    redeemed: Points,
}

/// The totals and the expiry buckets, as rows are added.
struct Buckets {
    as_of: DateTime<Utc>,
    /// The instants of [`BUCKET_DAYS`] after `as_of`.
    bounds: Vec<Option<DateTime<Utc>>>,
    totals: TotalsAcc,
    points: [Points; 7],
    lots: [u64; 7],
}

impl Buckets {
    fn new(as_of: DateTime<Utc>, tz: chrono_tz::Tz) -> Self {
        Buckets {
            as_of,
            bounds: BUCKET_DAYS
                .iter()
                .map(|days| calendar::add_days(as_of, *days, tz))
                .collect(),
            totals: TotalsAcc::default(),
            points: [Points::ZERO; 7],
            lots: [0; 7],
        }
    }

    fn add(&mut self, row: &MemberRow) {
        if row.status() == MemberStatus::NotEnrolled {
            return;
        }
        self.totals.add(row, self.as_of);
        for lot in row.lot_facts() {
            let i = bucket_of(lot.expires_at, self.as_of, &self.bounds);
            self.points[i] = self.points[i].saturating_add(lot.remaining);
            self.lots[i] += 1;
        }
    }
}

/// What the report is made of besides the rows.
struct Sources {
    lookback_days: u32,
    from: DateTime<Utc>,
    /// The last member event the rows hold.
    position: Position,
    events: u64,
    unreadable: u64,
    expired: Points,
    redeemed: Points,
}

fn check_lookback(lookback_days: u32) -> Result<(), EngineError> {
    if lookback_days == 0 || lookback_days > MAX_BREAKAGE_LOOKBACK_DAYS {
        return Err(EngineError::LimitExceeded {
            what: "breakage lookback (days)",
            requested: lookback_days as usize,
            limit: MAX_BREAKAGE_LOOKBACK_DAYS as usize,
        });
    }
    Ok(())
}

/// The lookback's start: `lookback_days` before `as_of`.
fn lookback_start(as_of: DateTime<Utc>, lookback_days: u32) -> DateTime<Utc> {
    as_of
        .checked_sub_signed(TimeDelta::days(i64::from(lookback_days)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Engine {
    /// The liability report as of `as_of`, its breakage estimated over the `lookback_days`
    /// before it (see the module's documentation for the buckets and the formula), replayed
    /// from the log.
    pub async fn liability_statement(
        &self,
        as_of: DateTime<Utc>,
        lookback_days: u32,
    ) -> Result<LiabilityStatement, EngineError> {
        check_lookback(lookback_days)?;
        let from = lookback_start(as_of, lookback_days);
        let folded = self.fold_for_liability(as_of, from).await?;
        let mut buckets = Buckets::new(as_of, self.inner.program.timezone());
        for row in folded.rows.values() {
            buckets.add(row);
        }
        Ok(self.statement(
            buckets,
            Sources {
                lookback_days,
                from,
                position: folded.position,
                events: folded.events,
                unreadable: folded.unreadable,
                expired: folded.expired,
                redeemed: folded.redeemed,
            },
        ))
    }

    /// The liability report now (`as_of` `None`: the engine's clock) or as of `as_of`: from the
    /// live read models when they can answer it, the same as [`Engine::liability_statement`]
    /// would; else replayed by it (see the module's documentation, Cost).
    pub async fn liability_report(
        &self,
        as_of: Option<DateTime<Utc>>,
        lookback_days: u32,
    ) -> Result<LiabilityStatement, EngineError> {
        check_lookback(lookback_days)?;
        let as_of = as_of.unwrap_or_else(|| self.inner.clock.now());
        match self
            .liability_from_read_models(as_of, lookback_days)
            .await?
        {
            Some(report) => Ok(report),
            None => self.liability_statement(as_of, lookback_days).await,
        }
    }

    /// The report from the read models, or `None` when they cannot give the replay's answer.
    async fn liability_from_read_models(
        &self,
        as_of: DateTime<Utc>,
        lookback_days: u32,
    ) -> Result<Option<LiabilityStatement>, EngineError> {
        let head = self.inner.store.head_position().await?;
        match self.wait_for(head).await {
            Ok(()) => {}
            Err(EngineError::NotCaughtUp { reached, .. }) => {
                tracing::info!(%head, %reached,
                    "liability: the read models are behind the log, replaying it instead");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let model = &self.inner.model;
        let settled = model.settled();
        // A replay to `as_of` leaves out what was recorded after it: rows holding such an event
        // are not what it folds.
        if settled
            .latest_recorded()
            .is_some_and(|latest| latest > as_of)
        {
            return Ok(None);
        }
        let from = lookback_start(as_of, lookback_days);
        let from_day = settled::day_of(from);
        if !settled.covers(from_day) {
            tracing::info!(%from,
                "liability: the read models did not see every settlement since the lookback's \
                 start (restored from an older snapshot), replaying the log instead");
            return Ok(None);
        }
        let mut buckets = Buckets::new(as_of, self.inner.program.timezone());
        let mut position = Position::START;
        model.for_each(|_, row| {
            position = position.max(row.last_position);
            buckets.add(row);
        });
        // The projection went on while the rows were read: if it applied an event recorded
        // after `as_of`, the rows are of a later moment than the ledger copied above.
        if model
            .settled()
            .latest_recorded()
            .is_some_and(|latest| latest > as_of)
        {
            return Ok(None);
        }
        // Whole days after the one the lookback starts in, then that day's part after `from`.
        let (mut expired, mut redeemed) = settled.after_day(from_day);
        let mut events = 0;
        if let Some(day) = settled.days.get(&from_day) {
            let edge = self.settled_within(*day, from, from_day, head).await?;
            expired = expired.saturating_add(edge.0);
            redeemed = redeemed.saturating_add(edge.1);
            events = edge.2;
        }
        Ok(Some(self.statement(
            buckets,
            Sources {
                lookback_days,
                from,
                position,
                events,
                unreadable: model.apply_state().unreadable,
                expired: Points::new(expired),
                redeemed: Points::new(redeemed),
            },
        )))
    }

    /// The points settled on `day` after `from` (which falls on it): (expired, redeemed,
    /// events read). Reads the log from the day's first settlement until an event recorded
    /// [`RECORDED_ORDER_MARGIN`] after the day's end (or `head`).
    async fn settled_within(
        &self,
        day: SettledDay,
        from: DateTime<Utc>,
        on: i64,
        head: Position,
    ) -> Result<(i64, i64, u64), EngineError> {
        let day_end = settled::start_of(on.saturating_add(1));
        let stop_after = day_end + RECORDED_ORDER_MARGIN;
        let (mut expired, mut redeemed, mut events) = (0i64, 0i64, 0u64);
        let mut pages = ReadAhead::new(
            Arc::clone(&self.inner.store),
            day.before,
            self.inner.page_size,
        );
        'pages: while let Some(page) = pages.next_page().await? {
            for recorded in &page {
                if recorded.position > head {
                    break 'pages;
                }
                events += 1;
                if !recorded.stream.starts_with(codec::MEMBER_PREFIX) {
                    continue;
                }
                let event = match codec::decode(recorded) {
                    Ok(event) => event,
                    Err(e @ EngineError::NewerSchema(_)) => return Err(e),
                    // The read models skipped it too.
                    Err(_) => continue,
                };
                let at = recorded_at(recorded, &event);
                if at > stop_after {
                    break 'pages;
                }
                if at <= from || at >= day_end {
                    continue;
                }
                let (e, r) = settled::settled_by(&event);
                expired = expired.saturating_add(e);
                redeemed = redeemed.saturating_add(r);
            }
        }
        Ok((expired, redeemed, events))
    }

    /// The report from its rows' buckets and the settled points of the lookback.
    fn statement(&self, buckets: Buckets, sources: Sources) -> LiabilityStatement {
        let program = &self.inner.program;
        let Buckets {
            as_of,
            bounds,
            totals,
            points,
            lots,
        } = buckets;
        let totals = totals.finish(program, as_of, sources.position);
        let redeemed = sources.redeemed.max(Points::ZERO);
        let expired = sources.expired.max(Points::ZERO);
        let rate = breakage_rate(expired, redeemed);
        let value = |p: Points| program.points_value(p).unwrap_or(Decimal::MAX);
        let mut list = Vec::with_capacity(ExpiryBucketKind::ALL.len());
        let mut expected = Points::ZERO;
        for (i, kind) in ExpiryBucketKind::ALL.into_iter().enumerate() {
            let breakage = if kind.dated() {
                expected_breakage(points[i], rate)
            } else {
                Points::ZERO
            };
            expected = expected.saturating_add(breakage);
            let (expires_after, expires_by) = match kind {
                ExpiryBucketKind::ExpiredNotSwept => (None, Some(as_of)),
                ExpiryBucketKind::Within30Days => (Some(as_of), bounds[0]),
                ExpiryBucketKind::Within90Days => (bounds[0], bounds[1]),
                ExpiryBucketKind::Within180Days => (bounds[1], bounds[2]),
                ExpiryBucketKind::Within365Days => (bounds[2], bounds[3]),
                ExpiryBucketKind::Later => (bounds[3], None),
                ExpiryBucketKind::NoExpiry => (None, None),
            };
            list.push(ExpiryBucket {
                bucket: kind,
                expires_after,
                expires_by,
                owed: kind.owed(),
                lots: lots[i],
                points: points[i],
                value: value(points[i]),
                expected_breakage_points: breakage,
                expected_breakage_value: value(breakage),
            });
        }
        let expected_value = value(expected);
        let liability_net_of_breakage = totals.liability - expected_value;
        LiabilityStatement {
            as_of,
            events_replayed: sources.events,
            unreadable_events: sources.unreadable,
            breakage: BreakageEstimate {
                lookback_days: sources.lookback_days,
                from: sources.from,
                to: as_of,
                points_expired: expired,
                points_redeemed: redeemed,
                rate,
                expected_points: expected,
                expected_value,
            },
            totals,
            buckets: list,
            liability_net_of_breakage,
        }
    }

    /// Folds the member events recorded by `as_of` into fresh rows (or those of an archived
    /// snapshot taken before `from`), and adds up the points expired and redeemed by the events
    /// recorded after `from`. Like `rebuild_from` in `audit.rs`, with the lookback's sums: the
    /// log is in append order, and an event is appended within [`RECORDED_ORDER_MARGIN`] of the
    /// time it is recorded at, so the pass stops at the first member event recorded that long
    /// after `as_of`.
    async fn fold_for_liability(
        &self,
        as_of: DateTime<Utc>,
        from: DateTime<Utc>,
    ) -> Result<Folded, EngineError> {
        let head = self.inner.store.head_position().await?;
        let (rows, start) = match self.archived_before(from).await {
            Some(loaded) => (loaded.rows.into_iter().collect(), loaded.position),
            None => (HashMap::new(), Position::START),
        };
        let mut folded = Folded {
            position: rows
                .values()
                .map(|r: &MemberRow| r.last_position)
                .max()
                .unwrap_or(Position::START),
            rows,
            events: 0,
            unreadable: 0,
            expired: Points::ZERO,
            redeemed: Points::ZERO,
        };
        let stop_after = as_of + RECORDED_ORDER_MARGIN;
        let tz = self.inner.program.timezone();
        let mut pages = ReadAhead::new(Arc::clone(&self.inner.store), start, self.inner.page_size);
        'pages: while let Some(page) = pages.next_page().await? {
            for recorded in &page {
                if recorded.position > head {
                    break 'pages;
                }
                folded.events += 1;
                let Some(member) = recorded.stream.strip_prefix(codec::MEMBER_PREFIX) else {
                    continue;
                };
                let event = match codec::decode(recorded) {
                    Ok(event) => event,
                    // A report that left out a newer release's event would be wrong.
                    Err(e @ EngineError::NewerSchema(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(stream = %recorded.stream, revision = recorded.revision,
                            error = %e, "the liability report skips an unreadable event");
                        folded.unreadable += 1;
                        continue;
                    }
                };
                let at = recorded_at(recorded, &event);
                if at > stop_after {
                    break 'pages;
                }
                if at > as_of {
                    continue;
                }
                let row = folded.rows.entry(member.into()).or_default();
                if row.holds(recorded.revision) {
                    continue;
                }
                let before = (row.totals.expired, row.totals.redeemed);
                row.apply(&event, tz);
                row.revision = recorded.revision;
                row.last_position = recorded.position;
                folded.position = recorded.position;
                if at > from {
                    folded.expired = folded
                        .expired
                        .saturating_add(row.totals.expired.saturating_sub(before.0));
                    folded.redeemed = folded
                        .redeemed
                        .saturating_add(row.totals.redeemed.saturating_sub(before.1));
                }
            }
        }
        Ok(folded)
    }
}

/// The bucket of a lot expiring at `expires_at` (`None`: never), as of `as_of`; `bounds` are
/// the instants of [`BUCKET_DAYS`] after it (`None` past the calendar's end).
fn bucket_of(
    expires_at: Option<DateTime<Utc>>,
    as_of: DateTime<Utc>,
    bounds: &[Option<DateTime<Utc>>],
) -> usize {
    let Some(at) = expires_at else {
        return 6;
    };
    if at <= as_of {
        return 0;
    }
    bounds
        .iter()
        .position(|bound| bound.is_none_or(|b| at <= b))
        .map_or(5, |i| i + 1)
}

/// `expired / (expired + redeemed)`, 4 decimals; 0 when both are 0.
fn breakage_rate(expired: Points, redeemed: Points) -> Decimal {
    let expired = Decimal::from(expired.value());
    let settled = expired + Decimal::from(redeemed.value());
    if settled.is_zero() {
        return Decimal::ZERO;
    }
    (expired / settled)
        .round_dp_with_strategy(RATE_DECIMALS, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

/// `points x rate`, to a whole point (half to even).
fn expected_breakage(points: Points, rate: Decimal) -> Points {
    let expected = (Decimal::from(points.value()) * rate)
        .round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven);
    Points::new(i64::try_from(expected).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_buckets_name_in_json_is_its_name_in_csv() {
        for kind in ExpiryBucketKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().to_owned())
            );
        }
    }

    #[test]
    fn the_rate_is_the_share_of_settled_points_that_expired_and_zero_without_history() {
        assert_eq!(
            breakage_rate(Points::new(100), Points::new(300)),
            Decimal::new(25, 2)
        );
        assert_eq!(breakage_rate(Points::ZERO, Points::ZERO), Decimal::ZERO);
        assert_eq!(breakage_rate(Points::new(5), Points::ZERO), Decimal::ONE);
        // 1/3 to 4 decimals
        assert_eq!(
            breakage_rate(Points::new(1), Points::new(2)),
            Decimal::new(3333, 4)
        );
    }

    #[test]
    fn expected_breakage_rounds_half_to_even() {
        assert_eq!(
            expected_breakage(Points::new(10), Decimal::new(25, 2)),
            Points::new(2)
        );
        assert_eq!(
            expected_breakage(Points::new(14), Decimal::new(25, 2)),
            Points::new(4)
        );
        assert_eq!(
            expected_breakage(Points::new(1000), Decimal::ZERO),
            Points::ZERO
        );
    }

    #[test]
    fn a_lot_falls_in_the_first_bucket_whose_bound_it_does_not_pass() {
        let now = at(1);
        let bounds: Vec<_> = [30, 90, 180, 365]
            .iter()
            .map(|d| Some(now + TimeDelta::days(*d)))
            .collect();
        assert_eq!(bucket_of(None, now, &bounds), 6);
        assert_eq!(bucket_of(Some(now), now, &bounds), 0);
        assert_eq!(bucket_of(Some(now + TimeDelta::days(30)), now, &bounds), 1);
        assert_eq!(
            bucket_of(
                Some(now + TimeDelta::days(30) + TimeDelta::seconds(1)),
                now,
                &bounds
            ),
            2
        );
        assert_eq!(bucket_of(Some(now + TimeDelta::days(365)), now, &bounds), 4);
        assert_eq!(bucket_of(Some(now + TimeDelta::days(366)), now, &bounds), 5);
    }
}
