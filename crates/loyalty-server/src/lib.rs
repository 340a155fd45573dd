//! The HTTP API of loyalty: JSON over HTTP under `/v1` (axum). Only this crate knows HTTP.
//!
//! - [`app`] builds the router with its layers (request id, tracing, metrics, body limit,
//!   timeout, concurrency limit, per-key rate limit, problem+json for every error);
//! - [`metrics_router`] serves `/metrics` alone, without a key, for `server.metrics_listen`;
//! - [`serve`] runs it on a listener until a shutdown signal, lets in-flight requests finish,
//!   then shuts the engine down so that nothing acknowledged is lost;
//! - [`ApiSettings`] is its typed configuration (read by the binary with the process's own);
//! - [`dashboard`] serves the web dashboard at `/dashboard`, outside `/v1` and its document.
#![forbid(unsafe_code)]

pub mod auth;
pub mod dashboard;
pub mod dto;
pub mod error;
pub mod import;
pub mod metrics;
pub mod openapi;
mod problems;
mod ratelimit;
pub mod routes;
pub mod schema;
pub mod settings;
pub mod state;
pub mod token;
mod validate;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::{Caller, KeyRing, Role, sha256_hex};
pub use error::{ApiError, ServerError};
pub use settings::ApiSettings;
pub use state::AppState;

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsExposure {
    /// On the main listener, to admin keys (`server.metrics_listen` unset).
    #[default]
    AdminKey,
    /// On a listener of its own ([`metrics_router`] on `server.metrics_listen`), without a
    /// key; the main listener answers 404 there.
    SeparateListener,
}

/// The router with every layer, ready to serve; `/metrics` to admin keys.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    app_with(state, request_timeout, MetricsExposure::AdminKey)
}

/// The router with every layer, with `/metrics` where `metrics` says.
pub fn app_with(state: AppState, request_timeout: Duration, metrics: MetricsExposure) -> Router {
    let body_limit = state.limits.body_bytes;
    let concurrency = state.limits.max_concurrent_requests;
    let rate_limit = state.limits.rate_limit();
    let identifying = state.clone();
    let exposure = metrics;
    let metrics = state.metrics.clone();
    let router = routes::routes()
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        // Innermost first: these see the request after the outer layers.
        .layer(Extension(exposure))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(ConcurrencyLimitLayer::new(concurrency));
    // Outside the concurrency limit (a request over its rate takes no slot), inside the
    // metrics (429s are counted).
    let router = match rate_limit {
        Some((rate, burst)) => ratelimit::limit(router, rate, burst),
        None => router,
    };
    router
        // The caller, identified once for the rate limiter and the handlers' extractors.
        .layer(middleware::from_fn_with_state(identifying, auth::identify))
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

/// `/metrics` alone, without a key: for `server.metrics_listen`, an address only the
/// monitoring network reaches. Anything else there is 404.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::open_exposition))
        .fallback(|| async { ApiError::from_status(StatusCode::NOT_FOUND) })
        .with_state(state)
}

/// Layers (body limit, timeout, method not allowed) answer errors with an empty body; this
/// gives them the same problem+json shape as every other error.
///
/// A body over the limit is refused before it is read (from its `Content-Length`, or when a
/// chunked one passes the limit): the answer says `Connection: close` and the connection is
/// closed after it, rather than reading (or leaving unread) the rest of the body.
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == HeaderValue::from_static(error::PROBLEM_JSON));
    let mut response = if (status.is_client_error() || status.is_server_error()) && !is_problem {
        ApiError::from_status(status).into_response()
    } else {
        response
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves; in-flight requests then get up to
/// `grace` to finish. The caller shuts the engine down afterwards. Handlers see the peer's
/// address (`ConnectInfo<SocketAddr>`: the rate limit of requests without a key).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServerError> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
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
