//! The rules in force: an engine records its program (normalised text, hash as version) in
//! the stream `program` when the log has not seen it, once however many servers start with it,
//! and every decision's `rules_version` resolves to a recorded text.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loyalty_core::Program;
use loyalty_core::program::version::version_of;
use loyalty_engine::streams::{PROGRAM_RECORDED, PROGRAM_STREAM};
use loyalty_engine::{Engine, EngineError, EventMetadata, ProgramLookup};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, InMemoryStore, Position,
    RecordedEvent, StoreError, StreamFrom,
};

use crate::common::*;

/// The test program with one piece of its text replaced.
fn program_with(from: &str, to: &str) -> Arc<Program> {
    let text = test_program_text();
    assert!(text.contains(from), "the test program lacks {from:?}");
    Arc::new(Program::from_toml_str(&text.replacen(from, to, 1)).expect("variant is valid"))
}

/// The text `common::program()` is parsed from, as its normalised form gives it back.
fn test_program_text() -> String {
    program().normalized_text().to_owned()
}

async fn program_events(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store
        .read_stream(PROGRAM_STREAM, StreamFrom::Start, Direction::Forwards, 100)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_engine_records_its_program_at_start_as_a_version_one_document() {
    // Given a new store, when an engine starts on it
    let h = Harness::new().await;
    // Then the stream `program` holds one ProgramRecorded, schema v1, with the version, the
    // label, the name, the normalised text and the server's clock
    let events = program_events(h.store.as_ref()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, PROGRAM_RECORDED);
    assert_eq!(events[0].schema_version, 1);
    let data: serde_json::Value = serde_json::from_slice(&events[0].data).unwrap();
    let program = h.engine.program();
    assert_eq!(
        data,
        serde_json::json!({
            "version": program.version(),
            "label": "test-1",
            "name": "Test",
            "text": program.normalized_text(),
            "recorded_at": "2026-01-10T10:00:00Z",
        })
    );
    assert_eq!(version_of(program.normalized_text()), program.version());
}

#[tokio::test]
async fn starting_twice_with_the_same_program_records_it_once() {
    let h = Harness::new().await;
    // When the server restarts later with the same program, written differently
    h.engine.shutdown().await;
    h.clock.advance(days(3));
    let respaced = program_with("[earning]", "# the earning rules\n\n[earning]   ");
    assert_eq!(respaced.version(), h.engine.program().version());
    let again = h.second_engine(options()).await;
    // Then the history still has one version, dated at the first start
    let history = again.program_history().await.unwrap();
    assert_eq!(history.versions.len(), 1);
    assert_eq!(history.versions[0].recorded_at, t0());
    assert!(!history.more);
    let started = start(h.store.clone(), respaced, h.clock.clone(), options()).await;
    assert_eq!(program_events(h.store.as_ref()).await.len(), 1);
    started.shutdown().await;
    again.shutdown().await;
}

#[tokio::test]
async fn two_engines_starting_at_once_with_a_new_program_record_it_once() {
    // Given two servers starting at the same time on one store, both reading the empty stream
    // (the first two appends to the stream `program` wait for each other)
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let appends = Arc::new(AtomicUsize::new(0));
    let counted = appends.clone();
    let store = Arc::new(Hooked::new(Box::new(move |stream| {
        let wait = stream == PROGRAM_STREAM && counted.fetch_add(1, Ordering::SeqCst) < 2;
        let barrier = barrier.clone();
        Box::pin(async move {
            if wait {
                barrier.wait().await;
            }
            Ok(())
        })
    })));
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let (a, b) = tokio::join!(
        start(store.clone(), program(), clock.clone(), options()),
        start(store.clone(), program(), clock.clone(), options()),
    );
    // Then both tried to append, one lost the race, read again and found the version
    assert_eq!(appends.load(Ordering::SeqCst), 2);
    assert_eq!(program_events(store.as_ref()).await.len(), 1);
    assert_eq!(a.program_history().await.unwrap().versions.len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_changed_program_is_a_second_version_and_both_texts_stay_readable() {
    let h = Harness::new().await;
    let first = h.engine.program().clone();
    h.engine.shutdown().await;
    // When the server restarts a day later with a higher earning rate
    h.clock.advance(days(1));
    let changed = program_with("points_per_unit = \"1\"", "points_per_unit = \"2\"");
    assert_ne!(changed.version(), first.version());
    let engine = start(h.store.clone(), changed.clone(), h.clock.clone(), options()).await;
    // Then the history lists both, oldest first, each with its date
    let history = engine.program_history().await.unwrap();
    let listed: Vec<_> = history
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.recorded_at))
        .collect();
    assert_eq!(
        listed,
        vec![(first.version(), t0()), (changed.version(), t0() + days(1))]
    );
    // And each version's text is the program it names
    for program in [&first, changed.as_ref()] {
        let recorded = engine
            .program_text(program.version())
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(recorded.text, program.normalized_text());
        assert_eq!(
            Program::from_toml_str(&recorded.text).unwrap().version(),
            program.version()
        );
    }
    assert!(
        engine
            .program_text(&"0".repeat(64))
            .await
            .unwrap()
            .is_none()
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn every_decisions_rules_version_resolves_to_a_recorded_text() {
    // Given a history decided under two programs (a referral, purchases, a redemption, a
    // refund, then more purchases after the rules changed)
    let h = Harness::new().await;
    let (rita, nina) = h.referral_delivered().await;
    h.run(purchase(&rita, "R1", 40, h.now())).await;
    h.run(redeem(&rita, "rd-1", 30, h.now())).await;
    h.run(refund(&nina, "nr-1", "N1", 5, h.now())).await;
    h.engine.shutdown().await;
    h.clock.advance(days(1));
    let changed = program_with("welcome_points = 10", "welcome_points = 25");
    let engine = start(h.store.clone(), changed.clone(), h.clock.clone(), options()).await;
    engine
        .execute(purchase(&rita, "R2", 10, h.now()))
        .await
        .unwrap();
    engine
        .execute(enroll(&member("olga"), h.now()))
        .await
        .unwrap();
    // When every event of the log is read back
    let mut after = Position::START;
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        let page = h.store.read_all(after, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page.iter().filter(|e| e.stream.starts_with("member-")) {
            // Then the version its metadata records, and the one its data records when it
            // has one, resolve to the text that version is the hash of
            let meta: EventMetadata = serde_json::from_slice(&event.metadata).unwrap();
            let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
            let mut versions = vec![meta.rules_version];
            if let Some(v) = data.get("rules_version").and_then(|v| v.as_str()) {
                versions.push(v.to_owned());
            }
            for version in versions {
                match engine.resolve_program(&version).await.unwrap() {
                    ProgramLookup::Found(p) => {
                        assert_eq!(p.info.version, version);
                        assert_eq!(version_of(&p.text), version);
                    }
                    other => panic!("{} {}: {other:?}", event.stream, event.revision),
                }
                *seen.entry(version).or_default() += 1;
            }
        }
    }
    // And both programs decided something
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.contains_key(changed.version()));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_label_from_before_versions_were_hashes_resolves_to_the_latest_program_with_it() {
    // Given two programs recorded under the label `test-1`, then one labelled `test-2`
    let h = Harness::new().await;
    h.engine.shutdown().await;
    let later = program_with("welcome_points = 10", "welcome_points = 11");
    let relabelled = program_with("rules_version = \"test-1\"", "label = \"test-2\"");
    for program in [later.clone(), relabelled] {
        h.clock.advance(days(1));
        start(h.store.clone(), program, h.clock.clone(), options())
            .await
            .shutdown()
            .await;
    }
    let engine = h.second_engine(options()).await;
    // When an old event's rules_version (the label) is resolved
    let found = engine.resolve_program("test-1").await.unwrap();
    // Then it is the latest program recorded with that label
    match found {
        ProgramLookup::Found(p) => {
            assert_eq!(p.info.version, later.version());
            assert_eq!(p.info.label.as_deref(), Some("test-1"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        engine.resolve_program("test-3").await.unwrap(),
        ProgramLookup::Unknown
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_prefix_resolves_when_unique_and_is_ambiguous_when_two_versions_share_it() {
    let h = Harness::new().await;
    let own = h.engine.program().version().to_owned();
    // A unique prefix of 8 digits names the version; 7 are too few to be read as a prefix
    match h.engine.resolve_program(&own[..8]).await.unwrap() {
        ProgramLookup::Found(p) => assert_eq!(p.info.version, own),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.engine.resolve_program(&own[..7]).await.unwrap(),
        ProgramLookup::Unknown
    );
    // Given two recorded texts whose versions share their first 8 digits (found by search:
    // about 2^16 tries by the birthday bound)
    let mut by_prefix: HashMap<String, String> = HashMap::new();
    let (a, b) = (0u32..1_000_000)
        .find_map(|i| {
            let text = format!("x = {i}\n");
            let version = version_of(&text);
            by_prefix
                .insert(version[..8].to_owned(), text.clone())
                .map(|other| (other, text))
        })
        .expect("two versions share a prefix");
    for text in [&a, &b] {
        let data = serde_json::json!({
            "version": version_of(text), "label": null, "name": "forged",
            "text": text, "recorded_at": "2026-01-10T10:00:00Z",
        });
        h.store
            .append(
                PROGRAM_STREAM,
                ExpectedRevision::Any,
                vec![EventData {
                    id: uuid::Uuid::new_v4(),
                    event_type: PROGRAM_RECORDED.to_owned(),
                    schema_version: 1,
                    data: Bytes::from(serde_json::to_vec(&data).unwrap()),
                    metadata: Bytes::from_static(b"{}"),
                }],
            )
            .await
            .unwrap();
    }
    // When their shared prefix is resolved, then it is ambiguous, naming both
    let prefix = &version_of(&a)[..8];
    match h.engine.resolve_program(prefix).await.unwrap() {
        ProgramLookup::Ambiguous(mut versions) => {
            versions.sort();
            let mut expected = vec![version_of(&a), version_of(&b)];
            expected.sort();
            assert_eq!(versions, expected);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_recorded_text_that_does_not_hash_to_its_version_is_reported_corrupt() {
    // Given a record whose text was changed after it was written
    let h = Harness::new().await;
    let data = serde_json::json!({
        "version": h.engine.program().version(), "label": null, "name": "forged",
        "text": "x = 1\n", "recorded_at": "2026-01-10T10:00:00Z",
    });
    h.store
        .append(
            PROGRAM_STREAM,
            ExpectedRevision::Any,
            vec![EventData {
                id: uuid::Uuid::new_v4(),
                event_type: PROGRAM_RECORDED.to_owned(),
                schema_version: 1,
                data: Bytes::from(serde_json::to_vec(&data).unwrap()),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    // When the history is read, then it says which record is wrong
    let error = h.engine.program_history().await.unwrap_err().to_string();
    assert!(error.contains("program revision 1"), "{error}");
    assert!(error.contains("does not hash"), "{error}");
}

#[tokio::test]
async fn a_program_record_of_a_newer_release_does_not_keep_this_one_from_starting() {
    // Given a log whose newest program record a newer release wrote (a schema version this
    // build does not read)
    let h = Harness::new().await;
    h.store
        .append(
            PROGRAM_STREAM,
            ExpectedRevision::Any,
            vec![EventData {
                id: uuid::Uuid::new_v4(),
                event_type: PROGRAM_RECORDED.to_owned(),
                schema_version: 2,
                data: Bytes::from_static(b"{\"future\":true}"),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    // When a server of this release restarts with a new program
    h.engine.shutdown().await;
    let changed = program_with("points_per_unit = \"1\"", "points_per_unit = \"2\"");
    let started = start(h.store.clone(), changed.clone(), h.clock.clone(), options()).await;
    // Then it started and recorded its program after the record it could not read
    let events = program_events(h.store.as_ref()).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].event_type, PROGRAM_RECORDED);
    assert_eq!(events[2].schema_version, 1);
    // And the auditors' history, which must not hide a record, says it cannot read one
    assert!(started.program_history().await.is_err());
    started.shutdown().await;
}

#[tokio::test]
async fn an_engine_started_not_to_record_its_program_writes_nothing_to_the_log() {
    // Given a log holding a member and no program record (a release from before programs were
    // recorded wrote it)
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let read_only = loyalty_engine::EngineOptions {
        read_only: true,
        ..options()
    };
    let alice = member("alice");
    let decision = loyalty_core::decide(
        &loyalty_core::MemberState::default(),
        &enroll(&alice, t0()),
        &program(),
        loyalty_core::ServerTime::at(t0()),
    )
    .unwrap();
    let events = decision
        .events
        .iter()
        .map(|e| {
            let stored = loyalty_core::schema::encode(e);
            loyalty_store::EventData {
                id: loyalty_store::Uuid::new_v4(),
                event_type: stored.event_type.to_owned(),
                schema_version: stored.schema_version,
                data: stored.data.into(),
                metadata: loyalty_store::Bytes::from_static(b"{}"),
            }
        })
        .collect();
    store
        .append(
            "member-alice",
            loyalty_store::ExpectedRevision::NoStream,
            events,
        )
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();
    assert!(program_events(store.as_ref()).await.is_empty());
    // When an engine that must not record starts on it, answers, and stops a while later
    let engine = start(store.clone(), program(), clock.clone(), read_only).await;
    engine.wait_for(head).await.unwrap();
    assert_eq!(engine.totals().members, 1);
    // And refuses to decide anything
    let refused = engine.execute(purchase(&alice, "T1", 10, t0())).await;
    assert!(
        matches!(refused, Err(loyalty_engine::EngineError::ReadOnly)),
        "{refused:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    engine.shutdown().await;
    // Then the log is as it was: no program record, no lease, no checkpoint
    assert_eq!(store.head_position().await.unwrap(), head);
    assert!(program_events(store.as_ref()).await.is_empty());
    // And an engine allowed to write records the program, as before
    let server = start(store.clone(), program(), clock, options()).await;
    assert_eq!(program_events(store.as_ref()).await.len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_store_briefly_unavailable_at_start_delays_the_recording_instead_of_failing_it() {
    // Given a store that refuses the first two appends of the program record
    let failures = Arc::new(AtomicUsize::new(2));
    let left = failures.clone();
    let store = Arc::new(Hooked::new(Box::new(move |stream| {
        let fail = stream == PROGRAM_STREAM
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        Box::pin(async move {
            if fail {
                return Err(StoreError::Unavailable("the database restarts".into()));
            }
            Ok(())
        })
    })));
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    // When a server starts on it
    let engine = Engine::start(
        store.clone(),
        program(),
        clock,
        Arc::new(loyalty_engine::RandomIds),
        options(),
    )
    .await;
    // Then it started once the store took the record, which is there once
    let engine = engine.expect("started after the store came back");
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert_eq!(program_events(store.as_ref()).await.len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_store_refusing_the_program_record_for_good_fails_the_start() {
    // Given a store that refuses the program record with an error that is not transient
    let refusing = Hooked::new(Box::new(|stream| {
        let refuse = stream == PROGRAM_STREAM;
        Box::pin(async move {
            if refuse {
                return Err(StoreError::Backend("permission denied".into()));
            }
            Ok(())
        })
    }));
    // When a server starts on it, then the start fails with the store's error
    let started = Engine::start(
        Arc::new(refusing),
        program(),
        Arc::new(loyalty_engine::ManualClock::new(t0())),
        Arc::new(loyalty_engine::RandomIds),
        options(),
    )
    .await;
    match started {
        Err(EngineError::Store(StoreError::Backend(why))) => {
            assert_eq!(why, "permission denied")
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started without its program recorded"),
    }
}
