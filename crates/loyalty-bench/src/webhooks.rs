//! Webhook figures: deliveries per second to a receiver on loopback, and how far delivery lags
//! behind the log while the ingest bench's purchase load runs.
//!
//! - **Lag under load**: 64 terminals buy for the ingest time with an endpoint subscribed to
//!   `purchase.recorded`; each purchase's lag is the time from its acknowledgement to the
//!   receiver's first receipt of its message. The engine's ingest rate with delivery running
//!   beside it is reported too: delivery only reads the log, so it should cost the command path
//!   no more than the CPU it shares.
//! - **Drain**: the endpoint is paused, purchases pile up in the log, then it is resumed; the
//!   rate at which the backlog reaches the receiver is the delivery rate itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Duration as ChronoDuration;
use loyalty_engine::Engine;
use loyalty_webhooks::endpoint::{EndpointId, EventType, NewEndpoint, StartFrom};
use loyalty_webhooks::{WebhookSettings, Webhooks};
use parking_lot::Mutex;

use crate::fsync::per_second;
use crate::latency::Latencies;
use crate::report::Report;
use crate::workload;

const TERMINALS: u64 = 64;
/// Messages to one endpoint in flight at once (several members, one message each).
const IN_FLIGHT: u32 = 32;
/// How long the receiver may take to get everything before the figure is refused.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// The first receipt of each purchase's message, by transaction id.
#[derive(Default)]
struct Receipts {
    first: Mutex<HashMap<String, Instant>>,
    /// `first.len()`, readable without the lock the receiver takes.
    distinct: AtomicU64,
    requests: AtomicU64,
}

async fn start_receiver(receipts: Arc<Receipts>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::body::Bytes| {
            let receipts = receipts.clone();
            async move {
                let at = Instant::now();
                receipts.requests.fetch_add(1, Ordering::Relaxed);
                if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body)
                    && let Some(txn) = payload["data"]["transaction_id"].as_str()
                {
                    let mut first = receipts.first.lock();
                    if !first.contains_key(txn) {
                        first.insert(txn.to_owned(), at);
                        receipts.distinct.fetch_add(1, Ordering::Relaxed);
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Purchases from [`TERMINALS`] terminals for `run_for`; the acknowledgement instant of each.
async fn purchases(
    engine: &Engine,
    members: u64,
    run_for: Duration,
    tag: &str,
) -> anyhow::Result<HashMap<String, Instant>> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for terminal in 0..TERMINALS {
        let engine = engine.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(terminal);
            let mut acked = Vec::new();
            let mut n = 0u64;
            while start.elapsed() < run_for {
                let member = rng.u64(..members);
                let txn = format!("{tag}-{terminal}-{n}");
                let at = workload::epoch() + ChronoDuration::days(30);
                engine
                    .execute(workload::purchase(&mut rng, member, &txn, at))
                    .await?;
                acked.push((txn, Instant::now()));
                n += 1;
            }
            anyhow::Ok(acked)
        }));
    }
    let mut acked = HashMap::new();
    for task in tasks {
        acked.extend(task.await??);
    }
    Ok(acked)
}

/// Waits until every one of `acked` was received, `before` other purchases having been
/// received first; the instant the last one arrived. Polls a counter, so the receiver's lock is
/// taken once at the end, not at every poll.
async fn received_all(
    receipts: &Receipts,
    acked: &HashMap<String, Instant>,
    before: u64,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        if receipts.distinct.load(Ordering::Relaxed) >= before + acked.len() as u64 {
            let first = receipts.first.lock();
            if acked.keys().all(|txn| first.contains_key(txn)) {
                return Ok(acked
                    .keys()
                    .filter_map(|txn| first.get(txn).copied())
                    .max()
                    .unwrap_or_else(Instant::now));
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the receiver did not get every message within {DRAIN_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn figures(
    report: &mut Report,
    engine: &Engine,
    members: u64,
    run_for: Duration,
) -> anyhow::Result<()> {
    let receipts = Arc::new(Receipts::default());
    let url = start_receiver(receipts.clone()).await?;
    let settings = WebhookSettings {
        allow_private_targets: true,
        ..WebhookSettings::default()
    };
    let webhooks = Webhooks::new(engine.clone(), settings);
    webhooks.start_dispatcher();
    let id = EndpointId::parse("bench")?;
    webhooks
        .create(NewEndpoint {
            id: id.clone(),
            url,
            event_types: vec![EventType::PurchaseRecorded],
            description: None,
            secret: None,
            timeout_ms: None,
            max_in_flight: Some(IN_FLIGHT),
            start: StartFrom::Now,
        })
        .await
        .context("create the bench's endpoint")?;

    // Lag under the ingest load.
    let started = Instant::now();
    let acked = purchases(engine, members, run_for, "wh").await?;
    let ingest = per_second(acked.len() as u64, started.elapsed());
    let last = received_all(&receipts, &acked, 0).await?;
    let mut lag = Latencies::new();
    {
        let first = receipts.first.lock();
        for (txn, at) in &acked {
            if let Some(got) = first.get(txn) {
                lag.record(got.saturating_duration_since(*at));
            }
        }
    }
    let live_rate = per_second(acked.len() as u64, last.duration_since(started));
    println!(
        "webhooks: {} purchases at {ingest:.0}/s with delivery running; delivered at \
         {live_rate:.0}/s, lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        acked.len(),
        lag.quantile_ms(0.5),
        lag.quantile_ms(0.99),
        lag.quantile_ms(1.0),
    );
    report.figure(
        "webhook_ingest_engine_per_s",
        "engine purchases, 64 terminals, webhooks delivering",
        ingest,
        "/s",
    );
    report.figure(
        "webhook_lag_p50_ms",
        "webhook lag behind the acknowledgement, p50",
        lag.quantile_ms(0.5),
        "ms",
    );
    report.figure(
        "webhook_lag_p99_ms",
        "webhook lag behind the acknowledgement, p99",
        lag.quantile_ms(0.99),
        "ms",
    );

    // Drain: a backlog built while paused, delivered after the resume.
    webhooks.pause(&id).await?;
    let before = receipts.distinct.load(Ordering::Relaxed);
    let backlog = purchases(engine, members, run_for, "drain").await?;
    let resumed = Instant::now();
    webhooks.resume(&id).await?;
    let last = received_all(&receipts, &backlog, before).await?;
    let drain = per_second(backlog.len() as u64, last.duration_since(resumed));
    println!(
        "webhooks: a backlog of {} messages drained at {drain:.0}/s ({IN_FLIGHT} in flight)",
        backlog.len()
    );
    report.figure(
        "webhook_deliveries_per_s",
        "webhook deliveries to a loopback receiver (backlog drain)",
        drain,
        "/s",
    );
    report.parameter(
        "webhook_requests",
        receipts.requests.load(Ordering::Relaxed),
    );
    webhooks.shutdown().await;
    Ok(())
}

/// The store, engine and members of the webhook figures, on a fresh SQLite file in `dir`.
pub async fn run(
    report: &mut Report,
    dir: &Path,
    members: u64,
    run_for: Duration,
) -> anyhow::Result<()> {
    let store = crate::open(&dir.join("webhooks.db")).await?;
    let engine = crate::start_engine(store).await?;
    crate::enroll_all(&engine, members).await?;
    figures(report, &engine, members, run_for).await?;
    engine.shutdown().await;
    Ok(())
}
