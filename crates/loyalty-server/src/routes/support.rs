//! Support: adjustments and goodwill, each with a reason auditors can read.
use axum::extract::State;
use axum::http::HeaderMap;
use loyalty_core::{
    Adjust, AdjustmentId, Command, ComplaintId, Goodwill, MemberId, OperatorId, Points, ReasonCode,
};

use super::{ApiJson, ApiPath, CommandResponse, execute};
use crate::auth::{Allowed, Caller, Support};
use crate::dto::{AdjustRequest, GoodwillRequest};
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

/// The operator recorded: the one named in the body, or the key's name.
pub(super) fn operator(caller: &Caller, named: Option<&str>) -> Result<OperatorId, ApiError> {
    validate::id(OperatorId::parse, named.unwrap_or(&caller.name))
}

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/adjustments",
    tag = "support",
    summary = "Adjust points (positive or negative) with a reason code",
    request_body = crate::dto::AdjustRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["support"])),
)]
pub async fn adjust(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Support>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<AdjustRequest>,
) -> Result<CommandResponse, ApiError> {
    let points = validate::manual_points(body.points, false, &state.limits)?;
    let command = Command::Adjust(Adjust {
        member_id: validate::id(MemberId::parse, &member_id)?,
        adjustment_id: validate::id(AdjustmentId::parse, &body.adjustment_id)?,
        points: Points::new(points),
        reason_code: validate::id(ReasonCode::parse, &body.reason_code)?,
        note: body.note,
        operator: operator(&caller, body.operator.as_deref())?,
        occurred_at: body.occurred_at,
    });
    execute(&state, &caller, &headers, command).await
}

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/goodwill",
    tag = "support",
    summary = "Grant goodwill points for an upheld complaint",
    request_body = crate::dto::GoodwillRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["support"])),
)]
pub async fn goodwill(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Support>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<GoodwillRequest>,
) -> Result<CommandResponse, ApiError> {
    let points = validate::manual_points(body.points, true, &state.limits)?;
    if body.note.trim().is_empty() {
        return Err(ApiError::invalid("goodwill needs a note saying why"));
    }
    let command = Command::Goodwill(Goodwill {
        member_id: validate::id(MemberId::parse, &member_id)?,
        complaint_id: validate::id(ComplaintId::parse, &body.complaint_id)?,
        points: Points::new(points),
        reason_code: validate::id(ReasonCode::parse, &body.reason_code)?,
        note: body.note,
        operator: operator(&caller, body.operator.as_deref())?,
        occurred_at: body.occurred_at,
    });
    execute(&state, &caller, &headers, command).await
}
