//! Member apps: enrolment, profile, history, rewards, redemptions.
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use loyalty_core::{
    CancelRedemption, Command, Enroll, MemberId, Points, Redeem, RedeemTarget, RedemptionId,
    RewardId,
};

use super::{ApiJson, ApiPath, ApiQuery, CommandResponse, execute, wait_for};
use crate::auth::{Allowed, Apps, AppsAndSupport, MemberReaders};
use crate::dto::{
    CancelRedemptionRequest, EnrollRequest, HistoryQuery, ReadQuery, RedeemRequest, page_size,
};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

#[utoipa::path(
    post,
    path = "/v1/members",
    tag = "members",
    summary = "Enroll a member",
    request_body = crate::dto::EnrollRequest,
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["app"])),
)]
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

#[utoipa::path(
    get,
    path = "/v1/members/{member_id}",
    tag = "members",
    summary = "Profile with balance and tier progress",
    params(("member_id" = crate::schema::Id, Path, description = "The member"), crate::dto::ReadQuery),
    responses((status = 200, description = "OK", body = crate::wire::MemberProfile)),
    security(("apiKey" = ["app", "support", "auditor"]), ("memberToken" = [])),
)]
pub async fn profile(
    State(state): State<AppState>,
    _: Allowed<MemberReaders>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<crate::wire::MemberProfile>, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    wait_for(&state, query.min_position).await?;
    let profile = state
        .engine
        .member_profile(&member)
        .ok_or_else(|| unknown_member(&state, &member))?;
    Ok(Json(crate::wire::MemberProfile::from(&profile)))
}

#[utoipa::path(
    get,
    path = "/v1/members/{member_id}/history",
    tag = "members",
    summary = "Statement lines, newest first, with cursor pagination",
    params(("member_id" = crate::schema::Id, Path, description = "The member"), crate::dto::HistoryQuery),
    responses((status = 200, description = "OK", body = crate::wire::HistoryPage)),
    security(("apiKey" = ["app", "support", "auditor"]), ("memberToken" = [])),
)]
pub async fn history(
    State(state): State<AppState>,
    _: Allowed<MemberReaders>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<crate::wire::HistoryPage>, ApiError> {
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
    Ok(Json(crate::wire::HistoryPage::from(&page)))
}

#[utoipa::path(
    get,
    path = "/v1/members/{member_id}/rewards",
    tag = "members",
    summary = "Rewards the member can redeem now",
    params(("member_id" = crate::schema::Id, Path, description = "The member"), crate::dto::ReadQuery),
    responses((status = 200, description = "OK", body = crate::wire::RewardsList)),
    security(("apiKey" = ["app", "support"]), ("memberToken" = [])),
)]
pub async fn rewards(
    State(state): State<AppState>,
    _: Allowed<AppsAndSupport>,
    ApiPath(member_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<crate::wire::RewardsList>, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    wait_for(&state, query.min_position).await?;
    if state.engine.member_profile(&member).is_none() {
        return Err(unknown_member(&state, &member));
    }
    let rewards = state.engine.redeemable_rewards(&member);
    Ok(Json(crate::wire::RewardsList::new(&member, &rewards)))
}

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/redemptions",
    tag = "members",
    summary = "Redeem a reward or points",
    description = "Points are drawn from the oldest spendable lots first; never more than the spendable balance (409 `insufficient-points`).",
    request_body = crate::dto::RedeemRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["app"]), ("memberToken" = [])),
)]
pub async fn redeem(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<crate::auth::AppsAndMembers>,
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

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/redemptions/{redemption_id}/cancel",
    tag = "members",
    summary = "Cancel a redemption (the points come back)",
    request_body = crate::dto::CancelRedemptionRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member"), ("redemption_id" = crate::schema::Id, Path, description = "The redemption")),
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["app", "support"]), ("memberToken" = [])),
)]
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
