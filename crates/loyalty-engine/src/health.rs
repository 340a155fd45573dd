//! Whether the store takes writes. An append that fails for a reason other than a concurrent
//! writer (out of space, the store unreachable) marks writes as failing; the next append that
//! succeeds clears it. While failing, a probe appends a small event now and then, so that a
//! server that a load balancer stopped sending writes to still notices when the store is back
//! (probes are written only while writes fail: a handful per outage).

use std::sync::Arc;
use std::time::Duration;

use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, StoreError};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Streams the probe writes to: `health-<engine id>`.
pub const HEALTH_PREFIX: &str = "health-";
const PROBE_EVENT: &str = "WriteProbe";
/// How often a failing store is probed.
const PROBE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    failure: Mutex<Option<String>>,
}

impl WriteHealth {
    /// An append failed: is it the store's fault (not a conflict, not a bad request)?
    pub(crate) fn note(&self, result: &Result<(), &StoreError>) {
        match result {
            Ok(()) => *self.failure.lock() = None,
            Err(e) if counts_as_failing(e) => *self.failure.lock() = Some(e.to_string()),
            Err(_) => {}
        }
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }
}

/// Errors that say the store cannot take writes now, as opposed to refusing this one append.
fn counts_as_failing(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable(_)
            | StoreError::StorageFull(_)
            | StoreError::Closed
            | StoreError::Backend(_)
            | StoreError::Corrupt(_)
    )
}

/// Probes the store while writes are failing, until shutdown.
pub(crate) fn spawn_probe(
    store: Arc<dyn EventStore>,
    health: Arc<WriteHealth>,
    stream: String,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(PROBE_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if health.failure().is_none() {
                continue;
            }
            let probe = EventData {
                id: uuid::Uuid::new_v4(),
                event_type: PROBE_EVENT.to_owned(),
                schema_version: 1,
                data: Bytes::from_static(b"{}"),
                metadata: Bytes::from_static(b"{}"),
            };
            match store
                .append(&stream, ExpectedRevision::Any, vec![probe])
                .await
            {
                Ok(written) => {
                    tracing::info!("the store takes writes again");
                    health.note(&Ok(()));
                    // Only the last probe matters: keep the stream to it.
                    crate::bounded::keep_last(
                        store.as_ref(),
                        &stream,
                        written.next_expected_revision,
                        1,
                    )
                    .await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the store still refuses writes");
                    health.note(&Err(&e));
                }
            }
        }
    })
}
