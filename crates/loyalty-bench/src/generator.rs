//! The HTTP load generator: `connections` keep-alive HTTP/1.1 connections to the server, each
//! sending its next request as soon as the last one is answered, for a while. The bench runs it
//! in its own process beside the server (the in-process figures); `loyalty-load` runs it as a
//! process of its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::latency::Latencies;
use crate::{Error, per_second, workload};

/// The demo keys of `config/loyalty.toml`, as Authorization headers.
const TERMINAL_KEY: &str = "Bearer demo-terminal-key";
const APP_KEY: &str = "Bearer demo-app-key";

/// The kinds of request the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Traffic {
    Purchases,
    /// 70% balance reads, 20% purchases, 10% redemptions.
    Mixed,
    Balances,
    /// `GET /healthz`: the whole HTTP stack and its middleware, and no engine. The floor the
    /// other figures stand on, on this machine, with this generator.
    Health,
}

impl Traffic {
    /// Its name on `loyalty-load`'s command line and in its JSON.
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Purchases => "purchases",
            Traffic::Mixed => "mixed",
            Traffic::Balances => "balances",
            Traffic::Health => "health",
        }
    }
}

/// What one load run measured.
#[derive(Debug)]
pub struct Load {
    pub requests: u64,
    pub rate: f64,
    pub latencies: Latencies,
    /// Answers that were a refusal (4xx), e.g. a redemption beyond the balance.
    pub refused: u64,
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
}

/// What `loyalty-load` prints on stdout, one JSON object; latencies in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub traffic: Traffic,
    pub connections: u64,
    pub members: u64,
    pub requests: u64,
    /// Refusals (4xx) among the requests.
    pub refused: u64,
    /// Requests per second.
    pub rate: f64,
    pub elapsed_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// The generator's own CPU time (user + system, all its threads) while it connected and
    /// ran, in seconds.
    pub cpu_s: f64,
}

impl Summary {
    pub fn new(
        load: &Load,
        traffic: Traffic,
        connections: u64,
        members: u64,
        cpu: Duration,
    ) -> Self {
        Self {
            traffic,
            connections,
            members,
            requests: load.requests,
            refused: load.refused,
            rate: load.rate,
            elapsed_s: load.elapsed.as_secs_f64(),
            p50_us: load.latencies.quantile_us(0.5),
            p99_us: load.latencies.quantile_us(0.99),
            p999_us: load.latencies.quantile_us(0.999),
            max_us: load.latencies.max_us(),
            cpu_s: cpu.as_secs_f64(),
        }
    }
}

/// One terminal's keep-alive HTTP/1.1 connection. The generator is hyper's connection-level
/// client rather than a pooled client like reqwest: every microsecond it spends (URL parsing,
/// pool, redirect and retry layers) is taken from the server when both share the two cores, and
/// adds to what the separate generator needs to keep the server busy.
struct Terminal {
    sender: http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Terminal {
    async fn connect(addr: SocketAddr) -> Result<Self, Error> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| Error::Connect { addr, source })?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| Error::Handshake { addr, source })?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::try_from(addr.to_string())
                .expect("a socket address is a valid Host header"),
        })
    }

    /// Sends one request and reads the whole answer; returns its status.
    async fn send(
        &mut self,
        method: &Method,
        path: &str,
        key: &'static str,
        body: Option<Vec<u8>>,
    ) -> Result<StatusCode, Error> {
        let failed = |source| Error::Request {
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, key);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|source| Error::Build {
                method: method.clone(),
                path: path.to_owned(),
                source,
            })?;
        self.sender.ready().await.map_err(failed)?;
        let response = self.sender.send_request(request).await.map_err(failed)?;
        let status = response.status();
        response.into_body().collect().await.map_err(failed)?;
        Ok(status)
    }
}

/// Runs `connections` concurrent clients of the server at `addr` for `run_for`, over members
/// `0..members` (seeded beforehand). `round` seeds their choices and prefixes the transaction
/// and redemption ids: no two runs of one server may share a round.
pub async fn load(
    addr: SocketAddr,
    traffic: Traffic,
    members: u64,
    connections: u64,
    run_for: Duration,
    round: u64,
) -> Result<Load, Error> {
    let mut terminals = Vec::new();
    for _ in 0..connections {
        terminals.push(Terminal::connect(addr).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (terminal, mut connection) in (0u64..).zip(terminals) {
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
                        Some(body.to_string().into_bytes()),
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
                        Some(body.to_string().into_bytes()),
                    )
                } else {
                    (Method::GET, "/healthz".to_owned(), APP_KEY, None)
                };
                let sent = Instant::now();
                let status = connection.send(&method, &path, key, body).await?;
                latencies.record(sent.elapsed());
                requests += 1;
                if status.is_client_error() {
                    refused += 1;
                } else if !status.is_success() {
                    return Err(Error::Status {
                        status,
                        method,
                        path,
                    });
                }
            }
            Ok((requests, refused, latencies))
        }));
    }
    let mut total = Load {
        requests: 0,
        rate: 0.0,
        latencies: Latencies::new(),
        refused: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (requests, refused, latencies) = task.await??;
        total.requests += requests;
        total.refused += refused;
        total.latencies.merge(&latencies);
    }
    total.elapsed = start.elapsed();
    total.rate = per_second(total.requests, total.elapsed);
    Ok(total)
}

/// The JSON a terminal posts for a purchase of one to four lines (money as strings).
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

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    /// The bench passes `name()` to `loyalty-load`, which parses it with clap and prints it
    /// with serde: the three must agree.
    #[test]
    fn a_traffic_name_parses_back_on_the_command_line_and_in_json() {
        for &traffic in Traffic::value_variants() {
            assert_eq!(Traffic::from_str(traffic.name(), false), Ok(traffic));
            assert_eq!(
                serde_json::to_value(traffic).expect("a traffic as JSON"),
                json!(traffic.name())
            );
        }
    }
}
