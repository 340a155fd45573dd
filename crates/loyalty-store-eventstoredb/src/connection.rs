//! The client, its replacement when it closes for good, readiness, and bounded retries.
//!
//! The `eventstore` client has a trap: if its first connection fails (the server is not up
//! yet), or a reconnection fails, its connection task ends and that client instance answers
//! `ConnectionClosed` forever. So the adapter keeps the client in a slot with a generation
//! number and builds a new one from the same settings when it sees the old one closed. A
//! background monitor probes the server while the adapter is not ready (bounded exponential
//! backoff between probes) and flips readiness back on when a probe succeeds.

use std::future::Future;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use eventstore::{Client, ClientSettings, ReadAllOptions, StreamPosition};
use loyalty_store::StoreError;
use tokio::sync::{Notify, watch};

use crate::options::EventStoreDbOptions;

/// What to do about a failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transience {
    /// Retrying unchanged will fail the same way.
    Permanent,
    /// May work on a later try with the same client (the client reconnects by itself, or, for
    /// not-leader errors, switches to the leader it was told about).
    Transient,
    /// The client is closed for good: retry with a new client.
    NewClient,
}

pub(crate) fn classify(error: &eventstore::Error) -> Transience {
    use eventstore::Error;
    use tonic::Code;
    match error {
        Error::ConnectionClosed | Error::GrpcConnectionError(_) => Transience::NewClient,
        Error::ServerError(_) | Error::NotLeaderException(_) | Error::DeadlineExceeded => {
            Transience::Transient
        }
        Error::Grpc {
            code: Code::Unavailable | Code::Aborted | Code::ResourceExhausted | Code::Cancelled,
            ..
        } => Transience::Transient,
        _ => Transience::Permanent,
    }
}

/// Why an operation did not return a value.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Transient errors outlasted the retries.
    Unavailable(String),
    /// A permanent error, for the caller to map (conflicts, not found...).
    Client(eventstore::Error),
}

#[derive(Clone)]
pub(crate) struct Slot {
    pub generation: u64,
    pub client: Client,
}

pub(crate) struct Connection {
    settings: ClientSettings,
    slot: RwLock<Slot>,
    ready: watch::Sender<bool>,
    /// Wakes the monitor when an operation sees the server gone (or the store is dropped).
    lost: Arc<Notify>,
    pub options: EventStoreDbOptions,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("hosts", self.settings.hosts())
            .field("ready", &*self.ready.borrow())
            .finish_non_exhaustive()
    }
}

fn new_client(settings: &ClientSettings) -> Result<Client, StoreError> {
    Client::new(settings.clone())
        .map_err(|e| StoreError::Backend(format!("eventstore client: {e}")))
}

impl Connection {
    /// Builds the first client and starts the monitor. Needs a tokio runtime; does no I/O.
    pub fn open(url: &str, options: EventStoreDbOptions) -> Result<Arc<Self>, StoreError> {
        let settings: ClientSettings =
            url.parse()
                .map_err(|e: eventstore::ClientSettingsParseError| {
                    StoreError::Backend(format!(
                        "invalid EventStoreDB connection string: {}",
                        e.message()
                    ))
                })?;
        tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::Backend("connecting needs a tokio runtime".to_owned()))?;
        let client = new_client(&settings)?;
        let lost = Arc::new(Notify::new());
        let connection = Arc::new(Self {
            settings,
            slot: RwLock::new(Slot {
                generation: 0,
                client,
            }),
            ready: watch::Sender::new(false),
            lost: Arc::clone(&lost),
            options,
        });
        tokio::spawn(monitor(Arc::downgrade(&connection), lost));
        Ok(connection)
    }

    pub fn slot(&self) -> Slot {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the client of `generation` by a new one (once, however many callers saw it
    /// closed).
    pub fn replace_client(&self, generation: u64) {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        if slot.generation != generation {
            return;
        }
        match new_client(&self.settings) {
            Ok(client) => {
                tracing::info!(generation = generation + 1, "new EventStoreDB client");
                *slot = Slot {
                    generation: generation + 1,
                    client,
                };
            }
            Err(e) => tracing::error!(error = %e, "cannot build a new EventStoreDB client"),
        }
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub async fn wait_ready(&self, within: Duration) -> Result<(), StoreError> {
        let mut ready = self.ready.subscribe();
        match tokio::time::timeout(within, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable(format!(
                "EventStoreDB at {:?} not reachable within {within:?}",
                self.settings.hosts()
            ))),
        }
    }

    pub fn mark_ready(&self) {
        self.ready
            .send_if_modified(|ready| !std::mem::replace(ready, true));
    }

    pub fn mark_lost(&self) {
        self.ready
            .send_if_modified(|ready| std::mem::replace(ready, false));
        self.lost.notify_one();
    }

    /// Deals with a failed attempt: a new client if the old one is closed, readiness off if
    /// the server looks gone. Returns whether the error is worth another attempt.
    pub fn after_failure(&self, generation: u64, error: &eventstore::Error) -> bool {
        match classify(error) {
            Transience::Permanent => return false,
            Transience::NewClient => self.replace_client(generation),
            Transience::Transient => {}
        }
        // A follower answering "not leader" is up; the client moves to the leader by itself.
        if !matches!(error, eventstore::Error::NotLeaderException(_)) {
            self.mark_lost();
        }
        true
    }

    /// Waits before attempt number `attempt + 1`: the backoff, cut short once the monitor
    /// finds the server ready again.
    pub async fn wait_before_retry(&self, attempt: u32) {
        let delay = backoff(&self.options, attempt);
        // Give a client switching to a new leader a moment, even if readiness never dropped.
        tokio::time::sleep(delay / 4).await;
        let mut ready = self.ready.subscribe();
        let _ = tokio::time::timeout(delay - delay / 4, ready.wait_for(|r| *r)).await;
    }

    /// Runs `op` with the current client, retrying transient failures up to
    /// `options.max_attempts` times in all.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = eventstore::Result<T>>,
    {
        let mut attempt = 1;
        loop {
            let slot = self.slot();
            let error = match op(slot.client).await {
                Ok(value) => {
                    self.mark_ready();
                    return Ok(value);
                }
                Err(error) => error,
            };
            if !self.after_failure(slot.generation, &error) {
                return Err(Failure::Client(error));
            }
            if attempt >= self.options.max_attempts {
                return Err(Failure::Unavailable(error.to_string()));
            }
            tracing::warn!(attempt, error = %error, "EventStoreDB operation failed, retrying");
            self.wait_before_retry(attempt).await;
            attempt += 1;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Lets the monitor notice the store is gone and end.
        self.lost.notify_one();
    }
}

/// The wait after the `attempt`-th failure in a row: doubling from `backoff_initial`, capped.
pub(crate) fn backoff(options: &EventStoreDbOptions, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    options
        .backoff_initial
        .saturating_mul(factor)
        .min(options.backoff_max)
}

/// A cheap request that needs a working connection: the last record of `$all`.
async fn probe(client: &Client, timeout: Duration) -> eventstore::Result<()> {
    let options = ReadAllOptions::default()
        .position(StreamPosition::End)
        .backwards()
        .max_count(1)
        .deadline(timeout);
    let mut read = client.read_all(&options).await?;
    read.next().await?;
    Ok(())
}

/// While the store is not ready: probe, and on failure build a new client if the old one
/// closed, then wait (bounded backoff) and probe again. While ready: sleep until an operation
/// reports the server lost. Ends when the store is dropped.
async fn monitor(connection: Weak<Connection>, lost: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let Some(conn) = connection.upgrade() else {
            return;
        };
        if conn.is_ready() {
            drop(conn);
            lost.notified().await;
            continue;
        }
        let slot = conn.slot();
        let timeout = conn.options.operation_timeout;
        let outcome = tokio::time::timeout(timeout, probe(&slot.client, timeout)).await;
        match outcome {
            Ok(Ok(())) => {
                failures = 0;
                conn.mark_ready();
                tracing::info!("EventStoreDB ready");
                continue;
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "EventStoreDB not reachable");
                if classify(&error) == Transience::NewClient {
                    conn.replace_client(slot.generation);
                }
            }
            Err(_) => {
                // A client stuck connecting is as good as closed.
                tracing::warn!("EventStoreDB readiness probe timed out");
                conn.replace_client(slot.generation);
            }
        }
        failures = failures.saturating_add(1);
        let delay = backoff(&conn.options, failures);
        drop(conn);
        tokio::time::sleep(delay).await;
    }
}
