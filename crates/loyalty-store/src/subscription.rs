use tokio::sync::mpsc;

use crate::{Position, RecordedEvent, StoreError};

/// How many messages a subscription buffers before its producer waits: a slow consumer slows
/// its producer down instead of growing memory without bound.
pub const SUBSCRIPTION_BUFFER: usize = 1_024;

/// What a catch-up subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionMessage {
    Event(RecordedEvent),
    /// History is exhausted: from here on, events are live. Sent once; `position` is the last
    /// position of `$all` the history read covered.
    CaughtUp { position: Position },
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

    /// Ends the subscription: the producer sees its sender closed and stops.
    pub fn stop(&mut self) {
        self.rx.close();
    }
}
