//! Feeds projections from a catch-up subscription to `$all`, in one task, and publishes how far
//! they got. A broken subscription is re-opened from the last applied position, so no event is
//! applied twice or skipped.

use std::sync::Arc;

use futures::FutureExt;
use std::time::Duration;

use loyalty_store::{EventStore, Position, RecordedEvent, StreamFilter, SubscriptionMessage};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::progress::ProgressTracker;

/// Something that folds events of `$all` into a read model. Called from a single task, in
/// position order, exactly once per event.
pub(crate) trait Projection: Send + Sync + 'static {
    fn apply(&self, event: &RecordedEvent);
    /// The position of the last event applied (where to resume).
    fn position(&self) -> Position;
}

/// Most events applied before the position is published.
const MAX_BATCH: usize = 512;

/// Longest pause between two attempts to re-open a failed subscription.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) fn spawn<P: Projection>(
    store: Arc<dyn EventStore>,
    projection: Arc<P>,
    filter: StreamFilter,
    progress: Arc<ProgressTracker>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(10);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let from = projection.position();
            let mut subscription = match store.subscribe_all(from, filter.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "projection subscription failed to open");
                    if pause(&mut shutdown, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            'messages: loop {
                let first = tokio::select! {
                    m = subscription.next() => m,
                    _ = shutdown.changed() => {
                        subscription.stop();
                        return;
                    }
                };
                // Apply what is already buffered before publishing the position once: readers
                // waiting for a position are woken per batch, not per event.
                let mut message = first;
                let mut applied = None;
                let mut handled = 0;
                loop {
                    match message {
                        Some(Ok(SubscriptionMessage::Event(event))) => {
                            projection.apply(&event);
                            applied = Some(event.position);
                            backoff = Duration::from_millis(10);
                        }
                        Some(Ok(SubscriptionMessage::CaughtUp { position })) => {
                            if let Some(p) = applied.take() {
                                progress.advance(p);
                            }
                            progress.caught_up(position);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "projection subscription ended, re-opening");
                            if let Some(p) = applied.take() {
                                progress.advance(p);
                            }
                            break 'messages;
                        }
                        None => {
                            tracing::warn!("projection subscription closed, re-opening");
                            if let Some(p) = applied.take() {
                                progress.advance(p);
                            }
                            break 'messages;
                        }
                    }
                    handled += 1;
                    if handled >= MAX_BATCH {
                        break;
                    }
                    // `recv` is cancel-safe: dropping the pending future loses nothing.
                    match subscription.next().now_or_never() {
                        Some(next) => message = next,
                        None => break,
                    }
                }
                if let Some(p) = applied {
                    progress.advance(p);
                }
            }
            if pause(&mut shutdown, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// Sleeps, or returns true early if shutdown was asked.
pub(crate) async fn pause(shutdown: &mut watch::Receiver<bool>, how_long: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(how_long) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
