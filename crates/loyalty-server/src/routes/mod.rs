//! The routes of `/v1` and the operations endpoints, and what every handler shares: extractors
//! that turn rejections into problems, running a command, waiting for `min_position`.
mod analytics;
mod audit;
mod lifecycle;
mod members;
mod ops;
mod privacy;
mod programs;
mod quote;
mod support;
mod terminal;
mod tiers;
mod tokens;
mod webhooks;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use loyalty_core::Command;
use loyalty_engine::{CommandContext, CommandResult, EngineError};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::dto::PositionText;
use crate::error::ApiError;
use crate::state::AppState;

/// Header set on the answer to a replayed command.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Every route, without their documentation, and the dashboard's page and assets beside them
/// (public files, not JSON operations: the document does not list them, so they are merged
/// here rather than registered in [`api`]).
pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0.merge(crate::dashboard::router())
}

/// Every route, each registered with its OpenAPI operation (`#[utoipa::path]` on the handler):
/// what is routed is what is documented, and the other way round.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(terminal::record_purchase))
        .routes(routes!(quote::quote))
        .routes(routes!(terminal::refund))
        .routes(routes!(terminal::record_activity))
        .routes(routes!(members::enroll))
        .routes(routes!(members::profile))
        .routes(routes!(members::history))
        .routes(routes!(members::rewards))
        .routes(routes!(members::redeem))
        .routes(routes!(members::cancel_redemption))
        .routes(routes!(tokens::issue))
        .routes(routes!(support::adjust))
        .routes(routes!(support::goodwill))
        .routes(routes!(lifecycle::suspend))
        .routes(routes!(lifecycle::reinstate))
        .routes(routes!(lifecycle::close))
        .routes(routes!(audit::member_events))
        .routes(routes!(audit::member_as_of))
        .routes(routes!(audit::log))
        .routes(routes!(audit::liability))
        .routes(routes!(audit::totals))
        .routes(routes!(privacy::export))
        .routes(routes!(privacy::erase))
        .routes(routes!(programs::history))
        .routes(routes!(programs::show))
        .routes(routes!(analytics::retention))
        .routes(routes!(analytics::cohorts))
        .routes(routes!(analytics::concentration))
        .routes(routes!(analytics::rfm))
        .routes(routes!(analytics::model))
        .routes(routes!(analytics::backtest))
        .routes(routes!(analytics::at_risk))
        .routes(routes!(analytics::member_value))
        .routes(routes!(tiers::tiers))
        .routes(routes!(ops::import))
        .routes(routes!(ops::run_scheduler))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
        .routes(routes!(
            webhooks::get_endpoint,
            webhooks::update_endpoint,
            webhooks::delete_endpoint
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::pause_endpoint))
        .routes(routes!(webhooks::resume_endpoint))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::event_types_list))
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
        let Json(ObjectOnly(value)) = Json::<ObjectOnly<T>>::from_request(req, state)
            .await
            .map_err(|e: JsonRejection| ApiError::from(e))?;
        Ok(ApiJson(value))
    }
}

/// A request body that must be a JSON object. serde's derived structs also take a JSON array
/// of their fields in order (and, when every field has a default, `[]`): a request shape the
/// document does not allow, which the contract run caught (`POST /v1/admin/scheduler/run`
/// with `[]` answered 200). The object is read straight into `T`: no intermediate value.
struct ObjectOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(Object(std::marker::PhantomData))
            .map(ObjectOnly)
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

pub use crate::wire::CommandResponse;

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

/// Runs a command's engine call, times it and counts its result in the metrics, and turns it
/// into an answer: every command handler goes through here, so none is left out of the
/// latency histogram or the counters.
async fn settle(
    state: &AppState,
    name: &str,
    run: impl Future<Output = Result<CommandResult, EngineError>>,
) -> Result<CommandResponse, ApiError> {
    let started = std::time::Instant::now();
    let result = run.await;
    state.metrics.observe_command(name, started.elapsed());
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
    let run = state.engine.execute_with(command, context(caller, headers));
    settle(state, &name, run).await
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
