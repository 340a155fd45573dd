//! The file's schema and its upgrades, versioned by SQLite's `user_version` pragma.
//!
//! Each entry of [`MIGRATIONS`] takes the file from version `i` to `i + 1`, inside the same
//! transaction as the version bump, so an upgrade is all or nothing. A file whose version is
//! newer than this build knows is refused: an old binary must not write into a layout it does
//! not understand.
use rusqlite::{Connection, TransactionBehavior};

use crate::OpenError;

/// Migration `i` upgrades a file at schema version `i` to `i + 1`. Never edit a released entry;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the log. `position` is the rowid: the global order of `$all`, assigned by the
    // writer as the previous maximum plus one, so it only grows.
    "CREATE TABLE events (
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
    CREATE UNIQUE INDEX events_by_stream_and_id ON events (stream, event_id);",
    // 1 -> 2: each stream's last revision, so the writer's concurrency check is one point
    // lookup rather than a scan for the maximum. Filled from the log for existing files.
    "CREATE TABLE streams (
        name     TEXT    PRIMARY KEY,
        revision INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO streams (name, revision)
        SELECT stream, MAX(revision) FROM events GROUP BY stream;",
    // 2 -> 3: the streams table goes again. Every append rewrote one of its pages at random,
    // a quarter of the pages a purchase added to the log, and the (stream, revision) index
    // answers the same question with one seek to the stream's last entry.
    "DROP TABLE streams;",
    // 3 -> 4: the index of event ids goes too. It cost another random page per event (with
    // the streams table gone, 42% of the log pages a purchase writes). A retry is now found
    // where it must be: right after the revision it expected (see `writer::append_one`).
    "DROP INDEX events_by_stream_and_id;",
    // 4 -> 5: `truncate_before` deletes rows, so two facts no longer follow from the events
    // table alone. `truncated_streams` holds, for each truncated stream, its last revision
    // and that event's position when it was truncated: a stream whose events are all gone
    // still exists at that revision. `log_head` holds the highest position assigned when a
    // truncation deleted it, so positions never go back. Both start empty: a file of an
    // older version has truncated nothing.
    "CREATE TABLE truncated_streams (
        stream        TEXT    PRIMARY KEY,
        last_revision INTEGER NOT NULL,
        last_position INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE log_head (
        id       INTEGER PRIMARY KEY CHECK (id = 0),
        position INTEGER NOT NULL
    );",
    // 5 -> 6: the hash chain (see `crate::chain`): one link per event, by position, kept when
    // `truncate_before` deletes the event. A stream's last stream hash is the link at the
    // position of its last event, which `events` or `truncated_streams` already gives with
    // its revision, so no index is added. The links of the events an older file holds are
    // built right after this step, in the same transaction (`chain::build`).
    "CREATE TABLE chain (
        position    INTEGER PRIMARY KEY,
        stream      TEXT    NOT NULL,
        revision    INTEGER NOT NULL,
        event_hash  BLOB    NOT NULL,
        stream_hash BLOB    NOT NULL,
        chain_hash  BLOB    NOT NULL
    );",
    // 6 -> 7: the key vault (see `crate::vault`). `member_keys` holds every key ever made, by
    // `seq`, the order they were made in; a destroyed key keeps its row, with `live = 0` and a
    // secret of zeros written over the old one in place. Rows are never deleted and always
    // added at the end, so SQLite never moves a key's row to another page: a move leaves the
    // old copy in the page's unallocated space, which not even `secure_delete` zeroes (see
    // `crate::vault`). A member has at most one live key: the partial unique index.
    // `member_erasures` holds each member's latest erasure. Times are RFC 3339 UTC text of
    // fixed width, so that they compare as text.
    "CREATE TABLE member_keys (
        seq        INTEGER PRIMARY KEY,
        key_id     TEXT    NOT NULL UNIQUE,
        member_id  TEXT    NOT NULL,
        secret     BLOB    NOT NULL CHECK (length(secret) = 32),
        live       INTEGER NOT NULL CHECK (live IN (0, 1)),
        created_at TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX member_keys_live ON member_keys (member_id) WHERE live = 1;
    CREATE TABLE member_erasures (
        member_id TEXT PRIMARY KEY,
        erased_at TEXT NOT NULL
    ) WITHOUT ROWID;",
];

/// The version whose step creates the `chain` table: the chain of the events a file already
/// holds is built after that step, in Rust (SQL has no SHA-256).
const CHAIN_VERSION: usize = 6;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the file at `conn` to [`SCHEMA_VERSION`], or refuses a newer one.
/// Brings the file to [`SCHEMA_VERSION`]: creates a new file's schema, and upgrades an older
/// one when `allow` (else refuses it: see `SqliteOptions::upgrade`).
pub(crate) fn upgrade(conn: &mut Connection, allow: bool) -> Result<(), OpenError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if !allow && found > 0 && found < SCHEMA_VERSION {
        return Err(OpenError::SchemaTooOld {
            found,
            current: SCHEMA_VERSION,
        });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // A new file runs every step at once: one line for it below, not one per step.
        if found > 0 {
            tracing::info!(from, to = from + 1, "upgrading event store schema");
        }
        tx.execute_batch(migration)?;
        if from + 1 == CHAIN_VERSION {
            let linked = crate::chain::build(&tx)?;
            if linked > 0 {
                tracing::info!(linked, "built the hash chain of the events the file holds");
            }
        }
    }
    if found == 0 {
        tracing::info!("created event store schema v{SCHEMA_VERSION}");
    }
    if found < SCHEMA_VERSION {
        // PRAGMA takes no bound parameters; the value is our own constant.
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    tx.commit()?;
    Ok(())
}
