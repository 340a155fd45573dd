//! Figure 5: resident bytes per member. Measured in a child process of its own (this binary run
//! with `--memory-child`), so that what the data set's generation allocated and freed does not
//! blur the figure: RSS before the engine starts, then after its projections hold every member.

use std::path::Path;
use std::sync::Arc;

use loyalty_engine::{Engine, EngineOptions, RandomIds, SystemClock};
use loyalty_store::EventStore;
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

use crate::program;

pub fn resident_bytes() -> anyhow::Result<u64> {
    let stats = memory_stats::memory_stats().ok_or_else(|| anyhow::anyhow!("no memory stats"))?;
    Ok(stats.physical_mem as u64)
}

/// Run in the child: opens the store, starts the engine, waits until the projections caught up
/// and prints `rss_delta_bytes members`.
pub async fn child(db: &Path) -> anyhow::Result<()> {
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(db, SqliteOptions::default()).await?);
    let before = resident_bytes()?;
    let engine = Engine::start(
        store.clone(),
        Arc::new(program::demo()?),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        EngineOptions::default(),
    )
    .await?;
    crate::caught_up_to(&engine, store.head_position().await?).await;
    let after = resident_bytes()?;
    let members = engine.totals().members;
    println!("{} {}", after.saturating_sub(before), members);
    engine.shutdown().await;
    Ok(())
}

/// Run in the parent: the child's figure, in bytes per member.
pub fn per_member(db: &Path) -> anyhow::Result<(f64, u64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--memory-child")
        .arg(db)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "memory child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let line = text.lines().last().unwrap_or_default();
    let mut parts = line.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(bytes)), Some(Ok(members))) = (parts.next(), parts.next()) else {
        anyhow::bail!("memory child printed {line:?}");
    };
    anyhow::ensure!(members > 0, "memory child saw no member");
    Ok((bytes as f64 / members as f64, members))
}
