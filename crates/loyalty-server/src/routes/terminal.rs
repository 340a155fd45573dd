//! Terminals: purchases, refunds, activities.
use axum::extract::State;
use axum::http::HeaderMap;
use loyalty_core::{
    ActivityId, ActivityKind, CategoryId, Command, Currency, MemberId, PurchaseLine,
    RecordActivity, RecordPurchase, RefundId, RefundLine, RefundScope, Sku, StoreId, TerminalId,
    TransactionId,
};
use loyalty_engine::RefundRequest as EngineRefund;

use super::{ApiJson, CommandResponse, context, execute, settle};
use crate::auth::{Allowed, Caller, Terminals, TerminalsAndApps};
use crate::dto::{ActivityRequest, PurchaseRequest, RefundRequest};
use crate::error::ApiError;
use crate::settings::LimitSettings;
use crate::state::AppState;
use crate::validate;

#[utoipa::path(
    post,
    path = "/v1/purchases",
    tag = "terminals",
    summary = "Record a purchase",
    description = "Points per line and per rule are decided and recorded with the purchase. A retry with the same store and transaction id answers the first outcome (`replayed: true`).",
    request_body = crate::dto::PurchaseRequest,
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["terminal"])),
)]
pub async fn record_purchase(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Terminals>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PurchaseRequest>,
) -> Result<CommandResponse, ApiError> {
    let purchase = purchase_from_request(&caller, &state.limits, body)?;
    execute(&state, &caller, &headers, Command::RecordPurchase(purchase)).await
}

/// The purchase a request describes, for the caller: the terminal's store binding first, then
/// the request's validation. Recording a purchase and quoting one (`quote.rs`) both go through
/// here, so that they accept and refuse exactly the same requests.
pub(super) fn purchase_from_request(
    caller: &Caller,
    limits: &LimitSettings,
    body: PurchaseRequest,
) -> Result<RecordPurchase, ApiError> {
    caller.require_store(&body.store)?;
    if body.lines.is_empty() {
        return Err(loyalty_core::DomainError::NoLines.into());
    }
    if body.lines.len() > limits.max_lines {
        return Err(ApiError::invalid(format!(
            "a purchase has at most {} lines",
            limits.max_lines
        ))
        .with("max", limits.max_lines));
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    for line in &body.lines {
        lines.push(PurchaseLine {
            sku: validate::id(Sku::parse, &line.sku)?,
            category: validate::id(CategoryId::parse, &line.category)?,
            quantity: validate::quantity(line.quantity)?,
            amount: validate::amount("amount", line.amount, limits)?,
        });
    }
    Ok(RecordPurchase {
        member_id: validate::id(MemberId::parse, &body.member_id)?,
        transaction_id: validate::id(TransactionId::parse, &body.transaction_id)?,
        store: validate::id(StoreId::parse, &body.store)?,
        terminal: validate::id(TerminalId::parse, &body.terminal)?,
        occurred_at: body.occurred_at,
        currency: Currency::parse(body.currency)?,
        lines,
    })
}

#[utoipa::path(
    post,
    path = "/v1/refunds",
    tag = "terminals",
    summary = "Refund (part of) a purchase, by store and transaction id",
    description = "The points the refunded lines earned are taken back; a refund larger than what remains is 409.",
    request_body = crate::dto::RefundRequest,
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["terminal"])),
)]
pub async fn refund(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Terminals>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefundRequest>,
) -> Result<CommandResponse, ApiError> {
    caller.require_store(&body.store)?;
    let store = validate::id(StoreId::parse, &body.store)?;
    let purchase_store = match body.purchase_store.as_deref() {
        Some(s) => validate::id(StoreId::parse, s)?,
        None => store.clone(),
    };
    let limits = &state.limits;
    let scope = match (body.amount, body.lines) {
        (Some(amount), None) => RefundScope::Amount(validate::amount("amount", amount, limits)?),
        (None, Some(lines)) if !lines.is_empty() && lines.len() <= limits.max_lines => {
            let mut refund_lines = Vec::with_capacity(lines.len());
            for l in lines {
                refund_lines.push(RefundLine {
                    line: l.line,
                    amount: validate::amount("amount", l.amount, limits)?,
                });
            }
            RefundScope::Lines(refund_lines)
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "give either amount or lines (1 to {} of them), not both",
                limits.max_lines
            )));
        }
    };
    let refund = EngineRefund {
        refund_id: validate::id(RefundId::parse, &body.refund_id)?,
        store,
        purchase_store,
        transaction_id: validate::id(TransactionId::parse, &body.transaction_id)?,
        occurred_at: body.occurred_at,
        currency: Currency::parse(body.currency)?,
        scope,
    };
    let run = state
        .engine
        .refund_by_transaction_with(refund, context(&caller, &headers));
    settle(&state, "refund", run).await
}

#[utoipa::path(
    post,
    path = "/v1/activities",
    tag = "terminals",
    summary = "Record a non-purchase activity (a survey, a review...)",
    description = "Earns the points the program gives for its kind.",
    request_body = crate::dto::ActivityRequest,
    responses((status = 200, description = "Applied, or the first outcome of a retried request (`replayed: true`, header `Idempotent-Replayed: true`)", body = super::CommandResponse)),
    security(("apiKey" = ["terminal", "app"]), ("memberToken" = [])),
)]
pub async fn record_activity(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<TerminalsAndApps>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ActivityRequest>,
) -> Result<CommandResponse, ApiError> {
    let member_id = validate::id(MemberId::parse, &body.member_id)?;
    // A member token records activities for its own member only.
    caller.require_member(&member_id)?;
    let command = Command::RecordActivity(RecordActivity {
        member_id,
        activity_id: validate::id(ActivityId::parse, &body.activity_id)?,
        kind: validate::id(ActivityKind::parse, &body.kind)?,
        occurred_at: body.occurred_at,
    });
    execute(&state, &caller, &headers, command).await
}
