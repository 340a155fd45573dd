//! Analysts: retention, cohorts, concentration, RFM, the purchase models, the backtest and the
//! members at risk, from the read models (never a scan of the log).
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use loyalty_analytics::PeriodKind;
use loyalty_core::MemberId;
use loyalty_engine::MAX_MEMBERS_PAGE;

use super::{ApiPath, ApiQuery};
use crate::auth::{Allowed, Analysts};
use crate::dto::{
    BacktestQuery, LimitQuery, MAX_HOLDOUT_DAYS, MembersPageQuery, ModelQuery, PeriodsQuery,
    page_size,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

/// The first and last days the document's `date` format can write (four-digit years).
const FIRST_DATE: NaiveDate = NaiveDate::from_ymd_opt(0, 1, 1).expect("0000-01-01 is a date");
const LAST_DATE: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("9999-12-31 is a date");

/// A date the document's `date` format can write, or 422: chrono also reads signed and longer
/// years, which no answer may then carry.
fn document_date(name: &str, date: NaiveDate) -> Result<(), ApiError> {
    if (FIRST_DATE..=LAST_DATE).contains(&date) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{name}={date} is not a date between {FIRST_DATE} and {LAST_DATE}"
        )))
    }
}

/// The periods asked for (by default the twelve months up to today).
fn periods(
    state: &AppState,
    query: &PeriodsQuery,
) -> Result<(PeriodKind, NaiveDate, NaiveDate), ApiError> {
    let kind = query.period.unwrap_or(PeriodKind::Month);
    if let Some(n) = query.periods {
        let max = u32::try_from(loyalty_engine::MAX_PERIODS).unwrap_or(u32::MAX);
        if n == 0 || n > max {
            return Err(
                ApiError::invalid(format!("periods={n} is not between 1 and {max}"))
                    .with("max", max),
            );
        }
    }
    // A day the document's `date` format (a four-digit year) cannot write is refused, and no
    // period starts before the first day it can: 70 years ending in the year 24 are the
    // periods from the year 0 (the contract run was answered periods of the year -45).
    if let Some(to) = query.to {
        document_date("to", to)?;
    }
    // `periods` periods ending with the one holding `to`: the span can never exceed the limit
    // or end before it starts, so the document's bounds are the only ones.
    let from = query.periods.map(|n| {
        let to = query.to.unwrap_or_else(|| state.engine.today());
        to.checked_sub_months(chrono::Months::new(kind.months() * (n.max(1) - 1)))
            .unwrap_or(FIRST_DATE)
            .max(FIRST_DATE)
    });
    let (from, to) = state.engine.period_span(kind, from, query.to);
    Ok((kind, from, to))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/retention",
    tag = "analytics",
    summary = "Retention, churn and revenue at risk per period",
    description = "Customers at the start (S) and end (E), new customers (N), retention (E - N) / S, churn, S x average yearly spend x churn. Only periods that are over.",
    params(crate::dto::PeriodsQuery),
    responses((status = 200, description = "OK", body = crate::wire::RetentionReport)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn retention(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<PeriodsQuery>,
) -> Result<Json<crate::wire::RetentionReport>, ApiError> {
    let (kind, from, to) = periods(&state, &query)?;
    let report = state.engine.retention_report(kind, from, to).await?;
    Ok(Json(crate::wire::RetentionReport::from(&report)))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/cohorts",
    tag = "analytics",
    summary = "Enrollment cohorts and the share of each that bought in every period after it",
    params(crate::dto::PeriodsQuery),
    responses((status = 200, description = "OK", body = crate::wire::CohortReport)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn cohorts(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<PeriodsQuery>,
) -> Result<Json<crate::wire::CohortReport>, ApiError> {
    let (kind, from, to) = periods(&state, &query)?;
    let report = state.engine.cohort_report(kind, from, to).await?;
    Ok(Json(crate::wire::CohortReport::from(&report)))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/concentration",
    tag = "analytics",
    summary = "Share of net spend (refunds deducted) from the top 1, 5, 10, 20 and 50% of members",
    responses((status = 200, description = "OK", body = crate::wire::ConcentrationReport)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn concentration(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
) -> Result<Json<crate::wire::ConcentrationReport>, ApiError> {
    let report = state.engine.concentration_report().await?;
    Ok(Json(crate::wire::ConcentrationReport::from(&report)))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/rfm",
    tag = "analytics",
    summary = "Recency, frequency and monetary quintile scores (1 to 5) per member, by member id",
    params(crate::dto::MembersPageQuery),
    responses((status = 200, description = "OK", body = crate::wire::RfmPage)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn rfm(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<MembersPageQuery>,
) -> Result<Json<crate::wire::RfmPage>, ApiError> {
    let limit = page_size(query.limit, 100, MAX_MEMBERS_PAGE)?;
    if let Some(after) = query.after.as_deref() {
        validate::id(MemberId::parse, after)?;
    }
    let page = state.engine.rfm_page(query.after, limit).await?;
    Ok(Json(crate::wire::RfmPage::from(&page)))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/model",
    tag = "analytics",
    summary = "The BG/NBD and Gamma-Gamma models fitted by maximum likelihood",
    description = "Fitted on every member's purchase days up to calibration_end (yesterday by default), in the program's time unit.",
    params(crate::dto::ModelQuery),
    responses((status = 200, description = "OK", body = crate::wire::ModelReport)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn model(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<ModelQuery>,
) -> Result<Json<crate::wire::ModelReport>, ApiError> {
    if let Some(end) = query.calibration_end {
        document_date("calibration_end", end)?;
    }
    let report = state.engine.model_report(query.calibration_end).await?;
    Ok(Json(crate::wire::ModelReport::from(&report)))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/backtest",
    tag = "analytics",
    summary = "Predicted against actual purchase days over a holdout period",
    description = "Fit on the history up to calibration_end, predict each member's purchase days over the holdout_days after it (up to today by default), and compare with what happened, in total and by calibration frequency. A holdout that is not over is 409 `holdout-not-over`.",
    params(crate::dto::BacktestQuery),
    responses((status = 200, description = "OK", body = crate::wire::BacktestReport)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn backtest(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<BacktestQuery>,
) -> Result<Json<crate::wire::BacktestReport>, ApiError> {
    document_date("calibration_end", query.calibration_end)?;
    if let Some(days) = query.holdout_days
        && !(1..=MAX_HOLDOUT_DAYS).contains(&days)
    {
        return Err(ApiError::invalid(format!(
            "holdout_days={days} is not between 1 and {MAX_HOLDOUT_DAYS}"
        ))
        .with("max", MAX_HOLDOUT_DAYS));
    }
    let today = state.engine.today();
    let holdout_end = match query.holdout_days {
        Some(days) => query
            .calibration_end
            .checked_add_days(chrono::Days::new(u64::from(days)))
            .unwrap_or(NaiveDate::MAX),
        None => today,
    };
    if holdout_end > today || holdout_end <= query.calibration_end {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "holdout-not-over",
            "The holdout period is not over",
            format!(
                "the holdout from {} to {holdout_end} is not over: today is {today}",
                query.calibration_end
            ),
        )
        .with("today", today.to_string()));
    }
    let report = state
        .engine
        .backtest_report(query.calibration_end, Some(holdout_end))
        .await?;
    Ok(Json(crate::wire::BacktestReport::from(&report)))
}

/// The at-risk list is ranked by value, not paged by member id: only its length is chosen.
#[utoipa::path(
    get,
    path = "/v1/analytics/at-risk",
    tag = "analytics",
    summary = "Members at risk, ranked by value at risk",
    description = "Members whose probability of being alive is below the program's at_risk_below, ranked by (1 - P(alive)) x their value over the horizon if alive.",
    params(crate::dto::LimitQuery),
    responses((status = 200, description = "OK", body = crate::wire::AtRiskReport)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn at_risk(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> Result<Json<crate::wire::AtRiskReport>, ApiError> {
    let limit = page_size(query.limit, 100, MAX_MEMBERS_PAGE)?;
    let report = state.engine.at_risk_report(limit).await?;
    Ok(Json(crate::wire::AtRiskReport::from(&report)))
}

#[utoipa::path(
    get,
    path = "/v1/analytics/members/{member_id}",
    tag = "analytics",
    summary = "One member's outlook: P(alive), expected purchase days and lifetime value over the program's horizon",
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "OK", body = crate::wire::MemberValue)),
    security(("apiKey" = ["analyst"])),
)]
pub async fn member_value(
    State(state): State<AppState>,
    _: Allowed<Analysts>,
    ApiPath(member_id): ApiPath<String>,
) -> Result<Json<crate::wire::MemberValue>, ApiError> {
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
    Ok(Json(crate::wire::MemberValue::from(&value)))
}
