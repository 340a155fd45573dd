//! The global order under concurrent writers: several stores on one schema (as several
//! processes would be, each with its own pool) append at once while a subscription of yet
//! another store reads from the start. The subscriber must see every acknowledged event
//! exactly once, in strictly increasing position order: the classic bug (a position becoming
//! visible after a larger one was read) would show as a missing event.
use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{Schemas, connect, options};
use loyalty_store::conformance::sample_event;
use loyalty_store::{
    AppendResult, EventStore, ExpectedRevision, Position, RecordedEvent, StreamAppend,
    StreamFilter, Subscription, SubscriptionMessage, Uuid,
};
use loyalty_store_postgres::PostgresStore;
use tokio::sync::watch;

const APPENDERS: usize = 8;
const APPENDS_EACH: u64 = 200;
/// A guard against a hang, not a speed assertion.
const LIVENESS: Duration = Duration::from_secs(120);
/// Once every append is acknowledged, a subscriber that receives nothing for this long has
/// missed events (the head poll runs every 500 ms).
const STALLED: Duration = Duration::from_secs(10);

/// What one appender had acknowledged: every event id, and each append's result with the id
/// of its last event.
#[derive(Default)]
struct Acked {
    ids: Vec<Uuid>,
    results: Vec<(AppendResult, Uuid)>,
}

async fn append_many_times(
    store: Arc<loyalty_store_postgres::PostgresStore>,
    appender: usize,
) -> Acked {
    let mut acked = Acked::default();
    for k in 0..APPENDS_EACH {
        let count = 1 + (k + appender as u64) % 3;
        let events: Vec<_> = (0..count).map(sample_event).collect();
        let stream = format!("a{appender}-s{}", k % 7);
        if k % 10 == 9 {
            // Now and then two streams in one transaction.
            let other: Vec<_> = (0..2).map(sample_event).collect();
            let parts = vec![
                StreamAppend {
                    stream: stream.clone(),
                    expected: ExpectedRevision::Any,
                    events: events.clone(),
                },
                StreamAppend {
                    stream: format!("a{appender}-pair"),
                    expected: ExpectedRevision::Any,
                    events: other.clone(),
                },
            ];
            let results = store.append_many(parts).await.expect("append_many");
            acked.ids.extend(events.iter().map(|e| e.id));
            acked.ids.extend(other.iter().map(|e| e.id));
            acked.results.push((results[0], events.last().unwrap().id));
            acked.results.push((results[1], other.last().unwrap().id));
        } else {
            let result = store
                .append(&stream, ExpectedRevision::Any, events.clone())
                .await
                .expect("append");
            acked.ids.extend(events.iter().map(|e| e.id));
            acked.results.push((result, events.last().unwrap().id));
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_event_of_concurrent_writers_once_and_in_order() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let schema = factory.schema();
    let url = factory.url.clone();

    // The subscriber's store never appends: it learns of the others' appends only through
    // the database (notifications and the head poll), as another process would.
    let subscriber = connect(&url, options(&schema)).await;
    let mut sub = subscriber
        .subscribe_all(Position::START, StreamFilter::all())
        .await
        .unwrap();
    let (target_tx, mut target) = watch::channel(None::<usize>);
    let collector = tokio::spawn(async move {
        let mut seen: Vec<RecordedEvent> = Vec::new();
        loop {
            let wait = match *target.borrow_and_update() {
                // Anything past the acknowledged count would be a duplicate: give it a moment
                // to show.
                Some(total) if seen.len() >= total => Duration::from_secs(1),
                // Once the appenders are done, a subscriber that stalls has missed events.
                Some(_) => STALLED,
                None => LIVENESS,
            };
            tokio::select! {
                message = tokio::time::timeout(wait, sub.next()) => match message {
                    Ok(Some(Ok(SubscriptionMessage::Event(e)))) => seen.push(e),
                    Ok(Some(Ok(SubscriptionMessage::CaughtUp { .. }))) => {}
                    Ok(Some(Err(e))) => panic!("subscription error: {e}"),
                    Ok(None) => panic!("the subscription ended early"),
                    Err(_) => return seen,
                },
                changed = target.changed() => changed.expect("the test went away"),
            }
        }
    });

    let mut stores = Vec::new();
    for _ in 0..APPENDERS {
        let mut appender_options = options(&schema);
        appender_options.pool_size = 2;
        stores.push(Arc::new(connect(&url, appender_options).await));
    }
    let appenders: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| tokio::spawn(append_many_times(Arc::clone(store), i)))
        .collect();
    let mut acked = Acked::default();
    for appender in futures::future::join_all(appenders).await {
        let one = appender.expect("appender task");
        acked.ids.extend(one.ids);
        acked.results.extend(one.results);
    }
    let total = acked.ids.len();
    assert!(total > 2_000, "a few thousand events: {total}");
    target_tx.send_replace(Some(total));
    let seen = tokio::time::timeout(LIVENESS, collector)
        .await
        .expect("the subscriber hung")
        .expect("collector task");

    // Exactly the acknowledged events, each once...
    assert_eq!(
        seen.len(),
        total,
        "delivered as many events as acknowledged"
    );
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.id).collect();
    assert_eq!(seen_ids.len(), total, "no event delivered twice");
    assert_eq!(seen_ids, acked.ids.iter().copied().collect::<HashSet<_>>());
    // ...in strictly increasing position order, with no position left out...
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "positions strictly increase"
    );
    let positions: Vec<u64> = seen.iter().map(|e| e.position.commit).collect();
    assert_eq!(
        positions,
        (1..=total as u64).collect::<Vec<_>>(),
        "consecutive"
    );
    // ...each at the position its append was acknowledged with...
    let by_position: HashMap<Position, Uuid> = seen.iter().map(|e| (e.position, e.id)).collect();
    for (result, last_id) in &acked.results {
        assert_eq!(by_position.get(&result.position), Some(last_id));
    }
    // ...as `$all` holds them, and the head is the last of them.
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let page = subscriber.read_all(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        all.extend(page);
    }
    assert_eq!(all, seen);
    assert_eq!(
        subscriber.head_position().await.unwrap(),
        seen.last().unwrap().position
    );
    // ...and the hash chain the eight stores' writers computed, batch by batch, covers every
    // one of them in that order and verifies.
    let report = loyalty_store::chain::verify(
        &subscriber,
        loyalty_store::chain::VerifyOptions {
            up_to: None,
            may_truncate: &|_| false,
        },
    )
    .await
    .expect("verify runs");
    assert_eq!(report.mismatch, None);
    assert_eq!(
        (report.links, report.events_checked),
        (total as u64, total as u64)
    );

    for store in stores {
        Arc::try_unwrap(store)
            .expect("appenders are done")
            .close()
            .await;
    }
    subscriber.close().await;
}

/// `url` with its own `application_name`, to find the store's listener among the sessions.
fn url_named(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// Waits until the listener of the store whose URL named it `name` is listening (its session
/// has gone past its `LISTEN` to polling the head) in a session other than `replaced`;
/// returns the session's process id.
async fn wait_listening(client: &tokio_postgres::Client, name: &str, replaced: Option<i32>) -> i32 {
    let listener = format!("{name} listener");
    for _ in 0..300 {
        let row = client
            .query_opt(
                "SELECT pid FROM pg_stat_activity
                 WHERE application_name = $1 AND query LIKE 'SELECT position FROM log_head%'
                   AND pid IS DISTINCT FROM $2",
                &[&listener, &replaced],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the listener of {name} is not listening");
}

/// A plain connection to the test server, for looking at its sessions.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A store whose head poll waits an hour (only notifications wake its subscribers), a writer
/// store on the same schema, and a subscription of the first that has caught up.
async fn caught_up_subscriber(
    factory: &Schemas,
) -> (String, PostgresStore, PostgresStore, Subscription) {
    let schema = factory.schema();
    let mut listening = options(&schema);
    listening.head_poll_interval = Duration::from_secs(3_600);
    let subscriber = connect(&url_named(&factory.url, &schema), listening).await;
    let writer = connect(&factory.url, options(&schema)).await;
    let mut sub = subscriber
        .subscribe_all(Position::START, StreamFilter::all())
        .await
        .unwrap();
    let first = tokio::time::timeout(LIVENESS, sub.next()).await.unwrap();
    assert!(
        matches!(first, Some(Ok(SubscriptionMessage::CaughtUp { .. }))),
        "{first:?}"
    );
    (schema, subscriber, writer, sub)
}

/// Another store's append reaches a subscriber through `LISTEN`/`NOTIFY`, without waiting for
/// the head poll (set to an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stores_append_wakes_a_subscriber_through_a_notification() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let (schema, subscriber, writer, mut sub) = caught_up_subscriber(&factory).await;
    wait_listening(&admin(&factory.url).await, &schema, None).await;

    let event = sample_event(1);
    writer
        .append("member-1", ExpectedRevision::NoStream, vec![event.clone()])
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("no notification reached the subscriber");
    match got {
        Some(Ok(SubscriptionMessage::Event(e))) => assert_eq!(e.id, event.id),
        other => panic!("expected the event, got {other:?}"),
    }
    writer.close().await;
    subscriber.close().await;
}

/// An append whose notification never came (written here without one, as if the listener's
/// connection had been down) still reaches subscribers through the head poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_without_a_notification_is_found_by_the_head_poll() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let schema = factory.schema();
    let mut polling = options(&schema);
    polling.head_poll_interval = Duration::from_millis(100);
    let store = connect(&factory.url, polling).await;
    let mut sub = store
        .subscribe_all(Position::START, StreamFilter::all())
        .await
        .unwrap();
    let first = tokio::time::timeout(LIVENESS, sub.next()).await.unwrap();
    assert!(
        matches!(first, Some(Ok(SubscriptionMessage::CaughtUp { .. }))),
        "{first:?}"
    );

    // The store's own write path, minus the notification.
    let (client, connection) = tokio_postgres::connect(&factory.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let id = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "BEGIN;
             SET LOCAL search_path TO {schema};
             UPDATE log_head SET position = position + 1 WHERE id = 0;
             INSERT INTO events
                 (position, stream, revision, event_id, event_type, schema_version, data, metadata)
                 SELECT position, 'member-1', 0, '{id}', 'PointsEarned', 1, '\\x7b7d', '\\x7b7d'
                 FROM log_head;
             INSERT INTO streams (stream, last_revision) VALUES ('member-1', 0);
             COMMIT;"
        ))
        .await
        .unwrap();
    drop(client);
    let _ = connection.await;

    let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the head poll did not wake the subscriber");
    match got {
        Some(Ok(SubscriptionMessage::Event(e))) => {
            assert_eq!(e.id, id);
            assert_eq!(e.position, Position::new(1, 1));
        }
        other => panic!("expected the event, got {other:?}"),
    }
    store.close().await;
}

/// The listener reconnects when its connection is killed, and live events keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_its_connection_is_killed() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let (schema, subscriber, writer, mut sub) = caught_up_subscriber(&factory).await;

    let admin = admin(&factory.url).await;
    let pid = wait_listening(&admin, &schema, None).await;
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed, "the listener's session was terminated");
    // A new session, listening again after a backoff of 100 ms.
    wait_listening(&admin, &schema, Some(pid)).await;

    for n in 0..3u64 {
        let event = sample_event(n);
        let expected = match n {
            0 => ExpectedRevision::NoStream,
            r => ExpectedRevision::Exact(r - 1),
        };
        writer
            .append("member-1", expected, vec![event.clone()])
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("no event reached the subscriber after its listener reconnected");
        match got {
            Some(Ok(SubscriptionMessage::Event(e))) => assert_eq!(e.id, event.id),
            other => panic!("expected the event, got {other:?}"),
        }
    }
    writer.close().await;
    subscriber.close().await;
}
