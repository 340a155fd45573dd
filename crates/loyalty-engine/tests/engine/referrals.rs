use loyalty_core::Points;
use loyalty_engine::EngineOptions;
use loyalty_store::EventStore;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_bonus_is_delivered_exactly_once_even_when_the_process_manager_restarts() {
    // Given a referrer and a newcomer they referred, on a server that checkpoints every event
    let opts = EngineOptions {
        projection_checkpoint_every: 1,
        ..options()
    };
    let h = Harness::with(program(), opts.clone()).await;
    // When the newcomer's first purchase qualifies the referral, then the referrer gets the bonus
    let (rita, _) = h.referral_delivered().await;
    let store = h.store.clone();
    let r = rita.clone();
    // When a second server starts from the beginning of the log (no checkpoint is shared with
    // it: it handles the same event again), and the first server restarts from its checkpoint
    let other = h.second_engine(options()).await;
    h.engine.shutdown().await;
    let checkpoints = h
        .store
        .read_stream(
            "checkpoint-referrals",
            loyalty_store::StreamFrom::End,
            loyalty_store::Direction::Backwards,
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        checkpoints.len(),
        1,
        "the first server stored its checkpoint"
    );
    let restarted = h.second_engine(opts).await;
    // And another newcomer qualifies afterwards
    let second = member("noah");
    restarted
        .execute(enroll_referred(&second, &rita, h.now()))
        .await
        .unwrap();
    restarted
        .execute(purchase(&second, "N2", 20, h.now()))
        .await
        .unwrap();
    assert!(
        eventually(async || count_events(store.as_ref(), &r, "ReferralBonusCredited").await >= 2)
            .await,
        "second bonus never delivered"
    );
    // Then each newcomer brought exactly one bonus, whoever handled the event
    let head = loyalty_store::EventStore::head_position(h.store.as_ref())
        .await
        .unwrap();
    other.wait_for(head).await.unwrap();
    restarted.wait_for(head).await.unwrap();
    assert_eq!(
        count_events(h.store.as_ref(), &rita, "ReferralBonusCredited").await,
        2
    );
    let state = h.core_state(&rita).await;
    assert_eq!(state.available(h.now()), Points::new(10 + 200 + 200));
    assert_eq!(
        restarted.balance(&rita).unwrap().available,
        Points::new(410)
    );
    other.shutdown().await;
    restarted.shutdown().await;
}

#[tokio::test]
async fn a_purchase_below_the_referral_minimum_brings_no_bonus() {
    let h = Harness::new().await;
    let rita = h.enroll("rita").await;
    let nina = member("nina");
    h.run(enroll_referred(&nina, &rita, h.now())).await;
    h.run(purchase(&nina, "N1", 5, h.now())).await;
    h.settle().await;
    // The process manager has seen everything the projections have (same log), give it a moment
    // to act on nothing, then check the log itself.
    tokio::task::yield_now().await;
    assert_eq!(
        count_events(h.store.as_ref(), &nina, "ReferralQualified").await,
        0
    );
    assert_eq!(
        count_events(h.store.as_ref(), &rita, "ReferralBonusCredited").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_a_newer_release_wrote_stops_the_process_manager_instead_of_being_skipped() {
    // Given rita, and a qualified referral of zoe's written by a newer release (a schema
    // version this build does not read)
    let h = Harness::new().await;
    let rita = h.enroll("rita").await;
    h.store
        .append(
            "member-zoe",
            loyalty_store::ExpectedRevision::Any,
            vec![loyalty_store::EventData {
                id: loyalty_store::Uuid::new_v4(),
                event_type: "ReferralQualified".into(),
                schema_version: loyalty_core::schema::CURRENT_SCHEMA_VERSION + 1,
                data: loyalty_store::Bytes::from_static(br#"{"referrer":"rita"}"#),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    // When nina's referral qualifies after it
    let nina = member("nina");
    h.run(enroll_referred(&nina, &rita, h.now())).await;
    h.run(purchase(&nina, "N1", 20, h.now())).await;
    // Then no bonus is credited past the event this server cannot read: an upgraded server
    // handles both, in order (a skip would have credited nina's within milliseconds)
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        count_events(h.store.as_ref(), &rita, "ReferralBonusCredited").await,
        0
    );
}
