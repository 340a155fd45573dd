//! Memory under sustained traffic: does the engine's resident memory level off, or keep growing
//! with the events it handles? Measured in a child process of its own (this binary run with
//! `--plateau-child`), so the figure is the engine's memory, not what the parent's earlier parts
//! allocated: the child seeds members, runs mixed traffic for a while and prints its RSS every
//! second.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use loyalty_core::DomainError;
use loyalty_engine::{Engine, EngineError, EngineOptions};
use loyalty_store::EventStore;
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

use crate::memory::resident_bytes;
use crate::workload;

/// Concurrent clients of the engine in the child.
pub const TASKS: u64 = 32;

/// What the child measured.
#[derive(Debug)]
pub struct Plateau {
    /// RSS once the members are seeded, before the traffic.
    pub seeded: u64,
    /// (seconds since the traffic started, RSS), one a second.
    pub samples: Vec<(f64, u64)>,
    /// Reads, purchases and redemptions done.
    pub ops: u64,
    /// Redemptions refused for want of points.
    pub refused: u64,
    pub seconds: f64,
}

impl Plateau {
    /// RSS at the sample half-way through the run.
    pub fn mid(&self) -> u64 {
        self.samples[(self.samples.len() - 1) / 2].1
    }

    /// RSS at the last sample.
    pub fn end(&self) -> u64 {
        self.samples[self.samples.len() - 1].1
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
}

/// Operations one client did.
#[derive(Debug, Default)]
struct Done {
    ops: u64,
    refused: u64,
}

/// Run in the child: seeds `members` members in a fresh store at `db`, then runs `TASKS`
/// clients of mixed traffic for `seconds`, and prints `seeded <bytes>`, one `rss <seconds>
/// <bytes>` a second and last `ops <done> <refused> <seconds>`.
pub async fn child(db: &Path, seconds: u64, members: u64) -> anyhow::Result<()> {
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(db, SqliteOptions::default()).await?);
    // The engine as it runs in production (member snapshots, cache bounds), on the bench's
    // clock and time window.
    let options = EngineOptions {
        time_window: workload::time_window(),
        ..EngineOptions::default()
    };
    let engine = crate::start_engine_options(store.clone(), options).await?;
    crate::http::seed(&engine, members).await?;
    // Balance reads go to the read models: they have to know every member first.
    crate::caught_up_to(&engine, store.head_position().await?).await;
    println!("seeded {}", resident_bytes()?);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(traffic(engine.clone(), members, task, until)))
        .collect();
    // The main task is not one of the runtime's workers: the samples keep time under load.
    for second in 1..=seconds {
        tokio::time::sleep_until((started + Duration::from_secs(second)).into()).await;
        let elapsed = started.elapsed().as_secs_f64();
        println!("rss {elapsed:.3} {}", resident_bytes()?);
    }
    let mut done = Done::default();
    for client in clients {
        let client = client.await??;
        done.ops += client.ops;
        done.refused += client.refused;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("ops {} {} {elapsed:.3}", done.ops, done.refused);
    engine.shutdown().await;
    Ok(())
}

/// One client until `until`: 70% balance reads, 20% purchases, 10% redemptions of 5 points.
async fn traffic(engine: Engine, members: u64, task: u64, until: Instant) -> anyhow::Result<Done> {
    let mut rng = fastrand::Rng::with_seed(crate::SEED ^ task);
    let bought = workload::epoch() + ChronoDuration::days(30);
    let today = workload::epoch() + ChronoDuration::days(60);
    let mut done = Done::default();
    while Instant::now() < until {
        let member = rng.u64(..members);
        let roll = rng.u8(..100);
        if roll < 70 {
            let id = workload::member_id(member);
            anyhow::ensure!(engine.balance(&id).is_some(), "no balance for {id}");
        } else if roll < 90 {
            let txn = format!("p{task}-{}", done.ops);
            let command = workload::purchase(&mut rng, member, &txn, bought);
            engine.execute(command).await?;
        } else {
            let redemption = format!("r{task}-{}", done.ops);
            let command = workload::redeem_points(member, &redemption, 5, today);
            match engine.execute(command).await {
                Ok(_) => {}
                // A member whose purchases earned nothing (gift cards): a refusal, as in life.
                Err(EngineError::Domain(DomainError::InsufficientPoints { .. })) => {
                    done.refused += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        done.ops += 1;
    }
    Ok(done)
}

/// Run in the parent: the child's samples over a fresh store at `db`.
pub fn run(db: &Path, seconds: u64, members: u64) -> anyhow::Result<Plateau> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--plateau-child")
        .arg(db)
        .arg("--plateau-seconds")
        .arg(seconds.to_string())
        .arg("--plateau-members")
        .arg(members.to_string())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "plateau child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&String::from_utf8(output.stdout)?)
}

/// Reads the child's lines (and ignores any other line).
fn parse(text: &str) -> anyhow::Result<Plateau> {
    let mut plateau = Plateau {
        seeded: 0,
        samples: Vec::new(),
        ops: 0,
        refused: 0,
        seconds: 0.0,
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["seeded", bytes] => plateau.seeded = bytes.parse()?,
            ["rss", seconds, bytes] => plateau.samples.push((seconds.parse()?, bytes.parse()?)),
            ["ops", ops, refused, seconds] => {
                plateau.ops = ops.parse()?;
                plateau.refused = refused.parse()?;
                plateau.seconds = seconds.parse()?;
            }
            _ => {}
        }
    }
    anyhow::ensure!(
        plateau.samples.len() >= 2 && plateau.ops > 0 && plateau.seconds > 0.0,
        "plateau child printed too little: {text:?}"
    );
    Ok(plateau)
}
