//! The one writer: an OS thread that owns the write connection and commits appends in groups.
//!
//! Appends queue on a bounded channel. The thread takes whatever has queued (up to a batch
//! limit), applies each append inside its own SAVEPOINT within one transaction, commits once,
//! and hands the answers to the syncer (see [`crate::sync`]), which fsyncs the log and only
//! then answers each caller and publishes the new head position. Under load the queue fills
//! while a batch is written, so one commit and one fsync serve many appends: throughput is
//! not bounded by the fsync rate.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;

use rusqlite::{Connection, OptionalExtension, params};

use tokio::sync::{mpsc, oneshot};

use loyalty_store::chain::{EventFields, GENESIS, Hash};
use loyalty_store::{
    AppendResult, CurrentRevision, EventData, ExpectedRevision, Position, RecordedEvent,
    StoreError, StreamAppend,
};

use crate::chain::{self, AppendError};
use crate::sync::{self, Committed, Failed};
use crate::tail::{self, Tail};
use crate::{from_sql_int, to_sql_int};

/// What the writer is asked to do.
pub(crate) enum Request {
    /// A write, committed with others in a batch and answered once durable.
    Write(WriteRequest),
    /// For tests of a full disk: sets SQLite's `max_page_count` on the write connection,
    /// between batches, and answers with the limit SQLite applied.
    MaxPageCount {
        pages: u64,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Work that needs the write connection to itself, run between batches (no transaction is
    /// open then): the key vault's writes (see `crate::vault`). It gets the connection, or,
    /// once an fsync has failed, the error every write then gets; it answers its caller itself.
    Exclusive(Exclusive),
}

pub(crate) type Exclusive = Box<dyn FnOnce(Result<&mut Connection, StoreError>) + Send>;

pub(crate) struct WriteRequest {
    pub op: Op,
    /// Answered with one result per appended part (none for a truncation).
    pub reply: oneshot::Sender<Result<Vec<AppendResult>, StoreError>>,
}

pub(crate) enum Op {
    /// To one stream, or to several at once (all parts or none).
    Append(Vec<StreamAppend>),
    /// `EventStore::truncate_before`.
    Truncate { stream: String, before: u64 },
}

/// What the writer has done, for tests and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Appends answered (stored, retried or refused) by those transactions.
    pub appends: AtomicU64,
    /// Appends in the batch being written right now.
    pub writing: AtomicU64,
    /// TRUNCATE checkpoints that emptied the write-ahead log file (see `checkpoint`).
    pub wal_truncations: AtomicU64,
}

pub(crate) struct BatchLimits {
    /// Most appends committed together.
    pub max_appends: usize,
    /// Stop gathering once the batch holds this many payload bytes.
    pub max_bytes: usize,
}

/// The writer thread's loop; returns when every sender is gone (the store was closed).
/// Committed batches go to the syncer, which answers them once they are durable.
pub(crate) fn run(
    mut conn: Connection,
    mut requests: mpsc::Receiver<Request>,
    syncer: SyncSender<Committed>,
    failed: Arc<Failed>,
    limits: BatchLimits,
    counters: Arc<Counters>,
    tail: Arc<Tail>,
) {
    let mut batch = Vec::with_capacity(limits.max_appends);
    while let Some(first) = requests.blocking_recv() {
        let Some(first) = write_or_configure(&mut conn, &failed, first) else {
            continue;
        };
        let mut bytes = request_bytes(&first);
        batch.push(first);
        while batch.len() < limits.max_appends && bytes < limits.max_bytes {
            match requests.try_recv() {
                Ok(next) => {
                    if let Some(next) = write_or_configure(&mut conn, &failed, next) {
                        bytes += request_bytes(&next);
                        batch.push(next);
                    }
                }
                Err(_) => break,
            }
        }
        if failed.is_set() {
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(sync::failed_error()));
            }
            continue;
        }
        counters
            .writing
            .store(batch.len() as u64, Ordering::Relaxed);
        let written = write_batch(&mut conn, &batch, &tail);
        counters.writing.store(0, Ordering::Relaxed);
        match written {
            Ok(Written {
                outcomes,
                head,
                fresh,
                tip,
            }) => {
                // Into the tail before the syncer can publish the head that covers them.
                tail.committed(fresh, tip);
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .appends
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let replies = batch
                    .drain(..)
                    .map(|request| request.reply)
                    .zip(outcomes)
                    .collect();
                if syncer.send(Committed { replies, head }).is_err() {
                    // The syncer only ends after the writer; its replies were dropped, so
                    // the callers see the store as closed.
                    tracing::error!("the event store syncer is gone");
                    return;
                }
            }
            Err(e) => {
                // Nothing of it was stored, so there is nothing to wait for, and the store
                // stays usable: the transaction was rolled back, and unlike a failed fsync
                // (see `sync`) nothing that was acknowledged is in doubt. A full disk comes
                // here (SQLITE_FULL), and the next batch succeeds once there is room again.
                tail.abandon();
                let error = crate::sql_error(e);
                tracing::error!(error = %error, "event store batch failed, nothing of it was stored");
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// A write to batch, or `None` once a configuration request or exclusive work has been carried
/// out (there is no transaction open when the writer gathers a batch). Exclusive work runs
/// before the writes gathered so far: it comes from callers that wait for it, so nothing
/// queued depends on it.
fn write_or_configure(
    conn: &mut Connection,
    failed: &Failed,
    request: Request,
) -> Option<WriteRequest> {
    match request {
        Request::Write(write) => Some(write),
        Request::Exclusive(work) => {
            if failed.is_set() {
                work(Err(sync::failed_error()));
            } else {
                work(Ok(conn));
            }
            None
        }
        Request::MaxPageCount { pages, reply } => {
            let applied = conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(crate::sql_error)
                .and_then(from_sql_int);
            let _ = reply.send(applied);
            None
        }
    }
}

fn request_bytes(request: &WriteRequest) -> usize {
    match &request.op {
        Op::Append(parts) => parts
            .iter()
            .flat_map(|p| p.events.iter().map(EventData::size))
            .sum(),
        Op::Truncate { stream, .. } => stream.len(),
    }
}

/// An append refused for a reason of the store's contract, or SQLite failing.
enum Refusal {
    Store(StoreError),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<AppendError> for Refusal {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Sql(e) => Self::Sql(e),
            AppendError::Store(e) => Self::Store(e),
        }
    }
}

/// Where the log ends while a batch is written: the last position assigned and the hash
/// chain's last hash. An append that is rolled back leaves it as it was.
#[derive(Debug, Clone, Copy)]
struct Tip {
    position: i64,
    chain: Hash,
}

/// What a committed batch did.
struct Written {
    /// One per request of the batch.
    outcomes: Vec<Result<Vec<AppendResult>, StoreError>>,
    /// The head to publish once durable: the batch's last position, or the file's last
    /// position if the batch stored nothing (it takes in another store's events).
    head: Option<Position>,
    /// The events it stored, in position order, for the tail (none when the tail is off).
    fresh: Vec<RecordedEvent>,
    /// The file's last position after the batch.
    tip: u64,
}

/// Commits the batch in one transaction. Each append gets its own outcome; an error of the
/// whole transaction (say, the disk is full at commit) fails every append of the batch, and
/// then none of them is stored.
fn write_batch(
    conn: &mut Connection,
    batch: &[WriteRequest],
    tail: &Tail,
) -> Result<Written, rusqlite::Error> {
    // The transaction and savepoint statements are prepared once and cached, like the inserts:
    // rusqlite's `Transaction` and `Savepoint` parse their SQL anew on every use, and a batch
    // of 64 purchases used to spend more time in SQLite's parser than in its inserts.
    run_cached(conn, "BEGIN IMMEDIATE")?;
    match write_in_transaction(conn, batch, tail) {
        Ok(written) => match run_cached(conn, "COMMIT") {
            Ok(()) => Ok(written),
            Err(e) => {
                rollback(conn);
                Err(e)
            }
        },
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

/// Undoes the open transaction after an error. If even that fails the connection is unusable
/// and the next `BEGIN` reports it, so the error here is only logged.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = run_cached(conn, "ROLLBACK")
    {
        tracing::error!(error = %e, "rolling back a failed event store batch failed");
    }
}

fn run_cached(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn write_in_transaction(
    conn: &Connection,
    batch: &[WriteRequest],
    tail: &Tail,
) -> Result<Written, rusqlite::Error> {
    // Read inside the write transaction rather than cached: even a second process writing the
    // same file (which BEGIN IMMEDIATE serialises) cannot make positions collide. A
    // truncation may have deleted the row of the highest position: `log_head` keeps it.
    // The chain's last hash likewise: the links of a batch follow the file's last link, once
    // whatever an older build's process appended meanwhile is linked too.
    if let Err(e) = chain::catch_up(conn) {
        return Err(match e {
            AppendError::Sql(e) => e,
            AppendError::Store(e) => rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        });
    }
    let mut tip = Tip {
        position: conn
            .prepare_cached(
                "SELECT MAX(COALESCE((SELECT MAX(position) FROM events), 0),
                            COALESCE((SELECT position FROM log_head WHERE id = 0), 0))",
            )?
            .query_row([], |r| r.get(0))?,
        chain: chain::head(conn)?,
    };
    // What another store on the same file committed is in the log this batch's fsync covers:
    // published with it, it becomes readable here too.
    let mut new_head = u64::try_from(tip.position)
        .ok()
        .filter(|&p| p > 0)
        .map(|p| Position::new(p, p));
    // Still under the write lock that BEGIN IMMEDIATE took: what the tail is told here holds
    // until this batch commits (see `tail` for the rule).
    let mut fresh = Vec::new();
    if tail.enabled() {
        let data_version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        tail.start_batch(unsigned(tip.position)?, data_version);
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        run_cached(conn, "SAVEPOINT append")?;
        let kept = fresh.len();
        let mut truncated = None;
        let applied = match &request.op {
            // The parts of one request stand or fall together: one savepoint covers them all.
            Op::Append(parts) => parts.iter().try_fold(
                (Vec::with_capacity(parts.len()), tip),
                |(mut results, tip), part| {
                    let into_tail = tail.enabled().then_some(&mut fresh);
                    let (result, tip) = append_one(conn, part, tip, into_tail)?;
                    results.push(result);
                    Ok::<_, Refusal>((results, tip))
                },
            ),
            Op::Truncate { stream, before } => {
                truncate(conn, stream, *before, tip.position).map(|deleted| {
                    truncated = deleted.map(|d| (stream, d));
                    (Vec::new(), tip)
                })
            }
        };
        match applied {
            Ok((results, next)) => {
                run_cached(conn, "RELEASE append")?;
                if let Some((stream, deleted)) = truncated {
                    // A rule once the batch commits; meanwhile subscriptions read the file.
                    tail.truncated(
                        stream,
                        unsigned(deleted.keep_from)?,
                        unsigned(deleted.last_position)?,
                    );
                }
                if next.position > tip.position {
                    tip = next;
                    new_head = results.iter().map(|r| r.position).max().or(new_head);
                }
                outcomes.push(Ok(results));
            }
            // A full disk fails the whole batch: SQLite may already have rolled the whole
            // transaction back, and every other append of the batch needs room too.
            Err(Refusal::Sql(e)) if crate::is_disk_full(&e) => return Err(e),
            Err(refusal) => {
                run_cached(conn, "ROLLBACK TO append")?;
                run_cached(conn, "RELEASE append")?;
                // Its positions are given back: so are its events.
                fresh.truncate(kept);
                outcomes.push(Err(match refusal {
                    Refusal::Store(e) => e,
                    Refusal::Sql(e) => crate::sql_error(e),
                }));
            }
        }
    }
    Ok(Written {
        outcomes,
        head: new_head,
        fresh,
        tip: unsigned(tip.position)?,
    })
}

/// A position or revision the writer read from its own file; negative ones are corrupt.
fn unsigned(v: i64) -> Result<u64, rusqlite::Error> {
    from_sql_int(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// With `Any` or `StreamExists` no revision says where a retry's events would be, so a retry
/// is looked for among this many of the stream's last events. Without an index on event ids
/// (it cost a random page per event), that is a bounded scan of the stream's own index.
pub(crate) const RETRY_WINDOW: usize = 256;

/// Applies one append after `tip`, and chains its events; returns its result and the new tip.
/// The events it stores are added to `fresh`, if given, as reads would return them.
fn append_one(
    conn: &Connection,
    request: &StreamAppend,
    tip: Tip,
    mut fresh: Option<&mut Vec<RecordedEvent>>,
) -> Result<(AppendResult, Tip), Refusal> {
    let stream = request.stream.as_str();
    let current = last_event(conn, stream)?;
    let actual = match current {
        Some((r, _)) => CurrentRevision::Current(from_sql_int(r)?),
        None => CurrentRevision::NoStream,
    };
    match (request.expected.check(stream, actual), request.expected) {
        (Err(conflict), expected) => {
            // The retry of an append that was stored finds the stream past the revision it
            // expected, and its own events right after that revision.
            let from = match expected {
                // A revision no stream here can reach has no retry after it: a conflict.
                ExpectedRevision::Exact(r) => i64::try_from(r).ok().and_then(|r| r.checked_add(1)),
                ExpectedRevision::NoStream => Some(0),
                ExpectedRevision::Any | ExpectedRevision::StreamExists => None,
            };
            let Some(from) = from else {
                return Err(conflict.into());
            };
            let stored = stored_from(conn, stream, from, request.events.len())?;
            return match retry_result(stream, &stored, &request.events)? {
                Some(original) => Ok((original, tip)),
                None => Err(conflict.into()),
            };
        }
        (Ok(()), ExpectedRevision::Any | ExpectedRevision::StreamExists) if current.is_some() => {
            let stored = stored_last(conn, stream, RETRY_WINDOW.max(request.events.len()))?;
            if let Some(original) = retry_result(stream, &stored, &request.events)? {
                return Ok((original, tip));
            }
        }
        // The stream is where the caller expected it: whatever comes is new.
        (Ok(()), _) => {}
    }

    let mut revision = current.map_or(0, |(r, _)| r + 1);
    let mut position = tip.position;
    let mut chain_hash = tip.chain;
    // The stream's chain goes on from the link of its last event, which outlives the event.
    let mut stream_hash = match current {
        Some((_, last)) => chain::stream_hash_at(conn, last)?.unwrap_or(GENESIS),
        None => GENESIS,
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO events
            (position, stream, revision, event_id, event_type, schema_version, data, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for event in &request.events {
        position += 1;
        insert.execute(params![
            position,
            stream,
            revision,
            event.id.as_bytes().as_slice(),
            event.event_type,
            event.schema_version,
            event.data.as_ref(),
            event.metadata.as_ref(),
        ])?;
        let at = from_sql_int(position)?;
        (chain_hash, stream_hash) = chain::append(
            conn,
            EventFields {
                position: Position::new(at, at),
                stream,
                revision: from_sql_int(revision)?,
                id: event.id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                data: &event.data,
                metadata: &event.metadata,
            },
            &chain_hash,
            &stream_hash,
        )?;
        if let Some(fresh) = fresh.as_deref_mut() {
            fresh.push(tail::recorded(stream, from_sql_int(revision)?, at, event));
        }
        revision += 1;
    }
    let last_revision = revision - 1;
    let unsigned = |v: i64| from_sql_int(v).map_err(Refusal::Store);
    Ok((
        AppendResult {
            next_expected_revision: unsigned(last_revision)?,
            position: Position::new(unsigned(position)?, unsigned(position)?),
        },
        Tip {
            position,
            chain: chain_hash,
        },
    ))
}

/// The stream's last revision and that event's position: its last event's, or, when a
/// truncation deleted them all, the ones `truncated_streams` kept. The second lookup only
/// happens for streams without events (new ones, mostly). The first is answered by the
/// `(stream, revision)` index alone, which holds the position (the rowid).
fn last_event(conn: &Connection, stream: &str) -> Result<Option<(i64, i64)>, rusqlite::Error> {
    let stored: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT revision, position FROM events WHERE stream = ?1
             ORDER BY revision DESC LIMIT 1",
        )?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if stored.is_some() {
        return Ok(stored);
    }
    conn.prepare_cached(
        "SELECT last_revision, last_position FROM truncated_streams WHERE stream = ?1",
    )?
    .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// What a truncation deleted: the stream's events below revision `keep_from`, all at or before
/// `last_position`, the position of the stream's last event.
#[derive(Debug, Clone, Copy)]
struct Deleted {
    keep_from: i64,
    last_position: i64,
}

/// Deletes the events of `stream` below `before` (below its end, if `before` is past it).
/// Before deleting, it records the stream's last revision (so the stream still exists at it
/// when no event is left) and the highest position assigned so far, `last_position` (the
/// deleted rows may hold it, and positions must never go back). Returns what it deleted, if
/// anything.
fn truncate(
    conn: &Connection,
    stream: &str,
    before: u64,
    last_position: i64,
) -> Result<Option<Deleted>, Refusal> {
    let last: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT revision, position FROM events WHERE stream = ?1
             ORDER BY revision DESC LIMIT 1",
        )?
        .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    // No event stored: the stream does not exist, or everything was truncated already.
    let Some((last_revision, last_event_position)) = last else {
        return Ok(None);
    };
    let keep_from = i64::try_from(before)
        .unwrap_or(i64::MAX)
        .min(last_revision + 1);
    let first: i64 = conn
        .prepare_cached(
            "SELECT revision FROM events WHERE stream = ?1 ORDER BY revision ASC LIMIT 1",
        )?
        .query_row([stream], |r| r.get(0))?;
    if first >= keep_from {
        // At or below an earlier truncation: nothing to do, and nothing written.
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO log_head (id, position) VALUES (0, ?1)
         ON CONFLICT (id) DO UPDATE SET position = MAX(position, excluded.position)",
    )?
    .execute([last_position])?;
    conn.prepare_cached(
        "INSERT INTO truncated_streams (stream, last_revision, last_position) VALUES (?1, ?2, ?3)
         ON CONFLICT (stream) DO UPDATE
         SET last_revision = excluded.last_revision, last_position = excluded.last_position",
    )?
    .execute(params![stream, last_revision, last_event_position])?;
    conn.prepare_cached("DELETE FROM events WHERE stream = ?1 AND revision < ?2")?
        .execute(params![stream, keep_from])?;
    Ok(Some(Deleted {
        keep_from,
        last_position: last_event_position,
    }))
}

/// A stored event as the retry check needs it: revision, position, id.
type Stored = (i64, i64, Vec<u8>);

fn stored_rows(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Stored>, Refusal> {
    let rows = statement.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Up to `count` events of `stream` from revision `from` on, in revision order.
fn stored_from(
    conn: &Connection,
    stream: &str,
    from: i64,
    count: usize,
) -> Result<Vec<Stored>, Refusal> {
    let mut statement = conn.prepare_cached(
        "SELECT revision, position, event_id FROM events
         WHERE stream = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3",
    )?;
    stored_rows(
        &mut statement,
        params![stream, from, to_sql_int(count as u64)?],
    )
}

/// The last `count` events of `stream`, in revision order.
fn stored_last(conn: &Connection, stream: &str, count: usize) -> Result<Vec<Stored>, Refusal> {
    let mut statement = conn.prepare_cached(
        "SELECT revision, position, event_id FROM events
         WHERE stream = ?1 ORDER BY revision DESC LIMIT ?2",
    )?;
    let mut rows = stored_rows(&mut statement, params![stream, to_sql_int(count as u64)?])?;
    rows.reverse();
    Ok(rows)
}

/// Whether the append is a retry of events among `stored` (in revision order): its first event
/// is stored and the others follow it, in order, gets the original result. None of its ids
/// stored is no retry. Anything else (some stored, or out of order) is an error: the append
/// cannot be a retry, and storing it would duplicate events.
fn retry_result(
    stream: &str,
    stored: &[Stored],
    events: &[EventData],
) -> Result<Option<AppendResult>, Refusal> {
    let is_stored = |event: &EventData| stored.iter().any(|s| s.2 == event.id.as_bytes());
    let partial = || {
        Refusal::Store(StoreError::PartialDuplicate {
            stream: stream.to_owned(),
        })
    };
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let Some(start) = stored.iter().position(|s| s.2 == first.id.as_bytes()) else {
        return if events.iter().any(is_stored) {
            Err(partial())
        } else {
            Ok(None)
        };
    };
    let original = stored
        .get(start..start + events.len())
        .ok_or_else(partial)?;
    if original
        .iter()
        .zip(events)
        .any(|(s, e)| s.2 != e.id.as_bytes())
    {
        return Err(partial());
    }
    let (revision, position, _) = original.last().ok_or_else(partial)?;
    let position = from_sql_int(*position)?;
    Ok(Some(AppendResult {
        next_expected_revision: from_sql_int(*revision)?,
        position: Position::new(position, position),
    }))
}
