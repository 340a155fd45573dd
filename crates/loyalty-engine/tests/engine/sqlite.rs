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
