//! Data rights: a member's data exported (access, portability) and their personal data erased
//! (by destroying the key their support notes are sealed with: the events and their points
//! stay, so balances and the log's hash chain do too).
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use loyalty_core::{MemberId, ReasonCode};

use super::support::operator;
use super::{ApiJson, ApiPath, context};
use crate::auth::{Allowed, Auditors, Support};
use crate::dto::ErasureRequest;
use crate::error::ApiError;
use crate::state::AppState;
use crate::validate;

/// The name the erasure is counted under in the command metrics.
const ERASE_MEMBER: &str = "erase_member";

#[utoipa::path(
    get,
    path = "/v1/members/{member_id}/export",
    tag = "audit",
    summary = "Everything held about a member, with their support notes opened",
    description = "The member's profile, every event of their stream as stored (oldest first) \
        with its support note opened (`{\"status\":\"present\",\"text\":...}`, or \
        `{\"status\":\"erased\"}` after an erasure), and the erasures recorded. Read from the \
        log. A member with more events than the server exports at once (100,000 by default) is \
        422 `limit-exceeded`.",
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "OK", body = crate::wire::privacy::MemberExport)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn export(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiPath(member_id): ApiPath<String>,
) -> Result<Json<crate::wire::privacy::MemberExport>, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let export = state.engine.export_member(&member).await?;
    Ok(Json(crate::wire::privacy::MemberExport::from(&export)))
}

#[utoipa::path(
    post,
    path = "/v1/members/{member_id}/erasure",
    tag = "support",
    summary = "Erase a member's personal data (their support notes), keeping the ledger",
    description = "Destroys the member's data keys, so every support note sealed with them can \
        never be read again, and records the erasure (reason, operator) in the log. Events, \
        points and balances stay, and so does the log's hash chain. Notes written before notes \
        were sealed (schema version 1) are not affected. Erasing again destroys nothing more \
        (`keys_destroyed: 0`) and answers 200; notes written after an erasure are sealed with \
        a new key.",
    request_body = crate::dto::ErasureRequest,
    params(("member_id" = crate::schema::Id, Path, description = "The member")),
    responses((status = 200, description = "Erased", body = crate::wire::privacy::ErasureReport)),
    security(("apiKey" = ["support"])),
)]
pub async fn erase(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Support>,
    headers: HeaderMap,
    ApiPath(member_id): ApiPath<String>,
    ApiJson(body): ApiJson<ErasureRequest>,
) -> Result<Json<crate::wire::privacy::ErasureReport>, ApiError> {
    let member = validate::id(MemberId::parse, &member_id)?;
    let reason_code = validate::id(ReasonCode::parse, &body.reason_code)?;
    let operator = operator(&caller, body.operator.as_deref())?;
    // Timed and counted like the commands, so that erasures show in the same metrics.
    let started = std::time::Instant::now();
    let result = state
        .engine
        .erase_member(&member, reason_code, operator, &context(&caller, &headers))
        .await;
    state
        .metrics
        .observe_command(ERASE_MEMBER, started.elapsed());
    match result {
        Ok(report) => {
            state.metrics.record_command(ERASE_MEMBER, "applied");
            Ok(Json(crate::wire::privacy::ErasureReport::from(&report)))
        }
        Err(e) => {
            let problem = ApiError::from(e);
            state.metrics.record_command(ERASE_MEMBER, problem.slug);
            Err(problem)
        }
    }
}
