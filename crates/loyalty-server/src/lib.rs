//! The HTTP API of loyalty: JSON over HTTP under `/v1` (axum). Only this crate knows HTTP.
//!
//! - [`app`] builds the router with its layers (request id, tracing, metrics, body limit,
//!   timeout, concurrency limit, problem+json for every error);
//! - [`serve`] runs it on a listener until a shutdown signal, lets in-flight requests finish,
//!   then shuts the engine down so that nothing acknowledged is lost;
//! - [`Settings`] is the typed configuration (`config/loyalty.toml` + `LOYALTY_` variables).
#![forbid(unsafe_code)]

pub mod auth;
pub mod dto;
pub mod error;
pub mod import;
pub mod metrics;
pub mod openapi;
mod problems;
pub mod routes;
pub mod settings;
pub mod state;
mod validate;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::{Caller, KeyRing, Role, sha256_hex};
pub use error::{ApiError, ServerError};
pub use settings::{Settings, StoreKind};
pub use state::AppState;

/// The router with every layer, ready to serve.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let body_limit = state.limits.body_bytes;
    let concurrency = state.limits.max_concurrent_requests;
    let metrics = state.metrics.clone();
    routes::routes()
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        // Innermost first: these see the request after the outer layers.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(ConcurrencyLimitLayer::new(concurrency))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn_with_state(
            metrics,
            metrics::count_requests,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        // One line per answered request at INFO, inside the request's span.
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id = %id,
                            )
                        }),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

/// Layers (body limit, timeout, method not allowed) answer errors with an empty body; this
/// gives them the same problem+json shape as every other error.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == HeaderValue::from_static(error::PROBLEM_JSON));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        return ApiError::from_status(status).into_response();
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves; in-flight requests then get up to
/// `grace` to finish. The caller shuts the engine down afterwards.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServerError> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = server => result.map_err(ServerError::Io),
        () = async {
            // Only once the signal came does the grace period start counting.
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
            Ok(())
        }
    }
}
