//! Golden files of the endpoint registry's stored events (stream `webhooks`, schema version 1):
//! `tests/golden/<Type>/v1.json`, one per event type, read by every later build.
//!
//! The seven an admin's requests produce were written once through the public API
//! (`UPDATE_GOLDEN=1 cargo test -p loyalty-webhooks --test webhooks golden::` writes a missing one, never
//! rewrites a file). The four the dispatcher produces (a redelivery requested and done, an
//! endpoint failing and recovered) need deliveries to happen, so they were written by hand
//! from the DTOs of `registry.rs`.
//!
//! Each file is appended, in a life-cycle order, to a fresh store's registry, and the registry
//! loaded after each must be what the expected events make of it (`endpoint::evolve`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use loyalty_engine::{Clock, Engine, EngineOptions, ManualClock, RandomIds};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, InMemoryStore, Position, StreamFrom,
    Uuid,
};
use loyalty_webhooks::endpoint::{
    EndpointChanges, EndpointCreated, EndpointEvent, EndpointId, EventType, NewEndpoint,
    RegistryState, StartFrom, evolve,
};
use loyalty_webhooks::registry::REGISTRY_SCHEMA_VERSION;
use loyalty_webhooks::signing::Secret;
use loyalty_webhooks::{REGISTRY_STREAM, WebhookSettings, Webhooks};

const PROGRAM: &str = r#"
[program]
name = "Test"
currency = "EUR"
timezone = "Europe/Paris"

[earning]
points_per_unit = "1"

[expiry]
policy = "never"

[tiers]
metric = "qualifying_spend"
window = { kind = "rolling", months = 12 }
review = { kind = "anniversary" }

[[tiers.levels]]
name = "Bronze"
threshold = "0"
multiplier = "1"

[clawback]
policy = "allow"

[valuation]
point_value = "0.01"
"#;

/// 24 and 32 bytes, base64.
const SECRET_1: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u";
const SECRET_2: &str = "whsec_Z29sZGVuLXNlY3JldC10d28tMzItYnl0ZXMtbG9uZyE=";

/// The registry's event types, in the life-cycle order the reading test appends them.
const TYPES: [&str; 11] = [
    "WebhookEndpointCreated",
    "WebhookEndpointUpdated",
    "WebhookSecretRotated",
    "WebhookEndpointPaused",
    "WebhookEndpointResumed",
    "WebhookEndpointReplayed",
    "WebhookRedeliveryRequested",
    "WebhookEndpointFailing",
    "WebhookEndpointRecovered",
    "WebhookRedeliveryDone",
    "WebhookEndpointDeleted",
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

/// The instant of the `n`th request of the generator (a minute apart).
fn at(n: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(n)
}

fn crm() -> EndpointId {
    EndpointId::parse("crm").unwrap()
}

fn golden(event_type: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(event_type)
        .join(format!("v{REGISTRY_SCHEMA_VERSION}.json"))
}

async fn fixture() -> (Arc<InMemoryStore>, Arc<ManualClock>, Engine) {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    let program = Arc::new(loyalty_core::Program::from_toml_str(PROGRAM).unwrap());
    let engine = Engine::start(
        store.clone(),
        program,
        clock.clone(),
        Arc::new(RandomIds),
        EngineOptions::default(),
    )
    .await
    .unwrap();
    (store, clock, engine)
}

/// What the golden files hold, as registry events: the expected values.
fn expected_events() -> Vec<EndpointEvent> {
    let id = crm();
    vec![
        EndpointEvent::Created(Box::new(EndpointCreated {
            id: id.clone(),
            url: "https://crm.example.com/hooks".into(),
            event_types: vec![EventType::MemberEnrolled, EventType::PurchaseRecorded],
            description: Some("The CRM".into()),
            timeout_ms: 5_000,
            max_in_flight: 4,
            secret: Secret::parse(SECRET_1).unwrap(),
            start_after: Position::START,
            requested_timeout_ms: Some(5_000),
            requested_max_in_flight: Some(4),
            start: StartFrom::Start,
            secret_given: true,
            at: at(0),
        })),
        EndpointEvent::Updated {
            id: id.clone(),
            url: "https://crm.example.com/v2/hooks".into(),
            event_types: vec![EventType::MemberEnrolled, EventType::PurchaseRecorded],
            description: Some("The CRM, v2".into()),
            timeout_ms: 5_000,
            max_in_flight: 4,
            at: at(1),
        },
        EndpointEvent::SecretRotated {
            id: id.clone(),
            secret: Secret::parse(SECRET_2).unwrap(),
            previous_until: at(2) + chrono::Duration::hours(1),
            at: at(2),
        },
        EndpointEvent::Paused {
            id: id.clone(),
            at: at(3),
        },
        EndpointEvent::Resumed {
            id: id.clone(),
            at: at(4),
        },
        EndpointEvent::Replayed {
            id: id.clone(),
            after: Position::START,
            generation: 1,
            at: at(5),
        },
        EndpointEvent::RedeliveryRequested {
            id: id.clone(),
            request: 0,
            message_id: "msg_4f1c2a9e0b7d4c6e8a5f3b2d1c0e9f8a".into(),
            position: Position::new(12, 12),
            at: at(6),
        },
        EndpointEvent::Failing {
            id: id.clone(),
            reason: "no 2xx answer for 3600 s: HTTP 503".into(),
            at: at(7),
        },
        EndpointEvent::Recovered {
            id: id.clone(),
            at: at(8),
        },
        EndpointEvent::RedeliveryDone {
            id: id.clone(),
            request: 0,
            at: at(9),
        },
        EndpointEvent::Deleted { id, at: at(10) },
    ]
}

/// With `UPDATE_GOLDEN=1`: makes the requests that produce the first seven types (a minute
/// apart) and writes the stored document of each type that has no golden file yet.
async fn write_missing_golden_files() {
    if std::env::var_os("UPDATE_GOLDEN").is_none_or(|v| v != "1") {
        return;
    }
    let (store, clock, engine) = fixture().await;
    let webhooks = Webhooks::new(engine.clone(), WebhookSettings::default());
    let id = crm();
    let next = |n: i64| clock.advance(at(n) - clock.now());
    webhooks
        .create(NewEndpoint {
            id: id.clone(),
            url: "https://crm.example.com/hooks".into(),
            event_types: vec![EventType::PurchaseRecorded, EventType::MemberEnrolled],
            description: Some("The CRM".into()),
            secret: Some(Secret::parse(SECRET_1).unwrap()),
            timeout_ms: Some(5_000),
            max_in_flight: Some(4),
            start: StartFrom::Start,
        })
        .await
        .unwrap();
    next(1);
    let changes = EndpointChanges {
        url: Some("https://crm.example.com/v2/hooks".into()),
        description: Some("The CRM, v2".into()),
        ..EndpointChanges::default()
    };
    webhooks.update(&id, changes).await.unwrap();
    next(2);
    let overlap = Some(Duration::from_secs(3_600));
    let secret = Some(Secret::parse(SECRET_2).unwrap());
    webhooks.rotate_secret(&id, secret, overlap).await.unwrap();
    next(3);
    webhooks.pause(&id).await.unwrap();
    next(4);
    webhooks.resume(&id).await.unwrap();
    next(5);
    webhooks.replay(&id, Position::START).await.unwrap();
    next(10);
    webhooks.delete(&id).await.unwrap();
    let stored = store
        .read_stream(REGISTRY_STREAM, StreamFrom::Start, Direction::Forwards, 100)
        .await
        .unwrap();
    for event in stored {
        let path = golden(&event.event_type);
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let document: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
        let text = serde_json::to_string_pretty(&document).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
        eprintln!("wrote {}", path.display());
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn every_registry_event_type_has_a_golden_file_that_loads_into_the_expected_registry() {
    write_missing_golden_files().await;
    // Given a fresh store, and the registry the expected events make
    let (store, _clock, engine) = fixture().await;
    let webhooks = Webhooks::new(engine.clone(), WebhookSettings::default());
    let mut expected = RegistryState::default();
    // When each golden file is appended in turn, as stored
    for (event_type, event) in TYPES.iter().zip(expected_events()) {
        let path = golden(event_type);
        let document = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run UPDATE_GOLDEN=1 cargo test -p loyalty-webhooks --test webhooks golden::",
                path.display()
            )
        });
        store
            .append(
                REGISTRY_STREAM,
                ExpectedRevision::Any,
                vec![EventData {
                    id: Uuid::new_v4(),
                    event_type: (*event_type).to_owned(),
                    schema_version: REGISTRY_SCHEMA_VERSION,
                    data: Bytes::from(document),
                    metadata: Bytes::from_static(br#"{"recorded_at":"2026-03-01T10:00:00Z"}"#),
                }],
            )
            .await
            .unwrap();
        evolve(&mut expected, &event);
        // Then the registry this build loads is the expected one
        let loaded = webhooks
            .endpoints()
            .await
            .unwrap_or_else(|e| panic!("after {event_type}: {e}"));
        assert_eq!(
            loaded,
            expected.endpoints.values().cloned().collect::<Vec<_>>(),
            "after {event_type}"
        );
    }
    // And the whole life cycle was gone through: the endpoint ended deleted
    assert!(expected.endpoints.is_empty() && expected.deleted.contains(&crm()));
    engine.shutdown().await;
}
