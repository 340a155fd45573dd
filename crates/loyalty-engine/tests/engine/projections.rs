use std::time::Duration;

use loyalty_core::{Adjust, Command, Points};
use loyalty_engine::{EngineError, EngineOptions, HistoryCursor};
use loyalty_store::Position;
use rust_decimal::Decimal;

use crate::common::*;

/// Compares the engine's balance view with the core's state rebuilt from the stream.
async fn assert_views_match_core(h: &Harness, m: &loyalty_core::MemberId) {
    let state = h.core_state(m).await;
    let core = state.balance(h.now());
    let view = h.engine.balance(m).expect("member has a balance");
    assert_eq!(view.available, core.available, "available of {m}");
    assert_eq!(view.pending, core.pending, "pending of {m}");
    assert_eq!(view.debt, core.debt, "debt of {m}");
    assert_eq!(view.balance, core.balance, "balance of {m}");
    assert_eq!(view.lifetime_earned, core.lifetime.earned, "earned of {m}");
    assert_eq!(view.redeemed, core.lifetime.redeemed, "redeemed of {m}");
    assert_eq!(view.expired, core.lifetime.expired, "expired of {m}");
    assert_eq!(
        view.clawed_back, core.lifetime.clawed_back,
        "clawed back of {m}"
    );
    assert_eq!(view.adjusted, core.lifetime.adjusted, "adjusted of {m}");
    assert_eq!(
        view.next_expiry.map(|n| (n.points, n.at)),
        core.next_expiry.map(|n| (n.points, n.at)),
        "next expiry of {m}"
    );
    let tier = h.engine.tier(m).unwrap();
    assert_eq!(tier.current.name, state.tier().name, "tier of {m}");
    assert_eq!(
        tier.qualifying_value,
        state.qualifying_value(h.engine.program(), h.now()),
        "qualifying value of {m}"
    );
}

#[tokio::test]
async fn projections_match_the_state_decide_works_on() {
    // Given members with purchases, redemptions, refunds, adjustments and a debt
    let h = Harness::with(program_with_pending(14), options()).await;
    let alice = h.enroll("alice").await;
    let bob = h.enroll("bob").await;
    h.run(purchase(&alice, "A1", 120, h.now())).await;
    h.clock.advance(days(20));
    h.run(purchase(&alice, "A2", 30, h.now())).await;
    h.run(redeem(&alice, "AR1", 70, h.now())).await;
    h.run(refund(&alice, "ARF1", "A1", 120, h.now())).await; // leaves a debt
    h.run(purchase(&bob, "B1", 55, h.now())).await;
    h.run(Command::Adjust(Adjust {
        member_id: bob.clone(),
        adjustment_id: loyalty_core::AdjustmentId::parse("ADJ1").unwrap(),
        points: Points::new(-20),
        reason_code: loyalty_core::ReasonCode::parse("correction").unwrap(),
        note: "typo".into(),
        operator: loyalty_core::OperatorId::parse("op-1").unwrap(),
        occurred_at: h.now(),
    }))
    .await;
    h.settle().await;
    // Then every view equals the core's reading of the stream, now...
    for m in [&alice, &bob] {
        assert_views_match_core(&h, m).await;
    }
    assert!(h.engine.balance(&alice).unwrap().debt.is_positive());
    // ...and after the lots' expiry passed (no expiry recorded yet)
    h.clock.advance(days(400));
    for m in [&alice, &bob] {
        assert_views_match_core(&h, m).await;
    }
    assert!(h.engine.balance(&bob).unwrap().expired.is_positive());
}

#[tokio::test]
async fn points_in_the_return_window_are_pending_until_it_ends_without_any_event() {
    // Given a program with a 14-day pending period and a purchase of 50 euros
    let h = Harness::with(program_with_pending(14), options()).await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 50, h.now())).await;
    h.settle().await;
    // (the 10 welcome points are spendable at once: no return can take them back)
    let b = h.engine.balance(&m).unwrap();
    assert_eq!((b.available, b.pending), (Points::new(10), Points::new(50)));
    // When 15 days pass
    h.clock.advance(days(15));
    // Then the points are available
    let b = h.engine.balance(&m).unwrap();
    assert_eq!((b.available, b.pending), (Points::new(60), Points::ZERO));
}

#[tokio::test]
async fn a_read_with_the_writes_position_sees_the_write() {
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    for i in 0..20 {
        let result = h.run(purchase(&m, &format!("T{i}"), 10, h.now())).await;
        h.engine.wait_for(result.position).await.unwrap();
        let balance = h.engine.balance(&m).unwrap();
        assert_eq!(balance.available, Points::new(10 + 10 * (i + 1)));
        assert_eq!(balance.stream_revision, result.stream_revision);
    }
}

#[tokio::test]
async fn waiting_for_a_position_past_the_head_of_the_log_is_refused_at_once() {
    let opts = EngineOptions {
        read_wait_limit: Duration::from_secs(30),
        ..options()
    };
    let h = Harness::with(program(), opts).await;
    h.enroll("alice").await;
    let started = std::time::Instant::now();
    let err = h
        .engine
        .wait_for(Position::new(u64::MAX, u64::MAX))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::PositionAheadOfLog { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    // Refused without waiting out the 30 s limit.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn the_engine_reports_caught_up_once_the_history_is_read() {
    let h = Harness::new().await;
    h.enroll("alice").await;
    let other = h.second_engine(options()).await;
    assert!(
        eventually(async || other.is_caught_up()).await,
        "never caught up"
    );
    let head = loyalty_store::EventStore::head_position(h.store.as_ref())
        .await
        .unwrap();
    other.wait_for(head).await.unwrap();
    assert!(other.balance(&member("alice")).is_some());
}

#[tokio::test]
async fn history_pages_newest_first_and_ends_at_the_first_event() {
    // Given a member with 5 events
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    for i in 0..4 {
        h.run(purchase(&m, &format!("T{i}"), 10 + i, h.now())).await;
    }
    // When the history is read 2 lines at a time
    let mut revisions = Vec::new();
    let mut cursor: Option<HistoryCursor> = None;
    let mut pages = 0;
    loop {
        let page = h.engine.history(&m, cursor, 2).await.unwrap();
        pages += 1;
        revisions.extend(page.lines.iter().map(|l| l.revision));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    // Then it covers every event once, newest first, in 3 pages
    assert_eq!(revisions, vec![4, 3, 2, 1, 0]);
    assert_eq!(pages, 3);
    let first = h.engine.history(&m, None, 1).await.unwrap();
    assert_eq!(first.lines[0].points, Points::new(13));
    assert_eq!(first.lines[0].event_type, "PurchaseRecorded");
}

#[tokio::test]
async fn history_of_an_unknown_member_is_unknown_member() {
    let h = Harness::new().await;
    let err = h
        .engine
        .history(&member("ghost"), None, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownMember(_)));
    let err = h
        .engine
        .history(&member("ghost"), None, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::LimitExceeded { .. }));
}

#[tokio::test]
async fn program_totals_add_up_the_members_balances_and_value_the_liability() {
    // Given three members with different balances
    let h = Harness::new().await;
    let mut expected = 0i64;
    for (i, amount) in [25i64, 40, 75].into_iter().enumerate() {
        let m = h.enroll(&format!("m{i}")).await;
        h.run(purchase(&m, &format!("T{i}"), amount, h.now())).await;
        expected += 10 + amount;
    }
    h.settle().await;
    // Then the totals add up, and the liability is outstanding x 0.01
    let totals = h.engine.totals();
    assert_eq!(totals.members, 3);
    assert_eq!(totals.points_outstanding, Points::new(expected));
    assert_eq!(totals.liability, Decimal::new(expected, 2));
    assert_eq!(totals.breakage_points, Points::ZERO);
    // And after the lots expire, they become breakage
    h.clock.advance(days(400));
    let later = h.engine.totals();
    assert_eq!(later.points_outstanding, Points::ZERO);
    assert_eq!(later.breakage_points, Points::new(expected));
}

#[tokio::test]
async fn redeemable_rewards_follow_the_balance_the_tier_and_the_limits() {
    // Given a Bronze member with 40 points
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 30, h.now())).await;
    h.settle().await;
    let ids = |h: &Harness| {
        h.engine
            .redeemable_rewards(&m)
            .into_iter()
            .map(|r| r.reward_id.to_string())
            .collect::<Vec<_>>()
    };
    // Then only the coffee is redeemable (the mug needs Silver)
    assert_eq!(ids(&h), vec!["coffee"]);
    // When she reaches Silver with 200 more points
    h.run(purchase(&m, "T2", 200, h.now())).await;
    // And redeems the coffee twice (its limit)
    for r in ["R1", "R2"] {
        h.run(Command::Redeem(loyalty_core::Redeem {
            member_id: m.clone(),
            redemption_id: loyalty_core::RedemptionId::parse(r).unwrap(),
            occurred_at: h.now(),
            target: loyalty_core::RedeemTarget::Reward(
                loyalty_core::RewardId::parse("coffee").unwrap(),
            ),
        }))
        .await;
    }
    h.settle().await;
    // Then the mug is offered and the coffee no longer
    assert_eq!(h.engine.tier(&m).unwrap().current.name, "Silver");
    assert_eq!(ids(&h), vec!["silver-mug"]);
}

#[tokio::test]
async fn the_profile_combines_status_balance_and_tier() {
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.settle().await;
    let profile = h.engine.member_profile(&m).unwrap();
    assert_eq!(profile.enrolled_at, Some(t0()));
    assert_eq!(profile.balance.available, Points::new(10));
    assert_eq!(profile.tier.current.name, "Bronze");
    let next = profile.tier.next.unwrap();
    assert_eq!(
        (next.name.as_str(), next.remaining),
        ("Silver", Decimal::from(100))
    );
    assert!(profile.tier.next_review_at.is_some_and(|t| t > t0()));
    assert!(h.engine.member_profile(&member("ghost")).is_none());
}

fn with_snapshots(dir: &std::path::Path) -> loyalty_engine::EngineOptions {
    loyalty_engine::EngineOptions {
        snapshot_dir: Some(dir.to_path_buf()),
        ..options()
    }
}

#[tokio::test]
async fn a_restart_reads_the_read_models_back_from_their_snapshot_and_replays_only_what_followed() {
    // Given a server with twenty members, stopped (it writes a snapshot as it stops)
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with(program(), with_snapshots(dir.path())).await;
    let mut members = Vec::new();
    for i in 0..20 {
        let m = h.enroll(&format!("m{i}")).await;
        h.run(purchase(&m, &format!("T{i}"), 10 + i, h.now())).await;
        members.push(m);
    }
    h.settle().await;
    let at_stop = loyalty_store::EventStore::head_position(h.store.as_ref())
        .await
        .unwrap();
    h.engine.shutdown().await;
    // And more business after it, written by another server
    let other = h.second_engine(options()).await;
    other
        .execute(redeem(&members[3], "R1", 5, h.now()))
        .await
        .unwrap();
    other.shutdown().await;
    // When the server starts again
    let restarted = h.second_engine(with_snapshots(dir.path())).await;
    let head = loyalty_store::EventStore::head_position(h.store.as_ref())
        .await
        .unwrap();
    restarted.wait_for(head).await.unwrap();
    // Then its read models came from the snapshot, the redemption after it was applied once,
    // and they equal a replay of the log
    // (at or a little past the business: the lease released at shutdown may be in it)
    assert!(
        restarted.restored_snapshot().is_some_and(|p| p >= at_stop),
        "{:?}",
        restarted.restored_snapshot()
    );
    let balance = restarted.balance(&members[3]).unwrap();
    assert_eq!(balance.redeemed, Points::new(5));
    assert_eq!(balance.available, Points::new(10 + 13 - 5));
    assert!(restarted.verify().await.unwrap().is_clean());
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_snapshot_that_does_not_read_back_is_ignored_and_the_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readmodel-latest.snap"), b"not a snapshot").unwrap();
    let h = Harness::with(program(), with_snapshots(dir.path())).await;
    let m = h.enroll("alice").await;
    h.settle().await;
    assert_eq!(h.engine.restored_snapshot(), None);
    assert_eq!(h.engine.balance(&m).unwrap().available, Points::new(10));
    h.engine.shutdown().await;
    // The next start reads the snapshot its shutdown wrote.
    let restarted = h.second_engine(with_snapshots(dir.path())).await;
    assert!(restarted.restored_snapshot().is_some());
    assert_eq!(restarted.balance(&m).unwrap().available, Points::new(10));
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_liability_as_of_a_past_day_starts_from_that_days_archived_snapshot() {
    // Given a server that keeps snapshots, with business over five days and a snapshot at the
    // end of each (one a day is archived)
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::with(program(), with_snapshots(dir.path())).await;
    let mut instants = Vec::new();
    for day in 0..5 {
        for i in 0..4 {
            let m = h.enroll(&format!("d{day}m{i}")).await;
            h.run(purchase(&m, &format!("T{day}-{i}"), 20 + i, h.now()))
                .await;
        }
        // The engine's own bookkeeping (a lease renewed) comes after the day's business.
        loyalty_store::EventStore::append(
            h.store.as_ref(),
            "lease-test",
            loyalty_store::ExpectedRevision::Any,
            vec![loyalty_store::EventData {
                id: uuid::Uuid::new_v4(),
                event_type: "LeaseHeld".to_owned(),
                schema_version: 1,
                data: loyalty_store::Bytes::from_static(b"{}"),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
        h.settle().await;
        h.engine.snapshot_read_models().await;
        instants.push(h.now() + chrono::Duration::hours(12));
        h.clock.advance(days(1));
    }
    let archived = std::fs::read_dir(dir.path().join("archive"))
        .unwrap()
        .count();
    assert_eq!(archived, 5);
    // When an auditor asks for the liability as of the middle of each day
    let replaying = h.second_engine(options()).await;
    let head = loyalty_store::EventStore::head_position(h.store.as_ref())
        .await
        .unwrap();
    replaying.wait_for(head).await.unwrap();
    for (day, at) in instants.iter().enumerate() {
        let from_snapshot = h.engine.liability_as_of(*at).await.unwrap();
        let from_the_start = replaying.liability_as_of(*at).await.unwrap();
        // Then the answer is the one a replay of the whole log gives, and from the second day
        // on it replays only the events after the previous day's snapshot
        assert_eq!(from_snapshot.totals, from_the_start.totals, "day {day}");
        assert_eq!(from_snapshot.totals.members, 4 * (day as u64 + 1));
        if day > 0 {
            assert!(
                from_snapshot.events_replayed < from_the_start.events_replayed,
                "day {day}: {} events replayed from the snapshot, {} from the start",
                from_snapshot.events_replayed,
                from_the_start.events_replayed
            );
        }
    }
}

#[tokio::test]
async fn the_projection_takes_the_engines_own_appends_decoded_and_agrees_with_the_log() {
    // Given a server that appends purchases, redemptions and refunds (on this test's single
    // thread, the engine always hands its events over before the projection runs)
    let h = Harness::with(program_with_pending(14), options()).await;
    let alice = h.enroll("alice").await;
    for i in 0..20 {
        h.run(purchase(&alice, &format!("P{i}"), 40 + i, h.now()))
            .await;
    }
    h.clock.advance(days(20));
    h.run(redeem(&alice, "R1", 100, h.now())).await;
    h.run(refund(&alice, "RF1", "P3", 43, h.now())).await;
    h.settle().await;
    // Then the projection took every member event from the engine instead of decoding it...
    assert!(
        h.engine.projection_handoffs() >= 23,
        "{} events handed over",
        h.engine.projection_handoffs()
    );
    // ...and the read models equal both the core's state and a rebuild from the stored log.
    assert_views_match_core(&h, &alice).await;
    let verified = h.engine.verify().await.unwrap();
    assert!(
        verified.differences.is_empty(),
        "{:?}",
        verified.differences
    );
    assert_eq!(verified.members_checked, 1);
}
