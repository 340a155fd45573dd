use std::sync::Arc;

use loyalty_core::{Points, RefundScope};
use loyalty_engine::RefundRequest;
use loyalty_store::EventStore;
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};
use rust_decimal::Decimal;

use crate::common::*;

#[tokio::test]
async fn the_engine_on_sqlite_keeps_balances_across_a_restart() {
    // Given an engine on a SQLite file with a purchase, a redemption and a refund
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.sqlite");
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let store = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let engine = start(store.clone(), program(), clock.clone(), options()).await;
    let m = member("alice");
    engine.execute(enroll(&m, t0())).await.unwrap();
    engine.execute(purchase(&m, "T1", 90, t0())).await.unwrap();
    engine.execute(redeem(&m, "R1", 30, t0())).await.unwrap();
    let last = engine
        .refund_by_transaction(RefundRequest {
            refund_id: loyalty_core::RefundId::parse("RF1").unwrap(),
            store: store_id(STORE),
            purchase_store: store_id(STORE),
            transaction_id: txn("T1"),
            occurred_at: t0(),
            currency: eur(),
            scope: RefundScope::Amount(Decimal::from(30)),
        })
        .await
        .unwrap();
    engine.wait_for(last.position).await.unwrap();
    let before = engine.balance(&m).unwrap();
    assert_eq!(before.available, Points::new(10 + 90 - 30 - 30));
    assert!(engine.verify().await.unwrap().is_clean());
    engine.shutdown().await;
    drop(engine);
    let Ok(store) = Arc::try_unwrap(store) else {
        panic!("the engine still holds the store after shutdown");
    };
    store.close().await.unwrap();
    // When a new engine opens the same file
    let store = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let engine = start(store.clone(), program(), clock, options()).await;
    let head = store.head_position().await.unwrap();
    engine.wait_for(head).await.unwrap();
    // Then the balance is the same, and a retry of the purchase is a replay
    assert_eq!(engine.balance(&m).unwrap(), before);
    let retry = engine.execute(purchase(&m, "T1", 90, t0())).await.unwrap();
    assert!(retry.replayed);
    engine.shutdown().await;
}

async fn sqlite_engine(dir: &tempfile::TempDir) -> (Arc<SqliteStore>, loyalty_engine::Engine) {
    let store = Arc::new(
        SqliteStore::open(dir.path().join("engine.sqlite"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let engine = start(store.clone(), program(), clock, options()).await;
    (store, engine)
}

#[tokio::test]
async fn on_sqlite_a_purchase_and_its_reservation_are_one_durable_write() {
    // Given an enrolled member on the embedded store
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = sqlite_engine(&dir).await;
    let alice = member("alice");
    engine.execute(enroll(&alice, t0())).await.unwrap();
    // And the engine's own start-up writes done (the referral process manager takes its lease
    // in the background: a commit of its own that would land in the count below)
    let s = store.clone();
    assert!(
        eventually(async || {
            s.stream_revision("lease-referrals").await.unwrap()
                != loyalty_store::CurrentRevision::NoStream
        })
        .await,
        "the referral lease was never taken"
    );
    let before = store.stats().commits;
    // When she buys
    engine
        .execute(purchase(&alice, "T1", 40, t0()))
        .await
        .unwrap();
    // Then the reservation and the purchase went in one transaction (one fsync)
    assert_eq!(store.stats().commits - before, 1);
    let reservation = store
        .read_stream(
            "txn-store-1/T1",
            loyalty_store::StreamFrom::Start,
            loyalty_store::Direction::Forwards,
            10,
        )
        .await
        .unwrap();
    assert_eq!(reservation.len(), 1);
    assert_eq!(
        count_events(store.as_ref(), &alice, "PurchaseRecorded").await,
        1
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn on_sqlite_another_members_transaction_id_is_refused_and_nothing_is_stored() {
    // Given alice recorded transaction T1
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = sqlite_engine(&dir).await;
    let (alice, bob) = (member("alice"), member("bob"));
    engine.execute(enroll(&alice, t0())).await.unwrap();
    engine.execute(enroll(&bob, t0())).await.unwrap();
    engine
        .execute(purchase(&alice, "T1", 40, t0()))
        .await
        .unwrap();
    let bobs = store.stream_revision("member-bob").await.unwrap();
    let reservations = store.stream_revision("txn-store-1/T1").await.unwrap();
    assert_ne!(reservations, loyalty_store::CurrentRevision::NoStream);
    // When bob's purchase names T1
    let err = engine
        .execute(purchase(&bob, "T1", 40, t0()))
        .await
        .unwrap_err();
    // Then it is refused and the log did not move
    assert!(
        matches!(err, loyalty_engine::EngineError::TransactionOfAnotherMember { ref owner, .. } if owner == &alice),
        "{err:?}"
    );
    // (neither bob's stream nor the sale's reservation: leases may be renewed meanwhile)
    assert_eq!(store.stream_revision("member-bob").await.unwrap(), bobs);
    assert_eq!(
        store.stream_revision("txn-store-1/T1").await.unwrap(),
        reservations
    );
    assert_eq!(
        count_events(store.as_ref(), &bob, "PurchaseRecorded").await,
        0
    );
    engine.shutdown().await;
}
