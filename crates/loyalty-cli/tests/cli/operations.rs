//! Operating the HTTP server, end to end over real sockets (the server in process, on port 0,
//! over the memory store): per-key rate limits, who may read `/metrics` and where, the latency
//! histograms, and a body over the limit closing its connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use loyalty_cli::runtime::{RunningServer, start_server};
use loyalty_cli::settings::{Settings, StoreKind};
use loyalty_engine::SystemClock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "demo-app-key";
const SUPPORT: &str = "demo-support-key";
const ADMIN: &str = "demo-admin-key";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped settings (demo keys) on port 0 over the memory store, changed by `change`.
async fn server(change: impl FnOnce(&mut Settings)) -> RunningServer {
    let root = repo_root();
    let mut settings =
        Settings::from_figment(Figment::new().merge(Toml::file(root.join("config/loyalty.toml"))))
            .expect("settings");
    settings.program = root.join("config/program.toml");
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.store.kind = StoreKind::Memory;
    settings.scheduler.interval_secs = 0;
    change(&mut settings);
    settings.validate().expect("the test settings are valid");
    start_server(settings, Arc::new(SystemClock))
        .await
        .expect("the server starts")
}

async fn get(url: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request sent")
}

/// Reads `/metrics` with `key` and returns the text.
async fn metrics_text(url: &str, key: Option<&str>) -> String {
    let response = get(url, key).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("text")
}

#[tokio::test]
async fn past_its_burst_a_key_gets_429_problem_json_with_retry_after_and_other_keys_do_not() {
    let server = server(|s| {
        s.limits.rate_per_sec = 1;
        s.limits.rate_burst = 3;
    })
    .await;
    let url = server.url();
    let member = format!("{url}/v1/members/nobody");
    for _ in 0..3 {
        let answer = get(&member, Some(APP)).await;
        assert_ne!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let limited = get(&member, Some(APP)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    let problem: Value = limited.json().await.expect("json");
    assert_eq!(problem["type"], "https://loyalty.dev/problems/rate-limited");
    assert_eq!(problem["status"], 429);

    // Another key has a bucket of its own, and so do requests without a key (by address).
    let other = get(&member, Some(SUPPORT)).await;
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);
    let keyless = get(&format!("{url}/healthz"), None).await;
    assert_eq!(keyless.status(), StatusCode::OK);

    // Waiting as told lets the key through again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = get(&member, Some(APP)).await;
    assert_ne!(again.status(), StatusCode::TOO_MANY_REQUESTS);

    // Rate-limited answers are counted like any other.
    let text = metrics_text(&format!("{url}/metrics"), Some(ADMIN)).await;
    assert!(
        text.contains(
            "loyalty_http_requests_total{method=\"GET\",route=\"/v1/members/{member_id}\",status=\"429\"} 1"
        ),
        "{text}"
    );
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn with_no_rate_the_limit_is_off() {
    let server = server(|s| {
        s.limits.rate_per_sec = 0;
        s.limits.rate_burst = 0;
    })
    .await;
    let url = format!("{}/healthz", server.url());
    for _ in 0..50 {
        assert_eq!(get(&url, None).await.status(), StatusCode::OK);
    }
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn metrics_on_the_main_listener_need_an_admin_key_and_show_latency_histograms() {
    let server = server(|_| {}).await;
    assert_eq!(server.metrics_addr, None);
    let url = server.url();
    let metrics = format!("{url}/metrics");

    let keyless = get(&metrics, None).await;
    assert_eq!(keyless.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        keyless.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        get(&metrics, Some(APP)).await.status(),
        StatusCode::FORBIDDEN
    );

    let enrolled = reqwest::Client::new()
        .post(format!("{url}/v1/members"))
        .bearer_auth(APP)
        .json(&json!({"member_id": "ops-1", "occurred_at": chrono::Utc::now()}))
        .send()
        .await
        .expect("sent");
    assert_eq!(enrolled.status(), StatusCode::OK, "{enrolled:?}");
    let profile = get(&format!("{url}/v1/members/ops-1"), Some(APP)).await;
    assert!(profile.status().is_success() || profile.status() == StatusCode::SERVICE_UNAVAILABLE);

    let text = metrics_text(&metrics, Some(ADMIN)).await;
    let count = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    // By route template, never by raw path.
    assert_eq!(
        count(
            "loyalty_http_request_duration_microseconds_count{method=\"GET\",route=\"/v1/members/{member_id}\"}"
        ),
        1
    );
    assert!(!text.contains("ops-1"), "{text}");
    assert!(
        text.contains(
            "loyalty_http_request_duration_microseconds_bucket{le=\"50.0\",method=\"POST\",route=\"/v1/members\"}"
        ),
        "{text}"
    );
    assert_eq!(
        count("loyalty_command_duration_microseconds_count{command=\"enroll\"}"),
        1
    );
    server.stop().await.expect("stops");
}

#[tokio::test]
async fn with_metrics_listen_metrics_are_served_there_without_a_key_and_not_on_the_main_listener() {
    let server = server(|s| {
        s.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let metrics_addr = server.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr, server.addr);
    let url = server.url();
    assert_eq!(
        get(&format!("{url}/healthz"), None).await.status(),
        StatusCode::OK
    );

    let text = metrics_text(&format!("http://{metrics_addr}/metrics"), None).await;
    assert!(
        text.contains(
            "loyalty_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("loyalty_projections_caught_up"), "{text}");
    // Only /metrics there.
    assert_eq!(
        get(&format!("http://{metrics_addr}/healthz"), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Not on the main listener, whatever the key.
    for key in [None, Some(ADMIN)] {
        assert_eq!(
            get(&format!("{url}/metrics"), key).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    server.stop().await.expect("stops");
    // The metrics listener stops with the server.
    assert!(TcpStream::connect(metrics_addr).await.is_err());
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_413_and_the_connection_closed_unread() {
    let server = server(|_| {}).await;
    let mut socket = TcpStream::connect(server.addr).await.expect("connects");
    // Announces 10 MiB (the limit is 64 KiB) and sends only the first kilobyte of it.
    let head = format!(
        "POST /v1/members HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {APP}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        10 * 1024 * 1024
    );
    socket.write_all(head.as_bytes()).await.expect("head sent");
    socket.write_all(&[b' '; 1024]).await.expect("a part sent");

    // Everything the server says, up to its end of the connection: it must not wait for the
    // rest of the body (the read would time out).
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection without reading the rest")
        .expect("read to EOF");
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/problem+json"),
        "{head}"
    );
    assert!(body.contains("body-too-large"), "{body}");
    server.stop().await.expect("stops");
}
