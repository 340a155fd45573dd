//! The liability report: expiry buckets, their value and the breakage estimate, on a known
//! history (one point worth one cent, lots expiring 12 months after they become spendable).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loyalty_core::{CancelRedemption, Command, Points, Program, RedemptionId};
use loyalty_engine::{EngineError, ExpiryBucketKind, LiabilityStatement};
use loyalty_store::EventStore;
use rust_decimal::Decimal;

use crate::common::*;

fn cancel(m: &loyalty_core::MemberId, redemption: &str, at: DateTime<Utc>) -> Command {
    Command::CancelRedemption(CancelRedemption {
        member_id: m.clone(),
        redemption_id: RedemptionId::parse(redemption).unwrap(),
        occurred_at: at,
    })
}

/// `(points, value, expected breakage points)` of a bucket.
fn bucket(s: &LiabilityStatement, kind: ExpiryBucketKind) -> (i64, Decimal, i64) {
    let b = s.buckets.iter().find(|b| b.bucket == kind).unwrap();
    (
        b.points.value(),
        b.value,
        b.expected_breakage_points.value(),
    )
}

fn cents(n: i64) -> Decimal {
    Decimal::new(n, 2)
}

/// Moves the clock to `day` days after t0.
fn to_day(h: &Harness, day: i64) {
    let now = h.now();
    h.clock.advance(t0() + days(day) - now);
}

/// The known history (t0 = 2026-01-10T10:00Z, 10 welcome points per member):
/// - day 0: alice buys for 140 (150 points with her welcome), bob enrolls;
/// - day 18, 40, 80: erin, frank and gina enroll (their welcome points expire a year later);
/// - day 100: alice redeems 120, and 10 more that she cancels (120 redeemed, net);
/// - day 200: carol enrolls and buys for 120 (130 points);
/// - day 380: the expiry sweep takes alice's last 30 and bob's 10 (40 expired); dave enrolls
///   and alice buys for 200.
async fn known_history() -> Harness {
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "T1", 140, h.now())).await;
    h.enroll("bob").await;
    for (day, name) in [(18, "erin"), (40, "frank"), (80, "gina")] {
        to_day(&h, day);
        h.enroll(name).await;
    }
    to_day(&h, 100);
    h.run(redeem(&alice, "R1", 120, h.now())).await;
    h.run(redeem(&alice, "R2", 10, h.now())).await;
    h.run(cancel(&alice, "R2", h.now())).await;
    to_day(&h, 200);
    let carol = h.enroll("carol").await;
    h.run(purchase(&carol, "T2", 120, h.now())).await;
    to_day(&h, 380);
    let swept = h.engine.run_scheduled(h.now()).await.unwrap();
    assert_eq!(swept.points_expired, Points::new(40), "{swept:?}");
    h.enroll("dave").await;
    h.run(purchase(&alice, "T3", 200, h.now())).await;
    to_day(&h, 390);
    h
}

#[tokio::test]
async fn the_report_sorts_the_points_outstanding_by_expiry_and_values_them() {
    // Given the known history
    let h = known_history().await;
    // When the liability is reported as of day 390 (2027-02-04), breakage over a year
    let s = h
        .engine
        .liability_statement(t0() + days(390), 365)
        .await
        .unwrap();
    // Then every lot holding points is in the bucket of its expiry date
    use ExpiryBucketKind::*;
    // erin's welcome expired on 2027-01-28, after the last sweep
    assert_eq!(bucket(&s, ExpiredNotSwept).0, 10);
    // frank's on 2027-02-19, gina's on 2027-03-31
    assert_eq!(bucket(&s, Within30Days).0, 10);
    assert_eq!(bucket(&s, Within90Days).0, 10);
    // carol's 130 on 2027-07-29
    assert_eq!(bucket(&s, Within180Days).0, 130);
    // dave's 10 and alice's 200 on 2028-01-25
    assert_eq!(bucket(&s, Within365Days).0, 210);
    assert_eq!(bucket(&s, Later).0, 0);
    assert_eq!(bucket(&s, NoExpiry).0, 0);
    // And each is valued at one cent a point
    assert_eq!(bucket(&s, ExpiredNotSwept).1, cents(10));
    assert_eq!(bucket(&s, Within180Days).1, cents(130));
    assert_eq!(bucket(&s, Within365Days).1, cents(210));
    // And the owed buckets add up to the points outstanding; the expired ones are not owed
    assert_eq!(s.totals.points_outstanding, Points::new(360));
    assert_eq!(s.totals.liability, cents(360));
    let owed: i64 = s
        .buckets
        .iter()
        .filter(|b| b.owed)
        .map(|b| b.points.value())
        .sum();
    assert_eq!(owed, 360);
    assert!(!s.buckets[0].owed);
    assert_eq!(
        s.buckets.iter().map(|b| b.bucket).collect::<Vec<_>>(),
        ExpiryBucketKind::ALL
    );
}

#[tokio::test]
async fn breakage_is_the_share_of_settled_points_that_expired_applied_to_the_dated_points() {
    // Given the known history: over the year before day 390, 40 points expired and 120 were
    // redeemed (net of the cancelled redemption)
    let h = known_history().await;
    // When the liability is reported as of day 390
    let s = h
        .engine
        .liability_statement(t0() + days(390), 365)
        .await
        .unwrap();
    // Then the rate is 40 / (40 + 120)
    assert_eq!(s.breakage.points_expired, Points::new(40));
    assert_eq!(s.breakage.points_redeemed, Points::new(120));
    assert_eq!(s.breakage.rate, Decimal::new(25, 2));
    // And each owed dated bucket expects a quarter of its points, half to even:
    // 10 -> 2 (2.5), 10 -> 2, 130 -> 32 (32.5), 210 -> 52 (52.5); none of the expired ones
    use ExpiryBucketKind::*;
    assert_eq!(bucket(&s, Within30Days).2, 2);
    assert_eq!(bucket(&s, Within90Days).2, 2);
    assert_eq!(bucket(&s, Within180Days).2, 32);
    assert_eq!(bucket(&s, Within365Days).2, 52);
    assert_eq!(bucket(&s, ExpiredNotSwept).2, 0);
    assert_eq!(s.breakage.expected_points, Points::new(88));
    assert_eq!(s.breakage.expected_value, cents(88));
    // And the liability net of breakage is 3.60 - 0.88
    assert_eq!(s.liability_net_of_breakage, cents(272));
}

#[tokio::test]
async fn the_lookback_decides_which_expiries_and_redemptions_count() {
    // Given the known history
    let h = known_history().await;
    // When the breakage looks back 30 days only (the sweep of day 380, not the redemptions of
    // day 100)
    let s = h
        .engine
        .liability_statement(t0() + days(390), 30)
        .await
        .unwrap();
    // Then every point settled in it expired: all the dated owed points are expected to
    assert_eq!(s.breakage.points_expired, Points::new(40));
    assert_eq!(s.breakage.points_redeemed, Points::ZERO);
    assert_eq!(s.breakage.rate, Decimal::ONE);
    assert_eq!(s.breakage.expected_points, Points::new(360));
    assert_eq!(s.liability_net_of_breakage, Decimal::ZERO);
    assert_eq!(s.breakage.from, t0() + days(360));
}

#[tokio::test]
async fn a_past_instant_counts_only_what_was_recorded_by_then() {
    // Given the known history
    let h = known_history().await;
    // When the liability is reported as of day 150 (before carol, the sweep and dave)
    let s = h
        .engine
        .liability_statement(t0() + days(150), 365)
        .await
        .unwrap();
    // Then alice's 30, and bob's, erin's, frank's and gina's 10 are outstanding, all expiring
    // between 215 and 294 days later
    assert_eq!(s.totals.points_outstanding, Points::new(70));
    assert_eq!(bucket(&s, ExpiryBucketKind::Within365Days).0, 70);
    // And nothing had expired yet: no breakage is expected
    assert_eq!(s.breakage.points_redeemed, Points::new(120));
    assert_eq!(s.breakage.rate, Decimal::ZERO);
    assert_eq!(s.breakage.expected_points, Points::ZERO);
    assert_eq!(s.liability_net_of_breakage, cents(70));
    // And the totals are those of the as-of liability
    let report = h.engine.liability_as_of(t0() + days(150)).await.unwrap();
    assert_eq!(s.totals, report.totals);
}

#[tokio::test]
async fn without_history_the_rate_is_zero_and_points_that_never_expire_are_undated() {
    // Given a program whose points never expire, and one purchase
    let program =
        PROGRAM_TEXT.replace("policy = \"lot_months\"\nmonths = 12", "policy = \"never\"");
    let h = Harness::with(
        Arc::new(Program::from_toml_str(&program).unwrap()),
        options(),
    )
    .await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 50, h.now())).await;
    // When the liability is reported
    let s = h.engine.liability_statement(h.now(), 365).await.unwrap();
    // Then her 60 points have no expiry date, and no breakage is expected
    assert_eq!(bucket(&s, ExpiryBucketKind::NoExpiry), (60, cents(60), 0));
    assert_eq!(s.breakage.rate, Decimal::ZERO);
    assert_eq!(s.liability_net_of_breakage, cents(60));
}

#[tokio::test]
async fn points_expiring_more_than_a_year_ahead_are_later() {
    // Given a program whose lots last 24 months, and one purchase
    let program = PROGRAM_TEXT.replace("months = 12\n", "months = 24\n");
    let h = Harness::with(
        Arc::new(Program::from_toml_str(&program).unwrap()),
        options(),
    )
    .await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 50, h.now())).await;
    // When the liability is reported a day later
    h.clock.advance(days(1));
    let s = h.engine.liability_statement(h.now(), 365).await.unwrap();
    // Then her 60 points expire later than in a year
    assert_eq!(bucket(&s, ExpiryBucketKind::Later).0, 60);
    let later = s
        .buckets
        .iter()
        .find(|b| b.bucket == ExpiryBucketKind::Later)
        .unwrap();
    assert_eq!(later.lots, 2);
    assert!(later.expires_after.is_some() && later.expires_by.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_starting_from_an_archived_snapshot_equals_one_replaying_the_whole_log() {
    // Given a server that archives a read-model snapshot each day, over six days of purchases
    // and redemptions
    let dir = tempfile::tempdir().unwrap();
    let snapshots = loyalty_engine::EngineOptions {
        snapshot_dir: Some(dir.path().to_path_buf()),
        ..options()
    };
    let h = Harness::with(program(), snapshots).await;
    for day in 0..6 {
        let m = h.enroll(&format!("m{day}")).await;
        h.run(purchase(&m, &format!("T{day}"), 40 + day, h.now()))
            .await;
        h.run(redeem(&m, &format!("R{day}"), 5 + day, h.now()))
            .await;
        h.settle().await;
        h.engine.snapshot_read_models().await;
        h.clock.advance(days(1));
    }
    // When the liability as of the last day, with a two-day lookback, is asked of it and of a
    // server without snapshots
    let replaying = h.second_engine(options()).await;
    let as_of = h.now() - days(1) + chrono::Duration::hours(12);
    let from_snapshot = h.engine.liability_statement(as_of, 2).await.unwrap();
    let from_the_start = replaying.liability_statement(as_of, 2).await.unwrap();
    // Then both say the same: the redemptions of days 4 and 5 (9 + 10) in the lookback
    assert_eq!(from_snapshot.breakage.points_redeemed, Points::new(19));
    assert_eq!(from_snapshot.totals, from_the_start.totals);
    assert_eq!(from_snapshot.buckets, from_the_start.buckets);
    assert_eq!(from_snapshot.breakage, from_the_start.breakage);
    // And the first read only what followed the snapshot archived before the lookback
    assert!(
        from_snapshot.events_replayed < from_the_start.events_replayed,
        "{} events from the snapshot, {} from the start",
        from_snapshot.events_replayed,
        from_the_start.events_replayed
    );
}

/// Asserts that two reports say the same (how much of the log each read aside).
fn assert_same_report(read_models: &LiabilityStatement, replayed: &LiabilityStatement) {
    assert_eq!(read_models.as_of, replayed.as_of);
    assert_eq!(read_models.totals, replayed.totals);
    assert_eq!(read_models.buckets, replayed.buckets);
    assert_eq!(read_models.breakage, replayed.breakage);
    assert_eq!(
        read_models.liability_net_of_breakage,
        replayed.liability_net_of_breakage
    );
    assert_eq!(read_models.unreadable_events, replayed.unreadable_events);
}

#[tokio::test]
async fn the_report_now_from_the_read_models_equals_the_replay_of_the_log() {
    // Given the known history, at day 390
    let h = known_history().await;
    h.settle().await;
    // When the report now is asked of the read models, with lookbacks starting: before the
    // history, on the day of the redemptions (at 09:00, an hour before them), and after them
    let now = h.now();
    for (as_of, lookback) in [
        (None, 365),
        (Some(now - chrono::Duration::hours(1)), 290),
        (None, 290),
        (None, 30),
        (None, 1),
    ] {
        let report = h.engine.liability_report(as_of, lookback).await.unwrap();
        // Then it is the replay's report to the same instant
        let replayed = h
            .engine
            .liability_statement(as_of.unwrap_or(now), lookback)
            .await
            .unwrap();
        assert_same_report(&report, &replayed);
        // And it read at most the log of the day the lookback starts in, not all of it
        assert!(
            report.events_replayed < replayed.events_replayed,
            "lookback {lookback}: {} events read, the replay read {}",
            report.events_replayed,
            replayed.events_replayed
        );
    }
    // And the lookback starting an hour before the redemptions counts them (read from the log
    // of that day), the one starting at them does not
    let before = h
        .engine
        .liability_report(Some(now - chrono::Duration::hours(1)), 290)
        .await
        .unwrap();
    assert_eq!(before.breakage.points_redeemed, Points::new(120));
    assert!(before.events_replayed > 0);
    let at = h.engine.liability_report(None, 290).await.unwrap();
    assert_eq!(at.breakage.points_redeemed, Points::ZERO);
    assert_eq!(at.breakage.points_expired, Points::new(40));
}

#[tokio::test]
async fn a_report_as_of_an_instant_before_the_last_event_is_replayed() {
    // Given the known history
    let h = known_history().await;
    // When the report as of day 150 is asked (the read models hold later events)
    let report = h
        .engine
        .liability_report(Some(t0() + days(150)), 365)
        .await
        .unwrap();
    // Then it is the replay's, which read the log
    let replayed = h
        .engine
        .liability_statement(t0() + days(150), 365)
        .await
        .unwrap();
    assert_eq!(report, replayed);
    assert_eq!(report.totals.points_outstanding, Points::new(70));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_from_its_read_model_snapshot_answers_now_as_the_replay_does() {
    // Given a server with read-model snapshots, the known history, and a snapshot taken
    let dir = tempfile::tempdir().unwrap();
    let snapshots = loyalty_engine::EngineOptions {
        snapshot_dir: Some(dir.path().to_path_buf()),
        ..options()
    };
    let h = known_history().await;
    let first = h.second_engine(snapshots.clone()).await;
    h.settle().await;
    first
        .wait_for(h.store.head_position().await.unwrap())
        .await
        .unwrap();
    first.snapshot_read_models().await;
    first.shutdown().await;
    // When a server restarts from that snapshot and the report now is asked of it
    let restarted = h.second_engine(snapshots).await;
    let report = restarted.liability_report(None, 365).await.unwrap();
    // Then it is the replay's report, from the read models (the settled days were in the
    // snapshot)
    let replayed = h.engine.liability_statement(h.now(), 365).await.unwrap();
    assert_same_report(&report, &replayed);
    assert_eq!(report.breakage.points_expired, Points::new(40));
    assert_eq!(report.breakage.points_redeemed, Points::new(120));
    assert!(report.events_replayed < replayed.events_replayed);
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_lookback_out_of_bounds_is_refused() {
    let h = Harness::new().await;
    for days in [0, loyalty_engine::MAX_BREAKAGE_LOOKBACK_DAYS + 1] {
        let err = h
            .engine
            .liability_statement(h.now(), days)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::LimitExceeded { .. }), "{err:?}");
        let err = h.engine.liability_report(None, days).await.unwrap_err();
        assert!(matches!(err, EngineError::LimitExceeded { .. }), "{err:?}");
    }
}

/// A small program for the tests that change its expiry.
const PROGRAM_TEXT: &str = r#"
[program]
name = "Test"
currency = "EUR"
timezone = "Europe/Paris"

[earning]
points_per_unit = "1"

[pending]
days = 0

[expiry]
policy = "lot_months"
months = 12

[tiers]
metric = "qualifying_spend"
window = { kind = "rolling", months = 12 }
review = { kind = "anniversary" }

[[tiers.levels]]
name = "Bronze"
threshold = "0"
multiplier = "1"

[bonuses]
welcome_points = 10

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"
"#;
