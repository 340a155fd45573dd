//! The `[webhooks]` section of `config/loyalty.toml`.

use serde::{Deserialize, Serialize};

/// How the dispatcher delivers. Every field has a default; `validate` refuses nonsense.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Whether this server delivers at all (under the lease). Endpoints can be managed either way.
    pub enabled: bool,
    /// Whether endpoints may point at loopback, private or link-local addresses. Off in
    /// production: a webhook URL must not become a way into the retailer's own network (SSRF).
    /// Tests and `make run` turn it on to deliver to a receiver on the same machine.
    pub allow_private_targets: bool,
    /// Most endpoints registered at once.
    pub max_endpoints: usize,
    /// An endpoint's request timeout when it names none, and the largest it may name.
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    /// Messages in flight to one endpoint when it names no limit, and the largest it may name.
    /// Messages of one member are never in flight together (order per member).
    pub default_max_in_flight: u32,
    pub max_in_flight: u32,
    /// Retries: exponential backoff from `initial_backoff_ms`, doubling up to `max_backoff_ms`,
    /// each with full jitter, for at most `retry_for_secs` after a message's first attempt.
    /// Then the endpoint is marked failing: its backlog is kept (the checkpoint stays) and the
    /// oldest message is retried every `failing_probe_secs` until one succeeds.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub retry_for_secs: u64,
    pub failing_probe_secs: u64,
    /// Events of an endpoint's delivery-log stream kept (each holds up to `log_batch` attempts).
    pub log_keep_events: u64,
    /// Most attempts recorded in one delivery-log event; a batch is written at least every
    /// `log_flush_ms`, with the checkpoint.
    pub log_batch: usize,
    pub log_flush_ms: u64,
    /// How long the previous secret still signs after a rotation, when the request names none.
    pub rotation_overlap_secs: u64,
    /// The User-Agent of every delivery.
    pub user_agent: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            enabled: true,
            allow_private_targets: false,
            max_endpoints: 32,
            default_timeout_ms: 5_000,
            max_timeout_ms: 30_000,
            default_max_in_flight: 8,
            max_in_flight: 64,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 600_000,
            retry_for_secs: 86_400,
            failing_probe_secs: 300,
            log_keep_events: 256,
            log_batch: 256,
            log_flush_ms: 200,
            rotation_overlap_secs: 86_400,
            user_agent: concat!("loyalty-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl WebhookSettings {
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str); 9] = [
            (self.max_endpoints >= 1, "max_endpoints must be at least 1"),
            (
                (1..=self.max_timeout_ms).contains(&self.default_timeout_ms),
                "default_timeout_ms must be 1..=max_timeout_ms",
            ),
            (
                (1..=self.max_in_flight).contains(&self.default_max_in_flight),
                "default_max_in_flight must be 1..=max_in_flight",
            ),
            (
                self.max_in_flight <= 1024,
                "max_in_flight must be at most 1024",
            ),
            (
                (1..=self.max_backoff_ms).contains(&self.initial_backoff_ms),
                "initial_backoff_ms must be 1..=max_backoff_ms",
            ),
            (
                self.failing_probe_secs >= 1,
                "failing_probe_secs must be at least 1",
            ),
            (
                self.log_keep_events >= 1,
                "log_keep_events must be at least 1",
            ),
            (
                (1..=4096).contains(&self.log_batch),
                "log_batch must be 1..=4096",
            ),
            (self.log_flush_ms >= 1, "log_flush_ms must be at least 1"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(format!("[webhooks] {why}")),
            None => Ok(()),
        }
    }
}
