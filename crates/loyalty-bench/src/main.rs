//! `make bench`: the numbers that say how fast the engine is, each beside its limit.
#![forbid(unsafe_code)]
// Rates and percentiles are measurements, not money or points: floats are right here.
#![allow(clippy::float_arithmetic)]

mod fsync;
mod latency;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Measure the loyalty engine on this machine")]
struct Args {
    /// Smaller sizes: a smoke run that checks every figure is produced.
    #[arg(long)]
    quick: bool,
    /// Where the JSON summary goes.
    #[arg(long, default_value = "target/bench/summary.json")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut report = report::Report::default();
    let budget = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    report.figure(
        "fsync_per_s",
        "fsync (this disk)",
        fsync::fsync_rate(dir.path(), budget)?,
        "/s",
    );
    report.parameter("quick", args.quick);
    report.print_table();
    report.write_json(&args.out)?;
    let _ = latency::Latencies::new();
    Ok(())
}
