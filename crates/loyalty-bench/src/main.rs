//! `make bench`: the numbers that say how fast the engine is, each beside the limit it runs on,
//! so that the figures are ratios that hold on a noisy machine.
#![forbid(unsafe_code)]
// Rates and percentiles are measurements, not money or points: floats are right here.
#![allow(clippy::float_arithmetic)]

mod analytics;
mod dataset;
mod fsync;
mod http;
mod ingest;
mod load_process;
mod memory;
mod parallel;
mod plateau;
mod postgres;
mod replay;
mod report;
mod webhooks;
mod what_if;
// `latency` and `workload` are the library's, shared with `loyalty-load`: imported below, the
// modules name them `crate::latency` and `crate::workload` as before.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use loyalty_bench::generator::{self, Traffic};
use loyalty_bench::{latency, workload};
use loyalty_core::Program;
use loyalty_engine::streams::SNAPSHOT_PREFIX;
use loyalty_engine::{Engine, EngineOptions, RandomIds};
use loyalty_store::{Direction, EventStore, StreamFrom};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

use crate::report::Report;

/// The allocator the `loyalty` binary uses, so the engine is measured as it runs in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    about = "Measure the loyalty engine on this machine (embedded SQLite store, durable writes; \
             PostgreSQL too when LOYALTY_BENCH_POSTGRES_URL or LOYALTY_TEST_POSTGRES_URL names a \
             server)"
)]
struct Args {
    /// Smaller sizes: a smoke run that checks every figure is produced, in well under 2 minutes.
    #[arg(long)]
    quick: bool,
    /// Where the JSON summary goes.
    #[arg(long, default_value = "target/bench/summary.json")]
    out: PathBuf,
    /// Where the stores live (a real disk, not a tmpfs, or fsync means nothing).
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Run only these parts (for profiling one of them); all of them by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Members in the replay and memory data set, instead of the run's default.
    #[arg(long)]
    dataset_members: Option<u64>,
    /// Internal: measure resident memory of an engine over this store and exit.
    #[arg(long, hide = true)]
    memory_child: Option<PathBuf>,
    /// Internal: run mixed traffic on an engine over this (fresh) store, print its resident
    /// memory every second and exit.
    #[arg(long, hide = true)]
    plateau_child: Option<PathBuf>,
    /// Internal: how long the plateau child runs its traffic.
    #[arg(long, hide = true, default_value_t = 6)]
    plateau_seconds: u64,
    /// Internal: members the plateau child seeds.
    #[arg(long, hide = true, default_value_t = 1_000)]
    plateau_members: u64,
}

/// The parts of a run, each measuring some of the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Fsync,
    Ingest,
    Http,
    Replay,
    History,
    Plateau,
    /// The retention analytics over simulated members.
    Analytics,
    /// The historical import's rate into SQLite.
    Import,
    /// Ingest and replay on PostgreSQL; skipped unless `LOYALTY_BENCH_POSTGRES_URL` (or CI's
    /// `LOYALTY_TEST_POSTGRES_URL`) names a server.
    Postgres,
    /// Webhook deliveries to a receiver on loopback: their rate, and their lag behind the
    /// log under the ingest load.
    Webhooks,
    /// `loyalty what-if` over a generated history: events decided again per second, and a
    /// year of a million-member program extrapolated from it.
    WhatIf,
}

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Each ingest measurement runs this long.
    ingest_for: Duration,
    /// Members the ingest terminals buy for.
    ingest_members: u64,
    /// Members the HTTP server is seeded with: the working set of its traffic (the issue asks
    /// for 20,000 or more in the full run).
    http_members: u64,
    /// Members in the replay and memory data set.
    dataset_members: u64,
    fsync_for: Duration,
    /// Prior purchases of the long-history member.
    history_purchases: u64,
    /// How long the memory plateau's mixed traffic runs, in seconds.
    plateau_seconds: u64,
    /// Members the memory plateau's traffic is spread over.
    plateau_members: u64,
    /// Members simulated for the analytics figures.
    analytics_members: usize,
    /// Members whose history the import figure imports (6 rows each).
    import_members: u64,
    /// Members in the PostgreSQL replay data set: fewer than on SQLite, since writing it goes
    /// through one commit at a time on the server (the replay rate needs no more to settle).
    pg_dataset_members: u64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                ingest_for: Duration::from_millis(700),
                ingest_members: 500,
                http_members: 500,
                dataset_members: 5_000,
                fsync_for: Duration::from_millis(300),
                // Past two snapshot intervals (500 events): a cold load reads the first
                // interval, then starts from the later snapshot.
                history_purchases: 1_200,
                plateau_seconds: 6,
                plateau_members: 1_000,
                analytics_members: 20_000,
                import_members: 2_000,
                pg_dataset_members: 2_000,
            }
        } else {
            Sizes {
                ingest_for: Duration::from_secs(8),
                ingest_members: 20_000,
                http_members: 20_000,
                dataset_members: 1_000_000,
                fsync_for: Duration::from_secs(3),
                history_purchases: 10_000,
                plateau_seconds: 120,
                plateau_members: 10_000,
                analytics_members: 1_000_000,
                import_members: 50_000,
                pg_dataset_members: 100_000,
            }
        }
    }
}

const TERMINALS: [u64; 3] = [1, 16, 64];
const SEED: u64 = 0x10_7A17;

pub mod program {
    use super::*;

    /// The demo program the README runs, read from the repository's config.
    pub fn demo() -> anyhow::Result<Program> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/program.toml");
        let text = std::fs::read_to_string(&path)?;
        Ok(Program::from_toml_str(&text)?)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(db) = &args.memory_child {
        return memory::child(db).await;
    }
    if let Some(db) = &args.plateau_child {
        return plateau::child(db, args.plateau_seconds, args.plateau_members).await;
    }
    std::fs::create_dir_all(&args.dir)?;
    // The server measured logs as deployed (INFO, one access-log line per request, written by
    // the log's own thread), to a file beside the work directory instead of the terminal.
    let log_file = std::fs::File::create(args.dir.join("server.log"))?;
    let _log = loyalty_cli::telemetry::init_to(log_file, false, false);
    let work = tempfile::tempdir_in(&args.dir)?;
    let mut sizes = Sizes::new(args.quick);
    if let Some(members) = args.dataset_members {
        sizes.dataset_members = members.max(1);
    }
    let started = Instant::now();
    let mut report = Report::default();
    report.parameter(
        "cores",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    report.parameter("quick", args.quick);
    report.parameter("ingest_seconds", sizes.ingest_for.as_secs_f64());
    report.parameter("ingest_members", sizes.ingest_members);
    report.parameter("http_members", sizes.http_members);
    report.parameter("dataset_members", sizes.dataset_members);
    report.parameter("terminals", TERMINALS.to_vec());

    let runs = |part| args.only.is_empty() || args.only.contains(&part);
    if runs(Part::Fsync) {
        let fsyncs = fsync::fsync_rate(work.path(), sizes.fsync_for)?;
        report.figure("fsync_per_s", "fsync, this disk (the floor)", fsyncs, "/s");
    }
    if runs(Part::Ingest) {
        let dir = work.path();
        ingest_figures(&mut report, sizes, &SQLITE_INGEST, |name| {
            let db = dir.join(format!("{name}.db"));
            async move { open(&db).await }
        })
        .await?;
    }
    if runs(Part::Http) {
        http_figures(&mut report, work.path(), sizes).await?;
    }
    if runs(Part::Replay) {
        replay_figures(&mut report, work.path(), sizes).await?;
    }
    if runs(Part::History) {
        history_figures(&mut report, work.path(), sizes).await?;
    }
    if runs(Part::Plateau) {
        plateau_figures(&mut report, work.path(), sizes).await?;
    }
    if runs(Part::Analytics) {
        analytics::figures(&mut report, sizes.analytics_members)?;
    }
    if runs(Part::Import) {
        analytics::import_figures(&mut report, work.path(), sizes.import_members).await?;
    }
    if runs(Part::Webhooks) {
        webhooks::run(
            &mut report,
            work.path(),
            sizes.ingest_members,
            sizes.ingest_for,
        )
        .await?;
    }
    if runs(Part::Postgres) {
        postgres::figures(&mut report, sizes).await?;
    }
    if runs(Part::WhatIf) {
        what_if::figures(&mut report, work.path(), args.quick).await?;
    }

    report.parameter("elapsed_seconds", started.elapsed().as_secs_f64());
    report.print_table();
    report.write_json(&args.out)?;
    println!("summary written to {}", args.out.display());
    for figure in report.figures() {
        anyhow::ensure!(
            figure.value.is_finite() && figure.value > 0.0,
            "figure {} is not positive: {}",
            figure.key,
            figure.value
        );
    }
    Ok(())
}

async fn open(path: &Path) -> anyhow::Result<Arc<dyn EventStore>> {
    Ok(Arc::new(
        SqliteStore::open(path, SqliteOptions::default()).await?,
    ))
}

async fn start_engine(store: Arc<dyn EventStore>) -> anyhow::Result<Engine> {
    start_engine_with(store, None).await
}

/// An engine whose read models keep snapshots in `snapshots` (none when `None`).
async fn start_engine_with(
    store: Arc<dyn EventStore>,
    snapshots: Option<PathBuf>,
) -> anyhow::Result<Engine> {
    start_engine_options(store, engine_options(snapshots)).await
}

/// The bench's engine options: the workload's time window, and read-model snapshots in
/// `snapshots` (none when `None`).
fn engine_options(snapshots: Option<PathBuf>) -> EngineOptions {
    EngineOptions {
        time_window: workload::time_window(),
        snapshot_dir: snapshots,
        // Only the one at shutdown: the restart figure reads what the last run left.
        snapshot_every_events: u64::MAX,
        ..EngineOptions::default()
    }
}

/// An engine with these options, on the workload's clock.
async fn start_engine_options(
    store: Arc<dyn EventStore>,
    options: EngineOptions,
) -> anyhow::Result<Engine> {
    Ok(Engine::start(
        store,
        Arc::new(program::demo()?),
        workload::clock(),
        Arc::new(RandomIds),
        options,
    )
    .await?)
}

/// The report's keys and labels for one store's ingest figures: the same measurement on
/// each store, told apart by a prefix.
struct IngestKeys {
    /// Heads the printed lines.
    title: &'static str,
    engine_per_s: &'static str,
    engine_label: &'static str,
    raw_per_s: &'static str,
    raw_label: &'static str,
    engine_p99_ms: &'static str,
    p99_label: &'static str,
    engine_vs_raw: &'static str,
    vs_raw_label: &'static str,
    engine_1_terminal: &'static str,
    engine_16_terminals: &'static str,
    raw_1_appender: &'static str,
    raw_16_appenders: &'static str,
}

/// The keys of a store's ingest figures: `$key` prefixes the keys, `$label` the labels (keys
/// and labels are `&'static str`, so the prefixes are joined at compile time).
macro_rules! ingest_keys {
    ($title:literal, $key:literal, $label:literal) => {
        IngestKeys {
            title: $title,
            engine_per_s: concat!($key, "ingest_engine_per_s"),
            engine_label: concat!($label, "engine purchases, 64 terminals"),
            raw_per_s: concat!($key, "ingest_raw_store_per_s"),
            raw_label: concat!($label, "raw store, same appends, 64 appenders"),
            engine_p99_ms: concat!($key, "ingest_engine_p99_ms"),
            p99_label: concat!($label, "engine purchase p99, 64 terminals"),
            engine_vs_raw: concat!($key, "ingest_engine_vs_raw"),
            vs_raw_label: concat!($label, "engine / raw store"),
            engine_1_terminal: concat!($key, "ingest_engine_1_terminal_per_s"),
            engine_16_terminals: concat!($key, "ingest_engine_16_terminals_per_s"),
            raw_1_appender: concat!($key, "ingest_raw_store_1_appender_per_s"),
            raw_16_appenders: concat!($key, "ingest_raw_store_16_appenders_per_s"),
        }
    };
}

/// The embedded SQLite store's ingest figures: the README's, unprefixed.
const SQLITE_INGEST: IngestKeys = ingest_keys!("ingest", "", "");
/// The PostgreSQL store's.
const PG_INGEST: IngestKeys = ingest_keys!("PostgreSQL ingest", "pg_", "PostgreSQL ");

/// Figure 1, for each terminal count: engine purchases per second on a fresh store, then the
/// same appends straight into another fresh store. `open(name)` opens a fresh store (`name`
/// tells the stores of one run apart, for a store that keeps them side by side).
async fn ingest_figures<Open, Opening>(
    report: &mut Report,
    sizes: Sizes,
    keys: &IngestKeys,
    mut open: Open,
) -> anyhow::Result<()>
where
    Open: FnMut(String) -> Opening,
    Opening: Future<Output = anyhow::Result<Arc<dyn EventStore>>>,
{
    println!(
        "{}: {} s per measurement",
        keys.title,
        sizes.ingest_for.as_secs_f64()
    );
    for terminals in TERMINALS {
        let store = open(format!("ingest-{terminals}")).await?;
        let engine = start_engine(store.clone()).await?;
        enroll_all(&engine, sizes.ingest_members).await?;
        let before = store.head_position().await?;
        let run = ingest::engine_ingest(
            &engine,
            sizes.ingest_members,
            terminals,
            sizes.ingest_for,
            terminals,
        )
        .await?;
        let appends = ingest::appends_between(store.as_ref(), before, run.until).await?;
        engine.shutdown().await;
        let raw_store = open(format!("raw-{terminals}")).await?;
        let (raw, raw_latencies) =
            ingest::raw_ingest(raw_store, appends, run.purchases, terminals as usize).await?;
        println!(
            "  {terminals:>2} terminals: engine {:.0}/s (p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms), \
             raw store {:.0}/s (p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms) ({} purchases)",
            run.rate,
            run.latencies.quantile_ms(0.5),
            run.latencies.quantile_ms(0.99),
            run.latencies.quantile_ms(0.999),
            raw,
            raw_latencies.quantile_ms(0.5),
            raw_latencies.quantile_ms(0.99),
            raw_latencies.quantile_ms(0.999),
            run.purchases
        );
        if terminals == 64 {
            report.figure(keys.engine_per_s, keys.engine_label, run.rate, "/s");
            report.figure(keys.raw_per_s, keys.raw_label, raw, "/s");
            report.figure(
                keys.engine_p99_ms,
                keys.p99_label,
                run.latencies.quantile_ms(0.99),
                "ms",
            );
            report.figure(
                keys.engine_vs_raw,
                keys.vs_raw_label,
                run.rate / raw,
                "ratio",
            );
        } else {
            report.parameter(
                if terminals == 1 {
                    keys.engine_1_terminal
                } else {
                    keys.engine_16_terminals
                },
                run.rate,
            );
            report.parameter(
                if terminals == 1 {
                    keys.raw_1_appender
                } else {
                    keys.raw_16_appenders
                },
                raw,
            );
        }
    }
    Ok(())
}

/// Waits, without the engine's read-your-writes bound, until the live projections reached
/// `position` (catching up with millions of events takes longer than a request may wait).
pub async fn caught_up_to(engine: &Engine, position: loyalty_store::Position) {
    while engine.projection_position() < position {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Enrolls members `0..members` (not measured), 64 at a time.
async fn enroll_all(engine: &Engine, members: u64) -> anyhow::Result<()> {
    let engine = engine.clone();
    parallel::for_each_range(members, 64, 1, move |member, _| {
        let engine = engine.clone();
        async move {
            engine
                .execute(workload::enroll(member, workload::epoch()))
                .await?;
            Ok(())
        }
    })
    .await
}

/// Figures 2 and 4: purchases, mixed traffic and balance queries over HTTP, 64 terminals: first
/// from the generator in this process, then from `loyalty-load` in its own, on the same server.
async fn http_figures(report: &mut Report, dir: &Path, sizes: Sizes) -> anyhow::Result<()> {
    let server = http::start(&dir.join("http.db")).await?;
    http::seed(&server.engine, sizes.http_members).await?;
    // Each traffic from 64 terminals for the run's ingest time; `round` seeds their choices.
    let run = |traffic, round| {
        generator::load(
            server.addr,
            traffic,
            sizes.http_members,
            64,
            sizes.ingest_for,
            round,
        )
    };
    let floor = run(Traffic::Health, 0).await?;
    println!(
        "http floor (GET /healthz), in-process generator: {:.0}/s, p99 {:.2} ms",
        floor.rate,
        floor.latencies.quantile_ms(0.99)
    );
    report.figure(
        "http_floor_per_s",
        "HTTP floor: GET /healthz, 64 connections, in-process generator",
        floor.rate,
        "/s",
    );
    let purchases = run(Traffic::Purchases, 1).await?;
    // Every purchase has a fresh transaction id and a business time the server accepts: a
    // refusal means the bench measured error answers, not purchases.
    anyhow::ensure!(
        purchases.refused == 0,
        "{} of the bench's purchases were refused",
        purchases.refused
    );
    println!(
        "http purchases, in-process generator: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} \
         ms",
        purchases.rate,
        purchases.latencies.quantile_ms(0.5),
        purchases.latencies.quantile_ms(0.99),
        purchases.latencies.quantile_ms(0.999)
    );
    report.figure(
        "ingest_http_per_s",
        "HTTP purchases, 64 terminals, in-process generator",
        purchases.rate,
        "/s",
    );
    report.figure(
        "purchase_http_p50_ms",
        "HTTP purchase p50, in-process generator",
        purchases.latencies.quantile_ms(0.5),
        "ms",
    );
    report.figure(
        "purchase_http_p99_ms",
        "HTTP purchase p99, in-process generator",
        purchases.latencies.quantile_ms(0.99),
        "ms",
    );
    report.figure(
        "purchase_http_p999_ms",
        "HTTP purchase p99.9, in-process generator",
        purchases.latencies.quantile_ms(0.999),
        "ms",
    );
    let mixed = run(Traffic::Mixed, 2).await?;
    report.figure(
        "mixed_http_per_s",
        "HTTP mixed 70/20/10, 64 terminals, in-process generator",
        mixed.rate,
        "/s",
    );
    report.figure(
        "mixed_http_p99_ms",
        "HTTP mixed p99, in-process generator",
        mixed.latencies.quantile_ms(0.99),
        "ms",
    );
    report.parameter("mixed_refused", mixed.refused);
    let balances = run(Traffic::Balances, 3).await?;
    report.figure(
        "balance_query_per_s",
        "HTTP balance queries, 64 clients, in-process generator",
        balances.rate,
        "/s",
    );
    report.figure(
        "balance_query_p99_ms",
        "HTTP balance query p99, in-process generator",
        balances.latencies.quantile_ms(0.99),
        "ms",
    );
    load_process::figures(report, server.addr, sizes.http_members, sizes.ingest_for).await?;
    server.stop().await?;
    Ok(())
}

/// Writes the replay data set of `members` into `store` (not measured, but its time printed).
pub async fn write_dataset(
    store: Arc<dyn EventStore>,
    members: u64,
    label: &str,
) -> anyhow::Result<dataset::Written> {
    let program = Arc::new(program::demo()?);
    let started = Instant::now();
    let written = dataset::write(store, program, members, 4, SEED).await?;
    println!(
        "{label}: {} members, {} events written in {:.1} s",
        written.members,
        written.events,
        started.elapsed().as_secs_f64()
    );
    Ok(written)
}

/// Figures 3 and 5: replay and decode over one data set, then memory per member over it.
async fn replay_figures(report: &mut Report, dir: &Path, sizes: Sizes) -> anyhow::Result<()> {
    let db = dir.join("history.db");
    let store = open(&db).await?;
    let written = write_dataset(store.clone(), sizes.dataset_members, "data set").await?;
    report.parameter("dataset_events", written.events);
    let snapshots = dir.join("snapshots");
    let caught_up = Instant::now();
    let engine = start_engine_with(store.clone(), Some(snapshots.clone())).await?;
    let head = store.head_position().await?;
    caught_up_to(&engine, head).await;
    let from_log = caught_up.elapsed();
    let live_rate = fsync::per_second(written.events, from_log);
    println!("live projections caught up with the log at {live_rate:.0} events/s");
    report.parameter("live_catch_up_events_per_s", live_rate);
    report.figure(
        "start_from_log_seconds",
        "start to caught up, replaying the whole log",
        from_log.as_secs_f64(),
        "s",
    );
    let (events, replay_rate, until) = replay::replay(&engine).await?;
    let page = engine
        .options()
        .read_page_size
        .min(store.limits().max_page_size);
    // Stopping writes the read models' snapshot; a restart reads it back.
    engine.shutdown().await;
    let restarted = Instant::now();
    let engine = start_engine_with(store.clone(), Some(snapshots)).await?;
    caught_up_to(&engine, head).await;
    while !engine.is_caught_up() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let from_snapshot = restarted.elapsed();
    anyhow::ensure!(
        engine.restored_snapshot().is_some(),
        "the restart did not read the snapshot"
    );
    engine.shutdown().await;
    println!(
        "restart to caught up: {:.2} s from the snapshot, {:.2} s from the log",
        from_snapshot.as_secs_f64(),
        from_log.as_secs_f64()
    );
    report.figure(
        "restart_from_snapshot_seconds",
        "restart to caught up, from the read-model snapshot",
        from_snapshot.as_secs_f64(),
        "s",
    );
    let (decoded, decode_rate) = replay::decode(store.clone(), page, until).await?;
    anyhow::ensure!(
        events == decoded,
        "replay read {events} events, decode {decoded}"
    );
    report.figure(
        "replay_events_per_s",
        "replay into fresh projections",
        replay_rate,
        "events/s",
    );
    report.figure(
        "decode_events_per_s",
        "read + decode only (the limit)",
        decode_rate,
        "events/s",
    );
    report.figure(
        "replay_vs_decode",
        "replay / decode",
        replay_rate / decode_rate,
        "ratio",
    );
    drop(store);

    let (bytes_per_member, members) = memory::per_member(&db)?;
    report.parameter("memory_members", members);
    report.figure(
        "rss_bytes_per_member",
        "resident memory per member",
        bytes_per_member,
        "bytes",
    );
    Ok(())
}

/// Per-command latency for a member with a long history, beside a new member's: purchases one
/// at a time through the engine on the embedded store, alternating between the two members.
async fn history_figures(report: &mut Report, dir: &Path, sizes: Sizes) -> anyhow::Result<()> {
    let store = open(&dir.join("long-history.db")).await?;
    let engine = start_engine(store.clone()).await?;
    let (long, new) = (1u64, 2u64);
    engine
        .execute(workload::enroll(long, workload::epoch()))
        .await?;
    engine
        .execute(workload::enroll(new, workload::epoch()))
        .await?;
    let at = workload::epoch() + chrono::Duration::days(59);
    let mut rng = fastrand::Rng::with_seed(SEED);
    let started = Instant::now();
    for n in 0..sizes.history_purchases {
        let txn = format!("long-{n}");
        engine
            .execute(workload::purchase(&mut rng, long, &txn, at))
            .await?;
    }
    println!(
        "history: {} prior purchases in {:.1} s",
        sizes.history_purchases,
        started.elapsed().as_secs_f64()
    );
    let (mut long_latency, mut new_latency) =
        (latency::Latencies::new(), latency::Latencies::new());
    for n in 0..200 {
        for (member, latencies) in [(long, &mut long_latency), (new, &mut new_latency)] {
            let txn = format!("m{member}-{n}");
            let command = workload::purchase(&mut rng, member, &txn, at);
            let sent = Instant::now();
            engine.execute(command).await?;
            latencies.record(sent.elapsed());
        }
    }
    // An engine's shutdown does not wait for the member snapshots it is still writing.
    let snapshot = latest_snapshot(store.as_ref(), long).await?;
    // All taken are the long member's (the new member's 200 purchases call for none); one
    // larger than the store's largest append is not stored, and loads start from an older one.
    // The stream keeps only its last snapshot, at the revision that counts all stored before.
    let (_, taken) = engine.member_snapshots();
    println!(
        "  {} of the {taken} member snapshots taken were stored, the last {} bytes",
        snapshot.revision + 1,
        snapshot.data.len()
    );
    report.parameter("member_snapshots_taken", taken);
    report.parameter("member_snapshots_stored", snapshot.revision + 1);
    report.parameter("member_snapshot_bytes", snapshot.data.len());
    engine.shutdown().await;
    report.parameter("history_purchases", sizes.history_purchases);
    let (long_p50, new_p50) = (long_latency.quantile_ms(0.5), new_latency.quantile_ms(0.5));
    report.figure(
        "long_history_purchase_p50_ms",
        "purchase p50, member with a long history",
        long_p50,
        "ms",
    );
    report.figure(
        "new_member_purchase_p50_ms",
        "purchase p50, new member",
        new_p50,
        "ms",
    );
    report.figure(
        "long_history_vs_new",
        "long history / new member (p50)",
        long_p50 / new_p50,
        "ratio",
    );
    cold_load_figures(report, store, long, &mut rng, at).await
}

/// The long-history member's first command on a fresh engine (its member cache empty, as after
/// a restart or an eviction): once loading the member from its snapshot and the events after
/// it, once from all its events.
async fn cold_load_figures(
    report: &mut Report,
    store: Arc<dyn EventStore>,
    long: u64,
    rng: &mut fastrand::Rng,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let snapshots = start_engine_options(store.clone(), engine_options(None)).await?;
    let (from_snapshot, loads) = first_command(&snapshots, long, "cold-snapshot", rng, at).await?;
    anyhow::ensure!(
        loads == 1,
        "the engine with member snapshots loaded {loads} members from a snapshot, not 1"
    );
    let events = EngineOptions {
        member_snapshot_every: 0,
        ..engine_options(None)
    };
    let events = start_engine_options(store, events).await?;
    let (from_events, loads) = first_command(&events, long, "cold-events", rng, at).await?;
    anyhow::ensure!(
        loads == 0,
        "the engine without member snapshots loaded {loads} members from a snapshot"
    );
    let (snapshot_ms, events_ms) = (millis(from_snapshot), millis(from_events));
    println!(
        "cold load, long-history member: {snapshot_ms:.2} ms from its snapshot, \
         {events_ms:.2} ms from all its events"
    );
    report.figure(
        "cold_load_snapshot_ms",
        "first command, long-history member, from its snapshot",
        snapshot_ms,
        "ms",
    );
    report.figure(
        "cold_load_events_ms",
        "first command, long-history member, from all its events",
        events_ms,
        "ms",
    );
    Ok(())
}

/// Times a fresh engine's first command, a purchase of `member`, then shuts the engine down;
/// also returns how many members it loaded from a snapshot.
async fn first_command(
    engine: &Engine,
    member: u64,
    txn: &str,
    rng: &mut fastrand::Rng,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(Duration, u64)> {
    // The projections replay the log at start: only once they are done is the command alone.
    caught_up_to(engine, engine.store().head_position().await?).await;
    while !engine.is_caught_up() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let command = workload::purchase(rng, member, txn, at);
    let sent = Instant::now();
    engine.execute(command).await?;
    let elapsed = sent.elapsed();
    let (loads, _) = engine.member_snapshots();
    engine.shutdown().await;
    Ok((elapsed, loads))
}

/// Waits (at most 10 s) until the store holds a snapshot of `member`, and returns the latest:
/// snapshots are written in the background, after the command that called for one.
async fn latest_snapshot(
    store: &dyn EventStore,
    member: u64,
) -> anyhow::Result<loyalty_store::RecordedEvent> {
    let stream = format!("{SNAPSHOT_PREFIX}{}", workload::member_id(member));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = store
            .read_stream(&stream, StreamFrom::End, Direction::Backwards, 1)
            .await?;
        if let Some(snapshot) = last.into_iter().next() {
            return Ok(snapshot);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no snapshot in {stream} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// Resident memory of an engine under sustained mixed traffic, half-way and at the end of the
/// run: with its caches bounded, it should level off rather than grow with the events.
async fn plateau_figures(report: &mut Report, dir: &Path, sizes: Sizes) -> anyhow::Result<()> {
    let (seconds, members) = (sizes.plateau_seconds, sizes.plateau_members);
    println!(
        "plateau: {seconds} s of mixed traffic over {members} members, {} clients",
        plateau::TASKS
    );
    let db = dir.join("plateau.db");
    let run = tokio::task::spawn_blocking(move || plateau::run(&db, seconds, members)).await??;
    let (mid, end) = (megabytes(run.mid()), megabytes(run.end()));
    // Growth can be nil or negative, and figures must be positive: it is a parameter.
    let growth = (end - mid) / mid * 100.0;
    println!(
        "  RSS {:.1} MB seeded, {mid:.1} MB half-way, {end:.1} MB at the end ({growth:+.1}% \
         over the second half); {:.0} ops/s, {} redemptions refused",
        megabytes(run.seeded),
        run.ops_per_second(),
        run.refused
    );
    report.parameter("plateau_seconds", seconds);
    report.parameter("plateau_members", members);
    report.parameter("plateau_clients", plateau::TASKS);
    report.parameter("plateau_rss_seeded_mb", megabytes(run.seeded));
    report.parameter(
        "plateau_rss_samples_mb",
        run.samples
            .iter()
            .map(|&(_, bytes)| megabytes(bytes))
            .collect::<Vec<_>>(),
    );
    report.parameter("plateau_growth_second_half_pct", growth);
    report.parameter("plateau_refused", run.refused);
    report.figure(
        "plateau_rss_mid_mb",
        "resident memory, mixed traffic, half-way",
        mid,
        "MB",
    );
    report.figure(
        "plateau_rss_end_mb",
        "resident memory, mixed traffic, at the end",
        end,
        "MB",
    );
    report.figure(
        "plateau_ops_per_s",
        "engine mixed 70/20/10, 32 clients",
        run.ops_per_second(),
        "/s",
    );
    Ok(())
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
