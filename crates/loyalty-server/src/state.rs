//! What every handler can reach.
use std::sync::Arc;

use loyalty_engine::Engine;
use loyalty_webhooks::{WebhookSettings, Webhooks};

use crate::auth::{HasKeyRing, KeyRing};
use crate::metrics::Metrics;
use crate::settings::LimitSettings;

/// The shared state of the HTTP server: one `Arc`, cloned by every extractor and middleware of
/// every request. Its parts each hold `Arc`s of their own: cloning them one by one cost six
/// atomic increments and decrements per clone, on cache lines both cores write (1.4% of the
/// server's CPU under HTTP purchases, in `perf`).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds; its fields read through it (`state.engine`).
#[derive(Debug)]
pub struct Shared {
    pub engine: Engine,
    pub keys: KeyRing,
    pub limits: LimitSettings,
    pub metrics: Metrics,
    /// Webhook endpoints and their delivery logs (`/v1/webhooks`). The dispatcher that
    /// delivers is started by whoever built the handle (the binary), not by the server.
    pub webhooks: Webhooks,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state with a webhooks handle on the default settings that delivers nothing (its
    /// dispatcher is not started): endpoints can be managed, nothing is sent. The binary
    /// passes its own with [`AppState::with_webhooks`].
    pub fn new(engine: Engine, keys: KeyRing, limits: LimitSettings) -> Self {
        Self(Arc::new(Shared {
            webhooks: Webhooks::new(engine.clone(), WebhookSettings::default()),
            engine,
            keys,
            limits,
            metrics: Metrics::new(),
        }))
    }

    /// The same state with this webhooks handle (built on the same engine).
    pub fn with_webhooks(self, webhooks: Webhooks) -> Self {
        Self(Arc::new(Shared {
            engine: self.engine.clone(),
            keys: self.keys.clone(),
            limits: self.limits.clone(),
            metrics: self.metrics.clone(),
            webhooks,
        }))
    }
}

impl HasKeyRing for AppState {
    fn key_ring(&self) -> &KeyRing {
        &self.keys
    }
}
