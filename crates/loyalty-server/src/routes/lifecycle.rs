//! Support: a member's account status. What each status allows is decided by the core
//! (`decide`): a suspended member earns and spends nothing (purchases, redemptions, activities
//! and win-backs are 409 `member-suspended`) while refunds, cancellations, adjustments, goodwill
//! and expiry still apply, so the ledger stays right; a closed account forfeits its balance and
//! takes nothing more but expiry (409 `member-closed`). Reads answer in every status.
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use loyalty_core::{Close, Command, MemberId, OperatorId, ReasonCode, Reinstate, Suspend};

use super::support::operator;
use super::{ApiJson, ApiPath, CommandResponse, execute};
use crate::auth::{Allowed, Support};
use crate::dto::AccountStatusRequest;
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

/// Suspends a member (fraud check, disputed activity): earning and spending stop until a
/// reinstatement. Suspending a suspended member changes nothing (`outcome: unchanged`).
#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/suspend",
    tag = "support",
    summary = "Suspend a member: no purchases, redemptions or activities until reinstated",
    description = "Refunds, cancellations, adjustments, goodwill and expiry still apply; reads answer. Suspending a suspended member changes nothing (`outcome: unchanged`).",
    request_body = crate::dto::AccountStatusRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Applied, or nothing to change", body = crate::wire::CommandResponse)),
    security(("apiKey" = ["support"])),
)]
pub async fn suspend(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Support>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountStatusRequest>,
) -> Result<CommandResponse, ApiError> {
    change_status(&state, &caller, &headers, &member_id, body, |c| {
        Command::Suspend(Suspend {
            member_id: c.member_id,
            reason_code: c.reason_code,
            operator: c.operator,
            occurred_at: c.occurred_at,
        })
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/reinstate",
    tag = "support",
    summary = "Reinstate a suspended member",
    description = "Reinstating a member who is not suspended changes nothing (`outcome: unchanged`); a closed account stays closed (409 `member-closed`).",
    request_body = crate::dto::AccountStatusRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Applied, or nothing to change", body = crate::wire::CommandResponse)),
    security(("apiKey" = ["support"])),
)]
pub async fn reinstate(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Support>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountStatusRequest>,
) -> Result<CommandResponse, ApiError> {
    change_status(&state, &caller, &headers, &member_id, body, |c| {
        Command::Reinstate(Reinstate {
            member_id: c.member_id,
            reason_code: c.reason_code,
            operator: c.operator,
            occurred_at: c.occurred_at,
        })
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/close",
    tag = "support",
    summary = "Close a member's account: the balance is forfeited, lot by lot",
    description = "Final: a closed account takes no command but expiry (409 `member-closed`); its history stays readable.",
    request_body = crate::dto::AccountStatusRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Closed (`forfeited` says how many points were lost)", body = crate::wire::CommandResponse)),
    security(("apiKey" = ["support"])),
)]
pub async fn close(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Support>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountStatusRequest>,
) -> Result<CommandResponse, ApiError> {
    change_status(&state, &caller, &headers, &member_id, body, |c| {
        Command::Close(Close {
            member_id: c.member_id,
            reason_code: c.reason_code,
            operator: c.operator,
            occurred_at: c.occurred_at,
        })
    })
    .await
}

/// What every status change carries, checked once.
struct StatusChange {
    member_id: MemberId,
    reason_code: ReasonCode,
    operator: OperatorId,
    occurred_at: DateTime<Utc>,
}

async fn change_status(
    state: &AppState,
    caller: &crate::auth::Caller,
    headers: &HeaderMap,
    member_id: &str,
    body: AccountStatusRequest,
    command: impl FnOnce(StatusChange) -> Command,
) -> Result<CommandResponse, ApiError> {
    let change = StatusChange {
        member_id: validate::id(MemberId::parse, member_id)?,
        reason_code: validate::id(ReasonCode::parse, &body.reason_code)?,
        operator: operator(caller, body.operator.as_deref())?,
        occurred_at: body.occurred_at,
    };
    execute(state, caller, headers, command(change)).await
}
