//! The key vault in SQLite: the members' data keys ([`loyalty_store::vault`]) in two tables of
//! the store's file (migration 6 -> 7 of `schema`), or of a key file of their own.
//!
//! **Writes go through the store's writer thread.** The file has one writer connection,
//! owned by the writer thread, which holds SQLite's write lock for the length of every batch
//! and starts the next batch right after. A second connection writing the same file would
//! wait for that lock (or fail with SQLITE_BUSY once its busy timeout runs out) under load,
//! and would make the writer wait in turn. So the vault hands its writes to the writer
//! thread as exclusive work (`writer::Request::Exclusive`), run between two batches on the
//! writer's own connection: it never waits for a lock of this process, and its TRUNCATE
//! checkpoint finds no writer in its way. Reads (the key of an id, a member's live key, an
//! erasure's time) use the store's reader pool, as every read. A key file of its own
//! ([`SqliteKeyVault::open`]) has no store, so the vault's own connection plays the writer;
//! the same functions below do the work on either connection.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use loyalty_store::StoreError;
use loyalty_store::vault::{self, Erasure, KEY_BYTES, KeyVault, MemberKey};

use crate::reader::ReaderPool;
use crate::{OpenError, backend, sql_error, writer};

/// Attempts at the TRUNCATE checkpoint that ends an erasure.
const CHECKPOINT_ATTEMPTS: u32 = 10;

/// How long each attempt waits for readers to finish. On a store's writer thread, appends
/// wait meanwhile: at most [`CHECKPOINT_ATTEMPTS`] times this and the pauses, about 1.5 s.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

/// Read connections of a key file of its own: key lookups are point reads.
const KEY_FILE_READERS: usize = 2;

/// The members' data keys in SQLite, for crypto-shredding (see [`loyalty_store::vault`]).
///
/// The SQLite store's own ([`loyalty_store::EventStore::key_vault`] of
/// [`crate::SqliteStore`]) keeps them in the store's file and writes through its writer
/// thread. [`SqliteKeyVault::open`] opens a key file of its own, for a log kept elsewhere
/// (EventStoreDB).
///
/// **How an erased key's bytes leave the files.** Deleting a row is not enough in SQLite,
/// for three reasons, and each is dealt with here:
/// - a deleted or changed row's old bytes stay in its page unless `secure_delete` is on: the
///   vault's writes run with `PRAGMA secure_delete = ON` (which also zeroes freed pages);
/// - SQLite moves rows between pages when it rebalances its b-tree (after an insert in the
///   middle of a table, or deletes), and can leave the bytes of a moved row in its old page's
///   unallocated space, even with `secure_delete` (its `rebuildPage` does not clear it). A
///   copy of a live key then stays behind, and stays after that key is erased: measured with
///   erasures as deletes, one of 240 erased keys was still in the file, in 3 runs out of 3.
///   Key rows are therefore never deleted nor moved: an erasure writes 32 zero bytes over the
///   secret in place (the row keeps its size, so SQLite overwrites its cell where it is) and
///   marks it `live = 0`; new keys are added at the end of the table (by `seq`), where SQLite
///   puts a row that does not fit on a new page rather than moving others;
/// - the write-ahead log keeps the old images of the pages a commit changed, and the database
///   file only gets the new image at the next checkpoint: an erasure ends with a TRUNCATE
///   checkpoint, which copies the zeroed pages into the file, fsyncs it, and empties the log
///   file. Readers in the middle of a read (of a snapshot from before the erasure) hold it
///   back; it is tried again for a short while, and an erasure whose checkpoint never got
///   through fails (the keys are destroyed all the same; erasing again retries it).
///
/// What stays: a file system or disk that keeps old blocks (copy-on-write file systems, SSD
/// wear levelling, snapshots) and backups of the file keep a key until they are rotated. A
/// destroyed key's row stays too, with its id and member but no secret: about 100 bytes per
/// erasure.
#[derive(Debug)]
pub struct SqliteKeyVault {
    writes: Writes,
    readers: Arc<ReaderPool>,
}

/// Where the vault's writes run.
#[derive(Debug)]
enum Writes {
    /// On the store's writer thread. Weak: a vault the engine still holds must not keep the
    /// writer running (and `SqliteStore::close` waiting for it) after the store is closed.
    Store(mpsc::WeakSender<writer::Request>),
    /// On the key file's own connection.
    Own(Arc<Mutex<Connection>>),
}

impl SqliteKeyVault {
    /// The vault of a store: its writes go to the store's writer thread.
    pub(crate) fn for_store(
        appends: &mpsc::Sender<writer::Request>,
        readers: Arc<ReaderPool>,
    ) -> Self {
        Self {
            writes: Writes::Store(appends.downgrade()),
            readers,
        }
    }

    /// Opens (creating if need be) the key file at `path`, for a log kept elsewhere. The file
    /// has the layout of a store's file (upgraded on open as a store's is, a newer one
    /// refused), whose log stays empty: one format, one set of upgrades. Blocks while it opens
    /// the file (briefly, unless another process holds the file's write lock): call it at
    /// start-up or from a blocking task.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let mut conn = crate::open_write_connection(path)?;
        // Only this connection writes the file, and only the vault's rare writes: every
        // commit is fsynced by SQLite itself, and every change zeroes what it replaces.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")?;
        crate::tune(&conn)?;
        crate::schema::upgrade(&mut conn, true)?;
        Ok(Self {
            writes: Writes::Own(Arc::new(Mutex::new(conn))),
            readers: Arc::new(ReaderPool::new(path.to_path_buf(), KEY_FILE_READERS)),
        })
    }

    /// Runs `work` on the connection that writes the file, on its thread, and waits for it.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.writes {
            Writes::Store(appends) => {
                let appends = appends.upgrade().ok_or(StoreError::Closed)?;
                let (reply, outcome) = oneshot::channel();
                let work: writer::Exclusive = Box::new(move |conn| {
                    // A caller that gave up is no reason to stop: the work is done.
                    let _ = reply.send(conn.and_then(work));
                });
                appends
                    .send(writer::Request::Exclusive(work))
                    .await
                    .map_err(|_| StoreError::Closed)?;
                // Not held while waiting: closing the store must not wait for this vault.
                drop(appends);
                outcome.await.map_err(|_| StoreError::Closed)?
            }
            Writes::Own(conn) => {
                let conn = Arc::clone(conn);
                tokio::task::spawn_blocking(move || {
                    // A panic in the work leaves no transaction open (rusqlite's
                    // `Transaction` rolls back on drop), so a poisoned lock is usable.
                    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    work(&mut conn)
                })
                .await
                .map_err(|e| StoreError::Backend(format!("key vault task failed: {e}")))?
            }
        }
    }

    /// Runs `read` on a reader connection; a store's vault answers `Closed` once the store is.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Writes::Store(appends) = &self.writes
            && appends.upgrade().is_none()
        {
            return Err(StoreError::Closed);
        }
        self.readers.with(read).await
    }
}

#[async_trait]
impl KeyVault for SqliteKeyVault {
    async fn key_for(&self, member_id: &str) -> Result<MemberKey, StoreError> {
        // Nearly always the key exists: a reader finds it without bothering the writer.
        let member = member_id.to_owned();
        if let Some(key) = self.read(move |conn| live_key(conn, &member)).await? {
            return Ok(key);
        }
        // Made here rather than on the writer's thread, where nothing may panic.
        let key = vault::new_key(member_id);
        self.write(move |conn| create_key(conn, key)).await
    }

    async fn key(&self, key_id: &str) -> Result<Option<MemberKey>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(move |conn| key_by_id(conn, &key_id)).await
    }

    async fn erase(&self, member_id: &str, at: DateTime<Utc>) -> Result<Erasure, StoreError> {
        let member = member_id.to_owned();
        let keys_destroyed = self.write(move |conn| erase(conn, &member, at)).await?;
        Ok(Erasure {
            member_id: member_id.to_owned(),
            keys_destroyed,
            erased_at: at,
        })
    }

    async fn erased_at(&self, member_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let member = member_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT erased_at FROM member_erasures WHERE member_id = ?1")
                .and_then(|mut s| s.query_row([&member], |r| r.get::<_, String>(0)).optional())
                .map_err(backend)?
                .map(|at| parse_time(&at))
                .transpose()
        })
        .await
    }
}

/// A time as the tables keep it: RFC 3339 in UTC with nine fractional digits, so that every
/// value has the same width and text order is time order.
fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time {text:?} in the key vault: {e}")))
}

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, Vec<u8>)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn to_key((key_id, member_id, secret): (String, String, Vec<u8>)) -> Result<MemberKey, StoreError> {
    let secret = vault::secret_from_bytes(&key_id, &secret)?;
    Ok(MemberKey {
        key_id,
        member_id,
        secret,
    })
}

/// The member's live key, if any.
fn live_key(conn: &Connection, member: &str) -> Result<Option<MemberKey>, StoreError> {
    conn.prepare_cached(
        "SELECT key_id, member_id, secret FROM member_keys WHERE member_id = ?1 AND live = 1",
    )
    .and_then(|mut s| s.query_row([member], key_from_row).optional())
    .map_err(backend)?
    .map(to_key)
    .transpose()
}

fn key_by_id(conn: &Connection, key_id: &str) -> Result<Option<MemberKey>, StoreError> {
    conn.prepare_cached(
        "SELECT key_id, member_id, secret FROM member_keys WHERE key_id = ?1 AND live = 1",
    )
    .and_then(|mut s| s.query_row([key_id], key_from_row).optional())
    .map_err(backend)?
    .map(to_key)
    .transpose()
}

/// Runs `work` with the settings every write of the vault needs, and puts the connection's
/// own back after: a store's writer runs with `synchronous = NORMAL` (its syncer thread
/// fsyncs the log) and without `secure_delete`, and must go on so.
fn with_vault_settings<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let pragma = |conn: &Connection, name: &str| -> Result<i64, StoreError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(sql_error)
    };
    let synchronous = pragma(conn, "synchronous")?;
    let secure_delete = pragma(conn, "secure_delete")?;
    // FULL: the commit is durable when it returns, without the store's syncer (which only
    // hears of the writer's batches). secure_delete: whatever a change replaces is zeroed.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")
        .map_err(sql_error)?;
    let outcome = work(conn);
    // PRAGMA takes no bound parameters; the values are SQLite's own numbers.
    let restored = conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA secure_delete = {secure_delete};"
    ));
    if let Err(e) = restored {
        // The vault's work is done either way; the connection merely stays stricter.
        tracing::error!(error = %e, "cannot restore the writer's settings after a key vault write");
    }
    outcome
}

/// Stores `key` as its member's, unless another caller made one since the reader looked: then
/// that one is the member's key.
fn create_key(conn: &mut Connection, key: MemberKey) -> Result<MemberKey, StoreError> {
    with_vault_settings(conn, |conn| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        if let Some(existing) = live_key(&tx, &key.member_id)? {
            return Ok(existing);
        }
        tx.prepare_cached(
            "INSERT INTO member_keys (key_id, member_id, secret, live, created_at)
             VALUES (?1, ?2, ?3, 1, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                key.key_id,
                key.member_id,
                key.secret.as_slice(),
                format_time(DateTime::<Utc>::from(std::time::SystemTime::now()))
            ])
        })
        .map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
        Ok(key)
    })
}

/// Destroys the member's live keys and remembers the erasure, durably; then empties the
/// write-ahead log. Returns how many keys it destroyed.
fn erase(conn: &mut Connection, member: &str, at: DateTime<Utc>) -> Result<u64, StoreError> {
    with_vault_settings(conn, |conn| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        // Same size as the secret, so SQLite overwrites the row's cell where it is.
        let zeros = [0u8; KEY_BYTES];
        let destroyed = tx
            .prepare_cached(
                "UPDATE member_keys SET secret = ?2, live = 0 WHERE member_id = ?1 AND live = 1",
            )
            .and_then(|mut s| s.execute(params![member, zeros.as_slice()]))
            .map_err(sql_error)?;
        tx.prepare_cached(
            "INSERT INTO member_erasures (member_id, erased_at) VALUES (?1, ?2)
             ON CONFLICT (member_id) DO UPDATE SET erased_at = MAX(erased_at, excluded.erased_at)",
        )
        .and_then(|mut s| s.execute(params![member, format_time(at)]))
        .map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
        // Also when nothing was destroyed now: erasing again is how a caller retries a
        // checkpoint that readers held back last time.
        truncate_log(conn)?;
        u64::try_from(destroyed).map_err(|_| StoreError::Backend("too many keys".to_owned()))
    })
}

/// A TRUNCATE checkpoint: copies every page of the write-ahead log into the database file,
/// fsyncs it, and empties the log file, so that no old image of a page remains in either.
/// Readers in the middle of a read (of a snapshot from before the erasure) hold it back: it
/// waits for them a little, a few times.
fn truncate_log(conn: &Connection) -> Result<(), StoreError> {
    let busy_timeout: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .map_err(sql_error)?;
    conn.busy_timeout(CHECKPOINT_WAIT).map_err(sql_error)?;
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE) {
            Ok(_) => break Ok(()),
            Err(e) if is_busy(&e) && attempt < CHECKPOINT_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "key vault checkpoint held back, retrying");
                std::thread::sleep(Duration::from_millis(u64::from(attempt) * 10));
            }
            Err(e) if is_busy(&e) => {
                break Err(StoreError::Unavailable(format!(
                    "the keys are destroyed, but readers kept the write-ahead log from being \
                     emptied, so it may still hold them: erase again to retry ({e})"
                )));
            }
            Err(e) => break Err(sql_error(e)),
        }
    };
    let restore = Duration::from_millis(u64::try_from(busy_timeout).unwrap_or(0));
    if let Err(e) = conn.busy_timeout(restore) {
        tracing::error!(error = %e, "cannot restore the busy timeout after a key vault checkpoint");
    }
    outcome
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
