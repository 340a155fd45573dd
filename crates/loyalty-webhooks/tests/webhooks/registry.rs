//! The endpoint registry: `decide` given/when/then, and round trips through a store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use loyalty_engine::{Engine, EngineOptions, ManualClock, RandomIds};
use loyalty_store::{EventData, EventStore, ExpectedRevision, InMemoryStore, Position};
use loyalty_webhooks::endpoint::{
    EndpointChanges, EndpointCommand, EndpointEvent, EndpointId, EndpointStatus, EventType, Limits,
    MAX_PENDING_REDELIVERIES, NewEndpoint, RegistryState, StartFrom, decide, evolve,
};
use loyalty_webhooks::signing::Secret;
use loyalty_webhooks::{REGISTRY_STREAM, WebhookError, WebhookSettings, Webhooks};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
}

fn id(text: &str) -> EndpointId {
    EndpointId::parse(text).unwrap()
}

fn limits() -> Limits {
    Limits::from_settings(&WebhookSettings::default())
}

fn new_endpoint(name: &str) -> NewEndpoint {
    NewEndpoint {
        id: id(name),
        url: format!("https://{name}.example.com/hooks"),
        event_types: vec![],
        description: None,
        secret: None,
        timeout_ms: None,
        max_in_flight: None,
        start: StartFrom::Now,
    }
}

fn create(new: NewEndpoint) -> EndpointCommand {
    EndpointCommand::Create {
        new,
        generated_secret: Secret::generate(),
        head: Position::new(100, 100),
    }
}

/// Decides and applies, like the registry does; returns the events.
fn when(
    state: &mut RegistryState,
    command: EndpointCommand,
) -> Result<Vec<EndpointEvent>, WebhookError> {
    when_at(state, command, t0())
}

fn when_at(
    state: &mut RegistryState,
    command: EndpointCommand,
    now: DateTime<Utc>,
) -> Result<Vec<EndpointEvent>, WebhookError> {
    let events = decide(state, &command, now, &limits())?;
    for event in &events {
        evolve(state, event);
    }
    Ok(events)
}

fn given(names: &[&str]) -> RegistryState {
    let mut state = RegistryState::default();
    for name in names {
        when(&mut state, create(new_endpoint(name))).unwrap();
    }
    state
}

// --- Creation ---

#[test]
fn given_nothing_when_an_endpoint_is_created_then_it_is_enabled_with_the_settings_defaults() {
    let mut state = RegistryState::default();
    let mut new = new_endpoint("crm");
    new.event_types = vec![
        EventType::TierChanged,
        EventType::MemberEnrolled,
        EventType::TierChanged,
    ];
    new.description = Some("  The CRM  ".into());
    let events = when(&mut state, create(new)).unwrap();
    assert_eq!(events.len(), 1);
    let endpoint = &state.endpoints[&id("crm")];
    let defaults = WebhookSettings::default();
    assert_eq!(endpoint.status, EndpointStatus::Enabled);
    assert_eq!(endpoint.timeout_ms, defaults.default_timeout_ms);
    assert_eq!(endpoint.max_in_flight, defaults.default_max_in_flight);
    assert_eq!(
        endpoint.event_types,
        vec![EventType::MemberEnrolled, EventType::TierChanged]
    );
    assert_eq!(endpoint.description.as_deref(), Some("The CRM"));
    assert_eq!(
        endpoint.start_after,
        Position::new(100, 100),
        "Now starts at the head"
    );
    assert_eq!(endpoint.generation, 0);
    assert_eq!(endpoint.created_at, t0());
}

#[test]
fn given_an_endpoint_when_the_same_creation_comes_again_then_nothing_is_recorded() {
    let mut state = RegistryState::default();
    let secret = Secret::generate();
    let mut new = new_endpoint("crm");
    new.secret = Some(secret.clone());
    when(&mut state, create(new.clone())).unwrap();
    // Even after a rotation, the retry of the creation is the same request.
    when(
        &mut state,
        EndpointCommand::RotateSecret {
            id: id("crm"),
            secret: Secret::generate(),
            overlap: Duration::from_secs(60),
        },
    )
    .unwrap();
    let events = when(&mut state, create(new)).unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn given_an_endpoint_with_a_generated_secret_when_the_creation_is_retried_without_one_then_nothing_is_recorded()
 {
    let mut state = given(&["crm"]);
    let before = state.endpoints[&id("crm")].secret.clone();
    assert!(
        when(&mut state, create(new_endpoint("crm")))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        state.endpoints[&id("crm")].secret,
        before,
        "the first generated secret stays"
    );
}

#[test]
fn given_an_endpoint_when_a_creation_with_other_settings_uses_its_id_then_it_is_refused() {
    let state = given(&["crm"]);
    let other_url = NewEndpoint {
        url: "https://other.example.com/".into(),
        ..new_endpoint("crm")
    };
    let other_timeout = NewEndpoint {
        timeout_ms: Some(1_000),
        ..new_endpoint("crm")
    };
    let other_types = NewEndpoint {
        event_types: vec![EventType::PointsExpired],
        ..new_endpoint("crm")
    };
    let other_start = NewEndpoint {
        start: StartFrom::Start,
        ..new_endpoint("crm")
    };
    let with_secret = NewEndpoint {
        secret: Some(Secret::generate()),
        ..new_endpoint("crm")
    };
    for new in [
        other_url,
        other_timeout,
        other_types,
        other_start,
        with_secret,
    ] {
        let result = decide(&state, &create(new.clone()), t0(), &limits());
        assert!(
            matches!(result, Err(WebhookError::EndpointExists(_))),
            "{new:?}: {result:?}"
        );
    }
}

#[test]
fn given_a_deleted_endpoint_when_its_creation_comes_again_then_its_id_stays_taken() {
    let mut state = given(&["crm"]);
    when(&mut state, EndpointCommand::Delete { id: id("crm") }).unwrap();
    assert!(state.endpoints.is_empty());
    let result = when(&mut state, create(new_endpoint("crm")));
    assert!(
        matches!(result, Err(WebhookError::EndpointExists(_))),
        "{result:?}"
    );
}

#[test]
fn given_a_deleted_endpoint_when_it_is_deleted_again_then_nothing_is_recorded() {
    let mut state = given(&["crm"]);
    when(&mut state, EndpointCommand::Delete { id: id("crm") }).unwrap();
    assert!(
        when(&mut state, EndpointCommand::Delete { id: id("crm") })
            .unwrap()
            .is_empty()
    );
    let never = when(&mut state, EndpointCommand::Delete { id: id("never") });
    assert!(matches!(never, Err(WebhookError::EndpointNotFound(_))));
}

#[test]
fn given_the_most_endpoints_when_one_more_is_created_then_it_is_refused() {
    let limits = Limits {
        max_endpoints: 2,
        ..limits()
    };
    let mut state = RegistryState::default();
    for name in ["a", "b"] {
        let events = decide(&state, &create(new_endpoint(name)), t0(), &limits).unwrap();
        events.iter().for_each(|e| evolve(&mut state, e));
    }
    let result = decide(&state, &create(new_endpoint("c")), t0(), &limits);
    assert!(
        matches!(result, Err(WebhookError::TooManyEndpoints { limit: 2 })),
        "{result:?}"
    );
    // The retry of an existing one is still answered.
    assert!(
        decide(&state, &create(new_endpoint("a")), t0(), &limits)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn given_a_start_when_an_endpoint_is_created_then_it_starts_there_and_not_past_the_head() {
    let mut state = RegistryState::default();
    let start = NewEndpoint {
        start: StartFrom::Start,
        ..new_endpoint("warehouse")
    };
    when(&mut state, create(start)).unwrap();
    assert_eq!(
        state.endpoints[&id("warehouse")].start_after,
        Position::START
    );
    let after = NewEndpoint {
        start: StartFrom::After(Position::new(40, 40)),
        ..new_endpoint("crm")
    };
    when(&mut state, create(after)).unwrap();
    assert_eq!(
        state.endpoints[&id("crm")].start_after,
        Position::new(40, 40)
    );
    let ahead = NewEndpoint {
        start: StartFrom::After(Position::new(101, 101)),
        ..new_endpoint("late")
    };
    let result = when(&mut state, create(ahead));
    assert!(
        matches!(result, Err(WebhookError::PositionAheadOfLog { .. })),
        "{result:?}"
    );
}

// --- Validation ---

#[test]
fn given_bad_urls_when_an_endpoint_is_created_then_each_is_refused_as_an_invalid_url() {
    let state = RegistryState::default();
    let long = format!("https://example.com/{}", "a".repeat(2048));
    for url in [
        "example.com/hooks",
        "/hooks",
        "ftp://example.com/hooks",
        "https://user:pass@example.com/hooks",
        "https://user@example.com/hooks",
        "http:///",
        long.as_str(),
    ] {
        let new = NewEndpoint {
            url: url.into(),
            ..new_endpoint("crm")
        };
        let result = decide(&state, &create(new), t0(), &limits());
        assert!(
            matches!(result, Err(WebhookError::InvalidUrl(_))),
            "{url}: {result:?}"
        );
    }
}

#[test]
fn given_private_targets_when_an_endpoint_is_created_then_they_are_refused_unless_allowed() {
    let state = RegistryState::default();
    let private = [
        "http://127.0.0.1/hooks",
        "http://127.1.2.3:8080/",
        "http://2130706433/",
        "http://10.0.0.5/",
        "http://172.16.0.1/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:3000/",
        "http://LOCALHOST./",
        "http://api.localhost/",
    ];
    for url in private {
        let new = NewEndpoint {
            url: url.into(),
            ..new_endpoint("crm")
        };
        let refused = decide(&state, &create(new.clone()), t0(), &limits());
        assert!(
            matches!(refused, Err(WebhookError::TargetNotAllowed(_))),
            "{url}: {refused:?}"
        );
        let allowing = Limits {
            allow_private_targets: true,
            ..limits()
        };
        let allowed = decide(&state, &create(new), t0(), &allowing);
        assert!(
            allowed.is_ok_and(|e| e.len() == 1),
            "{url} is refused when allowed"
        );
    }
    for url in [
        "https://93.184.216.34/",
        "https://[2606:2800:220:1::1]/",
        "https://localhost.example.com/",
    ] {
        let new = NewEndpoint {
            url: url.into(),
            ..new_endpoint("crm")
        };
        assert!(
            decide(&state, &create(new), t0(), &limits()).is_ok(),
            "{url} refused"
        );
    }
}

#[test]
fn given_out_of_bounds_settings_when_an_endpoint_is_created_then_they_are_refused() {
    let state = RegistryState::default();
    let max = WebhookSettings::default();
    let bad = [
        NewEndpoint {
            timeout_ms: Some(0),
            ..new_endpoint("crm")
        },
        NewEndpoint {
            timeout_ms: Some(max.max_timeout_ms + 1),
            ..new_endpoint("crm")
        },
        NewEndpoint {
            max_in_flight: Some(0),
            ..new_endpoint("crm")
        },
        NewEndpoint {
            max_in_flight: Some(max.max_in_flight + 1),
            ..new_endpoint("crm")
        },
        NewEndpoint {
            description: Some("x".repeat(257)),
            ..new_endpoint("crm")
        },
    ];
    for new in bad {
        let result = decide(&state, &create(new.clone()), t0(), &limits());
        assert!(
            matches!(result, Err(WebhookError::InvalidSetting(_))),
            "{new:?}: {result:?}"
        );
    }
    let at_the_bounds = NewEndpoint {
        timeout_ms: Some(max.max_timeout_ms),
        max_in_flight: Some(max.max_in_flight),
        description: Some("é".repeat(256)),
        ..new_endpoint("crm")
    };
    assert!(decide(&state, &create(at_the_bounds), t0(), &limits()).is_ok());
}

// --- Changes ---

#[test]
fn given_an_endpoint_when_it_is_updated_then_only_what_is_named_changes_and_a_no_op_records_nothing()
 {
    let mut state = given(&["crm"]);
    let before = state.endpoints[&id("crm")].clone();
    let changes = EndpointChanges {
        url: Some("https://crm.example.com/v2".into()),
        timeout_ms: Some(2_000),
        ..EndpointChanges::default()
    };
    let later = t0() + chrono::Duration::minutes(5);
    assert_eq!(
        when_at(
            &mut state,
            EndpointCommand::Update {
                id: id("crm"),
                changes: changes.clone()
            },
            later
        )
        .unwrap()
        .len(),
        1
    );
    let after = &state.endpoints[&id("crm")];
    assert_eq!(after.url, "https://crm.example.com/v2");
    assert_eq!(after.timeout_ms, 2_000);
    assert_eq!(after.max_in_flight, before.max_in_flight);
    assert_eq!(after.secret, before.secret);
    assert_eq!(after.updated_at, later);
    assert!(
        when(
            &mut state,
            EndpointCommand::Update {
                id: id("crm"),
                changes
            }
        )
        .unwrap()
        .is_empty()
    );
    let private = EndpointChanges {
        url: Some("http://10.1.1.1/".into()),
        ..EndpointChanges::default()
    };
    let refused = when(
        &mut state,
        EndpointCommand::Update {
            id: id("crm"),
            changes: private,
        },
    );
    assert!(matches!(refused, Err(WebhookError::TargetNotAllowed(_))));
}

#[test]
fn given_a_rotation_when_messages_are_signed_then_both_secrets_sign_until_the_overlap_ends() {
    let mut state = given(&["crm"]);
    let old = state.endpoints[&id("crm")].secret.clone();
    let new = Secret::generate();
    let rotate = EndpointCommand::RotateSecret {
        id: id("crm"),
        secret: new.clone(),
        overlap: Duration::from_secs(3_600),
    };
    assert_eq!(when(&mut state, rotate.clone()).unwrap().len(), 1);
    let endpoint = &state.endpoints[&id("crm")];
    assert_eq!(endpoint.secret, new);
    assert_eq!(endpoint.signing_secrets(t0()), vec![&new, &old]);
    let almost = t0() + chrono::Duration::seconds(3_599);
    assert_eq!(endpoint.signing_secrets(almost), vec![&new, &old]);
    let over = t0() + chrono::Duration::seconds(3_600);
    assert_eq!(endpoint.signing_secrets(over), vec![&new]);
    // The same rotation again (a retry) changes nothing.
    assert!(when(&mut state, rotate).unwrap().is_empty());
}

#[test]
fn given_an_overlap_longer_than_a_month_when_rotating_then_it_is_refused() {
    let state = given(&["crm"]);
    let rotate = EndpointCommand::RotateSecret {
        id: id("crm"),
        secret: Secret::generate(),
        overlap: Duration::from_secs(31 * 86_400),
    };
    assert!(matches!(
        decide(&state, &rotate, t0(), &limits()),
        Err(WebhookError::InvalidSetting(_))
    ));
}

#[test]
fn given_an_endpoint_when_paused_and_resumed_twice_then_only_the_changes_are_recorded() {
    let mut state = given(&["crm"]);
    let pause = || EndpointCommand::Pause { id: id("crm") };
    let resume = || EndpointCommand::Resume { id: id("crm") };
    assert!(
        when(&mut state, resume()).unwrap().is_empty(),
        "an enabled endpoint resumes to nothing"
    );
    assert_eq!(when(&mut state, pause()).unwrap().len(), 1);
    assert!(when(&mut state, pause()).unwrap().is_empty());
    assert_eq!(state.endpoints[&id("crm")].status, EndpointStatus::Paused);
    assert_eq!(when(&mut state, resume()).unwrap().len(), 1);
    assert!(when(&mut state, resume()).unwrap().is_empty());
    assert_eq!(state.endpoints[&id("crm")].status, EndpointStatus::Enabled);
}

#[test]
fn given_a_failing_endpoint_when_resumed_or_recovered_then_it_is_enabled_again() {
    let mut state = given(&["crm"]);
    let fail = || EndpointCommand::MarkFailing {
        id: id("crm"),
        reason: "HTTP 503".into(),
    };
    assert_eq!(when(&mut state, fail()).unwrap().len(), 1);
    assert!(
        when(&mut state, fail()).unwrap().is_empty(),
        "failing twice records once"
    );
    let endpoint = &state.endpoints[&id("crm")];
    assert_eq!(endpoint.status, EndpointStatus::Failing);
    assert_eq!(endpoint.failing, Some((t0(), "HTTP 503".to_owned())));
    assert_eq!(
        when(&mut state, EndpointCommand::Resume { id: id("crm") })
            .unwrap()
            .len(),
        1
    );
    assert_eq!(state.endpoints[&id("crm")].status, EndpointStatus::Enabled);
    assert_eq!(state.endpoints[&id("crm")].failing, None);

    when(&mut state, fail()).unwrap();
    assert_eq!(
        when(&mut state, EndpointCommand::MarkRecovered { id: id("crm") })
            .unwrap()
            .len(),
        1
    );
    assert!(
        when(&mut state, EndpointCommand::MarkRecovered { id: id("crm") })
            .unwrap()
            .is_empty()
    );
    assert_eq!(state.endpoints[&id("crm")].status, EndpointStatus::Enabled);
}

#[test]
fn given_a_paused_endpoint_when_the_dispatcher_marks_it_failing_then_it_stays_paused() {
    let mut state = given(&["crm"]);
    when(&mut state, EndpointCommand::Pause { id: id("crm") }).unwrap();
    let mark = EndpointCommand::MarkFailing {
        id: id("crm"),
        reason: "timeout".into(),
    };
    assert!(when(&mut state, mark).unwrap().is_empty());
    assert_eq!(state.endpoints[&id("crm")].status, EndpointStatus::Paused);
}

#[test]
fn given_an_endpoint_when_replayed_then_its_generation_is_bumped_and_it_restarts_after_the_position()
 {
    let mut state = given(&["crm"]);
    let replay = |after| EndpointCommand::Replay {
        id: id("crm"),
        after,
        head: Position::new(100, 100),
    };
    assert_eq!(
        when(&mut state, replay(Position::new(7, 7))).unwrap().len(),
        1
    );
    assert_eq!(state.endpoints[&id("crm")].generation, 1);
    assert_eq!(state.endpoints[&id("crm")].start_after, Position::new(7, 7));
    // Replaying is never a no-op: the same position again restarts again.
    when(&mut state, replay(Position::new(7, 7))).unwrap();
    assert_eq!(state.endpoints[&id("crm")].generation, 2);
    let ahead = when(&mut state, replay(Position::new(200, 200)));
    assert!(matches!(
        ahead,
        Err(WebhookError::PositionAheadOfLog { .. })
    ));
}

#[test]
fn given_redelivery_requests_then_they_are_numbered_deduplicated_bounded_and_cleared_when_done() {
    let mut state = given(&["crm", "erp"]);
    let request = |endpoint: &str, n: u64| EndpointCommand::RequestRedelivery {
        id: id(endpoint),
        message_id: format!("msg_{n:032x}"),
        position: Position::new(n, n),
    };
    when(&mut state, request("erp", 99)).unwrap();
    for n in 0..MAX_PENDING_REDELIVERIES as u64 {
        assert_eq!(when(&mut state, request("crm", n)).unwrap().len(), 1);
    }
    assert!(
        when(&mut state, request("crm", 3)).unwrap().is_empty(),
        "the same message is asked once"
    );
    let full = when(&mut state, request("crm", 1_000));
    assert!(
        matches!(
            full,
            Err(WebhookError::TooManyRedeliveries {
                limit: MAX_PENDING_REDELIVERIES
            })
        ),
        "{full:?}"
    );
    let pending = state.endpoints[&id("crm")].redeliveries.clone();
    let numbers: Vec<u64> = pending.iter().map(|(r, _, _)| *r).collect();
    assert_eq!(
        numbers,
        (1..=MAX_PENDING_REDELIVERIES as u64).collect::<Vec<_>>(),
        "numbered across the registry"
    );
    let (first, _, _) = pending[0];
    let done = || EndpointCommand::RedeliveryDone {
        id: id("crm"),
        request: first,
    };
    assert_eq!(when(&mut state, done()).unwrap().len(), 1);
    assert!(when(&mut state, done()).unwrap().is_empty());
    assert_eq!(
        state.endpoints[&id("crm")].redeliveries.len(),
        MAX_PENDING_REDELIVERIES - 1
    );
    assert_eq!(when(&mut state, request("crm", 1_000)).unwrap().len(), 1);
}

#[test]
fn given_a_deleted_endpoint_when_the_dispatcher_marks_it_then_nothing_is_recorded() {
    let mut state = given(&["crm"]);
    when(&mut state, EndpointCommand::Delete { id: id("crm") }).unwrap();
    let marks = [
        EndpointCommand::MarkFailing {
            id: id("crm"),
            reason: "x".into(),
        },
        EndpointCommand::MarkRecovered { id: id("crm") },
        EndpointCommand::RedeliveryDone {
            id: id("crm"),
            request: 0,
        },
    ];
    for mark in marks {
        assert!(when(&mut state, mark).unwrap().is_empty());
    }
    let update = when(&mut state, EndpointCommand::Pause { id: id("crm") });
    assert!(matches!(update, Err(WebhookError::EndpointNotFound(_))));
}

// --- Round trips through a store ---

const PROGRAM: &str = r#"
[program]
name = "Test"
currency = "EUR"
timezone = "Europe/Paris"
rules_version = "test-1"

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

struct Fixture {
    store: Arc<InMemoryStore>,
    clock: Arc<ManualClock>,
    engine: Engine,
}

impl Fixture {
    async fn new() -> Fixture {
        let store = Arc::new(InMemoryStore::new());
        let clock = Arc::new(ManualClock::new(t0()));
        let program = Arc::new(loyalty_core::Program::from_toml_str(PROGRAM).expect("program"));
        let engine = Engine::start(
            store.clone(),
            program,
            clock.clone(),
            Arc::new(RandomIds),
            EngineOptions::default(),
        )
        .await
        .expect("engine starts");
        Fixture {
            store,
            clock,
            engine,
        }
    }

    fn webhooks(&self) -> Webhooks {
        self.webhooks_with(WebhookSettings::default())
    }

    fn webhooks_with(&self, settings: WebhookSettings) -> Webhooks {
        Webhooks::new(self.engine.clone(), settings)
    }

    /// Appends a foreign event, to move the log's head.
    async fn append_elsewhere(&self, n: usize) -> Position {
        let events = (0..n)
            .map(|_| EventData {
                id: loyalty_store::Uuid::new_v4(),
                event_type: "Other".into(),
                schema_version: 1,
                data: loyalty_store::Bytes::from_static(b"{}"),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            })
            .collect();
        self.store
            .append("other", ExpectedRevision::Any, events)
            .await
            .unwrap()
            .position
    }
}

#[tokio::test]
async fn given_a_created_endpoint_when_another_handle_loads_the_registry_then_it_reads_the_same_endpoint()
 {
    let f = Fixture::new().await;
    let head = f.append_elsewhere(3).await;
    let webhooks = f.webhooks();
    let created = webhooks.create(new_endpoint("crm")).await.unwrap();
    assert_eq!(created.secret, created.endpoint.secret);
    assert_eq!(
        created.endpoint.start_after, head,
        "Now starts at the head at creation"
    );

    let other = f.webhooks();
    assert_eq!(other.endpoint(&id("crm")).await.unwrap(), created.endpoint);
    assert_eq!(
        other.endpoints().await.unwrap(),
        vec![created.endpoint.clone()]
    );

    let stored = f
        .store
        .read_stream(
            REGISTRY_STREAM,
            loyalty_store::StreamFrom::Start,
            loyalty_store::Direction::Forwards,
            10,
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "WebhookEndpointCreated");
    assert_eq!(stored[0].schema_version, 1);
}

#[tokio::test]
async fn given_a_created_endpoint_when_the_creation_is_retried_then_the_same_endpoint_and_secret_are_answered()
 {
    let f = Fixture::new().await;
    let webhooks = f.webhooks();
    let first = webhooks.create(new_endpoint("crm")).await.unwrap();
    f.append_elsewhere(2).await;
    let again = webhooks.create(new_endpoint("crm")).await.unwrap();
    assert_eq!(again.endpoint, first.endpoint);
    assert_eq!(again.secret, first.secret);
    assert!(!first.replayed && again.replayed, "the retry is told apart");
    let conflicting = NewEndpoint {
        url: "https://elsewhere.example.com/".into(),
        ..new_endpoint("crm")
    };
    assert!(matches!(
        webhooks.create(conflicting).await,
        Err(WebhookError::EndpointExists(_))
    ));
    let revision = f.store.stream_revision(REGISTRY_STREAM).await.unwrap();
    assert_eq!(
        revision,
        loyalty_store::CurrentRevision::Current(0),
        "nothing more was stored"
    );
}

#[tokio::test]
async fn given_an_endpoint_when_managed_through_the_handle_then_every_change_survives_a_reload() {
    let f = Fixture::new().await;
    let webhooks = f.webhooks();
    let crm = id("crm");
    let created = webhooks.create(new_endpoint("crm")).await.unwrap();
    webhooks
        .update(
            &crm,
            EndpointChanges {
                event_types: Some(vec![EventType::PurchaseRecorded]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.clock.advance(chrono::Duration::minutes(1));
    let rotated = webhooks.rotate_secret(&crm, None, None).await.unwrap();
    assert_ne!(rotated.secret, created.secret);
    let overlap =
        chrono::Duration::seconds(WebhookSettings::default().rotation_overlap_secs as i64);
    assert_eq!(
        rotated.endpoint.previous_secret,
        Some((
            created.secret.clone(),
            t0() + chrono::Duration::minutes(1) + overlap
        )),
        "the settings' overlap applies when none is named"
    );
    let paused = webhooks.pause(&crm).await.unwrap();
    assert_eq!(paused.status, EndpointStatus::Paused);
    f.append_elsewhere(5).await;
    let replayed = webhooks.replay(&crm, Position::START).await.unwrap();
    assert_eq!(
        (replayed.generation, replayed.start_after),
        (1, Position::START)
    );
    // The replay's own event moved the head: past the head is past it now.
    let head = f.store.head_position().await.unwrap();
    let ahead = Position::new(head.commit + 1, head.prepare + 1);
    let refused = webhooks.replay(&crm, ahead).await;
    assert!(
        matches!(refused, Err(WebhookError::PositionAheadOfLog { .. })),
        "{refused:?}"
    );
    let resumed = webhooks.resume(&crm).await.unwrap();
    assert_eq!(resumed.status, EndpointStatus::Enabled);

    let reloaded = f.webhooks().endpoint(&crm).await.unwrap();
    assert_eq!(reloaded, resumed);
    assert_eq!(reloaded.event_types, vec![EventType::PurchaseRecorded]);
    assert_eq!(reloaded.secret, rotated.secret);

    webhooks.delete(&crm).await.unwrap();
    webhooks.delete(&crm).await.unwrap();
    assert!(matches!(
        f.webhooks().endpoint(&crm).await,
        Err(WebhookError::EndpointNotFound(_))
    ));
    assert!(f.webhooks().endpoints().await.unwrap().is_empty());
    assert!(matches!(
        webhooks.create(new_endpoint("crm")).await,
        Err(WebhookError::EndpointExists(_))
    ));
}

#[tokio::test]
async fn given_a_start_after_the_head_when_creating_then_it_is_refused_with_both_positions() {
    let f = Fixture::new().await;
    let head = f.append_elsewhere(1).await;
    let ahead = Position::new(head.commit + 10, head.prepare + 10);
    let new = NewEndpoint {
        start: StartFrom::After(ahead),
        ..new_endpoint("crm")
    };
    match f.webhooks().create(new).await {
        Err(WebhookError::PositionAheadOfLog {
            requested,
            head: at,
        }) => {
            assert_eq!(requested, ahead.to_string());
            assert_eq!(at, head.to_string());
        }
        other => panic!("expected PositionAheadOfLog, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_handles_creating_at_once_then_both_endpoints_are_stored() {
    let f = Fixture::new().await;
    let (a, b) = (f.webhooks(), f.webhooks());
    let names: Vec<String> = (0..8).map(|n| format!("e{n}")).collect();
    let tasks: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let handle = if n % 2 == 0 { a.clone() } else { b.clone() };
            let new = new_endpoint(name);
            tokio::spawn(async move { handle.create(new).await })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("created despite the concurrent appends");
    }
    let stored: Vec<String> = f
        .webhooks()
        .endpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(stored, names);
}

#[tokio::test]
async fn given_private_targets_allowed_in_the_settings_then_a_loopback_endpoint_is_stored() {
    let f = Fixture::new().await;
    let local = NewEndpoint {
        url: "http://127.0.0.1:9000/hooks".into(),
        ..new_endpoint("local")
    };
    assert!(matches!(
        f.webhooks().create(local.clone()).await,
        Err(WebhookError::TargetNotAllowed(_))
    ));
    let settings = WebhookSettings {
        allow_private_targets: true,
        ..WebhookSettings::default()
    };
    let created = f.webhooks_with(settings).create(local).await.unwrap();
    assert_eq!(created.endpoint.url, "http://127.0.0.1:9000/hooks");
}

#[tokio::test]
async fn given_an_unknown_message_when_a_redelivery_is_asked_then_it_is_refused() {
    let f = Fixture::new().await;
    let webhooks = f.webhooks();
    webhooks.create(new_endpoint("crm")).await.unwrap();
    let missing = webhooks
        .redeliver(&id("crm"), "msg_00000000000000000000000000000000")
        .await;
    assert!(
        matches!(missing, Err(WebhookError::MessageNotFound(_))),
        "{missing:?}"
    );
    let no_endpoint = webhooks
        .redeliver(&id("nope"), "msg_00000000000000000000000000000000")
        .await;
    assert!(
        matches!(no_endpoint, Err(WebhookError::EndpointNotFound(_))),
        "{no_endpoint:?}"
    );
}
