//! Fixtures of the dispatcher's tests: an engine on the in-memory store with the system clock
//! (deliveries are timed for real), webhooks settings with short delays, and a receiver on
//! 127.0.0.1 that records every request and answers by a scripted plan.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use loyalty_core::{Command, Enroll, MemberId, Program, PurchaseLine, RecordPurchase};
use loyalty_engine::{Engine, EngineOptions, RandomIds, SystemClock};
use loyalty_store::{EventStore, InMemoryStore, Position};
use loyalty_webhooks::endpoint::{Endpoint, EndpointId, NewEndpoint, StartFrom};
use loyalty_webhooks::message::{Message, from_recorded};
use loyalty_webhooks::signing::Secret;
use loyalty_webhooks::{WebhookSettings, Webhooks};
use rust_decimal::Decimal;

pub fn program() -> Arc<Program> {
    let text = r#"
[program]
name = "Test"
currency = "EUR"
timezone = "Europe/Paris"
rules_version = "test-1"

[earning]
points_per_unit = "1"

[pending]
days = 0

[expiry]
policy = "lot_months"
months = 12

[tiers]
metric = "qualifying_spend"
window = { kind = "rolling", months = 12 }
review = { kind = "anniversary" }

[[tiers.levels]]
name = "Bronze"
threshold = "0"
multiplier = "1"

[[tiers.levels]]
name = "Silver"
threshold = "100000"
multiplier = "1"

[[rewards]]
id = "coffee"
name = "A coffee"
cost = 30

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"
"#;
    Arc::new(Program::from_toml_str(text).expect("test program is valid"))
}

/// Settings for tests: private targets allowed (the receiver is on loopback), short backoff,
/// a long retry time (tests about failing set a short one), frequent log writes.
pub fn settings() -> WebhookSettings {
    WebhookSettings {
        allow_private_targets: true,
        initial_backoff_ms: 20,
        max_backoff_ms: 100,
        retry_for_secs: 60,
        failing_probe_secs: 1,
        log_flush_ms: 50,
        ..WebhookSettings::default()
    }
}

pub async fn start_engine(store: Arc<InMemoryStore>) -> Engine {
    let options = EngineOptions {
        lease_ttl: Duration::from_millis(900),
        read_wait_limit: Duration::from_secs(10),
        ..EngineOptions::default()
    };
    Engine::start(
        store,
        program(),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        options,
    )
    .await
    .expect("engine starts")
}

/// An engine and its webhooks (dispatcher started) on a fresh store.
pub struct Harness {
    pub store: Arc<InMemoryStore>,
    pub engine: Engine,
    pub webhooks: Webhooks,
}

impl Harness {
    pub async fn new(settings: WebhookSettings) -> Harness {
        let store = Arc::new(InMemoryStore::new());
        Harness::on(store, settings).await
    }

    /// A server on an existing store (a restart).
    pub async fn on(store: Arc<InMemoryStore>, settings: WebhookSettings) -> Harness {
        let engine = start_engine(store.clone()).await;
        let webhooks = Webhooks::new(engine.clone(), settings);
        webhooks.start_dispatcher();
        Harness {
            store,
            engine,
            webhooks,
        }
    }

    pub async fn stop(&self) {
        self.webhooks.shutdown().await;
        self.engine.shutdown().await;
    }

    /// Creates an endpoint to `url` (every type, from now), changed by `adjust`.
    pub async fn endpoint(
        &self,
        name: &str,
        url: &str,
        adjust: impl FnOnce(&mut NewEndpoint),
    ) -> (Endpoint, Secret) {
        let mut new = NewEndpoint {
            id: id(name),
            url: url.to_owned(),
            event_types: vec![],
            description: None,
            secret: None,
            timeout_ms: None,
            max_in_flight: None,
            start: StartFrom::Now,
        };
        adjust(&mut new);
        let created = self.webhooks.create(new).await.expect("endpoint created");
        (created.endpoint, created.secret)
    }

    pub async fn get(&self, name: &str) -> Endpoint {
        self.webhooks.endpoint(&id(name)).await.expect("endpoint")
    }

    pub async fn enroll(&self, member_id: &str) {
        self.engine
            .execute(Command::Enroll(Enroll {
                member_id: member(member_id),
                referrer: None,
                occurred_at: Utc::now(),
            }))
            .await
            .expect("enrolled");
    }

    /// A purchase of one line for `amount` euros (the member is enrolled first if need be).
    pub async fn purchase(&self, member_id: &str, transaction: &str, amount: i64) {
        // Refused when the member is enrolled already: nothing is recorded then.
        let _ = self
            .engine
            .execute(Command::Enroll(Enroll {
                member_id: member(member_id),
                referrer: None,
                occurred_at: Utc::now(),
            }))
            .await;
        self.engine
            .execute(Command::RecordPurchase(RecordPurchase {
                member_id: member(member_id),
                transaction_id: loyalty_core::TransactionId::parse(transaction).expect("txn"),
                store: loyalty_core::StoreId::parse("store-1").expect("store"),
                terminal: loyalty_core::TerminalId::parse("till-1").expect("till"),
                occurred_at: Utc::now(),
                currency: loyalty_core::Currency::parse("EUR").expect("currency"),
                lines: vec![PurchaseLine {
                    sku: loyalty_core::Sku::parse("BREAD").expect("sku"),
                    category: loyalty_core::CategoryId::parse("food").expect("category"),
                    quantity: Decimal::ONE,
                    amount: Decimal::from(amount),
                }],
            }))
            .await
            .expect("purchase recorded");
    }

    /// The messages the store's events make after `after`, that `endpoint` wants, in order.
    pub async fn messages_after(&self, after: Position, endpoint: &Endpoint) -> Vec<Message> {
        let mut out = Vec::new();
        let mut from = after;
        loop {
            let events = self.store.read_all(from, 1_000).await.expect("read $all");
            let Some(last) = events.last() else {
                return out;
            };
            from = last.position;
            out.extend(
                events
                    .iter()
                    .filter_map(|e| from_recorded(e).expect("a readable event"))
                    .filter(|m| endpoint.wants(m.event_type)),
            );
        }
    }
}

pub fn id(name: &str) -> EndpointId {
    EndpointId::parse(name).expect("endpoint id")
}

pub fn member(name: &str) -> MemberId {
    MemberId::parse(name).expect("member id")
}

/// Waits (at most 20 s) until `condition` holds; returns whether it did.
pub async fn eventually(mut condition: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..1_000 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    /// A `Location` header, to the receiver's `/elsewhere` (which records what reaches it).
    pub redirect: bool,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            redirect: false,
        }
    }

    /// A redirect (`status` 3xx) to the receiver's `/elsewhere`.
    pub fn redirect(status: u16) -> Reply {
        Reply {
            redirect: true,
            ..Reply::status(status)
        }
    }

    pub fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body's fields.
    pub id: String,
    pub event_type: String,
    pub member_id: String,
    pub position: Position,
    /// The how-manieth request with this id (1 for the first).
    pub nth: usize,
    /// How the receiver answered (the status it chose: a request the dispatcher gave up
    /// waiting for counts as answered with it too).
    pub reply: Reply,
}

type Plan = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

struct ReceiverState {
    requests: parking_lot::Mutex<Vec<Received>>,
    plan: parking_lot::Mutex<Plan>,
    /// Requests being answered now, overall and per member.
    busy: AtomicUsize,
    most_busy: AtomicUsize,
    busy_members: parking_lot::Mutex<HashMap<String, usize>>,
    most_busy_member: AtomicUsize,
    /// Requests that reached `/elsewhere`.
    elsewhere: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1: records requests, answers by its plan.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

/// Decrements the busy counts when a request ends, answered or dropped.
struct Busy {
    state: Arc<ReceiverState>,
    member: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.state.busy.fetch_sub(1, Ordering::SeqCst);
        if let Some(n) = self.state.busy_members.lock().get_mut(&self.member) {
            *n -= 1;
        }
    }
}

async fn elsewhere(State(state): State<Arc<ReceiverState>>) -> StatusCode {
    state.elsewhere.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

async fn hook(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    let text = |field: &str| json[field].as_str().unwrap_or_default().to_owned();
    let position = text("position");
    let (commit, prepare) = position.split_once('/').expect("commit/prepare");
    let mut received = Received {
        headers,
        id: text("id"),
        event_type: text("type"),
        member_id: text("member_id"),
        position: Position::new(
            commit.parse().expect("commit"),
            prepare.parse().expect("prepare"),
        ),
        body,
        nth: 0,
        reply: Reply::ok(),
    };
    let plan = state.plan.lock().clone();
    let reply = {
        let mut requests = state.requests.lock();
        received.nth = 1 + requests.iter().filter(|r| r.id == received.id).count();
        received.reply = plan(&received);
        requests.push(received.clone());
        received.reply
    };
    let now_busy = state.busy.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_busy.fetch_max(now_busy, Ordering::SeqCst);
    let member_busy = {
        let mut members = state.busy_members.lock();
        let n = members.entry(received.member_id.clone()).or_default();
        *n += 1;
        *n
    };
    state
        .most_busy_member
        .fetch_max(member_busy, Ordering::SeqCst);
    let _busy = Busy {
        state: state.clone(),
        member: received.member_id.clone(),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut answer = HeaderMap::new();
    if reply.redirect {
        answer.insert(
            axum::http::header::LOCATION,
            "/elsewhere".parse().expect("a value"),
        );
    }
    (
        StatusCode::from_u16(reply.status).expect("a status"),
        answer,
    )
}

impl Receiver {
    /// A receiver that answers 200 at once until told otherwise.
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            requests: parking_lot::Mutex::new(Vec::new()),
            plan: parking_lot::Mutex::new(Arc::new(|_: &Received| Reply::ok())),
            busy: AtomicUsize::new(0),
            most_busy: AtomicUsize::new(0),
            busy_members: parking_lot::Mutex::new(HashMap::new()),
            most_busy_member: AtomicUsize::new(0),
            elsewhere: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .route("/elsewhere", axum::routing::any(elsewhere))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("an address").port();
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver runs");
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    pub fn plan(&self, plan: impl Fn(&Received) -> Reply + Send + Sync + 'static) {
        *self.state.plan.lock() = Arc::new(plan);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().clone()
    }

    /// Ids answered with a 2xx, in the order their requests came.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.reply.status))
            .map(|r| r.id)
            .collect()
    }

    /// Whether every one of `messages` was answered with a 2xx.
    pub fn got_all(&self, messages: &[Message]) -> bool {
        let delivered = self.delivered_ids();
        messages.iter().all(|m| delivered.contains(&m.id))
    }

    pub fn count(&self, message_id: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.id == message_id)
            .count()
    }

    /// Requests that reached `/elsewhere` (where redirects point).
    pub fn elsewhere(&self) -> usize {
        self.state.elsewhere.load(Ordering::SeqCst)
    }

    /// Most requests answered at the same time, overall and for one member.
    pub fn most_busy(&self) -> (usize, usize) {
        (
            self.state.most_busy.load(Ordering::SeqCst),
            self.state.most_busy_member.load(Ordering::SeqCst),
        )
    }
}
