//! Tuning of the adapter: limits, retries, reconnection.

use std::time::Duration;

use loyalty_store::Limits;

/// How the adapter talks to the server. The defaults suit a production engine; tests shorten
/// the delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStoreDbOptions {
    /// The store's limits. `max_append_bytes` must not exceed the server's `MaxAppendSize`
    /// (1 MiB by default): appends over it are refused before anything is sent.
    pub limits: Limits,
    /// Attempts of one operation on transient errors (server unavailable, not leader, lost
    /// connection, deadline), the first included. Appends are safe to retry: their event ids
    /// make the server answer a retry of a write that did land with the original result.
    pub max_attempts: u32,
    /// First wait before a retry or a reconnection; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Deadline of one read or append, and of one readiness probe.
    pub operation_timeout: Duration,
    /// Reconnections a subscription makes in a row, without receiving anything in between,
    /// before it gives up with [`loyalty_store::StoreError::Unavailable`].
    pub subscription_max_reconnects: u32,
}

impl Default for EventStoreDbOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            subscription_max_reconnects: 20,
        }
    }
}
