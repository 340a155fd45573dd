//! `loyalty-load`: the bench's HTTP load generator as a process of its own. `loyalty-bench`
//! starts it against the server in its own process, so that the server's CPU time is measured
//! alone; it can also drive any server whose members `0..N` exist (`m00000000`...) and that
//! knows the demo keys. Prints one JSON object on stdout (see `generator::Summary`); exits
//! non-zero on a connection error or an answer that is neither a success nor a 4xx.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use loyalty_bench::cpu;
use loyalty_bench::generator::{self, Summary, Traffic};

/// The allocator of the server and of the in-process generator, so that this generator's CPU
/// per request compares with theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drive a loyalty server over keep-alive HTTP/1.1 connections; print the rate, the latencies
/// and this generator's CPU time as one JSON object.
#[derive(Debug, Parser)]
struct Args {
    /// The server's address.
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, value_enum)]
    traffic: Traffic,
    /// The requests go to members 0 to N-1, who must exist.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    members: u64,
    /// Concurrent keep-alive connections, one request at a time on each.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// How long the requests go on.
    #[arg(long, value_parser = seconds)]
    seconds: Duration,
    /// Seeds the choices and prefixes the transaction and redemption ids: runs against one
    /// server must each have their own.
    #[arg(long)]
    round: u64,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text} is not a positive number of seconds"))
}

// One thread: the generator then takes at most one of the machine's cores, and the server keeps
// the rest; its connections spend their time waiting on the server, which one thread serves,
// with no wake-ups across threads to pay for. Should that thread be saturated, the latencies
// would include its queueing: the CPU per request it prints tells (about 1 core busy).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let before = cpu::process()?;
    let load = generator::load(
        args.addr,
        args.traffic,
        args.members,
        args.connections,
        args.seconds,
        args.round,
    )
    .await
    .with_context(|| {
        format!(
            "{} traffic against {} failed",
            args.traffic.name(),
            args.addr
        )
    })?;
    let cpu = cpu::process()?.saturating_sub(before);
    let summary = Summary::new(&load, args.traffic, args.connections, args.members, cpu);
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
