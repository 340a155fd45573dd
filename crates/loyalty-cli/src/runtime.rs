//! Wiring: settings -> store -> engine -> HTTP server, and the orderly way down.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use loyalty_core::Program;
use loyalty_engine::{Clock, Engine, EngineOptions, RandomIds, SystemClock};
use loyalty_server::{AppState, KeyRing, MetricsExposure};
use loyalty_webhooks::Webhooks;

use crate::settings::{Settings, StoreKind};
use loyalty_store::{EventStore, InMemoryStore};
#[cfg(feature = "eventstoredb")]
use loyalty_store_eventstoredb::{EventStoreDbOptions, EventStoreDbStore};
use loyalty_store_postgres::{PostgresOptions, PostgresStore};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

/// How long start-up waits for a remote store to answer before giving up.
const STORE_READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a scrape in progress gets once the main listener has stopped.
const METRICS_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Reads `config` and the `LOYALTY_` environment.
pub fn load_settings(config: &Path) -> anyhow::Result<Settings> {
    Settings::load(config).with_context(|| format!("loading settings from {}", config.display()))
}

/// Reads and validates the program rules.
pub fn load_program(path: &Path) -> anyhow::Result<Program> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the program rules {}", path.display()))?;
    Program::from_toml_str(&text)
        .with_context(|| format!("the program rules {} are not valid", path.display()))
}

/// Opens the configured event store for a server or a command that writes: a store of an
/// older schema version is upgraded.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn EventStore>> {
    open_store_with(settings, true).await
}

/// Opens the configured event store for a tool that only reads: a store of an older schema
/// version is refused rather than upgraded under the servers still on the older release.
pub async fn open_store_to_read(settings: &Settings) -> anyhow::Result<Arc<dyn EventStore>> {
    open_store_with(settings, false).await
}

async fn open_store_with(
    settings: &Settings,
    upgrade: bool,
) -> anyhow::Result<Arc<dyn EventStore>> {
    let store: Arc<dyn EventStore> = match settings.store.kind {
        StoreKind::Sqlite => {
            let path = &settings.store.path;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the directory {}", dir.display()))?;
            }
            let options = SqliteOptions {
                wal_max_bytes: settings.store.wal_max_bytes,
                upgrade,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(path, options)
                .await
                .with_context(|| format!("opening the SQLite store {}", path.display()))?;
            Arc::new(store)
        }
        #[cfg(feature = "eventstoredb")]
        StoreKind::Eventstoredb => {
            let url = settings.store.url.as_deref().unwrap_or_default();
            let store = EventStoreDbStore::connect(url, EventStoreDbOptions::default())
                .context("the EventStoreDB connection string")?;
            store
                .wait_ready(STORE_READY_WITHIN)
                .await
                .with_context(|| format!("connecting to EventStoreDB at {url}"))?;
            Arc::new(store)
        }
        #[cfg(not(feature = "eventstoredb"))]
        StoreKind::Eventstoredb => anyhow::bail!(
            "store.kind = \"eventstoredb\", but this binary was built without the EventStoreDB \
             backend (`make run` leaves it out to build faster): build it with `cargo build \
             --release -p loyalty-cli`, whose default features include it"
        ),
        StoreKind::Postgres => {
            let url = settings.store.url.as_deref().unwrap_or_default();
            let options = PostgresOptions {
                schema: settings.store.schema.clone(),
                pool_size: settings.store.pool_size,
                upgrade,
                ..PostgresOptions::default()
            };
            let store = PostgresStore::connect(url, options)
                .await
                .context("connecting to PostgreSQL (store.url)")?;
            store
                .wait_ready(STORE_READY_WITHIN)
                .await
                .context("waiting for PostgreSQL")?;
            Arc::new(store)
        }
        StoreKind::Memory => Arc::new(InMemoryStore::new()),
    };
    Ok(store)
}

/// Engine options from the settings' limits.
pub fn engine_options(settings: &Settings) -> EngineOptions {
    EngineOptions {
        read_wait_limit: settings.limits.read_wait(),
        max_page_size: settings
            .limits
            .log_page_max
            .max(settings.limits.history_page_max),
        time_window: settings.time.window(),
        cache_members: settings.cache.max_members,
        cache_bytes: settings.cache.max_bytes,
        snapshot_dir: settings.snapshot_dir(),
        snapshot_every_events: settings.snapshots.every_events.max(1),
        lease_ttl: settings.scheduler.lease_ttl(),
        member_snapshot_every: settings.snapshots.member_every_events,
        ..EngineOptions::default()
    }
}

/// Opens the store and starts an engine (projections catch up in the background) that may
/// write: it records its program in the log when the log has not seen it, and runs the referral
/// process manager. What servers and the commands that append (`import`, `member erase`) use.
pub async fn start_engine(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Engine> {
    start_engine_with(settings, clock, false).await
}

/// Opens the store and starts an engine that writes nothing to the log, however new the store
/// or the program: what the commands that only read (reports, `verify`, `replay`...) use.
pub async fn start_read_only_engine(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Engine> {
    start_engine_with(settings, clock, true).await
}

async fn start_engine_with(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    read_only: bool,
) -> anyhow::Result<Engine> {
    let program = load_program(&settings.program)?;
    let store = open_store_with(settings, !read_only).await?;
    let vault = match &settings.privacy.key_file {
        // Two vaults would split a member's keys: an erasure in one leaves the other's alive.
        Some(path) if store.key_vault().is_some() => anyhow::bail!(
            "[privacy] key_file = {} is for stores without a key vault of their own \
             (EventStoreDB): this store keeps its keys in its own database",
            path.display()
        ),
        // A tool that only reads must not create an empty vault (every note would then read
        // as unknown), only open the one the servers use.
        Some(path) if read_only && !path.exists() => {
            anyhow::bail!("the key file {} does not exist", path.display())
        }
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the directory {}", dir.display()))?;
            }
            let vault = loyalty_store_sqlite::SqliteKeyVault::open(path)
                .with_context(|| format!("opening the key file {}", path.display()))?;
            Some(Arc::new(vault) as Arc<dyn loyalty_store::vault::KeyVault>)
        }
        None => None,
    };
    let options = EngineOptions {
        read_only,
        vault,
        ..engine_options(settings)
    };
    Engine::start(
        store,
        Arc::new(program),
        clock,
        Arc::new(RandomIds),
        options,
    )
    .await
    .context("starting the engine")
}

/// A server running in this process.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens (the real port when the settings said port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served without a key, when `server.metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The engine behind it: tests run scheduled work or read totals through it.
    pub engine: Engine,
    /// Its webhook endpoints and dispatcher.
    pub webhooks: Webhooks,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, then shuts the engine down.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.context("the server task panicked")?
    }

    /// Waits until the server stops by itself (a signal, for `serve`).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.task).await.context("the server task panicked")?
    }
}

/// Starts the engine and the HTTP server; returns once the server listens.
pub async fn start_server(
    settings: Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningServer> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    start_server_until(settings, clock, Some(stop_tx), async move {
        let _ = stop_rx.await;
    })
    .await
}

async fn start_server_until(
    settings: Settings,
    clock: Arc<dyn Clock>,
    stop: Option<oneshot::Sender<()>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningServer> {
    let engine = start_engine(&settings, clock).await?;
    let listener = TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("listening on {}", settings.server.listen))?;
    let addr = listener.local_addr()?;
    let webhooks = Webhooks::new(engine.clone(), settings.webhooks.clone());
    let state = AppState::new(
        engine.clone(),
        KeyRing::from_settings(&settings.api())?,
        settings.limits.clone(),
    )
    .with_webhooks(webhooks.clone());
    // `/metrics` on a listener of its own, without a key, when configured.
    let metrics = match settings.server.metrics_listen {
        Some(metrics_listen) => {
            let listener = TcpListener::bind(metrics_listen).await.with_context(|| {
                format!("listening on {metrics_listen} (server.metrics_listen)")
            })?;
            let router = loyalty_server::metrics_router(state.clone());
            Some((listener.local_addr()?, listener, router))
        }
        None => None,
    };
    let exposure = if metrics.is_some() {
        MetricsExposure::SeparateListener
    } else {
        MetricsExposure::AdminKey
    };
    let router = loyalty_server::app_with(state, settings.server.request_timeout(), exposure);
    let metrics_addr = metrics.as_ref().map(|(addr, _, _)| *addr);
    let metrics_server = metrics.map(|(_, listener, router)| {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(loyalty_server::serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
            METRICS_GRACE,
        ));
        (stop, task)
    });
    let scheduler = settings
        .scheduler
        .interval()
        .map(|every| engine.spawn_scheduler(every));
    // Last of what may fail to start: nothing is delivered by a server that did not start.
    // It delivers only while it holds the `webhooks` lease (one server of those sharing a
    // store), and not at all when `webhooks.enabled` is off.
    webhooks.start_dispatcher();
    let grace = settings.server.shutdown_grace();
    let task_engine = engine.clone();
    let task_webhooks = webhooks.clone();
    let task = tokio::spawn(async move {
        let served = loyalty_server::serve(listener, router, shutdown, grace).await;
        if let Some(scheduler) = scheduler {
            scheduler.abort();
        }
        // Scrapes go on while the main listener drains; they stop with it.
        if let Some((stop, task)) = metrics_server {
            let _ = stop.send(());
            match task.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "the metrics listener failed"),
                Err(e) => tracing::warn!(error = %e, "the metrics listener panicked"),
                Ok(Ok(())) => {}
            }
        }
        // The dispatcher writes its delivery logs and checkpoints, and lets the lease go,
        // while the engine (and its store) still runs.
        task_webhooks.shutdown().await;
        // Only after the last request is answered: everything acknowledged is in the store.
        task_engine.shutdown().await;
        tracing::info!("stopped");
        served.map_err(anyhow::Error::from)
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        engine,
        webhooks,
        stop,
        task,
    })
}

/// `loyalty serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = match settings.store.kind {
        StoreKind::Sqlite => format!("sqlite {}", settings.store.path.display()),
        StoreKind::Eventstoredb => "eventstoredb".to_owned(),
        StoreKind::Postgres => format!("postgres (schema {})", settings.store.schema),
        StoreKind::Memory => "memory (nothing kept)".to_owned(),
    };
    let server =
        start_server_until(settings, Arc::new(SystemClock), None, shutdown_signal()).await?;
    tracing::info!(addr = %server.addr, %store, "listening");
    if let Some(metrics) = server.metrics_addr {
        tracing::info!(addr = %metrics, "serving /metrics without a key");
    }
    println!("listening on {}", server.url());
    server.wait().await
}

/// Ctrl-C, or SIGTERM on Unix (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}
