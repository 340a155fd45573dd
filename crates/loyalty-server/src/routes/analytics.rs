//! Analysts: retention, cohorts, concentration, RFM, the purchase models, the backtest and the
//! members at risk, from the read models (never a scan of the log).
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use loyalty_analytics::PeriodKind;
use loyalty_core::MemberId;
use loyalty_engine::MAX_MEMBERS_PAGE;

use super::{ApiPath, ApiQuery};
use crate::auth::{Allowed, Analysts};
use crate::dto::{
    BacktestQuery, LimitQuery, MembersPageQuery, ModelQuery, PeriodsQuery, page_size,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

/// The periods asked for (by default the twelve months up to today).
fn periods(state: &AppState, query: &PeriodsQuery) -> (PeriodKind, NaiveDate, NaiveDate) {
    let kind = query.period.unwrap_or(PeriodKind::Month);
    let (from, to) = state.engine.period_span(kind, query.from, query.to);
    (kind, from, to)
}

pub async fn retention(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<PeriodsQuery>,
) -> Result<Response, ApiError> {
    let (kind, from, to) = periods(&state, &query);
    let report = state.engine.retention_report(kind, from, to).await?;
    Ok(Json(report).into_response())
}

pub async fn cohorts(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<PeriodsQuery>,
) -> Result<Response, ApiError> {
    let (kind, from, to) = periods(&state, &query);
    let report = state.engine.cohort_report(kind, from, to).await?;
    Ok(Json(report).into_response())
}

pub async fn concentration(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
) -> Result<Response, ApiError> {
    let report = state.engine.concentration_report().await?;
    Ok(Json(report).into_response())
}

pub async fn rfm(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<MembersPageQuery>,
) -> Result<Response, ApiError> {
    let limit = page_size(query.limit, 100, MAX_MEMBERS_PAGE)?;
    let page = state.engine.rfm_page(query.after, limit).await?;
    Ok(Json(page).into_response())
}

pub async fn model(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<ModelQuery>,
) -> Result<Response, ApiError> {
    let report = state.engine.model_report(query.calibration_end).await?;
    Ok(Json(report).into_response())
}

pub async fn backtest(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<BacktestQuery>,
) -> Result<Response, ApiError> {
    let report = state
        .engine
        .backtest_report(query.calibration_end, query.holdout_end)
        .await?;
    Ok(Json(report).into_response())
}

/// The at-risk list is ranked by value, not paged by member id: only its length is chosen.
pub async fn at_risk(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> Result<Response, ApiError> {
    let limit = page_size(query.limit, 100, MAX_MEMBERS_PAGE)?;
    let report = state.engine.at_risk_report(limit).await?;
    Ok(Json(report).into_response())
}

pub async fn member_value(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiPath(member_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let value = state.engine.member_value(&member).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-member",
            "Unknown member",
            format!("member {member} is unknown or has not bought yet"),
        )
        .with("member_id", member.as_str())
    })?;
    Ok(Json(value).into_response())
}
