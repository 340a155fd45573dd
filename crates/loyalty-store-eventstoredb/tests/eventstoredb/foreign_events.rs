//! Events that another application wrote to a shared cluster (custom metadata without our
//! envelope) never stall a reader: reads and subscriptions deliver them raw with schema
//! version 0 and go on, and a subscription with stream prefixes never receives them at all.

use std::time::Duration;

use eventstore::{AppendToStreamOptions, Client};
use loyalty_esdb_testserver::TestServer;
use loyalty_store::conformance::sample_event;
use loyalty_store::{
    Direction, EventStore, ExpectedRevision, Position, RecordedEvent, StreamFilter, StreamFrom,
    Subscription, SubscriptionMessage,
};
use loyalty_store_eventstoredb::{EventStoreDbOptions, EventStoreDbStore};

/// Hang guards, never speed assertions.
const WITHIN: Duration = Duration::from_secs(60);

/// What the other application writes: JSON data, and custom metadata of its own.
const FOREIGN_DATA: &[u8] = br#"{"invoice":7,"amount":"12.00"}"#;
const FOREIGN_METADATA: &[u8] = br#"{"traceId":"4bf92f3577b34da6"}"#;

async fn store_for(server: &TestServer) -> EventStoreDbStore {
    let store =
        EventStoreDbStore::connect(&server.url(), EventStoreDbOptions::default()).expect("connect");
    store.wait_ready(WITHIN).await.expect("ready");
    store
}

/// Writes one event the way another application would: through the raw client, with its
/// own custom metadata.
async fn write_foreign(client: &Client, stream: &str) {
    let event = eventstore::EventData::binary("InvoiceIssued", FOREIGN_DATA.into())
        .metadata(FOREIGN_METADATA.into());
    client
        .append_to_stream(stream, &AppendToStreamOptions::default(), event)
        .await
        .expect("foreign append");
}

async fn next(sub: &mut Subscription) -> SubscriptionMessage {
    tokio::time::timeout(WITHIN, sub.next())
        .await
        .expect("subscription hung")
        .expect("subscription ended")
        .expect("subscription error")
}

/// Events up to the caught-up message.
async fn history(sub: &mut Subscription) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    loop {
        match next(sub).await {
            SubscriptionMessage::Event(e) => events.push(e),
            SubscriptionMessage::CaughtUp { .. } => return events,
        }
    }
}

async fn next_event(sub: &mut Subscription) -> RecordedEvent {
    match next(sub).await {
        SubscriptionMessage::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn assert_raw_foreign(event: &RecordedEvent, stream: &str) {
    assert_eq!(event.stream, stream);
    assert_eq!(
        event.schema_version, 0,
        "a foreign event has schema version 0"
    );
    assert_eq!(event.event_type, "InvoiceIssued");
    assert_eq!(event.data.as_ref(), FOREIGN_DATA);
    assert_eq!(event.metadata.as_ref(), FOREIGN_METADATA);
}

/// A test server with `member-1` (revisions 0 and 1) and, between them, another
/// application's `billing-1`.
async fn ours_theirs_ours() -> (TestServer, EventStoreDbStore, Client) {
    let server = TestServer::start().await.unwrap();
    let store = store_for(&server).await;
    let client = Client::new(server.url().parse().unwrap()).unwrap();
    store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![sample_event(0)],
        )
        .await
        .unwrap();
    write_foreign(&client, "billing-1").await;
    store
        .append(
            "member-1",
            ExpectedRevision::Exact(0),
            vec![sample_event(1)],
        )
        .await
        .unwrap();
    (server, store, client)
}

/// Another application's `billing-2`, then our `member-2`.
async fn theirs_then_ours(store: &EventStoreDbStore, client: &Client) {
    write_foreign(client, "billing-2").await;
    store
        .append(
            "member-2",
            ExpectedRevision::NoStream,
            vec![sample_event(2)],
        )
        .await
        .unwrap();
}

fn streams(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.stream.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_an_unfiltered_subscription_deliver_a_foreign_event_raw_and_go_past_it() {
    // Given one of our events, another application's event, and one of ours again...
    let (_server, store, client) = ours_theirs_ours().await;

    // ...`$all` reads deliver all three, the foreign one raw, in order...
    let all = store
        .read_all(Position::START, 100)
        .await
        .expect("read $all");
    assert_eq!(streams(&all), ["member-1", "billing-1", "member-1"]);
    assert_raw_foreign(&all[1], "billing-1");
    assert_eq!(all[2].schema_version, 1);
    // ...a read after the foreign event's position goes on from there...
    let after = store.read_all(all[1].position, 100).await.unwrap();
    assert_eq!(after, all[2..].to_vec());
    // ...and so does a read of the foreign stream.
    let stream = store
        .read_stream("billing-1", StreamFrom::Start, Direction::Forwards, 10)
        .await
        .expect("read the foreign stream");
    assert_eq!(stream.len(), 1);
    assert_raw_foreign(&stream[0], "billing-1");

    // A subscription to everything gets the foreign event and carries on past it, live too.
    let mut sub = store
        .subscribe_all(Position::START, StreamFilter::all())
        .await
        .unwrap();
    let delivered = history(&mut sub).await;
    assert_eq!(delivered, all);
    theirs_then_ours(&store, &client).await;
    assert_raw_foreign(&next_event(&mut sub).await, "billing-2");
    let ours = next_event(&mut sub).await;
    assert_eq!(ours.stream, "member-2");
    assert_eq!(ours.schema_version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_with_stream_prefixes_never_receives_a_foreign_event() {
    let (server, store, client) = ours_theirs_ours().await;

    let mut sub = store
        .subscribe_all(Position::START, StreamFilter::prefixes(["member-"]))
        .await
        .unwrap();
    let delivered = history(&mut sub).await;
    assert_eq!(streams(&delivered), ["member-1", "member-1"]);
    // Live: a foreign event between two of ours is skipped, the subscription goes on.
    theirs_then_ours(&store, &client).await;
    let live = next_event(&mut sub).await;
    assert_eq!(live.stream, "member-2");
    assert_eq!(live.schema_version, 1);
    // The server filtered them out: it sent this subscription our three events and nothing
    // else (the adapter's own filter is the second line of defence, never needed here).
    assert_eq!(server.subscription_events_sent(), 3);
}
