//! Group commit: appends that queue while the writer is busy are committed together, and a
//! conflict inside a group fails only its own append.
use std::sync::Arc;
use std::time::Duration;

use loyalty_store::conformance::sample_event;
use loyalty_store::{EventStore, ExpectedRevision, StoreError};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore, WriterStats};
use rusqlite::Connection;

/// Waits until the store's stats satisfy `condition` (the test's overall guard bounds it).
async fn until(store: &SqliteStore, condition: impl Fn(WriterStats) -> bool) {
    while !condition(store.stats()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A guard against the test hanging if grouping is broken; never a speed assertion.
const LIVENESS: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_queued_behind_a_busy_writer_commit_in_one_transaction() {
    tokio::time::timeout(LIVENESS, queued_appends_commit_together())
        .await
        .expect("the test hung");
}

async fn queued_appends_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    // Given the writer stuck waiting for the file's write lock, held by another connection...
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let append = |i: usize, expected: ExpectedRevision| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .append(&format!("member-{i}"), expected, vec![sample_event(0)])
                .await
        })
    };
    let first = append(0, ExpectedRevision::NoStream);
    until(&store, |s| s.writing == 1).await;
    // ...when 31 more appends queue up, one of them a conflict...
    let mut rest: Vec<_> = (1..31)
        .map(|i| append(i, ExpectedRevision::NoStream))
        .collect();
    let conflicting = append(5, ExpectedRevision::Exact(3));
    until(&store, |s| s.queued == 31).await;
    blocker.execute_batch("COMMIT").unwrap();

    // ...then the first commits alone and the other 31 together in one transaction...
    first.await.unwrap().expect("first append");
    let conflict = conflicting.await.unwrap().unwrap_err();
    for task in rest.drain(..) {
        task.await.unwrap().expect("grouped append");
    }
    let stats = store.stats();
    assert_eq!((stats.commits, stats.appends), (2, 32));
    // ...and the conflict failed only its own append.
    assert!(
        matches!(conflict, StoreError::WrongExpectedRevision { .. }),
        "{conflict}"
    );
    for i in 0..31 {
        assert!(
            store
                .stream_revision(&format!("member-{i}"))
                .await
                .unwrap()
                .eq(&loyalty_store::CurrentRevision::Current(0)),
            "member-{i}"
        );
    }
}
