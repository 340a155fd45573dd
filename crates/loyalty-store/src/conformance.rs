//! The conformance suite: the contract of [`EventStore`], checked the same way on every backend.
//!
//! A backend's test file provides a [`StoreFactory`] and expands
//! [`conformance_tests!`](crate::conformance_tests) to get one `#[tokio::test]` per case, so
//! that a failure names its case:
//!
//! ```text
//! loyalty_store::conformance_tests!(MyFactory::new());
//! ```
//!
//! Every case uses stream names with a fresh random prefix and only looks at its own events in
//! `$all`, so cases can run concurrently against one shared server.
//!
//! The key vault's contract ([`crate::vault`]) has cases of its own, for the stores that keep
//! a vault: [`vault_conformance_tests!`](crate::vault_conformance_tests) expands them for a
//! [`StoreFactory`] (each case on the vault of a store it creates), and [`run_vault`] runs them
//! on any one [`KeyVault`] (a vault that is not a store's, such as a key file). They use fresh
//! member ids, so they too can share one vault.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use crate::chain::{self, ChainLink, GENESIS, VerifyOptions};
use crate::vault::{KEY_BYTES, KeyVault, MemberKey};
use crate::{
    AppendResult, Bytes, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision,
    Position, RecordedEvent, StoreError, StreamAppend, StreamFilter, StreamFrom,
    SubscriptionMessage, Uuid,
};

/// Makes stores for the suite.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    type Store: EventStore;

    /// A store to run one case against. It may be shared with other cases (a server).
    async fn create(&self) -> Self::Store;

    /// Closes `store` and opens the same store again: the same file for SQLite, the same shared
    /// state for the in-memory store, a new connection to the same server for EventStoreDB.
    async fn reopen(&self, store: Self::Store) -> Self::Store;
}

/// A guard against a broken backend hanging the suite; never a speed assertion.
const LIVENESS: Duration = Duration::from_secs(60);

/// A small, realistic event (about 300 bytes of JSON), also used by benchmarks.
pub fn sample_event(n: u64) -> EventData {
    let data = format!(
        concat!(
            r#"{{"member_id":"m-{n:08}","points":"{n}","reason":"purchase","#,
            r#""order_ref":"ord-{n:012}","store":"store-0042","currency":"EUR","#,
            r#""amount":"42.50","rule":"base-earn-v3","occurred_at":"2026-11-23T15:00:00Z"}}"#
        ),
        n = n
    );
    let metadata = format!(
        r#"{{"correlation_id":"{}","causation_id":null,"actor":"pos-17"}}"#,
        Uuid::new_v4()
    );
    EventData {
        id: Uuid::new_v4(),
        event_type: "PointsEarned".to_owned(),
        schema_version: 1,
        data: Bytes::from(data),
        metadata: Bytes::from(metadata),
    }
}

fn events(count: u64) -> Vec<EventData> {
    (0..count).map(sample_event).collect()
}

/// A fresh stream-name prefix, unique to one case run.
fn prefix() -> String {
    format!("c{}-", Uuid::new_v4().simple())
}

fn conflict(err: &StoreError) -> Option<(ExpectedRevision, CurrentRevision)> {
    match err {
        StoreError::WrongExpectedRevision {
            expected, actual, ..
        } => Some((*expected, *actual)),
        _ => None,
    }
}

async fn read_whole_stream<S: EventStore + ?Sized>(store: &S, stream: &str) -> Vec<RecordedEvent> {
    let page = store.limits().max_page_size;
    let mut all = Vec::new();
    loop {
        let next = all.len() as u64;
        let batch = store
            .read_stream(
                stream,
                StreamFrom::Revision(next),
                Direction::Forwards,
                page,
            )
            .await
            .expect("read stream");
        let short = batch.len() < page;
        all.extend(batch);
        if short {
            return all;
        }
    }
}

/// Every event of `$all` after `after` whose stream starts with `prefix`, read in pages of
/// `page` events.
async fn read_all_with_prefix<S: EventStore + ?Sized>(
    store: &S,
    after: Position,
    prefix: &str,
    page: usize,
) -> Vec<RecordedEvent> {
    let mut mine = Vec::new();
    let mut last = after;
    loop {
        let batch = store.read_all(last, page).await.expect("read $all");
        if batch.is_empty() {
            return mine;
        }
        for e in batch {
            assert!(e.position > last, "$all positions must strictly grow");
            last = e.position;
            if e.stream.starts_with(prefix) {
                mine.push(e);
            }
        }
    }
}

pub async fn append_expecting_no_stream_creates_the_stream_at_revision_zero<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::NoStream
    );
    let first = store
        .append(&stream, ExpectedRevision::NoStream, events(1))
        .await
        .expect("first append");
    assert_eq!(first.next_expected_revision, 0);
    let second = store
        .append(&stream, ExpectedRevision::Exact(0), events(3))
        .await
        .expect("second append");
    assert_eq!(second.next_expected_revision, 3);
    assert!(second.position > first.position);
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::Current(3)
    );
}

pub async fn append_expecting_no_stream_conflicts_once_the_stream_exists<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    store
        .append(&stream, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    let err = store
        .append(&stream, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&err),
        Some((ExpectedRevision::NoStream, CurrentRevision::Current(1))),
        "{err}"
    );
    assert_eq!(read_whole_stream(&store, &stream).await.len(), 2);
}

pub async fn append_expecting_an_exact_revision_succeeds_only_on_that_revision<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let err = store
        .append(&stream, ExpectedRevision::Exact(0), events(1))
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&err),
        Some((ExpectedRevision::Exact(0), CurrentRevision::NoStream)),
        "{err}"
    );
    store
        .append(&stream, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    for stale in [0, 2, 7] {
        let err = store
            .append(&stream, ExpectedRevision::Exact(stale), events(1))
            .await
            .unwrap_err();
        assert_eq!(
            conflict(&err),
            Some((ExpectedRevision::Exact(stale), CurrentRevision::Current(1))),
            "{err}"
        );
    }
    let ok = store
        .append(&stream, ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    assert_eq!(ok.next_expected_revision, 2);
    assert_eq!(read_whole_stream(&store, &stream).await.len(), 3);
}

pub async fn append_expecting_stream_exists_conflicts_on_a_missing_stream<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let err = store
        .append(&stream, ExpectedRevision::StreamExists, events(1))
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&err),
        Some((ExpectedRevision::StreamExists, CurrentRevision::NoStream)),
        "{err}"
    );
    assert!(read_whole_stream(&store, &stream).await.is_empty());
    store
        .append(&stream, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let ok = store
        .append(&stream, ExpectedRevision::StreamExists, events(1))
        .await
        .unwrap();
    assert_eq!(ok.next_expected_revision, 1);
}

pub async fn append_expecting_any_revision_always_succeeds<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let first = store
        .append(&stream, ExpectedRevision::Any, events(1))
        .await
        .unwrap();
    assert_eq!(first.next_expected_revision, 0);
    let second = store
        .append(&stream, ExpectedRevision::Any, events(2))
        .await
        .unwrap();
    assert_eq!(second.next_expected_revision, 2);
}

pub async fn concurrent_appenders_to_one_stream_get_exactly_one_winner_per_revision<
    F: StoreFactory,
>(
    factory: &F,
) {
    const APPENDERS: usize = 8;
    const ROUNDS: u64 = 5;
    let store = Arc::new(factory.create().await);
    let stream = format!("{}member-1", prefix());

    // Given appenders racing with the same expected revision, round after round...
    for round in 0..ROUNDS {
        let expected = match round {
            0 => ExpectedRevision::NoStream,
            r => ExpectedRevision::Exact(r - 1),
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(APPENDERS));
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|_| {
                let (store, stream, barrier) =
                    (Arc::clone(&store), stream.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.append(&stream, expected, events(1)).await
                })
            })
            .collect();
        let mut wins = 0;
        for task in futures::future::join_all(tasks).await {
            match task.expect("appender task") {
                Ok(result) => {
                    wins += 1;
                    assert_eq!(result.next_expected_revision, round);
                }
                Err(err) => assert_eq!(
                    conflict(&err),
                    Some((expected, CurrentRevision::Current(round))),
                    "{err}"
                ),
            }
        }
        // ...then exactly one wins each round.
        assert_eq!(wins, 1, "round {round}");
    }

    // Given appenders that retry on conflict, every event lands exactly once, in some order.
    let contenders: Vec<_> = (0..4)
        .map(|_| {
            let (store, stream) = (Arc::clone(&store), stream.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for n in 0..10 {
                    let event = sample_event(n);
                    mine.push(event.id);
                    loop {
                        let expected = match store.stream_revision(&stream).await.unwrap() {
                            CurrentRevision::NoStream => ExpectedRevision::NoStream,
                            CurrentRevision::Current(r) => ExpectedRevision::Exact(r),
                        };
                        match store.append(&stream, expected, vec![event.clone()]).await {
                            Ok(_) => break,
                            Err(err) if conflict(&err).is_some() => continue,
                            Err(err) => panic!("append failed: {err}"),
                        }
                    }
                }
                mine
            })
        })
        .collect();
    let mut expected_ids = HashSet::new();
    for task in futures::future::join_all(contenders).await {
        expected_ids.extend(task.expect("contender task"));
    }
    let stored = read_whole_stream(&*store, &stream).await;
    assert_eq!(stored.len() as u64, ROUNDS + 40);
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.revision, i as u64);
    }
    let stored_ids: HashSet<Uuid> = stored.iter().skip(ROUNDS as usize).map(|e| e.id).collect();
    assert_eq!(stored_ids, expected_ids);
}

pub async fn retried_append_with_the_same_event_ids_returns_the_original_result<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let first_batch = events(2);
    let original = store
        .append(&stream, ExpectedRevision::NoStream, first_batch.clone())
        .await
        .unwrap();
    let later_batch = events(1);
    let later = store
        .append(&stream, ExpectedRevision::Exact(1), later_batch.clone())
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();

    // When the first append is retried (its expected revision is stale by now)...
    let retry = store
        .append(&stream, ExpectedRevision::NoStream, first_batch.clone())
        .await
        .expect("a retry is not a conflict");
    // ...it gets the original result, and nothing new is stored.
    assert_eq!(retry, original);
    let retry_later = store
        .append(&stream, ExpectedRevision::Exact(1), later_batch)
        .await
        .unwrap();
    assert_eq!(retry_later, later);
    let retry_any = store
        .append(&stream, ExpectedRevision::Any, first_batch.clone())
        .await
        .unwrap();
    assert_eq!(retry_any, original);
    let stored = read_whole_stream(&store, &stream).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(store.head_position().await.unwrap(), head);

    // A retry of a prefix of an append gets the result for its own last event.
    let prefix_retry = store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            first_batch[..1].to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(
        prefix_retry,
        AppendResult {
            next_expected_revision: 0,
            position: stored[0].position
        }
    );
}

pub async fn append_overlapping_stored_event_ids_partially_is_refused<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let batch = events(2);
    store
        .append(&stream, ExpectedRevision::NoStream, batch.clone())
        .await
        .unwrap();

    let overlapping = vec![batch[1].clone(), sample_event(9)];
    let err = store
        .append(&stream, ExpectedRevision::Any, overlapping)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PartialDuplicate { .. }), "{err}");
    let reordered = vec![batch[1].clone(), batch[0].clone()];
    let err = store
        .append(&stream, ExpectedRevision::Any, reordered)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PartialDuplicate { .. }), "{err}");
    assert_eq!(read_whole_stream(&store, &stream).await.len(), 2);
}

pub async fn events_round_trip_byte_for_byte<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let mut odd = sample_event(1);
    odd.event_type = "TierChanged".to_owned();
    odd.schema_version = 7;
    odd.data = Bytes::from_static("{\"name\":\"Zo\u{eb} \u{1f600}\",\"n\":  1 }".as_bytes());
    odd.metadata = Bytes::from_static(b"{}");
    let sent = vec![sample_event(0), odd];
    let result = store
        .append(&stream, ExpectedRevision::NoStream, sent.clone())
        .await
        .unwrap();
    let stored = read_whole_stream(&store, &stream).await;
    assert_eq!(stored.len(), 2);
    for (i, (got, want)) in stored.iter().zip(&sent).enumerate() {
        assert_eq!(got.stream, stream);
        assert_eq!(got.revision, i as u64);
        assert_eq!(got.id, want.id);
        assert_eq!(got.event_type, want.event_type);
        assert_eq!(got.schema_version, want.schema_version);
        assert_eq!(got.data, want.data);
        assert_eq!(got.metadata, want.metadata);
    }
    assert_eq!(stored[1].position, result.position);
}

pub async fn stream_reads_page_forwards_and_backwards_in_revision_order<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    for chunk in 0..5 {
        let expected = match chunk {
            0 => ExpectedRevision::NoStream,
            c => ExpectedRevision::Exact(c * 5 - 1),
        };
        store.append(&stream, expected, events(5)).await.unwrap();
    }
    let revisions =
        |events: Vec<RecordedEvent>| events.iter().map(|e| e.revision).collect::<Vec<_>>();

    // Forwards in pages of 7: 0..7, 7..14, 14..21, 21..25, then nothing.
    let mut next = 0;
    let mut pages = Vec::new();
    loop {
        let page = store
            .read_stream(&stream, StreamFrom::Revision(next), Direction::Forwards, 7)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        next = page.last().unwrap().revision + 1;
        pages.push(revisions(page));
    }
    assert_eq!(pages.len(), 4);
    assert_eq!(pages.concat(), (0..25).collect::<Vec<_>>());
    assert!(pages[..3].iter().all(|p| p.len() == 7));

    let from_start = store
        .read_stream(&stream, StreamFrom::Start, Direction::Forwards, 3)
        .await
        .unwrap();
    assert_eq!(revisions(from_start), vec![0, 1, 2]);
    let forwards_from_end = store
        .read_stream(&stream, StreamFrom::End, Direction::Forwards, 3)
        .await
        .unwrap();
    assert!(forwards_from_end.is_empty());

    let from_end = store
        .read_stream(&stream, StreamFrom::End, Direction::Backwards, 4)
        .await
        .unwrap();
    assert_eq!(revisions(from_end), vec![24, 23, 22, 21]);
    let from_middle = store
        .read_stream(&stream, StreamFrom::Revision(10), Direction::Backwards, 4)
        .await
        .unwrap();
    assert_eq!(revisions(from_middle), vec![10, 9, 8, 7]);
    let near_start = store
        .read_stream(&stream, StreamFrom::Revision(2), Direction::Backwards, 10)
        .await
        .unwrap();
    assert_eq!(revisions(near_start), vec![2, 1, 0]);
    let past_end = store
        .read_stream(&stream, StreamFrom::Revision(99), Direction::Forwards, 10)
        .await
        .unwrap();
    assert!(past_end.is_empty());
}

pub async fn a_missing_stream_reads_as_empty<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}nobody", prefix());
    for (from, direction) in [
        (StreamFrom::Start, Direction::Forwards),
        (StreamFrom::End, Direction::Backwards),
        (StreamFrom::Revision(3), Direction::Forwards),
    ] {
        let read = store
            .read_stream(&stream, from, direction, 10)
            .await
            .unwrap();
        assert!(read.is_empty());
    }
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::NoStream
    );
}

pub async fn all_reads_page_forwards_in_append_order_with_strictly_growing_positions<
    F: StoreFactory,
>(
    factory: &F,
) {
    let store = factory.create().await;
    let prefix = prefix();
    let before = store.head_position().await.unwrap();
    let mut appended = Vec::new();
    let mut results = Vec::new();
    for i in 0..12u64 {
        let stream = format!("{prefix}member-{}", i % 3);
        let batch = events(1 + i % 3);
        appended.extend(batch.iter().map(|e| (stream.clone(), e.id)));
        results.push(
            store
                .append(&stream, ExpectedRevision::Any, batch)
                .await
                .unwrap(),
        );
    }
    // Positions of appends grow, and each is the position of the append's last event.
    assert!(results.windows(2).all(|w| w[0].position < w[1].position));
    assert!(results[0].position > before);

    for page in [1, 5, 1000] {
        let mine = read_all_with_prefix(&store, before, &prefix, page).await;
        let got: Vec<(String, Uuid)> = mine.iter().map(|e| (e.stream.clone(), e.id)).collect();
        assert_eq!(got, appended, "page size {page}");
        let positions: HashSet<Position> = mine.iter().map(|e| e.position).collect();
        for result in &results {
            assert!(positions.contains(&result.position));
        }
    }
    // Reading after an event's position starts strictly after it.
    let mine = read_all_with_prefix(&store, before, &prefix, 100).await;
    let after_third = read_all_with_prefix(&store, mine[2].position, &prefix, 100).await;
    assert_eq!(after_third, mine[3..].to_vec());
}

pub async fn stream_revision_and_head_position_follow_appends<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let before = store.head_position().await.unwrap();
    let result = store
        .append(&stream, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();
    assert!(head >= result.position && result.position > before);
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::Current(2)
    );
    // Several at once: the same answers, in order, missing streams included.
    let missing = format!("{}member-none", prefix());
    assert_eq!(
        store
            .stream_revisions(&[missing.clone(), stream.clone(), missing])
            .await
            .unwrap(),
        vec![
            CurrentRevision::NoStream,
            CurrentRevision::Current(2),
            CurrentRevision::NoStream
        ]
    );
}

/// Receives the next message, failing the case if the subscription hangs or errs.
async fn next_message(sub: &mut crate::Subscription) -> Option<SubscriptionMessage> {
    tokio::time::timeout(LIVENESS, sub.next())
        .await
        .expect("subscription hung")
        .map(|m| m.expect("subscription error"))
}

pub async fn subscription_delivers_history_then_live_events_without_gap_or_duplicate<
    F: StoreFactory,
>(
    factory: &F,
) {
    let store = Arc::new(factory.create().await);
    let prefix = prefix();
    let before = store.head_position().await.unwrap();
    let mut total = 0usize;
    for i in 0..10u64 {
        let stream = format!("{prefix}member-{}", i % 3);
        store
            .append(&stream, ExpectedRevision::Any, events(3))
            .await
            .unwrap();
        total += 3;
    }
    let mut sub = store
        .subscribe_all(before, StreamFilter::prefixes([prefix.clone()]))
        .await
        .unwrap();

    // Live appends race with the history read.
    let live = {
        let (store, prefix) = (Arc::clone(&store), prefix.clone());
        tokio::spawn(async move {
            for i in 0..60u64 {
                let stream = format!("{prefix}member-{}", i % 4);
                store
                    .append(&stream, ExpectedRevision::Any, events(1 + i % 2))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    total += (0..60u64).map(|i| 1 + i % 2).sum::<u64>() as usize;

    let mut delivered = Vec::new();
    let mut caught_up_at = Vec::new();
    while delivered.len() < total || caught_up_at.is_empty() {
        match next_message(&mut sub)
            .await
            .expect("subscription ended early")
        {
            SubscriptionMessage::Event(e) => delivered.push(e),
            SubscriptionMessage::CaughtUp { position } => {
                caught_up_at.push((delivered.len(), position))
            }
        }
    }
    live.await.unwrap();
    sub.stop();
    while let Some(message) = next_message(&mut sub).await {
        match message {
            SubscriptionMessage::Event(e) => delivered.push(e),
            SubscriptionMessage::CaughtUp { position } => {
                caught_up_at.push((delivered.len(), position))
            }
        }
    }

    let truth = read_all_with_prefix(&*store, before, &prefix, 100).await;
    assert_eq!(truth.len(), total);
    assert_eq!(delivered, truth, "no gap, no duplicate, in $all order");
    assert_eq!(caught_up_at.len(), 1, "CaughtUp is sent once");
    let (index, position) = caught_up_at[0];
    assert!(delivered[..index].iter().all(|e| e.position <= position));
    assert!(delivered[index..].iter().all(|e| e.position > position));
}

pub async fn subscription_from_a_position_starts_strictly_after_it<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let prefix = prefix();
    let stream = format!("{prefix}member-1");
    let first = store
        .append(&stream, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    store
        .append(&stream, ExpectedRevision::Exact(1), events(2))
        .await
        .unwrap();
    let mut sub = store
        .subscribe_all(first.position, StreamFilter::prefixes([prefix]))
        .await
        .unwrap();
    let mut revisions = Vec::new();
    while let SubscriptionMessage::Event(e) = next_message(&mut sub).await.expect("ended early") {
        revisions.push(e.revision);
    }
    assert_eq!(revisions, vec![2, 3]);
}

pub async fn subscription_filter_delivers_only_matching_stream_prefixes<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let prefix = prefix();
    let before = store.head_position().await.unwrap();
    let (wanted, other) = (format!("{prefix}member-"), format!("{prefix}audit-"));
    let mut sub = store
        .subscribe_all(before, StreamFilter::prefixes([wanted.clone()]))
        .await
        .unwrap();
    for i in 0..6 {
        let stream = if i % 2 == 0 {
            format!("{wanted}{i}")
        } else {
            format!("{other}{i}")
        };
        store
            .append(&stream, ExpectedRevision::NoStream, events(1))
            .await
            .unwrap();
    }
    let mut streams = Vec::new();
    while streams.len() < 3 {
        if let SubscriptionMessage::Event(e) = next_message(&mut sub).await.expect("ended early") {
            assert!(e.stream.starts_with(&prefix), "{}", e.stream);
            streams.push(e.stream);
        }
    }
    assert_eq!(
        streams,
        vec![
            format!("{wanted}0"),
            format!("{wanted}2"),
            format!("{wanted}4")
        ]
    );
}

pub async fn stopped_subscription_ends<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let prefix = prefix();
    let stream = format!("{prefix}member-1");
    let before = store.head_position().await.unwrap();
    let mut sub = store
        .subscribe_all(before, StreamFilter::prefixes([prefix]))
        .await
        .unwrap();
    assert!(matches!(
        next_message(&mut sub).await,
        Some(SubscriptionMessage::CaughtUp { .. })
    ));
    sub.stop();
    store
        .append(&stream, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    // Whatever was already buffered drains, then the subscription ends.
    let mut drained = 0;
    while next_message(&mut sub).await.is_some() {
        drained += 1;
        assert!(drained <= 1, "a stopped subscription keeps delivering");
    }
}

pub async fn append_with_too_many_events_is_refused<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let limit = store.limits().max_append_events;
    let err = store
        .append(&stream, ExpectedRevision::Any, events(limit as u64 + 1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TooManyEvents {
            count: limit + 1,
            limit
        }
    );
    assert!(read_whole_stream(&store, &stream).await.is_empty());
}

pub async fn append_with_too_many_bytes_is_refused<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let limit = store.limits().max_append_bytes;
    let mut big = sample_event(0);
    let padding = "x".repeat(limit);
    big.data = Bytes::from(format!(r#"{{"padding":"{padding}"}}"#));
    let err = store
        .append(&stream, ExpectedRevision::Any, vec![big])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AppendTooLarge { bytes, limit: l } if bytes > limit && l == limit),
        "{err}"
    );
    assert!(read_whole_stream(&store, &stream).await.is_empty());
}

pub async fn read_with_a_page_too_large_or_empty_is_refused<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let limit = store.limits().max_page_size;
    for requested in [0, limit + 1] {
        let expected = StoreError::PageTooLarge { requested, limit };
        let err = store
            .read_stream(&stream, StreamFrom::Start, Direction::Forwards, requested)
            .await
            .unwrap_err();
        assert_eq!(err, expected);
        let err = store
            .read_all(Position::START, requested)
            .await
            .unwrap_err();
        assert_eq!(err, expected);
    }
}

pub async fn bad_stream_names_are_refused<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let too_long = "m".repeat(store.limits().max_stream_name_bytes + 1);
    for name in ["", "$all", "$system-stream", too_long.as_str()] {
        let err = store
            .append(name, ExpectedRevision::Any, events(1))
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::InvalidStreamName(name.to_owned()));
        let err = store
            .read_stream(name, StreamFrom::Start, Direction::Forwards, 1)
            .await
            .unwrap_err();
        assert_eq!(err, StoreError::InvalidStreamName(name.to_owned()));
    }
}

pub async fn empty_append_and_repeated_ids_in_one_append_are_refused<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}member-1", prefix());
    let err = store
        .append(&stream, ExpectedRevision::Any, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::EmptyAppend);
    let event = sample_event(0);
    let err = store
        .append(
            &stream,
            ExpectedRevision::Any,
            vec![event.clone(), event.clone()],
        )
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::DuplicateEventId(event.id));
    assert!(read_whole_stream(&store, &stream).await.is_empty());
}

pub async fn reopened_store_keeps_every_event_and_continues_revisions<F: StoreFactory>(
    factory: &F,
) {
    let store = factory.create().await;
    let prefix = prefix();
    let stream = format!("{prefix}member-1");
    let before = store.head_position().await.unwrap();
    store
        .append(&stream, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    let last = store
        .append(
            &format!("{prefix}member-2"),
            ExpectedRevision::NoStream,
            events(1),
        )
        .await
        .unwrap();
    let written = read_all_with_prefix(&store, before, &prefix, 100).await;

    let store = factory.reopen(store).await;
    assert_eq!(
        read_all_with_prefix(&store, before, &prefix, 100).await,
        written
    );
    assert!(store.head_position().await.unwrap() >= last.position);
    let next = store
        .append(&stream, ExpectedRevision::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(next.next_expected_revision, 3);
    assert!(next.position > last.position);
}

/// `append_many` stores every part, in order, each at its own stream's next revision.
pub async fn append_many_appends_every_part_in_order<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (first, second) = (format!("{p}a"), format!("{p}b"));
    store
        .append(&second, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let results = store
        .append_many(vec![
            StreamAppend {
                stream: first.clone(),
                expected: ExpectedRevision::NoStream,
                events: events(2),
            },
            StreamAppend {
                stream: second.clone(),
                expected: ExpectedRevision::Exact(0),
                events: events(1),
            },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].next_expected_revision, 1);
    assert_eq!(results[1].next_expected_revision, 1);
    assert!(results[0].position < results[1].position);
    assert_eq!(read_whole_stream(&store, &first).await.len(), 2);
    assert_eq!(read_whole_stream(&store, &second).await.len(), 2);
}

/// A conflict on one part fails `append_many` with that part's conflict. An atomic store keeps
/// none of the parts; the others keep the parts before the conflicting one and none after it.
pub async fn append_many_fails_on_a_conflicting_part<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (first, second, third) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    store
        .append(&second, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let part = |stream: &str, expected| StreamAppend {
        stream: stream.to_owned(),
        expected,
        events: events(1),
    };
    let err = store
        .append_many(vec![
            part(&first, ExpectedRevision::NoStream),
            part(&second, ExpectedRevision::NoStream),
            part(&third, ExpectedRevision::NoStream),
        ])
        .await
        .unwrap_err();
    match &err {
        StoreError::WrongExpectedRevision { stream, actual, .. } => {
            assert_eq!(stream, &second);
            assert_eq!(*actual, CurrentRevision::Current(0));
        }
        other => panic!("expected a conflict on {second}, got {other:?}"),
    }
    let first_kept = read_whole_stream(&store, &first).await.len();
    assert_eq!(first_kept, usize::from(!store.atomic_append_many()));
    assert_eq!(read_whole_stream(&store, &second).await.len(), 1);
    assert!(read_whole_stream(&store, &third).await.is_empty());
}

fn revisions_of(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision).collect()
}

/// After `truncate_before(stream, 4)` on a stream of ten events, stream reads start at
/// revision 4 in both directions, the kept events are exactly as they were (revisions,
/// positions, ids), and appends continue from the stream's last revision.
pub async fn truncate_before_hides_earlier_events_from_stream_reads<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}checkpoint-1", prefix());
    store
        .append(&stream, ExpectedRevision::NoStream, events(10))
        .await
        .unwrap();
    let before = read_whole_stream(&store, &stream).await;

    store.truncate_before(&stream, 4).await.expect("truncate");

    let kept = read_whole_stream(&store, &stream).await;
    assert_eq!(kept, before[4..].to_vec(), "kept events are unchanged");
    let read = |from, direction, count| store.read_stream(&stream, from, direction, count);
    let from_start = read(StreamFrom::Start, Direction::Forwards, 3)
        .await
        .unwrap();
    assert_eq!(revisions_of(&from_start), vec![4, 5, 6]);
    let from_truncated = read(StreamFrom::Revision(1), Direction::Forwards, 2).await;
    assert_eq!(revisions_of(&from_truncated.unwrap()), vec![4, 5]);
    let backwards = read(StreamFrom::End, Direction::Backwards, 100)
        .await
        .unwrap();
    assert_eq!(revisions_of(&backwards), vec![9, 8, 7, 6, 5, 4]);
    let backwards_from_kept = read(StreamFrom::Revision(5), Direction::Backwards, 100).await;
    assert_eq!(revisions_of(&backwards_from_kept.unwrap()), vec![5, 4]);
    let backwards_from_truncated = read(StreamFrom::Revision(2), Direction::Backwards, 100).await;
    assert!(backwards_from_truncated.unwrap().is_empty());

    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::Current(9)
    );
    let next = store
        .append(&stream, ExpectedRevision::Exact(9), events(1))
        .await
        .expect("append after a truncation");
    assert_eq!(next.next_expected_revision, 10);
    assert!(next.position > before[9].position);
    let stale = store
        .append(&stream, ExpectedRevision::Exact(3), events(1))
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&stale),
        Some((ExpectedRevision::Exact(3), CurrentRevision::Current(10))),
        "{stale}"
    );
    assert_eq!(
        revisions_of(&read_whole_stream(&store, &stream).await),
        (4..=10).collect::<Vec<_>>()
    );
}

/// A repeated truncation (a retry) and one at or below an earlier one change nothing: a
/// truncation never brings events back.
pub async fn truncate_before_is_idempotent_and_never_moves_back<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let stream = format!("{}lease-1", prefix());
    store
        .append(&stream, ExpectedRevision::NoStream, events(8))
        .await
        .unwrap();
    store.truncate_before(&stream, 5).await.unwrap();
    let after_first = read_whole_stream(&store, &stream).await;
    assert_eq!(revisions_of(&after_first), vec![5, 6, 7]);

    for again in [5, 5, 3, 0] {
        store
            .truncate_before(&stream, again)
            .await
            .unwrap_or_else(|e| panic!("truncate_before({again}) again: {e}"));
        assert_eq!(
            read_whole_stream(&store, &stream).await,
            after_first,
            "truncate_before({again}) after truncate_before(5)"
        );
    }
    store.truncate_before(&stream, 6).await.unwrap();
    assert_eq!(
        revisions_of(&read_whole_stream(&store, &stream).await),
        vec![6, 7]
    );
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::Current(7)
    );
}

/// Truncating past the end hides every event stored, and nothing more: the stream still
/// exists at its last revision, also after the store is reopened, `Exact(last)` appends to
/// it, and what is appended later is readable. Positions keep growing.
pub async fn truncate_before_past_the_end_empties_the_stream_but_keeps_its_revision<
    F: StoreFactory,
>(
    factory: &F,
) {
    let store = factory.create().await;
    let p = prefix();
    let stream = format!("{p}snapshot-1");
    let written = store
        .append(&stream, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();

    store.truncate_before(&stream, 100).await.expect("truncate");

    for (from, direction) in [
        (StreamFrom::Start, Direction::Forwards),
        (StreamFrom::Revision(2), Direction::Forwards),
        (StreamFrom::End, Direction::Backwards),
        (StreamFrom::Revision(1), Direction::Backwards),
    ] {
        let read = store
            .read_stream(&stream, from, direction, 10)
            .await
            .unwrap();
        assert!(read.is_empty(), "{from:?} {direction:?}: {read:?}");
    }
    let store = factory.reopen(store).await;
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::Current(2),
        "a stream truncated past its end still exists"
    );
    // Asked with others, a missing one among them, it exists all the same.
    let missing = format!("{p}snapshot-none");
    assert_eq!(
        store
            .stream_revisions(&[missing.clone(), stream.clone(), missing])
            .await
            .unwrap(),
        vec![
            CurrentRevision::NoStream,
            CurrentRevision::Current(2),
            CurrentRevision::NoStream
        ],
        "a stream truncated past its end, asked with others"
    );
    let err = store
        .append(&stream, ExpectedRevision::NoStream, events(1))
        .await
        .unwrap_err();
    assert_eq!(
        conflict(&err),
        Some((ExpectedRevision::NoStream, CurrentRevision::Current(2))),
        "{err}"
    );
    let next = store
        .append(&stream, ExpectedRevision::Exact(2), events(2))
        .await
        .expect("Exact(last) after truncating everything");
    assert_eq!(next.next_expected_revision, 4);
    assert!(next.position > written.position);
    // The truncation was of what the stream held, not of revisions to come.
    assert_eq!(
        revisions_of(&read_whole_stream(&store, &stream).await),
        vec![3, 4]
    );
    store.truncate_before(&stream, u64::MAX).await.unwrap();
    assert!(read_whole_stream(&store, &stream).await.is_empty());
    assert_eq!(
        store.stream_revision(&stream).await.unwrap(),
        CurrentRevision::Current(4)
    );
}

/// Truncating one stream leaves every other stream alone, even one whose name starts with
/// the truncated stream's name; `$all` keeps the kept events and all of the others, and a
/// stream that does not exist is not created by a truncation.
pub async fn truncate_before_leaves_other_streams_alone<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (truncated, longer, other) = (
        format!("{p}member-1"),
        format!("{p}member-10"),
        format!("{p}member-2"),
    );
    let before = store.head_position().await.unwrap();
    for stream in [&truncated, &longer, &other] {
        store
            .append(stream, ExpectedRevision::NoStream, events(4))
            .await
            .unwrap();
    }
    let all_before = read_all_with_prefix(&store, before, &p, 100).await;

    store.truncate_before(&truncated, 3).await.unwrap();

    for stream in [&longer, &other] {
        assert_eq!(
            revisions_of(&read_whole_stream(&store, stream).await),
            vec![0, 1, 2, 3],
            "{stream}"
        );
    }
    assert_eq!(
        revisions_of(&read_whole_stream(&store, &truncated).await),
        vec![3]
    );
    // `$all` still has every event that was not truncated, unchanged and in order; whether
    // the truncated ones are still there is up to the backend.
    let all_after = read_all_with_prefix(&store, before, &p, 100).await;
    let untouched: Vec<_> = all_before
        .iter()
        .filter(|e| e.stream != truncated || e.revision >= 3)
        .cloned()
        .collect();
    let all_after_untouched: Vec<_> = all_after
        .iter()
        .filter(|e| e.stream != truncated || e.revision >= 3)
        .cloned()
        .collect();
    assert_eq!(all_after_untouched, untouched);
    assert!(all_after.iter().all(|e| all_before.contains(e)));

    let missing = format!("{p}nobody");
    store.truncate_before(&missing, 5).await.unwrap();
    assert_eq!(
        store.stream_revision(&missing).await.unwrap(),
        CurrentRevision::NoStream
    );
    let created = store
        .append(&missing, ExpectedRevision::NoStream, events(1))
        .await
        .expect("a truncation does not create the stream");
    assert_eq!(created.next_expected_revision, 0);
    assert_eq!(read_whole_stream(&store, &missing).await.len(), 1);
    let err = store.truncate_before("$bad", 1).await.unwrap_err();
    assert_eq!(err, StoreError::InvalidStreamName("$bad".to_owned()));
}

/// For the embedded stores (not in the shared list: EventStoreDB keeps truncated events in
/// `$all` until a scavenge): truncated events leave `$all` at once, and the head does not
/// move back even when the truncated event was the last one.
pub async fn truncated_events_leave_all_at_once<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    let before = store.head_position().await.unwrap();
    store
        .append(&a, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    let last = store
        .append(&b, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    store.truncate_before(&a, 2).await.unwrap();
    store.truncate_before(&b, 9).await.unwrap();
    let all: Vec<(String, u64)> = read_all_with_prefix(&store, before, &p, 100)
        .await
        .into_iter()
        .map(|e| (e.stream, e.revision))
        .collect();
    assert_eq!(all, vec![(a.clone(), 2)]);
    assert_eq!(store.head_position().await.unwrap(), last.position);
    let store = factory.reopen(store).await;
    assert!(store.head_position().await.unwrap() >= last.position);
    let next = store
        .append(&a, ExpectedRevision::Exact(2), events(1))
        .await
        .unwrap();
    assert!(next.position > last.position, "positions never go back");
}

/// Every link of the store's chain strictly after `after`, read in pages of `page` links;
/// `None` when the store keeps no chain (EventStoreDB: see [`crate::chain`]).
async fn chain_after<S: EventStore + ?Sized>(
    store: &S,
    after: Position,
    page: usize,
) -> Option<Vec<ChainLink>> {
    let mut links: Vec<ChainLink> = Vec::new();
    let mut last = after;
    loop {
        let batch = match store.read_chain(last, page).await {
            Err(StoreError::Unsupported(_)) if links.is_empty() => return None,
            other => other.expect("read chain"),
        };
        let Some(tail) = batch.last() else {
            return Some(links);
        };
        last = tail.position;
        links.extend(batch);
    }
}

/// `may_truncate` for a case on a store that may be shared with other cases: every stream
/// may have been truncated but this case's `member` streams.
fn all_but_members(p: &str) -> impl Fn(&str) -> bool + Send + Sync + use<> {
    let members = format!("{p}member");
    move |stream: &str| !stream.starts_with(members.as_str())
}

/// A store that keeps no chain still verifies: the chain is derived from `$all`, and its
/// head is at the last event up to `up_to`.
async fn derived_chain_verifies<S: EventStore>(store: &S, p: &str, up_to: Position) {
    let may_truncate = all_but_members(p);
    let report = chain::verify(
        store,
        VerifyOptions {
            up_to: Some(up_to),
            may_truncate: &may_truncate,
        },
    )
    .await
    .expect("verify");
    assert!(report.derived, "{report:?}");
    assert_eq!(report.mismatch, None);
    assert_eq!(report.head.map(|h| h.position), Some(up_to));
}

/// The links match the events `$all` returns: one per event, at its position, naming its
/// stream and revision, with the hash of the event as read. Pages of any size return the
/// same links, and a page too large is refused.
pub async fn chain_links_match_the_events_read_from_all<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (a, b) = (format!("{p}member-1"), format!("{p}member-2"));
    let before = store.head_position().await.unwrap();
    store
        .append(&a, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    store
        .append(&b, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    let last = store
        .append(&a, ExpectedRevision::Exact(2), events(2))
        .await
        .unwrap();
    let page = store.limits().max_page_size;
    let Some(links) = chain_after(&store, before, page).await else {
        return derived_chain_verifies(&store, &p, last.position).await;
    };
    let events = read_all_with_prefix(&store, before, &p, 100).await;
    let mine: Vec<&ChainLink> = links.iter().filter(|l| l.stream.starts_with(&p)).collect();
    assert_eq!(mine.len(), 7);
    assert_eq!(mine.len(), events.len());
    for (link, event) in mine.iter().zip(&events) {
        assert_eq!(
            (link.position, &link.stream, link.revision),
            (event.position, &event.stream, event.revision)
        );
        assert_eq!(
            link.event_hash,
            chain::event_hash(event.into()),
            "the link of {} revision {} does not hash the event read back",
            event.stream,
            event.revision
        );
    }
    let small_pages = chain_after(&store, before, 2).await.expect("read chain");
    assert_eq!(
        small_pages
            .iter()
            .filter(|l| l.stream.starts_with(&p))
            .collect::<Vec<_>>(),
        mine
    );
    let err = store.read_chain(before, page + 1).await.unwrap_err();
    assert!(matches!(err, StoreError::PageTooLarge { .. }), "{err}");
}

/// From [`GENESIS`], each link's chain hash follows from the previous link's and its event
/// hash, and each link's stream hash from the previous link of its stream: over the whole
/// chain, with this case's streams starting at revision 0.
pub async fn chain_and_stream_chains_are_continuous_from_genesis<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (a, b) = (format!("{p}member-1"), format!("{p}member-2"));
    store
        .append(&a, ExpectedRevision::NoStream, events(2))
        .await
        .unwrap();
    store
        .append_many(vec![
            StreamAppend {
                stream: b.clone(),
                expected: ExpectedRevision::NoStream,
                events: events(2),
            },
            StreamAppend {
                stream: a.clone(),
                expected: ExpectedRevision::Exact(1),
                events: events(1),
            },
        ])
        .await
        .unwrap();
    let last = store
        .append(&b, ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    let Some(links) = chain_after(&store, Position::START, store.limits().max_page_size).await
    else {
        return derived_chain_verifies(&store, &p, last.position).await;
    };
    let mut previous = GENESIS;
    let mut last_position = Position::START;
    let mut streams: std::collections::HashMap<&str, chain::Hash> = Default::default();
    for link in &links {
        assert!(link.position > last_position, "links in position order");
        last_position = link.position;
        assert_eq!(
            link.chain_hash,
            chain::chain_link(
                &previous,
                link.position,
                &link.stream,
                link.revision,
                &link.event_hash
            ),
            "chain hash at {}",
            link.position
        );
        previous = link.chain_hash;
        let stream_previous = streams
            .get(link.stream.as_str())
            .copied()
            .unwrap_or(GENESIS);
        assert_eq!(
            link.stream_hash,
            chain::link(&stream_previous, &link.event_hash),
            "stream hash of {} revision {}",
            link.stream,
            link.revision
        );
        streams.insert(&link.stream, link.stream_hash);
    }
    for (stream, count) in [(&a, 3), (&b, 3)] {
        let revisions: Vec<u64> = links
            .iter()
            .filter(|l| &l.stream == stream)
            .map(|l| l.revision)
            .collect();
        assert_eq!(revisions, (0..count).collect::<Vec<_>>(), "{stream}");
    }
    assert!(links.iter().any(|l| l.position == last.position));
}

/// `truncate_before` removes events, never their links: the links read before and after are
/// the same, the chain still verifies with truncation allowed for the stream (and names the
/// first truncated event where it is not, on a store that removes truncated events from
/// `$all`), and later appends continue the stream's chain from its last link, also after
/// truncating past the end and reopening.
pub async fn chain_links_survive_truncate_before<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let stream = format!("{p}checkpoint-1");
    let before = store.head_position().await.unwrap();
    let written = store
        .append(&stream, ExpectedRevision::NoStream, events(6))
        .await
        .unwrap();
    let page = store.limits().max_page_size;
    let of_stream = |links: Vec<ChainLink>| -> Vec<ChainLink> {
        links.into_iter().filter(|l| l.stream == stream).collect()
    };
    let Some(links) = chain_after(&store, before, page).await.map(of_stream) else {
        store.truncate_before(&stream, 4).await.unwrap();
        return derived_chain_verifies(&store, &p, written.position).await;
    };
    assert_eq!(links.len(), 6);

    store.truncate_before(&stream, 4).await.unwrap();

    let kept = of_stream(chain_after(&store, before, page).await.expect("chain"));
    assert_eq!(kept, links, "the links of truncated events are kept");
    let allowed = all_but_members(&p);
    let report = chain::verify(
        &store,
        VerifyOptions {
            up_to: Some(written.position),
            may_truncate: &allowed,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.mismatch, None);
    assert!(report.truncated >= 4, "{report:?}");
    assert_eq!(report.head.map(|h| h.position), Some(written.position));
    let gone_from_all = !read_all_with_prefix(&store, before, &p, 100)
        .await
        .iter()
        .any(|e| e.revision == 0);
    if gone_from_all {
        let never = |s: &str| s != stream.as_str();
        let report = chain::verify(
            &store,
            VerifyOptions {
                up_to: Some(written.position),
                may_truncate: &never,
            },
        )
        .await
        .unwrap();
        let mismatch = report.mismatch.expect("a missing event of a kept stream");
        assert_eq!(
            (
                mismatch.position,
                mismatch.stream.as_str(),
                mismatch.revision
            ),
            (links[0].position, stream.as_str(), 0)
        );
    }

    // Truncated past its end, reopened: the stream's chain goes on from its last link.
    store.truncate_before(&stream, 100).await.unwrap();
    let store = factory.reopen(store).await;
    let next = store
        .append(&stream, ExpectedRevision::Exact(5), events(1))
        .await
        .unwrap();
    let after = of_stream(
        chain_after(&store, written.position, page)
            .await
            .expect("chain"),
    );
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].position, next.position);
    assert_eq!(
        after[0].stream_hash,
        chain::link(&links[5].stream_hash, &after[0].event_hash),
        "the stream's chain continues from its last (truncated) link"
    );
}

/// After appends, multi-stream appends, truncations and a reopen, `verify` passes up to the
/// last append, and its head is that append's link (derived on a store that keeps no chain).
pub async fn verify_passes_after_appends_truncations_and_a_reopen<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let (member, other, snapshots) = (
        format!("{p}member-1"),
        format!("{p}member-2"),
        format!("{p}snapshot-1"),
    );
    store
        .append(&member, ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    store
        .append(&snapshots, ExpectedRevision::NoStream, events(5))
        .await
        .unwrap();
    let middle = store
        .append_many(vec![
            StreamAppend {
                stream: other.clone(),
                expected: ExpectedRevision::NoStream,
                events: events(2),
            },
            StreamAppend {
                stream: snapshots.clone(),
                expected: ExpectedRevision::Exact(4),
                events: events(1),
            },
        ])
        .await
        .unwrap();
    store.truncate_before(&snapshots, 4).await.unwrap();
    let store = factory.reopen(store).await;
    store
        .append(&member, ExpectedRevision::Exact(2), events(1))
        .await
        .unwrap();
    store.truncate_before(&snapshots, 6).await.unwrap();
    let last = store
        .append(&other, ExpectedRevision::Exact(1), events(2))
        .await
        .unwrap();
    let keeps_chain = chain_after(&store, last.position, 1).await.is_some();

    let allowed = all_but_members(&p);
    for up_to in [middle[1].position, last.position] {
        let report = chain::verify(
            &store,
            VerifyOptions {
                up_to: Some(up_to),
                may_truncate: &allowed,
            },
        )
        .await
        .expect("verify");
        assert_eq!(report.mismatch, None, "up to {up_to}");
        assert_eq!(report.derived, !keeps_chain);
        let head = report.head.clone().expect("a head");
        if !keeps_chain {
            // Derived from `$all`, which may or may not still show truncated events.
            assert!(head.position <= up_to, "{report:?}");
            continue;
        }
        // The links of truncated events are kept: the head is the link at `up_to`, and the
        // walk to the last append took in this case's 14 events (and any before them).
        assert_eq!(head.position, up_to);
        if up_to == last.position {
            assert!(report.links >= 14, "{report:?}");
        }
        {
            let at = chain_after(&store, Position::START, store.limits().max_page_size)
                .await
                .expect("chain")
                .into_iter()
                .find(|l| l.position == up_to)
                .expect("the link at up_to");
            assert_eq!(head.chain_hash, at.chain_hash);
        }
    }
}

/// The parts of an `append_many` are chained in position order, part after part, each
/// stream's events in revision order, and each part's result is its last link's position.
pub async fn append_many_parts_are_chained_in_position_order<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let p = prefix();
    let names = [format!("{p}a"), format!("{p}b"), format!("{p}c")];
    let before = store.head_position().await.unwrap();
    let results = store
        .append_many(
            names
                .iter()
                .zip([2, 3, 1])
                .map(|(stream, count)| StreamAppend {
                    stream: stream.clone(),
                    expected: ExpectedRevision::NoStream,
                    events: events(count),
                })
                .collect(),
        )
        .await
        .unwrap();
    let last = results.last().expect("results").position;
    let Some(links) = chain_after(&store, before, store.limits().max_page_size).await else {
        return derived_chain_verifies(&store, &p, last).await;
    };
    let mine: Vec<(&str, u64)> = links
        .iter()
        .filter(|l| l.stream.starts_with(&p))
        .map(|l| (l.stream.as_str(), l.revision))
        .collect();
    let (a, b, c) = (names[0].as_str(), names[1].as_str(), names[2].as_str());
    assert_eq!(
        mine,
        vec![(a, 0), (a, 1), (b, 0), (b, 1), (b, 2), (c, 0)],
        "links in the order of the parts"
    );
    for (stream, result) in names.iter().zip(&results) {
        let last_of_stream = links.iter().rfind(|l| &l.stream == stream).expect("a link");
        assert_eq!(last_of_stream.position, result.position, "{stream}");
    }
    let positions: Vec<Position> = links.iter().map(|l| l.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}

/// Expands to one `#[tokio::test]` per conformance case, each calling the case with a fresh
/// factory made by `$factory` (an expression evaluated per test). The calling crate needs
/// `tokio` with the `macros` and `rt-multi-thread` features among its dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@list tests $factory);
    };
    // The one list of cases, expanded as tests or as one sequential run.
    (@list $mode:ident $factory:expr) => {
        $crate::conformance_tests!(@$mode $factory;
            append_expecting_no_stream_creates_the_stream_at_revision_zero,
            append_expecting_no_stream_conflicts_once_the_stream_exists,
            append_expecting_an_exact_revision_succeeds_only_on_that_revision,
            append_expecting_stream_exists_conflicts_on_a_missing_stream,
            append_expecting_any_revision_always_succeeds,
            concurrent_appenders_to_one_stream_get_exactly_one_winner_per_revision,
            retried_append_with_the_same_event_ids_returns_the_original_result,
            append_overlapping_stored_event_ids_partially_is_refused,
            events_round_trip_byte_for_byte,
            stream_reads_page_forwards_and_backwards_in_revision_order,
            a_missing_stream_reads_as_empty,
            all_reads_page_forwards_in_append_order_with_strictly_growing_positions,
            stream_revision_and_head_position_follow_appends,
            subscription_delivers_history_then_live_events_without_gap_or_duplicate,
            subscription_from_a_position_starts_strictly_after_it,
            subscription_filter_delivers_only_matching_stream_prefixes,
            stopped_subscription_ends,
            append_with_too_many_events_is_refused,
            append_with_too_many_bytes_is_refused,
            read_with_a_page_too_large_or_empty_is_refused,
            bad_stream_names_are_refused,
            empty_append_and_repeated_ids_in_one_append_are_refused,
            reopened_store_keeps_every_event_and_continues_revisions,
            append_many_appends_every_part_in_order,
            append_many_fails_on_a_conflicting_part,
            truncate_before_hides_earlier_events_from_stream_reads,
            truncate_before_is_idempotent_and_never_moves_back,
            truncate_before_past_the_end_empties_the_stream_but_keeps_its_revision,
            truncate_before_leaves_other_streams_alone,
            chain_links_match_the_events_read_from_all,
            chain_and_stream_chains_are_continuous_from_genesis,
            chain_links_survive_truncate_before,
            verify_passes_after_appends_truncations_and_a_reopen,
            append_many_parts_are_chained_in_position_order,
        );
    };
    (@tests $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::conformance::$case(&factory).await;
            }
        )*
    };
    (@run $factory:expr; $($case:ident),* $(,)?) => {
        $( $crate::conformance::$case($factory).await; )*
    };
}

/// Runs every case in turn against one factory (for a backend that prefers one test).
pub async fn run_all<F: StoreFactory>(factory: &F) {
    crate::conformance_tests!(@list run factory);
}

// The key vault.

/// A member id no other case uses.
fn fresh_member() -> String {
    format!("m-{}", Uuid::new_v4().simple())
}

/// A time with whole microseconds (what every backend keeps), `seconds` after a fixed one.
fn instant(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + seconds, 123_456_000)
        .single()
        .expect("a valid time")
}

/// `k_` and 32 lowercase hex digits.
fn is_key_id(id: &str) -> bool {
    id.len() == 34
        && id.starts_with("k_")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_new_key(key: &MemberKey, member: &str) {
    assert!(is_key_id(&key.key_id), "key id {:?}", key.key_id);
    assert_eq!(key.member_id, member);
    assert_ne!(key.secret, [0u8; KEY_BYTES], "a secret of zeros");
}

/// The first `key_for` makes the member's key; later calls return that same key, and
/// nothing was erased.
pub async fn key_for_creates_a_key_once_and_returns_the_same_key_after(vault: Arc<dyn KeyVault>) {
    let member = fresh_member();
    assert_eq!(vault.erased_at(&member).await.unwrap(), None);
    let key = vault.key_for(&member).await.expect("key_for");
    check_new_key(&key, &member);
    for _ in 0..3 {
        assert_eq!(vault.key_for(&member).await.unwrap(), key);
    }
    assert_eq!(vault.erased_at(&member).await.unwrap(), None);
}

/// Many callers asking for a new member's key at once all get one and the same key.
pub async fn concurrent_key_for_calls_for_one_member_agree_on_one_key(vault: Arc<dyn KeyVault>) {
    let member = fresh_member();
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (vault, member) = (Arc::clone(&vault), member.clone());
            tokio::spawn(async move { vault.key_for(&member).await })
        })
        .collect();
    let keys: Vec<MemberKey> = tokio::time::timeout(LIVENESS, futures::future::join_all(callers))
        .await
        .expect("the callers finish")
        .into_iter()
        .map(|k| k.expect("caller task").expect("key_for"))
        .collect();
    let first = &keys[0];
    check_new_key(first, &member);
    assert!(
        keys.iter().all(|k| k == first),
        "the callers got {} different keys",
        keys.iter().map(|k| &k.key_id).collect::<HashSet<_>>().len()
    );
    assert_eq!(&vault.key_for(&member).await.unwrap(), first);
    assert_eq!(
        vault.key(&first.key_id).await.unwrap().as_ref(),
        Some(first)
    );
}

/// `key` finds a live key by its id, whoever asks; an id never made finds nothing.
pub async fn key_finds_a_live_key_by_id_and_nothing_for_an_unknown_id(vault: Arc<dyn KeyVault>) {
    let (ana, ben) = (fresh_member(), fresh_member());
    let a = vault.key_for(&ana).await.unwrap();
    let b = vault.key_for(&ben).await.unwrap();
    assert_ne!(a.key_id, b.key_id);
    assert_ne!(a.secret, b.secret);
    assert_eq!(vault.key(&a.key_id).await.unwrap(), Some(a));
    assert_eq!(vault.key(&b.key_id).await.unwrap(), Some(b));
    let unknown = format!("k_{}", Uuid::new_v4().simple());
    assert_eq!(vault.key(&unknown).await.unwrap(), None);
    assert_eq!(vault.key("not a key id").await.unwrap(), None);
}

/// An erasure destroys the member's key (it is found no more), says how many keys it
/// destroyed, and is remembered with its time.
pub async fn erase_destroys_every_key_of_the_member_and_remembers_when(vault: Arc<dyn KeyVault>) {
    let member = fresh_member();
    let key = vault.key_for(&member).await.unwrap();
    let at = instant(0);
    let erasure = vault.erase(&member, at).await.expect("erase");
    assert_eq!(erasure.member_id, member);
    assert_eq!(erasure.keys_destroyed, 1);
    assert_eq!(erasure.erased_at, at);
    assert_eq!(vault.key(&key.key_id).await.unwrap(), None);
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(at));
}

/// After an erasure the member's next key is a new one: another id and another secret. The
/// destroyed key stays destroyed, and the erasure stays remembered.
pub async fn key_for_after_an_erasure_makes_a_new_key(vault: Arc<dyn KeyVault>) {
    let member = fresh_member();
    let old = vault.key_for(&member).await.unwrap();
    vault.erase(&member, instant(0)).await.unwrap();
    let new = vault.key_for(&member).await.expect("key_for after erase");
    check_new_key(&new, &member);
    assert_ne!(new.key_id, old.key_id);
    assert_ne!(new.secret, old.secret);
    assert_eq!(vault.key_for(&member).await.unwrap(), new);
    assert_eq!(vault.key(&new.key_id).await.unwrap(), Some(new));
    assert_eq!(vault.key(&old.key_id).await.unwrap(), None);
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(instant(0)));
    // The new key goes the same way as the old one.
    let erasure = vault.erase(&member, instant(60)).await.unwrap();
    assert_eq!(erasure.keys_destroyed, 1);
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(instant(60)));
}

/// Erasing again (an operator's retry) destroys nothing more and reports so; the later time is
/// remembered, and an earlier one (another server's clock) does not move it back.
pub async fn erasing_again_destroys_nothing_more_and_keeps_the_latest_time(
    vault: Arc<dyn KeyVault>,
) {
    let member = fresh_member();
    let key = vault.key_for(&member).await.unwrap();
    assert_eq!(
        vault
            .erase(&member, instant(0))
            .await
            .unwrap()
            .keys_destroyed,
        1
    );
    let again = vault
        .erase(&member, instant(10))
        .await
        .expect("erase again");
    assert_eq!(again.keys_destroyed, 0);
    assert_eq!(again.erased_at, instant(10));
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(instant(10)));
    let earlier = vault.erase(&member, instant(5)).await.unwrap();
    assert_eq!(earlier.keys_destroyed, 0);
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(instant(10)));
    assert_eq!(vault.key(&key.key_id).await.unwrap(), None);
}

/// A member who never had a key can be erased: nothing is destroyed, the erasure is
/// remembered, and a later key is a new one as usual.
pub async fn erasing_a_member_without_a_key_remembers_the_erasure(vault: Arc<dyn KeyVault>) {
    let member = fresh_member();
    let erasure = vault.erase(&member, instant(0)).await.expect("erase");
    assert_eq!(erasure.keys_destroyed, 0);
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(instant(0)));
    let key = vault.key_for(&member).await.unwrap();
    check_new_key(&key, &member);
    assert_eq!(vault.key(&key.key_id).await.unwrap(), Some(key));
}

/// Erasing one member touches nobody else's key or erasure.
pub async fn erasing_one_member_leaves_other_members_keys_alone(vault: Arc<dyn KeyVault>) {
    let (ana, ben, cleo) = (fresh_member(), fresh_member(), fresh_member());
    let a = vault.key_for(&ana).await.unwrap();
    let b = vault.key_for(&ben).await.unwrap();
    let c = vault.key_for(&cleo).await.unwrap();
    vault.erase(&cleo, instant(0)).await.unwrap();
    vault.erase(&ana, instant(30)).await.unwrap();
    assert_eq!(vault.key(&a.key_id).await.unwrap(), None);
    assert_eq!(vault.key(&c.key_id).await.unwrap(), None);
    assert_eq!(vault.key(&b.key_id).await.unwrap(), Some(b.clone()));
    assert_eq!(vault.key_for(&ben).await.unwrap(), b);
    assert_eq!(vault.erased_at(&ben).await.unwrap(), None);
    assert_eq!(vault.erased_at(&cleo).await.unwrap(), Some(instant(0)));
    assert_eq!(vault.erased_at(&ana).await.unwrap(), Some(instant(30)));
}

/// Erasures racing `key_for` calls for the same member never leave two live keys: once the
/// race is over, every `key_for` returns one key, which `key` finds.
pub async fn erasures_racing_key_for_calls_leave_one_live_key(vault: Arc<dyn KeyVault>) {
    let member = fresh_member();
    let calls: Vec<_> = (0..12)
        .map(|n| {
            let (vault, member) = (Arc::clone(&vault), member.clone());
            tokio::spawn(async move {
                if n % 3 == 0 {
                    vault.erase(&member, instant(n)).await.map(|_| ())
                } else {
                    vault.key_for(&member).await.map(|_| ())
                }
            })
        })
        .collect();
    for outcome in tokio::time::timeout(LIVENESS, futures::future::join_all(calls))
        .await
        .expect("the calls finish")
    {
        outcome.expect("task").expect("erase or key_for");
    }
    let key = vault.key_for(&member).await.unwrap();
    check_new_key(&key, &member);
    assert_eq!(vault.key_for(&member).await.unwrap(), key);
    assert_eq!(vault.key(&key.key_id).await.unwrap(), Some(key));
    assert_eq!(vault.erased_at(&member).await.unwrap(), Some(instant(9)));
}

/// The store's vault keeps its keys and erasures across a reopen of the store.
pub async fn vault_keys_and_erasures_survive_a_reopen<F: StoreFactory>(factory: &F) {
    let store = factory.create().await;
    let vault = store.key_vault().expect("this store keeps a key vault");
    let (ana, ben) = (fresh_member(), fresh_member());
    let a = vault.key_for(&ana).await.unwrap();
    let b = vault.key_for(&ben).await.unwrap();
    vault.erase(&ben, instant(0)).await.unwrap();
    drop(vault);
    let store = factory.reopen(store).await;
    let vault = store
        .key_vault()
        .expect("the reopened store keeps a key vault");
    assert_eq!(vault.key(&a.key_id).await.unwrap(), Some(a.clone()));
    assert_eq!(vault.key_for(&ana).await.unwrap(), a);
    assert_eq!(vault.key(&b.key_id).await.unwrap(), None);
    assert_eq!(vault.erased_at(&ben).await.unwrap(), Some(instant(0)));
    assert_eq!(vault.erased_at(&ana).await.unwrap(), None);
}

/// Expands to one `#[tokio::test]` per key vault case, each on the vault of a store the
/// factory `$factory` (an expression evaluated per test) creates, and one for
/// [`vault_keys_and_erasures_survive_a_reopen`]. For stores whose
/// [`EventStore::key_vault`] answers a vault.
#[macro_export]
macro_rules! vault_conformance_tests {
    ($factory:expr) => {
        $crate::vault_conformance_tests!(@list store $factory);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn vault_keys_and_erasures_survive_a_reopen() {
            let factory = $factory;
            $crate::conformance::vault_keys_and_erasures_survive_a_reopen(&factory).await;
        }
    };
    // The one list of vault cases, expanded as tests or as one sequential run.
    (@list $mode:ident $arg:expr) => {
        $crate::vault_conformance_tests!(@$mode $arg;
            key_for_creates_a_key_once_and_returns_the_same_key_after,
            concurrent_key_for_calls_for_one_member_agree_on_one_key,
            key_finds_a_live_key_by_id_and_nothing_for_an_unknown_id,
            erase_destroys_every_key_of_the_member_and_remembers_when,
            key_for_after_an_erasure_makes_a_new_key,
            erasing_again_destroys_nothing_more_and_keeps_the_latest_time,
            erasing_a_member_without_a_key_remembers_the_erasure,
            erasing_one_member_leaves_other_members_keys_alone,
            erasures_racing_key_for_calls_leave_one_live_key,
        );
    };
    (@store $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                let store = $crate::conformance::StoreFactory::create(&factory).await;
                let vault = $crate::EventStore::key_vault(&store)
                    .expect("this store keeps a key vault");
                $crate::conformance::$case(vault).await;
                drop(store);
            }
        )*
    };
    (@run $vault:expr; $($case:ident),* $(,)?) => {
        $( $crate::conformance::$case(::std::sync::Arc::clone($vault)).await; )*
    };
}

/// Runs every key vault case in turn on `vault` (a vault that is not a store's).
pub async fn run_vault(vault: Arc<dyn KeyVault>) {
    crate::vault_conformance_tests!(@list run &vault);
}
