//! Figures 2 and 4: the real server (in this process, on a loopback port) driven by a load
//! generator of `terminals` keep-alive connections: purchase ingest with its latency, mixed
//! traffic, and balance queries on a warm server.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use loyalty_cli::runtime::{RunningServer, load_settings, start_server};
use serde_json::{Value, json};

use crate::latency::Latencies;
use crate::workload;

/// The demo keys of `config/loyalty.toml`, as Authorization headers.
const TERMINAL_KEY: &str = "Bearer demo-terminal-key";
const APP_KEY: &str = "Bearer demo-app-key";

/// What one load run measured.
#[derive(Debug)]
pub struct Load {
    pub requests: u64,
    pub rate: f64,
    pub latencies: Latencies,
    /// Answers that were a refusal (4xx), e.g. a redemption beyond the balance.
    pub refused: u64,
}

/// Starts the server from the repository's settings, on port 0, over a fresh SQLite file.
pub async fn start(db: &Path) -> anyhow::Result<RunningServer> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut settings = load_settings(&root.join("config/loyalty.toml"))?;
    settings.program = root.join("config/program.toml");
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.store.path = db.to_path_buf();
    // Far more in flight than the bench sends: the bench measures the engine, not the cap.
    settings.limits.max_concurrent_requests = settings.limits.max_concurrent_requests.max(1024);
    // No per-key rate limit: 64 connections share two keys and one address at full speed.
    settings.limits.rate_per_sec = 0;
    let window = workload::time_window();
    settings.time.max_behind_secs = window.max_behind.num_seconds().unsigned_abs();
    start_server(settings, workload::clock()).await
}

/// Enrolls members `0..members` and gives each a first purchase (through the engine, not
/// measured), so that balance reads and redemptions meet real members with points.
pub async fn seed(engine: &loyalty_engine::Engine, members: u64) -> anyhow::Result<()> {
    let engine = engine.clone();
    crate::parallel::for_each_range(members, 64, 1, move |member, _| {
        let engine = engine.clone();
        async move {
            let mut rng = fastrand::Rng::with_seed(member);
            let at = workload::epoch();
            engine.execute(workload::enroll(member, at)).await?;
            let first = workload::purchase(&mut rng, member, &format!("s{member}"), at);
            engine.execute(first).await?;
            Ok(())
        }
    })
    .await
}

/// The kinds of request the generator sends.
#[derive(Debug, Clone, Copy)]
pub enum Traffic {
    Purchases,
    /// 70% balance reads, 20% purchases, 10% redemptions.
    Mixed,
    Balances,
    /// `GET /healthz`: the whole HTTP stack and its middleware, and no engine. The floor the
    /// other figures stand on, on this machine, with this generator.
    Health,
}

/// One terminal's keep-alive HTTP/1.1 connection. The generator is hyper's connection-level
/// client rather than a pooled client like reqwest: it shares the two cores with the server,
/// so every microsecond it spends (URL parsing, pool, redirect and retry layers) is taken from
/// the figures it measures.
struct Terminal {
    sender: http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Terminal {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Sends one request and reads the whole answer; returns its status.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        key: &'static str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<StatusCode> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, key);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// Runs `terminals` concurrent clients for `run_for`.
pub async fn load(
    server: &RunningServer,
    traffic: Traffic,
    members: u64,
    terminals: u64,
    run_for: Duration,
    round: u64,
) -> anyhow::Result<Load> {
    let mut connections = Vec::new();
    for _ in 0..terminals {
        connections.push(Terminal::connect(server.addr).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (terminal, mut connection) in (0u64..).zip(connections) {
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(round << 32 | terminal);
            let mut latencies = Latencies::new();
            let (mut requests, mut refused) = (0u64, 0u64);
            while start.elapsed() < run_for {
                let member = rng.u64(..members);
                let roll = match traffic {
                    Traffic::Purchases => 80,
                    Traffic::Balances => 0,
                    Traffic::Health => 200,
                    Traffic::Mixed => rng.u8(..100),
                };
                // Each request is built before the clock starts: the latency is the server's.
                let (method, path, key, body) = if roll < 70 {
                    let id = workload::member_id(member);
                    (Method::GET, format!("/v1/members/{id}"), APP_KEY, None)
                } else if roll < 90 {
                    let txn = format!("h{round}-{terminal}-{requests}");
                    let at = workload::epoch() + ChronoDuration::days(30);
                    let body = purchase_body(&mut rng, member, &txn, at);
                    (
                        Method::POST,
                        "/v1/purchases".to_owned(),
                        TERMINAL_KEY,
                        Some(serde_json::to_vec(&body)?),
                    )
                } else if roll < 100 {
                    let id = workload::member_id(member);
                    let at = workload::epoch() + ChronoDuration::days(60);
                    let body = json!({
                        "redemption_id": format!("h{round}-{terminal}-{requests}"),
                        "occurred_at": at,
                        "points": 10,
                    });
                    (
                        Method::POST,
                        format!("/v1/members/{id}/redemptions"),
                        APP_KEY,
                        Some(serde_json::to_vec(&body)?),
                    )
                } else {
                    (Method::GET, "/healthz".to_owned(), APP_KEY, None)
                };
                let sent = Instant::now();
                let status = connection.send(method, &path, key, body).await?;
                latencies.record(sent.elapsed());
                requests += 1;
                if status.is_client_error() {
                    refused += 1;
                } else if !status.is_success() {
                    anyhow::bail!("the server answered {status} to {path}");
                }
            }
            anyhow::Ok((requests, refused, latencies))
        }));
    }
    let mut total = Load {
        requests: 0,
        rate: 0.0,
        latencies: Latencies::new(),
        refused: 0,
    };
    for task in tasks {
        let (requests, refused, latencies) = task.await??;
        total.requests += requests;
        total.refused += refused;
        total.latencies.merge(&latencies);
    }
    total.rate = crate::fsync::per_second(total.requests, start.elapsed());
    Ok(total)
}

/// The JSON a terminal posts for a purchase (money as strings).
fn purchase_body(
    rng: &mut fastrand::Rng,
    member: u64,
    txn: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Value {
    let loyalty_core::Command::RecordPurchase(p) = workload::purchase(rng, member, txn, at) else {
        unreachable!("workload::purchase makes a purchase");
    };
    json!({
        "member_id": p.member_id.as_str(),
        "transaction_id": p.transaction_id.as_str(),
        "store": p.store.as_str(),
        "terminal": p.terminal.as_str(),
        "occurred_at": p.occurred_at,
        "currency": p.currency.as_str(),
        "lines": p.lines.iter().map(|l| json!({
            "sku": l.sku.as_str(),
            "category": l.category.as_str(),
            "quantity": l.quantity.to_string(),
            "amount": l.amount.to_string(),
        })).collect::<Vec<_>>(),
    })
}
