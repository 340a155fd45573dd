//! Tamper evidence in the file: what someone with write access to the SQLite file changes
//! behind the store's back is named by `verify`, down to the event.
use std::path::{Path, PathBuf};

use loyalty_store::chain::{self, ChainLink, ChainReport, GENESIS, VerifyOptions};
use loyalty_store::conformance::sample_event;
use loyalty_store::{
    Direction, EventStore, ExpectedRevision, Position, RecordedEvent, StreamAppend, StreamFrom,
};
use loyalty_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
use rusqlite::{Connection, params};

fn checkpoints(stream: &str) -> bool {
    stream.starts_with("checkpoint-")
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open store")
}

/// Opens the file, verifies its whole chain and closes it again.
async fn verify_file(
    path: &Path,
    may_truncate: &(dyn Fn(&str) -> bool + Send + Sync),
) -> ChainReport {
    let store = open(path).await;
    let report = chain::verify(
        &store,
        VerifyOptions {
            up_to: None,
            may_truncate,
        },
    )
    .await
    .expect("verify");
    store.close().await.expect("close");
    report
}

async fn read_all(store: &SqliteStore) -> Vec<RecordedEvent> {
    store
        .read_all(Position::START, 1_000)
        .await
        .expect("read $all")
}

async fn read_chain(store: &SqliteStore) -> Vec<ChainLink> {
    store
        .read_chain(Position::START, 1_000)
        .await
        .expect("read chain")
}

/// A closed file holding member-1 0..4, checkpoint-1 0..4 (0..3 truncated) and member-2 0..3
/// (appended with member-1's last event in one `append_many`); returns its events as read.
async fn written_file(dir: &Path) -> (PathBuf, Vec<RecordedEvent>) {
    let path = dir.join("events.db");
    let store = open(&path).await;
    let events = |count: u64| (0..count).map(sample_event).collect::<Vec<_>>();
    store
        .append("member-1", ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    store
        .append("checkpoint-1", ExpectedRevision::NoStream, events(4))
        .await
        .unwrap();
    store
        .append_many(vec![
            StreamAppend {
                stream: "member-2".to_owned(),
                expected: ExpectedRevision::NoStream,
                events: events(3),
            },
            StreamAppend {
                stream: "member-1".to_owned(),
                expected: ExpectedRevision::Exact(2),
                events: events(1),
            },
        ])
        .await
        .unwrap();
    store.truncate_before("checkpoint-1", 3).await.unwrap();
    let held = read_all(&store).await;
    store.close().await.unwrap();
    (path, held)
}

fn event_at<'a>(events: &'a [RecordedEvent], stream: &str, revision: u64) -> &'a RecordedEvent {
    events
        .iter()
        .find(|e| e.stream == stream && e.revision == revision)
        .expect("the event")
}

fn named(report: &ChainReport) -> (Position, &str, u64) {
    let mismatch = report.mismatch.as_ref().expect("a mismatch");
    (
        mismatch.position,
        mismatch.stream.as_str(),
        mismatch.revision,
    )
}

fn reason(report: &ChainReport) -> &str {
    &report.mismatch.as_ref().expect("a mismatch").reason
}

fn sql_position(event: &RecordedEvent) -> i64 {
    i64::try_from(event.position.commit).unwrap()
}

#[tokio::test]
async fn an_untouched_file_verifies_after_a_reopen() {
    // Given a file written, truncated and closed...
    let dir = tempfile::tempdir().unwrap();
    let (path, held) = written_file(dir.path()).await;

    // ...when it is reopened and verified...
    let report = verify_file(&path, &checkpoints).await;

    // ...then every link checks, three of them truncated, up to the last event.
    assert_eq!(report.mismatch, None);
    assert!(!report.derived);
    assert_eq!(
        (report.links, report.events_checked, report.truncated),
        (11, 8, 3)
    );
    assert_eq!(
        report.head.map(|h| h.position),
        held.last().map(|e| e.position)
    );
}

#[tokio::test]
async fn one_byte_changed_in_one_event_is_named_and_still_named_once_its_hash_is_rewritten() {
    // Given one byte of member-2's revision 1 changed in the file...
    let dir = tempfile::tempdir().unwrap();
    let (path, held) = written_file(dir.path()).await;
    let target = event_at(&held, "member-2", 1).clone();
    let position = sql_position(&target);
    {
        let conn = Connection::open(&path).unwrap();
        let mut data: Vec<u8> = conn
            .query_row(
                "SELECT data FROM events WHERE position = ?1",
                [position],
                |r| r.get(0),
            )
            .unwrap();
        data[10] ^= 0x01;
        let changed = conn
            .execute(
                "UPDATE events SET data = ?1 WHERE position = ?2",
                params![data, position],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    // ...verify names exactly that event, by its content...
    let report = verify_file(&path, &checkpoints).await;
    assert_eq!(named(&report), (target.position, "member-2", 1));
    assert!(reason(&report).contains("content"), "{}", reason(&report));

    // ...and once its stored event hash is rewritten to match the new bytes, by its link.
    let store = open(&path).await;
    let changed = store
        .read_stream("member-2", StreamFrom::Revision(1), Direction::Forwards, 1)
        .await
        .unwrap()
        .remove(0);
    store.close().await.unwrap();
    assert_ne!(changed.data, target.data);
    let rewritten = chain::event_hash((&changed).into());
    let updated = Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE chain SET event_hash = ?1 WHERE position = ?2",
            params![rewritten, position],
        )
        .unwrap();
    assert_eq!(updated, 1);
    let report = verify_file(&path, &checkpoints).await;
    assert_eq!(named(&report), (target.position, "member-2", 1));
    assert!(
        reason(&report).contains("chain is broken"),
        "{}",
        reason(&report)
    );
}

#[tokio::test]
async fn a_deleted_event_of_a_stream_never_truncated_is_named() {
    // Given member-1's revision 1 deleted from the file...
    let dir = tempfile::tempdir().unwrap();
    let (path, held) = written_file(dir.path()).await;
    let deleted = event_at(&held, "member-1", 1).clone();
    let removed = Connection::open(&path)
        .unwrap()
        .execute(
            "DELETE FROM events WHERE stream = 'member-1' AND revision = 1",
            [],
        )
        .unwrap();
    assert_eq!(removed, 1);

    // ...when member streams are never truncated, it is named as deleted...
    let report = verify_file(&path, &checkpoints).await;
    assert_eq!(named(&report), (deleted.position, "member-1", 1));
    assert!(reason(&report).contains("deleted"), "{}", reason(&report));

    // ...where a stream that may be truncated would only count it.
    let report = verify_file(&path, &|_| true).await;
    assert_eq!(report.mismatch, None);
    assert_eq!(report.truncated, 4);
}

#[tokio::test]
async fn a_file_written_before_the_chain_gets_one_at_open_for_the_events_it_holds() {
    // Given a file of schema version 5 (no chain table), in which checkpoint-1's revisions
    // 0 and 1 and all of lease-1 were truncated...
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = open(&path).await;
    let events = |count: u64| (0..count).map(sample_event).collect::<Vec<_>>();
    for (stream, count) in [("member-1", 2), ("checkpoint-1", 4), ("lease-1", 2)] {
        store
            .append(stream, ExpectedRevision::NoStream, events(count))
            .await
            .unwrap();
    }
    store.truncate_before("checkpoint-1", 2).await.unwrap();
    store.truncate_before("lease-1", 9).await.unwrap();
    store
        .append("member-1", ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    store.close().await.unwrap();
    Connection::open(&path)
        .unwrap()
        // The tables of later versions go too: version 5 had none of them.
        .execute_batch(
            "DROP TABLE chain; DROP TABLE member_keys; DROP TABLE member_erasures;
             PRAGMA user_version = 5;",
        )
        .unwrap();

    // ...when this build opens it...
    let store = open(&path).await;

    // ...then it has a link for every event it holds and none for the others...
    let held = read_all(&store).await;
    let links = read_chain(&store).await;
    let linked: Vec<Position> = links.iter().map(|l| l.position).collect();
    let stored: Vec<Position> = held.iter().map(|e| e.position).collect();
    assert_eq!(linked, stored);
    assert_eq!(held.len(), 5);
    // ...chained over them in position order from GENESIS, as `$all` reads now...
    let mut derived = GENESIS;
    for (link, event) in links.iter().zip(&held) {
        derived = chain::chain_link(
            &derived,
            event.position,
            &event.stream,
            event.revision,
            &chain::event_hash(event.into()),
        );
        assert_eq!(link.chain_hash, derived);
    }
    // ...and it verifies with no stream allowed to have lost an event since.
    let never = |_: &str| false;
    let report = chain::verify(
        &store,
        VerifyOptions {
            up_to: None,
            may_truncate: &never,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.mismatch, None);
    assert_eq!(report.links, 5);

    // Appends chain on: checkpoint-1 from the link of its last event, lease-1 (whose events
    // were all truncated before the chain) from GENESIS again.
    store
        .append("checkpoint-1", ExpectedRevision::Exact(3), events(1))
        .await
        .unwrap();
    store
        .append("lease-1", ExpectedRevision::Exact(1), events(1))
        .await
        .unwrap();
    let links = read_chain(&store).await;
    let checkpoint = links
        .iter()
        .filter(|l| l.stream == "checkpoint-1")
        .collect::<Vec<_>>();
    assert_eq!(checkpoint.len(), 3);
    assert_eq!(
        checkpoint[2].stream_hash,
        chain::link(&checkpoint[1].stream_hash, &checkpoint[2].event_hash)
    );
    let lease = links
        .iter()
        .rfind(|l| l.stream == "lease-1")
        .expect("a link");
    assert_eq!(lease.revision, 2);
    assert_eq!(lease.stream_hash, chain::link(&GENESIS, &lease.event_hash));
    let report = chain::verify(
        &store,
        VerifyOptions {
            up_to: None,
            may_truncate: &never,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.mismatch, None);
    assert_eq!(report.links, 7);
    store.close().await.unwrap();
    let version: u32 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn events_an_older_builds_process_appends_to_an_upgraded_file_are_chained_by_the_next_append()
{
    // Given a file with a chain, to which a process of an older build (which opened the file
    // before it was upgraded, and knows nothing of links) appends two events of member-1
    let dir = tempfile::tempdir().unwrap();
    let (path, held) = written_file(dir.path()).await;
    let last = held.last().unwrap();
    let next_revision = held
        .iter()
        .filter(|e| e.stream == "member-1")
        .map(|e| e.revision)
        .max()
        .unwrap()
        + 1;
    {
        let conn = Connection::open(&path).unwrap();
        for i in 0..2u64 {
            let event = sample_event(40 + i);
            conn.execute(
                "INSERT INTO events
                    (position, stream, revision, event_id, event_type, schema_version, data,
                     metadata)
                 VALUES (?1, 'member-1', ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    sql_position(last) + 1 + i as i64,
                    (next_revision + i) as i64,
                    event.id.as_bytes().as_slice(),
                    event.event_type,
                    event.schema_version,
                    event.data.as_ref(),
                    event.metadata.as_ref(),
                ],
            )
            .unwrap();
        }
    }
    // When this build appends next
    let store = open(&path).await;
    store
        .append(
            "member-3",
            ExpectedRevision::NoStream,
            vec![sample_event(50)],
        )
        .await
        .unwrap();
    let links = read_chain(&store).await;
    store.close().await.unwrap();
    // Then the older build's events got their links first, and the whole chain verifies
    let report = verify_file(&path, &checkpoints).await;
    assert_eq!(report.mismatch, None, "{report:?}");
    assert_eq!(report.events_checked, held.len() as u64 + 3);
    let streams: Vec<&str> = links
        .iter()
        .rev()
        .take(3)
        .map(|l| l.stream.as_str())
        .collect();
    assert_eq!(streams, vec!["member-3", "member-1", "member-1"]);
}
