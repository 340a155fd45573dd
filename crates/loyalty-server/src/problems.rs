//! How the engine's and the domain's errors become problem documents: one stable `type` slug
//! per error, a status, and the numbers a client needs to act (`available`, `remaining`...).
use axum::http::StatusCode;
use loyalty_analytics::AnalyticsError;
use loyalty_core::DomainError;
use loyalty_engine::EngineError;
use loyalty_webhooks::WebhookError;

use crate::error::ApiError;

/// Instants in problem documents: RFC 3339, like everywhere else in the API.
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// What a client is told to wait when the store cannot take writes (out of space, unreachable).
const STORE_RETRY_AFTER_SECS: u32 = 5;

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
const CONFLICT: StatusCode = StatusCode::CONFLICT;
const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;

/// What the server answers beyond a key's rate (`limits.rate_per_sec`, `limits.rate_burst`).
impl ApiError {
    /// 429 `rate-limited`: the key (or, without a valid key, the peer address) sent more than
    /// its rate; `Retry-After` says when the next request is let through (at least 1 s).
    pub(crate) fn rate_limited(retry_after_secs: u32) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("this key sent more than its rate: try again in {retry_after_secs} s"),
        )
        .with("retryable", true)
        .retry_after(retry_after_secs.max(1))
    }
}

/// Every problem type the server answers with, by status: the OpenAPI document lists them (the
/// `type` of its Problem schema is one of them, and each error response names its own), and a
/// test checks this list against every problem the code builds.
pub const PROBLEM_TYPES: &[(u16, &str)] = &[
    (400, "malformed-json"),
    (400, "bad-request"),
    (401, "unauthorized"),
    (403, "forbidden"),
    (404, "unknown-member"),
    (404, "unknown-transaction"),
    (404, "unknown-reward"),
    (404, "unknown-redemption"),
    (404, "not-found"),
    (404, "webhook-endpoint-not-found"),
    (404, "webhook-message-not-found"),
    (404, "unknown-program"),
    (405, "method-not-allowed"),
    (408, "timeout"),
    (409, "already-enrolled"),
    (409, "wrong-member"),
    (409, "idempotency-conflict"),
    (409, "member-suspended"),
    (409, "member-closed"),
    (409, "unknown-line"),
    (409, "refund-exceeds-remaining"),
    (409, "reward-not-available"),
    (409, "tier-too-low"),
    (409, "reward-limit-reached"),
    (409, "insufficient-points"),
    (409, "redemption-already-cancelled"),
    (409, "win-back-too-soon"),
    (409, "win-back-not-due"),
    (409, "referral-revoked"),
    (409, "transaction-of-another-member"),
    (409, "position-ahead-of-log"),
    (409, "not-enough-data"),
    (409, "model-failed"),
    (409, "holdout-not-over"),
    (409, "webhook-endpoint-exists"),
    (409, "too-many-webhook-endpoints"),
    (409, "too-many-redeliveries"),
    (409, "ambiguous-program-version"),
    (413, "body-too-large"),
    (415, "unsupported-media-type"),
    (422, "invalid-request"),
    (422, "invalid-id"),
    (422, "invalid-currency"),
    (422, "currency-mismatch"),
    (422, "invalid-amount"),
    (422, "no-lines"),
    (422, "too-many-lines"),
    (422, "duplicate-refund-line"),
    (422, "invalid-points"),
    (422, "unknown-activity"),
    (422, "self-referral"),
    (422, "referral-not-configured"),
    (422, "win-back-not-configured"),
    (422, "expiry-before-opening"),
    (422, "text-too-long"),
    (422, "out-of-range"),
    (422, "occurred-at-outside-window"),
    (422, "occurred-before-enrollment"),
    (422, "refund-before-purchase"),
    (422, "time-out-of-range"),
    (422, "rejected"),
    (422, "scheduled-time-ahead"),
    (422, "limit-exceeded"),
    (422, "import-refused"),
    (422, "invalid-webhook-url"),
    (422, "webhook-target-not-allowed"),
    (422, "invalid-webhook-secret"),
    (422, "invalid-webhook-setting"),
    (422, "invalid-cursor"),
    (429, "rate-limited"),
    (500, "internal"),
    (503, "write-conflict"),
    (503, "not-caught-up"),
    (503, "unavailable"),
    (503, "no-key-vault"),
];

/// The problem types answered with `status`.
pub fn types_of(status: u16) -> impl Iterator<Item = &'static str> {
    PROBLEM_TYPES
        .iter()
        .filter(move |(s, _)| *s == status)
        .map(|(_, slug)| *slug)
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let detail = error.to_string();
        let p = |status, slug, title| ApiError::new(status, slug, title, detail.clone());
        match &error {
            DomainError::InvalidId { kind, value } => {
                p(UNPROCESSABLE, "invalid-id", "Invalid identifier")
                    .with("field", *kind)
                    .with("value", value.as_str())
            }
            DomainError::InvalidCurrency { .. } => {
                p(UNPROCESSABLE, "invalid-currency", "Invalid currency")
            }
            DomainError::NotEnrolled => p(NOT_FOUND, "unknown-member", "Unknown member"),
            DomainError::AlreadyEnrolled => p(CONFLICT, "already-enrolled", "Already enrolled"),
            DomainError::WrongMember { .. } => {
                p(CONFLICT, "wrong-member", "The request names another member")
            }
            DomainError::IdempotencyConflict { client_id } => p(
                CONFLICT,
                "idempotency-conflict",
                "This id was already used for a different request",
            )
            .with("client_id", client_id.as_str()),
            DomainError::MemberSuspended => p(CONFLICT, "member-suspended", "Member suspended"),
            DomainError::MemberClosed => p(CONFLICT, "member-closed", "Member account closed"),
            DomainError::CurrencyMismatch { expected, .. } => {
                p(UNPROCESSABLE, "currency-mismatch", "Wrong currency")
                    .with("expected", expected.as_str())
            }
            DomainError::AmountNotPositive { field }
            | DomainError::AmountTooPrecise { field, .. } => {
                p(UNPROCESSABLE, "invalid-amount", "Invalid amount").with("field", *field)
            }
            DomainError::AmountTooLarge { field, max } => {
                p(UNPROCESSABLE, "invalid-amount", "Invalid amount")
                    .with("field", *field)
                    .with("max", max.to_string())
            }
            DomainError::NoLines => p(UNPROCESSABLE, "no-lines", "A purchase needs lines"),
            DomainError::TooManyLines { max } => {
                p(UNPROCESSABLE, "too-many-lines", "Too many lines").with("max", *max)
            }
            DomainError::UnknownTransaction {
                store,
                transaction_id,
            } => p(NOT_FOUND, "unknown-transaction", "Unknown transaction")
                .with("store", store.as_str())
                .with("transaction_id", transaction_id.as_str()),
            // The purchase as recorded decides these two: a conflict with its state, not a
            // malformed request.
            DomainError::UnknownLine { line } => {
                p(CONFLICT, "unknown-line", "Unknown purchase line").with("line", *line)
            }
            DomainError::DuplicateRefundLine { line } => p(
                UNPROCESSABLE,
                "duplicate-refund-line",
                "Line refunded twice",
            )
            .with("line", *line),
            DomainError::RefundExceedsRemaining { line, remaining } => {
                let problem = p(
                    CONFLICT,
                    "refund-exceeds-remaining",
                    "Refund larger than what is left",
                )
                .with("remaining", remaining.to_string());
                match line {
                    Some(line) => problem.with("line", *line),
                    None => problem,
                }
            }
            DomainError::UnknownReward { reward_id } => {
                p(NOT_FOUND, "unknown-reward", "Unknown reward")
                    .with("reward_id", reward_id.as_str())
            }
            DomainError::RewardNotAvailable { reward_id } => {
                p(CONFLICT, "reward-not-available", "Reward not available")
                    .with("reward_id", reward_id.as_str())
            }
            DomainError::TierTooLow { required, current } => {
                p(CONFLICT, "tier-too-low", "Tier too low")
                    .with("required", required.as_str())
                    .with("current", current.as_str())
            }
            DomainError::RewardLimitReached { reward_id, limit } => p(
                CONFLICT,
                "reward-limit-reached",
                "Reward redeemed too many times",
            )
            .with("reward_id", reward_id.as_str())
            .with("limit", *limit),
            DomainError::InsufficientPoints {
                available,
                requested,
            } => p(CONFLICT, "insufficient-points", "Not enough points")
                .with("available", available.value())
                .with("requested", requested.value()),
            DomainError::PointsNotPositive | DomainError::PointsZero => {
                p(UNPROCESSABLE, "invalid-points", "Invalid number of points")
            }
            DomainError::PointsTooLarge { max } => {
                p(UNPROCESSABLE, "invalid-points", "Invalid number of points")
                    .with("max", max.value())
            }
            DomainError::UnknownRedemption { redemption_id } => {
                p(NOT_FOUND, "unknown-redemption", "Unknown redemption")
                    .with("redemption_id", redemption_id.as_str())
            }
            DomainError::RedemptionAlreadyCancelled { redemption_id } => p(
                CONFLICT,
                "redemption-already-cancelled",
                "Redemption already cancelled",
            )
            .with("redemption_id", redemption_id.as_str()),
            DomainError::UnknownActivity { kind } => {
                p(UNPROCESSABLE, "unknown-activity", "Unknown activity kind")
                    .with("kind", kind.as_str())
            }
            DomainError::SelfReferral => p(UNPROCESSABLE, "self-referral", "Self referral"),
            DomainError::ReferralNotConfigured => p(
                UNPROCESSABLE,
                "referral-not-configured",
                "The program has no referrals",
            ),
            DomainError::WinBackNotConfigured => p(
                UNPROCESSABLE,
                "win-back-not-configured",
                "The program has no win-back rule",
            ),
            DomainError::WinBackTooSoon { last, next } => p(
                CONFLICT,
                "win-back-too-soon",
                "Win-back bonus already granted",
            )
            .with("last", last.to_rfc3339())
            .with("next", next.to_rfc3339()),
            DomainError::WinBackNotDue => p(
                CONFLICT,
                "win-back-not-due",
                "The member does not meet the win-back rule",
            ),
            DomainError::ExpiryBeforeOpening {
                occurred_at,
                expires_at,
            } => p(
                UNPROCESSABLE,
                "expiry-before-opening",
                "An opening balance cannot expire before it opens",
            )
            .with("occurred_at", occurred_at.to_rfc3339())
            .with("expires_at", expires_at.to_rfc3339()),
            DomainError::TextTooLong { field, max } => {
                p(UNPROCESSABLE, "text-too-long", "Text too long")
                    .with("field", *field)
                    .with("max", *max)
            }
            DomainError::ArithmeticOverflow => p(UNPROCESSABLE, "out-of-range", "Out of range"),
            DomainError::OccurredAtOutsideWindow {
                occurred_at,
                earliest,
                latest,
            } => p(
                UNPROCESSABLE,
                "occurred-at-outside-window",
                "occurred_at is outside the accepted window",
            )
            .with("occurred_at", rfc3339(*occurred_at))
            .with("earliest", rfc3339(*earliest))
            .with("latest", rfc3339(*latest)),
            DomainError::BeforeEnrollment { enrolled_at } => p(
                UNPROCESSABLE,
                "occurred-before-enrollment",
                "Dated before the member enrolled",
            )
            .with("enrolled_at", rfc3339(*enrolled_at)),
            DomainError::RefundBeforePurchase { purchased_at } => p(
                UNPROCESSABLE,
                "refund-before-purchase",
                "Refund dated before the purchase",
            )
            .with("purchased_at", rfc3339(*purchased_at)),
            DomainError::TimeOutOfRange => p(
                UNPROCESSABLE,
                "time-out-of-range",
                "A time outside the range the ledger records",
            ),
            DomainError::ReferralRevoked { newcomer } => {
                p(CONFLICT, "referral-revoked", "Referral revoked")
                    .with("newcomer", newcomer.as_str())
            }
            // The enum is non-exhaustive: a new rejection is still a client error.
            _ => p(UNPROCESSABLE, "rejected", "The request was rejected"),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let detail = error.to_string();
        match error {
            EngineError::Domain(domain) => domain.into(),
            EngineError::UnknownMember(member) => {
                ApiError::new(NOT_FOUND, "unknown-member", "Unknown member", detail)
                    .with("member_id", member.as_str())
            }
            EngineError::UnknownTransaction(sale) => ApiError::new(
                NOT_FOUND,
                "unknown-transaction",
                "Unknown transaction",
                detail,
            )
            .with("store", sale.store.as_str())
            .with("transaction_id", sale.transaction_id.as_str()),
            // The owner is not shown (the detail does not name it either): it would leak who
            // bought what.
            EngineError::TransactionOfAnotherMember { sale, .. } => ApiError::new(
                CONFLICT,
                "transaction-of-another-member",
                "Transaction recorded for another member",
                detail,
            )
            .with("store", sale.store.as_str())
            .with("transaction_id", sale.transaction_id.as_str()),
            EngineError::ScheduledAhead { requested, now } => ApiError::new(
                UNPROCESSABLE,
                "scheduled-time-ahead",
                "Scheduled work cannot run ahead of the server's clock",
                detail,
            )
            .with("now", rfc3339(now))
            .with("requested", rfc3339(requested)),
            EngineError::Conflict { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "write-conflict",
                "Too many concurrent writes",
                detail,
            )
            .with("retryable", true)
            .retry_after(1),
            EngineError::NotCaughtUp { wanted, reached } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-caught-up",
                "Read models not caught up",
                detail,
            )
            .with("wanted", wanted.to_string())
            .with("reached", reached.to_string())
            .with("retryable", true)
            .retry_after(1),
            EngineError::PositionAheadOfLog { wanted, head } => ApiError::new(
                CONFLICT,
                "position-ahead-of-log",
                "Position past the head of the log",
                detail,
            )
            .with("wanted", wanted.to_string())
            .with("head", head.to_string()),
            EngineError::LimitExceeded { limit, .. } => {
                ApiError::new(UNPROCESSABLE, "limit-exceeded", "Limit exceeded", detail)
                    .with("limit", limit)
            }
            // Out of space, a lost connection: the write did not happen and may once the store
            // is back. Nothing was acknowledged, so a retry with the same id is safe.
            EngineError::Store(e) if e.is_transient() => ApiError::unavailable(e.to_string())
                .with("retryable", true)
                .retry_after(STORE_RETRY_AFTER_SECS),
            // A misconfigured server, not a bad request: a note is refused rather than stored
            // in the clear, where it could never be erased. Retrying does not help until an
            // operator configures a vault, hence no Retry-After.
            EngineError::NoKeyVault => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-key-vault",
                "No key vault for personal data",
                detail,
            ),
            EngineError::ShutDown => {
                ApiError::unavailable(detail).retry_after(STORE_RETRY_AFTER_SECS)
            }
            EngineError::Analytics(e) => match e {
                // The request is well formed: it is the history in the store that does not allow
                // the analysis (yet), hence a conflict with its state rather than a 422.
                AnalyticsError::NotEnoughData(_) => ApiError::new(
                    CONFLICT,
                    "not-enough-data",
                    "Not enough history for this analysis",
                    detail,
                ),
                AnalyticsError::FitFailed(_) | AnalyticsError::NumericalFailure(_) => {
                    ApiError::new(
                        CONFLICT,
                        "model-failed",
                        "The model could not be fitted to this history",
                        detail,
                    )
                }
                _ => ApiError::invalid(detail),
            },
            // This server is older than the event it met: another (upgraded) one can answer.
            EngineError::NewerSchema(_) => ApiError::unavailable(detail),
            // A server's engine is never read-only: this is a bug, not the caller's fault.
            EngineError::Store(_)
            | EngineError::Schema(_)
            | EngineError::Corrupt(_)
            | EngineError::ReadOnly => ApiError::internal(detail),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        let detail = error.to_string();
        match error {
            WebhookError::EndpointNotFound(id) => ApiError::new(
                NOT_FOUND,
                "webhook-endpoint-not-found",
                "Unknown webhook endpoint",
                detail,
            )
            .with("endpoint_id", id),
            WebhookError::EndpointExists(id) => ApiError::new(
                CONFLICT,
                "webhook-endpoint-exists",
                "A webhook endpoint with this id exists with other settings",
                detail,
            )
            .with("endpoint_id", id),
            // The same problem as every other malformed id.
            WebhookError::InvalidEndpointId(value) => {
                ApiError::new(UNPROCESSABLE, "invalid-id", "Invalid identifier", detail)
                    .with("field", "endpoint_id")
                    .with("value", value)
            }
            WebhookError::InvalidUrl(_) => ApiError::new(
                UNPROCESSABLE,
                "invalid-webhook-url",
                "Invalid webhook URL",
                detail,
            ),
            // Whether a host name leads to a private address is only known once it is
            // resolved: a rule no schema can state, so a 422 of its own.
            WebhookError::TargetNotAllowed(_) => ApiError::new(
                UNPROCESSABLE,
                "webhook-target-not-allowed",
                "The webhook URL leads to a private, loopback or link-local address",
                detail,
            ),
            // How many endpoints exist is the registry's state, not the request's shape.
            WebhookError::TooManyEndpoints { limit } => ApiError::new(
                CONFLICT,
                "too-many-webhook-endpoints",
                "Too many webhook endpoints",
                detail,
            )
            .with("limit", limit),
            WebhookError::InvalidSecret(_) => ApiError::new(
                UNPROCESSABLE,
                "invalid-webhook-secret",
                "Invalid webhook signing secret",
                detail,
            ),
            WebhookError::InvalidSetting(_) => ApiError::new(
                UNPROCESSABLE,
                "invalid-webhook-setting",
                "Invalid webhook endpoint setting",
                detail,
            ),
            WebhookError::MessageNotFound(id) => ApiError::new(
                NOT_FOUND,
                "webhook-message-not-found",
                "No such message in the endpoint's delivery log",
                detail,
            )
            .with("message_id", id),
            WebhookError::PositionAheadOfLog { requested, head } => ApiError::new(
                CONFLICT,
                "position-ahead-of-log",
                "Position past the head of the log",
                detail,
            )
            .with("wanted", requested)
            .with("head", head),
            WebhookError::TooManyRedeliveries { limit } => ApiError::new(
                CONFLICT,
                "too-many-redeliveries",
                "Too many redeliveries waiting for this endpoint",
                detail,
            )
            .with("limit", limit),
            WebhookError::InvalidCursor => {
                ApiError::new(UNPROCESSABLE, "invalid-cursor", "Invalid cursor", detail)
            }
            // The registry retries its own conflicts: one that comes out is a burst of
            // concurrent changes, worth a retry (the same request is idempotent).
            WebhookError::Store(loyalty_store::StoreError::WrongExpectedRevision { .. }) => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "write-conflict",
                    "Too many concurrent writes",
                    detail,
                )
                .with("retryable", true)
                .retry_after(1)
            }
            WebhookError::Store(e) => EngineError::Store(e).into(),
            WebhookError::Engine(e) => e.into(),
            // As for the engine's: this server is older than the event; an upgraded one can
            // answer.
            WebhookError::NewerSchema(_) => ApiError::unavailable(detail),
            WebhookError::Corrupt(_) => ApiError::internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The list is the code's: every problem built anywhere in the crate (outside tests) has
    /// its type listed with its status, and every listed type is built somewhere.
    #[test]
    fn every_problem_the_code_builds_is_listed_with_its_status_and_nothing_else() {
        let pattern = regex::Regex::new(
            r#"(?:ApiError::new|Self::new|\bp)\(\s*([A-Za-z_:.]+),\s*"([a-z0-9-]+)""#,
        )
        .unwrap();
        let statuses = [
            ("UNPROCESSABLE", 422),
            ("UNPROCESSABLE_ENTITY", 422),
            ("CONFLICT", 409),
            ("NOT_FOUND", 404),
            ("BAD_REQUEST", 400),
            ("UNAUTHORIZED", 401),
            ("FORBIDDEN", 403),
            ("TOO_MANY_REQUESTS", 429),
            ("INTERNAL_SERVER_ERROR", 500),
            ("SERVICE_UNAVAILABLE", 503),
        ];
        let mut built = std::collections::BTreeSet::new();
        let mut files = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let test_only = path.ends_with("tests.rs")
                || path.ends_with("testkit.rs")
                || path.components().any(|c| c.as_os_str() == "tests");
            if path.extension().is_none_or(|e| e != "rs") || test_only {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for found in pattern.captures_iter(code) {
                let (status, slug) = (&found[1], &found[2]);
                assert!(
                    PROBLEM_TYPES.iter().any(|(_, s)| *s == slug),
                    "{slug} ({}) is not in PROBLEM_TYPES",
                    path.display()
                );
                let name = status.rsplit("::").next().unwrap_or(status);
                if let Some((_, code)) = statuses.iter().find(|(n, _)| *n == name) {
                    assert!(
                        PROBLEM_TYPES.contains(&(*code, slug)),
                        "{slug} is built with {code} but not listed with it"
                    );
                }
                built.insert(slug.to_owned());
            }
        }
        for (status, slug) in PROBLEM_TYPES {
            assert!(
                built.contains(*slug),
                "{status} {slug} is listed but never built"
            );
        }
    }

    use loyalty_core::Points;

    use super::*;

    #[test]
    fn insufficient_points_tells_how_many_are_available() {
        let problem: ApiError = DomainError::InsufficientPoints {
            available: Points::new(120),
            requested: Points::new(500),
        }
        .into();
        let body = problem.body();
        assert_eq!(
            body["type"],
            "https://loyalty.dev/problems/insufficient-points"
        );
        assert_eq!(body["available"], 120);
        assert_eq!(body["requested"], 500);
    }

    #[test]
    fn a_store_that_cannot_take_writes_answers_503_with_retry_after() {
        use axum::response::IntoResponse;
        let problem: ApiError =
            EngineError::Store(loyalty_store::StoreError::StorageFull("disk full".into())).into();
        assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.body()["retryable"], true);
        let response = problem.into_response();
        assert_eq!(
            response.headers()[axum::http::header::RETRY_AFTER],
            STORE_RETRY_AFTER_SECS.to_string()
        );
        let waiting: ApiError = EngineError::NotCaughtUp {
            wanted: loyalty_store::Position::new(9, 9),
            reached: loyalty_store::Position::new(1, 1),
        }
        .into();
        assert_eq!(waiting.into_response().headers()["retry-after"], "1");
    }

    #[test]
    fn a_rate_limited_request_is_told_when_to_come_back() {
        use axum::response::IntoResponse;
        let problem = ApiError::rate_limited(0);
        assert_eq!(problem.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            problem.body()["type"],
            "https://loyalty.dev/problems/rate-limited"
        );
        assert_eq!(problem.into_response().headers()["retry-after"], "1");
    }

    #[test]
    fn a_reused_client_id_is_a_conflict() {
        let problem: ApiError = EngineError::Domain(DomainError::IdempotencyConflict {
            client_id: "purchase:t1".into(),
        })
        .into();
        assert_eq!(problem.status, StatusCode::CONFLICT);
        assert_eq!(problem.slug, "idempotency-conflict");
    }
}
