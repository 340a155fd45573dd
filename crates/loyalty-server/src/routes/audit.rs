//! Auditors: the log itself (not the read models), statements and liability as of an instant.
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use loyalty_core::MemberId;
use loyalty_store::Position;
use serde_json::json;

use super::{ApiPath, ApiQuery, wait_for};
use crate::auth::{Allowed, Auditors, AuditorsAndSupport};
use crate::dto::{AsOfQuery, LogQuery, MemberEventsQuery, ReadQuery, page_size};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

pub async fn log(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let max = state.limits.log_page_max;
    let limit = page_size(query.limit, max.min(100), max)?;
    let after = query.after.map_or(Position::START, |p| p.0);
    let page = state.engine.log(after, limit).await?;
    Ok(Json(page).into_response())
}

pub async fn member_events(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MemberEventsQuery>,
) -> Result<Response, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let max = state.limits.log_page_max;
    let limit = page_size(query.limit, max.min(100), max)?;
    let page = state
        .engine
        .member_events(&member, query.from_revision.unwrap_or(0), limit)
        .await?;
    Ok(Json(page).into_response())
}

pub async fn member_as_of(
    State(state): State<AppState>,
    _: Allowed<AuditorsAndSupport>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AsOfQuery>,
) -> Result<Response, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let snapshot = state
        .engine
        .member_as_of(&member, query.as_of)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown-member",
                "Unknown member",
                format!("member {member} did not exist at {}", query.as_of),
            )
            .with("member_id", member.as_str())
        })?;
    Ok(Json(snapshot).into_response())
}

pub async fn liability(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiQuery(query): ApiQuery<AsOfQuery>,
) -> Result<Response, ApiError> {
    let report = state.engine.liability_as_of(query.as_of).await?;
    Ok(Json(report).into_response())
}

pub async fn totals(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    wait_for(&state, query.min_position).await?;
    let totals = state.engine.totals();
    Ok(Json(json!({
        "position": crate::dto::PositionText(state.engine.projection_position()),
        "totals": totals,
    }))
    .into_response())
}
