//! The registry's store: its events as versioned JSON in the stream `webhooks`, loaded and
//! appended with the expected revision (retried on a conflict).
//!
//! The stored form is this module's own DTOs (type names `Webhook...`, schema version 1), kept
//! apart from [`EndpointEvent`] so the domain enum can change while old registries stay
//! readable. Adding a field: `#[serde(default)]` on the DTO. Changing a meaning: version 2 and
//! an upcast here.
//!
//! Secrets are stored as `whsec_...` text in the events, like any other configuration the log
//! holds: whoever can read the store can read them. Issue 16's crypto-shredding (per-subject
//! keys for personal data in the log) will cover them too; until then the store's own access
//! control is their protection.
//!
//! The stream is small: at most `max_endpoints` live endpoints, each with a handful of events
//! (configuration changes, failing/recovered marks, redeliveries bounded per endpoint), so it is
//! read whole on every command rather than kept in a cache that other servers' appends would
//! make stale.

use std::time::Duration;

use chrono::{DateTime, Utc};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, Position, RecordedEvent, StoreError,
    StreamFrom, Uuid,
};
use serde::{Deserialize, Serialize};

use crate::endpoint::{
    Endpoint, EndpointChanges, EndpointCommand, EndpointCreated, EndpointEvent, EndpointId,
    EventType, Limits, NewEndpoint, RegistryState, StartFrom, decide, evolve,
};
use crate::service::EndpointWithSecret;
use crate::signing::Secret;
use crate::{REGISTRY_STREAM, WebhookError, Webhooks};

/// The version the registry's events are written in.
pub const REGISTRY_SCHEMA_VERSION: u32 = 1;

/// Attempts of one command against concurrent appends (another server's admin, this server's
/// dispatcher marking an endpoint): each reloads and decides again.
const MAX_ATTEMPTS: usize = 10;

mod names {
    pub const CREATED: &str = "WebhookEndpointCreated";
    pub const UPDATED: &str = "WebhookEndpointUpdated";
    pub const SECRET_ROTATED: &str = "WebhookSecretRotated";
    pub const PAUSED: &str = "WebhookEndpointPaused";
    pub const RESUMED: &str = "WebhookEndpointResumed";
    pub const DELETED: &str = "WebhookEndpointDeleted";
    pub const REPLAYED: &str = "WebhookEndpointReplayed";
    pub const REDELIVERY_REQUESTED: &str = "WebhookRedeliveryRequested";
    pub const FAILING: &str = "WebhookEndpointFailing";
    pub const RECOVERED: &str = "WebhookEndpointRecovered";
    pub const REDELIVERY_DONE: &str = "WebhookRedeliveryDone";
}

// --- Stored form (schema version 1) ---

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StartV1 {
    Now,
    Start,
    After { position: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct CreatedV1 {
    id: EndpointId,
    url: String,
    event_types: Vec<EventType>,
    description: Option<String>,
    timeout_ms: u64,
    max_in_flight: u32,
    /// `whsec_...` (see the module's note on secrets).
    secret: String,
    start_after: String,
    start: StartV1,
    requested_timeout_ms: Option<u64>,
    requested_max_in_flight: Option<u32>,
    secret_given: bool,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct UpdatedV1 {
    id: EndpointId,
    url: String,
    event_types: Vec<EventType>,
    description: Option<String>,
    timeout_ms: u64,
    max_in_flight: u32,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SecretRotatedV1 {
    id: EndpointId,
    /// `whsec_...`.
    secret: String,
    previous_until: DateTime<Utc>,
    at: DateTime<Utc>,
}

/// Paused, resumed, deleted, recovered.
#[derive(Debug, Serialize, Deserialize)]
struct IdAtV1 {
    id: EndpointId,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReplayedV1 {
    id: EndpointId,
    after: String,
    generation: u64,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RedeliveryRequestedV1 {
    id: EndpointId,
    request: u64,
    message_id: String,
    position: String,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FailingV1 {
    id: EndpointId,
    reason: String,
    at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RedeliveryDoneV1 {
    id: EndpointId,
    request: u64,
    at: DateTime<Utc>,
}

/// The metadata of a registry event: when it was appended (the server's clock).
#[derive(Debug, Serialize, Deserialize)]
struct MetadataV1 {
    recorded_at: DateTime<Utc>,
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, WebhookError> {
    serde_json::to_vec(value)
        .map_err(|e| WebhookError::Corrupt(format!("encoding a registry event: {e}")))
}

fn id_at(id: &EndpointId, at: DateTime<Utc>) -> IdAtV1 {
    IdAtV1 { id: id.clone(), at }
}

/// The stored type name and document of an event.
fn encode(event: &EndpointEvent) -> Result<(&'static str, Vec<u8>), WebhookError> {
    Ok(match event {
        EndpointEvent::Created(c) => (
            names::CREATED,
            to_json(&CreatedV1 {
                id: c.id.clone(),
                url: c.url.clone(),
                event_types: c.event_types.clone(),
                description: c.description.clone(),
                timeout_ms: c.timeout_ms,
                max_in_flight: c.max_in_flight,
                secret: c.secret.expose(),
                start_after: c.start_after.to_string(),
                start: match c.start {
                    StartFrom::Now => StartV1::Now,
                    StartFrom::Start => StartV1::Start,
                    StartFrom::After(p) => StartV1::After {
                        position: p.to_string(),
                    },
                },
                requested_timeout_ms: c.requested_timeout_ms,
                requested_max_in_flight: c.requested_max_in_flight,
                secret_given: c.secret_given,
                at: c.at,
            })?,
        ),
        EndpointEvent::Updated {
            id,
            url,
            event_types,
            description,
            timeout_ms,
            max_in_flight,
            at,
        } => (
            names::UPDATED,
            to_json(&UpdatedV1 {
                id: id.clone(),
                url: url.clone(),
                event_types: event_types.clone(),
                description: description.clone(),
                timeout_ms: *timeout_ms,
                max_in_flight: *max_in_flight,
                at: *at,
            })?,
        ),
        EndpointEvent::SecretRotated {
            id,
            secret,
            previous_until,
            at,
        } => (
            names::SECRET_ROTATED,
            to_json(&SecretRotatedV1 {
                id: id.clone(),
                secret: secret.expose(),
                previous_until: *previous_until,
                at: *at,
            })?,
        ),
        EndpointEvent::Paused { id, at } => (names::PAUSED, to_json(&id_at(id, *at))?),
        EndpointEvent::Resumed { id, at } => (names::RESUMED, to_json(&id_at(id, *at))?),
        EndpointEvent::Deleted { id, at } => (names::DELETED, to_json(&id_at(id, *at))?),
        EndpointEvent::Recovered { id, at } => (names::RECOVERED, to_json(&id_at(id, *at))?),
        EndpointEvent::Replayed {
            id,
            after,
            generation,
            at,
        } => (
            names::REPLAYED,
            to_json(&ReplayedV1 {
                id: id.clone(),
                after: after.to_string(),
                generation: *generation,
                at: *at,
            })?,
        ),
        EndpointEvent::RedeliveryRequested {
            id,
            request,
            message_id,
            position,
            at,
        } => (
            names::REDELIVERY_REQUESTED,
            to_json(&RedeliveryRequestedV1 {
                id: id.clone(),
                request: *request,
                message_id: message_id.clone(),
                position: position.to_string(),
                at: *at,
            })?,
        ),
        EndpointEvent::Failing { id, reason, at } => (
            names::FAILING,
            to_json(&FailingV1 {
                id: id.clone(),
                reason: reason.clone(),
                at: *at,
            })?,
        ),
        EndpointEvent::RedeliveryDone { id, request, at } => (
            names::REDELIVERY_DONE,
            to_json(&RedeliveryDoneV1 {
                id: id.clone(),
                request: *request,
                at: *at,
            })?,
        ),
    })
}

/// Reads a stored registry event back. A type or version this server does not know is an
/// error, not skipped: the registry is small and every event changes an endpoint, so a state
/// built without one would deliver to the wrong place (or with the wrong secret).
fn decode(event: &RecordedEvent) -> Result<EndpointEvent, WebhookError> {
    let corrupt = |why: String| {
        WebhookError::Corrupt(format!(
            "registry event {} ({}, revision {}): {why}",
            event.event_type, event.id, event.revision
        ))
    };
    if event.schema_version != REGISTRY_SCHEMA_VERSION {
        return Err(corrupt(format!(
            "schema version {} (this server reads {REGISTRY_SCHEMA_VERSION})",
            event.schema_version
        )));
    }
    fn parse<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, String> {
        serde_json::from_slice(data).map_err(|e| e.to_string())
    }
    let position = |text: &str| {
        loyalty_engine::parse_position(text).ok_or_else(|| format!("bad position {text:?}"))
    };
    let secret = |text: &str| Secret::parse(text).map_err(|e| e.to_string());
    let data = &event.data[..];
    let decoded: Result<EndpointEvent, String> = (|| {
        Ok(match event.event_type.as_str() {
            names::CREATED => {
                let c: CreatedV1 = parse(data)?;
                EndpointEvent::Created(Box::new(EndpointCreated {
                    secret: secret(&c.secret)?,
                    start_after: position(&c.start_after)?,
                    start: match c.start {
                        StartV1::Now => StartFrom::Now,
                        StartV1::Start => StartFrom::Start,
                        StartV1::After { position: p } => StartFrom::After(position(&p)?),
                    },
                    id: c.id,
                    url: c.url,
                    event_types: c.event_types,
                    description: c.description,
                    timeout_ms: c.timeout_ms,
                    max_in_flight: c.max_in_flight,
                    requested_timeout_ms: c.requested_timeout_ms,
                    requested_max_in_flight: c.requested_max_in_flight,
                    secret_given: c.secret_given,
                    at: c.at,
                }))
            }
            names::UPDATED => {
                let u: UpdatedV1 = parse(data)?;
                EndpointEvent::Updated {
                    id: u.id,
                    url: u.url,
                    event_types: u.event_types,
                    description: u.description,
                    timeout_ms: u.timeout_ms,
                    max_in_flight: u.max_in_flight,
                    at: u.at,
                }
            }
            names::SECRET_ROTATED => {
                let r: SecretRotatedV1 = parse(data)?;
                EndpointEvent::SecretRotated {
                    secret: secret(&r.secret)?,
                    id: r.id,
                    previous_until: r.previous_until,
                    at: r.at,
                }
            }
            names::PAUSED => {
                let e: IdAtV1 = parse(data)?;
                EndpointEvent::Paused { id: e.id, at: e.at }
            }
            names::RESUMED => {
                let e: IdAtV1 = parse(data)?;
                EndpointEvent::Resumed { id: e.id, at: e.at }
            }
            names::DELETED => {
                let e: IdAtV1 = parse(data)?;
                EndpointEvent::Deleted { id: e.id, at: e.at }
            }
            names::RECOVERED => {
                let e: IdAtV1 = parse(data)?;
                EndpointEvent::Recovered { id: e.id, at: e.at }
            }
            names::REPLAYED => {
                let r: ReplayedV1 = parse(data)?;
                EndpointEvent::Replayed {
                    after: position(&r.after)?,
                    id: r.id,
                    generation: r.generation,
                    at: r.at,
                }
            }
            names::REDELIVERY_REQUESTED => {
                let r: RedeliveryRequestedV1 = parse(data)?;
                EndpointEvent::RedeliveryRequested {
                    position: position(&r.position)?,
                    id: r.id,
                    request: r.request,
                    message_id: r.message_id,
                    at: r.at,
                }
            }
            names::FAILING => {
                let f: FailingV1 = parse(data)?;
                EndpointEvent::Failing {
                    id: f.id,
                    reason: f.reason,
                    at: f.at,
                }
            }
            names::REDELIVERY_DONE => {
                let d: RedeliveryDoneV1 = parse(data)?;
                EndpointEvent::RedeliveryDone {
                    id: d.id,
                    request: d.request,
                    at: d.at,
                }
            }
            other => return Err(format!("unknown event type {other:?}")),
        })
    })();
    decoded.map_err(corrupt)
}

fn event_data(event: &EndpointEvent, now: DateTime<Utc>) -> Result<EventData, WebhookError> {
    let (event_type, data) = encode(event)?;
    Ok(EventData {
        id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        schema_version: REGISTRY_SCHEMA_VERSION,
        data: Bytes::from(data),
        metadata: Bytes::from(to_json(&MetadataV1 { recorded_at: now })?),
    })
}

// --- Loading and appending ---

/// The whole registry and the stream's last revision (`None`: no endpoint was ever created).
pub(crate) async fn load(
    store: &dyn EventStore,
) -> Result<(RegistryState, Option<u64>), WebhookError> {
    let page = store.limits().max_page_size.max(1);
    let mut state = RegistryState::default();
    let mut last: Option<u64> = None;
    let mut from = StreamFrom::Start;
    loop {
        let events = store
            .read_stream(REGISTRY_STREAM, from, Direction::Forwards, page)
            .await?;
        for recorded in &events {
            evolve(&mut state, &decode(recorded)?);
            last = Some(recorded.revision);
        }
        match (events.len() < page, last) {
            (false, Some(revision)) => from = StreamFrom::Revision(revision.saturating_add(1)),
            _ => break,
        }
    }
    // The registry is never truncated, but if it were, its revision still comes from the store.
    if last.is_none() {
        last = match store.stream_revision(REGISTRY_STREAM).await? {
            loyalty_store::CurrentRevision::NoStream => None,
            loyalty_store::CurrentRevision::Current(revision) => Some(revision),
        };
    }
    Ok((state, last))
}

/// Decides `command` against the stored registry and appends what it decided; returns the
/// registry after it. A conflict with a concurrent append reloads and decides again.
pub(crate) async fn execute(
    w: &Webhooks,
    command: &EndpointCommand,
) -> Result<RegistryState, WebhookError> {
    Ok(execute_telling(w, command).await?.0)
}

/// [`execute`], and whether it appended anything (false: the command was a replay or changed
/// nothing).
async fn execute_telling(
    w: &Webhooks,
    command: &EndpointCommand,
) -> Result<(RegistryState, bool), WebhookError> {
    let store = w.inner.engine.store();
    let limits = Limits::from_settings(&w.inner.settings);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (mut state, revision) = load(store.as_ref()).await?;
        let now = w.inner.engine.clock().now();
        let events = decide(&state, command, now, &limits)?;
        if events.is_empty() {
            return Ok((state, false));
        }
        let data = events
            .iter()
            .map(|e| event_data(e, now))
            .collect::<Result<Vec<_>, _>>()?;
        let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        match store.append(REGISTRY_STREAM, expected, data).await {
            Ok(_) => {
                for event in &events {
                    evolve(&mut state, event);
                }
                // Wake this server's dispatcher now (`notify_one` keeps a permit if it is not
                // waiting at this moment, and wakes it once if it is); other servers see the
                // change by polling.
                w.inner.registry_changed.notify_one();
                return Ok((state, true));
            }
            Err(StoreError::WrongExpectedRevision { .. }) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(
                    attempt,
                    "webhook registry changed concurrently, deciding again"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn endpoint_in(state: &RegistryState, id: &EndpointId) -> Result<Endpoint, WebhookError> {
    state
        .endpoints
        .get(id)
        .cloned()
        .ok_or_else(|| WebhookError::EndpointNotFound(id.to_string()))
}

fn with_secret(endpoint: Endpoint) -> EndpointWithSecret {
    let secret = endpoint.secret.clone();
    EndpointWithSecret {
        endpoint,
        secret,
        replayed: false,
    }
}

async fn head(w: &Webhooks) -> Result<Position, WebhookError> {
    Ok(w.inner.engine.store().head_position().await?)
}

pub(crate) async fn create(
    w: &Webhooks,
    new: NewEndpoint,
) -> Result<EndpointWithSecret, WebhookError> {
    let id = new.id.clone();
    let command = EndpointCommand::Create {
        new,
        generated_secret: Secret::generate(),
        head: head(w).await?,
    };
    let (state, appended) = execute_telling(w, &command).await?;
    // A retry answers the endpoint as it is now, with the secret it signs with now.
    let mut answer = endpoint_in(&state, &id).map(with_secret)?;
    answer.replayed = !appended;
    Ok(answer)
}

pub(crate) async fn update(
    w: &Webhooks,
    id: &EndpointId,
    changes: EndpointChanges,
) -> Result<Endpoint, WebhookError> {
    let command = EndpointCommand::Update {
        id: id.clone(),
        changes,
    };
    endpoint_in(&execute(w, &command).await?, id)
}

pub(crate) async fn rotate_secret(
    w: &Webhooks,
    id: &EndpointId,
    secret: Option<Secret>,
    overlap: Option<Duration>,
) -> Result<EndpointWithSecret, WebhookError> {
    let command = EndpointCommand::RotateSecret {
        id: id.clone(),
        secret: secret.unwrap_or_else(Secret::generate),
        overlap: overlap
            .unwrap_or_else(|| Duration::from_secs(w.inner.settings.rotation_overlap_secs)),
    };
    endpoint_in(&execute(w, &command).await?, id).map(with_secret)
}

pub(crate) async fn pause(w: &Webhooks, id: &EndpointId) -> Result<Endpoint, WebhookError> {
    let command = EndpointCommand::Pause { id: id.clone() };
    endpoint_in(&execute(w, &command).await?, id)
}

pub(crate) async fn resume(w: &Webhooks, id: &EndpointId) -> Result<Endpoint, WebhookError> {
    let command = EndpointCommand::Resume { id: id.clone() };
    endpoint_in(&execute(w, &command).await?, id)
}

pub(crate) async fn delete(w: &Webhooks, id: &EndpointId) -> Result<(), WebhookError> {
    execute(w, &EndpointCommand::Delete { id: id.clone() }).await?;
    Ok(())
}

pub(crate) async fn replay(
    w: &Webhooks,
    id: &EndpointId,
    after: Position,
) -> Result<Endpoint, WebhookError> {
    let command = EndpointCommand::Replay {
        id: id.clone(),
        after,
        head: head(w).await?,
    };
    endpoint_in(&execute(w, &command).await?, id)
}

pub(crate) async fn redeliver(
    w: &Webhooks,
    id: &EndpointId,
    message_id: &str,
) -> Result<(), WebhookError> {
    // The endpoint first: an unknown endpoint is that, not an unknown message.
    get(w, id).await?;
    let position = crate::log::find_message(w, id, message_id)
        .await?
        .ok_or_else(|| WebhookError::MessageNotFound(message_id.chars().take(64).collect()))?;
    let command = EndpointCommand::RequestRedelivery {
        id: id.clone(),
        message_id: message_id.to_owned(),
        position,
    };
    execute(w, &command).await?;
    Ok(())
}

pub(crate) async fn list(w: &Webhooks) -> Result<Vec<Endpoint>, WebhookError> {
    let (state, _) = load(w.inner.engine.store().as_ref()).await?;
    Ok(state.endpoints.into_values().collect())
}

pub(crate) async fn get(w: &Webhooks, id: &EndpointId) -> Result<Endpoint, WebhookError> {
    let (state, _) = load(w.inner.engine.store().as_ref()).await?;
    endpoint_in(&state, id)
}

// --- The dispatcher's marks (idempotent: marking again appends nothing) ---

pub(crate) async fn mark_failing(
    w: &Webhooks,
    id: &EndpointId,
    reason: String,
) -> Result<(), WebhookError> {
    execute(
        w,
        &EndpointCommand::MarkFailing {
            id: id.clone(),
            reason,
        },
    )
    .await?;
    Ok(())
}

pub(crate) async fn mark_recovered(w: &Webhooks, id: &EndpointId) -> Result<(), WebhookError> {
    execute(w, &EndpointCommand::MarkRecovered { id: id.clone() }).await?;
    Ok(())
}

pub(crate) async fn redelivery_done(
    w: &Webhooks,
    id: &EndpointId,
    request: u64,
) -> Result<(), WebhookError> {
    execute(
        w,
        &EndpointCommand::RedeliveryDone {
            id: id.clone(),
            request,
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn recorded(revision: u64, event: &EndpointEvent) -> RecordedEvent {
        let data = event_data(event, at("2026-01-01T00:00:00Z")).unwrap();
        RecordedEvent {
            stream: REGISTRY_STREAM.into(),
            revision,
            position: Position::new(revision + 1, revision + 1),
            id: data.id,
            event_type: data.event_type,
            schema_version: data.schema_version,
            data: data.data,
            metadata: data.metadata,
        }
    }

    #[test]
    fn every_event_reads_back_as_it_was_written() {
        let id = EndpointId::parse("crm").unwrap();
        let t = at("2026-01-01T10:00:00Z");
        let events = vec![
            EndpointEvent::Created(Box::new(EndpointCreated {
                id: id.clone(),
                url: "https://crm.example.com/hooks".into(),
                event_types: vec![EventType::MemberEnrolled, EventType::TierChanged],
                description: Some("CRM".into()),
                timeout_ms: 5_000,
                max_in_flight: 8,
                secret: Secret::generate(),
                start_after: Position::new(12, 11),
                requested_timeout_ms: None,
                requested_max_in_flight: Some(8),
                start: StartFrom::After(Position::new(12, 11)),
                secret_given: true,
                at: t,
            })),
            EndpointEvent::Updated {
                id: id.clone(),
                url: "https://crm.example.com/v2".into(),
                event_types: vec![],
                description: None,
                timeout_ms: 1_000,
                max_in_flight: 2,
                at: t,
            },
            EndpointEvent::SecretRotated {
                id: id.clone(),
                secret: Secret::generate(),
                previous_until: at("2026-01-02T10:00:00Z"),
                at: t,
            },
            EndpointEvent::Paused {
                id: id.clone(),
                at: t,
            },
            EndpointEvent::Resumed {
                id: id.clone(),
                at: t,
            },
            EndpointEvent::Replayed {
                id: id.clone(),
                after: Position::START,
                generation: 3,
                at: t,
            },
            EndpointEvent::RedeliveryRequested {
                id: id.clone(),
                request: 7,
                message_id: "msg_0123".into(),
                position: Position::new(5, 5),
                at: t,
            },
            EndpointEvent::Failing {
                id: id.clone(),
                reason: "HTTP 500".into(),
                at: t,
            },
            EndpointEvent::Recovered {
                id: id.clone(),
                at: t,
            },
            EndpointEvent::RedeliveryDone {
                id: id.clone(),
                request: 7,
                at: t,
            },
            EndpointEvent::Deleted { id, at: t },
        ];
        for (revision, event) in events.iter().enumerate() {
            let stored = recorded(revision as u64, event);
            assert_eq!(stored.schema_version, REGISTRY_SCHEMA_VERSION);
            assert!(stored.event_type.starts_with("Webhook"));
            assert_eq!(&decode(&stored).unwrap(), event);
        }
    }

    #[test]
    fn a_secret_is_stored_in_its_whsec_text_form() {
        let secret = Secret::generate();
        let event = EndpointEvent::SecretRotated {
            id: EndpointId::parse("crm").unwrap(),
            secret: secret.clone(),
            previous_until: at("2026-01-02T10:00:00Z"),
            at: at("2026-01-01T10:00:00Z"),
        };
        let stored = recorded(0, &event);
        let json: serde_json::Value = serde_json::from_slice(&stored.data).unwrap();
        assert_eq!(json["secret"], serde_json::json!(secret.expose()));
    }

    #[test]
    fn an_unknown_type_or_version_is_refused_rather_than_skipped() {
        let event = EndpointEvent::Paused {
            id: EndpointId::parse("crm").unwrap(),
            at: at("2026-01-01T10:00:00Z"),
        };
        let mut stored = recorded(0, &event);
        stored.schema_version = 2;
        assert!(matches!(decode(&stored), Err(WebhookError::Corrupt(_))));
        let mut stored = recorded(0, &event);
        stored.event_type = "WebhookEndpointRenamed".into();
        assert!(matches!(decode(&stored), Err(WebhookError::Corrupt(_))));
    }
}
