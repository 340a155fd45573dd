//! The event store trait on PostgreSQL: several servers share one database, appends of
//! several streams commit in one transaction, and the layout is plain tables anyone can query.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loyalty_store_postgres::OpenError> {
//! use loyalty_store_postgres::{PostgresOptions, PostgresStore};
//! let store = PostgresStore::connect(
//!     "postgres://loyalty@db.internal:5432/loyalty",
//!     PostgresOptions::default(),
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! **Driver.** [`tokio-postgres`](tokio_postgres) with [`deadpool-postgres`](deadpool_postgres)
//! as its pool: a lean, fully asynchronous driver on the tokio runtime the engine already runs,
//! with explicit SQL and no database needed at compile time (unlike sqlx's checked queries),
//! statements prepared once per connection, notifications (`LISTEN`/`NOTIFY`) delivered by the
//! connection itself, and a small pool with wait, connect and recycle timeouts; both are well
//! kept and widely used.
//!
//! **A global order no subscriber can skip.** The classic bug of an event log on a SQL
//! database: positions come from a sequence, two transactions take 10 and 11, the one with 11
//! commits first, a subscriber reads up to 11 and moves on, and 10 becomes visible behind it,
//! never to be delivered. Here every write transaction first takes a transaction-scoped
//! advisory lock (`pg_advisory_xact_lock`, one key per store schema: the *log lock*), and only
//! then reads the streams it appends to and takes its positions from the counter row
//! (`UPDATE log_head SET position = position + n RETURNING position`). The lock is held until
//! the transaction ends, so the transactions that write positions run one at a time and commit
//! in position order; and PostgreSQL makes a committed transaction visible before it releases
//! its locks, so the next writer (and its positions) can only commit after the previous
//! writer's events are visible to everyone. Hence a reader that sees position N also sees
//! every position below N: `$all` is read with `position > last`, and a catch-up subscription
//! can never skip an event. A rolled-back append also rolls back its counter update, so
//! positions are consecutive, and `Position::new(p, p)` grows strictly. Writers also keep
//! their revision checks under the lock (transactions run at READ COMMITTED: each statement
//! after the lock sees the previous writer's commit), so the optimistic concurrency check needs
//! no other lock, and writers cannot deadlock one another. The price: appends to one store
//! schema commit one transaction at a time. Each store therefore commits the appends waiting
//! in its process together (**group commit**: a writer task, up to 128 appends per
//! transaction, each in a savepoint so that a refused one fails alone), so one lock and one WAL
//! flush serve them all; readers never wait.
//!
//! **Live subscriptions.** Subscriptions are [`loyalty_store::spawn_catch_up`] fed by a head
//! watch. An append publishes its new head itself, and `NOTIFY`s it (`pg_notify`, delivered at
//! commit) to every store on the schema, in this process or another; each store `LISTEN`s on
//! a dedicated connection and also polls `log_head` every
//! [`PostgresOptions::head_poll_interval`] in case a notification was missed, reconnecting
//! with a backoff when the connection fails.
//!
//! **Durable on commit.** Every session starts with `synchronous_commit = on` (forced through
//! the startup options, whatever the role, database or URL say, and checked on connect): a
//! commit returns once its WAL is flushed (and, with synchronous standbys configured, once they
//! have it). A server running with `fsync = off` is logged as a warning: nothing a client does
//! can make it durable.
//!
//! **One schema per store.** Tables live in the PostgreSQL schema named by
//! [`PostgresOptions::schema`] (created if missing; every connection sets `search_path` to
//! it), so several stores (tests, tenants) can share one database. Schema versions are kept
//! in `loyalty_schema_version`; older schemas are upgraded on connect, newer ones refused.
//!
//! **Hash chain.** Every event's link of the store's hash chain ([`loyalty_store::chain`]) is
//! computed by the writer and stored in the append's own transaction, under the log lock that
//! already orders positions: the links are in position order with no gap, and commit or roll
//! back with their events (a refused append of a batch rolls its links back with its rows).
//! Links are never deleted ([`EventStore::truncate_before`] deletes event rows only), and
//! [`EventStore::read_chain`] pages them by position. A database written by an earlier build,
//! or events stored by a process of an earlier build still running during an upgrade, are
//! chained at open and before the next append, for the events still stored (what was
//! truncated before cannot be chained). The cost: one more row, three 32-byte hashes, per
//! event, and one SHA-256 of the event per append, in the writer.
//!
//! **Key vault.** The members' data keys ([`loyalty_store::vault`]) live in two tables of the
//! store's schema, `member_keys` and `member_erasures`, used through the store's pool
//! ([`EventStore::key_vault`]). An erasure deletes the member's keys, then rewrites the key
//! table (`VACUUM FULL`) so that their bytes leave the table's files too; PostgreSQL's
//! write-ahead log, its archives, base backups and replicas keep them until rotated.
//!
//! Mapping decisions:
//! - the retry of an append is recognised among all of its stream's stored events (an index on
//!   event ids per stream), whatever its expected revision;
//! - `truncate_before` deletes the rows at once (they leave `$all` too) and keeps the stream's
//!   last revision in `streams`, the highest position in `log_head`, and the events' links;
//! - `$all` never yields streams whose names start with `$` (the trait refuses to write them);
//! - errors: connection and pool failures, a server shutting down or read-only (a standby),
//!   serialization failures, deadlocks and timeouts are [`StoreError::Unavailable`]
//!   (transient), a full disk (SQLSTATE 53100) is [`StoreError::StorageFull`], a closed pool
//!   [`StoreError::Closed`], anything else [`StoreError::Backend`];
//! - text columns cannot hold NUL characters: a stream name or event type containing one is
//!   refused by the server ([`StoreError::Backend`]);
//! - connections are unencrypted (`NoTls`): reach the server over a trusted network or a
//!   local socket.
#![forbid(unsafe_code)]

mod chain;
mod error;
mod listener;
mod schema;
mod vault;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use loyalty_store::{
    AppendResult, Bytes, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision,
    Limits, Position, RecordedEvent, StoreError, StreamAppend, StreamFilter, StreamFrom,
    Subscription, Uuid, spawn_catch_up,
};

use crate::error::{SqlResult, describe};
use crate::listener::{Listener, publish};

pub use schema::SCHEMA_VERSION;

/// Longest schema name accepted: the notification channel (`<schema>_appended`) must fit in
/// PostgreSQL's 63-byte identifiers.
pub const MAX_SCHEMA_NAME_BYTES: usize = 48;

/// Events a subscription reads from `$all` per query.
const SUBSCRIPTION_PAGE: usize = 512;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid PostgreSQL connection string: {}", describe(.0))]
    Url(#[source] tokio_postgres::Error),
    #[error(
        "invalid schema name {0:?}: use 1 to {MAX_SCHEMA_NAME_BYTES} lowercase ASCII letters, \
         digits and underscores, not starting with a digit"
    )]
    InvalidSchema(String),
    #[error(
        "the event store in PostgreSQL schema {schema} has schema version {found}, newer than \
         the {supported} this build of loyalty supports: open it with a newer loyalty"
    )]
    SchemaTooNew {
        schema: String,
        found: u32,
        supported: u32,
    },
    #[error(
        "the event store in PostgreSQL schema {schema} has schema version {found}, older than \
         this build's {current}; it is upgraded when a server of this release connects, not by \
         a tool that only reads"
    )]
    SchemaTooOld {
        schema: String,
        found: u32,
        current: u32,
    },
    #[error(
        "PostgreSQL sessions run with synchronous_commit = {0}, so a commit could be lost; the \
         store needs it on"
    )]
    NotDurable(String),
    #[error(
        "the database's encoding is {0}, which cannot hold every stream name: create it with \
         ENCODING 'UTF8'"
    )]
    Encoding(String),
    #[error("cannot set up the PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Store(e) => e,
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// How to reach and use the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The PostgreSQL schema holding the store's tables; created if missing.
    pub schema: String,
    /// Most connections the store's pool opens (the listener has one more of its own).
    pub pool_size: usize,
    pub limits: Limits,
    /// Bound on opening one connection (unless the URL sets `connect_timeout`).
    pub connect_timeout: Duration,
    /// Bound on waiting for a free connection of the pool; then `Unavailable`.
    pub acquire_timeout: Duration,
    /// How often the listener reads the head, in case a notification was missed: the longest
    /// a subscriber waits for another process's append when notifications fail.
    pub head_poll_interval: Duration,
    /// Whether connecting to a schema of an older version upgrades it (servers). Tools that
    /// only read leave it off: servers still on the older release refuse a newer schema, so
    /// a report must not upgrade it under them mid-rollout. A new schema is created either way.
    pub upgrade: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "loyalty".to_owned(),
            pool_size: 16,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
            head_poll_interval: Duration::from_millis(500),
            upgrade: true,
        }
    }
}

/// The names and keys derived from the store's schema.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    schema: String,
    /// `NOTIFY`/`LISTEN` channel: `<schema>_appended`.
    channel: String,
    /// The advisory lock every write transaction takes first (the log lock).
    log_lock: i64,
    /// The advisory lock migrations run under.
    migration_lock: i64,
}

impl Names {
    fn new(schema: &str) -> Result<Self, OpenError> {
        let valid = !schema.is_empty()
            && schema.len() <= MAX_SCHEMA_NAME_BYTES
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(OpenError::InvalidSchema(schema.to_owned()));
        }
        Ok(Self {
            schema: schema.to_owned(),
            channel: format!("{schema}_appended"),
            log_lock: lock_key("log", schema),
            migration_lock: lock_key("migrate", schema),
        })
    }

    /// Safe to splice into SQL: the name was checked to be `[a-z_][a-z0-9_]*`.
    fn quoted_schema(&self) -> String {
        format!("\"{}\"", self.schema)
    }

    fn quoted_channel(&self) -> String {
        format!("\"{}\"", self.channel)
    }
}

/// A stable 64-bit advisory lock key for `purpose` in `schema` (FNV-1a). Two schemas whose
/// keys collide would only share a lock: slower, never wrong.
fn lock_key(purpose: &str, schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "loyalty-store-postgres/"
        .bytes()
        .chain(purpose.bytes())
        .chain([b'/'])
        .chain(schema.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// An [`EventStore`] in one schema of a PostgreSQL database. Not `Clone`: share it in an
/// `Arc`. Dropping it stops its listener and ends its subscriptions (with
/// [`StoreError::Closed`]); [`PostgresStore::close`] also closes its connections.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    names: Arc<Names>,
    limits: Limits,
    head: Arc<watch::Sender<Position>>,
    listener: JoinHandle<()>,
    /// Appends go to the writer task, which commits those waiting together (group commit).
    appends: mpsc::Sender<WriteRequest>,
    writer: JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.writer.abort();
    }
}

/// Most appends the writer commits in one transaction.
const MAX_BATCH: usize = 128;
/// Most bytes of events the writer commits in one transaction (one append may exceed it alone).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Appends waiting for the writer, at most (then callers wait to hand theirs over).
const QUEUE_DEPTH: usize = 1_024;

/// One append (of one part or several) waiting for the writer.
struct WriteRequest {
    parts: Vec<StreamAppend>,
    reply: oneshot::Sender<Result<Vec<AppendResult>, StoreError>>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database?...`), creates
    /// or upgrades the store's schema, and starts listening for appends. Fails if the server
    /// cannot be reached within [`PostgresOptions::connect_timeout`].
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, OpenError> {
        let names = Names::new(&options.schema)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(OpenError::Url)?;
        session_options(&mut config, &names, &options);

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A broken connection shows as an error on its next query (transient); the
                // caller's retry gets a fresh one. No round trip per checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let connect_timeout = config.get_connect_timeout().copied();
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(connect_timeout)
            .recycle_timeout(connect_timeout)
            .build()
            .map_err(|e| OpenError::Pool(e.to_string()))?;

        let mut client = pool.get().await.sql()?;
        check_session(&client).await?;
        schema::upgrade(&mut client, &names, options.upgrade).await?;
        let chained = chain::catch_up_at_open(&mut client, &names).await?;
        if chained > 0 {
            let schema = names.schema.as_str();
            tracing::info!(schema, chained, "chained the events of an earlier build");
        }
        let head = read_head(&client).await?;
        drop(client);

        let head = Arc::new(watch::channel(head).0);
        // Told apart from the pool's sessions in `pg_stat_activity`.
        let mut listener_config = config;
        let application = listener_config
            .get_application_name()
            .unwrap_or("loyalty-store")
            .to_owned();
        listener_config.application_name(format!("{application} listener"));
        let listener = Listener {
            config: listener_config,
            quoted_channel: names.quoted_channel(),
            head: Arc::clone(&head),
            poll_interval: options.head_poll_interval.max(Duration::from_millis(10)),
        }
        .spawn();
        let names = Arc::new(names);
        let (appends, requests) = mpsc::channel(QUEUE_DEPTH);
        let writer = tokio::spawn(run_writer(
            pool.clone(),
            Arc::clone(&names),
            Arc::clone(&head),
            requests,
        ));
        Ok(Self {
            pool,
            names,
            limits: options.limits,
            head,
            listener,
            appends,
            writer,
        })
    }

    /// The PostgreSQL schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.names.schema
    }

    /// Waits until a connection answers a query, for at most `within`; else the last failure
    /// (transient: [`StoreError::Unavailable`]).
    pub async fn wait_ready(&self, within: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(50);
        loop {
            let attempt = async {
                let client = self.pool.get().await.sql()?;
                client.simple_query("SELECT 1").await.sql()?;
                Ok::<(), StoreError>(())
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match tokio::time::timeout(left, attempt).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => {
                    StoreError::Unavailable(format!("PostgreSQL not ready within {within:?}"))
                }
            };
            if !failure.is_transient() || Instant::now() + pause >= deadline {
                return Err(failure);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Stops the listener and closes every connection. Subscriptions end with
    /// [`StoreError::Closed`]; operations in flight fail.
    pub async fn close(mut self) {
        self.pool.close();
        self.listener.abort();
        self.writer.abort();
        let _ = (&mut self.listener).await;
        let _ = (&mut self.writer).await;
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.sql()
    }

    /// Hands an append to the writer and waits for its outcome (once committed).
    async fn write(&self, parts: Vec<StreamAppend>) -> Result<Vec<AppendResult>, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.appends
            .send(WriteRequest { parts, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        outcome.await.map_err(|_| StoreError::Closed)?
    }
}

/// The writer task: takes the appends waiting (up to [`MAX_BATCH`]) and commits them in one
/// transaction under the log lock, each in a savepoint of its own so that one refused append
/// (a conflict, a partial retry) fails alone. One lock and one commit (one WAL flush) for the
/// whole batch: concurrent appends of this process share them, which is what lets the rate
/// grow with the number of callers although commits to the store are serialised.
async fn run_writer(
    pool: Pool,
    names: Arc<Names>,
    head: Arc<watch::Sender<Position>>,
    mut requests: mpsc::Receiver<WriteRequest>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let size = |r: &WriteRequest| -> usize {
        r.parts
            .iter()
            .flat_map(|p| p.events.iter().map(EventData::size))
            .sum()
    };
    while let Some(first) = requests.recv().await {
        let mut bytes = size(&first);
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += size(&next);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        match write_batch(&pool, &names, &batch).await {
            Ok((results, new_head)) => {
                if let Some(new_head) = new_head {
                    publish(&head, new_head);
                }
                for (request, result) in batch.drain(..).zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            // Nothing of the batch was committed (or, if the connection broke during the
            // commit, its fate is unknown, as for any store: a retry with the same event ids
            // is recognised).
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Per append of the batch its outcome, and the new head if anything was written.
type BatchOutcome = (Vec<Result<Vec<AppendResult>, StoreError>>, Option<Position>);

/// Commits the batch in one transaction under the log lock; see the crate documentation.
async fn write_batch(
    pool: &Pool,
    names: &Names,
    batch: &[WriteRequest],
) -> Result<BatchOutcome, StoreError> {
    let mut client = pool.get().await.sql()?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .sql()?;
    let mut chain_head = lock_and_read_head(&tx, names.log_lock).await?;
    if chain_head.pending() {
        // Events an earlier build's process stored (see `chain`): chained first, so that the
        // links below continue from the end of the log.
        chain::chain_pending(&tx, &mut chain_head, None).await?;
    }
    // A batch of one needs no savepoint: its failure rolls the transaction back.
    let single = batch.len() == 1;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new_head = None;
    for request in batch {
        if !single {
            tx.batch_execute("SAVEPOINT append").await.sql()?;
        }
        let before = chain_head;
        match append_parts(&tx, &request.parts, &mut chain_head).await {
            Ok((results, wrote)) => {
                if !single {
                    tx.batch_execute("RELEASE SAVEPOINT append").await.sql()?;
                }
                new_head = wrote.or(new_head);
                outcomes.push(Ok(results));
            }
            Err(e) if single => return Err(e),
            Err(e) => {
                // Undoes this append's rows, links and counter update, and clears an aborted
                // transaction state; the appends before it stand, and so does their chain.
                tx.batch_execute("ROLLBACK TO SAVEPOINT append")
                    .await
                    .sql()?;
                chain_head = before;
                outcomes.push(Err(e));
            }
        }
    }
    if let Some(head) = new_head {
        // Delivered to the listeners at commit, never before.
        let notify = tx
            .prepare_typed_cached("SELECT pg_notify($1, $2)", &[Type::TEXT, Type::TEXT])
            .await
            .sql()?;
        tx.execute(&notify, &[&names.channel, &head.commit.to_string()])
            .await
            .sql()?;
    }
    tx.commit().await.sql()?;
    Ok((outcomes, new_head))
}

/// One append's parts, in order; the position of the last event written, if any.
async fn append_parts(
    tx: &deadpool_postgres::Transaction<'_>,
    parts: &[StreamAppend],
    chain_head: &mut chain::ChainHead,
) -> Result<(Vec<AppendResult>, Option<Position>), StoreError> {
    let mut results = Vec::with_capacity(parts.len());
    let mut wrote_up_to = None;
    for part in parts {
        let (result, wrote) = append_part(tx, part, chain_head).await?;
        if wrote {
            wrote_up_to = Some(result.position);
        }
        results.push(result);
    }
    Ok((results, wrote_up_to))
}

/// Settings every session of the store starts with, sent in the startup packet so that
/// nothing (role or database settings, the URL's own `options`) overrides them: later `-c`
/// options win over earlier ones.
fn session_options(config: &mut tokio_postgres::Config, names: &Names, options: &PostgresOptions) {
    let ours = format!("-c search_path={} -c synchronous_commit=on", names.schema);
    let all = match config.get_options() {
        Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    };
    config.options(&all);
    if config.get_application_name().is_none() {
        config.application_name("loyalty-store");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    // A server that vanished without closing the connection (a network partition, a host
    // powered off) fails the queries waiting on it within a minute or so, as `Unavailable`,
    // instead of after the system's two hours of keepalive silence. A query waiting for a lock
    // is unaffected: the server still answers the probes. The URL's own settings win.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(30));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(60));
    }
}

/// Refuses a session that would not make commits durable or could not hold every name.
async fn check_session(client: &tokio_postgres::Client) -> Result<(), OpenError> {
    let show = |name: &'static str| async move {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .sql()
            .map(|row| row.get::<_, String>(0))
    };
    let synchronous_commit = show("synchronous_commit").await?;
    if !matches!(synchronous_commit.as_str(), "on" | "remote_apply") {
        return Err(OpenError::NotDurable(synchronous_commit));
    }
    if show("fsync").await? != "on" {
        tracing::warn!(
            "the PostgreSQL server runs with fsync = off: commits are not durable, whatever \
             the store does"
        );
    }
    let encoding = show("server_encoding").await?;
    if !matches!(encoding.as_str(), "UTF8" | "SQL_ASCII") {
        return Err(OpenError::Encoding(encoding));
    }
    Ok(())
}

async fn read_head(client: &tokio_postgres::Client) -> Result<Position, StoreError> {
    let row = client
        .query_one("SELECT position FROM log_head WHERE id = 0", &[])
        .await
        .sql()?;
    let p = to_u64(row.try_get(0).sql()?, "log_head.position")?;
    Ok(Position::new(p, p))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {value}")))
}

/// A `u64` bound as a BIGINT, saturating: no stored value is above `i64::MAX`.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Takes the log lock and then reads the head of the log and of its chain, in one round trip:
/// the two statements are pipelined, and the server runs them in order, so the head is read
/// (READ COMMITTED: a snapshot per statement) once the lock is held.
async fn lock_and_read_head(
    tx: &deadpool_postgres::Transaction<'_>,
    key: i64,
) -> Result<chain::ChainHead, StoreError> {
    let lock = tx
        .prepare_typed_cached("SELECT pg_advisory_xact_lock($1)", &[Type::INT8])
        .await
        .sql()?;
    let head = tx.prepare_cached(chain::HEAD_QUERY).await.sql()?;
    let locked = async { tx.execute(&lock, &[&key]).await.sql() };
    let read = async { tx.query_one(&head, &[]).await.sql() };
    // `try_join!` polls them in this order, so the lock's request is sent first.
    let (_, row) = futures::try_join!(locked, read)?;
    chain::head_from_row(&row)
}

/// Takes the log lock, held until the transaction ends: every write transaction's first
/// statement (see the crate documentation).
async fn take_log_lock(
    tx: &deadpool_postgres::Transaction<'_>,
    key: i64,
) -> Result<(), StoreError> {
    let lock = tx
        .prepare_typed_cached("SELECT pg_advisory_xact_lock($1)", &[Type::INT8])
        .await
        .sql()?;
    tx.execute(&lock, &[&key]).await.sql()?;
    Ok(())
}

/// Appends one part inside the write transaction (the log lock is held). Returns its result
/// and whether it wrote anything (a retry writes nothing).
async fn append_part(
    tx: &deadpool_postgres::Transaction<'_>,
    part: &StreamAppend,
    chain_head: &mut chain::ChainHead,
) -> Result<(AppendResult, bool), StoreError> {
    let stream = part.stream.as_str();
    let events = &part.events;
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();

    let last_revision = tx
        .prepare_cached("SELECT last_revision, last_hash FROM streams WHERE stream = $1")
        .await
        .sql()?;
    let stored_ids = tx
        .prepare_typed_cached(
            "SELECT event_id, revision, position FROM events
             WHERE stream = $1 AND event_id = ANY($2)",
            &[Type::TEXT, Type::UUID_ARRAY],
        )
        .await
        .sql()?;
    // Both queries in one round trip (the driver pipelines concurrent queries).
    let (current, found) = futures::try_join!(
        async { tx.query_opt(&last_revision, &[&stream]).await.sql() },
        async { tx.query(&stored_ids, &[&stream, &ids]).await.sql() },
    )?;
    let (current, mut stream_hash) = match current {
        Some(row) => (
            CurrentRevision::Current(to_u64(row.try_get(0).sql()?, "last_revision")?),
            match row.try_get::<_, Option<Vec<u8>>>(1).sql()? {
                Some(bytes) => chain::to_hash(bytes, "streams.last_hash")?,
                None => loyalty_store::chain::GENESIS,
            },
        ),
        None => (CurrentRevision::NoStream, loyalty_store::chain::GENESIS),
    };
    let mut stored = HashMap::with_capacity(found.len());
    for row in &found {
        let id: Uuid = row.try_get(0).sql()?;
        let revision = to_u64(row.try_get(1).sql()?, "revision")?;
        let position = to_u64(row.try_get(2).sql()?, "position")?;
        stored.insert(id, (revision, Position::new(position, position)));
    }
    if let Some(original) = retry_result(stream, &stored, events)? {
        return Ok((original, false));
    }
    part.expected.check(stream, current)?;

    let first = match current {
        CurrentRevision::Current(last) => last + 1,
        CurrentRevision::NoStream => 0,
    };
    let count = events.len() as u64;
    let last = first + count - 1;
    let (first_sql, count_sql) = (saturating_i64(first), saturating_i64(count));
    if i64::try_from(last).is_err() {
        return Err(StoreError::Backend(format!(
            "stream {stream} cannot grow past revision {}",
            i64::MAX
        )));
    }
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
    let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_ref()).collect();
    let metadata: Vec<&[u8]> = events.iter().map(|e| e.metadata.as_ref()).collect();
    // The links, at the positions the counter is about to give (the log lock is held since the
    // head was read): checked against what it gives below.
    let expected_head = chain_head.position + count;
    let links = chain::links(chain_head, &mut stream_hash, stream, first, events);
    let [event_hashes, stream_hashes, chain_hashes] = chain::hash_columns(&links);
    // One statement: take `count` positions from the counter (its row is only ever updated
    // under the log lock), insert the events at them with their links, and move the stream's
    // last revision and hash and the chain's head.
    let insert = tx
        .prepare_typed_cached(
            "WITH head AS (
                UPDATE log_head SET position = position + $2, chained_to = position + $2,
                                    chain_hash = $12
                WHERE id = 0 RETURNING position
            ), chained AS (
                INSERT INTO chain
                    (position, stream, revision, event_hash, stream_hash, chain_hash)
                SELECT head.position - $2 + c.n, $1, $3 + c.n - 1, c.event_hash, c.stream_hash,
                       c.chain_hash
                FROM head, UNNEST($9::bytea[], $10::bytea[], $11::bytea[])
                    WITH ORDINALITY AS c(event_hash, stream_hash, chain_hash, n)
            ), written AS (
                INSERT INTO events
                    (position, stream, revision, event_id, event_type, schema_version, data,
                     metadata)
                SELECT head.position - $2 + e.n, $1, $3 + e.n - 1, e.event_id, e.event_type,
                       e.schema_version, e.data, e.metadata
                FROM head, UNNEST($4::uuid[], $5::text[], $6::int8[], $7::bytea[], $8::bytea[])
                    WITH ORDINALITY AS e(event_id, event_type, schema_version, data, metadata, n)
            ), stream AS (
                INSERT INTO streams (stream, last_revision, last_hash) VALUES ($1, $3 + $2 - 1, $13)
                ON CONFLICT (stream) DO UPDATE
                    SET last_revision = EXCLUDED.last_revision, last_hash = EXCLUDED.last_hash
            )
            SELECT position FROM head",
            &[
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::UUID_ARRAY,
                Type::TEXT_ARRAY,
                Type::INT8_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA,
                Type::BYTEA,
            ],
        )
        .await
        .sql()?;
    let row = tx
        .query_one(
            &insert,
            &[
                &stream,
                &count_sql,
                &first_sql,
                &ids,
                &types,
                &versions,
                &data,
                &metadata,
                &event_hashes,
                &stream_hashes,
                &chain_hashes,
                &chain_head.hash.as_slice(),
                &stream_hash.as_slice(),
            ],
        )
        .await
        .sql()?;
    let head = to_u64(row.try_get(0).sql()?, "log_head.position")?;
    if head != expected_head {
        // Only a writer that skipped the log lock could do this: refuse to link the events to
        // positions they do not have (the transaction is rolled back).
        return Err(StoreError::Corrupt(format!(
            "log_head moved to {head} under the log lock, where {expected_head} was expected"
        )));
    }
    Ok((
        AppendResult {
            next_expected_revision: last,
            position: Position::new(head, head),
        },
        true,
    ))
}

/// If every event id is already stored in the stream, consecutively and in the same order, the
/// append is a retry: its original result. Some but not all: an error. (As the in-memory
/// store's; `stored` maps the ids found to their revision and position.)
fn retry_result(
    stream: &str,
    stored: &HashMap<Uuid, (u64, Position)>,
    events: &[EventData],
) -> Result<Option<AppendResult>, StoreError> {
    let found: Vec<Option<(u64, Position)>> =
        events.iter().map(|e| stored.get(&e.id).copied()).collect();
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    let partial = || StoreError::PartialDuplicate {
        stream: stream.to_owned(),
    };
    let Some(Some((first, _))) = found.first().copied() else {
        return Err(partial());
    };
    for (offset, entry) in found.iter().enumerate() {
        if entry.map(|(revision, _)| revision) != Some(first + offset as u64) {
            return Err(partial());
        }
    }
    let Some(Some((last, position))) = found.last().copied() else {
        return Err(partial());
    };
    Ok(Some(AppendResult {
        next_expected_revision: last,
        position,
    }))
}

const EVENT_COLUMNS: &str =
    "position, stream, revision, event_id, event_type, schema_version, data, metadata";

fn recorded(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position = to_u64(row.try_get(0).sql()?, "position")?;
    let schema_version: i64 = row.try_get(5).sql()?;
    Ok(RecordedEvent {
        position: Position::new(position, position),
        stream: row.try_get(1).sql()?,
        revision: to_u64(row.try_get(2).sql()?, "revision")?,
        id: row.try_get(3).sql()?,
        event_type: row.try_get(4).sql()?,
        schema_version: u32::try_from(schema_version).map_err(|_| {
            StoreError::Corrupt(format!("schema_version out of range: {schema_version}"))
        })?,
        data: Bytes::from(row.try_get::<_, Vec<u8>>(6).sql()?),
        metadata: Bytes::from(row.try_get::<_, Vec<u8>>(7).sql()?),
    })
}

/// `read_all` on a pool: shared by the store and its subscriptions.
async fn read_all(
    pool: &Pool,
    limits: Limits,
    after: Position,
    max_count: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    limits.check_page(max_count)?;
    // Positions here are (p, p): (p, p) > (c, q) when p > c, or p == c and c > q.
    let bound = if after.prepare < after.commit {
        after.commit - 1
    } else {
        after.commit
    };
    let client = pool.get().await.sql()?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE position > $1 AND stream NOT LIKE '$%'
             ORDER BY position LIMIT $2"
        ))
        .await
        .sql()?;
    let rows = client
        .query(
            &statement,
            &[&saturating_i64(bound), &saturating_i64(max_count as u64)],
        )
        .await
        .sql()?;
    rows.iter().map(recorded).collect()
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        self.limits.check_append(stream, &events)?;
        let part = StreamAppend {
            stream: stream.to_owned(),
            expected,
            events,
        };
        let mut results = self.write(vec![part]).await?;
        results
            .pop()
            .ok_or_else(|| StoreError::Backend("an append returned no result".into()))
    }

    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        self.limits.check_append_many(&appends)?;
        self.write(appends).await
    }

    fn atomic_append_many(&self) -> bool {
        true
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.limits.check_stream_name(stream)?;
        self.limits.check_page(max_count)?;
        // Truncated events are deleted, so the first row is the first kept revision.
        let (query, bound, limit) = match (direction, from) {
            (Direction::Forwards, StreamFrom::End) => return Ok(Vec::new()),
            (Direction::Forwards, StreamFrom::Start) => {
                ("revision >= $2 ORDER BY revision", 0, max_count)
            }
            (Direction::Forwards, StreamFrom::Revision(r)) => (
                "revision >= $2 ORDER BY revision",
                saturating_i64(r),
                max_count,
            ),
            // Backwards from the start is the first event kept, alone.
            (Direction::Backwards, StreamFrom::Start) => ("revision >= $2 ORDER BY revision", 0, 1),
            (Direction::Backwards, StreamFrom::End) => {
                ("revision <= $2 ORDER BY revision DESC", i64::MAX, max_count)
            }
            (Direction::Backwards, StreamFrom::Revision(r)) => (
                "revision <= $2 ORDER BY revision DESC",
                saturating_i64(r),
                max_count,
            ),
        };
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream = $1 AND {query} LIMIT $3"
            ))
            .await
            .sql()?;
        let rows = client
            .query(
                &statement,
                &[&stream, &bound, &saturating_i64(limit as u64)],
            )
            .await
            .sql()?;
        rows.iter().map(recorded).collect()
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read_all(&self.pool, self.limits, after, max_count).await
    }

    async fn subscribe_all(
        &self,
        after: Position,
        filter: StreamFilter,
    ) -> Result<Subscription, StoreError> {
        let (pool, limits) = (self.pool.clone(), self.limits);
        Ok(spawn_catch_up(
            move |after, max| {
                let pool = pool.clone();
                async move { read_all(&pool, limits, after, max).await }
            },
            self.head.subscribe(),
            after,
            filter,
            self.limits.max_page_size.min(SUBSCRIPTION_PAGE),
        ))
    }

    async fn truncate_before(&self, stream: &str, revision: u64) -> Result<(), StoreError> {
        self.limits.check_stream_name(stream)?;
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .sql()?;
        // Under the log lock as every write: no append of this stream runs meanwhile.
        take_log_lock(&tx, self.names.log_lock).await?;
        let Some(row) = tx
            .query_opt(
                "SELECT last_revision, truncated_before FROM streams WHERE stream = $1",
                &[&stream],
            )
            .await
            .sql()?
        else {
            // A missing stream: nothing to do, and it is not created.
            return Ok(());
        };
        let last = to_u64(row.try_get(0).sql()?, "last_revision")?;
        let truncated_before = to_u64(row.try_get(1).sql()?, "truncated_before")?;
        // Past the end means every event stored now: later appends stay readable.
        let keep_from = revision.min(last + 1);
        if keep_from <= truncated_before {
            return Ok(());
        }
        let keep_from = saturating_i64(keep_from);
        tx.execute(
            "DELETE FROM events WHERE stream = $1 AND revision < $2",
            &[&stream, &keep_from],
        )
        .await
        .sql()?;
        tx.execute(
            "UPDATE streams SET truncated_before = $2 WHERE stream = $1",
            &[&stream, &keep_from],
        )
        .await
        .sql()?;
        tx.commit().await.sql()
    }

    async fn stream_revision(&self, stream: &str) -> Result<CurrentRevision, StoreError> {
        self.limits.check_stream_name(stream)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT last_revision FROM streams WHERE stream = $1")
            .await
            .sql()?;
        Ok(
            match client.query_opt(&statement, &[&stream]).await.sql()? {
                Some(row) => {
                    CurrentRevision::Current(to_u64(row.try_get(0).sql()?, "last_revision")?)
                }
                None => CurrentRevision::NoStream,
            },
        )
    }

    async fn stream_revisions(
        &self,
        streams: &[String],
    ) -> Result<Vec<CurrentRevision>, StoreError> {
        for stream in streams {
            self.limits.check_stream_name(stream)?;
        }
        // One round trip for all of them (an import checks tens of thousands).
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT stream, last_revision FROM streams WHERE stream = ANY($1)")
            .await
            .sql()?;
        let mut found = std::collections::HashMap::new();
        for row in client.query(&statement, &[&streams]).await.sql()? {
            let stream: String = row.try_get(0).sql()?;
            found.insert(stream, to_u64(row.try_get(1).sql()?, "last_revision")?);
        }
        Ok(streams
            .iter()
            .map(|s| {
                found
                    .get(s)
                    .map_or(CurrentRevision::NoStream, |r| CurrentRevision::Current(*r))
            })
            .collect())
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let client = self.client().await?;
        read_head(&client).await
    }

    async fn read_chain(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<loyalty_store::chain::ChainLink>, StoreError> {
        let client = self.client().await?;
        chain::read_chain(&client, self.limits, after, max_count).await
    }

    /// The vault in this schema's tables, through this store's pool: it answers
    /// [`StoreError::Closed`] once the store is closed.
    fn key_vault(&self) -> Option<Arc<dyn loyalty_store::vault::KeyVault>> {
        Some(Arc::new(vault::PostgresKeyVault::new(
            self.pool.clone(),
            Arc::clone(&self.names),
        )))
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

/// Drops the PostgreSQL schema `schema` and everything in it (the store's tables): for tests
/// and tear-downs. Takes at most `lock_timeout` waiting for sessions still using it.
pub async fn drop_schema(url: &str, schema: &str, lock_timeout: Duration) -> Result<(), OpenError> {
    let names = Names::new(schema)?;
    let config: tokio_postgres::Config = url.parse().map_err(OpenError::Url)?;
    let (client, connection) = config.connect(NoTls).await.sql()?;
    let connection = tokio::spawn(connection);
    let result = client
        .batch_execute(&format!(
            "SET lock_timeout = {}; DROP SCHEMA IF EXISTS {} CASCADE",
            lock_timeout.as_millis(),
            names.quoted_schema()
        ))
        .await
        .sql();
    drop(client);
    let _ = connection.await;
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> EventData {
        EventData {
            id: Uuid::new_v4(),
            event_type: "T".to_owned(),
            schema_version: 1,
            data: Bytes::from_static(b"{}"),
            metadata: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn a_retry_is_all_of_its_ids_stored_consecutively_in_order() {
        let (a, b, c) = (event(), event(), event());
        let at = |r: u64| (r, Position::new(r + 10, r + 10));
        let stored = HashMap::from([(a.id, at(3)), (b.id, at(4))]);
        assert_eq!(
            retry_result("s", &stored, &[a.clone(), b.clone()]).unwrap(),
            Some(AppendResult {
                next_expected_revision: 4,
                position: Position::new(14, 14)
            })
        );
        assert_eq!(
            retry_result("s", &HashMap::new(), std::slice::from_ref(&c)).unwrap(),
            None
        );
        assert_eq!(
            retry_result("s", &stored, std::slice::from_ref(&c)).unwrap(),
            None
        );
        for partial in [
            vec![b.clone(), a.clone()],
            vec![a.clone(), c.clone()],
            vec![c, a],
        ] {
            assert!(matches!(
                retry_result("s", &stored, &partial),
                Err(StoreError::PartialDuplicate { .. })
            ));
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers_and_lock_keys_differ_by_schema() {
        let names = Names::new("loyalty").unwrap();
        assert_eq!(names.channel, "loyalty_appended");
        assert_ne!(names.log_lock, names.migration_lock);
        assert_ne!(names.log_lock, Names::new("loyalty_2").unwrap().log_lock);
        // Stable across builds: other processes must take the same lock.
        assert_eq!(names.log_lock, lock_key("log", "loyalty"));
        assert!(Names::new(&"a".repeat(MAX_SCHEMA_NAME_BYTES)).is_ok());
        for bad in ["", "A", "9a", "a-b", "a.b", "a\"b"] {
            assert!(Names::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pool_failures_are_transient_and_a_closed_pool_is_closed() {
        use deadpool_postgres::{PoolError, TimeoutType};
        assert!(error::pool_error(&PoolError::Timeout(TimeoutType::Wait)).is_transient());
        assert_eq!(error::pool_error(&PoolError::Closed), StoreError::Closed);
    }
}
