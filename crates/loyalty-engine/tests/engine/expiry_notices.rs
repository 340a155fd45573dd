//! The scheduler's expiry notices: `ExpiryNotified` recorded in the member's stream the
//! program's `points_expiring_days` before her dated lots expire, once per lot, whatever runs
//! again, on how many servers, after a restart or from a snapshot.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loyalty_core::{
    Command, Event, LotExpiry, MemberId, NotifiedLot, NotifyExpiry, Outcome, Points, Program,
    schema,
};
use loyalty_engine::EngineOptions;

use crate::common::*;

/// The test program with notices 14 days ahead. Its lots expire 12 months after they become
/// spendable (at once: no pending period), so lots earned at `t0()` expire on 10 January 2027
/// at 10:00 UTC, and their notice is due from 27 December 2026, 10:00 UTC.
fn noticing() -> Arc<Program> {
    let mut program = (*program()).clone();
    program.notices.points_expiring_days = Some(14);
    program.validate().expect("valid with notices");
    Arc::new(program)
}

/// Days from `t0()` to the notice of lots earned at `t0()`.
const NOTICE_DAY: i64 = 351;

fn expiry_of_t0_lots() -> DateTime<Utc> {
    t0() + chrono::Months::new(12)
}

async fn notices(h: &Harness, m: &MemberId) -> Vec<loyalty_core::ExpiryNotified> {
    read_member(h.store.as_ref(), m)
        .await
        .iter()
        .filter(|e| e.event_type == "ExpiryNotified")
        .map(
            |e| match schema::decode(&e.event_type, e.schema_version, &e.data).unwrap() {
                Event::ExpiryNotified(n) => n,
                other => panic!("not a notice: {other:?}"),
            },
        )
        .collect()
}

fn notify(m: &MemberId, at: DateTime<Utc>) -> Command {
    Command::NotifyExpiry(NotifyExpiry {
        member_id: m.clone(),
        occurred_at: at,
    })
}

#[tokio::test]
async fn given_lots_expiring_in_fourteen_days_when_the_scheduler_runs_then_one_notice_is_recorded_once()
 {
    // Given alice with her welcome lot and a purchase, both expiring on 10 January 2027, and
    // bob who enrolled a month later
    let h = Harness::with(noticing(), options()).await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "A1", 40, h.now())).await;
    h.clock.advance(days(31));
    let bob = h.enroll("bob").await;
    // When the scheduler runs the day before alice's notice is due
    h.clock.advance(days(NOTICE_DAY - 31 - 1));
    h.settle().await;
    let early = h.engine.run_scheduled(h.now()).await.unwrap();
    // Then nothing is due yet
    assert_eq!((early.members_due, early.expiry_notices), (0, 0));
    assert!(notices(&h, &alice).await.is_empty());
    // When it runs fourteen days before her lots expire
    h.clock.advance(days(1));
    let balance_before = h.engine.balance(&alice).unwrap();
    let now = h.now();
    let report = h.engine.run_scheduled(now).await.unwrap();
    // Then one notice names both lots, with their points and expiry, dated by the server
    assert_eq!((report.members_due, report.expiry_notices), (1, 1));
    assert_eq!(report.lots_expired, 0);
    let recorded = notices(&h, &alice).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].occurred_at, now);
    assert_eq!(
        recorded[0].lots,
        vec![
            NotifiedLot {
                lot_id: loyalty_core::LotId::parse("welcome:alice").unwrap(),
                points: Points::new(10),
                expires_at: expiry_of_t0_lots(),
            },
            NotifiedLot {
                lot_id: loyalty_core::LotId::parse("purchase:store-1:A1").unwrap(),
                points: Points::new(40),
                expires_at: expiry_of_t0_lots(),
            },
        ]
    );
    assert!(notices(&h, &bob).await.is_empty());
    // And no point moved (the stream has one more event)
    h.settle().await;
    let balance_after = h.engine.balance(&alice).unwrap();
    assert_eq!(
        balance_after.stream_revision,
        balance_before.stream_revision + 1
    );
    assert_eq!(
        loyalty_engine::BalanceView {
            stream_revision: balance_before.stream_revision,
            ..balance_after
        },
        balance_before
    );
    // And her statement shows it as a line of no points
    let history = h.engine.history(&alice, None, 10).await.unwrap();
    let line = &history.lines[0];
    assert_eq!(
        (line.event_type.as_str(), line.points),
        ("ExpiryNotified", Points::ZERO)
    );
    assert!(line.description.contains("50 points"), "{line:?}");
    // When it runs again, the same day and the next
    let again = h.engine.run_scheduled(h.now()).await.unwrap();
    h.clock.advance(days(1));
    let next_day = h.engine.run_scheduled(h.now()).await.unwrap();
    // Then nobody is due and nothing more is recorded
    assert_eq!((again.members_due, again.expiry_notices), (0, 0));
    assert_eq!((next_day.members_due, next_day.expiry_notices), (0, 0));
    assert_eq!(notices(&h, &alice).await.len(), 1);
    // When bob's lots come within fourteen days of their expiry, after alice's expired
    h.clock.advance(days(30));
    h.settle().await;
    let later = h.engine.run_scheduled(h.now()).await.unwrap();
    // Then alice's lots expire (no second notice) and bob gets his
    assert_eq!(
        (later.members_due, later.lots_expired, later.expiry_notices),
        (2, 2, 1)
    );
    assert_eq!(notices(&h, &alice).await.len(), 1);
    assert_eq!(notices(&h, &bob).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_servers_when_both_run_the_notices_at_once_then_each_lot_is_announced_once() {
    let h = Harness::with(noticing(), options()).await;
    let alice = h.enroll("alice").await;
    let bob = h.enroll("bob").await;
    h.run(purchase(&alice, "A1", 40, h.now())).await;
    let other = h.second_engine(options()).await;
    h.clock.advance(days(NOTICE_DAY));
    let now = h.now();
    let (a, b) = tokio::join!(h.engine.run_scheduled(now), other.run_scheduled(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(notices(&h, &alice).await.len(), 1);
    assert_eq!(notices(&h, &bob).await.len(), 1);
    assert_eq!(
        a.expiry_notices + b.expiry_notices,
        2,
        "reports {a:?} {b:?}"
    );
    assert_eq!(a.failures_total + b.failures_total, 0);
    other.shutdown().await;
}

#[tokio::test]
async fn given_a_restart_from_the_read_models_snapshot_when_the_scheduler_runs_then_no_one_is_due_again()
 {
    // Given alice notified, and the server stopped (it snapshots its read models as it stops)
    let dir = tempfile::tempdir().unwrap();
    let with_snapshots = EngineOptions {
        snapshot_dir: Some(dir.path().to_path_buf()),
        ..options()
    };
    let h = Harness::with(noticing(), with_snapshots.clone()).await;
    let alice = h.enroll("alice").await;
    h.clock.advance(days(NOTICE_DAY));
    assert_eq!(
        h.engine
            .run_scheduled(h.now())
            .await
            .unwrap()
            .expiry_notices,
        1
    );
    h.settle().await;
    h.engine.shutdown().await;
    // When it starts again from the snapshot and runs the scheduler
    let restarted = h.second_engine(with_snapshots).await;
    assert!(restarted.restored_snapshot().is_some());
    h.clock.advance(days(1));
    let report = restarted.run_scheduled(h.now()).await.unwrap();
    // Then the rows remember the lot was announced
    assert_eq!((report.members_due, report.expiry_notices), (0, 0));
    assert_eq!(notices(&h, &alice).await.len(), 1);
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_member_loaded_from_her_snapshot_when_notified_again_then_nothing_is_recorded() {
    // Given alice notified, her hot state snapshotted after every event (the last one holds
    // the notice, or the events after it do: either way what a load starts from)
    let snapshotting = EngineOptions {
        member_snapshot_every: 1,
        ..options()
    };
    let h = Harness::with(noticing(), snapshotting.clone()).await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "A1", 40, h.now())).await;
    h.clock.advance(days(NOTICE_DAY));
    let first = h.run(notify(&alice, h.now())).await;
    assert!(
        matches!(&first.outcome, Outcome::ExpiryNotified { points, lots }
            if *points == Points::new(50) && lots.len() == 2),
        "{:?}",
        first.outcome
    );
    let notice_revision = first.stream_revision;
    assert!(
        snapshot_stored(h.store.as_ref(), "alice", notice_revision).await,
        "no snapshot after the notice"
    );
    // When another server, with nothing cached, is asked for the notice again
    let other = h.second_engine(snapshotting).await;
    let again = other.execute(notify(&alice, h.now())).await.unwrap();
    // Then it started from the snapshot, which knows the lots were announced
    assert_eq!(other.member_snapshots().0, 1);
    assert_eq!(
        again.outcome,
        Outcome::ExpiryNotified {
            points: Points::ZERO,
            lots: Vec::new()
        }
    );
    assert_eq!(again.stream_revision, notice_revision);
    assert_eq!(notices(&h, &alice).await.len(), 1);
    let state = h.core_state(&alice).await;
    assert!(
        state
            .lots()
            .iter()
            .all(|l| l.notified && matches!(l.expiry, LotExpiry::At(_)))
    );
    other.shutdown().await;
}

#[tokio::test]
async fn given_a_program_without_notices_when_lots_near_their_expiry_then_nothing_is_recorded() {
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.clock.advance(days(NOTICE_DAY + 7));
    let report = h.engine.run_scheduled(h.now()).await.unwrap();
    assert_eq!((report.members_due, report.expiry_notices), (0, 0));
    assert!(notices(&h, &alice).await.is_empty());
}
