//! Handlers tested in process (`tower::ServiceExt::oneshot`), on the in-memory store and the
//! demo program.
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use loyalty_core::Program;
use loyalty_engine::{Engine, EngineOptions, ManualClock, SequentialIds};
use loyalty_store::InMemoryStore;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth::{KeyRing, Role, sha256_hex};
use crate::settings::{ApiKeySettings, LimitSettings};
use crate::state::AppState;

const TERMINAL: &str = "t-key";
const APP: &str = "a-key";
const SUPPORT: &str = "s-key";
const AUDITOR: &str = "au-key";
const ADMIN: &str = "ad-key";
const ANALYST: &str = "an-key";

fn keys() -> KeyRing {
    let key = |name: &str, role, plain: &str, stores: &[&str]| ApiKeySettings {
        name: name.into(),
        role,
        sha256: sha256_hex(plain),
        stores: stores.iter().map(|s| s.to_string()).collect(),
    };
    KeyRing::new(&[
        key("till", Role::Terminal, TERMINAL, &["store-1"]),
        key("app", Role::App, APP, &[]),
        key("support", Role::Support, SUPPORT, &[]),
        key("auditor", Role::Auditor, AUDITOR, &[]),
        key("admin", Role::Admin, ADMIN, &[]),
        key("analyst", Role::Analyst, ANALYST, &[]),
    ])
}

fn demo_program() -> Program {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/program.toml");
    let text = std::fs::read_to_string(&path).expect("config/program.toml is readable");
    Program::from_toml_str(&text).expect("the demo program is valid")
}

struct Harness {
    router: Router,
    engine: Engine,
}

async fn harness_with(limits: LimitSettings) -> Harness {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap(),
    ));
    let engine = Engine::start(
        Arc::new(InMemoryStore::new()),
        Arc::new(demo_program()),
        clock,
        Arc::new(SequentialIds::default()),
        EngineOptions::default(),
    )
    .await
    .expect("the engine starts");
    // Reads answer 503 until the read models caught up with the (empty) log.
    for _ in 0..500 {
        if engine.is_caught_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state = AppState::new(engine.clone(), keys(), limits);
    Harness {
        router: crate::app(state, Duration::from_secs(10)),
        engine,
    }
}

/// A store whose subscriptions never deliver anything (read models that never catch up), or
/// that refuses every append as a full disk would.
#[derive(Default)]
struct TestStore {
    inner: InMemoryStore,
    never_caught_up: bool,
    full: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl loyalty_store::EventStore for TestStore {
    async fn append(
        &self,
        stream: &str,
        expected: loyalty_store::ExpectedRevision,
        events: Vec<loyalty_store::EventData>,
    ) -> Result<loyalty_store::AppendResult, loyalty_store::StoreError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(loyalty_store::StoreError::StorageFull(
                "database or disk is full".into(),
            ));
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: loyalty_store::StreamFrom,
        direction: loyalty_store::Direction,
        max_count: usize,
    ) -> Result<Vec<loyalty_store::RecordedEvent>, loyalty_store::StoreError> {
        self.inner
            .read_stream(stream, from, direction, max_count)
            .await
    }

    async fn read_all(
        &self,
        after: loyalty_store::Position,
        max_count: usize,
    ) -> Result<Vec<loyalty_store::RecordedEvent>, loyalty_store::StoreError> {
        self.inner.read_all(after, max_count).await
    }

    async fn subscribe_all(
        &self,
        after: loyalty_store::Position,
        filter: loyalty_store::StreamFilter,
    ) -> Result<loyalty_store::Subscription, loyalty_store::StoreError> {
        if !self.never_caught_up {
            return self.inner.subscribe_all(after, filter).await;
        }
        let (sender, subscription) = loyalty_store::Subscription::channel();
        // Kept open, never written to.
        std::mem::forget(sender);
        Ok(subscription)
    }

    async fn head_position(&self) -> Result<loyalty_store::Position, loyalty_store::StoreError> {
        self.inner.head_position().await
    }

    fn limits(&self) -> loyalty_store::Limits {
        self.inner.limits()
    }
}

/// The app on an engine over `store`, right after it started (not waiting for catch-up).
async fn harness_on(store: Arc<TestStore>) -> Harness {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap(),
    ));
    let engine = Engine::start(
        store,
        Arc::new(demo_program()),
        clock,
        Arc::new(SequentialIds::default()),
        EngineOptions::default(),
    )
    .await
    .unwrap();
    let state = AppState::new(engine.clone(), keys(), LimitSettings::default());
    Harness {
        router: crate::app(state, Duration::from_secs(10)),
        engine,
    }
}

#[tokio::test]
async fn a_member_read_while_the_read_models_catch_up_answers_503_not_404() {
    let h = harness_on(Arc::new(TestStore {
        never_caught_up: true,
        ..TestStore::default()
    }))
    .await;
    let answer = h.get("/v1/members/nobody", APP).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem_slug(&answer), "not-caught-up");
    assert_eq!(answer.body["retryable"], true);
}

async fn harness() -> Harness {
    harness_with(LimitSettings::default()).await
}

struct Answer {
    status: StatusCode,
    content_type: String,
    replayed: bool,
    body: Value,
}

impl Harness {
    async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let replayed = response
            .headers()
            .get(super::REPLAYED_HEADER)
            .is_some_and(|v| v == "true");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            content_type,
            replayed,
            body,
        }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(key), Some(body.to_string()))
            .await
    }

    async fn get(&self, path: &str, key: &str) -> Answer {
        self.send(Method::GET, path, Some(key), None).await
    }

    async fn enroll(&self, member: &str) -> Answer {
        self.post(
            "/v1/members",
            APP,
            json!({"member_id": member, "occurred_at": "2026-03-02T10:00:00Z"}),
        )
        .await
    }

    async fn head(&self) -> loyalty_store::Position {
        self.engine.store().head_position().await.unwrap()
    }
}

fn purchase(member: &str, txn: &str, store: &str, amount: &str) -> Value {
    json!({
        "member_id": member, "transaction_id": txn, "store": store, "terminal": "till-1",
        "occurred_at": "2026-03-02T10:00:00Z", "currency": "EUR",
        "lines": [{"sku": "sku-latte", "category": "coffee", "quantity": "1", "amount": amount}],
    })
}

fn problem_slug(answer: &Answer) -> &str {
    answer.body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix(crate::error::PROBLEM_BASE))
        .unwrap_or("")
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn a_request_without_a_key_is_401_problem_json() {
    let h = harness().await;
    let answer = h.send(Method::GET, "/v1/members/m1", None, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
    assert_eq!(problem_slug(&answer), "unauthorized");
}

#[tokio::test]
async fn a_wrong_key_is_401() {
    let h = harness().await;
    let answer = h.get("/v1/members/m1", "not-a-key").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_key_whose_role_may_not_do_it_is_403() {
    let h = harness().await;
    let answer = h
        .post(
            "/v1/purchases",
            APP,
            purchase("m1", "t1", "store-1", "4.50"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = h.get("/v1/log", TERMINAL).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = h.post("/v1/admin/scheduler/run", SUPPORT, json!({})).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_terminal_posting_for_a_store_it_is_not_bound_to_is_403_and_appends_nothing() {
    let h = harness().await;
    h.enroll("m1").await;
    let before = h.head().await;
    let answer = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-2", "4.50"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(h.head().await, before);
}

// ------------------------------------------------------------------ bad inputs

#[tokio::test]
async fn malformed_json_is_400_and_an_unknown_field_is_422() {
    let h = harness().await;
    let answer = h
        .send(
            Method::POST,
            "/v1/members",
            Some(APP),
            Some("{\"member_id\":".into()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_slug(&answer), "malformed-json");
    let answer = h
        .post(
            "/v1/members",
            APP,
            json!({"member_id": "m1", "occurred_at": "2026-03-02T10:00:00Z", "points": 1000}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
}

/// A body is a JSON object: the positional array serde would also read into a struct (its
/// fields in order; `[]` when every field has a default) is 422, and nothing is appended.
#[tokio::test]
async fn a_body_that_is_an_array_is_422_and_nothing_is_appended() {
    let h = harness().await;
    h.enroll("m1").await;
    let before = h.head().await;
    for (path, key, body) in [
        ("/v1/admin/scheduler/run", ADMIN, json!([])),
        ("/v1/members", APP, json!(["m2", "2026-03-02T10:00:00Z"])),
        (
            "/v1/purchases",
            TERMINAL,
            json!([purchase("m1", "t1", "store-1", "4.50")]),
        ),
    ] {
        let answer = h.post(path, key, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {:?}",
            answer.body
        );
        assert_eq!(answer.content_type, crate::error::PROBLEM_JSON, "{path}");
    }
    assert_eq!(h.head().await, before);
    // An object is read as before.
    let answer = h.post("/v1/admin/scheduler/run", ADMIN, json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
}

#[tokio::test]
async fn negative_absurd_and_float_amounts_are_refused_and_nothing_is_appended() {
    let h = harness().await;
    h.enroll("m1").await;
    let before = h.head().await;
    for amount in [json!("-4.50"), json!("99999999.00"), json!(4.5), json!("0")] {
        let mut body = purchase("m1", "t1", "store-1", "1.00");
        body["lines"][0]["amount"] = amount.clone();
        let answer = h.post("/v1/purchases", TERMINAL, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount {amount}: {:?}",
            answer.body
        );
    }
    assert_eq!(h.head().await, before);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_problem_json() {
    let h = harness_with(LimitSettings {
        body_bytes: 2048,
        ..LimitSettings::default()
    })
    .await;
    let big = json!({"member_id": "m1", "occurred_at": "2026-03-02T10:00:00Z", "referrer": "x".repeat(4096)});
    let answer = h.post("/v1/members", APP, big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
}

#[tokio::test]
async fn an_unknown_member_is_404() {
    let h = harness().await;
    let answer = h.get("/v1/members/nobody", APP).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(problem_slug(&answer), "unknown-member");
    let answer = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("nobody", "t1", "store-1", "4.50"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{:?}", answer.body);
}

#[tokio::test]
async fn a_page_size_over_the_limit_is_refused() {
    let h = harness().await;
    let answer = h.get("/v1/log?limit=100000", AUDITOR).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn analysts_and_admins_read_the_analytics_and_no_other_role_does() {
    let h = harness().await;
    h.enroll("m1").await;
    h.post(
        "/v1/purchases",
        TERMINAL,
        purchase("m1", "T1", "store-1", "12.50"),
    )
    .await;
    let position = h.head().await;
    h.engine.wait_for(position).await.unwrap();
    for path in [
        "/v1/analytics/retention?period=quarter&periods=5&to=2026-03-02",
        "/v1/analytics/cohorts",
        "/v1/analytics/concentration",
        "/v1/analytics/rfm?limit=10",
    ] {
        for key in [ANALYST, ADMIN] {
            let answer = h.get(path, key).await;
            assert_eq!(answer.status, StatusCode::OK, "{path}: {:?}", answer.body);
        }
        for key in [TERMINAL, APP, SUPPORT, AUDITOR] {
            assert_eq!(
                h.get(path, key).await.status,
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
    }
    let concentration = h.get("/v1/analytics/concentration", ANALYST).await;
    assert_eq!(concentration.body["members"], 1);
    assert_eq!(concentration.body["net_spend"], "12.50");
    let rfm = h.get("/v1/analytics/rfm", ANALYST).await;
    assert_eq!(rfm.body["members"][0]["member_id"], "m1");
    // One member who bought once: no model can be fitted, and the problem says so (a
    // conflict with the history in the store: the request itself is well formed).
    for path in [
        "/v1/analytics/model",
        "/v1/analytics/at-risk",
        "/v1/analytics/members/m1",
    ] {
        let answer = h.get(path, ANALYST).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{path}: {:?}",
            answer.body
        );
        assert_eq!(answer.content_type, "application/problem+json");
        assert_eq!(
            answer.body["type"], "https://loyalty.dev/problems/not-enough-data",
            "{path}"
        );
        assert_eq!(
            h.get(path, APP).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
}

/// Periods never start before the year 0: every day in the answer is a `date` of the document
/// (four-digit years), however far back `to` and `periods` reach.
#[tokio::test]
async fn analytics_periods_start_no_earlier_than_the_year_0() {
    let h = harness().await;
    for path in [
        "/v1/analytics/retention?period=year&to=0024-03-31&periods=70",
        "/v1/analytics/cohorts?period=year&to=0024-03-31&periods=70",
    ] {
        let answer = h.get(path, ANALYST).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {:?}", answer.body);
        let text = answer.body.to_string();
        assert!(!text.contains("\"-0"), "{path}: {text}");
        assert!(text.contains("\"0000-01-01\""), "{path}: {text}");
    }
}

#[tokio::test]
async fn bad_analytics_parameters_are_refused_as_problems() {
    let h = harness().await;
    for path in [
        "/v1/analytics/retention?period=week",
        "/v1/analytics/retention?to=2026-13-01",
        "/v1/analytics/retention?periods=121",
        "/v1/analytics/retention?to=-0045-01-01",
        "/v1/analytics/retention?to=%2B10000-01-01",
        "/v1/analytics/model?calibration_end=-0001-06-01",
        "/v1/analytics/backtest?calibration_end=-0001-06-01&holdout_days=10",
        "/v1/analytics/cohorts?periods=0",
        "/v1/analytics/cohorts?from=2026-03-01",
        "/v1/analytics/rfm?limit=0",
        "/v1/analytics/rfm?limit=1001",
        "/v1/analytics/backtest",
        "/v1/analytics/backtest?calibration_end=2026-03-01&holdout_days=0",
        "/v1/analytics/backtest?calibration_end=2026-03-01&holdout_days=3661",
        "/v1/analytics/at-risk?after=m1",
        "/v1/analytics/at-risk?limit=5000",
        "/v1/analytics/model?calibration_end=yesterday",
        "/v1/analytics/members/not%20an%20id",
    ] {
        let answer = h.get(path, ANALYST).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {:?}",
            answer.body
        );
        assert_eq!(answer.content_type, "application/problem+json", "{path}");
    }
}

#[tokio::test]
async fn an_admin_imports_a_batch_of_history_once_and_a_bad_batch_not_at_all() {
    let h = harness().await;
    let batch = |amount: &str| {
        json!({
            "batch_id": "legacy-1",
            "points": "none",
            "rows": [
                {"type": "member", "member_id": "old-1", "occurred_at": "2024-05-01"},
                {"type": "purchase", "member_id": "old-1", "occurred_at": "2024-06-01",
                 "store": "store-1", "transaction_id": "L1", "amount": amount},
                {"type": "balance", "member_id": "old-1", "occurred_at": "2026-03-01",
                 "points": 420, "expires_at": "2026-12-31"}
            ]
        })
    };
    assert_eq!(
        h.post("/v1/admin/import", APP, batch("12.00")).await.status,
        StatusCode::FORBIDDEN
    );
    let head = h.head().await;
    let refused = h.post("/v1/admin/import", ADMIN, batch("twelve")).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        refused.body
    );
    assert_eq!(
        refused.body["type"],
        "https://loyalty.dev/problems/import-refused"
    );
    assert_eq!(refused.body["rows"][0]["line"], 2);
    assert_eq!(h.head().await, head);

    let imported = h.post("/v1/admin/import", ADMIN, batch("12.00")).await;
    assert_eq!(imported.status, StatusCode::OK, "{:?}", imported.body);
    assert_eq!(imported.body["imported"], 3);
    let again = h.post("/v1/admin/import", ADMIN, batch("12.00")).await;
    assert_eq!(
        (
            again.body["imported"].clone(),
            again.body["already_imported"].clone()
        ),
        (json!(0), json!(3))
    );
    h.engine.wait_for(h.head().await).await.unwrap();
    let profile = h.get("/v1/members/old-1", ADMIN).await;
    assert_eq!(
        profile.body["balance"]["available"], 420,
        "{:?}",
        profile.body
    );
}

// ------------------------------------------------------------------ commands and reads

#[tokio::test]
async fn a_purchase_earns_points_the_profile_shows_after_its_position() {
    let h = harness().await;
    let enrolled = h.enroll("m1").await;
    let welcome = enrolled.body["outcome"]["welcome_points"].as_i64().unwrap();
    let answer = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-1", "10.00"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["replayed"], false);
    let position = answer.body["position"].as_str().unwrap().to_owned();
    let earned = answer.body["outcome"]["points"].as_i64().unwrap();
    assert!(earned > 0);
    let profile = h
        .get(&format!("/v1/members/m1?min_position={position}"), APP)
        .await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    assert_eq!(profile.body["balance"]["lifetime_earned"], welcome + earned);
}

#[tokio::test]
async fn a_retried_purchase_answers_the_original_outcome_with_the_replay_flag() {
    let h = harness().await;
    h.enroll("m1").await;
    let first = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-1", "10.00"),
        )
        .await;
    let head = h.head().await;
    let again = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-1", "10.00"),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.replayed);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["outcome"], first.body["outcome"]);
    assert_eq!(h.head().await, head);
    let changed = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-1", "11.00"),
        )
        .await;
    assert_eq!(changed.status, StatusCode::CONFLICT);
    assert_eq!(problem_slug(&changed), "idempotency-conflict");
}

#[tokio::test]
async fn redeeming_more_than_the_balance_is_a_problem_that_says_what_is_available() {
    let h = harness().await;
    h.enroll("m1").await;
    let answer = h
        .post(
            "/v1/members/m1/redemptions",
            APP,
            json!({"redemption_id": "r1", "occurred_at": "2026-03-02T10:00:00Z", "points": 5000}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
    assert_eq!(problem_slug(&answer), "insufficient-points");
    assert!(answer.body["available"].is_i64());
}

// ------------------------------------------------------------------ operations

#[tokio::test]
async fn health_and_readiness_answer_without_a_key_and_metrics_to_admin_keys() {
    let h = harness().await;
    h.enroll("m1").await;
    assert_eq!(
        h.send(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    let head = h.head().await;
    h.engine.wait_for(head).await.unwrap();
    assert_eq!(
        h.send(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
    let keyless = h.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(keyless.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/metrics", APP).await.status, StatusCode::FORBIDDEN);
    let metrics = h.get("/metrics", ADMIN).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("loyalty_http_requests_total"), "{text}");
    assert!(
        text.contains("loyalty_commands_total{command=\"enroll\",result=\"applied\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_are_problem_json() {
    let h = harness().await;
    let answer = h.get("/v1/nowhere", APP).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
    let answer = h.send(Method::DELETE, "/v1/members", Some(APP), None).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let h = harness().await;
    let doc = h.send(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let concrete = path
            .replace("{member_id}", "m1")
            .replace("{redemption_id}", "r1");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // No key: a routed operation answers 401 (or 200 when public), never 404/405.
            let answer = h
                .send(method.clone(), &concrete, None, Some("{}".into()))
                .await;
            assert!(
                answer.status != StatusCode::NOT_FOUND
                    && answer.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
        }
    }
}

/// The document states, without a key, how the program writes money and dates (the dashboard
/// formats with them for every role): the program's own currency, minor units and timezone.
#[tokio::test]
async fn the_document_states_the_programs_currency_and_timezone() {
    let h = harness().await;
    let doc = h.send(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    // The demo program (config/program.toml): euros in cents, in Paris.
    assert_eq!(
        doc.body["info"][crate::openapi::PROGRAM_EXTENSION],
        serde_json::json!({"currency": "EUR", "minor_units": 2, "timezone": "Europe/Paris"})
    );
}

/// The roles each operation's security requirement lists are the roles its handler lets in:
/// every documented operation is called with every role's key, and answers 403 exactly when
/// the document leaves the role out (admin always passes).
#[tokio::test]
async fn the_roles_the_document_lists_are_the_roles_the_server_lets_in() {
    let h = harness().await;
    let doc = h.send(Method::GET, "/v1/openapi.json", None, None).await;
    let roles = [
        ("terminal", TERMINAL),
        ("app", APP),
        ("support", SUPPORT),
        ("auditor", AUDITOR),
        ("analyst", ANALYST),
        ("admin", ADMIN),
    ];
    let mut checked = 0;
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{member_id}", "m1")
            .replace("{redemption_id}", "r1");
        for (method, op) in item.as_object().unwrap() {
            let Some(requirement) = op["security"].as_array().and_then(|s| s.first()) else {
                panic!("{method} {path} states no security requirement");
            };
            let Some(allowed) = requirement["apiKey"].as_array() else {
                // A public operation (an empty requirement).
                continue;
            };
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (role, key) in roles {
                let listed = role == "admin" || allowed.iter().any(|r| r == role);
                let body = (method == Method::POST).then(|| "{}".to_owned());
                let answer = h.send(method.clone(), &concrete, Some(key), body).await;
                assert_eq!(
                    answer.status == StatusCode::FORBIDDEN,
                    !listed,
                    "{method} {path} as {role}: {} {}",
                    answer.status,
                    answer.body
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} calls checked");
}

#[tokio::test]
async fn readiness_says_not_ready_while_the_store_refuses_writes_and_recovers_by_itself() {
    let store = Arc::new(TestStore::default());
    let h = harness_on(store.clone()).await;
    for _ in 0..500 {
        if h.send(Method::GET, "/readyz", None, None).await.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.full.store(true, std::sync::atomic::Ordering::SeqCst);
    let body = json!({"member_id": "m1", "occurred_at": "2026-03-02T10:00:00Z"});
    let answer = h.post("/v1/members", APP, body).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["retryable"], true);
    assert_eq!(
        h.send(Method::GET, "/readyz", None, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Space is back: the engine's probe notices without any request.
    store.full.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut ready = false;
    for _ in 0..100 {
        if h.send(Method::GET, "/readyz", None, None).await.status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "readiness never recovered");
}

/// Member tokens: obtaining them, what they may do, when they are refused.
mod member_tokens;

/// Suspending, reinstating and closing a member, and what each status allows.
mod lifecycle;

/// Quoting a purchase: the same answer as the purchase, nothing appended.
mod quote;

/// The program versions recorded in the log, for auditors.
mod programs;

/// A member's data rights: the export and the erasure of their personal data.
mod privacy;

/// The liability now (from the read models) and as of a past instant (replayed).
mod liability;

/// The tier distribution and the months members reached their tier in.
mod tiers;

#[tokio::test]
async fn readiness_names_the_event_of_a_newer_release_the_read_models_stopped_at() {
    // Given a log holding an event a newer release wrote (a schema version this build does
    // not read)
    let store = Arc::new(TestStore::default());
    loyalty_store::EventStore::append(
        &store.inner,
        "member-m1",
        loyalty_store::ExpectedRevision::NoStream,
        vec![loyalty_store::EventData {
            id: uuid::Uuid::new_v4(),
            event_type: "Enrolled".into(),
            schema_version: loyalty_core::schema::CURRENT_SCHEMA_VERSION + 1,
            data: loyalty_store::Bytes::from_static(b"{}"),
            metadata: loyalty_store::Bytes::from_static(b"{}"),
        }],
    )
    .await
    .unwrap();
    // When the server starts on it
    let h = harness_on(store).await;
    // Then it is not ready, and says which event stopped it and what to do
    let mut detail = String::new();
    for _ in 0..500 {
        let answer = h.send(Method::GET, "/readyz", None, None).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        detail = answer.body["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if detail.contains("stopped") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        detail.contains("member-m1 revision 0") && detail.contains("upgrade"),
        "{detail}"
    );
}
