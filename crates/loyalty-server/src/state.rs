//! What every handler can reach.
use std::sync::Arc;

use loyalty_engine::Engine;

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
}

impl AppState {
    pub fn new(engine: Engine, keys: KeyRing, limits: LimitSettings) -> Self {
        Self {
            engine,
            keys,
            limits: Arc::new(limits),
            metrics: Metrics::new(),
        }
    }
}

impl HasKeyRing for AppState {
    fn key_ring(&self) -> &KeyRing {
        &self.keys
    }
}
