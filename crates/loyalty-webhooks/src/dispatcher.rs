//! The dispatcher: under the `webhooks` lease, one task per enabled endpoint reads `$all` from
//! the endpoint's checkpoint and delivers its messages.
//!
//! A supervisor task waits for the lease, then keeps one worker per endpoint that is enabled or
//! failing (a paused endpoint has none: its backlog is the log after its checkpoint, drained on
//! resume). It reloads the registry when this server changed it (`registry_changed`) or when
//! the registry stream's revision moved (polled, for changes made on other servers), and
//! hands each worker its endpoint's new state. A change of what a worker reads (generation,
//! event types, concurrency) restarts it from its stored checkpoint; other changes (URL,
//! secrets, timeout, status, redeliveries) are taken as they come. When the lease is lost, or at
//! shutdown, every worker writes its delivery log and checkpoint and stops.
//!
//! A worker reads member events from its checkpoint, keeps the messages its endpoint wants in a
//! bounded queue (reading stops while the queue is full: memory stays bounded whatever the
//! backlog), and sends up to `max_in_flight` at once, never two of one member at once and a
//! member's message only once all its earlier ones were delivered (order per member). A
//! failure is retried after an exponential backoff with full jitter, while the other members go
//! on; a message not delivered `retry_for_secs` after its first attempt makes the endpoint
//! failing: then only the oldest message is tried, every `failing_probe_secs`, until one
//! succeeds. The checkpoint is the position before the oldest message not yet delivered (or
//! the last event read), so that everything at or before it is done: a restart sends again
//! what was in flight, with the same `webhook-id`, and never skips a message.
//!
//! Workers are tasks of their own with their own HTTP timeouts: a slow endpoint never slows
//! another, and nothing on the engine's command path waits for any of this.
//!
//! An event the endpoint wants that a newer release wrote (a schema version this build does not
//! read, during a rolling upgrade) stops the worker's reading there, as it stops the read
//! models: the messages before it are still delivered, the checkpoint never passes it, the
//! error is logged and reported (`DispatcherStats::halted_endpoints`, `DeliveryStatus::halted`),
//! and a server of a build that reads it goes on from the checkpoint. Skipping it would lose
//! its message for good.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use loyalty_engine::{LeaseHandle, NewerSchemaEvent};
use loyalty_store::{
    CurrentRevision, Direction, Position, StreamFilter, StreamFrom, Subscription,
    SubscriptionMessage,
};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::delivery::{self, Outcome};
use crate::endpoint::{Endpoint, EndpointId, EndpointStatus, EventType};
use crate::log::{self, AttemptOutcome, DeliveryAttempt, LoggedAttempt};
use crate::message::{self, Message};
use crate::{LEASE_NAME, REGISTRY_STREAM, WebhookError, WebhookSettings, Webhooks};

/// How often the registry's revision is checked for changes made by other servers.
const REGISTRY_POLL: Duration = Duration::from_millis(500);
/// The smallest queue of messages read ahead per endpoint (else 4 × its `max_in_flight`).
const MIN_QUEUE: usize = 64;
/// The longest a worker waits for its last delivery-log write at stop.
const FINAL_FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// Attempts kept in memory while the delivery log cannot be written, in `log_batch`es: beyond
/// that the oldest are dropped (the log is a record, not what keeps deliveries right).
const MAX_UNWRITTEN_BATCHES: usize = 16;
/// Longest pause between two tries at re-opening a subscription or reading a checkpoint.
const MAX_STORE_BACKOFF: Duration = Duration::from_secs(5);

/// What this server's dispatcher did since it started (all endpoints together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatcherStats {
    /// Requests answered with a 2xx (redeliveries included).
    pub delivered: u64,
    /// Requests that failed (another status, a timeout, a connection error...).
    pub failed_attempts: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Endpoints whose deliveries stopped at an event of a newer release (this server must be
    /// upgraded; [`Webhooks::halted_at`] names the event).
    pub halted_endpoints: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    in_flight: AtomicU64,
    /// The event of a newer release each halted worker stopped at.
    halted: parking_lot::Mutex<HashMap<EndpointId, NewerSchemaEvent>>,
}

impl Webhooks {
    /// What this server's dispatcher did since it was first started (zeros if never).
    pub fn dispatcher_stats(&self) -> DispatcherStats {
        let guard = self.inner.dispatcher.lock();
        let Some(running) = guard.as_ref() else {
            return DispatcherStats::default();
        };
        let c = &running.counters;
        DispatcherStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            halted_endpoints: c.halted.lock().len() as u64,
        }
    }

    /// The event of a newer release the endpoint's deliveries stopped at on this server, if
    /// they did (only the server holding the `webhooks` lease delivers).
    pub fn halted_at(&self, id: &EndpointId) -> Option<NewerSchemaEvent> {
        let guard = self.inner.dispatcher.lock();
        let running = guard.as_ref()?;
        running.counters.halted.lock().get(id).cloned()
    }
}

/// The running dispatcher of this server. The lease and the counters outlive a stop, so that a
/// dispatcher started again goes on under the same lease keeper.
#[derive(Debug)]
pub(crate) struct Running {
    lease: LeaseHandle,
    counters: Arc<Counters>,
    supervisor: Option<Supervisor>,
}

#[derive(Debug)]
struct Supervisor {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts the supervisor (when `settings.enabled`), unless it runs already. Must be called
/// within a tokio runtime.
pub(crate) fn start(webhooks: &Webhooks) {
    let settings = &webhooks.inner.settings;
    if !settings.enabled {
        return;
    }
    let client = match delivery::Client::new(settings) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook dispatcher not started");
            return;
        }
    };
    let mut guard = webhooks.inner.dispatcher.lock();
    let running = guard.get_or_insert_with(|| Running {
        lease: webhooks.inner.engine.spawn_lease(LEASE_NAME),
        counters: Arc::new(Counters::default()),
        supervisor: None,
    });
    if running
        .supervisor
        .as_ref()
        .is_some_and(|s| !s.task.is_finished())
    {
        return;
    }
    let (stop, stop_rx) = watch::channel(false);
    let ctx = Ctx {
        webhooks: webhooks.clone(),
        client,
        counters: running.counters.clone(),
        lease: running.lease.clone(),
    };
    let task = tokio::spawn(supervise(ctx, running.lease.clone(), stop_rx));
    running.supervisor = Some(Supervisor { stop, task });
}

/// Stops the supervisor and its workers; returns once their delivery logs are written.
pub(crate) async fn stop(webhooks: &Webhooks) {
    let supervisor = webhooks
        .inner
        .dispatcher
        .lock()
        .as_mut()
        .and_then(|running| running.supervisor.take());
    if let Some(supervisor) = supervisor {
        supervisor.stop.send_replace(true);
        if let Err(e) = supervisor.task.await {
            tracing::warn!(error = %e, "webhook dispatcher ended badly");
        }
    }
}

/// What the supervisor and its workers share.
#[derive(Debug, Clone)]
struct Ctx {
    webhooks: Webhooks,
    client: delivery::Client,
    counters: Arc<Counters>,
    /// Workers watch it themselves: while the supervisor is busy (loading the registry,
    /// stopping another worker), a lapsed lease must stop every delivery at once.
    lease: LeaseHandle,
}

impl Ctx {
    fn settings(&self) -> &WebhookSettings {
        &self.webhooks.inner.settings
    }

    fn store(&self) -> &dyn loyalty_store::EventStore {
        self.webhooks.inner.engine.store().as_ref()
    }

    fn now(&self) -> DateTime<Utc> {
        self.webhooks.inner.engine.clock().now()
    }
}

/// Why a tenure under the lease ended.
enum End {
    Shutdown,
    LeaseLost,
}

async fn supervise(ctx: Ctx, mut lease: LeaseHandle, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            held = lease.wait_held() => if !held { return },
            _ = stop.changed() => return,
        }
        tracing::info!("webhook dispatcher runs here (lease held)");
        let mut fleet = Fleet {
            ctx: ctx.clone(),
            workers: HashMap::new(),
            removed: HashSet::new(),
        };
        let end = fleet.run(&mut lease, &mut stop).await;
        fleet.stop_all().await;
        match end {
            End::Shutdown => return,
            End::LeaseLost => tracing::info!("webhook dispatcher stops here (lease lost)"),
        }
    }
}

/// The workers of one tenure under the lease.
struct Fleet {
    ctx: Ctx,
    workers: HashMap<EndpointId, WorkerHandle>,
    /// Deleted endpoints whose logs were emptied during this tenure.
    removed: HashSet<EndpointId>,
}

/// What restarts a worker when it changes: what it reads and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestartKey {
    generation: u64,
    start_after: Position,
    event_types: Vec<EventType>,
    max_in_flight: u32,
}

impl RestartKey {
    fn of(endpoint: &Endpoint) -> RestartKey {
        RestartKey {
            generation: endpoint.generation,
            start_after: endpoint.start_after,
            event_types: endpoint.event_types.clone(),
            max_in_flight: endpoint.max_in_flight,
        }
    }
}

struct WorkerHandle {
    key: RestartKey,
    endpoint: watch::Sender<Arc<Endpoint>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    fn spawn(ctx: &Ctx, endpoint: &Endpoint) -> WorkerHandle {
        let (endpoint_tx, endpoint_rx) = watch::channel(Arc::new(endpoint.clone()));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_worker(ctx.clone(), endpoint_rx, stop_rx));
        WorkerHandle {
            key: RestartKey::of(endpoint),
            endpoint: endpoint_tx,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "webhook worker ended badly");
        }
    }
}

impl Fleet {
    async fn run(&mut self, lease: &mut LeaseHandle, stop: &mut watch::Receiver<bool>) -> End {
        let changed = self.ctx.webhooks.inner.registry_changed.clone();
        let mut poll = tokio::time::interval(REGISTRY_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The registry revision last loaded; `None`: to be loaded.
        let mut loaded: Option<Option<u64>> = None;
        loop {
            if *stop.borrow() {
                return End::Shutdown;
            }
            if loaded.is_none() {
                match crate::registry::load(self.ctx.store()).await {
                    Ok((state, revision)) => {
                        self.reconcile(&state).await;
                        loaded = Some(revision);
                    }
                    Err(e) => tracing::warn!(error = %e, "webhook registry not readable yet"),
                }
            }
            tokio::select! {
                () = changed.notified() => loaded = None,
                _ = poll.tick() => {
                    // A worker that ended by itself (it never should) is started again.
                    if self.workers.values().any(|w| w.task.is_finished()) {
                        loaded = None;
                    }
                    match self.ctx.store().stream_revision(REGISTRY_STREAM).await {
                        Ok(current) => {
                            let current = match current {
                                CurrentRevision::Current(r) => Some(r),
                                CurrentRevision::NoStream => None,
                            };
                            if loaded != Some(current) {
                                loaded = None;
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "webhook registry revision unknown"),
                    }
                }
                () = lease.lost() => return End::LeaseLost,
                _ = stop.changed() => return End::Shutdown,
            }
        }
    }

    /// Brings the workers in line with the registry.
    async fn reconcile(&mut self, state: &crate::endpoint::RegistryState) {
        for (id, endpoint) in &state.endpoints {
            let active = matches!(
                endpoint.status,
                EndpointStatus::Enabled | EndpointStatus::Failing
            );
            if let Some(worker) = self.workers.get(id) {
                if active && worker.key == RestartKey::of(endpoint) && !worker.task.is_finished() {
                    worker.endpoint.send_if_modified(|current| {
                        if **current == *endpoint {
                            false
                        } else {
                            *current = Arc::new(endpoint.clone());
                            true
                        }
                    });
                    continue;
                }
                if let Some(worker) = self.workers.remove(id) {
                    worker.stop().await;
                }
            }
            if active {
                self.workers
                    .insert(id.clone(), WorkerHandle::spawn(&self.ctx, endpoint));
            }
        }
        let gone: Vec<EndpointId> = self
            .workers
            .keys()
            .filter(|id| !state.endpoints.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(worker) = self.workers.remove(&id) {
                worker.stop().await;
            }
        }
        // A deleted endpoint's log goes too (after its worker wrote its last batch).
        for id in &state.deleted {
            if self.workers.contains_key(id) || self.removed.contains(id) {
                continue;
            }
            match log::remove(self.ctx.store(), id).await {
                Ok(()) => {
                    self.removed.insert(id.clone());
                }
                Err(e) => tracing::warn!(endpoint = %id, error = %e,
                    "deleted endpoint's delivery log not removed yet"),
            }
        }
    }

    async fn stop_all(&mut self) {
        let workers: Vec<WorkerHandle> = self.workers.drain().map(|(_, w)| w).collect();
        for worker in &workers {
            worker.stop.send_replace(true);
        }
        futures::future::join_all(workers.into_iter().map(WorkerHandle::stop)).await;
    }
}

/// Sleeps, or returns true early if stop was asked.
async fn pause(stop: &mut watch::Receiver<bool>, how_long: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(how_long) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn run_worker(
    ctx: Ctx,
    mut endpoint_rx: watch::Receiver<Arc<Endpoint>>,
    mut stop: watch::Receiver<bool>,
) {
    let endpoint = endpoint_rx.borrow_and_update().clone();
    let mut backoff = Duration::from_millis(10);
    let (generation, from) = loop {
        match log::load_checkpoint(ctx.store(), &endpoint.id).await {
            // A checkpoint of an older generation belongs to before the last replay.
            Ok((generation, Some(checkpoint))) if generation >= endpoint.generation => {
                break (generation, checkpoint);
            }
            Ok(_) => break (endpoint.generation, endpoint.start_after),
            Err(e) => {
                tracing::warn!(endpoint = %endpoint.id, error = %e,
                    "webhook checkpoint not readable yet, retrying");
                if pause(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_STORE_BACKOFF);
            }
        }
    };
    tracing::info!(endpoint = %endpoint.id, %from, generation, "webhook worker starts");
    let max_in_flight = usize::try_from(endpoint.max_in_flight.clamp(1, 1024)).unwrap_or(1);
    let now = Instant::now();
    let mut worker = Worker {
        lease: ctx.lease.clone(),
        failing: (endpoint.status == EndpointStatus::Failing).then_some(now),
        recovery_asked: false,
        ctx,
        endpoint,
        endpoint_rx,
        generation,
        read: from,
        pending: BTreeMap::new(),
        capacity: (4 * max_in_flight).max(MIN_QUEUE),
        max_in_flight,
        sending: 0,
        tasks: JoinSet::new(),
        redeliveries: HashMap::new(),
        unwritten: Vec::new(),
        stored: None,
        flush_due: None,
        flush_failed: false,
        halted: None,
    };
    worker.run(&mut stop).await;
    worker.finish().await;
}

/// A message waiting for its delivery.
struct Entry {
    message: Arc<Message>,
    /// The source event's revision in its member stream (recorded in the log).
    revision: u64,
    /// The last event read before this one: the checkpoint while this message is not
    /// delivered.
    before: Position,
    /// Attempts made (for the log's numbering).
    attempts: u32,
    /// Failures since the retry window began (for the backoff).
    failures: u32,
    /// When the retry window began: the first attempt (or the endpoint's recovery).
    first_attempt: Option<Instant>,
    /// Not sent again before this.
    next_at: Instant,
    sending: bool,
}

/// What a request task reports.
enum Done {
    Sent {
        position: Position,
        at: DateTime<Utc>,
        outcome: Outcome,
    },
    Redelivered {
        request: u64,
        logged: Option<LoggedAttempt>,
    },
}

struct Worker {
    ctx: Ctx,
    /// This worker's view of the lease: it stops when the lease is lost.
    lease: LeaseHandle,
    endpoint: Arc<Endpoint>,
    endpoint_rx: watch::Receiver<Arc<Endpoint>>,
    /// The endpoint generation the checkpoint belongs to.
    generation: u64,
    /// The last event read.
    read: Position,
    /// Messages read and not yet delivered, by position.
    pending: BTreeMap<Position, Entry>,
    /// Most messages in `pending`: reading pauses at it.
    capacity: usize,
    max_in_flight: usize,
    /// Messages of `pending` in flight.
    sending: usize,
    tasks: JoinSet<Done>,
    /// Failing: only the oldest message is tried, at this instant and then every
    /// `failing_probe_secs`.
    failing: Option<Instant>,
    /// `mark_recovered` was asked since the endpoint was last seen failing.
    recovery_asked: bool,
    /// Redelivery requests started: whether each is done (kept while the registry lists it).
    redeliveries: HashMap<u64, bool>,
    /// Attempts not yet written to the delivery log.
    unwritten: Vec<LoggedAttempt>,
    /// The checkpoint last written.
    stored: Option<Position>,
    /// When the delivery log is to be written next (something changed since the last write).
    flush_due: Option<Instant>,
    /// The last write of the delivery log failed.
    flush_failed: bool,
    /// The event of a newer release reading stopped at (nothing after it is read).
    halted: Option<NewerSchemaEvent>,
}

/// The next message of a subscription, if there is one open.
async fn next_message(
    subscription: &mut Option<Subscription>,
) -> Option<Result<SubscriptionMessage, loyalty_store::StoreError>> {
    match subscription {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The pause before the next try after `failures` failures: exponential from the initial
/// backoff, capped, with full jitter (uniform between zero and that), so that the retries of
/// many messages spread out instead of arriving together.
fn backoff(settings: &WebhookSettings, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(63);
    let cap = settings
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.max_backoff_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

impl Worker {
    fn settings(&self) -> &WebhookSettings {
        self.ctx.settings()
    }

    fn id(&self) -> &EndpointId {
        &self.endpoint.id
    }

    /// Every event at or before it is done: before the oldest message not delivered, else the
    /// last event read.
    fn checkpoint(&self) -> Position {
        self.pending
            .values()
            .next()
            .map_or(self.read, |entry| entry.before)
    }

    async fn run(&mut self, stop: &mut watch::Receiver<bool>) {
        let mut subscription: Option<Subscription> = None;
        let mut reopen_at = Instant::now();
        let mut reopen_backoff = Duration::from_millis(10);
        let flush_every = Duration::from_millis(self.settings().log_flush_ms.max(1));
        let log_batch = self.settings().log_batch.max(1);
        loop {
            if *stop.borrow() {
                return;
            }
            if subscription.is_none() && self.halted.is_none() && Instant::now() >= reopen_at {
                match self
                    .ctx
                    .store()
                    .subscribe_all(
                        self.read,
                        StreamFilter::prefixes([loyalty_engine::streams::MEMBER_PREFIX]),
                    )
                    .await
                {
                    Ok(s) => subscription = Some(s),
                    Err(e) => {
                        tracing::warn!(endpoint = %self.id(), error = %e,
                            "webhook subscription failed to open");
                        reopen_at = Instant::now() + reopen_backoff;
                        reopen_backoff = (reopen_backoff * 2).min(MAX_STORE_BACKOFF);
                    }
                }
            }
            self.start_redeliveries();
            let wake = self.dispatch();
            if self.flush_due.is_none()
                && (!self.unwritten.is_empty() || self.stored != Some(self.checkpoint()))
            {
                self.flush_due = Some(Instant::now() + flush_every);
            }
            let room = self.pending.len() < self.capacity;
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                () = self.lease.lost() => return,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(done) => self.on_done(done).await,
                    // Request tasks catch their panics; an aborted one is only seen at stop.
                    Err(e) => tracing::warn!(endpoint = %self.id(), error = %e,
                        "webhook request task lost"),
                },
                changed = self.endpoint_rx.changed() => match changed {
                    Ok(()) => self.on_endpoint(),
                    Err(_) => return,
                },
                message = next_message(&mut subscription), if room && subscription.is_some() => {
                    match message {
                        Some(Ok(SubscriptionMessage::Event(event))) => {
                            if !self.on_event(&event) {
                                // Halted: nothing after this event is read (the messages
                                // before it go on being delivered).
                                subscription = None;
                            }
                            reopen_backoff = Duration::from_millis(10);
                        }
                        Some(Ok(SubscriptionMessage::CaughtUp { .. })) => {
                            reopen_backoff = Duration::from_millis(10);
                        }
                        ended => {
                            if let Some(Err(e)) = ended {
                                tracing::warn!(endpoint = %self.id(), error = %e,
                                    "webhook subscription ended, re-opening");
                            }
                            subscription = None;
                            reopen_at = Instant::now() + reopen_backoff;
                            reopen_backoff = (reopen_backoff * 2).min(MAX_STORE_BACKOFF);
                        }
                    }
                }
                () = tokio::time::sleep_until(reopen_at),
                    if subscription.is_none() && self.halted.is_none() => {}
                () = tokio::time::sleep_until(wake.unwrap_or(far)), if wake.is_some() => {}
                () = tokio::time::sleep_until(self.flush_due.unwrap_or(far)),
                    if self.flush_due.is_some() => self.flush().await,
            }
            // A full batch is written at once, unless the last write failed: the timed retry
            // handles that, without hammering a store that fails.
            if self.unwritten.len() >= log_batch && !self.flush_failed {
                self.flush().await;
            }
        }
    }

    /// A member event read from the subscription; `false` when reading stops at it (an event
    /// of a newer release: it is not read, so the checkpoint stays before it).
    fn on_event(&mut self, event: &loyalty_store::RecordedEvent) -> bool {
        let before = self.read;
        // Types the endpoint does not want are skipped before the event is decoded.
        if !message::integration_type(&event.event_type).is_some_and(|t| self.endpoint.wants(t)) {
            self.read = event.position;
            return true;
        }
        let decoded = message::from_recorded(event);
        if let Err(WebhookError::NewerSchema(newer)) = decoded {
            self.halt(newer);
            return false;
        }
        self.read = event.position;
        match decoded {
            Ok(Some(message)) if self.endpoint.wants(message.event_type) => {
                self.pending.insert(
                    event.position,
                    Entry {
                        message: Arc::new(message),
                        revision: event.revision,
                        before,
                        attempts: 0,
                        failures: 0,
                        first_attempt: None,
                        next_at: Instant::now(),
                        sending: false,
                    },
                );
            }
            Ok(_) => {}
            // An undecodable member event cannot become a message: stopping here would stall
            // every message after it. The engine's read models count it and `verify` lists it.
            Err(e) => tracing::warn!(endpoint = %self.id(), position = %event.position,
                error = %e, "webhook worker skips an unreadable event"),
        }
        true
    }

    /// Stops reading at an event of a newer release, and says so.
    fn halt(&mut self, newer: NewerSchemaEvent) {
        tracing::error!(endpoint = %self.id(), stream = %newer.stream, revision = newer.revision,
            position = %newer.position, event_type = %newer.event_type,
            version = newer.version, newest_known = newer.newest_known,
            "webhook deliveries stop at an event of a newer release: upgrade this server");
        self.ctx
            .counters
            .halted
            .lock()
            .insert(self.endpoint.id.clone(), newer.clone());
        self.halted = Some(newer);
    }

    /// Starts the requests that may go now; returns when the next waiting one may.
    fn dispatch(&mut self) -> Option<Instant> {
        let now = Instant::now();
        if let Some(probe_at) = self.failing {
            // Failing: the oldest message alone, once what was in flight came back.
            let (&position, entry) = self.pending.iter().next()?;
            if entry.sending || self.sending > 0 {
                return None;
            }
            if now < probe_at {
                return Some(probe_at);
            }
            self.failing = Some(now + Duration::from_secs(self.settings().failing_probe_secs));
            self.send(position);
            return None;
        }
        let mut ready = Vec::new();
        let mut wake: Option<Instant> = None;
        {
            let mut free = self.max_in_flight.saturating_sub(self.sending);
            // Members with an earlier message not delivered: theirs wait (order per member).
            let mut members: HashSet<&str> = HashSet::new();
            for (position, entry) in &self.pending {
                if free == 0 {
                    // A request coming back wakes the worker: no timer needed.
                    break;
                }
                if !members.insert(entry.message.member_id.as_str()) || entry.sending {
                    continue;
                }
                if entry.next_at <= now {
                    ready.push(*position);
                    free -= 1;
                } else {
                    wake = Some(wake.map_or(entry.next_at, |w| w.min(entry.next_at)));
                }
            }
        }
        for position in ready {
            self.send(position);
        }
        wake
    }

    fn send(&mut self, position: Position) {
        let at = self.ctx.now();
        let Some(entry) = self.pending.get_mut(&position) else {
            return;
        };
        entry.sending = true;
        entry.first_attempt.get_or_insert_with(Instant::now);
        self.sending += 1;
        self.ctx.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let client = self.ctx.client.clone();
        let endpoint = self.endpoint.clone();
        let message = entry.message.clone();
        self.tasks.spawn(async move {
            let panicked = Outcome {
                status: None,
                error: Some("the request failed unexpectedly".to_owned()),
                latency_ms: 0,
            };
            let outcome = guarded(client.send(&endpoint, &message, at), panicked).await;
            Done::Sent {
                position,
                at,
                outcome,
            }
        });
    }

    async fn on_done(&mut self, done: Done) {
        self.ctx.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        match done {
            Done::Sent {
                position,
                at,
                outcome,
            } => self.on_sent(position, at, outcome).await,
            Done::Redelivered { request, logged } => {
                if let Some(logged) = logged {
                    self.count(logged.attempt.outcome == AttemptOutcome::Delivered);
                    self.unwritten.push(logged);
                }
                self.redeliveries.insert(request, true);
                if let Err(e) =
                    crate::registry::redelivery_done(&self.ctx.webhooks, &self.endpoint.id, request)
                        .await
                {
                    tracing::warn!(endpoint = %self.id(), request, error = %e,
                        "redelivery not marked done");
                }
            }
        }
    }

    fn count(&self, delivered: bool) {
        let counter = if delivered {
            &self.ctx.counters.delivered
        } else {
            &self.ctx.counters.failed_attempts
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    async fn on_sent(&mut self, position: Position, at: DateTime<Utc>, outcome: Outcome) {
        self.sending = self.sending.saturating_sub(1);
        let delivered = outcome.delivered();
        self.count(delivered);
        let retry_for = Duration::from_secs(self.settings().retry_for_secs);
        // A handle (an Arc), not a copy of the settings: `self.pending` is borrowed below.
        let webhooks = self.ctx.webhooks.clone();
        let settings = webhooks.settings();
        let Some(entry) = self.pending.get_mut(&position) else {
            return;
        };
        entry.sending = false;
        entry.attempts = entry.attempts.saturating_add(1);
        let result = if delivered {
            AttemptOutcome::Delivered
        } else if self.failing.is_some() {
            AttemptOutcome::Retrying
        } else if entry
            .first_attempt
            .is_some_and(|first| first.elapsed() >= retry_for)
        {
            AttemptOutcome::GaveUp
        } else {
            entry.failures = entry.failures.saturating_add(1);
            entry.next_at = Instant::now() + backoff(settings, entry.failures);
            AttemptOutcome::Retrying
        };
        let message = &entry.message;
        self.unwritten.push(LoggedAttempt {
            attempt: DeliveryAttempt {
                message_id: message.id.clone(),
                event_type: message.event_type,
                member_id: message.member_id.clone(),
                position,
                attempt: entry.attempts,
                at,
                status: outcome.status,
                error: outcome.error.clone(),
                latency_ms: outcome.latency_ms,
                outcome: result,
                redelivery: false,
            },
            revision: entry.revision,
        });
        match result {
            AttemptOutcome::Delivered => {
                self.pending.remove(&position);
                if self.failing.is_some()
                    || (self.endpoint.status == EndpointStatus::Failing && !self.recovery_asked)
                {
                    self.recover(true).await;
                }
            }
            AttemptOutcome::GaveUp => {
                let why = outcome.failure().unwrap_or_default();
                let reason = delivery::bounded(&format!(
                    "{} not delivered within {} s: {why}",
                    entry.message.id, settings.retry_for_secs
                ));
                self.enter_failing(reason).await;
            }
            AttemptOutcome::Retrying | AttemptOutcome::Failed => {}
        }
    }

    /// Gave up on a message: the endpoint is failing until a message goes through.
    async fn enter_failing(&mut self, reason: String) {
        tracing::warn!(endpoint = %self.id(), %reason, "webhook endpoint failing");
        self.failing =
            Some(Instant::now() + Duration::from_secs(self.settings().failing_probe_secs));
        self.recovery_asked = false;
        if let Err(e) =
            crate::registry::mark_failing(&self.ctx.webhooks, &self.endpoint.id, reason).await
        {
            tracing::warn!(endpoint = %self.id(), error = %e, "endpoint not marked failing");
        }
    }

    /// A message went through (`mark`: tell the registry) or an admin resumed the endpoint:
    /// every waiting message may go now, with a new retry window.
    async fn recover(&mut self, mark: bool) {
        if self.failing.take().is_some() {
            tracing::info!(endpoint = %self.id(), "webhook endpoint recovered");
        }
        let now = Instant::now();
        for entry in self.pending.values_mut() {
            entry.failures = 0;
            entry.first_attempt = None;
            entry.next_at = now;
        }
        if mark {
            // Asked once; asked again at the next delivery if the mark was not stored.
            let marked =
                crate::registry::mark_recovered(&self.ctx.webhooks, &self.endpoint.id).await;
            self.recovery_asked = marked.is_ok();
            if let Err(e) = marked {
                tracing::warn!(endpoint = %self.id(), error = %e,
                    "endpoint not marked recovered");
            }
        }
    }

    /// The registry changed this endpoint (in a way that does not restart the worker).
    fn on_endpoint(&mut self) {
        let new = self.endpoint_rx.borrow_and_update().clone();
        let old = std::mem::replace(&mut self.endpoint, new);
        let new = &self.endpoint;
        if new.status != EndpointStatus::Failing {
            self.recovery_asked = false;
        }
        if self.failing.is_some() {
            if old.status == EndpointStatus::Failing && new.status == EndpointStatus::Enabled {
                // Resumed by an admin: go on at once, with a new retry window.
                self.failing = None;
                let now = Instant::now();
                for entry in self.pending.values_mut() {
                    entry.failures = 0;
                    entry.first_attempt = None;
                    entry.next_at = now;
                }
            } else if old.url != new.url
                || old.secret != new.secret
                || old.timeout_ms != new.timeout_ms
            {
                // Perhaps what made it fail: try now rather than at the next probe.
                self.failing = Some(Instant::now());
            }
        }
        let listed: HashSet<u64> = self.endpoint.redeliveries.iter().map(|r| r.0).collect();
        self.redeliveries
            .retain(|request, done| !*done || listed.contains(request));
    }

    /// Starts the redeliveries the registry asks for and this worker has not started.
    fn start_redeliveries(&mut self) {
        let requests: Vec<(u64, String, Position)> = self
            .endpoint
            .redeliveries
            .iter()
            .filter(|(request, _, _)| !self.redeliveries.contains_key(request))
            .cloned()
            .collect();
        for (request, message_id, position) in requests {
            self.redeliveries.insert(request, false);
            self.ctx.counters.in_flight.fetch_add(1, Ordering::Relaxed);
            let ctx = self.ctx.clone();
            let endpoint = self.endpoint.clone();
            self.tasks.spawn(async move {
                let logged = guarded(redeliver(&ctx, &endpoint, &message_id, position), None).await;
                Done::Redelivered { request, logged }
            });
        }
    }

    /// Writes the attempts and the checkpoint to the delivery log.
    async fn flush(&mut self) {
        let checkpoint = self.checkpoint();
        let webhooks = self.ctx.webhooks.clone();
        let settings = webhooks.settings();
        let written = log::append(
            self.ctx.store(),
            &self.endpoint.id,
            self.generation,
            Some(checkpoint),
            &self.unwritten,
            settings.log_batch,
            settings.log_keep_events,
        )
        .await;
        match written {
            Ok(()) => {
                self.unwritten.clear();
                self.stored = Some(checkpoint);
                self.flush_due = None;
                self.flush_failed = false;
            }
            Err(e) => {
                tracing::warn!(endpoint = %self.id(), error = %e,
                    "webhook delivery log not written, retrying");
                let most = MAX_UNWRITTEN_BATCHES * settings.log_batch.max(1);
                if self.unwritten.len() > most {
                    let dropped = self.unwritten.len() - most;
                    self.unwritten.drain(..dropped);
                    tracing::warn!(endpoint = %self.id(), dropped,
                        "webhook delivery log lost attempts it could not write");
                }
                let retry = Duration::from_millis(settings.log_flush_ms.max(1))
                    .max(Duration::from_millis(500));
                self.flush_due = Some(Instant::now() + retry);
                self.flush_failed = true;
            }
        }
    }

    /// At stop: requests in flight are abandoned (they will be sent again, with the same id),
    /// the log and checkpoint are written.
    async fn finish(&mut self) {
        if self.halted.is_some() {
            // The next worker (here or on the server that takes the lease) reads it again.
            self.ctx.counters.halted.lock().remove(&self.endpoint.id);
        }
        let abandoned = u64::try_from(self.tasks.len()).unwrap_or(u64::MAX);
        self.tasks.abort_all();
        self.ctx
            .counters
            .in_flight
            .fetch_sub(abandoned, Ordering::Relaxed);
        if self.unwritten.is_empty() && self.stored == Some(self.checkpoint()) {
            return;
        }
        if tokio::time::timeout(FINAL_FLUSH_LIMIT, self.flush())
            .await
            .is_err()
        {
            tracing::warn!(endpoint = %self.id(), "webhook delivery log not written at stop");
        }
    }
}

/// A request future whose panic becomes `fallback` (a worker must hear back from every request
/// it started, or the message would stay in flight for ever).
async fn guarded<T>(future: impl std::future::Future<Output = T>, fallback: T) -> T {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .unwrap_or(fallback)
}

/// Sends one message of the log again, once; `None` if its source event is not found any more.
async fn redeliver(
    ctx: &Ctx,
    endpoint: &Endpoint,
    message_id: &str,
    position: Position,
) -> Option<LoggedAttempt> {
    let (message, revision) = match read_message(ctx, endpoint, message_id, position).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            tracing::warn!(endpoint = %endpoint.id, message_id,
                "redelivery: the message is no longer in the delivery log or the store");
            return None;
        }
        Err(e) => {
            tracing::warn!(endpoint = %endpoint.id, message_id, error = %e,
                "redelivery: the message could not be read");
            return None;
        }
    };
    let at = ctx.now();
    let outcome = ctx.client.send(endpoint, &message, at).await;
    Some(LoggedAttempt {
        attempt: DeliveryAttempt {
            message_id: message.id.clone(),
            event_type: message.event_type,
            member_id: message.member_id.clone(),
            position: message.position,
            attempt: 1,
            at,
            status: outcome.status,
            error: outcome.error.clone(),
            latency_ms: outcome.latency_ms,
            outcome: if outcome.delivered() {
                AttemptOutcome::Delivered
            } else {
                AttemptOutcome::Failed
            },
            redelivery: true,
        },
        revision,
    })
}

/// The message of the log at `position`, re-read from its member stream at the revision the
/// log recorded.
async fn read_message(
    ctx: &Ctx,
    endpoint: &Endpoint,
    message_id: &str,
    position: Position,
) -> Result<Option<(Message, u64)>, WebhookError> {
    let Some(source) = log::find_source(ctx.store(), &endpoint.id, message_id).await? else {
        return Ok(None);
    };
    if source.position != position {
        return Ok(None);
    }
    let stream = format!(
        "{}{}",
        loyalty_engine::streams::MEMBER_PREFIX,
        source.member_id
    );
    let events = ctx
        .store()
        .read_stream(
            &stream,
            StreamFrom::Revision(source.revision),
            Direction::Forwards,
            1,
        )
        .await?;
    let Some(event) = events.first() else {
        return Ok(None);
    };
    if event.position != position || message::message_id(event.id) != message_id {
        return Ok(None);
    }
    Ok(message::from_recorded(event)?.map(|m| (m, event.revision)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(initial: u64, max: u64) -> WebhookSettings {
        WebhookSettings {
            initial_backoff_ms: initial,
            max_backoff_ms: max,
            ..WebhookSettings::default()
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_with_full_jitter() {
        let s = settings(100, 1_000);
        for failures in 1..=80 {
            let cap = (100u64 << (failures - 1).min(20)).min(1_000);
            for _ in 0..50 {
                let pause = backoff(&s, failures);
                assert!(pause <= Duration::from_millis(cap), "{failures}: {pause:?}");
            }
        }
        // Jitter: the pauses after one failure count are not all the same.
        let pauses: HashSet<Duration> = (0..50).map(|_| backoff(&s, 5)).collect();
        assert!(pauses.len() > 1);
    }

    #[test]
    fn a_worker_restarts_only_when_what_it_reads_changes() {
        let secret = crate::signing::Secret::generate();
        let at: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().expect("a time");
        let endpoint = Endpoint {
            id: EndpointId::parse("crm").expect("id"),
            url: "http://example.com/hook".to_owned(),
            event_types: vec![],
            description: None,
            timeout_ms: 1_000,
            max_in_flight: 4,
            status: EndpointStatus::Enabled,
            failing: None,
            secret,
            previous_secret: None,
            created_at: at,
            updated_at: at,
            start_after: Position::START,
            generation: 0,
            redeliveries: vec![],
        };
        let key = RestartKey::of(&endpoint);
        let moved = Endpoint {
            url: "http://example.org/other".to_owned(),
            status: EndpointStatus::Failing,
            redeliveries: vec![(1, "msg_1".to_owned(), Position::new(1, 1))],
            ..endpoint.clone()
        };
        assert_eq!(RestartKey::of(&moved), key);
        let replayed = Endpoint {
            generation: 1,
            ..endpoint.clone()
        };
        assert_ne!(RestartKey::of(&replayed), key);
        let narrowed = Endpoint {
            event_types: vec![EventType::TierChanged],
            ..endpoint
        };
        assert_ne!(RestartKey::of(&narrowed), key);
    }
}
