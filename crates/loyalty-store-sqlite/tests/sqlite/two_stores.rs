//! Two stores on one file: not the way to run it, but safe, and each store's reads take in
//! the other's events once it writes itself (reads stop at the head a store made durable).
use loyalty_store::conformance::sample_event;
use loyalty_store::{EventStore, ExpectedRevision, Position};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_reads_what_another_store_wrote_once_it_writes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let first = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let second = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    // Given the second store wrote an event...
    second
        .append("s-b", ExpectedRevision::NoStream, vec![sample_event(1)])
        .await
        .unwrap();
    // ...when the first store next writes, even an append it refuses (the stream exists)...
    let refused = first
        .append("s-b", ExpectedRevision::NoStream, vec![sample_event(3)])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    // ...then it reads the second store's event...
    let seen = first.read_all(Position::START, 10).await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].stream, "s-b");
    // ...and after an append of its own, both, in the order they were written, with positions
    // that never collide.
    let own = first
        .append("s-a", ExpectedRevision::NoStream, vec![sample_event(2)])
        .await
        .unwrap();
    let events = first.read_all(Position::START, 10).await.unwrap();
    let streams: Vec<_> = events.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(streams, ["s-b", "s-a"]);
    assert_eq!(events[1].position, own.position);
    assert!(events[0].position < events[1].position);
    assert_eq!(first.head_position().await.unwrap(), own.position);
    second.close().await.unwrap();
    first.close().await.unwrap();
}
