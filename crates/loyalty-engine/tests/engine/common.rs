//! Shared fixtures: a small program, a manual clock, engines over an in-memory store, command
//! builders, and a store wrapper that injects failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use loyalty_core::{
    Command, Currency, Enroll, MemberId, MemberState, Points, Program, PurchaseLine,
    RecordPurchase, Redeem, RedeemTarget, Refund, RefundScope, TransactionId, schema,
};
use loyalty_engine::{Engine, EngineOptions, ManualClock, RandomIds};
use loyalty_store::{
    AppendResult, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision,
    InMemoryStore, Limits, Position, RecordedEvent, StoreError, StreamFilter, StreamFrom,
    Subscription,
};
use rust_decimal::Decimal;

/// A small program: 1 point per euro, no pending period unless asked, lots expire 12 months
/// after they become spendable, Silver from 100 EUR over a rolling 12 months, anniversary
/// reviews, a referral rule, debts allowed, one point worth one cent.
pub fn program_with_pending(days: u32) -> Arc<Program> {
    let text = format!(
        r#"
[program]
name = "Test"
currency = "EUR"
timezone = "Europe/Paris"
rules_version = "test-1"

[earning]
points_per_unit = "1"
excluded_categories = ["gift-card"]

[pending]
days = {days}

[expiry]
policy = "lot_months"
months = 12

[tiers]
metric = "qualifying_spend"
window = {{ kind = "rolling", months = 12 }}
review = {{ kind = "anniversary" }}

[[tiers.levels]]
name = "Bronze"
threshold = "0"
multiplier = "1"

[[tiers.levels]]
name = "Silver"
threshold = "100"
multiplier = "1"

[[rewards]]
id = "coffee"
name = "A coffee"
cost = 30
per_member_limit = 2

[[rewards]]
id = "silver-mug"
name = "A mug for Silver members"
cost = 10
min_tier = "Silver"

[bonuses]
welcome_points = 10

[referral]
referrer_points = 200
newcomer_points = 100
min_first_purchase = "15"

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"
"#
    );
    Arc::new(Program::from_toml_str(&text).expect("test program is valid"))
}

pub fn program() -> Arc<Program> {
    program_with_pending(0)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 10, 0, 0).unwrap()
}

pub fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

pub fn member(id: &str) -> MemberId {
    MemberId::parse(id).unwrap()
}

/// The store of the test purchases.
pub const STORE: &str = "store-1";

pub fn store_id(id: &str) -> loyalty_core::StoreId {
    loyalty_core::StoreId::parse(id).unwrap()
}

/// Sale `id` of the test store.
pub fn sale(id: &str) -> loyalty_core::PurchaseKey {
    loyalty_core::PurchaseKey::new(store_id(STORE), txn(id))
}

pub fn txn(id: &str) -> TransactionId {
    TransactionId::parse(id).unwrap()
}

pub fn eur() -> Currency {
    Currency::parse("EUR").unwrap()
}

pub fn options() -> EngineOptions {
    EngineOptions {
        read_wait_limit: Duration::from_secs(10),
        ..EngineOptions::default()
    }
}

pub struct Harness {
    pub engine: Engine,
    pub store: Arc<InMemoryStore>,
    pub clock: Arc<ManualClock>,
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with(program(), options()).await
    }

    pub async fn with(program: Arc<Program>, options: EngineOptions) -> Harness {
        let store = Arc::new(InMemoryStore::new());
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = start(store.clone(), program, clock.clone(), options).await;
        Harness {
            engine,
            store,
            clock,
        }
    }

    /// A second engine on the same store and clock (another server).
    pub async fn second_engine(&self, options: EngineOptions) -> Engine {
        start(
            self.store.clone(),
            Arc::new(self.engine.program().clone()),
            self.clock.clone(),
            options,
        )
        .await
    }

    pub fn now(&self) -> DateTime<Utc> {
        loyalty_engine::Clock::now(self.clock.as_ref())
    }

    pub async fn run(&self, command: Command) -> loyalty_engine::CommandResult {
        self.engine
            .execute(command)
            .await
            .expect("command accepted")
    }

    /// Waits until the read models include everything written so far.
    pub async fn settle(&self) {
        let head = self.store.head_position().await.unwrap();
        self.engine
            .wait_for(head)
            .await
            .expect("projections caught up");
    }

    pub async fn enroll(&self, id: &str) -> MemberId {
        let m = member(id);
        self.run(enroll(&m, self.now())).await;
        m
    }

    /// Rita referred nina, whose purchase `N1` of 20 euros qualified the referral; returns once
    /// the process manager credited rita (panics if it never does).
    pub async fn referral_delivered(&self) -> (MemberId, MemberId) {
        let rita = self.enroll("rita").await;
        let nina = member("nina");
        self.run(enroll_referred(&nina, &rita, self.now())).await;
        self.run(purchase(&nina, "N1", 20, self.now())).await;
        let store = self.store.clone();
        assert!(
            eventually(
                async || count_events(store.as_ref(), &rita, "ReferralBonusCredited").await == 1
            )
            .await,
            "bonus never delivered"
        );
        (rita, nina)
    }

    /// The member's state as the core rebuilds it from the stream.
    pub async fn core_state(&self, m: &MemberId) -> MemberState {
        member_state(self.store.as_ref(), m).await
    }
}

pub async fn start(
    store: Arc<dyn EventStore>,
    program: Arc<Program>,
    clock: Arc<ManualClock>,
    options: EngineOptions,
) -> Engine {
    Engine::start(store, program, clock, Arc::new(RandomIds), options)
        .await
        .expect("engine starts")
}

pub async fn read_member(store: &dyn EventStore, m: &MemberId) -> Vec<RecordedEvent> {
    store
        .read_stream(
            &format!("member-{m}"),
            StreamFrom::Start,
            Direction::Forwards,
            4_096,
        )
        .await
        .unwrap()
}

pub async fn member_state(store: &dyn EventStore, m: &MemberId) -> MemberState {
    let events: Vec<_> = read_member(store, m)
        .await
        .iter()
        .map(|e| schema::decode(&e.event_type, e.schema_version, &e.data).unwrap())
        .collect();
    MemberState::from_events(&events)
}

pub async fn count_events(store: &dyn EventStore, m: &MemberId, event_type: &str) -> usize {
    read_member(store, m)
        .await
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

pub fn enroll(m: &MemberId, at: DateTime<Utc>) -> Command {
    Command::Enroll(Enroll {
        member_id: m.clone(),
        referrer: None,
        occurred_at: at,
    })
}

pub fn enroll_referred(m: &MemberId, referrer: &MemberId, at: DateTime<Utc>) -> Command {
    Command::Enroll(Enroll {
        member_id: m.clone(),
        referrer: Some(referrer.clone()),
        occurred_at: at,
    })
}

/// A purchase of one line of food for `amount` euros.
pub fn purchase(m: &MemberId, transaction: &str, amount: i64, at: DateTime<Utc>) -> Command {
    Command::RecordPurchase(RecordPurchase {
        member_id: m.clone(),
        transaction_id: txn(transaction),
        store: store_id(STORE),
        terminal: loyalty_core::TerminalId::parse("till-1").unwrap(),
        occurred_at: at,
        currency: eur(),
        lines: vec![PurchaseLine {
            sku: loyalty_core::Sku::parse("BREAD").unwrap(),
            category: loyalty_core::CategoryId::parse("food").unwrap(),
            quantity: Decimal::ONE,
            amount: Decimal::from(amount),
        }],
    })
}

pub fn redeem(m: &MemberId, redemption: &str, points: i64, at: DateTime<Utc>) -> Command {
    Command::Redeem(Redeem {
        member_id: m.clone(),
        redemption_id: loyalty_core::RedemptionId::parse(redemption).unwrap(),
        occurred_at: at,
        target: RedeemTarget::Points(Points::new(points)),
    })
}

pub fn refund(
    m: &MemberId,
    refund_id: &str,
    transaction: &str,
    amount: i64,
    at: DateTime<Utc>,
) -> Command {
    Command::Refund(Refund {
        member_id: m.clone(),
        refund_id: loyalty_core::RefundId::parse(refund_id).unwrap(),
        store: store_id(STORE),
        purchase_store: store_id(STORE),
        transaction_id: txn(transaction),
        occurred_at: at,
        currency: eur(),
        scope: RefundScope::Amount(Decimal::from(amount)),
    })
}

/// Waits (bounded) until `member`'s stored snapshot reflects at least this revision of her
/// member stream; returns whether it came.
pub async fn snapshot_stored(store: &dyn EventStore, member: &str, revision: u64) -> bool {
    let stream = format!("snapshot-{member}");
    eventually(async || {
        store
            .read_stream(
                &stream,
                loyalty_store::StreamFrom::End,
                loyalty_store::Direction::Backwards,
                1,
            )
            .await
            .unwrap()
            .first()
            .and_then(|e| loyalty_engine::streams::snapshot_member_revision(&e.metadata))
            .is_some_and(|stored| stored >= revision)
    })
    .await
}

/// Waits (bounded) until `condition` holds; returns whether it did.
pub async fn eventually(mut condition: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// What a [`Hooked`] store does before each append: wait, count, or answer an error that the
/// append returns instead of appending.
#[async_trait]
pub trait BeforeAppend: Send + Sync + 'static {
    async fn before_append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
    ) -> Result<(), StoreError>;
}

/// A hook written as a closure (the tests that stall or fail one stream's appends).
pub type AppendHook =
    Box<dyn Fn(&str) -> futures::future::BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

#[async_trait]
impl BeforeAppend for AppendHook {
    async fn before_append(&self, stream: &str, _: ExpectedRevision) -> Result<(), StoreError> {
        self(stream).await
    }
}

/// An in-memory store whose appends go through a hook first: the one forwarding wrapper the
/// tests that inject faults share. Derefs to its hook, so a hook's switches read as the
/// store's (`store.full.store(true)`).
#[derive(Debug, Default)]
pub struct Hooked<H> {
    pub inner: InMemoryStore,
    pub hook: H,
}

impl Hooked<AppendHook> {
    pub fn new(hook: AppendHook) -> Self {
        Hooked {
            inner: InMemoryStore::new(),
            hook,
        }
    }
}

impl<H> std::ops::Deref for Hooked<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.hook
    }
}

#[async_trait]
impl<H: BeforeAppend> EventStore for Hooked<H> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        self.hook.before_append(stream, expected).await?;
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .read_stream(stream, from, direction, max_count)
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, max_count).await
    }

    async fn subscribe_all(
        &self,
        after: Position,
        filter: StreamFilter,
    ) -> Result<Subscription, StoreError> {
        self.inner.subscribe_all(after, filter).await
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        self.inner.head_position().await
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }
}

/// Failures to inject: the next append to a member stream fails (as if the process died after
/// the reservation), every member append reports a concurrent writer, or the disk is full.
/// The store keeps no key vault of its own (it does not forward the in-memory store's).
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_next_member_append: AtomicBool,
    pub always_conflict: AtomicBool,
    pub member_appends: AtomicU64,
    /// Every append fails as a full disk would, while set.
    pub full: AtomicBool,
}

pub type FaultyStore = Hooked<Faults>;

#[async_trait]
impl BeforeAppend for Faults {
    async fn before_append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
    ) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::StorageFull("database or disk is full".into()));
        }
        if stream.starts_with("member-") {
            self.member_appends.fetch_add(1, Ordering::SeqCst);
            if self.fail_next_member_append.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Unavailable("injected failure".into()));
            }
            if self.always_conflict.load(Ordering::SeqCst) {
                return Err(StoreError::WrongExpectedRevision {
                    stream: stream.to_owned(),
                    expected,
                    actual: CurrentRevision::Current(999),
                });
            }
        }
        Ok(())
    }
}
