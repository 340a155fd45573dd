//! Operations: health, readiness, metrics, the API document, scheduled work on demand.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use loyalty_engine::ImportRow;

use super::ApiJson;
use crate::auth::{Admins, Allowed};
use crate::dto::{ImportRequest, PositionText, SchedulerRunRequest};
use crate::error::ApiError;
use crate::import::to_command;
use crate::state::AppState;

/// The process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "The process is up",
    responses((status = 200, description = "OK", body = crate::wire::Health)),
    security(()),
)]
pub async fn healthz() -> Response {
    Json(crate::wire::Health::OK).into_response()
}

/// Longest the readiness probe waits for the store to answer.
const STORE_PROBE: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready to serve: the store answers and takes writes, and the read models caught up with the
/// log.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "The store is ready and the read models caught up",
    responses((status = 200, description = "OK", body = crate::wire::Readiness)),
    security(()),
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let position = PositionText(state.engine.projection_position());
    let store = tokio::time::timeout(STORE_PROBE, state.engine.store().head_position()).await;
    match store {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return ApiError::unavailable(format!("the event store is not ready: {e}"))
                .into_response();
        }
        Err(_) => {
            return ApiError::unavailable("the event store did not answer in time").into_response();
        }
    }
    // Ready means able to take writes: a store out of space answers every write 503, so the
    // server says so until a write (or the engine's probe) goes through again.
    if let Some(failure) = state.engine.write_failure() {
        return ApiError::unavailable(format!("the event store refuses writes: {failure}"))
            .with("retryable", true)
            .retry_after(5)
            .into_response();
    }
    if state.engine.is_caught_up() {
        Json(crate::wire::Readiness::ready(position.0)).into_response()
    } else if let Some(newer) = state.engine.newer_schema_event() {
        // Not a wait that ends by itself: the operator upgrades this server.
        ApiError::unavailable(format!("the read models stopped: {newer}")).into_response()
    } else {
        ApiError::unavailable("the read models are still catching up with the log")
            .with(
                "position",
                serde_json::to_value(position).unwrap_or_default(),
            )
            .into_response()
    }
}

/// `/metrics` on the main listener: to admin keys, or nowhere when `server.metrics_listen`
/// serves it on a listener of its own (404 here, whoever asks).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "To admin keys; not served here when `server.metrics_listen` serves it on a listener of its own (without a key).",
    responses((status = 200, description = "The metrics in the Prometheus text format", body = String, content_type = "text/plain")),
    security(("apiKey" = [])),
)]
pub async fn metrics(
    State(state): State<AppState>,
    exposure: Option<axum::Extension<crate::MetricsExposure>>,
    caller: Result<Allowed<Admins>, ApiError>,
) -> Response {
    if let Some(axum::Extension(crate::MetricsExposure::SeparateListener)) = exposure {
        return ApiError::from_status(StatusCode::NOT_FOUND).into_response();
    }
    if let Err(problem) = caller {
        return problem.into_response();
    }
    crate::metrics::exposition(&state)
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "OK", body = serde_json::Value)),
    security(()),
)]
pub async fn openapi(State(state): State<AppState>) -> Response {
    Json(crate::openapi::document(&state)).into_response()
}

/// Runs expiry and tier reviews now (as of the server clock, or an earlier time given; never a
/// later one: the server's clock decides what is due). Safe to run twice: every command it sends
/// is keyed, so a second run changes nothing already done.
#[utoipa::path(
    post,
    path = "/v1/admin/scheduler/run",
    tag = "operations",
    summary = "Run expiry and tier reviews now",
    description = "As of the server's clock, or an earlier `now`; a later one is 422 `scheduled-time-ahead`.",
    request_body = crate::dto::SchedulerRunRequest,
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = crate::wire::SchedulerRun)),
    security(("apiKey" = ["admin"])),
)]
pub async fn run_scheduler(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiJson(body): ApiJson<SchedulerRunRequest>,
) -> Result<Response, ApiError> {
    let now = body.now.unwrap_or_else(|| state.engine.clock().now());
    let report = state.engine.run_scheduled(now).await?;
    // The head after the run: pass it as `min_position` to read what the run changed.
    let position = state
        .engine
        .store()
        .head_position()
        .await
        .map_err(loyalty_engine::EngineError::from)?;
    Ok(Json(crate::wire::SchedulerRun::new(now, position, &report)).into_response())
}

/// Most rows one HTTP import batch takes (the body limit applies too); larger histories go
/// through `loyalty import`.
pub const MAX_HTTP_IMPORT_ROWS: usize = 10_000;

/// `POST /v1/admin/import`: a batch of historical rows, all or none (see `loyalty import`).
#[utoipa::path(
    post,
    path = "/v1/admin/import",
    tag = "operations",
    summary = "Import a batch of a legacy program's history",
    description = "Members, purchases, refunds and opening balances with their real dates: all rows or none (422 `import-refused` lists each refused row), idempotent per row; at most 10,000 rows and limits.body_bytes.",
    request_body = crate::dto::ImportRequest,
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = crate::wire::ImportReport)),
    security(("apiKey" = ["admin"])),
)]
pub async fn import(
    State(state): State<AppState>,
    _: Allowed<Admins>,
    ApiJson(request): ApiJson<ImportRequest>,
) -> Result<Response, ApiError> {
    if request.rows.is_empty() || request.rows.len() > MAX_HTTP_IMPORT_ROWS {
        return Err(ApiError::invalid(format!(
            "an import batch holds 1 to {MAX_HTTP_IMPORT_ROWS} rows, not {}",
            request.rows.len()
        ))
        .with("max", MAX_HTTP_IMPORT_ROWS));
    }
    crate::validate::id(loyalty_core::AdjustmentId::parse, &request.batch_id)?;
    let program = state.engine.program();
    let (tz, currency) = (program.timezone(), program.currency().clone());
    let mut rows = Vec::with_capacity(request.rows.len());
    let mut refused = Vec::new();
    for (i, row) in request.rows.iter().enumerate() {
        // Rows are numbered from 1, as lines of a file would be.
        let line = i as u64 + 1;
        match to_command(row, request.points, tz, &currency) {
            Ok((command, award)) => rows.push(ImportRow {
                line,
                command,
                award,
            }),
            Err(reason) => refused.push(json!({
                "line": line, "member_id": row.member_id, "reason": reason
            })),
        }
    }
    if !refused.is_empty() {
        return Err(import_refused(refused.len(), refused));
    }
    let report = state
        .engine
        .import(&request.batch_id, rows, |_, _| {})
        .await?;
    if !report.applied() {
        let errors = serde_json::to_value(&report.errors).unwrap_or_default();
        let total = usize::try_from(report.errors_total).unwrap_or(usize::MAX);
        return Err(import_refused(total, errors));
    }
    Ok(Json(crate::wire::ImportReport::from(&report)).into_response())
}

fn import_refused(count: usize, rows: impl Into<serde_json::Value>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "import-refused",
        "Import refused",
        format!("{count} row(s) refused: nothing was imported"),
    )
    .with("rows", rows)
}
