//! The endpoint registry as an aggregate: pure and synchronous, like the member's. `decide`
//! turns a command into events against the registry's state, `evolve` applies them. Time comes
//! in as an argument (the server's clock). The stored form of the events lives in `registry`
//! (versioned JSON, apart from this enum).
//!
//! Rules the registry keeps (see `decide`): an endpoint's id is the idempotency key of its
//! creation, and stays taken after a deletion; URLs are absolute http(s) without credentials and,
//! unless the settings allow it, not literal private addresses; every number an endpoint names is
//! bounded by the settings; commands that change nothing record nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use loyalty_store::Position;
use serde::{Deserialize, Serialize};

use crate::WebhookError;
use crate::signing::Secret;

/// The integration event types, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "member.enrolled")]
    MemberEnrolled,
    #[serde(rename = "purchase.recorded")]
    PurchaseRecorded,
    #[serde(rename = "refund.recorded")]
    RefundRecorded,
    #[serde(rename = "reward.redeemed")]
    RewardRedeemed,
    #[serde(rename = "redemption.cancelled")]
    RedemptionCancelled,
    #[serde(rename = "tier.changed")]
    TierChanged,
    #[serde(rename = "points.expired")]
    PointsExpired,
    #[serde(rename = "points.expiring")]
    PointsExpiring,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::MemberEnrolled,
        EventType::PurchaseRecorded,
        EventType::RefundRecorded,
        EventType::RewardRedeemed,
        EventType::RedemptionCancelled,
        EventType::TierChanged,
        EventType::PointsExpired,
        EventType::PointsExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MemberEnrolled => "member.enrolled",
            EventType::PurchaseRecorded => "purchase.recorded",
            EventType::RefundRecorded => "refund.recorded",
            EventType::RewardRedeemed => "reward.redeemed",
            EventType::RedemptionCancelled => "redemption.cancelled",
            EventType::TierChanged => "tier.changed",
            EventType::PointsExpired => "points.expired",
            EventType::PointsExpiring => "points.expiring",
        }
    }
}

/// An endpoint's id: chosen by the caller (the idempotency key of its creation), 1 to 64 of
/// `A-Z a-z 0-9 . _ : -`, like every client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointId(String);

impl EndpointId {
    pub fn parse(value: impl Into<String>) -> Result<EndpointId, WebhookError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(EndpointId(value))
        } else {
            Err(WebhookError::InvalidEndpointId(
                value.chars().take(65).collect(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EndpointId {
    type Error = WebhookError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EndpointId::parse(value)
    }
}

impl From<EndpointId> for String {
    fn from(id: EndpointId) -> String {
        id.0
    }
}

impl std::fmt::Display for EndpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a new endpoint's deliveries start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// With the events appended after its creation (the default).
    Now,
    /// With the whole log (a warehouse that wants everything).
    Start,
    /// After this position of `$all`.
    After(Position),
}

/// Whether an endpoint is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Enabled,
    Paused,
    /// A message was not delivered within the retry time: the backlog is kept and the oldest
    /// message retried now and then until one succeeds.
    Failing,
}

/// What the admin asks for when creating an endpoint (already parsed, not yet checked against
/// the settings: `decide` does that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub id: EndpointId,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    /// `None`: the server generates one (returned once, in the creation's answer).
    pub secret: Option<Secret>,
    pub timeout_ms: Option<u64>,
    pub max_in_flight: Option<u32>,
    pub start: StartFrom,
}

/// Changes to an endpoint (what is `None` stays).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub description: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_in_flight: Option<u32>,
}

/// An endpoint as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub timeout_ms: u64,
    pub max_in_flight: u32,
    pub status: EndpointStatus,
    /// Why and since when it is failing.
    pub failing: Option<(DateTime<Utc>, String)>,
    pub secret: Secret,
    /// The secret before the last rotation, and until when it still signs.
    pub previous_secret: Option<(Secret, DateTime<Utc>)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where delivery started (creation), or restarts (the last replay): the dispatcher
    /// begins after this position when `generation` is newer than its log's.
    pub start_after: Position,
    /// Bumped by every replay: a dispatcher that meets a newer generation than the one its
    /// checkpoint was stored under starts again from `start_after`.
    pub generation: u64,
    /// Redeliveries asked for and not yet done: (request number, message id, position).
    pub redeliveries: Vec<(u64, String, Position)>,
}

impl Endpoint {
    /// Whether the endpoint wants this type.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&event_type)
    }

    /// The secrets that sign a message sent at `now`: the current one, and the previous one
    /// while its overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&Secret> {
        let mut secrets = vec![&self.secret];
        if let Some((previous, until)) = &self.previous_secret
            && now < *until
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// Every endpoint (deleted ones are gone, but their ids stay taken: a deleted id is never
/// reused, so a late retry of its creation cannot resurrect it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryState {
    pub endpoints: BTreeMap<EndpointId, Endpoint>,
    pub deleted: BTreeSet<EndpointId>,
    /// Redelivery requests numbered across the registry.
    pub next_redelivery: u64,
    /// Each live endpoint's creation request, as the idempotency check compares a retry with it
    /// (the endpoint itself may have been updated since).
    pub creations: BTreeMap<EndpointId, CreationRequest>,
}

/// A creation request as the idempotency check compares a retry with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationRequest {
    /// Normalised (as stored).
    pub url: String,
    /// Deduplicated and sorted.
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    /// As asked (`None`: the settings' default then).
    pub timeout_ms: Option<u64>,
    pub max_in_flight: Option<u32>,
    pub start: StartFrom,
    /// The caller's secret, when it gave one (else the server generated it, and a retry
    /// without one is the same request). The one of the creation: a rotation since does not
    /// make a retry of the creation a different request.
    pub secret: Option<Secret>,
}

/// Longest endpoint URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Most redeliveries waiting per endpoint: a redelivery is a manual, one-message act; more
/// than this is a replay's job.
pub const MAX_PENDING_REDELIVERIES: usize = 16;
/// Longest failure reason kept, in characters (it comes from the endpoint's answers).
pub const MAX_REASON_CHARS: usize = 512;
/// Longest message id a redelivery names.
pub const MAX_MESSAGE_ID_LEN: usize = 64;
/// Longest overlap of a rotation: the old secret must stop signing within a month.
pub const MAX_ROTATION_OVERLAP: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// What `decide` checks endpoints against: the registry's part of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_endpoints: usize,
    pub allow_private_targets: bool,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub default_max_in_flight: u32,
    pub max_in_flight: u32,
}

impl Limits {
    pub fn from_settings(settings: &crate::WebhookSettings) -> Limits {
        Limits {
            max_endpoints: settings.max_endpoints,
            allow_private_targets: settings.allow_private_targets,
            default_timeout_ms: settings.default_timeout_ms,
            max_timeout_ms: settings.max_timeout_ms,
            default_max_in_flight: settings.default_max_in_flight,
            max_in_flight: settings.max_in_flight,
        }
    }
}

/// What is asked of the registry. What `decide` cannot make itself (it is pure) comes in
/// resolved: a generated secret, the log's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointCommand {
    Create {
        new: NewEndpoint,
        /// Used when `new.secret` is `None`.
        generated_secret: Secret,
        /// The log's head now: where `StartFrom::Now` starts, and the bound of `After`.
        head: Position,
    },
    Update {
        id: EndpointId,
        changes: EndpointChanges,
    },
    RotateSecret {
        id: EndpointId,
        secret: Secret,
        overlap: std::time::Duration,
    },
    Pause {
        id: EndpointId,
    },
    Resume {
        id: EndpointId,
    },
    Delete {
        id: EndpointId,
    },
    Replay {
        id: EndpointId,
        after: Position,
        head: Position,
    },
    RequestRedelivery {
        id: EndpointId,
        message_id: String,
        position: Position,
    },
    /// The dispatcher gave up on a message: the endpoint is failing.
    MarkFailing {
        id: EndpointId,
        reason: String,
    },
    /// A message to a failing endpoint got through.
    MarkRecovered {
        id: EndpointId,
    },
    RedeliveryDone {
        id: EndpointId,
        request: u64,
    },
}

/// An endpoint came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointCreated {
    pub id: EndpointId,
    pub url: String,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
    pub timeout_ms: u64,
    pub max_in_flight: u32,
    pub secret: Secret,
    pub start_after: Position,
    /// The request's own options, for the idempotency check of a retry.
    pub requested_timeout_ms: Option<u64>,
    pub requested_max_in_flight: Option<u32>,
    pub start: StartFrom,
    pub secret_given: bool,
    pub at: DateTime<Utc>,
}

/// What happened to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    Created(Box<EndpointCreated>),
    /// The whole new configuration.
    Updated {
        id: EndpointId,
        url: String,
        event_types: Vec<EventType>,
        description: Option<String>,
        timeout_ms: u64,
        max_in_flight: u32,
        at: DateTime<Utc>,
    },
    SecretRotated {
        id: EndpointId,
        secret: Secret,
        /// Until when the secret it replaces still signs.
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    Paused {
        id: EndpointId,
        at: DateTime<Utc>,
    },
    Resumed {
        id: EndpointId,
        at: DateTime<Utc>,
    },
    Deleted {
        id: EndpointId,
        at: DateTime<Utc>,
    },
    Replayed {
        id: EndpointId,
        after: Position,
        generation: u64,
        at: DateTime<Utc>,
    },
    RedeliveryRequested {
        id: EndpointId,
        request: u64,
        message_id: String,
        position: Position,
        at: DateTime<Utc>,
    },
    Failing {
        id: EndpointId,
        reason: String,
        at: DateTime<Utc>,
    },
    Recovered {
        id: EndpointId,
        at: DateTime<Utc>,
    },
    RedeliveryDone {
        id: EndpointId,
        request: u64,
        at: DateTime<Utc>,
    },
}

impl EndpointEvent {
    pub fn endpoint_id(&self) -> &EndpointId {
        match self {
            EndpointEvent::Created(c) => &c.id,
            EndpointEvent::Updated { id, .. }
            | EndpointEvent::SecretRotated { id, .. }
            | EndpointEvent::Paused { id, .. }
            | EndpointEvent::Resumed { id, .. }
            | EndpointEvent::Deleted { id, .. }
            | EndpointEvent::Replayed { id, .. }
            | EndpointEvent::RedeliveryRequested { id, .. }
            | EndpointEvent::Failing { id, .. }
            | EndpointEvent::Recovered { id, .. }
            | EndpointEvent::RedeliveryDone { id, .. } => id,
        }
    }
}

/// Whether a delivery may not go to this address: loopback, private, link-local, unspecified
/// or otherwise not public (v4, v6, v4-mapped and NAT64 v6). One definition for both checks:
/// `decide` refuses such literal hosts, the dispatcher the addresses a name resolves to
/// (`delivery::is_public`).
pub fn is_forbidden_address(ip: IpAddr) -> bool {
    !crate::delivery::is_public(ip)
}

/// Whether a host name is the local host by definition (RFC 6761: `localhost` and
/// `*.localhost` never leave the machine).
fn is_local_name(domain: &str) -> bool {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Checks an endpoint URL and returns its normalised form (what is stored and compared):
/// absolute `http` or `https`, with a host, without user or password (credentials in a URL end
/// up in logs; receivers authenticate by the signature), at most [`MAX_URL_LEN`] bytes, and,
/// unless `allow_private`, not a literal local address. The error never repeats the URL: its
/// query may hold a receiver's token.
pub fn check_url(raw: &str, allow_private: bool) -> Result<String, WebhookError> {
    let invalid = |why: &str| WebhookError::InvalidUrl(why.to_owned());
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("a user name or password in the url is not allowed"));
    }
    let host = url.host().ok_or_else(|| invalid("no host"))?;
    if !allow_private {
        let local = match &host {
            url::Host::Domain(domain) => is_local_name(domain),
            url::Host::Ipv4(ip) => is_forbidden_address(IpAddr::V4(*ip)),
            url::Host::Ipv6(ip) => is_forbidden_address(IpAddr::V6(*ip)),
        };
        if local {
            return Err(WebhookError::TargetNotAllowed(host.to_string()));
        }
    }
    let normalised = String::from(url);
    if normalised.len() > MAX_URL_LEN {
        return Err(invalid(&format!("longer than {MAX_URL_LEN} bytes")));
    }
    Ok(normalised)
}

fn normalise_types(types: &[EventType]) -> Vec<EventType> {
    let set: BTreeSet<EventType> = types.iter().copied().collect();
    set.into_iter().collect()
}

/// An empty description is none.
fn check_description(description: Option<&str>) -> Result<Option<String>, WebhookError> {
    match description.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
            Err(WebhookError::InvalidSetting(format!(
                "description is at most {MAX_DESCRIPTION_CHARS} characters"
            )))
        }
        Some(text) if text.chars().any(char::is_control) => Err(WebhookError::InvalidSetting(
            "description has control characters".into(),
        )),
        Some(text) => Ok(Some(text.to_owned())),
    }
}

fn check_timeout(timeout_ms: u64, limits: &Limits) -> Result<u64, WebhookError> {
    if (1..=limits.max_timeout_ms).contains(&timeout_ms) {
        Ok(timeout_ms)
    } else {
        Err(WebhookError::InvalidSetting(format!(
            "timeout_ms must be 1..={}",
            limits.max_timeout_ms
        )))
    }
}

fn check_in_flight(max_in_flight: u32, limits: &Limits) -> Result<u32, WebhookError> {
    if (1..=limits.max_in_flight).contains(&max_in_flight) {
        Ok(max_in_flight)
    } else {
        Err(WebhookError::InvalidSetting(format!(
            "max_in_flight must be 1..={}",
            limits.max_in_flight
        )))
    }
}

fn check_position(requested: Position, head: Position) -> Result<Position, WebhookError> {
    if requested > head {
        Err(WebhookError::PositionAheadOfLog {
            requested: requested.to_string(),
            head: head.to_string(),
        })
    } else {
        Ok(requested)
    }
}

fn existing<'a>(state: &'a RegistryState, id: &EndpointId) -> Result<&'a Endpoint, WebhookError> {
    state
        .endpoints
        .get(id)
        .ok_or_else(|| WebhookError::EndpointNotFound(id.to_string()))
}

/// The dispatcher's commands find an endpoint deleted under them now and then: nothing to do.
fn existing_or_deleted<'a>(
    state: &'a RegistryState,
    id: &EndpointId,
) -> Result<Option<&'a Endpoint>, WebhookError> {
    match state.endpoints.get(id) {
        Some(endpoint) => Ok(Some(endpoint)),
        None if state.deleted.contains(id) => Ok(None),
        None => Err(WebhookError::EndpointNotFound(id.to_string())),
    }
}

/// The events a command makes against the registry (none when it changes nothing: a retry, a
/// pause of a paused endpoint...), or why it is refused.
pub fn decide(
    state: &RegistryState,
    command: &EndpointCommand,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Vec<EndpointEvent>, WebhookError> {
    match command {
        EndpointCommand::Create {
            new,
            generated_secret,
            head,
        } => decide_create(state, new, generated_secret, *head, now, limits),
        EndpointCommand::Update { id, changes } => {
            let endpoint = existing(state, id)?;
            let url = match &changes.url {
                Some(url) => check_url(url, limits.allow_private_targets)?,
                None => endpoint.url.clone(),
            };
            let event_types = match &changes.event_types {
                Some(types) => normalise_types(types),
                None => endpoint.event_types.clone(),
            };
            let description = match &changes.description {
                Some(text) => check_description(Some(text))?,
                None => endpoint.description.clone(),
            };
            let timeout_ms = match changes.timeout_ms {
                Some(ms) => check_timeout(ms, limits)?,
                None => endpoint.timeout_ms,
            };
            let max_in_flight = match changes.max_in_flight {
                Some(n) => check_in_flight(n, limits)?,
                None => endpoint.max_in_flight,
            };
            let unchanged = url == endpoint.url
                && event_types == endpoint.event_types
                && description == endpoint.description
                && timeout_ms == endpoint.timeout_ms
                && max_in_flight == endpoint.max_in_flight;
            if unchanged {
                return Ok(Vec::new());
            }
            Ok(vec![EndpointEvent::Updated {
                id: id.clone(),
                url,
                event_types,
                description,
                timeout_ms,
                max_in_flight,
                at: now,
            }])
        }
        EndpointCommand::RotateSecret {
            id,
            secret,
            overlap,
        } => {
            let endpoint = existing(state, id)?;
            if *overlap > MAX_ROTATION_OVERLAP {
                return Err(WebhookError::InvalidSetting(format!(
                    "a rotation's overlap is at most {} seconds",
                    MAX_ROTATION_OVERLAP.as_secs()
                )));
            }
            // Rotating to the secret already in use is the retry of that rotation.
            if endpoint.secret == *secret {
                return Ok(Vec::new());
            }
            let overlap = chrono::Duration::from_std(*overlap)
                .map_err(|_| WebhookError::InvalidSetting("overlap out of range".into()))?;
            Ok(vec![EndpointEvent::SecretRotated {
                id: id.clone(),
                secret: secret.clone(),
                previous_until: now + overlap,
                at: now,
            }])
        }
        EndpointCommand::Pause { id } => {
            let endpoint = existing(state, id)?;
            Ok(match endpoint.status {
                EndpointStatus::Paused => Vec::new(),
                EndpointStatus::Enabled | EndpointStatus::Failing => vec![EndpointEvent::Paused {
                    id: id.clone(),
                    at: now,
                }],
            })
        }
        EndpointCommand::Resume { id } => {
            let endpoint = existing(state, id)?;
            Ok(match endpoint.status {
                EndpointStatus::Enabled => Vec::new(),
                EndpointStatus::Paused | EndpointStatus::Failing => {
                    vec![EndpointEvent::Resumed {
                        id: id.clone(),
                        at: now,
                    }]
                }
            })
        }
        EndpointCommand::Delete { id } => Ok(match existing_or_deleted(state, id)? {
            // Deleting again (a retry) changes nothing.
            None => Vec::new(),
            Some(_) => vec![EndpointEvent::Deleted {
                id: id.clone(),
                at: now,
            }],
        }),
        EndpointCommand::Replay { id, after, head } => {
            let endpoint = existing(state, id)?;
            let after = check_position(*after, *head)?;
            Ok(vec![EndpointEvent::Replayed {
                id: id.clone(),
                after,
                generation: endpoint.generation.saturating_add(1),
                at: now,
            }])
        }
        EndpointCommand::RequestRedelivery {
            id,
            message_id,
            position,
        } => {
            let endpoint = existing(state, id)?;
            if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID_LEN {
                return Err(WebhookError::MessageNotFound(
                    message_id.chars().take(MAX_MESSAGE_ID_LEN).collect(),
                ));
            }
            if endpoint
                .redeliveries
                .iter()
                .any(|(_, m, _)| m == message_id)
            {
                return Ok(Vec::new());
            }
            if endpoint.redeliveries.len() >= MAX_PENDING_REDELIVERIES {
                return Err(WebhookError::TooManyRedeliveries {
                    limit: MAX_PENDING_REDELIVERIES,
                });
            }
            Ok(vec![EndpointEvent::RedeliveryRequested {
                id: id.clone(),
                request: state.next_redelivery,
                message_id: message_id.clone(),
                position: *position,
                at: now,
            }])
        }
        EndpointCommand::MarkFailing { id, reason } => {
            Ok(match existing_or_deleted(state, id)? {
                // A paused endpoint stays paused: the admin's pause wins over a late give-up.
                Some(endpoint) if endpoint.status == EndpointStatus::Enabled => {
                    vec![EndpointEvent::Failing {
                        id: id.clone(),
                        reason: reason.chars().take(MAX_REASON_CHARS).collect(),
                        at: now,
                    }]
                }
                _ => Vec::new(),
            })
        }
        EndpointCommand::MarkRecovered { id } => Ok(match existing_or_deleted(state, id)? {
            Some(endpoint) if endpoint.status == EndpointStatus::Failing => {
                vec![EndpointEvent::Recovered {
                    id: id.clone(),
                    at: now,
                }]
            }
            _ => Vec::new(),
        }),
        EndpointCommand::RedeliveryDone { id, request } => {
            Ok(match existing_or_deleted(state, id)? {
                Some(endpoint) if endpoint.redeliveries.iter().any(|(r, _, _)| r == request) => {
                    vec![EndpointEvent::RedeliveryDone {
                        id: id.clone(),
                        request: *request,
                        at: now,
                    }]
                }
                _ => Vec::new(),
            })
        }
    }
}

fn decide_create(
    state: &RegistryState,
    new: &NewEndpoint,
    generated_secret: &Secret,
    head: Position,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Vec<EndpointEvent>, WebhookError> {
    let exists = || WebhookError::EndpointExists(new.id.to_string());
    // A deleted id stays taken: a late retry of its creation must not bring it back.
    if state.deleted.contains(&new.id) {
        return Err(exists());
    }
    let url = check_url(&new.url, limits.allow_private_targets)?;
    let event_types = normalise_types(&new.event_types);
    let description = check_description(new.description.as_deref())?;
    let request = CreationRequest {
        url,
        event_types,
        description,
        timeout_ms: new.timeout_ms,
        max_in_flight: new.max_in_flight,
        start: new.start,
        secret: new.secret.clone(),
    };
    if state.endpoints.contains_key(&new.id) {
        return if state.creations.get(&new.id) == Some(&request) {
            Ok(Vec::new())
        } else {
            Err(exists())
        };
    }
    if state.endpoints.len() >= limits.max_endpoints {
        return Err(WebhookError::TooManyEndpoints {
            limit: limits.max_endpoints,
        });
    }
    let timeout_ms = check_timeout(new.timeout_ms.unwrap_or(limits.default_timeout_ms), limits)?;
    let max_in_flight = check_in_flight(
        new.max_in_flight.unwrap_or(limits.default_max_in_flight),
        limits,
    )?;
    let start_after = match new.start {
        StartFrom::Now => head,
        StartFrom::Start => Position::START,
        StartFrom::After(position) => check_position(position, head)?,
    };
    Ok(vec![EndpointEvent::Created(Box::new(EndpointCreated {
        id: new.id.clone(),
        url: request.url,
        event_types: request.event_types,
        description: request.description,
        timeout_ms,
        max_in_flight,
        secret: new
            .secret
            .clone()
            .unwrap_or_else(|| generated_secret.clone()),
        start_after,
        requested_timeout_ms: new.timeout_ms,
        requested_max_in_flight: new.max_in_flight,
        start: new.start,
        secret_given: new.secret.is_some(),
        at: now,
    }))])
}

/// Applies one event. Events of endpoints the state does not hold (which `decide` never makes)
/// change nothing.
pub fn evolve(state: &mut RegistryState, event: &EndpointEvent) {
    if let EndpointEvent::Created(created) = event {
        let c = created.as_ref();
        state.deleted.remove(&c.id);
        state.endpoints.insert(
            c.id.clone(),
            Endpoint {
                id: c.id.clone(),
                url: c.url.clone(),
                event_types: c.event_types.clone(),
                description: c.description.clone(),
                timeout_ms: c.timeout_ms,
                max_in_flight: c.max_in_flight,
                status: EndpointStatus::Enabled,
                failing: None,
                secret: c.secret.clone(),
                previous_secret: None,
                created_at: c.at,
                updated_at: c.at,
                start_after: c.start_after,
                generation: 0,
                redeliveries: Vec::new(),
            },
        );
        state.creations.insert(
            c.id.clone(),
            CreationRequest {
                url: c.url.clone(),
                event_types: c.event_types.clone(),
                description: c.description.clone(),
                timeout_ms: c.requested_timeout_ms,
                max_in_flight: c.requested_max_in_flight,
                start: c.start,
                secret: c.secret_given.then(|| c.secret.clone()),
            },
        );
        return;
    }
    if let EndpointEvent::Deleted { id, .. } = event {
        state.endpoints.remove(id);
        state.creations.remove(id);
        state.deleted.insert(id.clone());
        return;
    }
    if let EndpointEvent::RedeliveryRequested { request, .. } = event {
        state.next_redelivery = state.next_redelivery.max(request.saturating_add(1));
    }
    let Some(endpoint) = state.endpoints.get_mut(event.endpoint_id()) else {
        return;
    };
    match event {
        EndpointEvent::Created(_) | EndpointEvent::Deleted { .. } => {}
        EndpointEvent::Updated {
            url,
            event_types,
            description,
            timeout_ms,
            max_in_flight,
            at,
            ..
        } => {
            endpoint.url = url.clone();
            endpoint.event_types = event_types.clone();
            endpoint.description = description.clone();
            endpoint.timeout_ms = *timeout_ms;
            endpoint.max_in_flight = *max_in_flight;
            endpoint.updated_at = *at;
        }
        EndpointEvent::SecretRotated {
            secret,
            previous_until,
            at,
            ..
        } => {
            let previous = std::mem::replace(&mut endpoint.secret, secret.clone());
            endpoint.previous_secret = Some((previous, *previous_until));
            endpoint.updated_at = *at;
        }
        EndpointEvent::Paused { at, .. } => {
            endpoint.status = EndpointStatus::Paused;
            endpoint.failing = None;
            endpoint.updated_at = *at;
        }
        EndpointEvent::Resumed { at, .. } | EndpointEvent::Recovered { at, .. } => {
            endpoint.status = EndpointStatus::Enabled;
            endpoint.failing = None;
            endpoint.updated_at = *at;
        }
        EndpointEvent::Replayed {
            after,
            generation,
            at,
            ..
        } => {
            endpoint.start_after = *after;
            endpoint.generation = *generation;
            endpoint.updated_at = *at;
        }
        EndpointEvent::RedeliveryRequested {
            request,
            message_id,
            position,
            ..
        } => endpoint
            .redeliveries
            .push((*request, message_id.clone(), *position)),
        EndpointEvent::Failing { reason, at, .. } => {
            endpoint.status = EndpointStatus::Failing;
            endpoint.failing = Some((*at, reason.clone()));
            endpoint.updated_at = *at;
        }
        EndpointEvent::RedeliveryDone { request, .. } => {
            endpoint.redeliveries.retain(|(r, _, _)| r != request);
        }
    }
}
