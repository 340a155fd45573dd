//! Checkpoints run off the writer's thread and keep the write-ahead log bounded: its pages are
//! copied into the database file and the log starts again from its beginning.
use std::time::Duration;

use loyalty_store::conformance::sample_event;
use loyalty_store::{Bytes, EventStore, ExpectedRevision, Position};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

const LIVENESS: Duration = Duration::from_secs(120);

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_into_the_file_and_stays_bounded() {
    tokio::time::timeout(LIVENESS, log_stays_bounded())
        .await
        .expect("the test hung");
}

async fn log_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let wal = dir.path().join("events.db-wal");
    let threshold = 16u32;
    let options = SqliteOptions {
        wal_checkpoint_pages: threshold,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options).await.unwrap();
    // Given 1,000 appends of one event of about 3 KiB each: some 3 MiB of data, which is
    // about 190 times the checkpoint threshold (16 pages, 64 KiB).
    let padding = "x".repeat(3 * 1024);
    let mut largest_log = 0;
    for i in 0..1_000u64 {
        let mut event = sample_event(i);
        event.data = Bytes::from(format!(r#"{{"n":{i},"padding":"{padding}"}}"#));
        store
            .append(&format!("s-{}", i % 50), ExpectedRevision::Any, vec![event])
            .await
            .unwrap();
        largest_log = largest_log.max(file_len(&wal));
    }
    // Then the log never held more than the writer's own limit (4 x 16 pages) plus the pages
    // of the commits made while a checkpoint runs (the checkpointer is a thread of its own: on
    // a machine whose cores are busy it starts late, and the log once reached 101 pages in
    // ten runs beside a CI build), far from the 3 MiB (750 pages) appended...
    let page = 4096 + 24;
    assert!(
        largest_log <= 128 * page,
        "the write-ahead log grew to {largest_log} bytes"
    );
    // ...because the data went into the database file itself.
    assert!(
        file_len(&path) > 3_000_000,
        "the database file holds {} bytes",
        file_len(&path)
    );
    // And every event is there, in order, before and after reopening.
    let events = store.read_all(Position::START, 1_000).await.unwrap();
    assert_eq!(events.len(), 1_000);
    store.close().await.unwrap();
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let reread = store.read_all(Position::START, 1_000).await.unwrap();
    assert_eq!(reread, events);
}
