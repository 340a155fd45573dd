//! Member tokens over the whole router: who may obtain one, what one may do (its own member's
//! app routes only), and when one is refused (expired on the server's clock, unknown key, wrong
//! secret, another audience, a rotated-out key).
use chrono::TimeDelta;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;
use crate::settings::{TokenKeySettings, TokenSettings};
use crate::token::TokenKeys;

const ISSUER: &str = "i-key";
const SECRET_1: &str = "test-token-secret-number-one-0123456789";
const SECRET_2: &str = "test-token-secret-number-two-0123456789";
const AT: &str = "2026-03-02T10:00:00Z";

/// The routes a member token may call, for its own member only. Every other authenticated
/// route answers it 403, and so does every one of these for another member.
const MEMBER_TOKEN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/members/{member_id}"),
    ("GET", "/v1/members/{member_id}/history"),
    ("GET", "/v1/members/{member_id}/rewards"),
    ("POST", "/v1/members/{member_id}/redemptions"),
    (
        "POST",
        "/v1/members/{member_id}/redemptions/{redemption_id}/cancel",
    ),
    ("POST", "/v1/activities"),
];

fn token_settings(keys: &[(&str, &str)]) -> TokenSettings {
    TokenSettings {
        keys: keys
            .iter()
            .map(|(id, secret)| TokenKeySettings {
                id: (*id).into(),
                secret: Some((*secret).into()),
                secret_env: None,
                current: false,
            })
            .collect(),
        ..TokenSettings::default()
    }
}

/// The test keys plus an issuer, and member tokens signed with `keys` (the first signs).
fn ring(keys: &[(&str, &str)]) -> KeyRing {
    let key = |name: &str, role, plain: &str, stores: &[&str]| ApiKeySettings {
        name: name.into(),
        role,
        sha256: sha256_hex(plain),
        stores: stores.iter().map(|s| s.to_string()).collect(),
    };
    let ring = KeyRing::new(&[
        key("till", Role::Terminal, TERMINAL, &["store-1"]),
        key("app", Role::App, APP, &[]),
        key("shop-backend", Role::Issuer, ISSUER, &[]),
        key("support", Role::Support, SUPPORT, &[]),
        key("auditor", Role::Auditor, AUDITOR, &[]),
        key("admin", Role::Admin, ADMIN, &[]),
        key("analyst", Role::Analyst, ANALYST, &[]),
    ]);
    match TokenKeys::from_settings(&token_settings(keys)).expect("valid token keys") {
        Some(tokens) => ring.with_tokens(tokens),
        None => ring,
    }
}

/// A server with member tokens, whose clock the test moves.
struct TokenServer {
    h: Harness,
    clock: Arc<ManualClock>,
}

async fn server_with(keys: &[(&str, &str)]) -> TokenServer {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap(),
    ));
    let engine = Engine::start(
        Arc::new(InMemoryStore::new()),
        Arc::new(demo_program()),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        EngineOptions::default(),
    )
    .await
    .expect("the engine starts");
    for _ in 0..500 {
        if engine.is_caught_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state = AppState::new(engine.clone(), ring(keys), LimitSettings::default());
    TokenServer {
        h: Harness {
            router: crate::app(state, Duration::from_secs(10)),
            engine,
        },
        clock,
    }
}

async fn server() -> TokenServer {
    server_with(&[("k1", SECRET_1)]).await
}

impl TokenServer {
    /// The same engine and clock behind a server restarted with other token keys.
    fn restarted_with(&self, keys: &[(&str, &str)]) -> TokenServer {
        let state = AppState::new(self.h.engine.clone(), ring(keys), LimitSettings::default());
        TokenServer {
            h: Harness {
                router: crate::app(state, Duration::from_secs(10)),
                engine: self.h.engine.clone(),
            },
            clock: self.clock.clone(),
        }
    }

    async fn issue(&self, member: &str) -> Answer {
        self.h
            .post("/v1/tokens", ISSUER, json!({"member_id": member}))
            .await
    }

    /// A fresh token for `member`, obtained by the issuer.
    async fn token(&self, member: &str) -> String {
        let answer = self.issue(member).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["token"].as_str().expect("a token").to_owned()
    }

    /// Enrolls `member` (with the app key) and credits 100 points to it (the app_installed
    /// activity, spendable at once), then waits for the read models to see it.
    async fn member_with_points(&self, member: &str) {
        assert_eq!(self.h.enroll(member).await.status, StatusCode::OK);
        let answer = self
            .h
            .post("/v1/activities", APP, activity(member, "welcome-app"))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        // Reads see it from now on.
        let head = self.h.head().await;
        self.h.engine.wait_for(head).await.unwrap();
    }
}

fn activity(member: &str, id: &str) -> Value {
    json!({"member_id": member, "activity_id": id, "kind": "app_installed", "occurred_at": AT})
}

fn redeem(redemption: &str, points: i64) -> Value {
    json!({"redemption_id": redemption, "occurred_at": AT, "points": points})
}

/// A token signed outside the server, with any header and claims.
fn forge(kid: &str, secret: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The claims the server issues, for `member`, as of the harness's start (10:00).
fn claims(member: &str) -> Value {
    let iat = Utc
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .unwrap()
        .timestamp();
    json!({"sub": member, "aud": "loyalty-app", "iss": "loyalty", "iat": iat, "nbf": iat,
           "exp": iat + 900, "azp": "shop-backend"})
}

fn assert_forbidden(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "{what}: {}",
        answer.body
    );
    assert_eq!(answer.content_type, crate::error::PROBLEM_JSON, "{what}");
    assert_eq!(problem_slug(answer), "forbidden", "{what}");
}

fn assert_unauthorized(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        answer.body
    );
    assert_eq!(problem_slug(answer), "unauthorized", "{what}");
}

// ------------------------------------------------------------------ obtaining tokens

#[tokio::test]
async fn an_issuer_obtains_a_short_lived_token_for_one_member() {
    let s = server().await;
    let answer = s.issue("m1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["member_id"], "m1");
    assert_eq!(answer.body["key_id"], "k1");
    // The server's clock (10:00) plus the default and maximum lifetime, 900 s.
    assert_eq!(answer.body["expires_at"], "2026-03-02T10:15:00Z");
    let token = answer.body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("k1"));
    assert_eq!(header.alg, Algorithm::HS256);

    let short =
        s.h.post(
            "/v1/tokens",
            ISSUER,
            json!({"member_id": "m1", "ttl_secs": 60}),
        )
        .await;
    assert_eq!(short.status, StatusCode::OK);
    assert_eq!(short.body["expires_at"], "2026-03-02T10:01:00Z");
}

#[tokio::test]
async fn a_token_request_above_the_maximum_lifetime_with_an_unknown_field_or_a_bad_id_is_422() {
    let s = server().await;
    let too_long =
        s.h.post(
            "/v1/tokens",
            ISSUER,
            json!({"member_id": "m1", "ttl_secs": 901}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_long.body["max"], 900);
    let unknown =
        s.h.post(
            "/v1/tokens",
            ISSUER,
            json!({"member_id": "m1", "scope": "all"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_id =
        s.h.post("/v1/tokens", ISSUER, json!({"member_id": "m 1"}))
            .await;
    assert_eq!(bad_id.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_slug(&bad_id), "invalid-id");
}

#[tokio::test]
async fn only_issuer_and_admin_keys_may_obtain_member_tokens() {
    let s = server().await;
    let body = json!({"member_id": "m1"});
    for (role, key) in [("issuer", ISSUER), ("admin", ADMIN)] {
        let answer = s.h.post("/v1/tokens", key, body.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "{role}: {}", answer.body);
    }
    for (role, key) in [
        ("terminal", TERMINAL),
        ("app", APP),
        ("support", SUPPORT),
        ("auditor", AUDITOR),
        ("analyst", ANALYST),
    ] {
        let answer = s.h.post("/v1/tokens", key, body.clone()).await;
        assert_forbidden(&answer, role);
    }
    let token = s.token("m1").await;
    let answer = s.h.post("/v1/tokens", &token, body).await;
    assert_forbidden(&answer, "a member token");
}

#[tokio::test]
async fn an_issuer_key_may_do_nothing_but_obtain_tokens() {
    let s = server().await;
    s.member_with_points("m1").await;
    assert_forbidden(&s.h.get("/v1/members/m1", ISSUER).await, "profile");
    assert_forbidden(
        &s.h.post("/v1/members/m1/redemptions", ISSUER, redeem("r1", 10))
            .await,
        "redeem",
    );
    assert_forbidden(&s.h.enroll_with("m2", ISSUER).await, "enroll");
}

#[tokio::test]
async fn a_server_without_token_keys_refuses_member_tokens_and_does_not_issue_them() {
    let s = server_with(&[]).await;
    let answer =
        s.h.post("/v1/tokens", ADMIN, json!({"member_id": "m1"}))
            .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    let forged = forge("k1", SECRET_1, claims("m1"));
    assert_unauthorized(&s.h.get("/v1/members/m1", &forged).await, "no keys");
}

// ------------------------------------------------------------------ what a token may do

#[tokio::test]
async fn an_app_with_a_member_token_reads_and_redeems_for_its_own_member() {
    let s = server().await;
    assert_eq!(s.h.enroll("m1").await.status, StatusCode::OK);
    let token = s.token("m1").await;

    let earned =
        s.h.post("/v1/activities", &token, activity("m1", "installed"))
            .await;
    assert_eq!(earned.status, StatusCode::OK, "{}", earned.body);
    let redeemed =
        s.h.post("/v1/members/m1/redemptions", &token, redeem("r1", 40))
            .await;
    assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.body);
    let cancelled =
        s.h.post(
            "/v1/members/m1/redemptions/r1/cancel",
            &token,
            json!({"occurred_at": AT}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);

    let min = cancelled.position();
    let profile =
        s.h.get(&format!("/v1/members/m1?min_position={min}"), &token)
            .await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    let history =
        s.h.get(
            &format!("/v1/members/m1/history?min_position={min}"),
            &token,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let rewards =
        s.h.get(
            &format!("/v1/members/m1/rewards?min_position={min}"),
            &token,
        )
        .await;
    assert_eq!(rewards.status, StatusCode::OK, "{}", rewards.body);

    // What the token did is recorded as done by the member, through the issuer's key.
    let events = s.h.get("/v1/members/m1/events", AUDITOR).await;
    assert!(
        events.body.to_string().contains("member:m1@shop-backend"),
        "{}",
        events.body
    );
}

#[tokio::test]
async fn a_member_token_is_403_on_another_members_profile_history_rewards_redemption_cancel_and_activity()
 {
    let s = server().await;
    s.member_with_points("m1").await;
    s.member_with_points("m2").await;
    let redeemed =
        s.h.post("/v1/members/m2/redemptions", APP, redeem("r2", 10))
            .await;
    assert_eq!(redeemed.status, StatusCode::OK);
    let head = s.h.head().await;
    s.h.engine.wait_for(head).await.unwrap();
    let token = s.token("m1").await;

    assert_forbidden(&s.h.get("/v1/members/m2", &token).await, "profile");
    assert_forbidden(&s.h.get("/v1/members/m2/history", &token).await, "history");
    assert_forbidden(&s.h.get("/v1/members/m2/rewards", &token).await, "rewards");
    assert_forbidden(
        &s.h.post("/v1/members/m2/redemptions", &token, redeem("r3", 10))
            .await,
        "redeem",
    );
    assert_forbidden(
        &s.h.post(
            "/v1/members/m2/redemptions/r2/cancel",
            &token,
            json!({"occurred_at": AT}),
        )
        .await,
        "cancel",
    );
    assert_forbidden(
        &s.h.post("/v1/activities", &token, activity("m2", "theirs"))
            .await,
        "activity",
    );
    // A percent-encoded path names the same member: still another member's.
    assert_forbidden(&s.h.get("/v1/members/%6D2", &token).await, "encoded");
    // Nothing was written for m2: the redemption stands.
    assert_eq!(s.h.head().await, head);
}

#[tokio::test]
async fn a_member_token_cannot_enroll_or_call_support_auditor_analyst_admin_or_terminal_routes() {
    let s = server().await;
    s.member_with_points("m1").await;
    let token = s.token("m1").await;
    let calls: [(&str, Method, &str, Value); 10] = [
        (
            "enroll",
            Method::POST,
            "/v1/members",
            json!({"member_id": "m9", "occurred_at": AT}),
        ),
        (
            "purchase",
            Method::POST,
            "/v1/purchases",
            purchase("m1", "t1", "store-1", "10.00"),
        ),
        (
            "adjust",
            Method::POST,
            "/v1/members/m1/adjustments",
            json!({"adjustment_id": "a1", "points": 1000, "reason_code": "x", "note": "n", "occurred_at": AT}),
        ),
        (
            "goodwill",
            Method::POST,
            "/v1/members/m1/goodwill",
            json!({"complaint_id": "c1", "points": 1000, "reason_code": "x", "note": "n", "occurred_at": AT}),
        ),
        ("events", Method::GET, "/v1/members/m1/events", Value::Null),
        (
            "as-of",
            Method::GET,
            "/v1/members/m1/as-of?as_of=2026-03-02T10:00:00Z",
            Value::Null,
        ),
        ("log", Method::GET, "/v1/log", Value::Null),
        ("liability", Method::GET, "/v1/liability", Value::Null),
        (
            "analytics",
            Method::GET,
            "/v1/analytics/members/m1",
            Value::Null,
        ),
        (
            "scheduler",
            Method::POST,
            "/v1/admin/scheduler/run",
            json!({}),
        ),
    ];
    let head = s.h.head().await;
    for (what, method, path, body) in calls {
        let body = (!body.is_null()).then(|| body.to_string());
        let answer = s.h.send(method, path, Some(&token), body).await;
        assert_forbidden(&answer, what);
    }
    assert_eq!(s.h.head().await, head, "nothing was written");
}

/// Every documented operation, called with a member token: the listed ones pass for the
/// token's own member and are 403 for another; every other authenticated one is 403. A new
/// route that lets member tokens in fails here until it is listed (and checked).
#[tokio::test]
async fn a_member_token_may_call_only_the_listed_routes_and_those_only_for_its_own_member() {
    let s = server().await;
    s.member_with_points("m1").await;
    s.member_with_points("m2").await;
    let token = s.token("m1").await;
    let doc = s.h.send(Method::GET, "/v1/openapi.json", None, None).await;
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut listed_seen = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"]
                .as_array()
                .and_then(|s| s.first())
                .is_some_and(|r| r.as_object().is_some_and(|o| o.is_empty()));
            if public {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let listed = MEMBER_TOKEN_ROUTES
                .iter()
                .any(|(m, p)| *m == method.as_str() && p == path);
            listed_seen += usize::from(listed);
            for member in ["m1", "m2"] {
                let concrete = path
                    .replace("{member_id}", member)
                    .replace("{redemption_id}", "sweep-r");
                let body = (method == Method::POST).then(|| {
                    if path == "/v1/activities" {
                        activity(member, "sweep-a").to_string()
                    } else {
                        "{}".to_owned()
                    }
                });
                let answer =
                    s.h.send(method.clone(), &concrete, Some(&token), body)
                        .await;
                let what = format!("{method} {path} for {member}");
                if listed && member == "m1" {
                    assert!(
                        answer.status != StatusCode::FORBIDDEN
                            && answer.status != StatusCode::UNAUTHORIZED,
                        "{what}: {} {}",
                        answer.status,
                        answer.body
                    );
                } else {
                    assert_forbidden(&answer, &what);
                }
            }
        }
    }
    assert_eq!(
        listed_seen,
        MEMBER_TOKEN_ROUTES.len(),
        "every route listed for member tokens is documented"
    );
}

#[tokio::test]
async fn an_app_key_still_acts_for_any_member() {
    let s = server().await;
    s.member_with_points("m1").await;
    s.member_with_points("m2").await;
    for member in ["m1", "m2"] {
        let redeemed =
            s.h.post(
                &format!("/v1/members/{member}/redemptions"),
                APP,
                redeem("r1", 10),
            )
            .await;
        assert_eq!(redeemed.status, StatusCode::OK, "{}", redeemed.body);
        let min = redeemed.position();
        let profile =
            s.h.get(&format!("/v1/members/{member}?min_position={min}"), APP)
                .await;
        assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    }
}

// ------------------------------------------------------------------ refused tokens

#[tokio::test]
async fn a_member_token_is_401_once_the_servers_clock_passed_its_expiry_and_the_leeway() {
    let s = server().await;
    s.member_with_points("m1").await;
    let token = s.token("m1").await;
    let head = s.h.head().await;
    s.h.engine.wait_for(head).await.unwrap();
    // Expires at 10:15; 30 s of leeway.
    s.clock.advance(TimeDelta::seconds(900 + 29));
    assert_eq!(
        s.h.get("/v1/members/m1", &token).await.status,
        StatusCode::OK,
        "within the leeway"
    );
    s.clock.advance(TimeDelta::seconds(1));
    let answer = s.h.get("/v1/members/m1", &token).await;
    assert_unauthorized(&answer, "expired");
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{}",
        answer.body
    );
    // A new token, issued on the server's clock, works again.
    let fresh = s.token("m1").await;
    assert_eq!(
        s.h.get("/v1/members/m1", &fresh).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_signed_with_an_unknown_key_id_or_a_wrong_secret_is_401() {
    let s = server().await;
    s.member_with_points("m1").await;
    let unknown_kid = forge("k9", SECRET_1, claims("m1"));
    assert_unauthorized(&s.h.get("/v1/members/m1", &unknown_kid).await, "kid");
    let wrong_secret = forge("k1", SECRET_2, claims("m1"));
    assert_unauthorized(&s.h.get("/v1/members/m1", &wrong_secret).await, "secret");
    // The same claims with the right key pass: the refusals above are the key's.
    let right = forge("k1", SECRET_1, claims("m1"));
    assert_eq!(
        s.h.get("/v1/members/m1", &right).await.status,
        StatusCode::OK
    );
    // A JWT-shaped credential that is no token at all.
    assert_unauthorized(&s.h.get("/v1/members/m1", "a.b.c").await, "garbage");
}

#[tokio::test]
async fn a_token_for_another_audience_or_from_another_issuer_is_401() {
    let s = server().await;
    s.member_with_points("m1").await;
    let mut other_audience = claims("m1");
    other_audience["aud"] = json!("another-app");
    let token = forge("k1", SECRET_1, other_audience);
    assert_unauthorized(&s.h.get("/v1/members/m1", &token).await, "audience");
    let mut other_issuer = claims("m1");
    other_issuer["iss"] = json!("someone-else");
    let token = forge("k1", SECRET_1, other_issuer);
    assert_unauthorized(&s.h.get("/v1/members/m1", &token).await, "issuer");
    let mut no_audience = claims("m1");
    no_audience.as_object_mut().unwrap().remove("aud");
    let token = forge("k1", SECRET_1, no_audience);
    assert_unauthorized(&s.h.get("/v1/members/m1", &token).await, "no audience");
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_verify_and_new_tokens_carry_the_new_key_id() {
    let before = server().await;
    before.member_with_points("m1").await;
    let head = before.h.head().await;
    before.h.engine.wait_for(head).await.unwrap();
    let old = before.token("m1").await;

    // The new key listed first signs; the old one, still listed, verifies.
    let rotated = before.restarted_with(&[("k2", SECRET_2), ("k1", SECRET_1)]);
    assert_eq!(
        rotated.h.get("/v1/members/m1", &old).await.status,
        StatusCode::OK
    );
    let issued = rotated.issue("m1").await;
    assert_eq!(issued.body["key_id"], "k2");
    let new = issued.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some("k2")
    );
    assert_eq!(
        rotated.h.get("/v1/members/m1", &new).await.status,
        StatusCode::OK
    );

    // Once the old key is removed, its tokens are refused; the new ones still pass.
    let retired = before.restarted_with(&[("k2", SECRET_2)]);
    assert_unauthorized(&retired.h.get("/v1/members/m1", &old).await, "retired");
    assert_eq!(
        retired.h.get("/v1/members/m1", &new).await.status,
        StatusCode::OK
    );
}

impl Harness {
    async fn enroll_with(&self, member: &str, key: &str) -> Answer {
        self.post(
            "/v1/members",
            key,
            json!({"member_id": member, "occurred_at": AT}),
        )
        .await
    }
}

impl Answer {
    fn position(&self) -> String {
        self.body["position"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
