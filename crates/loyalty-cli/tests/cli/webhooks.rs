//! Webhooks from real `loyalty serve` processes, delivered to a receiver this test runs on
//! loopback:
//!
//! - a server killed with SIGKILL in the middle of a load and started again on the same file
//!   loses no message: every purchase it acknowledged reaches the receiver, a message sent
//!   twice (at least once) carries the same `webhook-id` both times, every signature verifies
//!   with the Standard Webhooks reference library, and each member's messages first arrive in
//!   the log's order;
//! - two servers on one EventStoreDB deliver each message once (only the lease holder
//!   delivers), and when the holder is killed the other one takes over and loses nothing.

use crate::support;
use std::collections::{BTreeMap, HashMap, HashSet};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};
use support::{Server, repo_root};

const TERMINAL: &str = "demo-terminal-key";
const APP: &str = "demo-app-key";
const ADMIN: &str = "demo-admin-key";
const STORE: &str = "paris-opera";
const LEASE_TTL_SECS: u64 = 3;

/// What the receiver got: one entry per request, in arrival order.
#[derive(Debug, Clone)]
struct Received {
    webhook_id: String,
    body: Value,
}

/// An HTTP receiver on loopback that answers 200 after `delay` and keeps every request whose
/// signature verifies (a request that does not verify fails the test at the end).
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<parking_lot::Mutex<Vec<Received>>>,
    unverified: Arc<parking_lot::Mutex<Vec<String>>>,
    secret: Arc<parking_lot::Mutex<Option<String>>>,
}

impl Receiver {
    async fn start(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let receiver = Receiver {
            url,
            received: Arc::default(),
            unverified: Arc::default(),
            secret: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    state.take(&headers, &body);
                    StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    fn take(&self, headers: &HeaderMap, body: &[u8]) {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let secret = self.secret.lock().clone();
        let verified = secret.is_some_and(|secret| {
            standardwebhooks::Webhook::new(&secret)
                .and_then(|hook| hook.verify(body, headers))
                .is_ok()
        });
        if !verified {
            self.unverified.lock().push(id);
            return;
        }
        let body: Value = serde_json::from_slice(body).expect("a JSON payload");
        self.received.lock().push(Received {
            webhook_id: id,
            body,
        });
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    /// The transaction ids of the purchases received.
    fn transactions(&self) -> HashSet<String> {
        self.received()
            .iter()
            .filter(|r| r.body["type"] == "purchase.recorded")
            .filter_map(|r| r.body["data"]["transaction_id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The shared store the servers run on.
enum Backend {
    Sqlite(PathBuf),
    EventStoreDb(String),
}

/// A `loyalty serve` process on `store`, in `dir`, delivering to loopback with short retries.
fn start_server(store: &Backend, dir: &Path) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loyalty"));
    command
        .arg("--config")
        .arg(repo_root().join("config/loyalty.toml"))
        .arg("serve")
        .current_dir(dir)
        .env("LOYALTY_PROGRAM", repo_root().join("config/program.toml"))
        .env("LOYALTY_SNAPSHOTS__EVERY_EVENTS", "0")
        .env("LOYALTY_SERVER__LISTEN", "127.0.0.1:0")
        .env(
            "LOYALTY_SCHEDULER__LEASE_TTL_SECS",
            LEASE_TTL_SECS.to_string(),
        )
        .env("LOYALTY_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
        .env("LOYALTY_WEBHOOKS__LOG_FLUSH_MS", "50")
        .env("LOYALTY_WEBHOOKS__INITIAL_BACKOFF_MS", "50")
        .env("LOYALTY_WEBHOOKS__MAX_BACKOFF_MS", "500")
        .env("RUST_LOG", "warn");
    match store {
        Backend::Sqlite(path) => {
            command
                .env("LOYALTY_STORE__KIND", "sqlite")
                .env("LOYALTY_STORE__PATH", path);
        }
        Backend::EventStoreDb(url) => {
            command
                .env("LOYALTY_STORE__KIND", "eventstoredb")
                .env("LOYALTY_STORE__URL", url);
        }
    }
    Server::spawn(command)
}

async fn post(http: &reqwest::Client, url: &str, key: &str, path: &str, body: &Value) -> Value {
    let response = http
        .post(format!("{url}{path}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// Creates the endpoint and tells the receiver its secret.
async fn create_endpoint(http: &reqwest::Client, server: &Server, receiver: &Receiver) {
    let body = json!({
        "endpoint_id": "crm",
        "url": receiver.url,
        "event_types": ["purchase.recorded"],
        "max_in_flight": 4,
    });
    let created = post(http, &server.url, ADMIN, "/v1/webhooks/endpoints", &body).await;
    let secret = created["secret"].as_str().expect("the secret").to_owned();
    *receiver.secret.lock() = Some(secret);
}

async fn enroll(http: &reqwest::Client, url: &str, member: &str) {
    let body = json!({"member_id": member, "occurred_at": Utc::now()});
    post(http, url, APP, "/v1/members", &body).await;
}

/// Purchases from `terminals` terminals, `per_terminal` each, spread over `members` and over
/// `targets`; returns the transaction ids acknowledged (a killed server acknowledges nothing).
async fn load(
    http: &reqwest::Client,
    targets: Vec<String>,
    members: usize,
    terminals: usize,
    per_terminal: usize,
    tag: &str,
) -> Vec<String> {
    let runs = (0..terminals).map(|terminal| {
        let (http, targets) = (http.clone(), targets.clone());
        let tag = tag.to_owned();
        async move {
            let mut acknowledged = Vec::new();
            for n in 0..per_terminal {
                let url = &targets[(terminal + n) % targets.len()];
                let member = format!("m-{}", (terminal + n) % members);
                let txn = format!("{tag}-{terminal}-{n}");
                let body = json!({
                    "member_id": member, "transaction_id": txn, "store": STORE,
                    "terminal": "till-1", "occurred_at": Utc::now(), "currency": "EUR",
                    "lines": [{"sku": "LATTE", "category": "coffee", "quantity": "1",
                               "amount": "3.00"}],
                });
                let sent = http
                    .post(format!("{url}/v1/purchases"))
                    .bearer_auth(TERMINAL)
                    .json(&body)
                    .send()
                    .await;
                if let Ok(response) = sent
                    && response.status().is_success()
                {
                    acknowledged.push(txn);
                }
            }
            acknowledged
        }
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Waits until the receiver holds every one of `transactions`; panics with the missing ones.
async fn all_received(receiver: &Receiver, transactions: &[String], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = receiver.transactions();
        let missing: Vec<&String> = transactions.iter().filter(|t| !got.contains(*t)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} acknowledged purchases never reached the receiver, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn position(text: &str) -> (u64, u64) {
    let (commit, prepare) = text.split_once('/').expect("commit/prepare");
    (
        commit.parse().expect("commit"),
        prepare.parse().expect("prepare"),
    )
}

/// At least once, never a different id for the same message, every signature good, and each
/// member's messages first received in the log's order.
fn check_deliveries(receiver: &Receiver) {
    assert_eq!(
        *receiver.unverified.lock(),
        Vec::<String>::new(),
        "requests whose signature did not verify"
    );
    let received = receiver.received();
    let mut ids_of: HashMap<String, HashSet<String>> = HashMap::new();
    let mut first_seen: HashSet<String> = HashSet::new();
    let mut last_of_member: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &received {
        let txn = r.body["data"]["transaction_id"]
            .as_str()
            .expect("transaction id")
            .to_owned();
        assert_eq!(
            r.body["id"], r.webhook_id,
            "the payload names its webhook-id"
        );
        ids_of
            .entry(txn.clone())
            .or_default()
            .insert(r.webhook_id.clone());
        if first_seen.insert(r.webhook_id.clone()) {
            let member = r.body["member_id"].as_str().expect("member").to_owned();
            let at = position(r.body["position"].as_str().expect("position"));
            if let Some(before) = last_of_member.insert(member.clone(), at) {
                assert!(
                    before < at,
                    "member {member}: message at {at:?} arrived before the one at {before:?}"
                );
            }
        }
    }
    for (txn, ids) in ids_of {
        assert_eq!(
            ids.len(),
            1,
            "purchase {txn} came with several ids: {ids:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_delivery_resumes_from_its_checkpoint_and_loses_no_message() {
    // Given a server on a SQLite file, an endpoint, and a receiver that takes 5 ms per request
    let dir = tempfile::tempdir().expect("directory");
    let store = Backend::Sqlite(dir.path().join("loyalty.sqlite"));
    let receiver = Receiver::start(Duration::from_millis(5)).await;
    let http = reqwest::Client::new();
    let mut server = start_server(&store, dir.path());
    create_endpoint(&http, &server, &receiver).await;
    for m in 0..8 {
        enroll(&http, &server.url, &format!("m-{m}")).await;
    }

    // When the server is killed with SIGKILL in the middle of a purchase load
    let (loader, targets) = (http.clone(), vec![server.url.clone()]);
    let loading = tokio::spawn(async move { load(&loader, targets, 8, 8, 60, "K").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill();
    let mut acknowledged = loading.await.expect("load");
    assert!(!acknowledged.is_empty(), "nothing was acknowledged");
    let before_restart = receiver.transactions().len();
    assert!(
        before_restart < acknowledged.len(),
        "the test needs a backlog at the kill ({before_restart} of {} delivered)",
        acknowledged.len()
    );

    // And started again on the same file, with more purchases after
    let server = start_server(&store, dir.path());
    acknowledged.extend(load(&http, vec![server.url.clone()], 8, 4, 10, "R").await);

    // Then every acknowledged purchase reaches the receiver, signed, once per id, in order
    all_received(&receiver, &acknowledged, Duration::from_secs(60)).await;
    check_deliveries(&receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_deliver_each_message_once_and_the_survivor_takes_over() {
    // Given two servers on one EventStoreDB, an endpoint, and a receiver
    let esdb_server = loyalty_esdb_testserver::TestServer::start()
        .await
        .expect("test server");
    let store = Backend::EventStoreDb(esdb_server.url());
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let receiver = Receiver::start(Duration::from_millis(1)).await;
    let http = reqwest::Client::new();
    let mut servers: Vec<Server> = dirs
        .iter()
        .map(|d| start_server(&store, d.path()))
        .collect();
    create_endpoint(&http, &servers[0], &receiver).await;
    for m in 0..4 {
        enroll(&http, &servers[m % 2].url, &format!("m-{m}")).await;
    }

    // When purchases go through both
    let targets: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let first = load(&http, targets, 4, 4, 20, "A").await;
    all_received(&receiver, &first, Duration::from_secs(30)).await;

    // Then each message arrived exactly once: one server delivers
    let received = receiver.received();
    let distinct: HashSet<&String> = received.iter().map(|r| &r.webhook_id).collect();
    assert_eq!(
        distinct.len(),
        received.len(),
        "a message was delivered twice without any failure"
    );

    // When the first server is killed (whichever held the lease) and the load goes on
    servers[0].kill();
    let second = load(&http, vec![servers[1].url.clone()], 4, 4, 10, "B").await;

    // Then the survivor delivers everything, within the lease's time-to-live and more
    all_received(&receiver, &second, Duration::from_secs(30)).await;
    check_deliveries(&receiver);
}
