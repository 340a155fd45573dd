//! Auditors: the log itself (not the read models), statements and liability as of an instant.
use axum::Json;
use axum::extract::State;
use loyalty_core::MemberId;
use loyalty_store::Position;

use super::{ApiPath, ApiQuery, wait_for};
use crate::auth::{Allowed, Auditors, AuditorsAndSupport};
use crate::dto::{AsOfQuery, LogQuery, MemberEventsQuery, ReadQuery, page_size};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

#[utoipa::path(
    get,
    path = "/v1/log",
    tag = "audit",
    summary = "The event log from a position, paged",
    params(crate::dto::LogQuery),
    responses((status = 200, description = "OK", body = crate::wire::LogPage)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn log(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<crate::wire::LogPage>, ApiError> {
    let max = state.limits.log_page_max;
    let limit = page_size(query.limit, max.min(100), max)?;
    let after = query.after.map_or(Position::START, |p| p.0);
    let page = state.engine.log(after, limit).await?;
    Ok(Json(crate::wire::LogPage::from(&page)))
}

#[utoipa::path(
    get,
    path = "/v1/members/{member_id}/events",
    tag = "audit",
    summary = "One member's events from the log",
    params(("member_id" = crate::schema::Id, Path, description = "The member"), crate::dto::MemberEventsQuery),
    responses((status = 200, description = "OK", body = crate::wire::MemberEventsPage)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn member_events(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MemberEventsQuery>,
) -> Result<Json<crate::wire::MemberEventsPage>, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let max = state.limits.log_page_max;
    let limit = page_size(query.limit, max.min(100), max)?;
    let from_revision = query.from_revision.unwrap_or(0);
    // Revisions are stored as signed 64-bit integers (EventStoreDB's and SQL's): the
    // document states the same bound.
    if i64::try_from(from_revision).is_err() {
        return Err(ApiError::invalid(format!(
            "from_revision={from_revision} is beyond the largest stream revision"
        ))
        .with("max", i64::MAX));
    }
    let page = state
        .engine
        .member_events(&member, from_revision, limit)
        .await?;
    Ok(Json(crate::wire::MemberEventsPage::from(&page)))
}

#[utoipa::path(
    get,
    path = "/v1/members/{member_id}/as-of",
    tag = "audit",
    summary = "Balance and tier as of an instant, replayed from the log",
    params(("member_id" = crate::schema::Id, Path, description = "The member"), crate::dto::AsOfQuery),
    responses((status = 200, description = "OK", body = crate::wire::MemberAsOf)),
    security(("apiKey" = ["auditor", "support"])),
)]
pub async fn member_as_of(
    State(state): State<AppState>,
    _: Allowed<AuditorsAndSupport>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AsOfQuery>,
) -> Result<Json<crate::wire::MemberAsOf>, ApiError> {
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
    Ok(Json(crate::wire::MemberAsOf::from(&snapshot)))
}

/// `?as_of=INSTANT&lookback_days=N`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiabilityQuery {
    /// The instant of the report; now when absent.
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// How many days before `as_of` the breakage estimate looks back (default 365).
    #[param(minimum = 1, maximum = 3650)]
    pub lookback_days: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/liability",
    tag = "audit",
    summary = "Points liability now, or as of an instant",
    description = "The program's totals, the points outstanding by expiry bucket with their \
        value, and a breakage estimate: the share of the points settled over the lookback that \
        expired rather than were redeemed, applied to the owed points that have an expiry date. \
        Now (no `as_of`), or as of an instant at or after the last event recorded, it is \
        answered from the read models (`events_replayed` counts only the log read for the \
        lookback's first day); as of an earlier instant, replayed from the log. Both give the \
        same report.",
    params(LiabilityQuery),
    responses((status = 200, description = "OK", body = crate::wire::LiabilityReport)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn liability(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiQuery(query): ApiQuery<LiabilityQuery>,
) -> Result<Json<crate::wire::LiabilityReport>, ApiError> {
    let lookback = query
        .lookback_days
        .unwrap_or(loyalty_engine::DEFAULT_BREAKAGE_LOOKBACK_DAYS);
    let report = state.engine.liability_report(query.as_of, lookback).await?;
    Ok(Json(crate::wire::LiabilityReport::from(&report)))
}

#[utoipa::path(
    get,
    path = "/v1/totals",
    tag = "audit",
    summary = "Program totals from the read models: members, points outstanding, liability, breakage",
    params(crate::dto::ReadQuery),
    responses((status = 200, description = "OK", body = crate::wire::TotalsReport)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn totals(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<crate::wire::TotalsReport>, ApiError> {
    wait_for(&state, query.min_position).await?;
    let totals = state.engine.totals();
    Ok(Json(crate::wire::TotalsReport::new(
        state.engine.projection_position(),
        &totals,
    )))
}
