//! The hash chain in the file (see [`loyalty_store::chain`]): one row of the `chain` table per
//! event ever appended, written by the writer in the transaction that inserts the event, and
//! never deleted (`truncate_before` deletes the event's row from `events` only).
//!
//! Each stream's last `stream_hash` is found where the stream's last revision is: that event's
//! position, from the `(stream, revision)` index of `events` or, once a truncation deleted
//! every event of the stream, from `truncated_streams`, keys its row here. So the chain adds no
//! index and no random page write to an append: its rows go at the end of the table, in
//! position order.
use rusqlite::{Connection, OptionalExtension, params};

use loyalty_store::chain::{self, ChainLink, EventFields, GENESIS, Hash};
use loyalty_store::{Position, StoreError};

use crate::{OpenError, backend, from_sql_int, to_sql_int};

/// The chain's last hash: that of the highest position, or [`GENESIS`] for an empty file.
pub(crate) fn head(conn: &Connection) -> Result<Hash, rusqlite::Error> {
    Ok(conn
        .prepare_cached("SELECT chain_hash FROM chain ORDER BY position DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(GENESIS))
}

/// The `stream_hash` of the link at `position`. `None` when there is no link there: the
/// stream's events were all truncated before the file had a chain (see [`build`]), and its
/// chain starts again from [`GENESIS`], as `verify` expects of a stream it has no link of.
pub(crate) fn stream_hash_at(
    conn: &Connection,
    position: i64,
) -> Result<Option<Hash>, rusqlite::Error> {
    conn.prepare_cached("SELECT stream_hash FROM chain WHERE position = ?1")?
        .query_row([position], |r| r.get(0))
        .optional()
}

/// The link of `event` after the chain's last hash `previous` and its stream's last hash
/// `stream_previous`, inserted; returns it for the next event to chain on.
pub(crate) fn append(
    conn: &Connection,
    event: EventFields<'_>,
    previous: &Hash,
    stream_previous: &Hash,
) -> Result<(Hash, Hash), AppendError> {
    let event_hash = chain::event_hash(event);
    let stream_hash = chain::link(stream_previous, &event_hash);
    let chain_hash = chain::chain_link(
        previous,
        event.position,
        event.stream,
        event.revision,
        &event_hash,
    );
    conn.prepare_cached(
        "INSERT INTO chain (position, stream, revision, event_hash, stream_hash, chain_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        to_sql_int(event.position.commit)?,
        event.stream,
        to_sql_int(event.revision)?,
        event_hash,
        stream_hash,
        chain_hash,
    ])?;
    Ok((chain_hash, stream_hash))
}

/// Why a link could not be written.
#[derive(Debug)]
pub(crate) enum AppendError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for AppendError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for AppendError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Links strictly after `after` and up to `durable`, in position order.
pub(crate) fn read(
    conn: &Connection,
    after: Position,
    max_count: usize,
    durable: Position,
) -> Result<Vec<ChainLink>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT position, stream, revision, event_hash, stream_hash, chain_hash FROM chain
             WHERE position > ?1 AND position <= ?3 ORDER BY position LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(
            params![
                to_sql_int(after.commit.max(after.prepare))?,
                to_sql_int(max_count as u64)?,
                to_sql_int(durable.commit)?
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Hash>(3)?,
                    r.get::<_, Hash>(4)?,
                    r.get::<_, Hash>(5)?,
                ))
            },
        )
        .map_err(corrupt_or_backend)?;
    rows.map(|row| {
        let (position, stream, revision, event_hash, stream_hash, chain_hash) =
            row.map_err(corrupt_or_backend)?;
        let position = from_sql_int(position)?;
        Ok(ChainLink {
            position: Position::new(position, position),
            stream,
            revision: from_sql_int(revision)?,
            event_hash,
            stream_hash,
            chain_hash,
        })
    })
    .collect()
}

/// A hash column that is not 32 bytes was written by something else than this store.
fn corrupt_or_backend(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::Corrupt(format!("a link of the hash chain: {e}"))
        }
        other => backend(other),
    }
}

/// Events read at a time while building the chain of an older file.
const BUILD_PAGE: usize = 1_000;

/// Builds the chain of a file written before this store kept one, inside the upgrade's
/// transaction, over the events the file still holds, in position order. What was truncated
/// before cannot be chained (its bytes are gone): the chain starts at the first event held,
/// and a stream whose first events were truncated starts its stream chain at the first one it
/// still holds, from [`GENESIS`]. Memory is bounded by one page of events; each event costs
/// one indexed lookup of its stream's previous link. Returns the number of links written.
pub(crate) fn build(conn: &Connection) -> Result<u64, OpenError> {
    link_after(conn, Position::START).map_err(|e| match e {
        AppendError::Sql(e) => e.into(),
        AppendError::Store(e) => e.into(),
    })
}

/// Links the events after `after`, which have none: [`build`]'s walk, from any position.
fn link_after(conn: &Connection, mut after: Position) -> Result<u64, AppendError> {
    let everything = Position::new(i64::MAX as u64, i64::MAX as u64);
    let mut previous = head(conn)?;
    let mut linked = 0;
    loop {
        let page = crate::reader::read_all(conn, after, BUILD_PAGE, everything)?;
        let Some(last) = page.last() else {
            return Ok(linked);
        };
        after = last.position;
        for event in &page {
            let stream_previous = match previous_of_stream(conn, &event.stream, event.revision)
                .map_err(|e| match e {
                    OpenError::Sqlite(e) => AppendError::Sql(e),
                    other => AppendError::Store(StoreError::Backend(other.to_string())),
                })? {
                Some(position) => stream_hash_at(conn, position)?.unwrap_or(GENESIS),
                None => GENESIS,
            };
            (previous, _) = append(conn, event.into(), &previous, &stream_previous)?;
            linked += 1;
        }
    }
}

/// Links the events another process appended without links since the chain's last one, in
/// the writer's transaction, before the batch's own: a process of an older build that opened
/// the file before this one upgraded it goes on appending (it checked the schema version only
/// when it opened the file). Two lookups of a maximum by rowid when there is nothing to do.
pub(crate) fn catch_up(conn: &Connection) -> Result<u64, AppendError> {
    let chained: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM chain")?
        .query_row([], |r| r.get(0))?;
    let held: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM events")?
        .query_row([], |r| r.get(0))?;
    if held <= chained {
        return Ok(0);
    }
    let after = from_sql_int(chained)?;
    let linked = link_after(conn, Position::new(after, after))?;
    tracing::warn!(
        linked,
        "chained events that another process appended without links (a process of an older \
         build still writes to this file: stop it)"
    );
    Ok(linked)
}

/// The position of the event of `stream` before `revision` that the file still holds.
fn previous_of_stream(
    conn: &Connection,
    stream: &str,
    revision: u64,
) -> Result<Option<i64>, OpenError> {
    Ok(conn
        .prepare_cached(
            "SELECT position FROM events WHERE stream = ?1 AND revision < ?2
             ORDER BY revision DESC LIMIT 1",
        )?
        .query_row(params![stream, to_sql_int(revision)?], |r| r.get(0))
        .optional()?)
}
