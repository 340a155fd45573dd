//! Figure 1: durable purchase ingest through the engine (decide, append, projections), beside
//! the raw store's append rate for the very same events and batch sizes (the limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use loyalty_engine::Engine;
use loyalty_store::{
    EventData, EventStore, ExpectedRevision, Position, RecordedEvent, StreamAppend,
};

use crate::fsync::per_second;
use crate::latency::Latencies;
use crate::workload;

/// Purchases per second through the engine with `terminals` concurrent terminals for about
/// `run_for`, counted until the projections have applied the last one.
pub async fn engine_ingest(
    engine: &Engine,
    members: u64,
    terminals: u64,
    run_for: Duration,
    round: u64,
) -> anyhow::Result<EngineRun> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for terminal in 0..terminals {
        let (engine, done) = (engine.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(round << 32 | terminal);
            let mut last = Position::START;
            let mut n = 0u64;
            let mut latencies = Latencies::new();
            while start.elapsed() < run_for {
                let member = rng.u64(..members);
                let txn = format!("b{round}-{terminal}-{n}");
                let at = workload::epoch() + ChronoDuration::days(30);
                let command = workload::purchase(&mut rng, member, &txn, at);
                let sent = Instant::now();
                last = last.max(engine.execute(command).await?.position);
                latencies.record(sent.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            anyhow::Ok((last, latencies))
        }));
    }
    let mut last = Position::START;
    let mut latencies = Latencies::new();
    for task in tasks {
        let (reached, terminal_latencies) = task.await??;
        last = last.max(reached);
        latencies.merge(&terminal_latencies);
    }
    // A purchase counts once the read models show it.
    engine.wait_for(last).await?;
    let purchases = done.load(Ordering::Relaxed);
    Ok(EngineRun {
        purchases,
        rate: per_second(purchases, start.elapsed()),
        until: last,
        latencies,
    })
}

/// One measurement of the engine.
#[derive(Debug, Clone)]
pub struct EngineRun {
    pub purchases: u64,
    pub rate: f64,
    /// Position of the last purchase appended.
    pub until: Position,
    /// How long each `execute` took, as its terminal saw it.
    pub latencies: Latencies,
}

/// The appends the engine made after `after` (up to `until`), regrouped as they were appended:
/// a purchase's transaction reservation (`txn-…`) and the member events that follow it form
/// one `append_many`, as the engine writes them; other consecutive events of one stream
/// written for one command form one append.
pub async fn appends_between(
    store: &dyn EventStore,
    after: Position,
    until: Position,
) -> anyhow::Result<Vec<Vec<StreamAppend>>> {
    let page = store.limits().max_page_size;
    let mut groups: Vec<Vec<StreamAppend>> = Vec::new();
    let mut last_meta = None;
    let mut from = after;
    'read: loop {
        let events = store.read_all(from, page).await?;
        let short = events.len() < page;
        for e in events {
            if e.position > until {
                break 'read;
            }
            from = e.position;
            let reservation = e.stream.starts_with("txn-");
            let (same_append, joins_reservation) = match groups.last().and_then(|g| g.last()) {
                Some(a) => (
                    a.stream == e.stream && last_meta.as_ref() == Some(&e.metadata),
                    // The member events right after a reservation belong to its append_many.
                    !reservation && a.stream.starts_with("txn-"),
                ),
                None => (false, false),
            };
            last_meta = Some(e.metadata.clone());
            let RecordedEvent {
                stream,
                id,
                event_type,
                schema_version,
                data,
                metadata,
                ..
            } = e;
            let data = EventData {
                id,
                event_type,
                schema_version,
                data,
                metadata,
            };
            let part = StreamAppend {
                stream,
                expected: ExpectedRevision::Any,
                events: vec![data],
            };
            match groups.last_mut() {
                Some(group) if same_append => {
                    let append = group.last_mut().expect("a group holds a part");
                    append.events.extend(part.events);
                }
                Some(group) if joins_reservation => group.push(part),
                _ => groups.push(vec![part]),
            }
        }
        if short {
            break;
        }
    }
    Ok(groups)
}

/// Purchases per second of the raw store: `appends` replayed into `store` by
/// `appenders` concurrent appenders, then divided by the purchases they stand for.
pub async fn raw_ingest(
    store: Arc<dyn EventStore>,
    appends: Vec<Vec<StreamAppend>>,
    purchases: u64,
    appenders: usize,
) -> anyhow::Result<(f64, Latencies)> {
    let queue = Arc::new(std::sync::Mutex::new(appends.into_iter()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let (store, queue) = (store.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            // Each append's latency too: the engine's tail beside the store's own.
            let mut latencies = Latencies::new();
            loop {
                let next = queue.lock().expect("queue lock").next();
                let Some(group) = next else {
                    return anyhow::Ok(latencies);
                };
                let sent = Instant::now();
                store.append_many(group).await?;
                latencies.record(sent.elapsed());
            }
        }));
    }
    let mut latencies = Latencies::new();
    for task in tasks {
        latencies.merge(&task.await??);
    }
    Ok((per_second(purchases, start.elapsed()), latencies))
}
