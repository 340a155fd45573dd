//! Member tokens: a retailer's back-end (role `issuer`, or an admin) obtains a short-lived token
//! for one member, which the member's app then presents instead of an API key.
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use loyalty_core::MemberId;

use super::ApiJson;
use crate::auth::{Allowed, HasClock, Issuers};
use crate::error::ApiError;
use crate::state::AppState;
use crate::token::{TokenError, TokenRequest, TokenResponse};
use crate::validate;

/// `POST /v1/tokens`: a member token for `member_id`, valid `ttl_secs` (at most
/// `tokens.max_ttl_secs`, the default) from the server's clock. Not cached by anyone.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    summary = "Obtain a member token",
    description = "A short-lived signed token (JWT, HS256, `kid` header) for one member, for a \
        retailer's back-end (role `issuer`) to hand to that member's app. The app presents it as \
        `Authorization: Bearer <token>`: it may then read and write that member's own profile, \
        history, rewards, redemptions and activities, and nothing else (403, also for another \
        member). It expires at `expires_at` (the server's clock); `ttl_secs` above \
        `tokens.max_ttl_secs` is 422. 404 when member tokens are not configured.",
    request_body = crate::token::TokenRequest,
    responses((status = 200, description = "A member token (`Cache-Control: no-store`)", body = crate::token::TokenResponse)),
    security(("apiKey" = ["issuer"])),
)]
pub async fn issue(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Issuers>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    let tokens = state.keys.tokens().ok_or_else(|| {
        ApiError::not_found("member tokens are not enabled on this server ([[tokens.keys]])")
    })?;
    let member = validate::id(MemberId::parse, &body.member_id)?;
    let issued = tokens
        .issue(&member, &caller.name, body.ttl_secs, state.now())
        .map_err(|e| match e {
            TokenError::Ttl { max, .. } => {
                ApiError::invalid(format!("the token was not issued: {e}")).with("max", max)
            }
            e => ApiError::internal(format!("the token was not issued: {e}")),
        })?;
    let mut response = Json(TokenResponse {
        token: issued.token,
        token_type: "Bearer".to_owned(),
        expires_at: issued.expires_at,
        member_id: member.to_string(),
        key_id: issued.key_id,
    })
    .into_response();
    // A credential: no cache may keep it (RFC 6749 §5.1).
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
