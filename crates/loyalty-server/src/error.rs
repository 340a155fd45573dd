//! Errors. [`ServerError`] is the library's error (start-up, configuration); [`ApiError`] is
//! what a client sees: an RFC 9457 `application/problem+json` document with a stable `type` URI
//! per kind of error. Every handler error goes through the one `IntoResponse` below.
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// Where problem types live; the slug after it is stable and documented.
pub const PROBLEM_BASE: &str = "https://loyalty.dev/problems/";
/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Failures of the server as a library: configuration, opening the store, listening.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("program rules: {0}")]
    Program(String),
    #[error("event store: {0}")]
    Store(String),
    #[error("engine: {0}")]
    Engine(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// An error answered to a client as problem details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The stable slug of the problem type (`insufficient-points`).
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members (`available`, `requested`, ...).
    pub extensions: Map<String, Value>,
    /// Seconds a client should wait before trying again (the `Retry-After` header).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
        }
    }

    /// Asks the client to try again after `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid API key",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed for this key",
            detail,
        )
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "The request is not valid",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such resource",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// The problem for a bare status produced by a layer (timeout, body limit, 404, 405).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found("no route matches this path"),
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                status,
                "method-not-allowed",
                "Method not allowed",
                "this path does not accept this method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                status,
                "body-too-large",
                "Request body too large",
                "the request body exceeds the configured limit",
            ),
            StatusCode::REQUEST_TIMEOUT => Self::new(
                status,
                "timeout",
                "Request timed out",
                "the request took longer than the configured limit",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                status,
                "unsupported-media-type",
                "Unsupported media type",
                "send JSON with Content-Type: application/json",
            ),
            s if s.is_server_error() => Self::internal("the server failed to answer"),
            _ => Self::new(
                status,
                "bad-request",
                "Bad request",
                status.canonical_reason().unwrap_or("bad request"),
            ),
        }
    }

    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(self.type_uri()));
        body.insert("title".into(), Value::String(self.title.into()));
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.insert("detail".into(), Value::String(self.detail.clone()));
        for (k, v) in &self.extensions {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.slug, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(problem = self.slug, detail = %self.detail, "request failed");
        }
        let mut response = (self.status, Json(self.body())).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"loyalty\""),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match &rejection {
            JsonRejection::JsonSyntaxError(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "The body is not valid JSON",
                rejection.body_text(),
            ),
            JsonRejection::JsonDataError(_) => Self::invalid(rejection.body_text()),
            JsonRejection::MissingJsonContentType(_) => {
                Self::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::from_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            _ => Self::new(
                rejection.status(),
                "bad-request",
                "Bad request",
                rejection.body_text(),
            ),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_carries_type_title_status_detail_and_extensions() {
        let problem = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient-points",
            "Not enough points",
            "needs 500",
        )
        .with("available", 120);
        let body = problem.body();
        assert_eq!(
            body["type"],
            "https://loyalty.dev/problems/insufficient-points"
        );
        assert_eq!(body["status"], 422);
        assert_eq!(body["available"], 120);
    }

    #[test]
    fn an_extension_cannot_overwrite_a_standard_member() {
        let body = ApiError::invalid("x").with("status", 200).body();
        assert_eq!(body["status"], 422);
    }

    #[test]
    fn the_response_has_the_problem_media_type() {
        let response = ApiError::forbidden("no").into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
