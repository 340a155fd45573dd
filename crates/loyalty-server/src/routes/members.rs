//! Member apps: enrolment, profile, history, rewards, redemptions.
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use loyalty_core::{
    CancelRedemption, Command, Enroll, MemberId, Points, Redeem, RedeemTarget, RedemptionId,
    RewardId,
};
use serde_json::json;

use super::{ApiJson, ApiPath, ApiQuery, CommandResponse, execute, wait_for};
use crate::auth::{Allowed, Apps, AppsAndSupport, MemberReaders};
use crate::dto::{
    CancelRedemptionRequest, EnrollRequest, HistoryQuery, ReadQuery, RedeemRequest, page_size,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

pub async fn enroll(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Apps>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<CommandResponse, ApiError> {
    let referrer = match body.referrer.as_deref() {
        Some(r) => Some(validate::id(MemberId::parse, r)?),
        None => None,
    };
    let command = Command::Enroll(Enroll {
        member_id: validate::id(MemberId::parse, &body.member_id)?,
        referrer,
        occurred_at: body.occurred_at,
    });
    execute(&state, &caller, &headers, command).await
}

/// A member the read models do not hold: unknown once they caught up with the log; while they
/// are still catching up (just after a start), maybe not read yet, so retry.
fn unknown_member(state: &AppState, member: &MemberId) -> ApiError {
    if !state.engine.is_caught_up() {
        return ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not-caught-up",
            "Read models not caught up",
            "the read models are still catching up with the log; this member may not be read yet",
        )
        .with("retryable", true)
        .retry_after(1);
    }
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown-member",
        "Unknown member",
        format!("no member {member}"),
    )
    .with("member_id", member.as_str())
}

pub async fn profile(
    State(state): State<AppState>,
    _: Allowed<MemberReaders>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    wait_for(&state, query.min_position).await?;
    let profile = state
        .engine
        .member_profile(&member)
        .ok_or_else(|| unknown_member(&state, &member))?;
    Ok(Json(profile).into_response())
}

pub async fn history(
    State(state): State<AppState>,
    _: Allowed<MemberReaders>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let max = state.limits.history_page_max;
    let limit = page_size(query.limit, max.min(20), max)?;
    let cursor = match query.cursor.as_deref() {
        Some(c) => Some(
            c.parse::<u64>()
                .map(loyalty_engine::HistoryCursor)
                .map_err(|_| ApiError::invalid(format!("{c:?} is not a history cursor")))?,
        ),
        None => None,
    };
    wait_for(&state, query.min_position).await?;
    if state.engine.member_profile(&member).is_none() {
        return Err(unknown_member(&state, &member));
    }
    let page = state.engine.history(&member, cursor, limit).await?;
    Ok(Json(page).into_response())
}

pub async fn rewards(
    State(state): State<AppState>,
    _: Allowed<AppsAndSupport>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    wait_for(&state, query.min_position).await?;
    if state.engine.member_profile(&member).is_none() {
        return Err(unknown_member(&state, &member));
    }
    let rewards = state.engine.redeemable_rewards(&member);
    Ok(Json(json!({ "member_id": member, "rewards": rewards })).into_response())
}

pub async fn redeem(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Apps>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<RedeemRequest>,
) -> Result<CommandResponse, ApiError> {
    let target = match (body.reward_id.as_deref(), body.points) {
        (Some(reward), None) => RedeemTarget::Reward(validate::id(RewardId::parse, reward)?),
        (None, Some(points)) if points > 0 => RedeemTarget::Points(Points::new(points)),
        (None, Some(_)) => return Err(loyalty_core::DomainError::PointsNotPositive.into()),
        _ => {
            return Err(ApiError::invalid(
                "give either reward_id or points, not both",
            ));
        }
    };
    let command = Command::Redeem(Redeem {
        member_id: validate::id(MemberId::parse, &member_id)?,
        redemption_id: validate::id(RedemptionId::parse, &body.redemption_id)?,
        occurred_at: body.occurred_at,
        target,
    });
    execute(&state, &caller, &headers, command).await
}

pub async fn cancel_redemption(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<AppsAndSupport>,
    headers: HeaderMap,
    ApiPath((member_id, redemption_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CancelRedemptionRequest>,
) -> Result<CommandResponse, ApiError> {
    let command = Command::CancelRedemption(CancelRedemption {
        member_id: validate::id(MemberId::parse, &member_id)?,
        redemption_id: validate::id(RedemptionId::parse, &redemption_id)?,
        occurred_at: body.occurred_at,
    });
    execute(&state, &caller, &headers, command).await
}
