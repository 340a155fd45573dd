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
    /// Applies consecutive events, in order (a page lets the projection decode on every core).
    fn apply_page(&self, events: &[RecordedEvent]);
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
            let mut page: Vec<RecordedEvent> = Vec::with_capacity(MAX_BATCH);
            let flush = |page: &mut Vec<RecordedEvent>| {
                let last = page.last().map(|e| e.position);
                if let Some(position) = last {
                    projection.apply_page(page);
                    progress.advance(position);
                    page.clear();
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
                // Apply what is already buffered as one page, and publish the position once:
                // readers waiting for a position are woken per page, not per event.
                let mut message = first;
                loop {
                    match message {
                        Some(Ok(SubscriptionMessage::Event(event))) => {
                            page.push(event);
                            backoff = Duration::from_millis(10);
                        }
                        Some(Ok(SubscriptionMessage::CaughtUp { position })) => {
                            flush(&mut page);
                            progress.caught_up(position);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "projection subscription ended, re-opening");
                            flush(&mut page);
                            break 'messages;
                        }
                        None => {
                            tracing::warn!("projection subscription closed, re-opening");
                            flush(&mut page);
                            break 'messages;
                        }
                    }
                    if page.len() >= MAX_BATCH {
                        break;
                    }
                    // `recv` is cancel-safe: dropping the pending future loses nothing.
                    match subscription.next().now_or_never() {
                        Some(next) => message = next,
                        None => break,
                    }
                }
                flush(&mut page);
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
