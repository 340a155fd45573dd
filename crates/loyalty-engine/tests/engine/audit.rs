use loyalty_core::Points;
use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, Position, Uuid};
use rust_decimal::Decimal;

use crate::common::*;

async fn busy_harness() -> Harness {
    let h = Harness::new().await;
    for i in 0..5 {
        let m = h.enroll(&format!("m{i}")).await;
        h.run(purchase(&m, &format!("T{i}"), 20 + i, h.now())).await;
        if i % 2 == 0 {
            h.run(redeem(&m, &format!("R{i}"), 15, h.now())).await;
        }
        if i == 3 {
            h.run(refund(&m, "RF3", "T3", 23, h.now())).await;
        }
    }
    h
}

#[tokio::test]
async fn verify_finds_the_live_read_models_equal_to_a_fresh_replay() {
    let h = busy_harness().await;
    let report = h.engine.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.members_checked, 5);
    assert!(report.events_replayed >= 10);
}

#[tokio::test]
async fn verify_reports_an_event_the_projections_cannot_read() {
    // Given an event of an unknown type written to a member's stream by someone else
    let h = busy_harness().await;
    h.store
        .append(
            "member-m1",
            ExpectedRevision::Any,
            vec![EventData {
                id: Uuid::new_v4(),
                event_type: "SomethingElse".into(),
                schema_version: 1,
                data: Bytes::from_static(b"{}"),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    // When an auditor verifies
    let report = h.engine.verify().await.unwrap();
    // Then the report is not clean
    assert!(!report.is_clean());
    assert_eq!(report.unreadable_events, 1);
}

#[tokio::test]
async fn replay_reports_the_same_totals_as_the_live_read_models() {
    let h = busy_harness().await;
    h.settle().await;
    let seen = std::sync::Mutex::new(Vec::new());
    let report = h
        .engine
        .replay(|n| seen.lock().unwrap().push(n))
        .await
        .unwrap();
    assert_eq!(report.totals, h.engine.totals());
    assert_eq!(report.members, 5);
    assert_eq!(
        seen.lock().unwrap().last().copied(),
        Some(report.events_replayed)
    );
}

#[tokio::test]
async fn balance_and_tier_as_of_an_instant_ignore_what_was_recorded_later() {
    // Given a purchase on day 0 and a redemption on day 10
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 150, h.now())).await;
    h.clock.advance(days(10));
    h.run(redeem(&m, "R1", 100, h.now())).await;
    // When the auditor asks for day 5 and day 11
    let day5 = h
        .engine
        .member_as_of(&m, t0() + days(5))
        .await
        .unwrap()
        .unwrap();
    let day11 = h
        .engine
        .member_as_of(&m, t0() + days(11))
        .await
        .unwrap()
        .unwrap();
    // Then day 5 knows the purchase only, day 11 the redemption too
    assert_eq!(day5.balance.available, Points::new(160));
    assert_eq!(day5.tier.current.name, "Silver");
    assert_eq!(day11.balance.available, Points::new(60));
    assert_eq!(day11.balance.redeemed, Points::new(100));
    // And before enrollment there was no member
    assert!(
        h.engine
            .member_as_of(&m, t0() - days(1))
            .await
            .unwrap()
            .is_none()
    );
    // And as of a date after expiry, the points count as expired
    let later = h
        .engine
        .member_as_of(&m, t0() + days(500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.balance.available, Points::ZERO);
    assert_eq!(later.balance.expired, Points::new(60));
}

#[tokio::test]
async fn the_liability_as_of_an_instant_counts_only_points_recorded_by_then() {
    // Given 60 points on day 0 and 40 more on day 10
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 50, h.now())).await;
    h.clock.advance(days(10));
    h.run(purchase(&m, "T2", 40, h.now())).await;
    // Then the liability as of day 5 is 60 x 0.01, as of day 11 it is 100 x 0.01
    let day5 = h.engine.liability_as_of(t0() + days(5)).await.unwrap();
    let day11 = h.engine.liability_as_of(t0() + days(11)).await.unwrap();
    assert_eq!(day5.totals.points_outstanding, Points::new(60));
    assert_eq!(day5.totals.liability, Decimal::new(60, 2));
    assert_eq!(day11.totals.points_outstanding, Points::new(100));
    assert_eq!(day11.totals.liability, Decimal::new(100, 2));
    // The past is replayed from the log; now and later come from the read models.
    assert!(day5.events_replayed > 0);
    assert_eq!(day11.events_replayed, 0);
}

#[tokio::test]
async fn the_log_pages_through_every_event_in_order() {
    let h = busy_harness().await;
    let head = h.store.head_position().await.unwrap();
    let mut after = Position::START;
    let mut seen = 0;
    let mut last = Position::START;
    loop {
        let page = h.engine.log(after, 3).await.unwrap();
        for entry in &page.entries {
            assert!(entry.position > last, "positions grow");
            last = entry.position;
            seen += 1;
        }
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(last, head);
    let everything = h.store.read_all(Position::START, 1_000).await.unwrap();
    assert_eq!(seen, everything.len());
}

#[tokio::test]
async fn a_members_events_page_from_a_revision() {
    let h = busy_harness().await;
    let m = member("m0");
    let page = h.engine.member_events(&m, 1, 1).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].revision, 1);
    assert_eq!(page.entries[0].event_type, "PurchaseRecorded");
    assert_eq!(page.next_revision, Some(2));
    assert_eq!(page.entries[0].metadata["command"], "RecordPurchase");
}
