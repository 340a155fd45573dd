//! Raw throughput of the embedded store: appends per second with 1, 16 and 64 concurrent
//! appenders (each to its own streams, one ~300-byte event per append), `$all` read throughput,
//! and the disk's own fsync rate for reference.
//!
//! `cargo run --release -p loyalty-store-sqlite --bin store-bench -- [DIR] [SECONDS]`
//! DIR defaults to the current directory (put it on the disk you care about, not a tmpfs);
//! SECONDS (per measurement) defaults to 3.
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, Position, Uuid};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

const STREAMS_PER_APPENDER: u64 = 8;
const READ_PAGE: usize = 1_000;
const FILL_BATCH: u64 = 100;
const FILL_EVENTS: u64 = 200_000;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    let seconds: u64 = args
        .next()
        .map_or(Ok(3), |s| s.parse())
        .context("SECONDS")?;
    let run_for = Duration::from_secs(seconds);
    let work = dir.join(format!("store-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work)?;
    let result = bench(&work, run_for).await;
    std::fs::remove_dir_all(&work)?;
    result
}

async fn bench(work: &Path, run_for: Duration) -> anyhow::Result<()> {
    println!("event size: {} bytes", event(0).size());
    println!(
        "fsync rate: {} fsyncs/s",
        fsync_rate(&work.join("fsync"), run_for)?
    );
    println!("| appenders | appends/s (one event each) | appends per commit (mean) |");
    println!("|---|---|---|");
    for appenders in [1u64, 16, 64] {
        let path = work.join(format!("append-{appenders}.db"));
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).await?);
        let appends = append_for(&store, appenders, run_for).await?;
        let stats = store.stats();
        println!(
            "| {appenders} | {} | {} |",
            per_second(appends, run_for),
            stats.appends / stats.commits.max(1)
        );
        Arc::into_inner(store)
            .context("store still shared")?
            .close()
            .await?;
    }

    let path = work.join("read.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).await?;
    let mut n = 0;
    while n < FILL_EVENTS {
        let batch = (n..n + FILL_BATCH).map(event).collect();
        store
            .append(
                &format!("member-{}", n / FILL_BATCH),
                ExpectedRevision::NoStream,
                batch,
            )
            .await?;
        n += FILL_BATCH;
    }
    let started = Instant::now();
    let mut after = Position::START;
    let mut read = 0u64;
    loop {
        let page = store.read_all(after, READ_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        read += page.len() as u64;
    }
    let elapsed = started.elapsed();
    println!(
        "$all read: {read} events in {} ms = {} events/s (pages of {READ_PAGE})",
        elapsed.as_millis(),
        per_second(read, elapsed)
    );
    store.close().await?;
    Ok(())
}

/// Appends one event at a time from `appenders` tasks for `run_for`; returns how many.
async fn append_for(
    store: &Arc<SqliteStore>,
    appenders: u64,
    run_for: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + run_for;
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut next = [0u64; STREAMS_PER_APPENDER as usize];
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let s = (count % STREAMS_PER_APPENDER) as usize;
                    let expected = match next[s] {
                        0 => ExpectedRevision::NoStream,
                        n => ExpectedRevision::Exact(n - 1),
                    };
                    store
                        .append(&format!("member-{a}-{s}"), expected, vec![event(count)])
                        .await?;
                    next[s] += 1;
                    count += 1;
                }
                anyhow::Ok(count)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

fn per_second(count: u64, elapsed: Duration) -> u128 {
    u128::from(count) * 1_000_000 / elapsed.as_micros().max(1)
}

/// How many small overwrite-and-fsync cycles the disk does per second.
fn fsync_rate(path: &Path, run_for: Duration) -> anyhow::Result<u128> {
    let mut file = std::fs::File::create(path)?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < run_for {
        file.rewind()?;
        file.write_all(&[b'x'; 512])?;
        file.sync_data()?;
        count += 1;
    }
    Ok(per_second(count, started.elapsed()))
}

/// A small, realistic event: about 300 bytes of JSON.
fn event(n: u64) -> EventData {
    EventData {
        id: Uuid::new_v4(),
        event_type: "PointsEarned".to_owned(),
        schema_version: 1,
        data: Bytes::from(format!(
            concat!(
                r#"{{"member_id":"m-{n:08}","points":"{n}","reason":"purchase","#,
                r#""order_ref":"ord-{n:012}","store":"store-0042","amount":"42.50","#,
                r#""currency":"EUR","occurred_at":"2026-11-23T15:00:00Z"}}"#
            ),
            n = n
        )),
        metadata: Bytes::from(format!(
            r#"{{"correlation_id":"{}","actor":"pos-17"}}"#,
            Uuid::new_v4()
        )),
    }
}
