//! Webhooks: endpoints, how far their deliveries got, their delivery log, and the integration
//! event types they can receive (`/v1/webhooks`). A secret is shown in two answers only: the
//! endpoint's creation and a rotation.
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use loyalty_webhooks::endpoint::{Endpoint, EndpointStatus, EventType};
use loyalty_webhooks::log::{AttemptOutcome, DeliveryAttempt, DeliveryPage, DeliveryStatus};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::dto::PositionText;

/// An integration event type, as named on the wire: its schema lists exactly the types the
/// webhooks crate sends ([`EventType::ALL`]).
#[derive(Debug)]
pub struct WebhookEventType;

impl PartialSchema for WebhookEventType {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str())))
            .description(Some("An integration event type"))
            .examples(["purchase.recorded"])
            .into()
    }
}

impl ToSchema for WebhookEventType {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookEventType")
    }
}

/// What each type tells, one line each (`GET /v1/webhooks/event-types`).
pub fn event_type_description(event_type: EventType) -> &'static str {
    match event_type {
        EventType::MemberEnrolled => "A member joined the program (with their referrer, if any).",
        EventType::PurchaseRecorded => {
            "A purchase was recorded: its amount, the points it earned and when they become spendable."
        }
        EventType::RefundRecorded => {
            "A refund was recorded against a purchase: the amount and the points taken back."
        }
        EventType::RewardRedeemed => {
            "A member spent points on a reward of the catalog or on a number of points."
        }
        EventType::RedemptionCancelled => {
            "A redemption was cancelled and the points it spent were given back."
        }
        EventType::TierChanged => "A member moved to another tier (up or down) and why.",
        EventType::PointsExpired => {
            "Points reached their expiry date and were taken off the balance."
        }
        EventType::PointsExpiring => {
            "Notice that points will expire soon (the program's notice days before their expiry)."
        }
    }
}

/// Whether an endpoint is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEndpointStatus {
    /// Delivered to.
    Enabled,
    /// Not delivered to until resumed: its messages wait from its checkpoint.
    Paused,
    /// A message was not delivered within the retry time: the backlog is kept and the oldest
    /// message retried now and then until one succeeds (or until resumed).
    Failing,
}

impl From<EndpointStatus> for WebhookEndpointStatus {
    fn from(status: EndpointStatus) -> Self {
        match status {
            EndpointStatus::Enabled => WebhookEndpointStatus::Enabled,
            EndpointStatus::Paused => WebhookEndpointStatus::Paused,
            EndpointStatus::Failing => WebhookEndpointStatus::Failing,
        }
    }
}

/// Since when and why something failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookFailure {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// An endpoint, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    #[schema(value_type = crate::schema::Id)]
    pub endpoint_id: String,
    #[schema(value_type = crate::dto::WebhookUrl)]
    pub url: String,
    /// The types delivered; empty: every type.
    #[schema(value_type = Vec<WebhookEventType>)]
    pub event_types: Vec<&'static str>,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(minimum = 1)]
    pub timeout_ms: u64,
    #[schema(minimum = 1)]
    pub max_in_flight: u32,
    pub status: WebhookEndpointStatus,
    /// Since when and why it is failing (null unless `status` is `failing`).
    #[schema(required = true)]
    pub failing: Option<WebhookFailure>,
    /// Until when the secret before the last rotation still signs too (both signatures are
    /// sent); null when it no longer does.
    #[schema(required = true)]
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Deliveries started (or, after a replay, start again) after this position of the log.
    pub start_after: PositionText,
    /// How many replays were asked for.
    pub generation: u64,
    /// The messages whose redelivery was asked for and is not done yet.
    pub pending_redeliveries: Vec<String>,
}

impl WebhookEndpoint {
    /// The endpoint as of `now` (the server's clock: whether the previous secret still signs).
    pub fn new(endpoint: &Endpoint, now: DateTime<Utc>) -> Self {
        Self {
            endpoint_id: endpoint.id.to_string(),
            url: endpoint.url.clone(),
            event_types: endpoint.event_types.iter().map(|t| t.as_str()).collect(),
            description: endpoint.description.clone(),
            timeout_ms: endpoint.timeout_ms,
            max_in_flight: endpoint.max_in_flight,
            status: endpoint.status.into(),
            failing: endpoint
                .failing
                .as_ref()
                .map(|(at, reason)| WebhookFailure {
                    at: *at,
                    reason: reason.clone(),
                }),
            previous_secret_until: endpoint
                .previous_secret
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|until| *until > now),
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
            start_after: PositionText(endpoint.start_after),
            generation: endpoint.generation,
            pending_redeliveries: endpoint
                .redeliveries
                .iter()
                .map(|(_, message, _)| message.clone())
                .collect(),
        }
    }
}

/// An endpoint with the secret that signs its messages: the answer to its creation and to a
/// rotation (and to a retry of the creation), the only answers that show it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// [`WebhookEndpoint`]'s schema with one more (required) property: the answers that flatten
/// an endpoint into themselves are one object, as their JSON is (not an `allOf`, which a
/// schema closed to other properties could not satisfy).
fn endpoint_and(name: &str, property: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    let mut object = match WebhookEndpoint::schema() {
        RefOr::T(Schema::Object(object)) => object,
        // The derive makes an object of a struct with named fields.
        _ => ObjectBuilder::new().build(),
    };
    object.properties.insert(name.to_owned(), property);
    object.required.push(name.to_owned());
    object.description = Some(description.to_owned());
    RefOr::T(Schema::Object(object))
}

impl PartialSchema for WebhookEndpointWithSecret {
    fn schema() -> RefOr<Schema> {
        endpoint_and(
            "secret",
            RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                crate::dto::WebhookSecretText::name(),
            )),
            "An endpoint and the secret that signs its messages: the answer to its creation \
             and to a rotation (and to a retry of the creation), the only answers that show it.",
        )
    }
}

impl ToSchema for WebhookEndpointWithSecret {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookEndpointWithSecret")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            WebhookEndpoint::name().into_owned(),
            WebhookEndpoint::schema(),
        ));
        WebhookEndpoint::schemas(schemas);
        schemas.push((
            crate::dto::WebhookSecretText::name().into_owned(),
            crate::dto::WebhookSecretText::schema(),
        ));
    }
}

/// Every endpoint (`GET /v1/webhooks/endpoints`), by id, without secrets.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub endpoints: Vec<WebhookEndpoint>,
}

/// How far an endpoint's deliveries got.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryStatus {
    /// Every message at or before this position was delivered (or not wanted); null before
    /// the first checkpoint was written.
    #[schema(required = true)]
    pub checkpoint: Option<PositionText>,
    /// The last 2xx answer.
    #[schema(required = true)]
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// The last attempt that failed, and why.
    #[schema(required = true)]
    pub last_failure: Option<WebhookFailure>,
    /// Deliveries stopped before an event a newer release wrote (a rolling upgrade in
    /// progress): nothing after it is sent until the server delivering is upgraded. Null
    /// otherwise, and on servers that do not deliver (the one holding the lease does).
    #[schema(required = true)]
    pub halted_at: Option<WebhookHalt>,
}

/// The event a newer release wrote that deliveries stopped before.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookHalt {
    /// The member stream and the event's revision in it.
    pub stream: String,
    pub revision: u64,
    /// Its position in the log.
    pub position: PositionText,
    pub event_type: String,
    /// The event's schema version, and the newest of its type this server reads.
    pub schema_version: u32,
    pub newest_known: u32,
    /// What to do about it, in a sentence.
    pub reason: String,
}

impl From<&DeliveryStatus> for WebhookDeliveryStatus {
    fn from(s: &DeliveryStatus) -> Self {
        Self {
            checkpoint: s.checkpoint.map(PositionText),
            last_delivered_at: s.last_delivered_at,
            last_failure: s.last_failure.as_ref().map(|(at, reason)| WebhookFailure {
                at: *at,
                reason: reason.clone(),
            }),
            halted_at: s.halted.as_ref().map(|newer| WebhookHalt {
                stream: newer.stream.clone(),
                revision: newer.revision,
                position: PositionText(newer.position),
                event_type: newer.event_type.clone(),
                schema_version: newer.version,
                newest_known: newer.newest_known,
                reason: newer.to_string(),
            }),
        }
    }
}

/// An endpoint (without its secret) and how far its deliveries got
/// (`GET /v1/webhooks/endpoints/{endpoint_id}`).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEndpointDetail {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    pub delivery: WebhookDeliveryStatus,
}

impl PartialSchema for WebhookEndpointDetail {
    fn schema() -> RefOr<Schema> {
        endpoint_and(
            "delivery",
            RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                WebhookDeliveryStatus::name(),
            )),
            "An endpoint (without its secret) and how far its deliveries got.",
        )
    }
}

impl ToSchema for WebhookEndpointDetail {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookEndpointDetail")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            WebhookEndpoint::name().into_owned(),
            WebhookEndpoint::schema(),
        ));
        WebhookEndpoint::schemas(schemas);
        schemas.push((
            WebhookDeliveryStatus::name().into_owned(),
            WebhookDeliveryStatus::schema(),
        ));
        WebhookDeliveryStatus::schemas(schemas);
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookAttemptOutcome {
    /// Answered with a 2xx.
    Delivered,
    /// Not delivered; it will be tried again.
    Retrying,
    /// Not delivered within the retry time: the endpoint was marked failing, the message
    /// stays in its backlog.
    GaveUp,
    /// A redelivery that was not answered with a 2xx: it is not tried again (the message's
    /// place in the endpoint's order is not affected).
    Failed,
}

impl From<AttemptOutcome> for WebhookAttemptOutcome {
    fn from(outcome: AttemptOutcome) -> Self {
        match outcome {
            AttemptOutcome::Delivered => WebhookAttemptOutcome::Delivered,
            AttemptOutcome::Retrying => WebhookAttemptOutcome::Retrying,
            AttemptOutcome::GaveUp => WebhookAttemptOutcome::GaveUp,
            AttemptOutcome::Failed => WebhookAttemptOutcome::Failed,
        }
    }
}

/// One attempt to deliver one message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryAttempt {
    /// The message's id (its `webhook-id` header): the same for every attempt.
    pub message_id: String,
    #[schema(value_type = WebhookEventType)]
    pub event_type: &'static str,
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The source event's position in the log.
    pub position: PositionText,
    /// 1 for the first attempt.
    #[schema(minimum = 1)]
    pub attempt: u32,
    /// When the request was sent (the server's clock).
    pub at: DateTime<Utc>,
    /// The HTTP status of the answer; null when none came (timeout, connection refused...).
    #[schema(required = true, minimum = 100, maximum = 999)]
    pub status: Option<u16>,
    /// Why it failed without a status.
    #[schema(required = true)]
    pub error: Option<String>,
    pub latency_ms: u64,
    pub outcome: WebhookAttemptOutcome,
    /// A redelivery asked for by an admin (outside the endpoint's order).
    pub redelivery: bool,
}

impl From<&DeliveryAttempt> for WebhookDeliveryAttempt {
    fn from(a: &DeliveryAttempt) -> Self {
        Self {
            message_id: a.message_id.clone(),
            event_type: a.event_type.as_str(),
            member_id: a.member_id.clone(),
            position: PositionText(a.position),
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            error: a.error.clone(),
            latency_ms: a.latency_ms,
            outcome: a.outcome.into(),
            redelivery: a.redelivery,
        }
    }
}

/// A page of an endpoint's delivery log, newest first
/// (`GET /v1/webhooks/endpoints/{endpoint_id}/deliveries`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryPage {
    pub attempts: Vec<WebhookDeliveryAttempt>,
    /// Pass it as `?cursor=` for the next (older) page; null when this page reaches the oldest
    /// attempt kept.
    #[schema(required = true, value_type = Option<crate::schema::DeliveryCursor>)]
    pub next_cursor: Option<String>,
}

impl From<&DeliveryPage> for WebhookDeliveryPage {
    fn from(p: &DeliveryPage) -> Self {
        Self {
            attempts: p
                .attempts
                .iter()
                .map(WebhookDeliveryAttempt::from)
                .collect(),
            next_cursor: p.next.clone(),
        }
    }
}

/// A redelivery was asked for: the dispatcher sends the message again (with its original id)
/// outside the endpoint's order, and records the attempt in the delivery log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookRedelivery {
    #[schema(value_type = crate::schema::Id)]
    pub endpoint_id: String,
    pub message_id: String,
}

/// One integration event type.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEventTypeInfo {
    #[serde(rename = "type")]
    #[schema(value_type = WebhookEventType)]
    pub event_type: &'static str,
    pub description: &'static str,
}

/// The integration event types an endpoint can receive (`GET /v1/webhooks/event-types`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEventTypes {
    /// The payload's schema version (its `version` member).
    #[schema(minimum = 1)]
    pub version: u32,
    pub event_types: Vec<WebhookEventTypeInfo>,
}

impl WebhookEventTypes {
    /// Every type, in [`EventType::ALL`]'s order.
    pub fn new(version: u32) -> Self {
        Self {
            version,
            event_types: EventType::ALL
                .iter()
                .map(|t| WebhookEventTypeInfo {
                    event_type: t.as_str(),
                    description: event_type_description(*t),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------- the payloads (documentation)

/// The pattern of a message id: `msg_` and the source event's id (32 hex digits).
pub const MESSAGE_ID_PATTERN: &str = "^msg_[0-9a-f]{32}$";

/// The schemas of what the webhooks POST (`WebhookPayload`): the document lists them so that
/// receivers can generate their types; they mirror `loyalty_webhooks::message`, and a test
/// checks real messages against them.
#[allow(dead_code)]
mod payload {
    use chrono::{DateTime, Utc};
    use utoipa::ToSchema;

    /// A tier, by its place in the program's list (0 is the lowest) and its name.
    #[derive(Debug, serde::Serialize, ToSchema)]
    #[schema(as = WebhookTier)]
    pub struct Tier {
        pub index: u32,
        pub name: String,
    }

    /// `member.enrolled`: a member joined the program.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct MemberEnrolledData {
        pub enrolled_at: DateTime<Utc>,
        pub tier: Tier,
        /// The member who referred this one.
        #[schema(required = true)]
        pub referred_by: Option<String>,
        /// The welcome bonus (0 when the program gives none).
        pub welcome_points: i64,
        /// When the welcome points can be spent.
        #[schema(required = true)]
        pub welcome_spendable_from: Option<DateTime<Utc>>,
    }

    /// One line of a purchase: what it cost and what it earned.
    #[derive(Debug, serde::Serialize, ToSchema)]
    #[schema(as = WebhookPurchaseLine)]
    pub struct PurchaseLine {
        pub sku: String,
        pub category: String,
        #[schema(value_type = crate::schema::Amount)]
        pub quantity: String,
        #[schema(value_type = crate::schema::Amount)]
        pub amount: String,
        pub points: i64,
    }

    /// `purchase.recorded`: a purchase and the points it earned.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct PurchaseRecordedData {
        pub store: String,
        pub terminal: String,
        pub transaction_id: String,
        /// Business time at the till.
        pub occurred_at: DateTime<Utc>,
        pub currency: String,
        /// The sum of the lines' amounts.
        #[schema(value_type = crate::schema::Amount)]
        pub amount: String,
        /// The part that counts as qualifying spend.
        #[schema(value_type = crate::schema::Amount)]
        pub eligible_amount: String,
        /// Points awarded.
        pub points: i64,
        /// Of `points`, those that repaid a debt first.
        pub debt_repaid: i64,
        /// When the points can be spent (null when the purchase earned nothing).
        #[schema(required = true)]
        pub spendable_from: Option<DateTime<Utc>>,
        /// When they expire, if on a date.
        #[schema(required = true)]
        pub expires_at: Option<DateTime<Utc>>,
        pub campaigns: Vec<String>,
        pub lines: Vec<PurchaseLine>,
    }

    /// `refund.recorded`: a refund and the points it took back.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct RefundRecordedData {
        pub refund_id: String,
        /// The store that took the return (null in old events).
        #[schema(required = true)]
        pub store: Option<String>,
        /// The original sale's store (null in old events).
        #[schema(required = true)]
        pub purchase_store: Option<String>,
        pub transaction_id: String,
        pub occurred_at: DateTime<Utc>,
        pub currency: String,
        #[schema(value_type = crate::schema::Amount)]
        pub amount: String,
        #[schema(value_type = crate::schema::Amount)]
        pub eligible_amount: String,
        /// Points the refund takes back.
        pub points: i64,
        /// Of those, taken from the balance or as a debt.
        pub points_taken: i64,
        /// Of those taken, recorded as a debt.
        pub debt_added: i64,
        /// Not taken at all (the program allows no negative balance).
        pub shortfall: i64,
        /// Every point the purchase earned has now been taken back.
        pub completes_purchase: bool,
    }

    /// `reward.redeemed`: points spent on a reward or on a number of points.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct RewardRedeemedData {
        pub redemption_id: String,
        #[schema(required = true)]
        pub reward_id: Option<String>,
        pub points: i64,
        pub occurred_at: DateTime<Utc>,
    }

    /// `redemption.cancelled`: a redemption cancelled, its points given back.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct RedemptionCancelledData {
        pub redemption_id: String,
        /// Points given back (those of lots that expired meanwhile are expired at once, each
        /// with its own `points.expired`).
        pub points_restored: i64,
        pub occurred_at: DateTime<Utc>,
    }

    #[derive(Debug, serde::Serialize, ToSchema)]
    #[schema(as = WebhookTierDirection)]
    #[serde(rename_all = "snake_case")]
    pub enum TierDirection {
        Up,
        Down,
    }

    #[derive(Debug, serde::Serialize, ToSchema)]
    #[schema(as = WebhookTierChangeReason)]
    #[serde(rename_all = "snake_case")]
    pub enum TierChangeReason {
        /// The qualifying value crossed a higher threshold.
        ThresholdReached,
        /// A periodic review.
        Review,
    }

    /// `tier.changed`: a member moved to another tier.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct TierChangedData {
        pub from: Tier,
        pub to: Tier,
        pub direction: TierDirection,
        pub reason: TierChangeReason,
        /// The qualifying value (spend or points, as the program counts it) that decided.
        #[schema(value_type = crate::schema::Amount)]
        pub qualifying_value: String,
        pub occurred_at: DateTime<Utc>,
    }

    /// `points.expired`: a lot's points expired.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct PointsExpiredData {
        pub lot_id: String,
        pub points: i64,
        /// When the lot expired (its date, or the inactivity deadline).
        pub expired_at: DateTime<Utc>,
    }

    /// One lot of a `points.expiring` notice.
    #[derive(Debug, serde::Serialize, ToSchema)]
    #[schema(as = WebhookExpiringLot)]
    pub struct ExpiringLot {
        pub lot_id: String,
        /// Points left in the lot at the notice.
        pub points: i64,
        pub expires_at: DateTime<Utc>,
    }

    /// `points.expiring`: a notice, some days ahead, that points will expire.
    #[derive(Debug, serde::Serialize, ToSchema)]
    pub struct PointsExpiringData {
        pub lots: Vec<ExpiringLot>,
        /// The sum of the lots' points.
        pub points: i64,
        /// The soonest of the lots' expiries.
        #[schema(required = true)]
        pub earliest_expires_at: Option<DateTime<Utc>>,
        /// When the notice was recorded (the server's clock).
        pub notified_at: DateTime<Utc>,
    }
}

pub use payload::{
    MemberEnrolledData, PointsExpiredData, PointsExpiringData, PurchaseRecordedData,
    RedemptionCancelledData, RefundRecordedData, RewardRedeemedData, TierChangedData,
};

/// What a webhook POSTs: one integration event, `data` by `type` (`WebhookPayload` in the
/// document). Not an answer of the API: documented for the receivers.
#[derive(Debug)]
pub struct WebhookPayload;

/// The payload's `data` schema of each type, by name.
fn data_schemas() -> [(EventType, &'static str, RefOr<Schema>); 8] {
    use payload::*;
    [
        (
            EventType::MemberEnrolled,
            "MemberEnrolledData",
            MemberEnrolledData::schema(),
        ),
        (
            EventType::PurchaseRecorded,
            "PurchaseRecordedData",
            PurchaseRecordedData::schema(),
        ),
        (
            EventType::RefundRecorded,
            "RefundRecordedData",
            RefundRecordedData::schema(),
        ),
        (
            EventType::RewardRedeemed,
            "RewardRedeemedData",
            RewardRedeemedData::schema(),
        ),
        (
            EventType::RedemptionCancelled,
            "RedemptionCancelledData",
            RedemptionCancelledData::schema(),
        ),
        (
            EventType::TierChanged,
            "TierChangedData",
            TierChangedData::schema(),
        ),
        (
            EventType::PointsExpired,
            "PointsExpiredData",
            PointsExpiredData::schema(),
        ),
        (
            EventType::PointsExpiring,
            "PointsExpiringData",
            PointsExpiringData::schema(),
        ),
    ]
}

/// The envelope of one type: every member of the payload, `type` fixed, `data` that type's.
fn envelope(event_type: EventType, data: &str) -> Schema {
    use utoipa::openapi::{KnownFormat, Ref, SchemaFormat};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(event_type.as_str()))
        .property(
            "id",
            string().pattern(Some(MESSAGE_ID_PATTERN)).description(Some(
                "The message's id, also its `webhook-id` header: the same on every attempt, \
                     replay and redelivery (deduplicate on it)",
            )),
        )
        .required("id")
        .property("type", string().enum_values(Some([event_type.as_str()])))
        .required("type")
        .property(
            "version",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([loyalty_webhooks::message::PAYLOAD_VERSION]))
                .description(Some(
                    "The payload's schema version: fields may be added within a version, never \
                     removed or changed in meaning",
                )),
        )
        .required("version")
        .property(
            "timestamp",
            string()
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("When the event was recorded (the server's clock)")),
        )
        .required("timestamp")
        .property("member_id", RefOr::Ref(Ref::from_schema_name("Id")))
        .required("member_id")
        .property("position", RefOr::Ref(Ref::from_schema_name("Position")))
        .required("position")
        .property("data", RefOr::Ref(Ref::from_schema_name(data)))
        .required("data")
        .into()
}

impl PartialSchema for WebhookPayload {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        let mut one_of = OneOfBuilder::new().description(Some(
            "What a webhook POSTs (Content-Type: application/json), with the headers \
             `webhook-id` (the `id`), `webhook-timestamp` (Unix seconds) and \
             `webhook-signature` (`v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">`, one \
             per secret, space-separated) of the Standard Webhooks specification. Answer 2xx \
             once it is stored: anything else, or no answer within the endpoint's timeout, is \
             retried (at least once: deduplicate on `id`). One member's messages come in the \
             order of their `position`.",
        ));
        // Each alternative fixes `type` to one value: exactly one of them matches.
        for (event_type, data, _) in data_schemas() {
            one_of = one_of.item(envelope(event_type, data));
        }
        one_of.into()
    }
}

impl ToSchema for WebhookPayload {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebhookPayload")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use payload::*;
        for (_, name, schema) in data_schemas() {
            schemas.push((name.to_owned(), schema));
        }
        MemberEnrolledData::schemas(schemas);
        PurchaseRecordedData::schemas(schemas);
        RefundRecordedData::schemas(schemas);
        RewardRedeemedData::schemas(schemas);
        RedemptionCancelledData::schemas(schemas);
        TierChangedData::schemas(schemas);
        PointsExpiredData::schemas(schemas);
        PointsExpiringData::schemas(schemas);
        schemas.push((
            crate::schema::Id::name().into_owned(),
            crate::schema::Id::schema(),
        ));
        schemas.push((PositionText::name().into_owned(), PositionText::schema()));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::TimeZone;
    use loyalty_store::Position;
    use loyalty_webhooks::endpoint::EndpointId;
    use loyalty_webhooks::message::{
        Envelope, ExpiringLot, MessageData, PointsExpiredData as Expired,
        PointsExpiringData as Expiring, Tier, TierChangeReason, TierChangedData as Changed,
        TierDirection,
    };
    use loyalty_webhooks::signing::Secret;
    use serde_json::{Value, json};

    use super::*;
    use crate::wire::testkit::{assert_valid, schema_errors, world};

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 10, 0, 0)
            .single()
            .unwrap()
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            id: EndpointId::parse("crm").unwrap(),
            url: "https://crm.example.com/hooks".into(),
            event_types: vec![EventType::PurchaseRecorded, EventType::TierChanged],
            description: None,
            timeout_ms: 5000,
            max_in_flight: 8,
            status: EndpointStatus::Failing,
            failing: Some((at(2), "HTTP 503".into())),
            secret: Secret::generate(),
            previous_secret: Some((Secret::generate(), at(3))),
            created_at: at(1),
            updated_at: at(2),
            start_after: Position::new(42, 42),
            generation: 1,
            redeliveries: vec![(
                0,
                "msg_0123456789abcdef0123456789abcdef".into(),
                Position::new(7, 7),
            )],
        }
    }

    fn attempt(status: Option<u16>, outcome: AttemptOutcome) -> DeliveryAttempt {
        DeliveryAttempt {
            message_id: "msg_0123456789abcdef0123456789abcdef".into(),
            event_type: EventType::PurchaseRecorded,
            member_id: "m-1".into(),
            position: Position::new(7, 7),
            attempt: 2,
            at: at(2),
            status,
            error: status.is_none().then(|| "connection refused".to_owned()),
            latency_ms: 12,
            outcome,
            redelivery: false,
        }
    }

    #[test]
    fn the_event_type_schema_lists_exactly_the_types_the_webhooks_send() {
        let schema = serde_json::to_value(WebhookEventType::schema()).unwrap();
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let sent: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(listed, sent);
        let types = WebhookEventTypes::new(1);
        assert_eq!(types.event_types.len(), EventType::ALL.len());
        let descriptions: BTreeSet<&str> =
            types.event_types.iter().map(|t| t.description).collect();
        assert_eq!(descriptions.len(), EventType::ALL.len(), "one line each");
        assert_valid::<WebhookEventTypes>(&types);
    }

    #[test]
    fn the_answers_match_their_schemas_and_only_creation_and_rotation_show_a_secret() {
        let endpoint = endpoint();
        let now = at(2);
        let with_secret = WebhookEndpointWithSecret {
            endpoint: WebhookEndpoint::new(&endpoint, now),
            secret: endpoint.secret.expose(),
        };
        assert_valid::<WebhookEndpointWithSecret>(&with_secret);
        let json = serde_json::to_value(&with_secret).unwrap();
        assert_eq!(json["secret"], endpoint.secret.expose().as_str());
        assert_eq!(
            json["endpoint_id"], "crm",
            "the endpoint's fields are at the top"
        );
        assert_eq!(json["status"], "failing");
        assert_eq!(json["failing"]["reason"], "HTTP 503");
        assert_eq!(
            json["event_types"],
            json!(["purchase.recorded", "tier.changed"])
        );
        assert_eq!(json["previous_secret_until"], "2026-03-03T10:00:00Z");
        assert_eq!(
            json["pending_redeliveries"],
            json!(["msg_0123456789abcdef0123456789abcdef"])
        );
        // Once the overlap is over the previous secret is no longer mentioned.
        let later = serde_json::to_value(WebhookEndpoint::new(&endpoint, at(4))).unwrap();
        assert!(later["previous_secret_until"].is_null());

        let list = WebhookEndpointList {
            endpoints: vec![WebhookEndpoint::new(&endpoint, now)],
        };
        assert_valid::<WebhookEndpointList>(&list);
        let text = serde_json::to_string(&list).unwrap();
        assert!(!text.contains(&endpoint.secret.expose()), "{text}");
        assert!(!text.contains("secret\""), "{text}");

        let detail = WebhookEndpointDetail {
            endpoint: WebhookEndpoint::new(&endpoint, now),
            delivery: WebhookDeliveryStatus::from(&DeliveryStatus {
                checkpoint: Some(Position::new(40, 40)),
                last_delivered_at: Some(at(2)),
                last_failure: Some((at(2), "HTTP 503".into())),
                halted: Some(loyalty_engine::NewerSchemaEvent {
                    stream: "member-alice".into(),
                    revision: 3,
                    position: Position::new(41, 41),
                    event_type: "PurchaseRecorded".into(),
                    version: 9,
                    newest_known: 2,
                }),
            }),
        };
        assert_valid::<WebhookEndpointDetail>(&detail);
        assert_valid::<WebhookEndpointDetail>(&WebhookEndpointDetail {
            endpoint: WebhookEndpoint::new(&endpoint, now),
            delivery: WebhookDeliveryStatus::from(&DeliveryStatus::default()),
        });

        let page = WebhookDeliveryPage::from(&DeliveryPage {
            attempts: vec![
                attempt(Some(200), AttemptOutcome::Delivered),
                attempt(None, AttemptOutcome::Retrying),
                attempt(Some(500), AttemptOutcome::GaveUp),
                attempt(Some(404), AttemptOutcome::Failed),
            ],
            next: Some("12.3".into()),
        });
        assert_valid::<WebhookDeliveryPage>(&page);
        let mut broken = serde_json::to_value(&page).unwrap();
        broken["attempts"][0]["outcome"] = json!("lost");
        assert!(!schema_errors::<WebhookDeliveryPage>(&broken).is_empty());
        assert_valid::<WebhookRedelivery>(&WebhookRedelivery {
            endpoint_id: "crm".into(),
            message_id: "msg_0123456789abcdef0123456789abcdef".into(),
        });
    }

    #[tokio::test]
    async fn every_message_the_log_makes_matches_the_documented_payload() {
        // Given a log with enrolments, purchases, a refund, redemptions and a cancellation
        let world = world().await;
        let events = world
            .engine
            .store()
            .read_all(Position::START, 1000)
            .await
            .unwrap();
        let mut seen = BTreeSet::new();
        for event in &events {
            let Some(message) = loyalty_webhooks::message::from_recorded(event).unwrap() else {
                continue;
            };
            // Then each message is valid by the `WebhookPayload` schema, and nothing more
            let payload: Value = serde_json::from_slice(&message.payload).unwrap();
            let errors = schema_errors::<WebhookPayload>(&payload);
            assert!(errors.is_empty(), "{errors:#?}\n{payload}");
            seen.insert(message.event_type);
        }
        assert!(seen.len() >= 5, "only {seen:?}");
        // And the types the world does not make, from their data
        let samples = [
            MessageData::TierChanged(Changed {
                from: Tier {
                    index: 0,
                    name: "Bronze".into(),
                },
                to: Tier {
                    index: 1,
                    name: "Silver".into(),
                },
                direction: TierDirection::Up,
                reason: TierChangeReason::ThresholdReached,
                qualifying_value: "500.00".parse().unwrap(),
                occurred_at: at(2),
            }),
            MessageData::PointsExpired(Expired {
                lot_id: "lot-1".into(),
                points: 12,
                expired_at: at(2),
            }),
            MessageData::PointsExpiring(Expiring {
                lots: vec![ExpiringLot {
                    lot_id: "lot-1".into(),
                    points: 12,
                    expires_at: at(20),
                }],
                points: 12,
                earliest_expires_at: Some(at(20)),
                notified_at: at(2),
            }),
        ];
        for data in samples {
            let envelope = Envelope {
                id: "msg_0123456789abcdef0123456789abcdef".into(),
                event_type: data.event_type(),
                version: loyalty_webhooks::message::PAYLOAD_VERSION,
                timestamp: at(2),
                member_id: "m-1".into(),
                position: "7/7".into(),
                data,
            };
            let payload = serde_json::to_value(&envelope).unwrap();
            let errors = schema_errors::<WebhookPayload>(&payload);
            assert!(errors.is_empty(), "{errors:#?}\n{payload}");
            seen.insert(envelope.event_type);
        }
        assert_eq!(seen.len(), EventType::ALL.len(), "{seen:?}");

        // And a payload whose data is another type's is refused
        let mut mixed = serde_json::to_value(Envelope {
            id: "msg_0123456789abcdef0123456789abcdef".into(),
            event_type: EventType::PointsExpired,
            version: 1,
            timestamp: at(2),
            member_id: "m-1".into(),
            position: "7/7".into(),
            data: MessageData::PointsExpired(Expired {
                lot_id: "lot-1".into(),
                points: 12,
                expired_at: at(2),
            }),
        })
        .unwrap();
        mixed["type"] = json!("points.expiring");
        assert!(!schema_errors::<WebhookPayload>(&mixed).is_empty());
    }
}
