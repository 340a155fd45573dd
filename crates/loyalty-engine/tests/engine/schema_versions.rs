//! An event written by a newer release (a schema version this build does not read) is refused
//! with an error naming it, at a member's load and at the projections' catch-up: never
//! skipped, never a panic, and nothing appended after it.

use loyalty_core::{Points, schema};
use loyalty_engine::{EngineError, NewerSchemaEvent};
use loyalty_store::{
    Bytes, CurrentRevision, EventData, EventStore, ExpectedRevision, Position, Uuid,
};

use crate::common::*;

/// Appends to alice's stream an adjustment as a newer release would write it; returns its
/// revision and position.
async fn newer_adjustment(h: &Harness) -> (u64, Position) {
    let appended = h
        .store
        .append(
            "member-alice",
            ExpectedRevision::Any,
            vec![EventData {
                id: Uuid::new_v4(),
                event_type: "PointsAdjusted".into(),
                schema_version: schema::CURRENT_SCHEMA_VERSION + 1,
                data: Bytes::from_static(br#"{"adjustment_id":"J9","points":5}"#),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
    (appended.next_expected_revision, appended.position)
}

fn assert_names_the_event(err: &EngineError, revision: u64, position: Position) {
    let EngineError::NewerSchema(newer) = err else {
        panic!("expected a newer-schema error, got {err:?}");
    };
    assert_eq!(
        newer,
        &NewerSchemaEvent {
            stream: "member-alice".into(),
            revision,
            position,
            event_type: "PointsAdjusted".into(),
            version: schema::CURRENT_SCHEMA_VERSION + 1,
            newest_known: schema::newest_version("PointsAdjusted").unwrap(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("member-alice revision") && text.contains("upgrade"),
        "{text}"
    );
}

async fn revision(h: &Harness) -> CurrentRevision {
    h.store.stream_revision("member-alice").await.unwrap()
}

#[tokio::test]
async fn a_member_load_that_meets_a_newer_event_is_refused_naming_it_and_appends_nothing() {
    // Given alice, then an event of hers that a newer release wrote
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "T1", 50, h.now())).await;
    let (rev, position) = newer_adjustment(&h).await;
    let before = revision(&h).await;
    // When a server that never loaded her takes a command for her
    let other = h.second_engine(options()).await;
    let err = other
        .execute(redeem(&alice, "R1", 10, h.now()))
        .await
        .unwrap_err();
    // Then the command is refused, naming the event, and nothing was appended
    assert_names_the_event(&err, rev, position);
    assert!(!err.is_retryable());
    assert_eq!(revision(&h).await, before);
}

#[tokio::test]
async fn a_server_holding_her_state_meets_the_newer_event_at_its_append_and_appends_nothing() {
    // Given alice in this server's cache, then a newer release's event in her stream
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "T1", 50, h.now())).await;
    let (rev, position) = newer_adjustment(&h).await;
    let before = revision(&h).await;
    // When this server takes a command for her (its append conflicts, it reads the stream)
    let err = h
        .engine
        .execute(redeem(&alice, "R1", 10, h.now()))
        .await
        .unwrap_err();
    // Then it is refused the same way, and nothing was appended, now or on a second try
    assert_names_the_event(&err, rev, position);
    assert_eq!(revision(&h).await, before);
    let again = h
        .engine
        .execute(redeem(&alice, "R1", 10, h.now()))
        .await
        .unwrap_err();
    assert_names_the_event(&again, rev, position);
    assert_eq!(revision(&h).await, before);
}

#[tokio::test]
async fn a_server_starting_on_a_log_with_a_newer_event_stops_its_read_models_there() {
    // Given alice, a newer release's event of hers, then bob
    let h = Harness::new().await;
    let alice = h.enroll("alice").await;
    h.run(purchase(&alice, "T1", 50, h.now())).await;
    let (rev, position) = newer_adjustment(&h).await;
    let bob = h.enroll("bob").await;
    // When another server starts and catches up with the log
    let other = h.second_engine(options()).await;
    let head = h.store.head_position().await.unwrap();
    let err = other.wait_for(head).await.unwrap_err();
    // Then the catch-up is refused, naming the event
    assert_names_the_event(&err, rev, position);
    assert_eq!(other.newer_schema_event().map(|e| e.revision), Some(rev));
    assert!(!other.is_caught_up(), "a stopped server is not ready");
    // And its read models hold what came before the event, nothing after it
    assert_eq!(
        other.balance(&alice).map(|b| b.available),
        Some(Points::new(60))
    );
    assert!(other.balance(&bob).is_none());
    // And the reports that replay the log refuse too, rather than leave the event out
    let report = other.liability_statement(h.now(), 365).await.unwrap_err();
    assert_names_the_event(&report, rev, position);
    // And the event was not skipped as unreadable: it stopped them
    assert_eq!(other.unreadable_events(), 0);
}
