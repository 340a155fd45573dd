//! Ledger integrity through the engine: its own clock decides, business times outside the
//! window append nothing, referrals end with their purchase on both accounts, sales are scoped
//! by store.

use loyalty_core::{Command, DomainError, Points, RecordPurchase, RefundScope};
use loyalty_engine::{EngineError, RefundRequest};
use rust_decimal::Decimal;

use crate::common::*;

fn purchase_at_store(
    m: &loyalty_core::MemberId,
    store: &str,
    transaction: &str,
    amount: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Command {
    let Command::RecordPurchase(p) = purchase(m, transaction, amount, at) else {
        unreachable!("purchase makes a purchase")
    };
    Command::RecordPurchase(RecordPurchase {
        store: store_id(store),
        ..p
    })
}

fn refund_request(
    store: &str,
    purchase_store: &str,
    transaction: &str,
    amount: i64,
) -> RefundRequest {
    RefundRequest {
        refund_id: loyalty_core::RefundId::parse(format!("RF-{transaction}")).unwrap(),
        store: store_id(store),
        purchase_store: store_id(purchase_store),
        transaction_id: txn(transaction),
        occurred_at: t0(),
        currency: eur(),
        scope: RefundScope::Amount(Decimal::from(amount)),
    }
}

#[tokio::test]
async fn a_purchase_dated_a_year_ahead_of_the_engines_clock_appends_nothing() {
    // Given alice with a balance, on an engine whose clock says t0
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    let before = read_member(h.store.as_ref(), &alice).await.len();
    // When a till dated a year ahead posts a purchase
    let err = h
        .engine
        .execute(purchase(&alice, "T1", 40, t0() + days(365)))
        .await
        .unwrap_err();
    // Then it is refused, and nothing was appended (no expiry either)
    assert!(
        matches!(
            err,
            EngineError::Domain(DomainError::OccurredAtOutsideWindow { .. })
        ),
        "{err:?}"
    );
    assert_eq!(read_member(h.store.as_ref(), &alice).await.len(), before);
    assert_eq!(
        h.core_state(&alice).await.available(h.now()),
        Points::new(10)
    );
}

#[tokio::test]
async fn the_window_follows_the_engines_clock_and_its_settings() {
    let opts = loyalty_engine::EngineOptions {
        time_window: loyalty_core::TimeWindow {
            max_ahead: chrono::Duration::zero(),
            max_behind: chrono::Duration::days(1),
        },
        ..options()
    };
    let h = Harness::with(program(), opts).await;
    let alice = h.enroll("alice").await;
    h.clock.advance(days(3));
    // Two days back is outside a one-day window; one day back is inside it.
    let err = h
        .engine
        .execute(purchase(&alice, "T1", 40, h.now() - days(2)))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Domain(DomainError::OccurredAtOutsideWindow { .. })
    ));
    h.run(purchase(&alice, "T2", 40, h.now() - days(1))).await;
    // Not even a second ahead.
    let err = h
        .engine
        .execute(purchase(
            &alice,
            "T3",
            40,
            h.now() + chrono::Duration::seconds(1),
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Domain(DomainError::OccurredAtOutsideWindow { .. })
    ));
}

#[tokio::test]
async fn a_retry_after_the_backdating_window_is_still_answered_with_its_outcome() {
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    let bought = purchase(&alice, "T1", 40, h.now());
    h.run(bought.clone()).await;
    // A till retries a month later (its queue was stuck): a replay, not a refusal.
    h.clock.advance(days(30));
    let again = h.engine.execute(bought).await.unwrap();
    assert!(again.replayed);
}

#[tokio::test]
async fn scheduled_work_cannot_run_ahead_of_the_engines_clock() {
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "T1", 40, h.now())).await;
    let err = h
        .engine
        .run_scheduled(h.now() + days(400))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ScheduledAhead { .. }), "{err:?}");
    assert_eq!(
        count_events(h.store.as_ref(), &alice, "PointsExpired").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_refer_refund_takes_both_referral_bonuses_back() {
    // Given rita referred nina, and nina's first purchase qualified the referral
    let h = Harness::new().await;
    let (rita, nina) = h.referral_delivered().await;
    let store = h.store.clone();
    let r = rita.clone();
    // When nina returns the whole purchase
    h.engine
        .refund_by_transaction(refund_request(STORE, STORE, "N1", 20))
        .await
        .unwrap();
    // Then nina's referral is revoked, and the process manager takes rita's bonus back
    assert_eq!(
        count_events(h.store.as_ref(), &nina, "ReferralRevoked").await,
        1
    );
    assert!(
        eventually(async || count_events(store.as_ref(), &r, "ReferralBonusRevoked").await == 1)
            .await,
        "the referrer's bonus was never taken back"
    );
    // And both are left with their welcome points only
    assert_eq!(
        h.core_state(&nina).await.balance(h.now()).balance,
        Points::new(10)
    );
    assert_eq!(
        h.core_state(&rita).await.balance(h.now()).balance,
        Points::new(10)
    );
    // The read models agree with the log
    h.settle().await;
    assert_eq!(
        h.engine.balance(&rita).unwrap().clawed_back,
        Points::new(200)
    );
    assert!(h.engine.verify().await.unwrap().is_clean());
}

#[tokio::test]
async fn two_members_may_each_have_a_sale_1001_at_their_own_store() {
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    let bob = h.enroll("bob").await;
    h.run(purchase_at_store(&alice, "store-1", "1001", 40, h.now()))
        .await;
    h.run(purchase_at_store(&bob, "store-2", "1001", 30, h.now()))
        .await;
    // The same sale at the same store is still one member's.
    let err = h
        .engine
        .execute(purchase_at_store(&bob, "store-1", "1001", 30, h.now()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::TransactionOfAnotherMember { ref owner, .. } if owner == &alice),
        "{err:?}"
    );
    // A return of store-2's sale 1001, taken at store-1, finds bob.
    let refunded = h
        .engine
        .refund_by_transaction(refund_request("store-1", "store-2", "1001", 30))
        .await
        .unwrap();
    assert_eq!(refunded.member, bob);
    assert_eq!(
        h.engine
            .member_of_transaction(&loyalty_core::PurchaseKey::new(
                store_id("store-1"),
                txn("1001")
            ))
            .await
            .unwrap(),
        Some(alice)
    );
}

#[tokio::test]
async fn a_refund_finds_a_sale_reserved_before_stores_scoped_transaction_ids() {
    use loyalty_core::{ServerTime, decide, schema};
    use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, Uuid};
    // Given alice's purchase T1 as an older version recorded it: the member's events, and an
    // unscoped reservation stream `txn-T1`
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    let state = h.core_state(&alice).await;
    let bought = purchase(&alice, "T1", 40, h.now());
    let decision = decide(&state, &bought, h.engine.program(), ServerTime::at(h.now())).unwrap();
    let events: Vec<EventData> = decision
        .events
        .iter()
        .map(|e| {
            let stored = schema::encode(e);
            EventData {
                id: Uuid::new_v4(),
                event_type: stored.event_type.to_owned(),
                schema_version: stored.schema_version,
                data: Bytes::from(stored.data),
                metadata: Bytes::from_static(b"{}"),
            }
        })
        .collect();
    let revision = read_member(h.store.as_ref(), &alice).await.len() as u64 - 1;
    h.store
        .append("member-alice", ExpectedRevision::Exact(revision), events)
        .await
        .unwrap();
    let legacy = serde_json::json!({
        "transaction_id": "T1", "member_id": "alice", "reserved_at": h.now(),
    });
    h.store
        .append(
            "txn-T1",
            ExpectedRevision::NoStream,
            vec![EventData {
                id: Uuid::new_v4(),
                event_type: "TransactionReserved".into(),
                schema_version: 1,
                data: Bytes::from(serde_json::to_vec(&legacy).unwrap()),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    // When a refund names the sale by its store and transaction id
    let refunded = h
        .engine
        .refund_by_transaction(refund_request(STORE, STORE, "T1", 40))
        .await
        .unwrap();
    // Then the older reservation leads to alice, and her purchase's points go back
    assert_eq!(refunded.member, alice);
    assert_eq!(
        h.core_state(&alice).await.balance(h.now()).balance,
        Points::new(10)
    );
}
