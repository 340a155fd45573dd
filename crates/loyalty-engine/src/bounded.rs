//! The engine's own bookkeeping streams (checkpoints, leases, write probes, member snapshots)
//! are only ever read at their last event: after an append, the events before it are truncated
//! now and then, so each stream stays bounded however long the servers run.

use loyalty_store::EventStore;

/// After the event at revision `last` was appended to `stream`: truncates the events before it
/// when `last` is a multiple of `every` (1: every time). Best effort: the append stands, a
/// failure is logged, and the next truncation catches up.
pub(crate) async fn keep_last(store: &dyn EventStore, stream: &str, last: u64, every: u64) {
    if last == 0 || !last.is_multiple_of(every.max(1)) {
        return;
    }
    if let Err(e) = store.truncate_before(stream, last).await {
        tracing::debug!(%stream, error = %e, "bookkeeping stream not truncated");
    }
}
