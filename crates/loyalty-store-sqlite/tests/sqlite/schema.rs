//! The file's schema version: older files are upgraded on open, newer ones refused untouched.
use loyalty_store::{CurrentRevision, Direction, EventStore, ExpectedRevision, StreamFrom};
use loyalty_store_sqlite::{OpenError, SCHEMA_VERSION, SqliteOptions, SqliteStore};
use rusqlite::Connection;

fn user_version(path: &std::path::Path) -> u32 {
    Connection::open(path)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

/// The layout schema version 1 wrote, kept here verbatim as a fixture of an old file.
const SCHEMA_V1: &str = "
    CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        stream         TEXT    NOT NULL,
        revision       INTEGER NOT NULL,
        event_id       BLOB    NOT NULL,
        event_type     TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        data           BLOB    NOT NULL,
        metadata       BLOB    NOT NULL,
        UNIQUE (stream, revision)
    );
    CREATE UNIQUE INDEX events_by_stream_and_id ON events (stream, event_id);
    PRAGMA user_version = 1;
";

#[tokio::test]
async fn a_new_file_is_created_at_the_current_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    store.close().await.unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_file_of_schema_version_1_is_upgraded_and_keeps_its_events() {
    // Given a file written by schema version 1, holding three events of one stream...
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        for revision in 0..3i64 {
            conn.execute(
                "INSERT INTO events VALUES (?1, 'member-7', ?2, ?3, 'PointsEarned', 1, X'7B7D', X'7B7D')",
                rusqlite::params![
                    revision + 1,
                    revision,
                    uuid::Uuid::new_v4().as_bytes().as_slice()
                ],
            )
            .unwrap();
        }
    }

    // ...when this build opens it...
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();

    // ...then the events are there and appends continue from the right revision.
    assert_eq!(
        store.stream_revision("member-7").await.unwrap(),
        CurrentRevision::Current(2)
    );
    let err = store
        .append(
            "member-7",
            ExpectedRevision::Exact(1),
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, loyalty_store::StoreError::WrongExpectedRevision { .. }),
        "{err}"
    );
    let result = store
        .append(
            "member-7",
            ExpectedRevision::Exact(2),
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .unwrap();
    assert_eq!(result.next_expected_revision, 3);
    let read = store
        .read_stream("member-7", StreamFrom::Start, Direction::Forwards, 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 4);
    store.close().await.unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_file_of_a_newer_schema_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let newer = SCHEMA_VERSION + 1;
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE future (x); PRAGMA user_version = {newer};"
        ))
        .unwrap();

    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();

    assert!(
        matches!(err, OpenError::SchemaTooNew { found, supported } if found == newer && supported == SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    assert_eq!(user_version(&path), newer);
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, "delete",
        "the journal mode of a refused file was changed"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(
        &path,
        b"this is not a SQLite file, just some text that is long enough",
    )
    .unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::Sqlite(_)), "{err}");
}

#[tokio::test]
async fn a_file_of_schema_version_6_is_upgraded_and_gets_a_key_vault() {
    // Given a file as schema version 6 left it (this build's file without the vault's
    // tables, which the step to 7 adds), holding an event...
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let appended = store
        .append(
            "member-7",
            ExpectedRevision::NoStream,
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DROP TABLE member_keys; DROP TABLE member_erasures; PRAGMA user_version = 6;",
        )
        .unwrap();
    assert_eq!(user_version(&path), 6);

    // ...when this build opens it...
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();

    // ...then it is at the current version, its event is there, and its vault works.
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(
        store.stream_revision("member-7").await.unwrap(),
        CurrentRevision::Current(appended.next_expected_revision)
    );
    let vault = store.key_vault().expect("a vault");
    let key = vault.key_for("m-7").await.unwrap();
    assert_eq!(vault.key(&key.key_id).await.unwrap(), Some(key));
    drop(vault);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_tool_that_only_reads_refuses_an_older_file_and_leaves_it_at_its_version() {
    // Given a file written by schema version 1
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA_V1)
        .unwrap();
    let reading = SqliteOptions {
        upgrade: false,
        ..SqliteOptions::default()
    };
    // When a tool that must not upgrade it opens it
    let err = SqliteStore::open(&path, reading).await.unwrap_err();
    // Then it is refused, saying why, and the file is still at version 1 (the servers of the
    // older release can still open it)
    assert!(
        matches!(err, OpenError::SchemaTooOld { found: 1, current } if current == SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("server of this release"), "{err}");
    assert_eq!(user_version(&path), 1);
    // And a new file is still created at the current version
    let fresh = dir.path().join("new.db");
    SqliteStore::open(&fresh, reading)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    assert_eq!(user_version(&fresh), SCHEMA_VERSION);
}
