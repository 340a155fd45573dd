use std::future::Future;

use tokio::sync::{mpsc, watch};

use crate::{Position, RecordedEvent, StoreError, StreamFilter};

/// How many messages a subscription buffers before its producer waits: a slow consumer slows
/// its producer down instead of growing memory without bound.
pub const SUBSCRIPTION_BUFFER: usize = 1_024;

/// What a catch-up subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionMessage {
    Event(RecordedEvent),
    /// History is exhausted: from here on, events are live. Sent once; `position` is the last
    /// position of `$all` the history read covered.
    CaughtUp {
        position: Position,
    },
}

/// The producer's half, used by backends.
pub type SubscriptionSender = mpsc::Sender<Result<SubscriptionMessage, StoreError>>;

/// A running catch-up subscription. Dropping it, or calling [`Subscription::stop`], ends it.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Result<SubscriptionMessage, StoreError>>,
}

impl Subscription {
    /// A subscription and the sender a backend feeds it through.
    pub fn channel() -> (SubscriptionSender, Subscription) {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        (tx, Subscription { rx })
    }

    /// The next message; `None` once the subscription has ended. An `Err` is final: the
    /// subscription ends after it.
    pub async fn next(&mut self) -> Option<Result<SubscriptionMessage, StoreError>> {
        self.rx.recv().await
    }

    /// Ends the subscription: the producer sees its sender closed and stops. Messages already
    /// buffered can still be drained with [`Subscription::next`], which then returns `None`.
    pub fn stop(&mut self) {
        self.rx.close();
    }
}

/// Runs a catch-up subscription for a store that can read `$all` in pages and announces its
/// head position after every commit through a `watch` channel (the in-memory and SQLite stores).
///
/// Why this gives no gap and no duplicate by construction: the driver only ever asks for events
/// strictly after the last position it has seen, and a store's reads only show whole, committed
/// appends in position order. The head notification is marked as seen *before* each catch-up
/// read, so a commit that lands during the read wakes the driver again instead of being missed.
///
/// `read_page(after, max)` must behave as [`crate::EventStore::read_all`]. The task ends when
/// the subscription is stopped or dropped, on the first read error (which it forwards), or with
/// [`StoreError::Closed`] when the head sender is dropped (the store was closed).
pub fn spawn_catch_up<R, F>(
    read_page: R,
    mut head: watch::Receiver<Position>,
    after: Position,
    filter: StreamFilter,
    page_size: usize,
) -> Subscription
where
    R: Fn(Position, usize) -> F + Send + 'static,
    F: Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send,
{
    let (tx, sub) = Subscription::channel();
    tokio::spawn(async move {
        let mut last = after;
        let mut caught_up = false;
        loop {
            head.borrow_and_update();
            loop {
                let page = tokio::select! {
                    page = read_page(last, page_size) => page,
                    () = tx.closed() => return,
                };
                let page = match page {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let short = page.len() < page_size;
                for event in page {
                    last = event.position;
                    if filter.matches(&event.stream)
                        && tx
                            .send(Ok(SubscriptionMessage::Event(event)))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                if short {
                    break;
                }
            }
            if !caught_up {
                caught_up = true;
                if tx
                    .send(Ok(SubscriptionMessage::CaughtUp { position: last }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        let _ = tx.send(Err(StoreError::Closed)).await;
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    });
    sub
}
