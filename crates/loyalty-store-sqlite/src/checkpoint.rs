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
use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use crate::OpenError;

/// The writer checkpoints itself once the log holds this many times the threshold.
pub(crate) const HARD_LIMIT_FACTOR: u32 = 4;

/// Installs the writer's commit hook and starts the checkpointer thread, which ends once the
/// writer's connection (and with it the hook) is dropped.
pub(crate) fn start(
    writer: &mut Connection,
    path: &Path,
    threshold_pages: u32,
) -> Result<JoinHandle<()>, OpenError> {
    let threshold = threshold_pages.max(1);
    let hard_limit = threshold.saturating_mul(HARD_LIMIT_FACTOR);
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    crate::tune(&conn)?;
    // One pending signal is enough: the checkpoint it starts copies everything committed so far.
    let (signal, signals) = sync_channel(1);
    let mut signalled_at = 0u32;
    writer.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
        let frames = u32::try_from(frames).unwrap_or(0);
        if frames < signalled_at {
            // The log was restarted from its beginning.
            signalled_at = 0;
        }
        if frames >= hard_limit {
            // The commit has happened whatever is returned here, and an error would make
            // COMMIT report a failure for appends that are durable: log it, never return it.
            if let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::warn!(error = %e, frames, "the writer's own checkpoint failed");
            }
        } else if frames - signalled_at >= threshold {
            signalled_at = frames;
            // Full means a checkpoint is already due; gone means the store is closing.
            let _ = signal.try_send(());
        }
        Ok(())
    }))?;
    Ok(std::thread::Builder::new()
        .name("event-store-checkpointer".to_owned())
        .spawn(move || run(conn, signals))?)
}

fn run(conn: Connection, signals: Receiver<()>) {
    while signals.recv().is_ok() {
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok((frames, copied)) => tracing::debug!(frames, copied, "checkpoint"),
            Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
        }
    }
}
