//! Starts the real server in process on port 0 with a temporary SQLite file and a manual clock,
//! and talks to it over HTTP like any client.
#![allow(dead_code)] // each test file uses a different part of the support

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use figment::Figment;
use figment::providers::{Format, Toml};
use loyalty_cli::RunningServer;
use loyalty_cli::settings::Settings;
use loyalty_engine::ManualClock;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

pub const TERMINAL: &str = "demo-terminal-key";
pub const APP: &str = "demo-app-key";
pub const SUPPORT: &str = "demo-support-key";
pub const AUDITOR: &str = "demo-auditor-key";
pub const ADMIN: &str = "demo-admin-key";
pub const ANALYST: &str = "demo-analyst-key";
pub const ISSUER: &str = "demo-issuer-key";

/// The store the demo terminal key is bound to.
pub const STORE: &str = "paris-marais";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The business day every test starts on: a fixed instant keeps the tests reproducible.
pub fn day_one() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// An HTTP answer: status, the replay header, the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub replayed_header: bool,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// The problem type slug of an error answer (`insufficient-points`).
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("https://loyalty.dev/problems/"))
            .unwrap_or("")
    }

    /// The log position a write reached.
    pub fn position(&self) -> String {
        self.body["position"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A server with its own temporary store file and clock.
pub struct TestServer {
    pub server: RunningServer,
    pub clock: Arc<ManualClock>,
    pub settings: Settings,
    http: reqwest::Client,
    // Dropped last: the store file lives in it.
    dir: TempDir,
}

impl TestServer {
    /// The shipped settings (demo keys), on port 0, with a fresh SQLite file and no background
    /// scheduler (tests run it on demand).
    pub async fn start() -> TestServer {
        Self::start_with_settings(&[]).await
    }

    /// Like [`TestServer::start`], with some settings overridden (`("limits.read_wait_ms", 200)`).
    pub async fn start_with_settings(overrides: &[(&str, Value)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut figment = Figment::new()
            .merge(Toml::file(repo_root().join("config/loyalty.toml")))
            .merge(("program", repo_root().join("config/program.toml")))
            .merge(("server.listen", "127.0.0.1:0"))
            .merge(("store.kind", "sqlite"))
            .merge(("store.path", dir.path().join("loyalty.sqlite")))
            .merge(("snapshots.dir", dir.path().join("snapshots")))
            .merge(("scheduler.interval_secs", 0));
        for (key, value) in overrides {
            figment = figment.merge((*key, value.clone()));
        }
        let settings = Settings::from_figment(figment).expect("test settings are valid");
        let clock = Arc::new(ManualClock::new(day_one()));
        Self::start_with(settings, clock, dir).await
    }

    /// Like [`TestServer::start`], with the clock set to `now`: a browser test uses the
    /// machine's own time, so that what the page sends (`occurred_at`) and what it reads
    /// agree with the server's clock.
    pub async fn start_at(now: DateTime<Utc>) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let figment = Figment::new()
            .merge(Toml::file(repo_root().join("config/loyalty.toml")))
            .merge(("program", repo_root().join("config/program.toml")))
            .merge(("server.listen", "127.0.0.1:0"))
            .merge(("store.kind", "sqlite"))
            .merge(("store.path", dir.path().join("loyalty.sqlite")))
            .merge(("snapshots.dir", dir.path().join("snapshots")))
            .merge(("scheduler.interval_secs", 0));
        let settings = Settings::from_figment(figment).expect("test settings are valid");
        Self::start_with(settings, Arc::new(ManualClock::new(now)), dir).await
    }

    async fn start_with(settings: Settings, clock: Arc<ManualClock>, dir: TempDir) -> TestServer {
        let server = loyalty_cli::start_server(settings.clone(), clock.clone())
            .await
            .expect("the server starts");
        TestServer {
            server,
            clock,
            settings,
            http: reqwest::Client::new(),
            dir,
        }
    }

    /// Stops the server (gracefully) and starts a new one on the same file and clock.
    pub async fn restart(self) -> TestServer {
        let TestServer {
            server,
            clock,
            settings,
            dir,
            ..
        } = self;
        server.stop().await.expect("the server stops cleanly");
        Self::start_with(settings, clock, dir).await
    }

    /// Stops the server and runs `loyalty verify` on its store; true when clean.
    pub async fn stop_and_verify(self) -> bool {
        let TestServer {
            server,
            settings,
            dir,
            ..
        } = self;
        server.stop().await.expect("the server stops cleanly");
        let clean = loyalty_cli::offline::verify(&settings)
            .await
            .expect("verify runs");
        drop(dir);
        clean
    }

    pub fn now(&self) -> DateTime<Utc> {
        use loyalty_engine::Clock;
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let replayed_header = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            replayed_header,
            content_type,
            body,
        }
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("the request is sent");
        Self::answer(response).await
    }

    /// POST with a raw body (malformed JSON, oversize bodies).
    pub async fn post_raw(&self, key: Option<&str>, path: &str, body: String) -> Answer {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        Self::answer(request.send().await.expect("the request is sent")).await
    }

    pub async fn get(&self, key: &str, path: &str) -> Answer {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("the request is sent");
        Self::answer(response).await
    }

    pub async fn get_public(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("the request is sent");
        Self::answer(response).await
    }

    /// Any method, with a JSON body or none (PATCH, DELETE...).
    pub async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::answer(request.send().await.expect("the request is sent")).await
    }

    // ------------------------------------------------------------ the calls tests make often

    pub async fn enroll(&self, member: &str) -> Answer {
        let body = serde_json::json!({"member_id": member, "occurred_at": self.now()});
        self.post(APP, "/v1/members", &body).await
    }

    /// A purchase of one line of `amount` (a money string) in the default category.
    pub async fn purchase(&self, member: &str, transaction: &str, amount: &str) -> Answer {
        self.post(
            TERMINAL,
            "/v1/purchases",
            &purchase_body(member, transaction, amount, self.now()),
        )
        .await
    }

    pub async fn refund(&self, transaction: &str, refund: &str, amount: &str) -> Answer {
        let body = serde_json::json!({
            "refund_id": refund, "transaction_id": transaction, "store": STORE,
            "occurred_at": self.now(), "currency": "EUR", "amount": amount,
        });
        self.post(TERMINAL, "/v1/refunds", &body).await
    }

    pub async fn redeem_points(&self, member: &str, redemption: &str, points: i64) -> Answer {
        let body = serde_json::json!({
            "redemption_id": redemption, "occurred_at": self.now(), "points": points,
        });
        self.post(APP, &format!("/v1/members/{member}/redemptions"), &body)
            .await
    }

    /// The member's profile as the app sees it after `position` (read-your-writes).
    pub async fn profile_after(&self, member: &str, position: &str) -> Answer {
        self.get(
            APP,
            &format!("/v1/members/{member}?min_position={position}"),
        )
        .await
    }

    /// How many events of the ledger (member and reservation streams) the auditors' log holds.
    pub async fn log_len(&self) -> usize {
        let mut after: Option<String> = None;
        let mut count = 0;
        loop {
            let path = match &after {
                Some(a) => format!("/v1/log?limit=500&after={a}"),
                None => "/v1/log?limit=500".to_owned(),
            };
            let page = self.get(AUDITOR, &path).await;
            assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
            let events = page.body["entries"].as_array().cloned().unwrap_or_default();
            // The ledger's events only: leases and checkpoints are written in the background.
            count += events
                .iter()
                .filter(|e| {
                    e["stream"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("member-") || s.starts_with("txn-"))
                })
                .count();
            match page.body["next_after"].as_str() {
                Some(next) if !events.is_empty() => after = Some(next.to_owned()),
                _ => return count,
            }
        }
    }

    pub async fn run_scheduler(&self) -> Answer {
        self.post(ADMIN, "/v1/admin/scheduler/run", &serde_json::json!({}))
            .await
    }
}

/// Polls `condition` every 10 ms, at most 5 seconds (process managers work in the
/// background); returns whether it held.
pub async fn eventually(mut condition: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

pub fn purchase_body(member: &str, transaction: &str, amount: &str, at: DateTime<Utc>) -> Value {
    serde_json::json!({
        "member_id": member, "transaction_id": transaction, "store": STORE,
        "terminal": "till-1", "occurred_at": at, "currency": "EUR",
        "lines": [{"sku": "LATTE", "category": "coffee", "quantity": "1", "amount": amount}],
    })
}
