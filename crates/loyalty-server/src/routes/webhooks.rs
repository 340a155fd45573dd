//! Webhooks (admins): endpoints to deliver the integration events to, their secrets, pausing,
//! replays and redeliveries, and their delivery logs. Every change is an event of the registry
//! stream (`webhooks`), decided by `loyalty_webhooks`; this module checks the request's shape
//! first (the documented patterns and limits), so a request refused here appends nothing.
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loyalty_webhooks::WebhookError;
use loyalty_webhooks::endpoint::{EndpointChanges, EndpointId, NewEndpoint, StartFrom};
use loyalty_webhooks::log::{DeliveryQuery, MAX_PAGE};
use loyalty_webhooks::signing::Secret;

use super::{ApiJson, ApiPath, ApiQuery, REPLAYED_HEADER};
use crate::auth::{Admins, Allowed};
use crate::dto::{
    CreateWebhookEndpointRequest, DeliveriesQuery, MAX_ROTATION_OVERLAP_SECS, ReplayWebhookRequest,
    RotateWebhookSecretRequest, UpdateWebhookEndpointRequest, WEBHOOK_DESCRIPTION_MAX_LENGTH,
    WEBHOOK_URL_MAX_LENGTH, page_size,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::webhooks::{
    WebhookDeliveryPage, WebhookDeliveryStatus, WebhookEndpoint, WebhookEndpointDetail,
    WebhookEndpointList, WebhookEndpointWithSecret, WebhookEventTypes, WebhookRedelivery,
};

/// The delivery log's page size when `?limit=` is absent.
const DEFAULT_DELIVERIES_PAGE: usize = 50;

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    summary = "Register an endpoint to deliver integration events to",
    description = "Messages are POSTed as JSON, signed by the Standard Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature` headers), at least once and in order per member. The answer holds the signing `secret` (a retry of the same request shows it too; rotate it to get a new one). The endpoint's id is the idempotency key: the same request again answers 200 with the same endpoint (header `Idempotent-Replayed: true`); another request with the same id is 409 `webhook-endpoint-exists`. A URL naming a loopback, private or link-local address, or a `localhost` name, is 422 `webhook-target-not-allowed` unless `webhooks.allow_private_targets`; a host name is resolved at each delivery, and an attempt to an internal address fails.",
    request_body = crate::dto::CreateWebhookEndpointRequest,
    responses(
        (status = 201, description = "Created", body = crate::wire::webhooks::WebhookEndpointWithSecret,
            headers(("location" = String, description = "The endpoint's URL"))),
        (status = 200, description = "The same request again: the endpoint as created (header `Idempotent-Replayed: true`)", body = crate::wire::webhooks::WebhookEndpointWithSecret),
    ),
    security(("apiKey" = ["admin"])),
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiJson(body): ApiJson<CreateWebhookEndpointRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&body.endpoint_id)?;
    let settings = state.webhooks.settings();
    let new = NewEndpoint {
        url: url(body.url)?,
        // Sorted and deduplicated by the registry.
        event_types: body.event_types.unwrap_or_default(),
        description: description(body.description)?,
        secret: body.secret.as_deref().map(secret).transpose()?,
        timeout_ms: body
            .timeout_ms
            .map(|t| within("timeout_ms", t, settings.max_timeout_ms))
            .transpose()?,
        max_in_flight: body
            .max_in_flight
            .map(|n| within("max_in_flight", n, settings.max_in_flight))
            .transpose()?,
        start: body.start.map_or(StartFrom::Now, |s| s.0),
        id: id.clone(),
    };
    // The registry tells the creation from a retry of it (which appends nothing).
    let created = state.webhooks.create(new).await?;
    let answer = WebhookEndpointWithSecret {
        endpoint: endpoint_answer(&state, &created.endpoint),
        secret: created.secret.expose(),
    };
    let mut response = Json(answer).into_response();
    if created.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    } else {
        *response.status_mut() = StatusCode::CREATED;
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/webhooks/endpoints/{id}")) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = "webhooks",
    summary = "Every webhook endpoint (without secrets)",
    responses((status = 200, description = "OK", body = crate::wire::webhooks::WebhookEndpointList)),
    security(("apiKey" = ["admin"])),
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    _: Allowed<Admins>,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    let now = state.engine.clock().now();
    let endpoints = state.webhooks.endpoints().await?;
    Ok(Json(WebhookEndpointList {
        endpoints: endpoints
            .iter()
            .map(|e| WebhookEndpoint::new(e, now))
            .collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = "webhooks",
    summary = "An endpoint (without its secret) and how far its deliveries got",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    responses((status = 200, description = "OK", body = crate::wire::webhooks::WebhookEndpointDetail)),
    security(("apiKey" = ["admin"])),
)]
pub async fn get_endpoint(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
) -> Result<Json<WebhookEndpointDetail>, ApiError> {
    let id = parse_id(&endpoint_id)?;
    let (endpoint, status) = state.webhooks.endpoint_with_status(&id).await?;
    Ok(Json(WebhookEndpointDetail {
        endpoint: endpoint_answer(&state, &endpoint),
        delivery: WebhookDeliveryStatus::from(&status),
    }))
}

#[utoipa::path(
    patch,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = "webhooks",
    summary = "Change an endpoint's URL, event types, description, timeout or messages in flight",
    description = "At least one field; the others stay. Messages not delivered yet go to the new URL.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    request_body = crate::dto::UpdateWebhookEndpointRequest,
    responses((status = 200, description = "Changed (or nothing to change)", body = crate::wire::webhooks::WebhookEndpoint)),
    security(("apiKey" = ["admin"])),
)]
pub async fn update_endpoint(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhookEndpointRequest>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    let id = parse_id(&endpoint_id)?;
    let settings = state.webhooks.settings();
    let changes = EndpointChanges {
        url: body.url.map(url).transpose()?,
        event_types: body.event_types,
        description: description(body.description)?,
        timeout_ms: body
            .timeout_ms
            .map(|t| within("timeout_ms", t, settings.max_timeout_ms))
            .transpose()?,
        max_in_flight: body
            .max_in_flight
            .map(|n| within("max_in_flight", n, settings.max_in_flight))
            .transpose()?,
    };
    if changes == EndpointChanges::default() {
        return Err(ApiError::invalid(
            "name at least one of url, event_types, description, timeout_ms, max_in_flight",
        ));
    }
    let endpoint = state.webhooks.update(&id, changes).await?;
    Ok(Json(endpoint_answer(&state, &endpoint)))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = "webhooks",
    summary = "Delete an endpoint: nothing more is delivered to it",
    description = "Its id stays taken: a late retry of its creation is 409, never a new endpoint.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    responses((status = 204, description = "Deleted")),
    security(("apiKey" = ["admin"])),
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&endpoint_id)?;
    state.webhooks.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
    tag = "webhooks",
    summary = "A new signing secret; the previous one signs too for a while",
    description = "During the overlap every message carries both signatures, so that receivers can switch at their pace. The answer holds the new `secret`.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    request_body = crate::dto::RotateWebhookSecretRequest,
    responses((status = 200, description = "Rotated", body = crate::wire::webhooks::WebhookEndpointWithSecret)),
    security(("apiKey" = ["admin"])),
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateWebhookSecretRequest>,
) -> Result<Json<WebhookEndpointWithSecret>, ApiError> {
    let id = parse_id(&endpoint_id)?;
    let new_secret = body.secret.as_deref().map(secret).transpose()?;
    let overlap = body
        .overlap_secs
        .map(|s| {
            if s > MAX_ROTATION_OVERLAP_SECS {
                Err(ApiError::invalid(format!(
                    "overlap_secs={s} is more than {MAX_ROTATION_OVERLAP_SECS} (30 days)"
                ))
                .with("max", MAX_ROTATION_OVERLAP_SECS))
            } else {
                Ok(Duration::from_secs(s))
            }
        })
        .transpose()?;
    let rotated = state
        .webhooks
        .rotate_secret(&id, new_secret, overlap)
        .await?;
    Ok(Json(WebhookEndpointWithSecret {
        endpoint: endpoint_answer(&state, &rotated.endpoint),
        secret: rotated.secret.expose(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/pause",
    tag = "webhooks",
    summary = "Stop delivering to an endpoint until resumed",
    description = "Its messages wait from its checkpoint: resuming delivers them, in order. Pausing a paused endpoint changes nothing.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    responses((status = 200, description = "Paused", body = crate::wire::webhooks::WebhookEndpoint)),
    security(("apiKey" = ["admin"])),
)]
pub async fn pause_endpoint(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    let id = parse_id(&endpoint_id)?;
    let endpoint = state.webhooks.pause(&id).await?;
    Ok(Json(endpoint_answer(&state, &endpoint)))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/resume",
    tag = "webhooks",
    summary = "Deliver to a paused or failing endpoint again",
    description = "Its backlog drains from its checkpoint, in order. Resuming an enabled endpoint changes nothing.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    responses((status = 200, description = "Enabled", body = crate::wire::webhooks::WebhookEndpoint)),
    security(("apiKey" = ["admin"])),
)]
pub async fn resume_endpoint(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    let id = parse_id(&endpoint_id)?;
    let endpoint = state.webhooks.resume(&id).await?;
    Ok(Json(endpoint_answer(&state, &endpoint)))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/replay",
    tag = "webhooks",
    summary = "Deliver again every message after a position of the log",
    description = "In order, with their original ids (receivers deduplicate by `webhook-id`). A position past the head of the log is 409 `position-ahead-of-log`.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint")),
    request_body = crate::dto::ReplayWebhookRequest,
    responses((status = 202, description = "Accepted: the dispatcher starts again after `start_after`", body = crate::wire::webhooks::WebhookEndpoint)),
    security(("apiKey" = ["admin"])),
)]
pub async fn replay(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
    ApiJson(body): ApiJson<ReplayWebhookRequest>,
) -> Result<(StatusCode, Json<WebhookEndpoint>), ApiError> {
    let id = parse_id(&endpoint_id)?;
    let endpoint = state.webhooks.replay(&id, body.after.0).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(endpoint_answer(&state, &endpoint)),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/messages/{message_id}/redeliver",
    tag = "webhooks",
    summary = "Send one message of the delivery log again",
    description = "Outside the endpoint's order, with its original id; the attempt is recorded in the delivery log as a redelivery. A message the delivery log does not hold (any more) is 404 `webhook-message-not-found`.",
    params(
        ("endpoint_id" = crate::schema::Id, Path, description = "The endpoint"),
        ("message_id" = String, Path, description = "The message (`msg_...`, its `webhook-id`)"),
    ),
    responses((status = 202, description = "Accepted: the dispatcher sends it", body = crate::wire::webhooks::WebhookRedelivery)),
    security(("apiKey" = ["admin"])),
)]
pub async fn redeliver(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath((endpoint_id, message_id)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<WebhookRedelivery>), ApiError> {
    let id = parse_id(&endpoint_id)?;
    state.webhooks.redeliver(&id, &message_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookRedelivery {
            endpoint_id: id.to_string(),
            message_id,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{endpoint_id}/deliveries",
    tag = "webhooks",
    summary = "An endpoint's delivery log: attempts, newest first",
    description = "The log keeps the last `webhooks.log_keep_events` batches of attempts.",
    params(("endpoint_id" = crate::schema::Id, Path, description = "The endpoint"), crate::dto::DeliveriesQuery),
    responses((status = 200, description = "OK", body = crate::wire::webhooks::WebhookDeliveryPage)),
    security(("apiKey" = ["admin"])),
)]
pub async fn deliveries(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiPath(endpoint_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<WebhookDeliveryPage>, ApiError> {
    let id = parse_id(&endpoint_id)?;
    let limit = page_size(query.limit, DEFAULT_DELIVERIES_PAGE, MAX_PAGE)?;
    if let Some(cursor) = &query.cursor
        && !crate::dto::is_deliveries_cursor(cursor)
    {
        return Err(WebhookError::InvalidCursor.into());
    }
    // An unknown endpoint is 404 (not an empty log): `deliveries` checks.
    let page = state
        .webhooks
        .deliveries(
            &id,
            DeliveryQuery {
                limit,
                before: query.cursor,
                message_id: query.message_id,
            },
        )
        .await?;
    Ok(Json(WebhookDeliveryPage::from(&page)))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/event-types",
    tag = "webhooks",
    summary = "The integration event types an endpoint can receive",
    description = "Each message is `{\"id\", \"type\", \"version\", \"timestamp\", \"member_id\", \"position\", \"data\"}`; `data` depends on the type (see the `WebhookPayload` schema).",
    responses((status = 200, description = "OK", body = crate::wire::webhooks::WebhookEventTypes)),
    security(("apiKey" = ["admin"])),
)]
pub async fn event_types_list(_: Allowed<Admins>) -> Json<WebhookEventTypes> {
    Json(WebhookEventTypes::new(
        loyalty_webhooks::message::PAYLOAD_VERSION,
    ))
}

/// An endpoint as answered: its secrets' overlap judged by the server's clock now.
fn endpoint_answer(
    state: &AppState,
    endpoint: &loyalty_webhooks::endpoint::Endpoint,
) -> WebhookEndpoint {
    WebhookEndpoint::new(endpoint, state.engine.clock().now())
}

// ---------------------------------------------------------------- the request's checks

/// An endpoint's id (the body's `endpoint_id`, a path's `{endpoint_id}`).
fn parse_id(value: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(value).map_err(ApiError::from)
}

/// The URL, as the documented pattern has it (the registry then checks where it leads).
fn url(value: String) -> Result<String, ApiError> {
    if crate::dto::is_webhook_url(&value) {
        Ok(value)
    } else {
        // The URL is not repeated: its query may hold a receiver's token.
        let problem: ApiError = WebhookError::InvalidUrl(format!(
            "not an http(s) URL of a host name or IPv4 address, with an optional port, path \
             and query, at most {WEBHOOK_URL_MAX_LENGTH} characters, without user name, \
             password or fragment"
        ))
        .into();
        Err(problem.with("pattern", crate::dto::WEBHOOK_URL_PATTERN))
    }
}

/// The signing secret, as the documented pattern has it.
fn secret(value: &str) -> Result<Secret, ApiError> {
    if !crate::dto::is_webhook_secret(value) {
        return Err(WebhookError::InvalidSecret(
            "a secret is whsec_ and the standard base64 (padded) of 24 to 64 bytes".into(),
        )
        .into());
    }
    Secret::parse(value).map_err(ApiError::from)
}

/// The event types, each once, in their documented order; empty means every type.
/// At most 256 characters, none of them a control character (as documented).
fn description(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if !crate::dto::is_webhook_description(&text) => {
            Err(WebhookError::InvalidSetting(format!(
                "a description is at most {WEBHOOK_DESCRIPTION_MAX_LENGTH} characters, without \
                 control characters"
            ))
            .into())
        }
        other => Ok(other),
    }
}

/// A setting within 1..=max (the server's `[webhooks]` limits).
fn within<T: PartialOrd + From<u8> + std::fmt::Display + Copy + Into<u64>>(
    field: &str,
    value: T,
    max: T,
) -> Result<T, ApiError> {
    if value >= T::from(1) && value <= max {
        Ok(value)
    } else {
        let problem: ApiError =
            WebhookError::InvalidSetting(format!("{field}={value} is not between 1 and {max}"))
                .into();
        Err(problem.with("max", max.into()))
    }
}
