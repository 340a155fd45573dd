//! Durability off the writer's thread: the syncer fsyncs the write-ahead log for the batches the
//! writer committed, and only then answers their appends and publishes the new head.
//!
//! The writer connection runs with `synchronous = NORMAL`, so SQLite's COMMIT writes the log
//! but does not fsync it. Alone that would lose acknowledged appends on power loss; here no
//! append is answered, and no reader of this store sees an event, before an fsync of the log
//! that began after its commit had written it. Meanwhile the writer is already building the
//! next batch, so fsync and the CPU work of appending overlap instead of taking turns, and
//! one fsync covers every batch that committed while the previous one was running.
//!
//! Why this is safe with SQLite: a commit's frames are written to the log file before COMMIT
//! returns; `fdatasync` on any descriptor of that file makes them durable; and the log's
//! frames carry cumulative checksums, so recovery keeps a prefix of commits and can never keep
//! a later commit without the earlier ones. The log file is never deleted while the writer's
//! connection is open, so the descriptor held here stays the log's.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use tokio::sync::{oneshot, watch};

use loyalty_store::{AppendResult, Position, StoreError};

/// Committed batches waiting for their fsync. Bounded: when fsyncs fall behind, the writer
/// waits here, and appends wait on the writer's own bounded queue.
pub(crate) const MAX_PENDING_BATCHES: usize = 64;

pub(crate) type Reply = oneshot::Sender<Result<Vec<AppendResult>, StoreError>>;

/// A batch the writer committed: its answers and the last position it stored, if any.
pub(crate) struct Committed {
    pub replies: Vec<(Reply, Result<Vec<AppendResult>, StoreError>)>,
    pub head: Option<Position>,
}

/// Set once an fsync failed. After a failed fsync the kernel may have dropped the dirty
/// pages, so what is on disk is unknown: the store then refuses every append until it is
/// reopened (and SQLite's recovery has read back what survived).
#[derive(Debug, Default)]
pub(crate) struct Failed(AtomicBool);

impl Failed {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

pub(crate) fn failed_error() -> StoreError {
    StoreError::Backend(
        "an fsync of the event store's log failed: appends are refused until the store is \
         reopened"
            .to_owned(),
    )
}

/// The write-ahead log's path: SQLite names it after the database file.
pub(crate) fn log_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push("-wal");
    PathBuf::from(path)
}

/// The syncer's loop; returns when the writer is gone and every committed batch is answered.
pub(crate) fn run(
    log: File,
    batches: Receiver<Committed>,
    head: watch::Sender<Position>,
    failed: Arc<Failed>,
) {
    let mut pending = Vec::with_capacity(MAX_PENDING_BATCHES);
    while let Ok(first) = batches.recv() {
        pending.push(first);
        // Every batch committed while the previous fsync ran shares this one.
        while let Ok(next) = batches.try_recv() {
            pending.push(next);
        }
        let synced = if failed.is_set() {
            Err(failed_error())
        } else {
            log.sync_data().map_err(|e| {
                failed.set();
                tracing::error!(error = %e, "fsync of the event store's log failed");
                failed_error()
            })
        };
        match synced {
            Ok(()) => {
                if let Some(position) = pending.iter().filter_map(|c| c.head).max() {
                    head.send_replace(position);
                }
                for committed in pending.drain(..) {
                    for (reply, outcome) in committed.replies {
                        // A caller that gave up is no reason to stop: its append is durable
                        // and a retry with the same event ids gets this same result.
                        let _ = reply.send(outcome);
                    }
                }
            }
            Err(e) => {
                for committed in pending.drain(..) {
                    for (reply, _) in committed.replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
