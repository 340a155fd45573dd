//! The handle the server and the CLI hold: manage endpoints (appends to the registry), read
//! delivery logs, and start and stop the dispatcher.

use std::sync::Arc;
use std::time::Duration;

use loyalty_engine::Engine;
use loyalty_store::Position;

use crate::endpoint::{Endpoint, EndpointChanges, EndpointId, NewEndpoint};
use crate::log::{DeliveryPage, DeliveryQuery, DeliveryStatus};
use crate::signing::Secret;
use crate::{WebhookError, WebhookSettings};

/// Endpoints, delivery logs and the dispatcher of one server. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) settings: WebhookSettings,
    /// Woken when this server changed the registry, so its dispatcher (if it holds the lease)
    /// reacts at once; other servers' changes are seen by polling the registry's revision.
    pub(crate) registry_changed: Arc<tokio::sync::Notify>,
    pub(crate) dispatcher: parking_lot::Mutex<Option<crate::dispatcher::Running>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

/// An endpoint with the secret it signs with: the answer to its creation and to a rotation,
/// the only answers that show a secret.
#[derive(Debug, Clone)]
pub struct EndpointWithSecret {
    pub endpoint: Endpoint,
    pub secret: Secret,
    /// The request changed nothing: a creation's retry, answered with the endpoint as it is.
    pub replayed: bool,
}

impl Webhooks {
    /// The handle, without delivering (`start_dispatcher` delivers).
    pub fn new(engine: Engine, settings: WebhookSettings) -> Webhooks {
        Webhooks {
            inner: Arc::new(Inner {
                engine,
                settings,
                registry_changed: Arc::new(tokio::sync::Notify::new()),
                dispatcher: parking_lot::Mutex::new(None),
            }),
        }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.inner.settings
    }

    /// Starts delivering under the `webhooks` lease (when `settings.enabled`).
    pub fn start_dispatcher(&self) {
        crate::dispatcher::start(self);
    }

    /// Stops the dispatcher: in-flight attempts are abandoned (they will be sent again, with the
    /// same `webhook-id`), the delivery log and checkpoints are written first.
    pub async fn shutdown(&self) {
        crate::dispatcher::stop(self).await;
    }

    // --- The registry (decided by `endpoint`, stored by `registry`) ---

    /// Creates an endpoint; the same request again answers the same endpoint (its id is the
    /// idempotency key), another request with the same id is `EndpointExists`.
    pub async fn create(&self, new: NewEndpoint) -> Result<EndpointWithSecret, WebhookError> {
        crate::registry::create(self, new).await
    }

    pub async fn update(
        &self,
        id: &EndpointId,
        changes: EndpointChanges,
    ) -> Result<Endpoint, WebhookError> {
        crate::registry::update(self, id, changes).await
    }

    /// A new secret signs from now on; the previous one signs too for `overlap`
    /// (the settings' `rotation_overlap_secs` when `None`).
    pub async fn rotate_secret(
        &self,
        id: &EndpointId,
        secret: Option<Secret>,
        overlap: Option<Duration>,
    ) -> Result<EndpointWithSecret, WebhookError> {
        crate::registry::rotate_secret(self, id, secret, overlap).await
    }

    pub async fn pause(&self, id: &EndpointId) -> Result<Endpoint, WebhookError> {
        crate::registry::pause(self, id).await
    }

    /// Enables a paused or failing endpoint: its backlog drains from its checkpoint.
    pub async fn resume(&self, id: &EndpointId) -> Result<Endpoint, WebhookError> {
        crate::registry::resume(self, id).await
    }

    pub async fn delete(&self, id: &EndpointId) -> Result<(), WebhookError> {
        crate::registry::delete(self, id).await
    }

    /// Delivers again every message after `after` (in order, with their original ids).
    pub async fn replay(&self, id: &EndpointId, after: Position) -> Result<Endpoint, WebhookError> {
        crate::registry::replay(self, id, after).await
    }

    /// Sends one message of the delivery log again (outside the endpoint's order).
    pub async fn redeliver(&self, id: &EndpointId, message_id: &str) -> Result<(), WebhookError> {
        crate::registry::redeliver(self, id, message_id).await
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, WebhookError> {
        crate::registry::list(self).await
    }

    pub async fn endpoint(&self, id: &EndpointId) -> Result<Endpoint, WebhookError> {
        crate::registry::get(self, id).await
    }

    // --- Delivery (`log`, `dispatcher`) ---

    /// How far the endpoint's deliveries got (from its delivery-log stream).
    pub async fn status(&self, id: &EndpointId) -> Result<DeliveryStatus, WebhookError> {
        crate::log::status(self, id).await
    }

    /// The endpoint and how far its deliveries got, with one read of the registry.
    pub async fn endpoint_with_status(
        &self,
        id: &EndpointId,
    ) -> Result<(Endpoint, DeliveryStatus), WebhookError> {
        let endpoint = self.endpoint(id).await?;
        let status = crate::log::read_status(self, id).await?;
        Ok((endpoint, status))
    }

    /// The endpoint's delivery log, newest first.
    pub async fn deliveries(
        &self,
        id: &EndpointId,
        query: DeliveryQuery,
    ) -> Result<DeliveryPage, WebhookError> {
        crate::log::page(self, id, query).await
    }
}
