//! Keeps the store's head watch fresh with what other stores (other processes) on the same
//! schema append: `LISTEN` on a dedicated connection, and a bounded poll of `log_head` on the
//! same connection as a fallback (a notification can be missed while the connection is being
//! re-established, and a poll also notices a connection that went silent).
//!
//! The watch only wakes subscriptions up: they read `$all` after the last position they
//! delivered whatever value woke them, so a late, lost or duplicated notification can delay a
//! live event by at most one poll interval, never skip or repeat one.
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use loyalty_store::Position;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::error::describe;

/// First wait before reconnecting after a failure; doubled on each further failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A head poll that takes longer than this means the connection is gone: reconnect.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Raises the head to `position` if it is higher, waking the subscriptions.
pub(crate) fn publish(head: &watch::Sender<Position>, position: Position) {
    head.send_if_modified(|current| {
        if position > *current {
            *current = position;
            true
        } else {
            false
        }
    });
}

/// What the listener needs; it runs until its task is aborted (the store is dropped or closed).
pub(crate) struct Listener {
    pub config: tokio_postgres::Config,
    /// `LISTEN`'s channel, already quoted as an identifier.
    pub quoted_channel: String,
    pub head: Arc<watch::Sender<Position>>,
    pub poll_interval: Duration,
}

impl Listener {
    pub(crate) fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            loop {
                let failure = self.listen(&mut backoff).await;
                tracing::warn!(
                    error = %failure,
                    retry_in_ms = backoff.as_millis() as u64,
                    "the event store's listener lost its PostgreSQL connection; reconnecting"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// One connection's life: returns why it ended. Resets `backoff` once listening.
    async fn listen(&self, backoff: &mut Duration) -> String {
        let (client, mut connection) = match self.config.connect(NoTls).await {
            Ok(pair) => pair,
            Err(e) => return describe(&e),
        };
        // tokio-postgres hands notifications out through `Connection::poll_message`, which
        // also drives the connection: a stream over it, polled by its own task.
        let head = Arc::clone(&self.head);
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => match n.payload().parse::<u64>() {
                        Ok(p) => publish(&head, Position::new(p, p)),
                        // Not ours; the next poll reads the head anyway.
                        Err(_) => tracing::debug!(payload = n.payload(), "unexpected payload"),
                    },
                    Ok(AsyncMessage::Notice(notice)) => {
                        tracing::debug!(notice = %notice, "PostgreSQL notice");
                    }
                    Ok(_) => {}
                    Err(e) => return describe(&e),
                }
            }
            "the connection was closed".to_owned()
        });
        let _stop_driver = AbortOnDrop(driver.abort_handle());
        let mut driver = driver;

        if let Err(e) = client
            .batch_execute(&format!("LISTEN {}", self.quoted_channel))
            .await
        {
            return describe(&e);
        }
        let poll = match client
            .prepare("SELECT position FROM log_head WHERE id = 0")
            .await
        {
            Ok(statement) => statement,
            Err(e) => return describe(&e),
        };
        *backoff = MIN_BACKOFF;
        // The first tick is immediate: whatever was appended while not listening is picked up.
        let mut ticks = tokio::time::interval(self.poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ended = &mut driver => {
                    return ended.unwrap_or_else(|e| format!("the connection task ended: {e}"));
                }
                _ = ticks.tick() => {
                    match tokio::time::timeout(POLL_TIMEOUT, client.query_one(&poll, &[])).await {
                        Ok(Ok(row)) => match row.try_get::<_, i64>(0).map(u64::try_from) {
                            Ok(Ok(p)) => publish(&self.head, Position::new(p, p)),
                            _ => return "log_head holds no valid position".to_owned(),
                        },
                        Ok(Err(e)) => return describe(&e),
                        Err(_) => return format!("the head poll took over {POLL_TIMEOUT:?}"),
                    }
                }
            }
        }
    }
}

/// Aborts a task when dropped: the listener's connection task ends with the listener.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
