//! Quotes: what a basket would earn before it is paid for, recorded nowhere.
use axum::Json;
use axum::extract::State;

use super::ApiJson;
use super::terminal::purchase_from_request;
use crate::auth::{Allowed, Terminals};
use crate::dto::PurchaseRequest;
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::PurchaseQuote;

#[utoipa::path(
    post,
    path = "/v1/purchases/quote",
    tag = "terminals",
    summary = "Quote a purchase: the points it would earn, recording nothing",
    description = "A dry run of `POST /v1/purchases` with the same body, roles and checks: the points the basket would earn now, per line and per rule, and the member's balance before and after it and tier progress after it. Nothing is appended or reserved. A quote does not look at idempotency: a transaction id already recorded is quoted as a new sale. A purchase the server would refuse is refused with the same problem (`occurred-at-outside-window`, `unknown-member`...).",
    request_body = crate::dto::PurchaseRequest,
    responses((status = 200, description = "What the purchase would do if recorded now; nothing was recorded", body = crate::wire::PurchaseQuote)),
    security(("apiKey" = ["terminal"])),
)]
pub async fn quote(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Terminals>,
    ApiJson(body): ApiJson<PurchaseRequest>,
) -> Result<Json<PurchaseQuote>, ApiError> {
    let purchase = purchase_from_request(&caller, &state.limits, body)?;
    let quote = state.engine.quote(purchase).await?;
    Ok(Json(PurchaseQuote::from(&quote)))
}
