//! What every handler can reach.
use std::sync::Arc;

use loyalty_engine::Engine;
use loyalty_webhooks::{WebhookSettings, Webhooks};

use crate::auth::{HasKeyRing, KeyRing};
use crate::metrics::Metrics;
use crate::settings::LimitSettings;

/// The shared state of the HTTP server (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: KeyRing,
    pub limits: Arc<LimitSettings>,
    pub metrics: Metrics,
    /// Webhook endpoints and their delivery logs (`/v1/webhooks`). The dispatcher that
    /// delivers is started by whoever built the handle (the binary), not by the server.
    pub webhooks: Webhooks,
}

impl AppState {
    /// The state with a webhooks handle on the default settings that delivers nothing (its
    /// dispatcher is not started): endpoints can be managed, nothing is sent. The binary
    /// passes its own with [`AppState::with_webhooks`].
    pub fn new(engine: Engine, keys: KeyRing, limits: LimitSettings) -> Self {
        Self {
            webhooks: Webhooks::new(engine.clone(), WebhookSettings::default()),
            engine,
            keys,
            limits: Arc::new(limits),
            metrics: Metrics::new(),
        }
    }

    /// The same state with this webhooks handle (built on the same engine).
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = webhooks;
        self
    }
}

impl HasKeyRing for AppState {
    fn key_ring(&self) -> &KeyRing {
        &self.keys
    }
}
