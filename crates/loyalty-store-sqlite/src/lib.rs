//! The embedded event store: one SQLite file, zero set-up.
//!
//! - **One writer.** A dedicated OS thread owns the only write connection and is fed by a
//!   bounded channel; it commits whatever appends have queued as one transaction with one
//!   fsync (group commit), each append in its own SAVEPOINT so a conflict fails only that
//!   append. An append returns only once its batch is durable.
//! - **Readers never block the writer.** WAL mode; reads use a small pool of their own
//!   connections on tokio's blocking threads.
//! - **Live subscriptions** wake on the head position the writer publishes after each commit
//!   and read `$all` in pages after the last position they delivered, so there is no gap and
//!   no duplicate by construction (see [`loyalty_store::spawn_catch_up`]). The pages that
//!   follow the writer closely are served from an in-memory tail of its recent commits rather
//!   than read back from the file (see `tail` for when that is exact).
//! - **Versioned file.** `PRAGMA user_version` holds the schema version: older files are
//!   upgraded on open, newer ones refused.
//! - **Hash chain.** The writer hashes each event and chains it (see
//!   [`loyalty_store::chain`]) in the transaction that inserts it, into a table truncation
//!   never deletes from; a file written before gets the chain of the events it holds at open.
//! - **Key vault.** The members' data keys ([`loyalty_store::vault`]) live in tables of the
//!   same file, written by the same writer thread; [`SqliteKeyVault`] also opens a key file of
//!   its own (for a log kept elsewhere). See [`SqliteKeyVault`] for how an erased key's bytes
//!   leave the files.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::Connection;
use rusqlite::config::DbConfig;
use tokio::sync::{mpsc, oneshot, watch};

use loyalty_store::{
    AppendResult, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, Limits,
    Position, RecordedEvent, StoreError, StreamAppend, StreamFilter, StreamFrom, Subscription,
    spawn_catch_up,
};

mod chain;
mod checkpoint;
mod reader;
mod schema;
mod sync;
mod tail;
mod vault;
mod writer;

use reader::ReaderPool;
pub use schema::SCHEMA_VERSION;
pub use tail::SubscriptionStats;
use tail::Tail;
pub use vault::SqliteKeyVault;

/// Why a store file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the event store file has schema version {found}, newer than the {supported} this build \
         of loyalty supports: open it with a newer loyalty"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(
        "the event store file has schema version {found}, older than this build's {current}; \
         it is upgraded when a server of this release starts on it, not by a tool that only \
         reads"
    )]
    SchemaTooOld { found: u32, current: u32 },
    #[error("cannot open the event store file: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot start the event store: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Sqlite(e) if is_disk_full(&e) => StoreError::StorageFull(e.to_string()),
            OpenError::Io(e) if is_no_space(&e) => StoreError::StorageFull(e.to_string()),
            OpenError::Store(e) => e,
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// Tuning of the embedded store; every queue and batch is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    pub limits: Limits,
    /// Most appends committed in one transaction.
    pub max_batch_appends: usize,
    /// The writer stops gathering a batch once it holds this many payload bytes.
    pub max_batch_bytes: usize,
    /// Appends waiting for the writer before `append` itself waits.
    pub queue_depth: usize,
    /// Read connections open at once.
    pub readers: usize,
    /// Every this many pages of 4 KiB appended to the write-ahead log, a background thread
    /// copies them back into the database file (a checkpoint, with its own fsync). The writer
    /// checkpoints itself only if the log reaches four times this.
    pub wal_checkpoint_pages: u32,
    /// The write-ahead log file is cut back to at most this many bytes whenever it has grown
    /// past it: SQLite's `journal_size_limit` (the file is shortened to the bound each time
    /// the log restarts from its beginning) and, once a checkpoint has copied every frame
    /// (no reader holds on to an old snapshot), a TRUNCATE checkpoint that empties it. Without
    /// a bound SQLite reuses the file but never shortens it, so it stays at its high-water
    /// mark (135 MB was observed after a load test), and a crash recovery reads it all back.
    /// The log may still grow past the bound while readers hold old snapshots, and by up to
    /// one batch and `wal_checkpoint_pages` before the cut.
    pub wal_max_bytes: u64,
    /// Whether opening a file of an older schema version upgrades it (servers). Tools that only
    /// read leave it off: upgrading a production file from a report would lock out the
    /// servers still on the older release mid-rollout (they refuse a newer file). A new file
    /// is created either way.
    pub upgrade: bool,
    /// Bytes of recently committed events kept in memory for live subscriptions (their data,
    /// metadata, stream name and type, plus a fixed cost per event), so that a subscription
    /// that keeps up with the writer gets the events just appended without reading them back
    /// from the file. Oldest events go first; a subscription further behind reads the file,
    /// as does every subscription after another store wrote to the same file. 0 turns it off.
    pub tail_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_batch_appends: 512,
            max_batch_bytes: 16 * 1024 * 1024,
            queue_depth: 256,
            readers: 4,
            // SQLite's default is 1,000 pages (4 MiB). Under load a commit writes some
            // hundred pages, so that checkpoints every few commits and copies the same hot
            // pages (the log's tail, the upper levels of the indexes) again each time:
            // measured, 64 terminals ingested 3,192 purchases/s at 1,000 pages and 4,417/s at
            // 20,000, with the checkpoints still on the writer's thread. The log stays under
            // 128 MiB, which is read back in about a second after a crash.
            wal_checkpoint_pages: 8_192,
            // Twice the checkpoint threshold (32 MiB): in steady operation the log restarts
            // after each background checkpoint and stays under it, so the cut only acts after
            // bursts or long reads, which let the log grow towards the writer's own
            // checkpoint at four times the threshold.
            wal_max_bytes: 64 * 1024 * 1024,
            upgrade: true,
            // Some 14,000 events of 450 bytes (measured): seconds of peak ingest, so that a
            // projection that pauses (a checkpoint of its own, a slow consumer) still catches
            // up from memory.
            tail_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The embedded event store. Not `Clone`: share it in an `Arc`. Dropping it lets the writer
/// finish what is queued and stop; [`SqliteStore::close`] also waits for that.
///
/// Open one per file: a second store on the same file does not corrupt it, but each store
/// reads only up to the head it made durable itself, which takes in the other's events only
/// when this store next writes.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    limits: Limits,
    readers: Arc<ReaderPool>,
    appends: mpsc::Sender<writer::Request>,
    head: watch::Receiver<Position>,
    writer: JoinHandle<()>,
    counters: Arc<writer::Counters>,
    tail: Arc<Tail>,
}

/// What the writer has done since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (one fsync each).
    pub commits: u64,
    /// Appends those transactions answered: `appends / commits` is the mean group size.
    pub appends: u64,
    /// Appends waiting in the queue for the writer right now.
    pub queued: usize,
    /// Appends in the batch the writer is writing right now.
    pub writing: u64,
    /// Checkpoints that emptied the write-ahead log file because it had grown past
    /// [`SqliteOptions::wal_max_bytes`].
    pub wal_truncations: u64,
}

impl SqliteStore {
    /// Hands a write (an append of one part or several, or a truncation) to the writer and
    /// waits until it is durable.
    async fn send(&self, op: writer::Op) -> Result<Vec<AppendResult>, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.appends
            .send(writer::Request::Write(writer::WriteRequest { op, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// For tests of a full disk, not for production: sets SQLite's `max_page_count` on the
    /// writer's connection, so that growing the file past `pages` pages of 4 KiB fails as a
    /// full disk does (SQLITE_FULL), until it is raised again. Takes effect for the batches
    /// written after it; returns the limit SQLite applied (never below the file's size).
    #[doc(hidden)]
    pub async fn set_max_page_count(&self, pages: u64) -> Result<u64, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.appends
            .send(writer::Request::MaxPageCount { pages, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// Opens (creating if need be) the store in the file at `path`, upgrading an older schema.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let writer_path = path.clone();
        let wal = checkpoint::WalBounds {
            checkpoint_pages: options.wal_checkpoint_pages,
            max_bytes: options.wal_max_bytes,
        };
        let counters = Arc::new(writer::Counters::default());
        let checkpoint_counters = Arc::clone(&counters);
        let upgrade = options.upgrade;
        let (conn, head, checkpointer, log) = tokio::task::spawn_blocking(move || {
            open_writer(&writer_path, wal, checkpoint_counters, upgrade)
        })
        .await
        .map_err(|e| OpenError::Io(std::io::Error::other(e)))??;
        let (head_tx, head_rx) = watch::channel(head);
        let (appends, requests) = mpsc::channel(options.queue_depth.max(1));
        let limits = writer::BatchLimits {
            max_appends: options.max_batch_appends.max(1),
            max_bytes: options.max_batch_bytes,
        };
        let writer_counters = Arc::clone(&counters);
        let tail = Arc::new(Tail::new(options.tail_bytes));
        let writer_tail = Arc::clone(&tail);
        let failed = Arc::new(sync::Failed::default());
        let (committed, to_sync) = std::sync::mpsc::sync_channel(sync::MAX_PENDING_BATCHES);
        let syncer_failed = Arc::clone(&failed);
        let syncer = std::thread::Builder::new()
            .name("event-store-syncer".to_owned())
            .spawn(move || sync::run(log, to_sync, head_tx, syncer_failed))?;
        let writer = std::thread::Builder::new()
            .name("event-store-writer".to_owned())
            .spawn(move || {
                // `run` drops its end of the syncer's channel and the write connection, with
                // the commit hook that signals the checkpointer: both threads then end, after
                // the syncer has answered every committed append. Closing waits for all three.
                writer::run(
                    conn,
                    requests,
                    committed,
                    failed,
                    limits,
                    writer_counters,
                    writer_tail,
                );
                if syncer.join().is_err() {
                    tracing::error!("the event store syncer panicked");
                }
                if checkpointer.join().is_err() {
                    tracing::error!("the event store checkpointer panicked");
                }
            })?;
        Ok(Self {
            readers: Arc::new(ReaderPool::new(path.clone(), options.readers.max(1))),
            path,
            limits: options.limits,
            appends,
            head: head_rx,
            writer,
            counters,
            tail,
        })
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            appends: self.counters.appends.load(Ordering::Relaxed),
            queued: self.appends.max_capacity() - self.appends.capacity(),
            writing: self.counters.writing.load(Ordering::Relaxed),
            wal_truncations: self.counters.wal_truncations.load(Ordering::Relaxed),
        }
    }

    /// Where the events subscriptions got came from, and what the tail holds now.
    pub fn subscription_stats(&self) -> SubscriptionStats {
        self.tail.stats()
    }

    /// The last position known durable: reads never go past it, so nobody is shown an event
    /// that a power cut could still take back (see `sync`).
    fn durable_head(&self) -> Position {
        *self.head.borrow()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops taking appends, lets the writer commit what is queued, and waits until it has
    /// closed the file's write connection. Live subscriptions then end with
    /// [`StoreError::Closed`].
    pub async fn close(self) -> Result<(), StoreError> {
        let Self {
            appends, writer, ..
        } = self;
        drop(appends);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .map_err(|_| StoreError::Backend("the event store writer panicked".to_owned()))
    }
}

/// Opens the file's write connection in WAL mode, refusing a file of a newer schema before
/// touching it in any way (even its journal mode). The schema is not upgraded yet.
pub(crate) fn open_write_connection(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Io(std::io::Error::other(format!(
            "the file system refused WAL mode (got {mode})"
        ))));
    }
    Ok(conn)
}

fn open_writer(
    path: &Path,
    wal: checkpoint::WalBounds,
    counters: Arc<writer::Counters>,
    upgrade: bool,
) -> Result<(Connection, Position, JoinHandle<()>, std::fs::File), OpenError> {
    let mut conn = open_write_connection(path)?;
    // In WAL mode, synchronous=NORMAL fsyncs the log only at checkpoints, so COMMIT returns
    // before the batch is durable. The syncer thread fsyncs the log after each commit and only
    // then answers the appends (see `sync`): "an append returns once durable" holds, and the
    // fsync no longer stalls the writer. (FULL would fsync inside COMMIT, on the writer.)
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    tune(&conn)?;
    schema::upgrade(&mut conn, upgrade)?;
    let head = reader::head_position(&conn)?;
    // Opened after SQLite has the log open (it creates the file with its first read), and held
    // for as long as the writer's connection, which keeps the file from being deleted.
    let log = std::fs::File::open(sync::log_path(path))?;
    // What a killed process left committed but unsynced is in the log now: make it durable
    // before it is published as the head.
    log.sync_data()?;
    let checkpointer = checkpoint::start(&mut conn, path, wal, counters)?;
    Ok((conn, head, checkpointer, log))
}

/// Settings every connection of the store gets, the writer's and the readers'.
pub(crate) fn tune(conn: &Connection) -> Result<(), rusqlite::Error> {
    // The query planner stability guarantee: a cached statement keeps its plan whatever values
    // are bound. Without it SQLite re-prepares a cached statement whenever a bound LIMIT
    // changes to or from 0 or 1, and stream reads alternate between page sizes: the profile
    // of purchase ingest showed 17% of all CPU time in re-preparing the same few statements.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // Every statement the writer or a reader runs stays prepared.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

pub(crate) fn from_sql_int(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative number {v} in the store")))
}

pub(crate) fn to_sql_int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{v} is too large for SQLite")))
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    sql_error(e)
}

/// SQLite's error as the store's: a full disk (SQLITE_FULL, which is also how SQLite reports
/// ENOSPC from its own writes) is [`StoreError::StorageFull`], worth retrying once space is
/// freed; anything else is a backend failure.
pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    if is_disk_full(&e) {
        StoreError::StorageFull(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

pub(crate) fn is_disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// ENOSPC (or a quota exceeded) from the store's own file operations.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        self.limits.check_append(stream, &events)?;
        let part = StreamAppend {
            stream: stream.to_owned(),
            expected,
            events,
        };
        let mut results = self.send(writer::Op::Append(vec![part])).await?;
        results
            .pop()
            .ok_or_else(|| StoreError::Backend("the writer answered nothing".into()))
    }

    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        self.limits.check_append_many(&appends)?;
        self.send(writer::Op::Append(appends)).await
    }

    /// Deletes the rows (from the stream and from `$all`) in the writer's next batch, and
    /// returns once that batch is durable. The stream's last revision and the highest
    /// position are kept aside first (see `writer::truncate`).
    async fn truncate_before(&self, stream: &str, revision: u64) -> Result<(), StoreError> {
        self.limits.check_stream_name(stream)?;
        self.send(writer::Op::Truncate {
            stream: stream.to_owned(),
            before: revision,
        })
        .await
        .map(|_| ())
    }

    async fn stream_revision(&self, stream: &str) -> Result<CurrentRevision, StoreError> {
        self.limits.check_stream_name(stream)?;
        let stream = stream.to_owned();
        let durable = self.durable_head();
        self.readers
            .with(move |conn| reader::stream_revision(conn, &stream, durable, true))
            .await
    }

    async fn stream_revisions(
        &self,
        streams: &[String],
    ) -> Result<Vec<CurrentRevision>, StoreError> {
        for stream in streams {
            self.limits.check_stream_name(stream)?;
        }
        let streams = streams.to_vec();
        let durable = self.durable_head();
        // One hop to a reader for all of them: per stream, an indexed lookup. One read
        // transaction around them: one snapshot for the batch, and SQLite takes its shared lock
        // once instead of once per statement (two fcntl calls each). The truncations' table is
        // asked about only if it holds anything: an import asks about hundreds of thousands of
        // streams that do not exist, and most stores have never truncated one.
        self.readers
            .with(move |conn| {
                let snapshot = conn.unchecked_transaction().map_err(backend)?;
                let truncations = reader::any_truncations(&snapshot)?;
                streams
                    .iter()
                    .map(|s| reader::stream_revision(&snapshot, s, durable, truncations))
                    .collect()
            })
            .await
    }

    fn atomic_append_many(&self) -> bool {
        true
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.limits.check_stream_name(stream)?;
        self.limits.check_page(max_count)?;
        let stream = stream.to_owned();
        let durable = self.durable_head();
        self.readers
            .with(move |conn| {
                reader::read_stream(conn, &stream, from, direction, max_count, durable)
            })
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.limits.check_page(max_count)?;
        let durable = self.durable_head();
        self.readers
            .with(move |conn| reader::read_all(conn, after, max_count, durable))
            .await
    }

    async fn subscribe_all(
        &self,
        after: Position,
        filter: StreamFilter,
    ) -> Result<Subscription, StoreError> {
        let readers = Arc::clone(&self.readers);
        let tail = Arc::clone(&self.tail);
        let page = self.limits.max_page_size.min(512);
        let head = self.head.clone();
        Ok(spawn_catch_up(
            move |after, max| {
                let readers = Arc::clone(&readers);
                let tail = Arc::clone(&tail);
                let durable = *head.borrow();
                // What the writer has just committed comes from memory; the rest (history, a
                // subscriber left behind, another writer's events) from the file. Both stop at
                // the same durable head, and the stream filter applies to either alike.
                let recent = tail.read(after, max, durable);
                async move {
                    if let Some(events) = recent {
                        return Ok(events);
                    }
                    let events = readers
                        .with(move |conn| reader::read_all(conn, after, max, durable))
                        .await?;
                    tail.read_from_file(events.len());
                    Ok(events)
                }
            },
            self.head.clone(),
            after,
            filter,
            page,
        ))
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(self.durable_head())
    }

    /// The links the writer stored with the events (also those of truncated events), up to
    /// the durable head as every read.
    async fn read_chain(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<loyalty_store::chain::ChainLink>, StoreError> {
        self.limits.check_page(max_count)?;
        let durable = self.durable_head();
        self.readers
            .with(move |conn| chain::read(conn, after, max_count, durable))
            .await
    }

    /// The vault in this file's tables, written through this store's writer thread; it
    /// answers [`StoreError::Closed`] once the store is closed.
    fn key_vault(&self) -> Option<Arc<dyn loyalty_store::vault::KeyVault>> {
        Some(Arc::new(SqliteKeyVault::for_store(
            &self.appends,
            Arc::clone(&self.readers),
        )))
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}
