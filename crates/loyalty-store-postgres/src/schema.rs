//! The store's tables and their upgrades, versioned by the one row of `loyalty_schema_version`
//! in the store's own PostgreSQL schema.
//!
//! Each entry of [`MIGRATIONS`] takes the schema from version `i` to `i + 1`. Every migration
//! still due runs in one transaction with the version bump, under an advisory lock of its own,
//! so an upgrade is all or nothing and two processes opening a fresh database at once do not
//! race (PostgreSQL's DDL is transactional). A schema whose version is newer than this build
//! knows is refused: an old binary must not write into a layout it does not understand.
use deadpool_postgres::Client;

use crate::error::SqlResult;
use crate::{Names, OpenError};

/// Migration `i` upgrades a schema at version `i` to `i + 1`. Never edit a released entry;
/// append a new one. The statements run with `search_path` set to the store's schema.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the log, each stream's last revision, and the counter of positions.
    //
    // `events.position` is the global order of `$all`, taken from `log_head` under the log
    // lock (see the crate's documentation): consecutive, and committed in order. `stream` is
    // compared byte for byte (COLLATE "C"): names are identifiers, not words to sort. The
    // schema version is a `u32`, which INT (signed) cannot hold whole, hence BIGINT.
    // `UNIQUE (stream, event_id)` finds a retried append's events among all of its stream's,
    // whatever its expected revision.
    //
    // `streams` keeps a stream's last revision, and the revision its events were truncated
    // before, when the events themselves are gone. `log_head` keeps the highest position
    // assigned, also when a truncation deleted that event, so positions never go back.
    r#"CREATE TABLE events (
        position       BIGINT PRIMARY KEY CHECK (position > 0),
        stream         TEXT COLLATE "C" NOT NULL,
        revision       BIGINT NOT NULL CHECK (revision >= 0),
        event_id       UUID   NOT NULL,
        event_type     TEXT   NOT NULL,
        schema_version BIGINT NOT NULL CHECK (schema_version BETWEEN 0 AND 4294967295),
        data           BYTEA  NOT NULL,
        metadata       BYTEA  NOT NULL,
        UNIQUE (stream, revision),
        UNIQUE (stream, event_id)
    );
    CREATE TABLE streams (
        stream           TEXT COLLATE "C" PRIMARY KEY,
        last_revision    BIGINT NOT NULL CHECK (last_revision >= 0),
        truncated_before BIGINT NOT NULL DEFAULT 0 CHECK (truncated_before >= 0)
    );
    CREATE TABLE log_head (
        id       INT    PRIMARY KEY CHECK (id = 0),
        position BIGINT NOT NULL CHECK (position >= 0)
    );
    INSERT INTO log_head (id, position) VALUES (0, 0);"#,
    // 1 -> 2: the hash chain (`loyalty_store::chain`).
    //
    // `chain` keeps one link per event, written in the append's transaction, and never
    // deleted: truncation removes an event's bytes from `events`, not its link. `streams`
    // gains each stream's last `stream_hash` (NULL: the stream's chain has not started, the
    // next link starts from GENESIS), `log_head` the chain's head: every event at a position
    // up to `chained_to` that was stored when it was chained has its link, and `chain_hash` is
    // the last link's. Events written before (by an earlier build, or by a process of an
    // earlier build still running during an upgrade) sit above `chained_to`: the store chains
    // them, in position order, at open and before its next append (see `chain_pending`).
    r#"CREATE TABLE chain (
        position    BIGINT PRIMARY KEY CHECK (position > 0),
        stream      TEXT COLLATE "C" NOT NULL,
        revision    BIGINT NOT NULL CHECK (revision >= 0),
        event_hash  BYTEA  NOT NULL CHECK (octet_length(event_hash) = 32),
        stream_hash BYTEA  NOT NULL CHECK (octet_length(stream_hash) = 32),
        chain_hash  BYTEA  NOT NULL CHECK (octet_length(chain_hash) = 32)
    );
    ALTER TABLE streams
        ADD COLUMN last_hash BYTEA CHECK (octet_length(last_hash) = 32);
    ALTER TABLE log_head
        ADD COLUMN chained_to BIGINT NOT NULL DEFAULT 0 CHECK (chained_to >= 0),
        ADD COLUMN chain_hash BYTEA NOT NULL DEFAULT decode(repeat('00', 32), 'hex')
            CHECK (octet_length(chain_hash) = 32);"#,
    // 2 -> 3: the key vault (see `crate::vault`): each member's live key (at most one; an
    // erasure deletes it) and each member's latest erasure. Ids are compared byte for byte,
    // as stream names are.
    r#"CREATE TABLE member_keys (
        key_id     TEXT COLLATE "C" PRIMARY KEY,
        member_id  TEXT COLLATE "C" NOT NULL UNIQUE,
        secret     BYTEA NOT NULL CHECK (octet_length(secret) = 32),
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE member_erasures (
        member_id TEXT COLLATE "C" PRIMARY KEY,
        erased_at TIMESTAMPTZ NOT NULL
    );"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Creates the store's schema if it is missing and brings it to [`SCHEMA_VERSION`], or refuses
/// a newer one. Needs no privilege beyond reading when the schema is already up to date.
/// Brings the schema to [`SCHEMA_VERSION`]: creates a new one, and upgrades an older one when
/// `allow` (else refuses it: see `PostgresOptions::upgrade`).
pub(crate) async fn upgrade(
    client: &mut Client,
    names: &Names,
    allow: bool,
) -> Result<(), OpenError> {
    let schema = names.schema.as_str();
    let tx = client.transaction().await.sql()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&names.migration_lock])
        .await
        .sql()?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .sql()?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {}", names.quoted_schema()))
            .await
            .sql()?;
    }
    // Every session already has it (see `session_options`); repeated here so that the tables
    // land in the schema just created whatever the session's path was computed from.
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO {}",
        names.quoted_schema()
    ))
    .await
    .sql()?;
    let has_version_table = tx
        .query_one(
            "SELECT to_regclass('loyalty_schema_version') IS NOT NULL",
            &[],
        )
        .await
        .sql()?
        .get::<_, bool>(0);
    if !has_version_table {
        tx.batch_execute(
            "CREATE TABLE loyalty_schema_version (
                id      INT PRIMARY KEY CHECK (id = 0),
                version INT NOT NULL
            );
            INSERT INTO loyalty_schema_version (id, version) VALUES (0, 0);",
        )
        .await
        .sql()?;
    }
    let found: i32 = tx
        .query_one(
            "SELECT version FROM loyalty_schema_version WHERE id = 0",
            &[],
        )
        .await
        .sql()?
        .get(0);
    let found = u32::try_from(found).map_err(|_| {
        OpenError::Store(loyalty_store::StoreError::Corrupt(format!(
            "schema {schema} has the negative version {found}"
        )))
    })?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if !allow && found > 0 && found < SCHEMA_VERSION {
        return Err(OpenError::SchemaTooOld {
            schema: schema.to_owned(),
            found,
            current: SCHEMA_VERSION,
        });
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        // A new schema runs every step at once: one line for it below, not one per step.
        if found > 0 {
            tracing::info!(schema, from, to = from + 1, "upgrading event store schema");
        }
        tx.batch_execute(migration).await.sql()?;
    }
    if found == 0 {
        tracing::info!(schema, "created event store schema v{SCHEMA_VERSION}");
    }
    if found < SCHEMA_VERSION {
        tx.execute(
            "UPDATE loyalty_schema_version SET version = $1 WHERE id = 0",
            &[&(SCHEMA_VERSION as i32)],
        )
        .await
        .sql()?;
    }
    tx.commit().await.sql()?;
    Ok(())
}
