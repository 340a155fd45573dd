//! A full disk is transient: the batch that met it fails with `StorageFull`, nothing of it is
//! stored, and the same store takes appends again once there is room. SQLite's
//! `max_page_count` makes SQLite answer SQLITE_FULL exactly as a full disk does, so the test
//! needs no full file system.
use std::time::Duration;

use loyalty_store::conformance::sample_event;
use loyalty_store::{
    Bytes, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, Position,
    StoreError, StreamFrom,
};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

/// A guard against the test hanging; never a speed assertion.
const LIVENESS: Duration = Duration::from_secs(120);

/// An event of about 16 KiB: a few of them need new pages.
fn big_event(n: u64) -> EventData {
    let mut event = sample_event(n);
    event.data = Bytes::from(format!(
        r#"{{"n":{n},"padding":"{}"}}"#,
        "x".repeat(16 * 1024)
    ));
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_as_storage_full_and_succeed_again_once_there_is_room() {
    tokio::time::timeout(LIVENESS, recovers_from_a_full_disk())
        .await
        .expect("the test hung");
}

async fn recovers_from_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db"), SqliteOptions::default())
        .await
        .unwrap();
    store
        .append("member-1", ExpectedRevision::NoStream, vec![big_event(0)])
        .await
        .unwrap();
    // Given the file may not grow any more (SQLite never sets the limit below its size)...
    let limit = store.set_max_page_count(1).await.unwrap();
    assert!(limit > 1, "the limit is the file's size, {limit} pages");

    // ...when appends need new pages, they fail as storage full, a transient error...
    let mut refused = None;
    for n in 1..64 {
        let expected = ExpectedRevision::Exact(n - 1);
        match store.append("member-1", expected, vec![big_event(n)]).await {
            Ok(_) => continue,
            Err(e) => {
                refused = Some((n, e));
                break;
            }
        }
    }
    let (first_refused, err) = refused.expect("appends went on although the file was full");
    assert!(matches!(err, StoreError::StorageFull(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("out of space"), "{err}");
    // ...and keep failing while there is no room, each leaving nothing behind...
    let again = store
        .append(
            "member-1",
            ExpectedRevision::Exact(first_refused - 1),
            vec![big_event(first_refused)],
        )
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::StorageFull(_)), "{again:?}");
    assert_eq!(
        store.stream_revision("member-1").await.unwrap(),
        CurrentRevision::Current(first_refused - 1)
    );

    // ...then, once there is room again, the same store takes appends.
    store.set_max_page_count(1 << 30).await.unwrap();
    let retried = big_event(first_refused);
    let written = store
        .append(
            "member-1",
            ExpectedRevision::Exact(first_refused - 1),
            vec![retried.clone()],
        )
        .await
        .expect("an append after space was freed");
    assert_eq!(written.next_expected_revision, first_refused);
    store
        .append(
            "member-2",
            ExpectedRevision::NoStream,
            vec![sample_event(1)],
        )
        .await
        .expect("another append");
    let stream = store
        .read_stream("member-1", StreamFrom::Start, Direction::Forwards, 100)
        .await
        .unwrap();
    let revisions: Vec<u64> = stream.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (0..=first_refused).collect::<Vec<_>>());
    assert_eq!(stream.last().unwrap().id, retried.id);
    let all = store.read_all(Position::START, 100).await.unwrap();
    assert_eq!(all.len() as u64, first_refused + 2);
    store.close().await.unwrap();
}
