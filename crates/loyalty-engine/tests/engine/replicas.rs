//! Several servers on one store: the scheduler and the referral process manager run on the
//! server holding their lease, another takes over when it stops, and the engine's own
//! bookkeeping streams (checkpoints, leases) stay bounded.

use std::time::Duration;

use loyalty_engine::EngineOptions;
use loyalty_store::{Direction, EventStore, StreamFrom};

use crate::common::*;

/// Short leases, so that a takeover after a crash takes well under a second of real time.
fn replica_options() -> EngineOptions {
    EngineOptions {
        lease_ttl: Duration::from_millis(300),
        ..options()
    }
}

const TICK: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_servers_only_the_lease_holder_runs_the_scheduler_and_the_other_takes_over_when_it_stops()
 {
    // Given two servers on one store, both with a scheduler running every 20 ms
    let h = Harness::with(program(), replica_options()).await;
    let other = h.second_engine(replica_options()).await;
    let _a = h.engine.spawn_scheduler(TICK);
    let _b = other.spawn_scheduler(TICK);
    // When they have run for a while
    assert!(
        eventually(async || h.engine.scheduled_runs() + other.scheduled_runs() >= 10).await,
        "no scheduler ran"
    );
    // Then one of them did all the runs
    let (first, second) = if h.engine.scheduled_runs() > 0 {
        (&h.engine, &other)
    } else {
        (&other, &h.engine)
    };
    assert_eq!(second.scheduled_runs(), 0, "both servers ran the scheduler");
    // When the holder shuts down (releasing its lease)
    first.shutdown().await;
    // Then the other one takes over
    assert!(
        eventually(async || second.scheduled_runs() >= 3).await,
        "the second server never took over the scheduler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_referral_process_manager_moves_to_another_server_when_its_holder_stops() {
    // Given two servers; the first one delivered a referral bonus
    let h = Harness::with(program(), replica_options()).await;
    let other = h.second_engine(replica_options()).await;
    let (rita, _) = h.referral_delivered().await;
    // When the server that holds the process manager's lease stops, and another newcomer
    // qualifies through the other server
    h.engine.shutdown().await;
    let noah = member("noah");
    other
        .execute(enroll_referred(&noah, &rita, h.now()))
        .await
        .unwrap();
    other
        .execute(purchase(&noah, "N2", 20, h.now()))
        .await
        .unwrap();
    // Then the second bonus is delivered by the server still running, and each newcomer
    // brought exactly one bonus
    let store = h.store.clone();
    assert!(
        eventually(
            async || count_events(store.as_ref(), &rita, "ReferralBonusCredited").await >= 2
        )
        .await,
        "the second bonus was never delivered"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        count_events(store.as_ref(), &rita, "ReferralBonusCredited").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_stream_of_a_busy_process_manager_stays_bounded() {
    // Given a server that stores the referral checkpoint after every event
    let opts = EngineOptions {
        projection_checkpoint_every: 1,
        ..replica_options()
    };
    let h = Harness::with(program(), opts).await;
    // When members record a hundred events
    for i in 0..50 {
        let m = h.enroll(&format!("m{i}")).await;
        h.run(purchase(&m, &format!("T{i}"), 5, h.now())).await;
    }
    let store = h.store.clone();
    assert!(
        eventually(async || {
            store
                .stream_revision("checkpoint-referrals")
                .await
                .ok()
                .and_then(|r| match r {
                    loyalty_store::CurrentRevision::Current(r) => Some(r),
                    loyalty_store::CurrentRevision::NoStream => None,
                })
                .is_some_and(|r| r >= 64)
        })
        .await,
        "the checkpoint was not stored after each event"
    );
    // Then only the last few checkpoints are kept, and the last one still reads
    let kept = store
        .read_stream(
            "checkpoint-referrals",
            StreamFrom::Start,
            Direction::Forwards,
            1_000,
        )
        .await
        .unwrap();
    assert!(
        !kept.is_empty() && kept.len() <= 16,
        "{} checkpoints kept",
        kept.len()
    );
}
