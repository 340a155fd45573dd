//! What the adapter adds on top of the protocol, checked against the in-process test server:
//! recovery from a first connection that failed, not-leader retries, resumed subscriptions,
//! system events, positions and the wire format of the schema version.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use loyalty_esdb_testserver::TestServer;
use loyalty_store::conformance::sample_event;
use loyalty_store::{
    EventStore, ExpectedRevision, Position, StoreError, StreamFilter, Subscription,
    SubscriptionMessage,
};
use loyalty_store_eventstoredb::{EventStoreDbOptions, EventStoreDbStore};

/// Hang guards, never speed assertions.
const WITHIN: Duration = Duration::from_secs(60);

fn quick_options() -> EventStoreDbOptions {
    EventStoreDbOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..EventStoreDbOptions::default()
    }
}

async fn store_for(server: &TestServer, options: EventStoreDbOptions) -> EventStoreDbStore {
    let store = EventStoreDbStore::connect(&server.url(), options).expect("connect");
    store.wait_ready(WITHIN).await.expect("ready");
    store
}

async fn next(sub: &mut Subscription) -> SubscriptionMessage {
    tokio::time::timeout(WITHIN, sub.next())
        .await
        .expect("subscription hung")
        .expect("subscription ended")
        .expect("subscription error")
}

/// The next `count` events, skipping the caught-up message.
async fn next_events(sub: &mut Subscription, count: usize) -> Vec<loyalty_store::RecordedEvent> {
    let mut events = Vec::new();
    while events.len() < count {
        if let SubscriptionMessage::Event(e) = next(sub).await {
            events.push(e);
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_created_before_its_server_is_up_connects_once_the_server_starts() {
    // Given a port with no server yet, and a store whose first connection attempts fail...
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("esdb://127.0.0.1:{port}?tls=false");
    let options = EventStoreDbOptions {
        max_attempts: 2,
        ..quick_options()
    };
    let store = EventStoreDbStore::connect(&url, options).expect("connect does no I/O");
    assert!(!store.is_ready());
    let err = store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![sample_event(1)],
        )
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(!store.is_ready());

    // ...when the server comes up on that port...
    let server = TestServer::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .expect("server on the reserved port");

    // ...then the store becomes ready and works, although its first client closed for good.
    store
        .wait_ready(WITHIN)
        .await
        .expect("ready once the server is up");
    let written = store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![sample_event(1)],
        )
        .await
        .expect("append after recovery");
    assert_eq!(written.next_expected_revision, 0);
    assert_eq!(server.append_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_leader_answers_are_retried_until_the_leader_takes_the_append() {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server, quick_options()).await;
    server.reject_appends_as_not_leader(2);

    let written = store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![sample_event(1)],
        )
        .await
        .expect("append retried on the leader");

    assert_eq!(written.next_expected_revision, 0);
    assert_eq!(server.append_calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_leader_answers_beyond_the_retry_bound_are_a_transient_error() {
    let server = TestServer::start().await.unwrap();
    let options = EventStoreDbOptions {
        max_attempts: 3,
        ..quick_options()
    };
    let store = store_for(&server, options).await;
    server.reject_appends_as_not_leader(100);

    let err = store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![sample_event(1)],
        )
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert_eq!(server.append_calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_resumes_after_the_last_event_without_gap_or_duplicate() {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server, quick_options()).await;
    let first: Vec<_> = (0..3).map(sample_event).collect();
    store
        .append("member-1", ExpectedRevision::NoStream, first.clone())
        .await
        .unwrap();
    let mut sub = store
        .subscribe_all(Position::START, StreamFilter::prefixes(["member-"]))
        .await
        .unwrap();
    let history = next_events(&mut sub, 3).await;
    assert!(matches!(
        next(&mut sub).await,
        SubscriptionMessage::CaughtUp { .. }
    ));

    // When the server drops every subscription, and events keep coming...
    server.drop_subscriptions();
    let second: Vec<_> = (3..6).map(sample_event).collect();
    store
        .append("member-1", ExpectedRevision::Exact(2), second.clone())
        .await
        .unwrap();
    store
        .append(
            "member-2",
            ExpectedRevision::NoStream,
            vec![sample_event(6)],
        )
        .await
        .unwrap();

    // ...then the subscription carries on with exactly the events after the last one seen.
    let resumed = next_events(&mut sub, 4).await;
    let ids =
        |events: &[loyalty_store::RecordedEvent]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&history),
        first.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let mut expected: Vec<_> = second.iter().map(|e| e.id).collect();
    expected.push(resumed[3].id);
    assert_eq!(ids(&resumed), expected);
    assert_eq!(resumed[3].stream, "member-2");
    assert!(resumed.windows(2).all(|w| w[0].position < w[1].position));
    assert!(resumed[0].position > history[2].position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_events_never_show_in_all_reads_nor_in_subscriptions() {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server, quick_options()).await;
    store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![sample_event(0)],
        )
        .await
        .unwrap();
    server.append_system_event("$stats-127.0.0.1:2113", "$statsCollected");
    store
        .append(
            "member-1",
            ExpectedRevision::Exact(0),
            vec![sample_event(1)],
        )
        .await
        .unwrap();
    server.append_system_event("$$member-1", "$metadata");
    // The server's $all holds system events: two from its start, two written here.
    assert_eq!(server.event_count(), 6);

    let all = store.read_all(Position::START, 100).await.unwrap();
    let streams: Vec<_> = all.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(streams, ["member-1", "member-1"]);

    // A subscription without prefixes gets every engine stream and nothing else, even live.
    let mut sub = store
        .subscribe_all(Position::START, StreamFilter::all())
        .await
        .unwrap();
    server.append_system_event("$settings", "$settings");
    store
        .append(
            "member-2",
            ExpectedRevision::NoStream,
            vec![sample_event(2)],
        )
        .await
        .unwrap();
    let delivered = next_events(&mut sub, 3).await;
    let streams: Vec<_> = delivered.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(streams, ["member-1", "member-1", "member-2"]);
    // The head is the last engine event, not the server's later system events.
    server.append_system_event("$stats-127.0.0.1:2113", "$statsCollected");
    assert_eq!(store.head_position().await.unwrap(), delivered[2].position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_the_servers_commit_and_prepare_positions_field_by_field() {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server, quick_options()).await;
    let written = store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            (0..3).map(sample_event).collect(),
        )
        .await
        .unwrap();

    // The test server, like EventStoreDB, gives the events of one append the same commit
    // position and their own, growing byte-offset prepare positions.
    let all = store.read_all(Position::START, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|e| e.position.commit == all[0].position.commit)
    );
    assert!(all[0].position.prepare < all[1].position.prepare);
    assert!(all[1].position.prepare - all[0].position.prepare > 1);
    assert_eq!(written.position, all[2].position);

    // The same numbers the client sees on the wire.
    let client = eventstore::Client::new(server.url().parse().unwrap()).unwrap();
    let mut read = client
        .read_stream("member-1", &eventstore::ReadStreamOptions::default())
        .await
        .unwrap();
    let mut raw = Vec::new();
    while let Some(e) = read.next().await.unwrap() {
        raw.push(e.get_original_event().position);
    }
    let mapped: Vec<_> = all
        .iter()
        .map(|e| (e.position.commit, e.position.prepare))
        .collect();
    let wire: Vec<_> = raw.iter().map(|p| (p.commit, p.prepare)).collect();
    assert_eq!(mapped, wire);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_version_travels_in_a_custom_metadata_envelope() {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server, quick_options()).await;
    let mut event = sample_event(0);
    event.schema_version = 3;
    event.metadata = bytes::Bytes::from_static(br#"{"actor":"pos-17"}"#);
    store
        .append("member-1", ExpectedRevision::NoStream, vec![event.clone()])
        .await
        .unwrap();

    let client = eventstore::Client::new(server.url().parse().unwrap()).unwrap();
    let mut read = client
        .read_stream("member-1", &eventstore::ReadStreamOptions::default())
        .await
        .unwrap();
    let raw = read.next().await.unwrap().expect("one event");
    let raw = raw.get_original_event();
    assert_eq!(
        raw.custom_metadata.as_ref(),
        br#"{"schemaVersion":3,"metadata":{"actor":"pos-17"}}"#
    );
    assert!(raw.is_json);
    assert_eq!(raw.event_type, event.event_type);
    assert_eq!(raw.id, event.id);
    assert_eq!(raw.data, event.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_over_the_size_limit_never_reach_the_server() {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server, quick_options()).await;
    let limit = store.limits().max_append_bytes;

    // Under the trait's count by a few bytes, over it once the envelope is added.
    let mut event = sample_event(0);
    let room = limit - event.event_type.len() - event.metadata.len();
    event.data = bytes::Bytes::from(format!("\"{}\"", "x".repeat(room - 2)));
    assert_eq!(event.size(), limit);
    let err = store
        .append("member-1", ExpectedRevision::Any, vec![event])
        .await
        .unwrap_err();

    assert!(
        matches!(err, StoreError::AppendTooLarge { bytes, limit: l } if bytes > limit && l == limit),
        "{err}"
    );
    assert_eq!(server.append_calls(), 0);
}
