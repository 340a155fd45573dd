//! Webhooks: tell the retailer's systems what happened, signed, at least once, from the log.
//!
//! The event log is the outbox. Nothing is written on the command path: a dispatcher, running on
//! the one server that holds the `webhooks` lease, reads `$all` from each endpoint's checkpoint,
//! turns member events into integration events (a public, versioned schema kept apart from the
//! stored events, `message`), signs them by the Standard Webhooks specification (`signing`) and
//! delivers them (`dispatcher`, `delivery`). Endpoints are an aggregate of their own, stored as
//! events in the stream `webhooks` (`endpoint`, `registry`), so they survive restarts and
//! replicate with the store. Each endpoint's delivery log and checkpoint live in the stream
//! `webhook-log-<endpoint>` (`log`).
//!
//! **Architecture Invariant:** a slow or failing endpoint never slows the command path or another
//! endpoint: delivery only reads the log, each endpoint has its own task, timeout and bound on
//! messages in flight.
//!
//! **Architecture Invariant:** at least once, in order per member: an endpoint's checkpoint never
//! passes a message that was not delivered, and a member's next message is not sent before the
//! previous one was answered with a 2xx.
#![forbid(unsafe_code)]

pub mod delivery;
pub mod dispatcher;
pub mod endpoint;
mod error;
pub mod log;
pub mod message;
pub mod registry;
mod service;
mod settings;
pub mod signing;

pub use error::WebhookError;
pub use service::{EndpointWithSecret, Webhooks};
pub use settings::WebhookSettings;

/// The registry stream (every endpoint's events).
pub const REGISTRY_STREAM: &str = "webhooks";
/// The prefix of an endpoint's delivery-log stream: `webhook-log-<endpoint>`.
pub const LOG_PREFIX: &str = "webhook-log-";
/// The lease under which one server delivers.
pub const LEASE_NAME: &str = "webhooks";
