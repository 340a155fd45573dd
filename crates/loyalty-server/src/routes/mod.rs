//! The routes of `/v1` and the operations endpoints, and what every handler shares: extractors
//! that turn rejections into problems, running a command, waiting for `min_position`.
mod analytics;
mod audit;
mod members;
mod ops;
mod support;
mod terminal;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loyalty_core::Command;
use loyalty_engine::{CommandContext, CommandResult, EngineError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::dto::PositionText;
use crate::error::ApiError;
use crate::state::AppState;

/// Header set on the answer to a replayed command.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Every route. A test reads the route paths of this function from its source and checks that
/// each is in the OpenAPI document.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/purchases", post(terminal::record_purchase))
        .route("/v1/refunds", post(terminal::refund))
        .route("/v1/activities", post(terminal::record_activity))
        .route("/v1/members", post(members::enroll))
        .route("/v1/members/{member_id}", get(members::profile))
        .route("/v1/members/{member_id}/history", get(members::history))
        .route("/v1/members/{member_id}/rewards", get(members::rewards))
        .route("/v1/members/{member_id}/redemptions", post(members::redeem))
        .route(
            "/v1/members/{member_id}/redemptions/{redemption_id}/cancel",
            post(members::cancel_redemption),
        )
        .route("/v1/members/{member_id}/adjustments", post(support::adjust))
        .route("/v1/members/{member_id}/goodwill", post(support::goodwill))
        .route("/v1/members/{member_id}/events", get(audit::member_events))
        .route("/v1/members/{member_id}/as-of", get(audit::member_as_of))
        .route("/v1/log", get(audit::log))
        .route("/v1/liability", get(audit::liability))
        .route("/v1/totals", get(audit::totals))
        .route("/v1/analytics/retention", get(analytics::retention))
        .route("/v1/analytics/cohorts", get(analytics::cohorts))
        .route("/v1/analytics/concentration", get(analytics::concentration))
        .route("/v1/analytics/rfm", get(analytics::rfm))
        .route("/v1/analytics/model", get(analytics::model))
        .route("/v1/analytics/backtest", get(analytics::backtest))
        .route("/v1/analytics/at-risk", get(analytics::at_risk))
        .route(
            "/v1/analytics/members/{member_id}",
            get(analytics::member_value),
        )
        .route("/v1/admin/import", post(ops::import))
        .route("/v1/admin/scheduler/run", post(ops::run_scheduler))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
}

/// `Json` whose rejections are problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state)
            .await
            .map_err(|e: JsonRejection| ApiError::from(e))?;
        Ok(ApiJson(value))
    }
}

/// `Query` whose rejections are problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e: QueryRejection| ApiError::from(e))?;
        Ok(ApiQuery(value))
    }
}

/// `Path` whose rejections are problem documents.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(ApiError::from)?;
        Ok(ApiPath(value))
    }
}

/// The answer to a command.
#[derive(Debug, Serialize)]
pub struct CommandResponse {
    pub member_id: String,
    pub replayed: bool,
    /// Pass as `?min_position=` to a read to see this write.
    pub position: PositionText,
    pub stream_revision: u64,
    pub outcome: loyalty_core::Outcome,
}

impl From<CommandResult> for CommandResponse {
    fn from(r: CommandResult) -> Self {
        Self {
            member_id: r.member.to_string(),
            replayed: r.replayed,
            position: PositionText(r.position),
            stream_revision: r.stream_revision,
            outcome: r.outcome,
        }
    }
}

impl IntoResponse for CommandResponse {
    fn into_response(self) -> Response {
        let replayed = self.replayed;
        let mut response = Json(self).into_response();
        if replayed {
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// The request id set by the request-id layer, recorded as the command's correlation id.
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The command's name as a metric label: core's name in snake case (`record_purchase`).
fn command_name(command: &Command) -> String {
    snake_case(command.name())
}

fn snake_case(name: &str) -> String {
    let mut label = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            label.push('_');
        }
        label.push(c.to_ascii_lowercase());
    }
    label
}

#[cfg(test)]
#[test]
fn metric_labels_are_the_core_command_names_in_snake_case() {
    assert_eq!(snake_case("RecordPurchase"), "record_purchase");
    assert_eq!(snake_case("CreditReferralBonus"), "credit_referral_bonus");
    assert_eq!(snake_case("Enroll"), "enroll");
}

fn context(caller: &Caller, headers: &HeaderMap) -> CommandContext {
    let ctx = CommandContext::new().with_actor(caller.actor());
    match request_id(headers) {
        Some(id) => ctx.with_correlation_id(id),
        None => ctx,
    }
}

/// Counts the result of a command in the metrics and turns it into an answer.
fn settle(
    state: &AppState,
    name: &str,
    result: Result<CommandResult, EngineError>,
) -> Result<CommandResponse, ApiError> {
    match result {
        Ok(r) => {
            state
                .metrics
                .record_command(name, if r.replayed { "replayed" } else { "applied" });
            Ok(r.into())
        }
        Err(e) => {
            let problem = ApiError::from(e);
            state.metrics.record_command(name, problem.slug);
            Err(problem)
        }
    }
}

/// Runs a command for the caller.
async fn execute(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    command: Command,
) -> Result<CommandResponse, ApiError> {
    let name = command_name(&command);
    let result = state
        .engine
        .execute_with(command, context(caller, headers))
        .await;
    settle(state, &name, result)
}

/// Read-your-writes: waits (bounded by the engine) for the read models to reach `min`.
async fn wait_for(state: &AppState, min: Option<PositionText>) -> Result<(), ApiError> {
    if let Some(PositionText(position)) = min {
        state.engine.wait_for(position).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
