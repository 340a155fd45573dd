//! The HTTP figures with the load generator in a process of its own: `loyalty-load`, this
//! binary's sibling. The server in this process then shares the cores only with the
//! generator's process, not with its tasks, and this process's CPU time while the generator
//! runs is the server's: the bench does nothing else meanwhile (it waits for the child on a
//! blocking thread).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use loyalty_bench::cpu;
use loyalty_bench::generator::{Summary, Traffic};
use serde_json::json;

use crate::report::Report;

/// Connections of every run, as many as the in-process generator's terminals.
const CONNECTIONS: u64 = 64;

/// One run of `loyalty-load`.
#[derive(Debug)]
struct Run {
    summary: Summary,
    /// This process's CPU time (user + system, all threads) from the child's start to its exit.
    server_cpu: Duration,
}

impl Run {
    fn server_cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.summary.requests as f64
    }

    fn generator_cpu_per_request_us(&self) -> f64 {
        self.summary.cpu_s * 1e6 / self.summary.requests as f64
    }
}

/// The report's keys and labels for one traffic.
struct Keys {
    traffic: Traffic,
    /// Seeds the generator's choices; the in-process runs use rounds 0 to 3.
    round: u64,
    /// Heads the printed line.
    title: &'static str,
    per_s: &'static str,
    per_s_label: &'static str,
    p50_ms: &'static str,
    p50_label: &'static str,
    p99_ms: &'static str,
    p99_label: &'static str,
    p999_ms: &'static str,
    p999_label: &'static str,
    server_cpu_us: &'static str,
    server_cpu_label: &'static str,
    generator_cpu_us: &'static str,
    generator_cpu_label: &'static str,
    /// The run's other measurements, in the summary's parameters.
    details: &'static str,
}

/// `$key` names the figures in the summary (`http_sep_<key>_...`), `$label` in the table.
macro_rules! keys {
    ($traffic:ident, $round:literal, $key:literal, $label:literal) => {
        Keys {
            traffic: Traffic::$traffic,
            round: $round,
            title: $label,
            per_s: concat!("http_sep_", $key, "_per_s"),
            per_s_label: concat!($label, ", 64 connections, separate generator"),
            p50_ms: concat!("http_sep_", $key, "_p50_ms"),
            p50_label: concat!($label, " p50, separate generator"),
            p99_ms: concat!("http_sep_", $key, "_p99_ms"),
            p99_label: concat!($label, " p99, separate generator"),
            p999_ms: concat!("http_sep_", $key, "_p999_ms"),
            p999_label: concat!($label, " p99.9, separate generator"),
            server_cpu_us: concat!("http_sep_", $key, "_server_cpu_us"),
            server_cpu_label: concat!($label, ", server CPU per request, separate generator"),
            generator_cpu_us: concat!("http_sep_", $key, "_generator_cpu_us"),
            generator_cpu_label: concat!($label, ", generator CPU per request, separate generator"),
            details: concat!("http_sep_", $key),
        }
    };
}

/// The runs, in this order: the floor first, as the in-process runs do.
const RUNS: [Keys; 4] = [
    keys!(Health, 4, "floor", "HTTP floor (GET /healthz)"),
    keys!(Purchases, 5, "purchases", "HTTP purchases"),
    keys!(Mixed, 6, "mixed", "HTTP mixed 70/20/10"),
    keys!(Balances, 7, "balances", "HTTP balance queries"),
];

/// Runs each traffic for `run_for` against the server at `addr`, whose members `0..members` are
/// seeded, and reports its figures.
pub async fn figures(
    report: &mut Report,
    addr: SocketAddr,
    members: u64,
    run_for: Duration,
) -> anyhow::Result<()> {
    report.parameter("http_sep_connections", CONNECTIONS);
    for keys in &RUNS {
        let run = run(addr, keys.traffic, members, run_for, keys.round).await?;
        let s = &run.summary;
        // Only mixed traffic may be refused (a redemption beyond the balance): any other
        // refusal means the bench measured error answers.
        anyhow::ensure!(
            s.refused == 0 || keys.traffic == Traffic::Mixed,
            "{} of the separate generator's {} requests were refused",
            s.refused,
            keys.traffic.name()
        );
        let ms = |us: u64| us as f64 / 1000.0;
        let (server_cores, generator_cores) = (
            run.server_cpu.as_secs_f64() / s.elapsed_s,
            s.cpu_s / s.elapsed_s,
        );
        println!(
            "{}, separate generator: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max \
             {:.2} ms; CPU per request: server {:.0} µs ({server_cores:.2} cores), generator \
             {:.0} µs ({generator_cores:.2} cores)",
            keys.title,
            s.rate,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.p999_us),
            ms(s.max_us),
            run.server_cpu_per_request_us(),
            run.generator_cpu_per_request_us(),
        );
        report.figure(keys.per_s, keys.per_s_label, s.rate, "/s");
        report.figure(keys.p50_ms, keys.p50_label, ms(s.p50_us), "ms");
        report.figure(keys.p99_ms, keys.p99_label, ms(s.p99_us), "ms");
        report.figure(keys.p999_ms, keys.p999_label, ms(s.p999_us), "ms");
        report.figure(
            keys.server_cpu_us,
            keys.server_cpu_label,
            run.server_cpu_per_request_us(),
            "µs",
        );
        report.figure(
            keys.generator_cpu_us,
            keys.generator_cpu_label,
            run.generator_cpu_per_request_us(),
            "µs",
        );
        report.parameter(
            keys.details,
            json!({
                "requests": s.requests,
                "refused": s.refused,
                "elapsed_s": s.elapsed_s,
                "max_ms": ms(s.max_us),
                "server_cpu_s": run.server_cpu.as_secs_f64(),
                "server_cores": server_cores,
                "generator_cpu_s": s.cpu_s,
                "generator_cores": generator_cores,
            }),
        );
    }
    Ok(())
}

/// Where `loyalty-load` is: beside this binary, in the same target directory (`cargo run`
/// builds only the binary it runs).
fn generator_path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where this binary is")?;
    let path = exe.with_file_name(format!("loyalty-load{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        path.is_file(),
        "the load generator {} is missing: build the bench's binaries first, with `cargo build \
         -p loyalty-bench --bins` (and --release for a release run)",
        path.display()
    );
    Ok(path)
}

/// Runs `loyalty-load` with one traffic and reads its summary, and this process's CPU time
/// meanwhile.
async fn run(
    addr: SocketAddr,
    traffic: Traffic,
    members: u64,
    run_for: Duration,
    round: u64,
) -> anyhow::Result<Run> {
    let generator = generator_path()?;
    let mut command = Command::new(&generator);
    command
        .args(["--addr", &addr.to_string()])
        .args(["--traffic", traffic.name()])
        .args(["--members", &members.to_string()])
        .args(["--connections", &CONNECTIONS.to_string()])
        .args(["--seconds", &run_for.as_secs_f64().to_string()])
        .args(["--round", &round.to_string()]);
    let before = cpu::process()?;
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("cannot run {}", generator.display()))?;
    let server_cpu = cpu::process()?.saturating_sub(before);
    anyhow::ensure!(
        output.status.success(),
        "the load generator ({} traffic) failed, {}: {}",
        traffic.name(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let summary: Summary = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the load generator printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    anyhow::ensure!(
        summary.requests > 0,
        "the load generator ({} traffic) sent no request",
        traffic.name()
    );
    Ok(Run {
        summary,
        server_cpu,
    })
}
