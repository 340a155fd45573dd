//! Checkpoints off the writer's thread.
//!
//! In WAL mode every commit appends pages to the log, and a checkpoint copies them back into the
//! database file and fsyncs it. SQLite's own autocheckpoint runs inside the commit that crossed
//! the threshold, on the writer's thread: every append queued behind that commit waited for
//! tens of megabytes to be copied, which was the purchase latency's p99. Here the writer only
//! signals a checkpointer thread with its own connection, which checkpoints in PASSIVE mode
//! while the writer goes on.
//!
//! A passive checkpoint never waits, so under steady load it may never find the log fully
//! copied, and SQLite restarts the log from its beginning only then. The writer therefore still
//! checkpoints itself once the log holds [`HARD_LIMIT_FACTOR`] times the threshold: by then the
//! checkpointer has copied nearly all of it, so that checkpoint is short, and the log restarts.
//!
//! SQLite reuses the log file from its beginning after a restart but never shortens it, so
//! the file would stay at its high-water mark. Two things cut it back to
//! [`WalBounds::max_bytes`]: `journal_size_limit` on the writer (SQLite shortens the file to
//! the limit at the first commit after each restart), and, when the file is past the bound
//! and a passive checkpoint has just copied every frame (so no reader holds an old snapshot
//! in the log), a TRUNCATE checkpoint here that empties the file.
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use crate::OpenError;
use crate::writer::Counters;

/// The writer checkpoints itself once the log holds this many times the threshold.
pub(crate) const HARD_LIMIT_FACTOR: u32 = 4;

/// Bytes a log frame takes: a page of 4 KiB and its header.
const FRAME_BYTES: u64 = 4096 + 24;

/// How long a TRUNCATE checkpoint waits for the writer's batch and for readers to finish.
/// It holds the write lock while it waits, so the wait stays short: a checkpoint that cannot
/// finish in time is tried again at the next signal, and the log meanwhile still restarts
/// (and shrinks to the bound) by itself.
const TRUNCATE_WAIT: Duration = Duration::from_millis(200);

/// The busy timeout of the checkpointer's connection otherwise.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// When the log is checkpointed and how large its file may stay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalBounds {
    /// Pages appended to the log between two background checkpoints.
    pub checkpoint_pages: u32,
    /// The log file is cut back to this many bytes once it has grown past it.
    pub max_bytes: u64,
}

/// Installs the writer's commit hook and starts the checkpointer thread, which ends once the
/// writer's connection (and with it the hook) is dropped.
pub(crate) fn start(
    writer: &mut Connection,
    path: &Path,
    bounds: WalBounds,
    counters: Arc<Counters>,
) -> Result<JoinHandle<()>, OpenError> {
    let threshold = bounds.checkpoint_pages.max(1);
    let hard_limit = threshold.saturating_mul(HARD_LIMIT_FACTOR);
    // The frame count past which the log file outgrows the bound: signalled once per log.
    let bound_frames = u32::try_from(bounds.max_bytes / FRAME_BYTES).unwrap_or(u32::MAX);
    let size_limit = i64::try_from(bounds.max_bytes).unwrap_or(i64::MAX);
    // PRAGMA takes no bound parameters; the value is a number of our own.
    writer.execute_batch(&format!("PRAGMA journal_size_limit = {size_limit}"))?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    crate::tune(&conn)?;
    // A connection learns that the file is in WAL mode only from its first read; until then
    // SQLite treats a checkpoint on it as a no-op that answers (-1, -1). Without this the
    // checkpointer never copied anything, and the writer's own checkpoint at four times the
    // threshold did all of it (which is how the log came to stay at ~135 MB).
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Io(std::io::Error::other(format!(
            "the checkpointer's connection is not in WAL mode (got {mode})"
        ))));
    }
    conn.execute_batch(&format!("PRAGMA journal_size_limit = {size_limit}"))?;
    // One pending signal is enough: the checkpoint it starts copies everything committed so far.
    let (signal, signals) = sync_channel(1);
    let mut signalled_at = 0u32;
    writer.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
        let frames = u32::try_from(frames).unwrap_or(0);
        if frames < signalled_at {
            // The log was restarted from its beginning.
            signalled_at = 0;
        }
        let crossed_bound = frames >= bound_frames && signalled_at < bound_frames;
        if frames >= hard_limit {
            // The commit has happened whatever is returned here, and an error would make
            // COMMIT report a failure for appends that are durable: log it, never return it.
            // Once it has copied everything, the next commit restarts the log, and
            // `journal_size_limit` cuts the file back to the bound.
            if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::warn!(error = %e, frames, "the writer's own checkpoint failed");
            }
        } else if frames - signalled_at >= threshold || crossed_bound {
            signalled_at = frames;
            // Full means a checkpoint is already due; gone means the store is closing.
            let _ = signal.try_send(());
        }
        Ok(())
    }))?;
    let wal_path = crate::sync::log_path(path);
    Ok(std::thread::Builder::new()
        .name("event-store-checkpointer".to_owned())
        .spawn(move || run(conn, signals, wal_path, bounds.max_bytes, counters))?)
}

fn run(
    conn: Connection,
    signals: Receiver<()>,
    wal_path: PathBuf,
    max_bytes: u64,
    counters: Arc<Counters>,
) {
    while signals.recv().is_ok() {
        let copied_all = match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((frames, copied)) => {
                tracing::debug!(frames, copied, "checkpoint");
                frames == copied
            }
            Err(e) => {
                tracing::warn!(error = %e, "background checkpoint failed");
                false
            }
        };
        let size = std::fs::metadata(&wal_path).map_or(0, |m| m.len());
        // A reader on an old snapshot keeps frames from being copied, and a TRUNCATE
        // checkpoint would wait for it while holding the write lock: only try when readers
        // allow, that is when everything could be copied.
        if copied_all && size > max_bytes {
            truncate(&conn, size, &counters);
        }
    }
}

/// Copies what is left of the log and empties its file. Waits at most [`TRUNCATE_WAIT`].
fn truncate(conn: &Connection, size: u64, counters: &Counters) {
    if let Err(e) = conn.busy_timeout(TRUNCATE_WAIT) {
        tracing::warn!(error = %e, "cannot shorten the checkpointer's busy timeout");
        return;
    }
    match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::TRUNCATE) {
        Ok(_) => {
            counters.wal_truncations.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(size, "write-ahead log truncated");
        }
        // Busy: the writer or a reader did not finish in time; the next signal tries again.
        Err(e) => tracing::debug!(error = %e, size, "write-ahead log not truncated this time"),
    }
    if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
        tracing::warn!(error = %e, "cannot restore the checkpointer's busy timeout");
    }
}
