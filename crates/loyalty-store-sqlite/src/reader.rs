//! Readers: a small pool of their own connections, so reads never wait for the writer (WAL
//! gives each read a consistent snapshot of committed transactions while the writer goes on).
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::Semaphore;

use loyalty_store::{
    Bytes, CurrentRevision, Direction, Position, RecordedEvent, StoreError, StreamFrom, Uuid,
};

use crate::{backend, from_sql_int, to_sql_int};

#[derive(Debug)]
pub(crate) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Bounds the connections (and blocking threads) reads use at once.
    permits: Arc<Semaphore>,
}

const COLUMNS: &str =
    "position, stream, revision, event_id, event_type, schema_version, data, metadata";

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, size: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    /// Runs `f` on a pooled connection on the blocking thread pool.
    pub(crate) async fn with<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.take() {
                Some(conn) => conn,
                None => open_reader(&pool.path)?,
            };
            let result = f(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

fn open_reader(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    // Read-write so it can use the WAL's shared memory; query_only so it never writes.
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
        .map_err(backend)?;
    crate::tune(&conn).map_err(backend)?;
    Ok(conn)
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        position: row.get(0)?,
        stream: row.get(1)?,
        revision: row.get(2)?,
        id: row.get(3)?,
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        data: row.get(6)?,
        metadata: row.get(7)?,
    })
}

/// A row as SQLite gives it, before its integers and id are checked.
struct RawEvent {
    position: i64,
    stream: String,
    revision: i64,
    id: Vec<u8>,
    event_type: String,
    schema_version: i64,
    data: Vec<u8>,
    metadata: Vec<u8>,
}

impl RawEvent {
    fn into_event(self) -> Result<RecordedEvent, StoreError> {
        let position = from_sql_int(self.position)?;
        let id = Uuid::from_slice(&self.id)
            .map_err(|e| StoreError::Corrupt(format!("event id at position {position}: {e}")))?;
        let schema_version = u32::try_from(self.schema_version)
            .map_err(|_| StoreError::Corrupt(format!("schema version at position {position}")))?;
        Ok(RecordedEvent {
            stream: self.stream,
            revision: from_sql_int(self.revision)?,
            position: Position::new(position, position),
            id,
            event_type: self.event_type,
            schema_version,
            data: Bytes::from(self.data),
            metadata: Bytes::from(self.metadata),
        })
    }
}

fn collect(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    stmt.query_map(params, event_from_row)
        .map_err(backend)?
        .map(|row| row.map_err(backend).and_then(RawEvent::into_event))
        .collect()
}

/// Events of `$all` strictly after `after` and up to `durable`, in position order.
pub(crate) fn read_all(
    conn: &Connection,
    after: Position,
    max_count: usize,
    durable: Position,
) -> Result<Vec<RecordedEvent>, StoreError> {
    // The embedded store uses one sequence for both halves of a position.
    let after = to_sql_int(after.commit.max(after.prepare))?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE position > ?1 AND position <= ?3
             ORDER BY position LIMIT ?2"
        ))
        .map_err(backend)?;
    collect(
        &mut stmt,
        params![
            after,
            to_sql_int(max_count as u64)?,
            to_sql_int(durable.commit)?
        ],
    )
}

/// Events of `stream` up to the `durable` position, a page in `direction` from `from`.
pub(crate) fn read_stream(
    conn: &Connection,
    stream: &str,
    from: StreamFrom,
    direction: Direction,
    max_count: usize,
    durable: Position,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let limit = to_sql_int(max_count as u64)?;
    let (sql, start) = match direction {
        Direction::Forwards => {
            let start = match from {
                StreamFrom::Start => 0,
                // Nothing comes after the end.
                StreamFrom::End => return Ok(Vec::new()),
                // Past what SQLite can hold means past the end.
                StreamFrom::Revision(r) => match i64::try_from(r) {
                    Ok(r) => r,
                    Err(_) => return Ok(Vec::new()),
                },
            };
            (
                format!(
                    "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision >= ?2
                     AND position <= ?4 ORDER BY revision ASC LIMIT ?3"
                ),
                start,
            )
        }
        Direction::Backwards => {
            let start = match from {
                StreamFrom::Start => 0,
                StreamFrom::End => i64::MAX,
                StreamFrom::Revision(r) => i64::try_from(r).unwrap_or(i64::MAX),
            };
            (
                format!(
                    "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision <= ?2
                     AND position <= ?4 ORDER BY revision DESC LIMIT ?3"
                ),
                start,
            )
        }
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    collect(
        &mut stmt,
        params![stream, start, limit, to_sql_int(durable.commit)?],
    )
}

/// The highest position assigned: that of the last event, or the one `log_head` kept when a
/// truncation deleted it.
pub(crate) fn head_position(conn: &Connection) -> Result<Position, StoreError> {
    let max: i64 = conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT MAX(position) FROM events), 0),
                        COALESCE((SELECT position FROM log_head WHERE id = 0), 0))",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(backend)?;
    let max = from_sql_int(max)?;
    Ok(Position::new(max, max))
}

/// Whether any stream was ever truncated (the table of kept revisions holds a row).
pub(crate) fn any_truncations(conn: &Connection) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM truncated_streams)")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(backend)
}

/// The stream's last revision up to the `durable` position: its last event's, or the one
/// kept when a truncation deleted all its events (looked for only if `truncations`: false
/// when [`any_truncations`] said so in the same transaction).
pub(crate) fn stream_revision(
    conn: &Connection,
    stream: &str,
    durable: Position,
    truncations: bool,
) -> Result<CurrentRevision, StoreError> {
    let durable = to_sql_int(durable.commit)?;
    let stored: Option<i64> = conn
        .prepare_cached(
            "SELECT revision FROM events WHERE stream = ?1 AND position <= ?2
             ORDER BY revision DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![stream, durable], |r| r.get(0))
                .optional()
        })
        .map_err(backend)?;
    let last = match stored {
        Some(r) => Some(r),
        None if !truncations => None,
        None => conn
            .prepare_cached(
                "SELECT last_revision FROM truncated_streams
                 WHERE stream = ?1 AND last_position <= ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![stream, durable], |r| r.get(0))
                    .optional()
            })
            .map_err(backend)?,
    };
    Ok(match last {
        Some(r) => CurrentRevision::Current(from_sql_int(r)?),
        None => CurrentRevision::NoStream,
    })
}
