use loyalty_core::Points;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_expiry_run_twice_at_once_on_two_servers_expires_each_lot_once() {
    // Given two members with lots, and two servers
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    let bob = h.enroll("bob").await;
    h.run(purchase(&alice, "A1", 40, h.now())).await;
    h.run(purchase(&bob, "B1", 25, h.now())).await;
    let other = h.second_engine(options()).await;
    // When the lots are past their expiry and both servers run the scheduled work together
    h.clock.advance(days(400));
    let now = h.now();
    let (a, b) = tokio::join!(h.engine.run_scheduled(now), other.run_scheduled(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    // Then every lot expired exactly once (welcome + purchase for each member)
    assert_eq!(
        count_events(h.store.as_ref(), &alice, "PointsExpired").await,
        2
    );
    assert_eq!(
        count_events(h.store.as_ref(), &bob, "PointsExpired").await,
        2
    );
    assert_eq!(
        a.points_expired.value() + b.points_expired.value(),
        50 + 35,
        "reports {a:?} {b:?}"
    );
    // And a third run finds nothing to do
    h.settle().await;
    let again = h.engine.run_scheduled(now).await.unwrap();
    assert_eq!(again.members_due, 0);
    assert_eq!(again.points_expired, Points::ZERO);
    let balance = h.engine.balance(&alice).unwrap();
    assert_eq!(
        (balance.available, balance.expired),
        (Points::ZERO, Points::new(50))
    );
}

#[tokio::test]
async fn nothing_is_due_before_the_expiry_date() {
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "A1", 40, h.now())).await;
    h.clock.advance(days(30));
    let report = h.engine.run_scheduled(h.now()).await.unwrap();
    assert_eq!(report.members_due, 0);
    assert_eq!(
        count_events(h.store.as_ref(), &alice, "PointsExpired").await,
        0
    );
}

#[tokio::test]
async fn tier_reviews_run_on_each_anniversary_and_downgrade_once_the_window_is_empty() {
    // Given a member who reached Silver on the day she enrolled
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "A1", 150, h.now())).await;
    h.settle().await;
    assert_eq!(h.engine.tier(&alice).unwrap().current.name, "Silver");
    // When the first anniversary passes (the purchase is still inside the 12-month window)
    h.clock.advance(days(366));
    let first = h.engine.run_scheduled(h.now()).await.unwrap();
    // Then the review keeps her Silver
    assert_eq!((first.tier_reviews, first.tier_changes), (1, 0));
    // When the second anniversary passes with nothing bought in the last 12 months
    h.clock.advance(days(365));
    h.settle().await;
    let second = h.engine.run_scheduled(h.now()).await.unwrap();
    // Then the review moves her down to Bronze
    assert_eq!((second.tier_reviews, second.tier_changes), (1, 1));
    h.settle().await;
    assert_eq!(h.engine.tier(&alice).unwrap().current.name, "Bronze");
    // And running it again changes nothing and records nothing
    let events_before = read_member(h.store.as_ref(), &alice).await.len();
    let third = h.engine.run_scheduled(h.now()).await.unwrap();
    assert_eq!(third.members_due, 0);
    assert_eq!(
        count_events(h.store.as_ref(), &alice, "TierChanged").await,
        2,
        "the upgrade and the one downgrade"
    );
    assert_eq!(
        read_member(h.store.as_ref(), &alice).await.len(),
        events_before
    );
}

#[tokio::test]
async fn a_review_that_keeps_the_tier_is_not_run_again_by_the_next_run() {
    // Given a Bronze member past their anniversary
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.clock.advance(days(370));
    // The lots are due too; the first run expires them and reviews the tier
    let first = h.engine.run_scheduled(h.now()).await.unwrap();
    assert_eq!((first.tier_reviews, first.tier_changes), (1, 0));
    h.settle().await;
    let second = h.engine.run_scheduled(h.now()).await.unwrap();
    assert_eq!(second.members_due, 0);
    assert_eq!(h.engine.tier(&alice).unwrap().current.name, "Bronze");
}

#[tokio::test]
async fn the_background_scheduler_expires_due_lots_and_stops_at_shutdown() {
    // Given a member whose lots are past their expiry, and the scheduler running every 10 ms
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "A1", 40, h.now())).await;
    h.clock.advance(days(400));
    let scheduler = h
        .engine
        .spawn_scheduler(std::time::Duration::from_millis(10));
    // Then the expiry gets recorded without anyone asking
    let store = h.store.clone();
    let a = alice.clone();
    assert!(
        eventually(async || count_events(store.as_ref(), &a, "PointsExpired").await == 2).await,
        "the scheduler never expired the lots"
    );
    // And shutting the engine down ends the scheduler
    h.engine.shutdown().await;
    scheduler.await.unwrap();
}
