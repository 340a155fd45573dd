//! Several servers on one store, for real: three `loyalty serve` processes on one shared
//! store, driven over HTTP the way a load balancer spreads requests. The same scenario runs on
//! EventStoreDB (the wire-compatible test server, hosted by this test) and on PostgreSQL (when
//! `LOYALTY_TEST_POSTGRES_URL` is set; CI sets it):
//!
//! - concurrent redemptions for one member, spread over the three, never overdraw: exactly
//!   floor(B / C) succeed;
//! - concurrent retries of one purchase through different servers record it once;
//! - a write through one server is read through another with `min_position`;
//! - a server killed with SIGKILL in the middle of a load loses nothing it acknowledged;
//! - the scheduler runs on the server holding its lease only; when that process is killed
//!   (no release), another takes the lease once it lapses, and expiry still happens exactly
//!   once per lot;
//! - `loyalty verify` is clean on the store afterwards;
//! - on EventStoreDB, an event another application wrote to the shared cluster (another
//!   stream, or even a member stream) never stalls the read models: every server turns
//!   ready, and the one in a member stream is counted as unreadable.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loyalty_esdb_testserver::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Server, repo_root};

const TERMINAL: &str = "demo-terminal-key";
const APP: &str = "demo-app-key";
const AUDITOR: &str = "demo-auditor-key";
const STORE: &str = "paris-opera";
/// Leases lapse after 3 s without renewal; the scheduler runs every second.
const LEASE_TTL_SECS: u64 = 3;
/// How far back the test records history (so that lots are already past their expiry).
const BACKDATED_DAYS: i64 = 70;

/// One point per euro, nothing pending, lots expire a month after they become spendable.
const PROGRAM: &str = r#"
[program]
name = "Replicas"
currency = "EUR"
timezone = "Europe/Paris"
rules_version = "replicas-1"

[earning]
points_per_unit = "1"

[pending]
days = 0

[expiry]
policy = "lot_months"
months = 1

[tiers]
metric = "qualifying_spend"
window = { kind = "rolling", months = 12 }
review = { kind = "anniversary" }

[[tiers.levels]]
name = "Member"
threshold = "0"
multiplier = "1"

[[rewards]]
id = "coffee"
name = "A coffee"
cost = 30

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"
"#;

/// The shared store the servers run on.
enum Backend {
    EventStoreDb(String),
    Postgres { url: String, schema: String },
}

impl Backend {
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Backend::EventStoreDb(url) => vec![
                ("LOYALTY_STORE__KIND", "eventstoredb".to_owned()),
                ("LOYALTY_STORE__URL", url.clone()),
            ],
            Backend::Postgres { url, schema } => vec![
                ("LOYALTY_STORE__KIND", "postgres".to_owned()),
                ("LOYALTY_STORE__URL", url.clone()),
                ("LOYALTY_STORE__SCHEMA", schema.clone()),
            ],
        }
    }
}

/// The `loyalty` binary set up for `store`, the test's program, and `dir` as its directory.
fn loyalty(store: &Backend, program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loyalty"));
    command
        .arg("--config")
        .arg(repo_root().join("config/loyalty.toml"))
        .current_dir(dir)
        .env("LOYALTY_PROGRAM", program)
        .env("LOYALTY_SNAPSHOTS__EVERY_EVENTS", "0")
        .env("RUST_LOG", "warn");
    for (key, value) in store.env() {
        command.env(key, value);
    }
    command
}

/// A `loyalty serve` process on `store`, with the test's program, in `dir`.
fn start_server(store: &Backend, program: &Path, dir: &Path) -> Server {
    let mut command = loyalty(store, program, dir);
    command
        .arg("serve")
        .env("LOYALTY_SERVER__LISTEN", "127.0.0.1:0")
        .env("LOYALTY_SCHEDULER__INTERVAL_SECS", "1")
        .env(
            "LOYALTY_SCHEDULER__LEASE_TTL_SECS",
            LEASE_TTL_SECS.to_string(),
        )
        .env(
            "LOYALTY_TIME__MAX_BEHIND_SECS",
            ((BACKDATED_DAYS + 20) * 86_400).to_string(),
        );
    Server::spawn(command)
}

struct Answer {
    status: StatusCode,
    body: Value,
}

async fn post(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    path: &str,
    body: &Value,
) -> Answer {
    let response = http
        .post(format!("{}{path}", server.url))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    answer(response).await
}

async fn get(http: &reqwest::Client, server: &Server, key: Option<&str>, path: &str) -> Answer {
    let mut request = http.get(format!("{}{path}", server.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    answer(request.send().await.expect("request sent")).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

/// A gauge of the server's `/metrics` (admin keys only).
async fn metric(http: &reqwest::Client, server: &Server, name: &str) -> u64 {
    let page = get(http, server, Some("demo-admin-key"), "/metrics").await;
    let text = page.body.as_str().expect("metrics are text").to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in the metrics"))
}

async fn enroll(http: &reqwest::Client, server: &Server, member: &str, at: DateTime<Utc>) {
    let body = json!({"member_id": member, "occurred_at": at});
    let answer = post(http, server, APP, "/v1/members", &body).await;
    assert!(
        answer.status.is_success(),
        "enroll {member}: {:?}",
        answer.body
    );
}

fn purchase_body(member: &str, transaction: &str, amount: &str, at: DateTime<Utc>) -> Value {
    json!({
        "member_id": member, "transaction_id": transaction, "store": STORE,
        "terminal": "till-1", "occurred_at": at, "currency": "EUR",
        "lines": [{"sku": "LATTE", "category": "coffee", "quantity": "1", "amount": amount}],
    })
}

/// How many events of `event_type` the member's stream holds, as an auditor reads it.
async fn count_events(
    http: &reqwest::Client,
    server: &Server,
    member: &str,
    event_type: &str,
) -> usize {
    let page = get(
        http,
        server,
        Some(AUDITOR),
        &format!("/v1/members/{member}/events?limit=500"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .count()
}

/// Polls `condition` every 100 ms for at most `within`.
async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Writes an event the way another application sharing the cluster would: through the raw
/// client, with metadata that is not our envelope.
async fn write_foreign(esdb: &str, stream: &str) {
    let settings: eventstore::ClientSettings = esdb.parse().expect("connection string");
    let client = eventstore::Client::new(settings).expect("client");
    let event = eventstore::EventData::binary("InvoiceIssued", br#"{"invoice":7}"#.to_vec().into())
        .metadata(br#"{"traceId":"4bf92f35"}"#.to_vec().into());
    client
        .append_to_stream(stream, &eventstore::AppendToStreamOptions::default(), event)
        .await
        .expect("foreign append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_on_one_eventstoredb_share_the_work_and_never_overdraw() {
    // Given an EventStoreDB that another application also writes to
    let esdb_server = TestServer::start().await.expect("test server");
    let esdb = esdb_server.url();
    write_foreign(&esdb, "invoices-7").await;
    write_foreign(&esdb, "member-zed").await;
    scenario(Backend::EventStoreDb(esdb), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_on_one_postgresql_database_share_the_work_and_never_overdraw() {
    let Ok(url) = std::env::var("LOYALTY_TEST_POSTGRES_URL") else {
        eprintln!("skipped: LOYALTY_TEST_POSTGRES_URL is not set (CI sets it)");
        return;
    };
    let schema = format!("replicas_{}", uuid::Uuid::new_v4().simple());
    scenario(
        Backend::Postgres {
            url: url.clone(),
            schema: schema.clone(),
        },
        0,
    )
    .await;
    loyalty_store_postgres::drop_schema(&url, &schema, Duration::from_secs(10))
        .await
        .expect("drop the test's schema");
}

/// The scenario, on `store`, where `unreadable` events of member streams were written by
/// another application before the servers started.
async fn scenario(store: Backend, unreadable: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = dir.path().join("program.toml");
    std::fs::write(&program, PROGRAM).expect("write the program");

    // When three servers start on it
    let mut servers: Vec<Server> = (0..3)
        .map(|i| {
            let own = dir.path().join(format!("server-{i}"));
            std::fs::create_dir_all(&own).expect("dir");
            start_server(&store, &program, &own)
        })
        .collect();
    let http = reqwest::Client::new();

    // Then each one turns ready (foreign events notwithstanding), and counts the events it
    // cannot read in member streams
    for server in &servers {
        assert!(
            eventually(Duration::from_secs(30), async || {
                get(&http, server, None, "/readyz").await.status == StatusCode::OK
            })
            .await,
            "{} never turned ready",
            server.url
        );
        assert_eq!(
            metric(&http, server, "loyalty_unreadable_events").await,
            unreadable
        );
    }

    // Given a member with a balance of B points, bought through one server and read through
    // another with the position of the write
    let now = Utc::now();
    enroll(&http, &servers[0], "racer", now).await;
    let bought = post(
        &http,
        &servers[1],
        TERMINAL,
        "/v1/purchases",
        &purchase_body("racer", "R-1", "1000.00", now),
    )
    .await;
    assert!(bought.status.is_success(), "{:?}", bought.body);
    let position = bought.body["position"]
        .as_str()
        .expect("a position")
        .to_owned();
    let profile = get(
        &http,
        &servers[2],
        Some(APP),
        &format!("/v1/members/racer?min_position={position}"),
    )
    .await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    let balance = profile.body["balance"]["available"]
        .as_i64()
        .expect("points");
    assert!(balance >= 1_000, "balance {balance}");

    redemptions_race(&http, &servers, balance).await;

    // When a till retries one purchase through all three servers at once
    let retry = purchase_body("racer", "R-2", "12.00", Utc::now());
    let retries = servers
        .iter()
        .map(|server| post(&http, server, TERMINAL, "/v1/purchases", &retry));
    let answers = futures::future::join_all(retries).await;
    // Then every attempt is answered as success, and the purchase is recorded once
    for a in &answers {
        assert!(a.status.is_success(), "{:?}", a.body);
    }
    assert_eq!(
        count_events(&http, &servers[0], "racer", "PurchaseRecorded").await,
        2
    );
    // And the three servers' read models agree, once each has read up to the last write
    let last = answers
        .iter()
        .filter_map(|a| a.body["position"].as_str())
        .max_by_key(|p| p.split('/').next().and_then(|c| c.parse::<u64>().ok()))
        .expect("a position")
        .to_owned();
    let mut seen = Vec::new();
    for server in &servers {
        let page = get(
            &http,
            server,
            Some(AUDITOR),
            &format!("/v1/totals?min_position={last}"),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let mut totals = page.body["totals"].clone();
        // Where each server's projection stands differs (leases are renewed meanwhile), and
        // so does the instant each answered as of.
        if let Some(t) = totals.as_object_mut() {
            t.remove("position");
            t.remove("as_of");
        }
        seen.push(totals);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");

    let holder = scheduler_moves_when_its_holder_is_killed(&http, &mut servers, now).await;
    nothing_acknowledged_is_lost_when_a_server_is_killed(&http, &mut servers, holder).await;

    // And `verify` finds the read models rebuilt from the log equal to the live ones; the only
    // differences it lists are the foreign events it could not read
    drop(servers);
    let verified = loyalty(&store, &program, dir.path())
        .arg("verify")
        .output()
        .expect("run loyalty verify");
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no report ({e}): {}",
            String::from_utf8_lossy(&verified.stderr)
        )
    });
    assert_eq!(report["unreadable_events"], unreadable, "{report}");
    assert_eq!(verified.status.success(), unreadable == 0, "{report}");
    for difference in report["differences"].as_array().expect("differences") {
        let text = difference.as_str().expect("text");
        assert!(text.contains("member-zed"), "verify: {text}");
    }
}

/// 48 redemptions of C = 70 points race, spread over the three servers: exactly floor(B / C)
/// succeed, the others are refused for want of points.
async fn redemptions_race(http: &reqwest::Client, servers: &[Server], balance: i64) {
    let cost = 70;
    let attempts = 48;
    let redemptions = (0..attempts).map(|i| {
        let http = http.clone();
        let server = &servers[i % 3];
        async move {
            let body = json!({
                "redemption_id": format!("race-{i}"), "occurred_at": Utc::now(), "points": cost,
            });
            // As a client does: a 503 (too many concurrent writers, retryable) is retried
            // with the same redemption id, which makes the retry safe.
            for _ in 0..50 {
                let answer = post(&http, server, APP, "/v1/members/racer/redemptions", &body).await;
                if answer.status != StatusCode::SERVICE_UNAVAILABLE {
                    return answer;
                }
                assert_eq!(answer.body["retryable"], true, "{:?}", answer.body);
                tokio::time::sleep(Duration::from_millis(20 + 10 * (i as u64 % 7))).await;
            }
            panic!("redemption {i} still refused as busy after 50 tries");
        }
    });
    let answers = futures::future::join_all(redemptions).await;
    let succeeded = answers.iter().filter(|a| a.status.is_success()).count() as i64;
    for refused in answers.iter().filter(|a| !a.status.is_success()) {
        assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
        assert_eq!(
            refused.body["type"], "https://loyalty.dev/problems/insufficient-points",
            "{:?}",
            refused.body
        );
    }
    assert_eq!(succeeded, balance / cost);
    assert_eq!(
        count_events(http, &servers[0], "racer", "PointsRedeemed").await,
        usize::try_from(succeeded).expect("count")
    );
}

/// The scheduler runs on one server; when that one is killed, another takes over and every
/// due lot expires exactly once. Returns the index of the killed server.
async fn scheduler_moves_when_its_holder_is_killed(
    http: &reqwest::Client,
    servers: &mut [Server],
    now: DateTime<Utc>,
) -> usize {
    // Given the scheduler running every second on whichever server holds its lease
    assert!(
        eventually(Duration::from_secs(30), async || {
            let mut running = 0;
            for s in servers.iter() {
                running += usize::from(metric(http, s, "loyalty_scheduled_runs").await > 0);
            }
            running == 1
        })
        .await,
        "no single server runs the scheduler"
    );
    // When a member's lot is already past its expiry (history recorded 70 days back)
    let then = now - chrono::Duration::days(BACKDATED_DAYS);
    enroll(http, &servers[0], "early", then).await;
    let old = post(
        http,
        &servers[0],
        TERMINAL,
        "/v1/purchases",
        &purchase_body("early", "E-1", "40.00", then),
    )
    .await;
    assert!(old.status.is_success(), "{:?}", old.body);
    // Then it expires, once
    assert!(
        eventually(Duration::from_secs(30), async || {
            count_events(http, &servers[1], "early", "PointsExpired").await >= 1
        })
        .await,
        "the due lot never expired"
    );
    let mut holder = None;
    for (i, s) in servers.iter().enumerate() {
        if metric(http, s, "loyalty_scheduled_runs").await > 0 {
            assert!(holder.is_none(), "two servers ran the scheduler");
            holder = Some(i);
        }
    }
    let holder = holder.expect("a server ran the scheduler");

    // When the lease holder is killed (no shutdown, no release) and another lot falls due
    servers[holder].kill();
    let survivors: Vec<&Server> = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != holder)
        .map(|(_, s)| s)
        .collect();
    enroll(http, survivors[0], "late", then).await;
    let old = post(
        http,
        survivors[1],
        TERMINAL,
        "/v1/purchases",
        &purchase_body("late", "L-1", "25.00", then),
    )
    .await;
    assert!(old.status.is_success(), "{:?}", old.body);
    // Then another server takes the lease once it lapses, and the lot expires
    assert!(
        eventually(Duration::from_secs(30), async || {
            count_events(http, survivors[0], "late", "PointsExpired").await >= 1
        })
        .await,
        "no server took over the scheduler"
    );
    // And one survivor runs the scheduler, while every lot expired exactly once
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut running = 0;
    for s in &survivors {
        running += usize::from(metric(http, s, "loyalty_scheduled_runs").await > 0);
    }
    assert_eq!(running, 1, "the survivors share the scheduler");
    assert_eq!(
        count_events(http, survivors[0], "early", "PointsExpired").await,
        1
    );
    assert_eq!(
        count_events(http, survivors[0], "late", "PointsExpired").await,
        1
    );
    assert!(
        eventually(Duration::from_secs(10), async || {
            let profile = get(http, survivors[0], Some(APP), "/v1/members/late").await;
            profile.body["balance"]["available"] == 0
        })
        .await,
        "the expired lot still shows in the balance"
    );
    holder
}

/// Purchases stream through the two survivors while one of them is killed mid-load: every
/// purchase a server acknowledged is in the log afterwards.
async fn nothing_acknowledged_is_lost_when_a_server_is_killed(
    http: &reqwest::Client,
    servers: &mut [Server],
    already_killed: usize,
) {
    let live: Vec<usize> = (0..servers.len())
        .filter(|i| *i != already_killed)
        .collect();
    enroll(http, &servers[live[0]], "loader", Utc::now()).await;
    let victim = live[0];
    let targets: Vec<String> = live.iter().map(|i| servers[*i].url.clone()).collect();
    let load = (0..8).map(|terminal| {
        let http = http.clone();
        let targets = targets.clone();
        async move {
            let mut acknowledged = Vec::new();
            for n in 0..40 {
                let url = &targets[(terminal + n) % targets.len()];
                let txn = format!("K-{terminal}-{n}");
                let body = purchase_body("loader", &txn, "3.00", Utc::now());
                let sent = http
                    .post(format!("{url}/v1/purchases"))
                    .bearer_auth(TERMINAL)
                    .json(&body)
                    .send()
                    .await;
                // A killed server answers nothing: that purchase was not acknowledged.
                if let Ok(response) = sent
                    && response.status().is_success()
                {
                    acknowledged.push(txn);
                }
            }
            acknowledged
        }
    });
    let load = tokio::spawn(futures::future::join_all(load));
    tokio::time::sleep(Duration::from_millis(300)).await;
    servers[victim].kill();
    let acknowledged: Vec<String> = load.await.expect("load").into_iter().flatten().collect();
    assert!(!acknowledged.is_empty(), "nothing was acknowledged");
    let standing = servers
        .iter()
        .enumerate()
        .find(|(i, _)| *i != victim && *i != already_killed)
        .map(|(_, s)| s)
        .expect("a server still up");
    let page = get(
        http,
        standing,
        Some(AUDITOR),
        "/v1/members/loader/events?limit=500",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let recorded: std::collections::HashSet<String> = page.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event_type"] == "PurchaseRecorded")
        .filter_map(|e| e["data"]["transaction_id"].as_str().map(str::to_owned))
        .collect();
    for txn in &acknowledged {
        assert!(
            recorded.contains(txn),
            "acknowledged purchase {txn} is lost"
        );
    }
}
