//! The engine: start/stop, the command handler, and the read side's entry points.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loyalty_core::{
    Command, DomainError, HotLimits, MemberId, MemberState, Program, PurchaseKey, Refund,
    ServerTime, decide, evolve,
};
use loyalty_store::{
    Direction, EventStore, ExpectedRevision, Position, StoreError, StreamAppend, StreamFilter,
    StreamFrom,
};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::{ShardedLru, Weighed};
use crate::clock::{Clock, IdGenerator};
use crate::codec::{self, member_stream};
use crate::error::EngineError;
use crate::health::{self, HEALTH_PREFIX, WriteHealth};
use crate::lease::{self, LeaseHandle};
use crate::locks::StripedLocks;
use crate::member_snapshot;
use crate::metadata::{CommandContext, EventMetadata};
use crate::options::EngineOptions;
use crate::progress::{ProgressTracker, WaitError};
use crate::readmodel::{ReadModel, snapshot};
use crate::views::{
    BalanceView, CommandResult, ProfileView, ProgramTotals, RefundRequest, RewardView, TierView,
};
use crate::{referral, reservation, runner};

/// Member snapshots written at the same time, at most.
const MAX_SNAPSHOT_WRITES: usize = 8;

/// Stripes of the per-member command lock (fixed memory, whatever the number of members).
const LOCK_STRIPES: usize = 4_096;

/// An aggregate state with the stream revision and position it reflects. Cached states are
/// hot (compacted, see `loyalty_core::hot`); the full history is read only for the commands
/// and events that need it.
#[derive(Debug, Default)]
pub(crate) struct CachedMember {
    pub(crate) state: MemberState,
    /// `None`: the stream does not exist.
    pub(crate) revision: Option<u64>,
    pub(crate) position: Position,
    /// The revision of the member's latest snapshot this server knows of (see
    /// `member_snapshot`).
    pub(crate) snapshot_revision: Option<u64>,
}

impl Weighed for CachedMember {
    fn weight(&self) -> usize {
        self.state.approx_bytes().saturating_add(64)
    }
}

/// How a read of a member's stream ended.
enum Caught {
    /// This many events were folded in: the whole stream.
    Applied(usize),
    /// The page limit was reached with more of the stream left to read.
    MoreLeft,
    /// An event touches what the hot state retired: only the full history can take it.
    Unclean,
}

/// The application layer. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) program: Arc<Program>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) options: EngineOptions,
    cache: ShardedLru<MemberId, CachedMember>,
    locks: StripedLocks,
    pub(crate) model: Arc<ReadModel>,
    pub(crate) progress: Arc<ProgressTracker>,
    pub(crate) shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Events per read: the option, capped by the store's page limit.
    pub(crate) page_size: usize,
    /// What cached aggregate states keep.
    pub(crate) hot_limits: HotLimits,
    /// Times a member's full history was read (commands and events the hot state could not
    /// take).
    full_loads: std::sync::atomic::AtomicU64,
    /// The position of the read-model snapshot the read models started from, if any.
    restored_from: Mutex<Option<Position>>,
    /// Whether the store takes writes.
    health: Arc<WriteHealth>,
    /// This server's id among those sharing the store: the holder named in leases.
    pub(crate) instance: String,
    /// Runs of the background scheduler on this server (it runs only under its lease).
    pub(crate) scheduled_runs: std::sync::atomic::AtomicU64,
    /// Member snapshots read on a cache miss, and taken.
    snapshot_loads: std::sync::atomic::AtomicU64,
    snapshots_written: std::sync::atomic::AtomicU64,
    /// Member snapshots being written at once (see `maybe_snapshot`).
    snapshot_permits: Arc<tokio::sync::Semaphore>,
    /// The purchase models' latest fit (`analytics.rs`).
    pub(crate) models: crate::analytics::ModelCache,
    /// The local day the win-back rule last ran to the end (`win_back.rs`).
    pub(crate) win_back_ran_on: parking_lot::Mutex<Option<chrono::NaiveDate>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("program", &self.inner.program.name())
            .field("projection_position", &self.projection_position())
            .finish_non_exhaustive()
    }
}

/// The projection task's view of the read model.
struct LiveProjection(Arc<ReadModel>);

impl runner::Projection for LiveProjection {
    fn apply_page(&self, events: &[loyalty_store::RecordedEvent]) {
        self.0.apply_page(events);
    }

    fn position(&self) -> Position {
        self.0.position()
    }
}

impl Engine {
    /// Starts the projections (a catch-up subscription to `$all` from the start: the read
    /// models live in memory) and the referral process manager (from its stored checkpoint).
    /// Scheduled work is started separately ([`Engine::spawn_scheduler`]) or run on demand.
    pub async fn start(
        store: Arc<dyn EventStore>,
        program: Arc<Program>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        options: EngineOptions,
    ) -> Result<Engine, EngineError> {
        let page_size = options
            .read_page_size
            .clamp(1, store.limits().max_page_size.max(1));
        let engine = Engine {
            inner: Arc::new(Inner {
                cache: ShardedLru::new(options.cache_members, options.cache_bytes),
                full_loads: std::sync::atomic::AtomicU64::new(0),
                restored_from: Mutex::new(None),
                health: Arc::new(WriteHealth::default()),
                instance: uuid::Uuid::new_v4().to_string(),
                scheduled_runs: std::sync::atomic::AtomicU64::new(0),
                snapshot_loads: std::sync::atomic::AtomicU64::new(0),
                snapshots_written: std::sync::atomic::AtomicU64::new(0),
                snapshot_permits: Arc::new(tokio::sync::Semaphore::new(MAX_SNAPSHOT_WRITES)),
                models: Default::default(),
                win_back_ran_on: parking_lot::Mutex::new(None),
                hot_limits: options
                    .hot_limits
                    .unwrap_or_else(|| HotLimits::new(&program, options.time_window)),
                locks: StripedLocks::new(LOCK_STRIPES),
                model: Arc::new(ReadModel::new(program.timezone())),
                progress: Arc::new(ProgressTracker::new()),
                shutdown: watch::channel(false).0,
                tasks: Mutex::new(Vec::new()),
                page_size,
                store,
                program,
                clock,
                ids,
                options,
            }),
        };
        // The rules in force are in the log before any decision names their version. A
        // read-only engine (`read_only`: the CLI's reports) writes nothing at start,
        // so it must not be given commands: their decisions would name a version the log may
        // not hold.
        if !engine.inner.options.read_only {
            engine.record_program().await?;
        }
        // Read models restart from their latest snapshot, when there is a usable one: only the
        // events after it are replayed.
        if let Some(dir) = &engine.inner.options.snapshot_dir {
            engine.restore_snapshot(dir).await;
        }
        let projection = runner::spawn(
            engine.inner.store.clone(),
            Arc::new(LiveProjection(engine.inner.model.clone())),
            StreamFilter::all(),
            engine.inner.progress.clone(),
            engine.inner.shutdown.subscribe(),
        );
        engine.track(projection);
        if let Some(dir) = engine.snapshot_dir_to_write() {
            let task = engine.spawn_snapshots(dir);
            engine.track(task);
        }
        let probe = health::spawn_probe(
            engine.inner.store.clone(),
            engine.inner.health.clone(),
            format!("{HEALTH_PREFIX}{}", engine.inner.instance),
            engine.inner.shutdown.subscribe(),
        );
        engine.track(probe);
        // The process manager takes a lease and stores checkpoints (appends): a read-only
        // engine leaves it to the servers.
        if !engine.inner.options.read_only {
            let referrals = referral::spawn(engine.clone());
            engine.track(referrals);
        }
        Ok(engine)
    }

    /// Records the program (see `program_history`), trying again for a while when the store is
    /// briefly unavailable (a server started with its database, a fail-over); then the start
    /// fails, saying what it could not do: no decision may name a version the log lacks, so a
    /// server does not run without it.
    async fn record_program(&self) -> Result<(), EngineError> {
        /// How long a start keeps trying, and its pauses (doubling) between tries.
        const RECORD_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);
        const RECORD_RETRY_FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
        const RECORD_RETRY_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);
        let mut pause = RECORD_RETRY_FIRST_PAUSE;
        let started = std::time::Instant::now();
        loop {
            let recorded = crate::program_history::record(
                self.inner.store.as_ref(),
                &self.inner.program,
                self.inner.clock.as_ref(),
                self.inner.ids.as_ref(),
            )
            .await;
            match recorded {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() && started.elapsed() + pause <= RECORD_RETRY_FOR => {
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64,
                        "recording the program in the log failed; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RECORD_RETRY_MAX_PAUSE);
                }
                Err(e) => {
                    tracing::error!(error = %e, version = self.inner.program.version(),
                        "the program could not be recorded in the log: the engine does not start");
                    return Err(e);
                }
            }
        }
    }

    /// Starts keeping the lease `name` for this server (see `lease`): the handle says when it
    /// is held. Other crates run their once-across-servers work under one (the webhooks'
    /// dispatcher); the keeper stops with the engine.
    pub fn spawn_lease(&self, name: &str) -> LeaseHandle {
        let keeper = lease::Keeper {
            store: self.inner.store.clone(),
            clock: self.inner.clock.clone(),
            name: name.to_owned(),
            holder: self.inner.instance.clone(),
            ttl: self.inner.options.lease_ttl,
        };
        let (task, handle) = keeper.spawn(self.inner.shutdown.subscribe());
        self.track(task);
        handle
    }

    pub(crate) fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.inner.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    pub fn program(&self) -> &Program {
        &self.inner.program
    }

    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The lock commands of `member` take on this server.
    pub(crate) async fn lock_member(&self, member: &MemberId) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.locks.lock(member).await
    }

    pub(crate) fn ids(&self) -> &dyn IdGenerator {
        self.inner.ids.as_ref()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Stops the projections, the process manager and the scheduler (the process manager
    /// stores its checkpoint first), and waits for them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        // The projection has stopped: a last snapshot, so the next start replays nothing.
        self.snapshot_read_models().await;
    }

    async fn restore_snapshot(&self, dir: &std::path::Path) {
        let path = snapshot::latest(dir);
        if !path.exists() {
            return;
        }
        let started = std::time::Instant::now();
        let tz = self.inner.program.timezone();
        let read = tokio::task::spawn_blocking(move || snapshot::read(&path, tz)).await;
        match read {
            Ok(Ok(loaded)) => {
                let position = loaded.position;
                let members = loaded.rows.len();
                let taken_at = loaded.taken_at;
                self.inner.model.restore(loaded);
                self.inner.progress.advance(position);
                *self.inner.restored_from.lock() = Some(position);
                tracing::info!(%position, members, %taken_at,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "read models restored from their snapshot");
            }
            Ok(Err(why)) => {
                tracing::warn!(%why, "read-model snapshot not usable: replaying the log")
            }
            Err(e) => tracing::warn!(error = %e, "reading the read-model snapshot failed"),
        }
    }

    /// Writes a snapshot of the read models now, when the engine keeps them (for operators and
    /// tests; snapshots are otherwise taken every `snapshot_every_events` and at shutdown).
    pub async fn snapshot_read_models(&self) {
        if let Some(dir) = self.snapshot_dir_to_write() {
            self.write_snapshot(&dir).await;
        }
    }

    /// Where this engine writes the read models' snapshots. A read-only engine reads the
    /// snapshot but never writes one: the directory is the server's, which may be writing it
    /// at the same moment.
    fn snapshot_dir_to_write(&self) -> Option<std::path::PathBuf> {
        let options = &self.inner.options;
        options.snapshot_dir.clone().filter(|_| !options.read_only)
    }

    /// Writes a snapshot of the read models now (off the async threads); failures are logged,
    /// the next one tries again.
    async fn write_snapshot(&self, dir: &std::path::Path) {
        let path = snapshot::latest(dir);
        let model = self.inner.model.clone();
        let taken_at = self.inner.clock.now();
        let archive_in = dir.to_path_buf();
        let written = tokio::task::spawn_blocking(move || {
            let written = snapshot::write(&path, &model, taken_at)?;
            // One a day is also kept, for as-of queries about past instants.
            let archived = snapshot::archive(&archive_in, taken_at)?;
            Ok::<_, std::io::Error>((written, archived))
        })
        .await;
        match written {
            Ok(Ok((written, archived))) => tracing::info!(position = %written.position,
                members = written.members, bytes = written.bytes, archived,
                "read-model snapshot written"),
            Ok(Err(e)) => tracing::warn!(error = %e, "read-model snapshot not written"),
            Err(e) => tracing::warn!(error = %e, "read-model snapshot task failed"),
        }
    }

    /// Takes a snapshot every `snapshot_every_events` events applied.
    fn spawn_snapshots(&self, dir: std::path::PathBuf) -> JoinHandle<()> {
        let engine = self.clone();
        let mut shutdown = self.inner.shutdown.subscribe();
        tokio::spawn(async move {
            let every = engine.inner.options.snapshot_every_events.max(1);
            let mut last = engine.inner.model.events_applied();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
                let applied = engine.inner.model.events_applied();
                if applied.saturating_sub(last) >= every {
                    engine.write_snapshot(&dir).await;
                    last = applied;
                }
            }
        })
    }

    // ---- Commands -------------------------------------------------------------------------

    /// [`Engine::execute_with`] with an empty context.
    pub async fn execute(&self, command: Command) -> Result<CommandResult, EngineError> {
        self.execute_with(command, CommandContext::default()).await
    }

    /// Loads the member's state (cache, else the stream), decides, appends with the expected
    /// revision, and on a concurrent write catches up and decides again (bounded). A purchase
    /// first reserves its transaction id across members.
    pub async fn execute_with(
        &self,
        command: Command,
        context: CommandContext,
    ) -> Result<CommandResult, EngineError> {
        if self.is_shut_down() {
            return Err(EngineError::ShutDown);
        }
        if self.inner.options.read_only {
            return Err(EngineError::ReadOnly);
        }
        let member = command.member_id().clone();
        let _guard = self.inner.locks.lock(&member).await;
        let (mut cached, fresh) = match self.inner.cache.take(&member) {
            Some(c) => (c, false),
            None => (self.load_hot(&member).await?, true),
        };
        let result = self
            .decide_and_append(&command, &context, &mut cached, fresh)
            .await;
        match &result {
            // A store failure leaves the append's fate unknown: reload next time.
            Err(
                EngineError::Store(_)
                | EngineError::Conflict { .. }
                | EngineError::Schema(_)
                | EngineError::NewerSchema(_)
                | EngineError::Corrupt(_),
            ) => {}
            _ => {
                self.maybe_snapshot(&member, &mut cached);
                self.inner.cache.put(member, cached)
            }
        }
        result
    }

    /// A member's hot state after a cache miss: from its latest snapshot (when there is a
    /// usable one) and the events after it, else from all its events.
    /// A stream shorter than the snapshot interval has no snapshot: its first page, of that
    /// many events, is read first, and only a longer stream is worth the snapshot's read (most
    /// cache misses are of short streams, and on a networked store every read is a round trip).
    pub(crate) async fn load_hot(&self, member: &MemberId) -> Result<CachedMember, EngineError> {
        let mut loaded = CachedMember::default();
        let every = self.inner.options.member_snapshot_every;
        let first_page = usize::try_from(every)
            .unwrap_or(usize::MAX)
            .min(self.inner.page_size);
        if every > 0
            && matches!(
                self.read_stream_into(member, &mut loaded, true, first_page, Some(1))
                    .await?,
                Caught::MoreLeft
            )
        {
            match member_snapshot::read(self.inner.store.as_ref(), member, &self.inner.hot_limits)
                .await
            {
                Ok(Some(mut snapshot)) if snapshot.revision > loaded.revision => {
                    snapshot.state.compact(&self.inner.hot_limits);
                    self.inner
                        .snapshot_loads
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    loaded = snapshot;
                }
                Ok(_) => {}
                // A snapshot is only a shortcut: without it, the events.
                Err(e) => tracing::warn!(%member, error = %e, "member snapshot not read"),
            }
        }
        self.catch_up(member, &mut loaded).await?;
        Ok(loaded)
    }

    /// Stores a snapshot of the member's hot state (in the background, off the command's
    /// path) once `member_snapshot_every` events have been appended since the last one.
    fn maybe_snapshot(&self, member: &MemberId, cached: &mut CachedMember) {
        let every = self.inner.options.member_snapshot_every;
        let Some(revision) = cached.revision else {
            return;
        };
        let since = revision.saturating_add(1) - cached.snapshot_revision.map_or(0, |r| r + 1);
        if every == 0 || since < every {
            return;
        }
        // At most a few snapshots are written at once, each holding a copy of a state: when
        // all permits are taken, this one waits for the member's next command.
        let Ok(permit) = self.inner.snapshot_permits.clone().try_acquire_owned() else {
            return;
        };
        cached.snapshot_revision = Some(revision);
        let store = self.inner.store.clone();
        let limits = self.inner.hot_limits;
        let member = member.clone();
        let state = cached.state.clone();
        let position = cached.position;
        self.inner
            .snapshots_written
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) =
                member_snapshot::write(store.as_ref(), &member, state, revision, position, &limits)
                    .await
            {
                tracing::warn!(%member, error = %e, "member snapshot not stored");
            }
            drop(permit);
        });
    }

    async fn decide_and_append(
        &self,
        command: &Command,
        context: &CommandContext,
        cached: &mut CachedMember,
        mut fresh: bool,
    ) -> Result<CommandResult, EngineError> {
        let inner = &self.inner;
        if inner.options.read_only {
            return Err(EngineError::ReadOnly);
        }
        let member = command.member_id();
        let stream = member_stream(member);
        let mut attempts: u32 = 1;
        // Whether the purchase's transaction reservation is known to be stored for this member.
        let mut reserved = false;
        loop {
            // The engine's clock, read once per attempt: it decides what is pending, spendable
            // and expired, and becomes the events' `recorded_at`.
            let now = inner.clock.now();
            let time = ServerTime {
                now,
                window: inner.options.time_window,
            };
            // What the hot state retired (a retry of an old id, a refund of an old purchase...)
            // is decided on the full history, read for this command only.
            let mut full = if cached.state.needs_history(command) {
                tracing::debug!(%member, command = command.name(), "deciding on the full history");
                Some(self.load_full(member).await?)
            } else {
                None
            };
            let deciding = full.as_ref().unwrap_or(cached);
            let decision = decide(&deciding.state, command, &inner.program, time);
            let decision = match decision {
                Ok(d) if !d.events.is_empty() => d,
                // A replay is final: a processed client id is never forgotten (the hot state
                // remembers retired ones and sends them to the full history).
                Ok(d) if d.replayed => return Ok(result_without_events(d, member, deciding)),
                // A rejection or a no-op decided on a cached state: another server may have
                // written since (the append would have caught that, but there is no append).
                // One cheap read settles it.
                other => {
                    if !fresh && full.is_none() {
                        fresh = true;
                        if self.catch_up(member, cached).await? > 0 {
                            continue;
                        }
                    }
                    let deciding = full.as_ref().unwrap_or(cached);
                    return other
                        .map(|d| result_without_events(d, member, deciding))
                        .map_err(EngineError::from);
                }
            };
            let deciding = full.as_ref().unwrap_or(cached);
            let reservation = self.check_across_members(command, now, reserved).await?;
            let metadata = EventMetadata::new(
                command.client_id().unwrap_or_default(),
                command.name().to_owned(),
                context,
                command.occurred_at(),
                now,
                inner.program.rules_version().to_owned(),
            );
            // Personal data is sealed before it reaches the log (`privacy`).
            let mut decision = decision;
            self.seal_notes(member, &mut decision.events).await?;
            let data = decision
                .events
                .iter()
                .map(|e| codec::encode(e, &metadata, inner.ids.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            let expected = match deciding.revision {
                None => ExpectedRevision::NoStream,
                Some(r) => ExpectedRevision::Exact(r),
            };
            let sizes: Vec<usize> = data
                .iter()
                .map(|d| d.data.len().saturating_add(d.metadata.len()))
                .collect();
            let appended = match reservation {
                Some(reservation) => {
                    let member_part = StreamAppend {
                        stream: stream.clone(),
                        expected,
                        events: data,
                    };
                    inner
                        .store
                        .append_many(vec![reservation, member_part])
                        .await
                        .and_then(|mut results| {
                            results.pop().ok_or_else(|| {
                                StoreError::Backend("append_many answered nothing".into())
                            })
                        })
                }
                None => inner.store.append(&stream, expected, data).await,
            };
            inner.health.note(&appended.as_ref().map(|_| ()));
            match appended {
                Ok(appended) => {
                    // The projection will meet these events in `$all` within moments: it takes
                    // them decoded from here.
                    let count = decision.events.len() as u64;
                    inner.model.handoff.put(
                        &stream,
                        (appended.next_expected_revision + 1).saturating_sub(count),
                        appended.position,
                        decision
                            .events
                            .iter()
                            .cloned()
                            .zip(sizes)
                            .map(|(event, size)| {
                                let decoded = crate::decoded::Decoded {
                                    event,
                                    recorded_at: now,
                                };
                                (decoded, size)
                            }),
                    );
                    if let Some(full) = full.take() {
                        // Events decided on the full history may touch what the hot state
                        // retired: the hot state is the full one, compacted afterwards.
                        *cached = full;
                    }
                    for event in &decision.events {
                        evolve(&mut cached.state, event);
                    }
                    cached.state.compact(&inner.hot_limits);
                    cached.revision = Some(appended.next_expected_revision);
                    cached.position = appended.position;
                    return Ok(CommandResult {
                        outcome: decision.outcome,
                        replayed: false,
                        position: appended.position,
                        member: member.clone(),
                        stream_revision: appended.next_expected_revision,
                    });
                }
                Err(StoreError::WrongExpectedRevision {
                    stream: conflicted, ..
                }) if conflicted != stream => {
                    // The transaction's reservation exists: ours from an earlier attempt, or
                    // another member's. Only the member's part is left to append.
                    let Command::RecordPurchase(p) = command else {
                        return Err(EngineError::Corrupt(format!(
                            "unexpected conflict on {conflicted}"
                        )));
                    };
                    reservation::confirm_owner(inner.store.as_ref(), &p.key(), &p.member_id)
                        .await?;
                    reserved = true;
                }
                Err(StoreError::WrongExpectedRevision { .. }) => {
                    if attempts > inner.options.max_conflict_retries {
                        return Err(EngineError::Conflict { stream, attempts });
                    }
                    attempts = attempts.saturating_add(1);
                    tracing::debug!(%stream, attempts, "concurrent write, deciding again");
                    self.catch_up(member, cached).await?;
                    fresh = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// What the member's stream cannot check alone: the transaction id is not another
    /// member's, and a referrer exists. For a purchase whose transaction is not `reserved` yet,
    /// returns the reservation to append with it.
    async fn check_across_members(
        &self,
        command: &Command,
        now: DateTime<Utc>,
        reserved: bool,
    ) -> Result<Option<StreamAppend>, EngineError> {
        let inner = &self.inner;
        match command {
            Command::RecordPurchase(p) if !reserved => {
                reservation::reservation_append(inner.ids.as_ref(), &p.key(), &p.member_id, now)
                    .map(Some)
            }
            Command::RecordPurchase(_) => Ok(None),
            Command::Enroll(e) => match &e.referrer {
                Some(referrer) if referrer != &e.member_id => {
                    let revision = inner
                        .store
                        .stream_revision(&member_stream(referrer))
                        .await?;
                    match revision {
                        loyalty_store::CurrentRevision::NoStream => {
                            Err(EngineError::UnknownMember(referrer.clone()))
                        }
                        loyalty_store::CurrentRevision::Current(_) => Ok(None),
                    }
                }
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Reads the member's events after the cached revision and folds them into the hot state;
    /// returns how many. An event the hot state cannot take (decided on the full history by
    /// another server) makes it rebuild from the full history.
    pub(crate) async fn catch_up(
        &self,
        member: &MemberId,
        cached: &mut CachedMember,
    ) -> Result<usize, EngineError> {
        match self
            .read_stream_into(member, cached, true, self.inner.page_size, None)
            .await?
        {
            Caught::Applied(n) => Ok(n),
            Caught::MoreLeft => unreachable!("no page limit was given"),
            Caught::Unclean => {
                *cached = self.load_full(member).await?;
                cached.state.compact(&self.inner.hot_limits);
                Ok(cached.revision.map_or(0, |r| {
                    usize::try_from(r).unwrap_or(usize::MAX).saturating_add(1)
                }))
            }
        }
    }

    /// The member's whole history, not compacted: for the commands and events that need it.
    /// Drops a member's cached state (after an import wrote to the stream directly): the next
    /// command reads it again.
    pub(crate) fn forget_cached(&self, member: &MemberId) {
        drop(self.inner.cache.take(member));
    }

    pub(crate) async fn load_full(&self, member: &MemberId) -> Result<CachedMember, EngineError> {
        self.inner
            .full_loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut full = CachedMember::default();
        self.read_stream_into(member, &mut full, false, self.inner.page_size, None)
            .await?;
        Ok(full)
    }

    /// Folds the member's events after `cached.revision` into it, compacting page by page
    /// when `hot` (and stopping at an event the hot state cannot take), reading at most
    /// `max_pages` pages of `page_size` events.
    async fn read_stream_into(
        &self,
        member: &MemberId,
        cached: &mut CachedMember,
        hot: bool,
        page_size: usize,
        max_pages: Option<usize>,
    ) -> Result<Caught, EngineError> {
        let stream = member_stream(member);
        let mut applied = 0;
        let mut pages = 0;
        loop {
            if max_pages.is_some_and(|max| pages == max) {
                return Ok(Caught::MoreLeft);
            }
            pages += 1;
            let from = match cached.revision {
                None => StreamFrom::Start,
                Some(r) => StreamFrom::Revision(r.saturating_add(1)),
            };
            let page = self
                .inner
                .store
                .read_stream(&stream, from, Direction::Forwards, page_size)
                .await?;
            let short = page.len() < page_size;
            for recorded in &page {
                let event = codec::decode(recorded)?;
                if hot && !cached.state.applies_cleanly(&event) {
                    return Ok(Caught::Unclean);
                }
                evolve(&mut cached.state, &event);
                cached.revision = Some(recorded.revision);
                cached.position = recorded.position;
                applied += 1;
            }
            if hot {
                cached.state.compact(&self.inner.hot_limits);
            }
            if short {
                return Ok(Caught::Applied(applied));
            }
        }
    }

    /// Times a member's full history had to be read because the hot state had retired what a
    /// command or an event needed (for metrics and tests).
    pub fn full_history_loads(&self) -> u64 {
        self.inner
            .full_loads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs of the background scheduler on this server: it runs only while this server holds
    /// the scheduler's lease (for metrics and tests).
    pub fn scheduled_runs(&self) -> u64 {
        self.inner
            .scheduled_runs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Member snapshots: how many a cache miss started from, and how many were taken (for
    /// metrics and tests).
    pub fn member_snapshots(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inner.snapshot_loads.load(Relaxed),
            self.inner.snapshots_written.load(Relaxed),
        )
    }

    /// Events the read models' projection took decoded from the engine that had just appended
    /// them, instead of decoding them from the store (for metrics and tests).
    pub fn projection_handoffs(&self) -> u64 {
        self.inner.model.handoff.taken()
    }

    /// Cached aggregate states: how many, and their weight in bytes (for metrics).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.inner.cache.usage()
    }

    /// A refund that names only the sale: the member is found through the sale's reservation
    /// stream (authoritative, not a read model).
    pub async fn refund_by_transaction(
        &self,
        refund: RefundRequest,
    ) -> Result<CommandResult, EngineError> {
        self.refund_by_transaction_with(refund, CommandContext::default())
            .await
    }

    pub async fn refund_by_transaction_with(
        &self,
        refund: RefundRequest,
        context: CommandContext,
    ) -> Result<CommandResult, EngineError> {
        let sale = refund.sale();
        let member = reservation::owner(self.inner.store.as_ref(), &sale)
            .await?
            .ok_or_else(|| EngineError::UnknownTransaction(sale.clone()))?;
        let command = Command::Refund(Refund {
            member_id: member,
            refund_id: refund.refund_id,
            store: refund.store,
            purchase_store: refund.purchase_store,
            transaction_id: refund.transaction_id,
            occurred_at: refund.occurred_at,
            currency: refund.currency,
            scope: refund.scope,
        });
        match self.execute_with(command, context).await {
            // Reserved but the purchase never reached the member's stream (a crash between
            // the two writes and no retry): for the client, the transaction is unknown.
            Err(EngineError::Domain(DomainError::UnknownTransaction { .. })) => {
                Err(EngineError::UnknownTransaction(sale))
            }
            other => other,
        }
    }

    /// The member a sale belongs to, from its reservation stream.
    pub async fn member_of_transaction(
        &self,
        sale: &PurchaseKey,
    ) -> Result<Option<MemberId>, EngineError> {
        reservation::owner(self.inner.store.as_ref(), sale).await
    }

    // ---- Read-your-writes -----------------------------------------------------------------

    /// Waits (at most `read_wait_limit`) until the projections applied `position`.
    pub async fn wait_for(&self, position: Position) -> Result<(), EngineError> {
        let stopped = || match self.newer_schema_event() {
            Some(newer) => Err(EngineError::NewerSchema(newer)),
            None => Ok(()),
        };
        stopped()?;
        if self.inner.progress.get().position < position {
            // A position past the log's head was never reached by any write (of this server or
            // another on the same store): say so at once instead of waiting out the limit.
            let head = self.store().head_position().await?;
            if position > head {
                return Err(EngineError::PositionAheadOfLog {
                    wanted: position,
                    head,
                });
            }
        }
        self.inner
            .progress
            .wait_for(position, self.inner.options.read_wait_limit)
            .await
            .map_err(|e| match e {
                WaitError::TimedOut { reached } => EngineError::NotCaughtUp {
                    wanted: position,
                    reached,
                },
            })?;
        // The projection publishes the position of an event it stopped at: reached, not
        // applied.
        stopped()
    }

    /// Why the store does not take writes now (`None`: the last append, or probe, succeeded).
    /// Readiness probes report it; it clears by itself once a write goes through.
    pub fn write_failure(&self) -> Option<String> {
        self.inner.health.failure()
    }

    /// The position of the read-model snapshot this engine's read models started from (`None`:
    /// they replayed the log from its start).
    pub fn restored_snapshot(&self) -> Option<Position> {
        *self.inner.restored_from.lock()
    }

    /// Events of member streams the read models could not decode (skipped, and listed by
    /// `verify`).
    pub fn unreadable_events(&self) -> u64 {
        self.inner.model.apply_state().unreadable
    }

    /// The last position of `$all` the projections applied.
    pub fn projection_position(&self) -> Position {
        self.inner.progress.get().position
    }

    /// The projections have read the history that existed at start (for readiness probes).
    /// Never, once they stopped at an event of a newer release.
    pub fn is_caught_up(&self) -> bool {
        self.inner.progress.get().caught_up && self.newer_schema_event().is_none()
    }

    /// The event of a newer release (a schema version this build does not read) at which the
    /// read models stopped, if they met one: this server must be upgraded.
    pub fn newer_schema_event(&self) -> Option<crate::error::NewerSchemaEvent> {
        self.inner.model.halted()
    }

    // ---- Read models ----------------------------------------------------------------------

    pub fn balance(&self, member: &MemberId) -> Option<BalanceView> {
        let now = self.inner.clock.now();
        self.inner
            .model
            .with_row(member, |row| row.balance_view(member, now))
    }

    pub fn tier(&self, member: &MemberId) -> Option<TierView> {
        let now = self.inner.clock.now();
        self.inner.model.with_row(member, |row| {
            row.tier_view(member, &self.inner.program, now)
        })
    }

    pub fn member_profile(&self, member: &MemberId) -> Option<ProfileView> {
        let now = self.inner.clock.now();
        self.inner
            .model
            .with_row(member, |row| self.profile_of(member, row, now))
    }

    /// Every member's profile, in one walk of the read model (reports over all members).
    pub fn member_profiles(&self) -> Vec<ProfileView> {
        let now = self.inner.clock.now();
        let mut out = Vec::new();
        self.inner.model.for_each(|member, row| {
            if let Ok(member) = MemberId::parse(member) {
                out.push(self.profile_of(&member, row, now));
            }
        });
        out
    }

    fn profile_of(
        &self,
        member: &MemberId,
        row: &crate::readmodel::MemberRow,
        now: DateTime<Utc>,
    ) -> ProfileView {
        ProfileView {
            member_id: member.clone(),
            status: row.status(),
            enrolled_at: row.enrolled_at(),
            referrer: row.referrer(),
            balance: row.balance_view(member, now),
            tier: row.tier_view(member, &self.inner.program, now),
        }
    }

    /// Rewards the member can redeem now (tier, dates, limit, and enough available points).
    pub fn redeemable_rewards(&self, member: &MemberId) -> Vec<RewardView> {
        let now = self.inner.clock.now();
        self.inner
            .model
            .with_row(member, |row| row.rewards_view(&self.inner.program, now))
            .unwrap_or_default()
    }

    /// Program-wide totals as of now (a scan of every member's row).
    pub fn totals(&self) -> ProgramTotals {
        self.inner
            .model
            .totals(&self.inner.program, self.inner.clock.now())
    }
}

fn result_without_events(
    decision: loyalty_core::Decision,
    member: &MemberId,
    cached: &CachedMember,
) -> CommandResult {
    CommandResult {
        outcome: decision.outcome,
        replayed: decision.replayed,
        position: cached.position,
        member: member.clone(),
        stream_revision: cached.revision.unwrap_or(0),
    }
}
