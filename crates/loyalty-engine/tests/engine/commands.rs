use std::sync::Arc;
use std::sync::atomic::Ordering;

use loyalty_core::{DomainError, Outcome, Points, RefundScope};
use loyalty_engine::{EngineError, RefundRequest};
use loyalty_store::EventStore;
use rust_decimal::Decimal;

use crate::common::*;

#[tokio::test]
async fn a_retried_purchase_is_a_replay_that_reports_the_original_outcome() {
    // Given an enrolled member who made a purchase
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    let first = h.run(purchase(&m, "T1", 42, h.now())).await;
    // When the terminal sends the same purchase again
    let retry = h.run(purchase(&m, "T1", 42, h.now())).await;
    // Then the retry is a replay with the original outcome, and one purchase is recorded
    assert!(!first.replayed);
    assert!(retry.replayed);
    assert_eq!(retry.outcome, first.outcome);
    assert!(retry.position >= first.position);
    assert_eq!(
        count_events(h.store.as_ref(), &m, "PurchaseRecorded").await,
        1
    );
}

#[tokio::test]
async fn a_retry_after_a_restart_is_still_a_replay() {
    // Given a purchase recorded by one engine
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    let first = h.run(purchase(&m, "T1", 42, h.now())).await;
    // When another engine (empty cache) receives the retry
    let other = h.second_engine(options()).await;
    let retry = other
        .execute(purchase(&m, "T1", 42, h.now()))
        .await
        .unwrap();
    // Then it is a replay of the original
    assert!(retry.replayed);
    assert_eq!(retry.outcome, first.outcome);
    assert_eq!(retry.stream_revision, first.stream_revision);
}

#[tokio::test]
async fn the_same_transaction_id_with_different_content_is_rejected() {
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 42, h.now())).await;
    let err = h
        .engine
        .execute(purchase(&m, "T1", 43, h.now()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Domain(DomainError::IdempotencyConflict { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_that_together_exceed_the_balance_let_exactly_one_win() {
    // Given a member with 110 points (welcome 10 + purchase 100), and two servers
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 100, h.now())).await;
    let other = h.second_engine(options()).await;
    // When 20 redemptions of 60 points each race, half through each server
    let mut tasks = Vec::new();
    for i in 0..20 {
        let engine = if i % 2 == 0 {
            h.engine.clone()
        } else {
            other.clone()
        };
        let command = redeem(&m, &format!("R{i}"), 60, h.now());
        tasks.push(tokio::spawn(async move { engine.execute(command).await }));
    }
    let mut won = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(EngineError::Domain(DomainError::InsufficientPoints { .. })) => refused += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    // Then exactly one succeeds, and 50 points are left
    assert_eq!((won, refused), (1, 19));
    assert_eq!(
        count_events(h.store.as_ref(), &m, "PointsRedeemed").await,
        1
    );
    let state = h.core_state(&m).await;
    assert_eq!(state.available(h.now()), Points::new(50));
}

#[tokio::test]
async fn a_transaction_id_already_used_by_another_member_is_rejected() {
    // Given alice recorded transaction T1
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    let bob = h.enroll("bob").await;
    h.run(purchase(&alice, "T1", 40, h.now())).await;
    // When bob's purchase names the same transaction id
    let err = h
        .engine
        .execute(purchase(&bob, "T1", 40, h.now()))
        .await
        .unwrap_err();
    // Then it is rejected, and bob earned nothing
    match err {
        EngineError::TransactionOfAnotherMember { sale: taken, owner } => {
            assert_eq!(taken, sale("T1"));
            assert_eq!(owner, alice);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        count_events(h.store.as_ref(), &bob, "PurchaseRecorded").await,
        0
    );
}

#[tokio::test]
async fn a_refund_naming_only_the_transaction_id_finds_the_member() {
    // Given alice bought for 80 euros (80 points)
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "T1", 80, h.now())).await;
    // When a refund of half of it names only the transaction
    let result = h
        .engine
        .refund_by_transaction(RefundRequest {
            refund_id: loyalty_core::RefundId::parse("RF1").unwrap(),
            store: store_id(STORE),
            purchase_store: store_id(STORE),
            transaction_id: txn("T1"),
            occurred_at: h.now(),
            currency: eur(),
            scope: RefundScope::Amount(Decimal::from(40)),
        })
        .await
        .unwrap();
    // Then alice's account takes back 40 points
    assert_eq!(result.member, alice);
    match result.outcome {
        Outcome::RefundRecorded {
            points_clawed_back, ..
        } => assert_eq!(points_clawed_back, Points::new(40)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        h.engine.member_of_transaction(&sale("T1")).await.unwrap(),
        Some(alice)
    );
}

#[tokio::test]
async fn a_refund_of_an_unknown_transaction_is_reported_as_such() {
    let h = Harness::new().await;
    h.enroll("alice").await;
    let err = h
        .engine
        .refund_by_transaction(RefundRequest {
            refund_id: loyalty_core::RefundId::parse("RF1").unwrap(),
            store: store_id(STORE),
            purchase_store: store_id(STORE),
            transaction_id: txn("NOPE"),
            occurred_at: h.now(),
            currency: eur(),
            scope: RefundScope::Amount(Decimal::from(1)),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownTransaction(t) if t == sale("NOPE")));
}

#[tokio::test]
async fn a_reservation_left_by_a_crash_before_the_member_append_is_reused_by_the_retry() {
    // Given a store whose next member append fails after the reservation was written
    let store = Arc::new(FaultyStore::default());
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let engine = start(store.clone(), program(), clock.clone(), options()).await;
    let alice = member("alice");
    engine.execute(enroll(&alice, t0())).await.unwrap();
    store.fail_next_member_append.store(true, Ordering::SeqCst);
    let err = engine
        .execute(purchase(&alice, "T1", 30, t0()))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Store(_)), "{err:?}");
    // When the terminal retries
    let retry = engine
        .execute(purchase(&alice, "T1", 30, t0()))
        .await
        .unwrap();
    // Then the purchase is recorded (the reservation naming alice is reused)...
    assert!(!retry.replayed);
    assert_eq!(
        count_events(store.as_ref(), &alice, "PurchaseRecorded").await,
        1
    );
    // ...and the transaction id stays alice's
    let bob = member("bob");
    engine.execute(enroll(&bob, t0())).await.unwrap();
    let err = engine
        .execute(purchase(&bob, "T1", 30, t0()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::TransactionOfAnotherMember { .. }
    ));
}

#[tokio::test]
async fn a_stream_that_keeps_changing_gives_up_after_the_bounded_retries() {
    // Given a store where every member append loses to a concurrent writer
    let store = Arc::new(FaultyStore::default());
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let opts = loyalty_engine::EngineOptions {
        max_conflict_retries: 3,
        ..options()
    };
    let engine = start(store.clone(), program(), clock, opts).await;
    store.always_conflict.store(true, Ordering::SeqCst);
    // When a member enrolls
    let err = engine
        .execute(enroll(&member("alice"), t0()))
        .await
        .unwrap_err();
    // Then the engine tried 1 + 3 times and reports a conflict
    assert!(
        matches!(err, EngineError::Conflict { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(store.member_appends.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn enrolling_with_an_unknown_referrer_is_rejected() {
    let h = Harness::new().await;
    let err = h
        .engine
        .execute(enroll_referred(&member("bob"), &member("ghost"), h.now()))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownMember(m) if m == member("ghost")));
    assert_eq!(
        h.store.stream_revision("member-bob").await.unwrap(),
        loyalty_store::CurrentRevision::NoStream
    );
}

#[tokio::test]
async fn a_command_for_a_member_who_never_enrolled_is_the_domains_no() {
    let h = Harness::new().await;
    let err = h
        .engine
        .execute(purchase(&member("nobody"), "T1", 10, h.now()))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Domain(DomainError::NotEnrolled)));
    assert_eq!(
        h.store.stream_revision("txn-T1").await.unwrap(),
        loyalty_store::CurrentRevision::NoStream,
        "a refused purchase reserves nothing"
    );
}

#[tokio::test]
async fn appended_events_carry_the_engines_metadata() {
    let h = Harness::new().await;
    let m = member("alice");
    h.engine
        .execute_with(
            enroll(&m, h.now()),
            loyalty_engine::CommandContext::new()
                .with_correlation_id("req-1")
                .with_actor("app"),
        )
        .await
        .unwrap();
    let events = read_member(h.store.as_ref(), &m).await;
    let meta: loyalty_engine::EventMetadata = serde_json::from_slice(&events[0].metadata).unwrap();
    assert_eq!(meta.command, "Enroll");
    assert_eq!(meta.client_id, "enroll:alice");
    assert_eq!(meta.correlation_id.as_deref(), Some("req-1"));
    assert_eq!(meta.actor.as_deref(), Some("app"));
    // The version of the rules: the hash of the program's normalised text.
    assert_eq!(meta.rules_version, h.engine.program().version());
    assert_eq!(meta.recorded_at, t0());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_purchase_sent_to_two_servers_at_once_is_recorded_once() {
    // Given a member and two servers
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    let other = h.second_engine(options()).await;
    for round in 0..10 {
        // When a terminal's purchase and its retry reach both servers at the same time
        let command = purchase(&m, &format!("T{round}"), 25, h.now());
        let (a, b) = tokio::join!(
            h.engine.execute(command.clone()),
            other.execute(command.clone())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        // Then both report the same outcome, at most one of them as new
        assert_eq!(a.outcome, b.outcome);
        assert!(a.replayed || b.replayed, "round {round}: {a:?} {b:?}");
    }
    // And each purchase is recorded once
    assert_eq!(
        count_events(h.store.as_ref(), &m, "PurchaseRecorded").await,
        10
    );
}

#[tokio::test]
async fn a_server_with_an_old_cached_state_does_not_refuse_what_another_server_made_possible() {
    // Given a member cached by the first server with 10 points
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    // And a second server that records a purchase of 100 points meanwhile
    let other = h.second_engine(options()).await;
    other
        .execute(purchase(&m, "T1", 100, h.now()))
        .await
        .unwrap();
    // When the first server is asked to redeem 50 points
    let result = h.engine.execute(redeem(&m, "R1", 50, h.now())).await;
    // Then it sees the purchase and accepts
    assert!(result.is_ok(), "{result:?}");
    // And a rejection it gives is decided on the stream's latest revision
    other.execute(redeem(&m, "R2", 50, h.now())).await.unwrap();
    let err = h
        .engine
        .execute(redeem(&m, "R3", 20, h.now()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Domain(DomainError::InsufficientPoints { available, .. }) if available == Points::new(10)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_full_disk_refuses_writes_as_retryable_and_the_engine_notices_by_itself_when_it_is_back()
{
    // Given an engine on a store that then runs out of space
    let store = Arc::new(FaultyStore::default());
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let engine = start(store.clone(), program(), clock.clone(), options()).await;
    let alice = member("alice");
    engine.execute(enroll(&alice, t0())).await.unwrap();
    assert_eq!(engine.write_failure(), None);
    store.full.store(true, Ordering::SeqCst);
    // When a purchase comes in
    let err = engine
        .execute(purchase(&alice, "T1", 30, t0()))
        .await
        .unwrap_err();
    // Then it is refused as retryable, nothing is recorded, and the engine says writes fail
    assert!(err.is_retryable(), "{err:?}");
    assert!(engine.write_failure().is_some());
    assert_eq!(
        count_events(store.as_ref(), &alice, "PurchaseRecorded").await,
        0
    );
    // When space is back, with no write arriving, the probe finds out within seconds
    store.full.store(false, Ordering::SeqCst);
    let healthy = eventually(async || engine.write_failure().is_none()).await;
    assert!(healthy, "the engine never noticed the store was back");
    // And the retried purchase goes through
    engine
        .execute(purchase(&alice, "T1", 30, t0()))
        .await
        .unwrap();
    engine.shutdown().await;
}
