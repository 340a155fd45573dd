//! Cached states are hot (compacted): what they retired goes to the full history, so answers
//! are the same as if nothing had been retired; the cache is bounded in bytes.

use loyalty_core::{DomainError, HotLimits, Outcome, Points, TimeWindow};
use loyalty_engine::{EngineError, EngineOptions};
use loyalty_store::EventStore;

use crate::common::*;

fn tiny() -> EngineOptions {
    EngineOptions {
        hot_limits: Some(HotLimits {
            max_purchases: 2,
            max_redemptions: 1,
            max_processed: 3,
            ..HotLimits::new(&program(), TimeWindow::DEFAULT)
        }),
        ..options()
    }
}

async fn alice_with_ten_purchases(h: &Harness) -> loyalty_core::MemberId {
    let alice = h.enroll("alice").await;
    for i in 1..=10 {
        h.run(purchase(&alice, &format!("T{i}"), 10 + i, h.now()))
            .await;
    }
    alice
}

#[tokio::test]
async fn a_retry_of_a_transaction_id_the_cache_retired_long_ago_is_still_a_replay() {
    // Given alice's ten purchases, of which the cached state keeps two
    let h = Harness::with(program(), tiny()).await;
    let alice = alice_with_ten_purchases(&h).await;
    let before = read_member(h.store.as_ref(), &alice).await.len();
    let loads = h.engine.full_history_loads();
    // When the till retries the first one
    let retry = h
        .engine
        .execute(purchase(&alice, "T1", 11, h.now()))
        .await
        .unwrap();
    // Then it is recognised on the full history, with its original outcome, and nothing is
    // appended
    assert!(retry.replayed);
    assert_eq!(h.engine.full_history_loads(), loads + 1);
    assert!(matches!(
        retry.outcome,
        Outcome::PurchaseRecorded { points, .. } if points == Points::new(11)
    ));
    assert_eq!(read_member(h.store.as_ref(), &alice).await.len(), before);
    // And the same id with other content is a conflict, not a new purchase
    let err = h
        .engine
        .execute(purchase(&alice, "T1", 99, h.now()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Domain(DomainError::IdempotencyConflict { .. })
    ));
}

#[tokio::test]
async fn a_refund_of_a_purchase_the_cache_retired_takes_back_exactly_its_points() {
    let h = Harness::with(program(), tiny()).await;
    let alice = alice_with_ten_purchases(&h).await;
    let loads = h.engine.full_history_loads();
    let result = h
        .engine
        .execute(refund(&alice, "RF1", "T1", 11, h.now()))
        .await
        .unwrap();
    assert_eq!(h.engine.full_history_loads(), loads + 1);
    assert!(matches!(
        result.outcome,
        Outcome::RefundRecorded { points_clawed_back, .. } if points_clawed_back == Points::new(11)
    ));
    // The cached state goes on deciding like the full history.
    h.run(redeem(&alice, "R1", 50, h.now())).await;
    let full = h.core_state(&alice).await;
    assert_eq!(full.available(h.now()), Points::new(10 + 155 - 11 - 50));
    h.settle().await;
    assert!(h.engine.verify().await.unwrap().is_clean());
}

#[tokio::test]
async fn an_event_another_server_decided_on_the_full_history_does_not_corrupt_this_servers_cache() {
    // Given two servers, the first with alice's hot state in its cache
    let h = Harness::with(program(), tiny()).await;
    let alice = alice_with_ten_purchases(&h).await;
    let other = h.second_engine(tiny()).await;
    // When the other server refunds a purchase the hot state retired (on the full history)
    other
        .execute(refund(&alice, "RF1", "T1", 11, h.now()))
        .await
        .unwrap();
    // And the first server then decides for alice (it catches up with the other's events,
    // which its hot state cannot take: it rebuilds from the full history)
    let loads = h.engine.full_history_loads();
    h.run(redeem(&alice, "R1", 20, h.now())).await;
    assert_eq!(h.engine.full_history_loads(), loads + 1);
    h.run(refund(&alice, "RF2", "T10", 20, h.now())).await;
    // Then its answers agree with the full history
    let full = h.core_state(&alice).await;
    assert_eq!(
        full.available(h.now()),
        Points::new(10 + 155 - 11 - 20 - 20)
    );
    assert_eq!(full.lifetime().clawed_back, Points::new(31));
    other.shutdown().await;
}

#[tokio::test]
async fn the_cache_of_member_states_is_bounded_in_bytes() {
    // Given a cache of 10,000 members but 64 KiB
    let opts = EngineOptions {
        cache_bytes: 64 * 1024,
        ..options()
    };
    let h = Harness::with(program(), opts).await;
    // When 200 members enroll and buy
    for i in 0..200 {
        let m = h.enroll(&format!("m{i}")).await;
        h.run(purchase(&m, &format!("T{i}"), 10, h.now())).await;
    }
    // Then the cached states weigh no more than the bound, and far fewer than 200 are kept
    let (members, bytes) = h.engine.cache_usage();
    assert!(bytes <= 64 * 1024, "{bytes} bytes cached");
    assert!(members > 0 && members < 200, "{members} members cached");
}

/// The redemption was refused for want of points, with `points` available.
fn assert_available(err: &EngineError, points: i64) {
    assert!(
        matches!(
            err,
            EngineError::Domain(DomainError::InsufficientPoints { available, .. })
                if *available == Points::new(points)
        ),
        "{err:?}"
    );
}

/// Tiny hot limits and a member snapshot every 20 events.
fn snapshotting() -> EngineOptions {
    EngineOptions {
        member_snapshot_every: 20,
        ..tiny()
    }
}

/// Alice with 50 purchases of 10 euros (welcome 10 + 500 points), on a server that
/// snapshots her (at revisions 19 and 39); returns once the snapshot at 39 is stored.
async fn alice_with_a_snapshot(h: &Harness) -> loyalty_core::MemberId {
    let alice = h.enroll("alice").await;
    for i in 1..=50 {
        h.run(purchase(&alice, &format!("T{i}"), 10, h.now())).await;
    }
    assert!(
        snapshot_stored(h.store.as_ref(), "alice", 39).await,
        "no snapshot stored"
    );
    assert!(h.engine.member_snapshots().1 >= 2);
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_long_history_loads_from_her_snapshot_and_decides_as_on_her_events() {
    // Given alice's 51 events, snapshotted every 20
    let h = Harness::with(program(), snapshotting()).await;
    let alice = alice_with_a_snapshot(&h).await;
    // And the snapshot stream keeps only the latest snapshot
    let kept = h
        .store
        .read_stream(
            "snapshot-alice",
            loyalty_store::StreamFrom::Start,
            loyalty_store::Direction::Forwards,
            100,
        )
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    // When another server, with nothing cached, takes a redemption of one point too many
    let other = h.second_engine(snapshotting()).await;
    let err = other
        .execute(redeem(&alice, "R1", 511, h.now()))
        .await
        .unwrap_err();
    // Then it started from the snapshot, and knows her balance to the point
    assert_eq!(other.member_snapshots().0, 1);
    assert_available(&err, 510);
    // And a retry of her first purchase, which the snapshot keeps only as a digest, is
    // still a replay
    let loads = other.full_history_loads();
    let retry = other
        .execute(purchase(&alice, "T1", 10, h.now()))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(other.full_history_loads(), loads + 1);
    // And what it decides next is what the events say
    other
        .execute(redeem(&alice, "R2", 510, h.now()))
        .await
        .unwrap();
    let state = h.core_state(&alice).await;
    assert_eq!(state.balance(h.now()).available, Points::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_format_is_ignored_and_the_member_loads_from_her_events() {
    // Given alice's snapshot, followed by one of a format this build does not know
    let h = Harness::with(program(), snapshotting()).await;
    let alice = alice_with_a_snapshot(&h).await;
    h.store
        .append(
            "snapshot-alice",
            loyalty_store::ExpectedRevision::Any,
            vec![loyalty_store::EventData {
                id: uuid::Uuid::new_v4(),
                event_type: "MemberSnapshotTaken".to_owned(),
                schema_version: 99,
                data: loyalty_store::Bytes::from_static(b"\x93\x01\x02\x03"),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    // When another server loads her
    let other = h.second_engine(snapshotting()).await;
    let err = other
        .execute(redeem(&alice, "R1", 511, h.now()))
        .await
        .unwrap_err();
    // Then it ignored the snapshot and decided on her events
    assert_eq!(other.member_snapshots().0, 0);
    assert_available(&err, 510);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_thousands_of_unspent_lots_still_gets_her_snapshot_stored() {
    // Given alice's 3,000 purchases, none spent (3,000 lots holding points), and a snapshot
    // due at her 3,001st event
    let opts = EngineOptions {
        member_snapshot_every: 3_001,
        ..options()
    };
    let h = Harness::with(program(), opts).await;
    let alice = h.enroll("alice").await;
    for i in 1..=3_000 {
        h.run(purchase(&alice, &format!("T{i}"), 10, h.now())).await;
    }
    // Then the snapshot was stored, compressed within one append
    let store = h.store.clone();
    assert!(
        eventually(async || {
            !store
                .read_stream(
                    "snapshot-alice",
                    loyalty_store::StreamFrom::Start,
                    loyalty_store::Direction::Forwards,
                    10,
                )
                .await
                .unwrap()
                .is_empty()
        })
        .await,
        "the snapshot was not stored"
    );
    // And another server loads her from it, to the point
    let other = h.second_engine(options()).await;
    let err = other
        .execute(redeem(&alice, "R1", 30_011, h.now()))
        .await
        .unwrap_err();
    assert_eq!(other.member_snapshots().0, 1);
    assert_available(&err, 30_010);
}
