//! The metadata stored beside every event the engine appends (JSON), read back by auditors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who asked and why, passed by the caller of [`crate::Engine::execute_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandContext {
    /// Ties together everything done for one request (the HTTP request id, say).
    pub correlation_id: Option<String>,
    /// The event or request that caused this command (process managers set it to the event id).
    pub causation_id: Option<String>,
    /// The authenticated principal (API client, operator, `system`).
    pub actor: Option<String>,
}

impl CommandContext {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn with_causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
}

/// Longest correlation id, causation id or actor kept in metadata: a caller cannot grow events.
pub const MAX_CONTEXT_FIELD: usize = 128;

fn bounded(value: Option<String>) -> Option<String> {
    value.map(|v| v.chars().take(MAX_CONTEXT_FIELD).collect())
}

/// The metadata document of one appended event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The client's id of the command (transaction id, refund id, ...).
    pub client_id: String,
    /// The command's name (`RecordPurchase`...).
    pub command: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// Business time from the terminal.
    pub occurred_at: DateTime<Utc>,
    /// The engine's clock when the event was appended.
    pub recorded_at: DateTime<Utc>,
    /// The version of the program rules that decided.
    pub rules_version: String,
    pub actor: Option<String>,
}

impl EventMetadata {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client_id: String,
        command: String,
        context: &CommandContext,
        occurred_at: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
        rules_version: String,
    ) -> Self {
        Self {
            client_id,
            command,
            correlation_id: bounded(context.correlation_id.clone()),
            causation_id: bounded(context.causation_id.clone()),
            occurred_at,
            recorded_at,
            rules_version,
            actor: bounded(context.actor.clone()),
        }
    }
}
