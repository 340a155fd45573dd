//! Quotes: a purchase decided as `execute` would decide it now, with nothing written.
use loyalty_core::{Command, DomainError, Outcome, Points, RecordPurchase};
use loyalty_engine::EngineError;
use loyalty_store::EventStore;

use crate::common::*;

fn record(command: Command) -> RecordPurchase {
    match command {
        Command::RecordPurchase(p) => p,
        other => panic!("not a purchase: {other:?}"),
    }
}

#[tokio::test]
async fn a_quote_appends_nothing_and_answers_what_the_purchase_then_does() {
    // Given a Bronze member 50 euros short of Silver (100), with every write applied
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 50, h.now())).await;
    h.settle().await;
    let head = h.store.head_position().await.unwrap();
    let events = read_member(h.store.as_ref(), &m).await.len();
    // When a basket of 60 euros is quoted, twice
    let quote = h
        .engine
        .quote(record(purchase(&m, "T2", 60, h.now())))
        .await
        .expect("quoted");
    let again = h
        .engine
        .quote(record(purchase(&m, "T2", 60, h.now())))
        .await
        .expect("quoted");
    // Then nothing was appended anywhere (no event, no transaction reservation)
    assert_eq!(h.store.head_position().await.unwrap(), head);
    assert_eq!(read_member(h.store.as_ref(), &m).await.len(), events);
    assert_eq!(again, quote);
    // And the quote says what the purchase would do: 60 points, Silver reached
    assert!(matches!(
        quote.outcome,
        Outcome::PurchaseRecorded { points, .. } if points == Points::new(60)
    ));
    assert_eq!(quote.lines.len(), 1);
    assert_eq!(quote.lines[0].points, Points::new(60));
    assert_eq!(quote.balance_before.available, Points::new(60));
    assert_eq!(quote.balance_after.available, Points::new(120));
    assert_eq!(quote.tier_after.current.name, "Silver");
    let profile = h.engine.member_profile(&m).unwrap();
    assert_eq!(quote.balance_before, profile.balance);
    assert_eq!(profile.tier.current.name, "Bronze");
    // And recording the same purchase does exactly that: the quote's outcome, balance and tier
    let recorded = h.run(purchase(&m, "T2", 60, h.now())).await;
    assert_eq!(recorded.outcome, quote.outcome);
    h.settle().await;
    let profile = h.engine.member_profile(&m).unwrap();
    assert_eq!(profile.balance, quote.balance_after);
    assert_eq!(profile.tier, quote.tier_after);
}

#[tokio::test]
async fn a_quote_ignores_idempotency_and_refuses_what_the_purchase_would() {
    // Given a member whose sale T1 is recorded
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    let first = h.run(purchase(&m, "T1", 40, h.now())).await;
    h.settle().await;
    let head = h.store.head_position().await.unwrap();
    // When the same basket is quoted under the same transaction id
    let quote = h
        .engine
        .quote(record(purchase(&m, "T1", 40, h.now())))
        .await
        .expect("quoted");
    // Then it is quoted as a new sale (not the recorded outcome), under the request's id
    let Outcome::PurchaseRecorded {
        transaction_id,
        points,
        ..
    } = &quote.outcome
    else {
        panic!("not a purchase outcome: {:?}", quote.outcome);
    };
    assert_eq!(transaction_id.as_str(), "T1");
    assert_eq!(*points, Points::new(40));
    assert_eq!(
        quote.balance_after.available,
        quote
            .balance_before
            .available
            .checked_add(Points::new(40))
            .unwrap()
    );
    // And a basket dated outside the accepted window is refused as the purchase is
    let late = h.now() - days(30);
    let quoted = h.engine.quote(record(purchase(&m, "T2", 40, late))).await;
    let executed = h.engine.execute(purchase(&m, "T2", 40, late)).await;
    assert!(
        matches!(
            quoted,
            Err(EngineError::Domain(
                DomainError::OccurredAtOutsideWindow { .. }
            ))
        ),
        "{quoted:?}"
    );
    assert_eq!(format!("{quoted:?}"), format!("{executed:?}"));
    // And an unknown member too
    let nobody = h
        .engine
        .quote(record(purchase(&member("nobody"), "T3", 40, h.now())))
        .await;
    assert!(
        matches!(nobody, Err(EngineError::Domain(DomainError::NotEnrolled))),
        "{nobody:?}"
    );
    assert_eq!(h.store.head_position().await.unwrap(), head);
    assert!(!first.replayed);
}
