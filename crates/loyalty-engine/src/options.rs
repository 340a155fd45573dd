//! The engine's knobs, each with a bound.

use std::time::Duration;

use loyalty_core::{HotLimits, TimeWindow};

/// How the engine behaves. Every field has a sane default; see [`EngineOptions::default`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Most aggregate states kept in the cache of recent members (LRU).
    pub cache_members: usize,
    /// Most bytes the cached states may weigh (each state's rough size; LRU).
    pub cache_bytes: usize,
    /// How many times a command is decided again after a concurrent writer won the append.
    pub max_conflict_retries: u32,
    /// Longest time a read waits for the projections to reach a `min_position`.
    pub read_wait_limit: Duration,
    /// The referral process manager stores its checkpoint after this many events it handled.
    pub projection_checkpoint_every: usize,
    /// Events read per page when loading a stream or replaying `$all` (capped by the store's limit).
    pub read_page_size: usize,
    /// Members the scheduler works on at the same time.
    pub scheduler_concurrency: usize,
    /// Most members one scheduler run handles (the rest are picked up by the next run).
    pub scheduler_batch_limit: usize,
    /// Most entries a page of the log, a member's events or history may hold.
    pub max_page_size: usize,
    /// How far a caller's `occurred_at` may stray from the engine's clock.
    pub time_window: TimeWindow,
    /// What cached aggregate states keep; `None`: `HotLimits::new` for the program and the
    /// window (tests set tiny limits to see retirement at work).
    pub hot_limits: Option<HotLimits>,
    /// Where read-model snapshots are kept; `None`: no snapshots (every start replays the log).
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// A snapshot is taken every this many events applied (and at shutdown).
    pub snapshot_every_events: u64,
    /// How long a lease (scheduler, referral process manager) stays held without renewal: it
    /// is renewed every third of it, and another server takes over at most this long plus a
    /// third after its holder dies.
    pub lease_ttl: Duration,
    /// A member's hot state is snapshotted in the store (`snapshot-<member>`) every this many
    /// events appended to its stream, so that loading it reads the snapshot and the events
    /// after it; 0: no member snapshots.
    pub member_snapshot_every: u64,
    /// Where members' data keys are kept (`privacy`); `None`: the store's own vault
    /// ([`loyalty_store::EventStore::key_vault`]).
    pub vault: Option<std::sync::Arc<dyn loyalty_store::vault::KeyVault>>,
    /// Most events a member's export (`Engine::export_member`) may hold.
    pub max_export_events: usize,
    /// An engine that appends nothing: one-shot tools that only read (the CLI's reports,
    /// `verify`, exports). It does not record its program, runs no referral process manager,
    /// and refuses commands and erasures ([`crate::EngineError::ReadOnly`]). Servers and the
    /// commands that write leave it off.
    pub read_only: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            cache_members: 1_000_000,
            cache_bytes: 256 * 1024 * 1024,
            max_conflict_retries: 5,
            read_wait_limit: Duration::from_secs(5),
            projection_checkpoint_every: 1_000,
            read_page_size: 1_000,
            scheduler_concurrency: 16,
            scheduler_batch_limit: 100_000,
            max_page_size: 1_000,
            time_window: TimeWindow::DEFAULT,
            hot_limits: None,
            snapshot_dir: None,
            snapshot_every_events: 100_000,
            lease_ttl: Duration::from_secs(15),
            member_snapshot_every: 500,
            vault: None,
            max_export_events: 100_000,
            read_only: false,
        }
    }
}
