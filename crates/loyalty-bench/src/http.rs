//! Figures 2 and 4: the real server (in this process, on a loopback port) driven by a load
//! generator of `terminals` keep-alive connections: purchase ingest with its latency, mixed
//! traffic, and balance queries on a warm server.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use loyalty_cli::runtime::{RunningServer, load_settings, start_server};
use loyalty_engine::SystemClock;
use serde_json::{Value, json};

use crate::latency::Latencies;
use crate::workload;

const TERMINAL_KEY: &str = "demo-terminal-key";
const APP_KEY: &str = "demo-app-key";

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
    start_server(settings, Arc::new(SystemClock)).await
}

/// Enrolls members `0..members` and gives each a first purchase (through the engine, not
/// measured), so that balance reads and redemptions meet real members with points.
pub async fn seed(server: &RunningServer, members: u64) -> anyhow::Result<()> {
    let engine = server.engine.clone();
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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(terminals)?)
        .build()?;
    let base = Arc::new(server.url());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for terminal in 0..terminals {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(round << 32 | terminal);
            let mut latencies = Latencies::new();
            let (mut requests, mut refused) = (0u64, 0u64);
            while start.elapsed() < run_for {
                let member = rng.u64(..members);
                let roll = match traffic {
                    Traffic::Purchases => 80,
                    Traffic::Balances => 0,
                    Traffic::Mixed => rng.u8(..100),
                };
                let request = if roll < 70 {
                    let id = workload::member_id(member);
                    client
                        .get(format!("{base}/v1/members/{id}"))
                        .bearer_auth(APP_KEY)
                } else if roll < 90 {
                    let txn = format!("h{round}-{terminal}-{requests}");
                    let at = workload::epoch() + ChronoDuration::days(30);
                    let body = purchase_body(&mut rng, member, &txn, at);
                    client
                        .post(format!("{base}/v1/purchases"))
                        .bearer_auth(TERMINAL_KEY)
                        .json(&body)
                } else {
                    let id = workload::member_id(member);
                    let at = workload::epoch() + ChronoDuration::days(60);
                    client
                        .post(format!("{base}/v1/members/{id}/redemptions"))
                        .bearer_auth(APP_KEY)
                        .json(&json!({
                            "redemption_id": format!("h{round}-{terminal}-{requests}"),
                            "occurred_at": at,
                            "points": 10,
                        }))
                };
                let sent = Instant::now();
                let response = request.send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                latencies.record(sent.elapsed());
                requests += 1;
                if status.is_client_error() {
                    refused += 1;
                } else if !status.is_success() {
                    anyhow::bail!("the server answered {status}");
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
