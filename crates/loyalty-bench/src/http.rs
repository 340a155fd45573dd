//! Figures 2 and 4: the real server, in this process on a loopback port, seeded with members.
//! The load comes from `loyalty_bench::generator`, run in this process (the in-process figures)
//! and as the `loyalty-load` process (see `load_process`).

use std::path::Path;

use loyalty_cli::runtime::{RunningServer, load_settings, start_server};

use crate::workload;

/// Starts the server from the repository's settings, on port 0, over a fresh SQLite file.
pub async fn start(db: &Path) -> anyhow::Result<RunningServer> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut settings = load_settings(&root.join("config/loyalty.toml"))?;
    settings.program = root.join("config/program.toml");
    settings.server.listen = "127.0.0.1:0".parse()?;
    settings.store.path = db.to_path_buf();
    // Far more in flight than the bench sends: the bench measures the engine, not the cap.
    settings.limits.max_concurrent_requests = settings.limits.max_concurrent_requests.max(1024);
    // No per-key rate limit: 64 connections share two keys and one address at full speed.
    settings.limits.rate_per_sec = 0;
    let window = workload::time_window();
    settings.time.max_behind_secs = window.max_behind.num_seconds().unsigned_abs();
    start_server(settings, workload::clock()).await
}

/// Enrolls members `0..members` and gives each a first purchase (through the engine, not
/// measured), so that balance reads and redemptions meet real members with points.
pub async fn seed(engine: &loyalty_engine::Engine, members: u64) -> anyhow::Result<()> {
    let engine = engine.clone();
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
