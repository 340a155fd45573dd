//! Personal data: notes sealed in the log, shown while the member's key lives, exported, and
//! erased by destroying the key, with balances, the liability and the hash chain unchanged.

use std::sync::Arc;

use loyalty_core::{
    Adjust, AdjustmentId, Command, ComplaintId, Goodwill, MemberId, OperatorId, Points, ReasonCode,
    schema,
};
use loyalty_engine::{CommandContext, EngineError, RevealedNote, streams};
use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, Uuid};

use crate::common::*;

const NOTE: &str = "customer phoned from +44 7700 900123 about a lost card";

fn adjust(
    m: &MemberId,
    id: &str,
    points: i64,
    note: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Command {
    Command::Adjust(Adjust {
        member_id: m.clone(),
        adjustment_id: AdjustmentId::parse(id).unwrap(),
        points: Points::new(points),
        reason_code: ReasonCode::parse("goodwill-call").unwrap(),
        note: note.into(),
        operator: OperatorId::parse("op-7").unwrap(),
        occurred_at: at,
    })
}

fn goodwill(m: &MemberId, id: &str, note: &str, at: chrono::DateTime<chrono::Utc>) -> Command {
    Command::Goodwill(Goodwill {
        member_id: m.clone(),
        complaint_id: ComplaintId::parse(id).unwrap(),
        points: Points::new(15),
        reason_code: ReasonCode::parse("complaint-upheld").unwrap(),
        note: note.into(),
        operator: OperatorId::parse("op-7").unwrap(),
        occurred_at: at,
    })
}

/// Erases `m`'s personal data as a data-protection officer would.
async fn erase(h: &Harness, m: &MemberId) -> loyalty_engine::ErasureReport {
    h.engine
        .erase_member(m, reason(), operator(), &CommandContext::new())
        .await
        .expect("erased")
}

fn reason() -> ReasonCode {
    ReasonCode::parse("gdpr-art-17").unwrap()
}

fn operator() -> OperatorId {
    OperatorId::parse("dpo").unwrap()
}

/// Every stored byte of the log, as one string (documents and metadata).
async fn log_text(store: &dyn EventStore) -> String {
    let events = store
        .read_all(loyalty_store::Position::START, 1_000)
        .await
        .unwrap();
    let mut text = String::new();
    for e in events {
        text.push_str(&String::from_utf8_lossy(&e.data));
        text.push_str(&String::from_utf8_lossy(&e.metadata));
    }
    text
}

/// Appends to `m`'s stream a document this engine did not write (an earlier or a newer
/// release's).
async fn append_written_elsewhere(
    h: &Harness,
    m: &MemberId,
    event_type: &str,
    schema_version: u32,
    data: &[u8],
) {
    let revision = read_member(h.store.as_ref(), m).await.len() as u64 - 1;
    h.store
        .append(
            &format!("{}{m}", streams::MEMBER_PREFIX),
            ExpectedRevision::Exact(revision),
            vec![EventData {
                id: Uuid::new_v4(),
                event_type: event_type.into(),
                schema_version,
                data: Bytes::from(data.to_vec()),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_note_is_sealed_in_the_log_and_shown_in_clear_to_the_statement_and_the_export() {
    // Given a member and an adjustment whose note holds personal data
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(adjust(&m, "ADJ1", 40, NOTE, h.now())).await;
    // Then the log holds the note sealed, never in clear
    let log = log_text(h.store.as_ref()).await;
    assert!(!log.contains("lost card"), "plaintext in the log");
    let stored = read_member(h.store.as_ref(), &m).await;
    let adjusted = stored
        .iter()
        .find(|e| e.event_type == "PointsAdjusted")
        .unwrap();
    assert_eq!(
        Some(adjusted.schema_version),
        schema::newest_version("PointsAdjusted")
    );
    let doc: serde_json::Value = serde_json::from_slice(&adjusted.data).unwrap();
    assert!(doc["note"]["sealed"]["key_id"].is_string(), "{doc}");
    // And the statement and the export show it in clear
    let history = h.engine.history(&m, None, 10).await.unwrap();
    let line = history
        .lines
        .iter()
        .find(|l| l.event_type == "PointsAdjusted")
        .unwrap();
    assert_eq!(line.note, Some(RevealedNote::Present { text: NOTE.into() }));
    let export = h.engine.export_member(&m).await.unwrap();
    assert_eq!(export.events.len(), stored.len());
    assert_eq!(
        export
            .events
            .iter()
            .filter_map(|e| e.note.clone())
            .collect::<Vec<_>>(),
        vec![RevealedNote::Present { text: NOTE.into() }]
    );
    assert_eq!(
        export.member.unwrap().balance.available,
        Points::new(10 + 40)
    );
    assert!(export.erasures.is_empty());
}

#[tokio::test]
async fn erasing_a_member_makes_their_notes_unreadable_and_leaves_points_and_the_chain_as_they_were()
 {
    // Given a member with a sealed adjustment note and a sealed goodwill note, and another
    // member with a note of their own
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    let other = h.enroll("bob").await;
    h.run(adjust(&m, "ADJ1", 40, NOTE, h.now())).await;
    h.run(goodwill(
        &m,
        "C1",
        "cold croissant at the Leeds store",
        h.now(),
    ))
    .await;
    h.run(adjust(&other, "ADJ2", 5, "bob's own note", h.now()))
        .await;
    h.settle().await;
    let balance = h.engine.balance(&m).unwrap();
    let liability = h.engine.liability_as_of(h.now()).await.unwrap().totals;
    // When alice's personal data is erased
    let report = erase(&h, &m).await;
    // Then her key is destroyed, both notes read as erased, and the erasure is on record
    assert_eq!(report.keys_destroyed, 1);
    assert_eq!(report.sealed_notes, 2);
    assert_eq!(report.plain_notes, 0);
    let export = h.engine.export_member(&m).await.unwrap();
    let notes: Vec<_> = export
        .events
        .iter()
        .filter_map(|e| e.note.clone())
        .collect();
    assert_eq!(notes, vec![RevealedNote::Erased, RevealedNote::Erased]);
    assert_eq!(export.erasures.len(), 1);
    assert_eq!(export.erasures[0].reason_code, "gdpr-art-17");
    assert_eq!(export.erasures[0].position, report.position);
    let history = h.engine.history(&m, None, 10).await.unwrap();
    assert!(
        history
            .lines
            .iter()
            .filter_map(|l| l.note.clone())
            .all(|n| n == RevealedNote::Erased)
    );
    // And balances, the liability and the chain are unchanged; bob's note still reads
    h.settle().await;
    assert_eq!(h.engine.balance(&m).unwrap(), balance);
    let after = h.engine.liability_as_of(h.now()).await.unwrap().totals;
    assert_eq!(
        (after.points_outstanding, after.liability),
        (liability.points_outstanding, liability.liability)
    );
    let chain = h.engine.verify_chain(None).await.unwrap();
    assert!(chain.mismatch.is_none(), "{chain:?}");
    let bobs = h.engine.export_member(&other).await.unwrap();
    assert_eq!(
        bobs.events
            .iter()
            .filter_map(|e| e.note.clone())
            .collect::<Vec<_>>(),
        vec![RevealedNote::Present {
            text: "bob's own note".into()
        }]
    );
    assert!(h.engine.verify().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_note_written_after_an_erasure_is_sealed_under_a_new_key_and_erasing_again_is_harmless() {
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(adjust(&m, "ADJ1", 40, NOTE, h.now())).await;
    erase(&h, &m).await;
    // When the member goes on and gets another note, then is erased twice more
    h.run(goodwill(&m, "C2", "second complaint", h.now())).await;
    let export = h.engine.export_member(&m).await.unwrap();
    let notes: Vec<_> = export
        .events
        .iter()
        .filter_map(|e| e.note.clone())
        .collect();
    assert_eq!(
        notes,
        vec![
            RevealedNote::Erased,
            RevealedNote::Present {
                text: "second complaint".into()
            }
        ]
    );
    let second = erase(&h, &m).await;
    let third = erase(&h, &m).await;
    // Then the second destroyed the new key, the third found nothing left; all are recorded
    assert_eq!((second.keys_destroyed, third.keys_destroyed), (1, 0));
    let export = h.engine.export_member(&m).await.unwrap();
    assert!(
        export
            .events
            .iter()
            .filter_map(|e| e.note.clone())
            .all(|n| n == RevealedNote::Erased)
    );
    assert_eq!(export.erasures.len(), 3);
}

#[tokio::test]
async fn erasing_or_exporting_an_unknown_member_is_refused_and_records_nothing() {
    let h = Harness::new().await;
    let ghost = member("ghost");
    let head = h.store.head_position().await.unwrap();
    let erase = h
        .engine
        .erase_member(&ghost, reason(), operator(), &CommandContext::new())
        .await;
    assert!(
        matches!(erase, Err(EngineError::UnknownMember(_))),
        "{erase:?}"
    );
    let export = h.engine.export_member(&ghost).await;
    assert!(
        matches!(export, Err(EngineError::UnknownMember(_))),
        "{export:?}"
    );
    assert_eq!(h.store.head_position().await.unwrap(), head);
}

#[tokio::test]
async fn a_note_from_before_notes_were_sealed_stays_readable_and_is_reported_as_not_erasable() {
    // Given a member whose history holds a version 1 adjustment, its note in clear
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    let v1 = include_str!("../../../loyalty-core/tests/golden/PointsAdjusted/v1.json");
    append_written_elsewhere(&h, &m, "PointsAdjusted", 1, v1.as_bytes()).await;
    let plain: serde_json::Value = serde_json::from_str(v1).unwrap();
    let text = plain["note"].as_str().unwrap().to_owned();
    // When it is erased
    let report = erase(&h, &m).await;
    // Then the report says the old note could not be erased, and the export still shows it
    assert_eq!((report.sealed_notes, report.plain_notes), (0, 1));
    let export = h.engine.export_member(&m).await.unwrap();
    assert_eq!(
        export.events.last().unwrap().note,
        Some(RevealedNote::Present { text })
    );
}

#[tokio::test]
async fn a_note_is_refused_rather_than_written_in_clear_when_no_key_vault_is_configured() {
    // Given a store that keeps no key vault (a wrapper that does not forward one)
    let store = Arc::new(FaultyStore::default());
    let clock = Arc::new(loyalty_engine::ManualClock::new(t0()));
    let engine = start(store.clone(), program(), clock, options()).await;
    let m = member("alice");
    engine.execute(enroll(&m, t0())).await.unwrap();
    let head = store.head_position().await.unwrap();
    // When an adjustment with a note is sent
    let refused = engine.execute(adjust(&m, "ADJ1", 40, NOTE, t0())).await;
    // Then it is refused, and nothing is appended
    assert!(
        matches!(refused, Err(EngineError::NoKeyVault)),
        "{refused:?}"
    );
    assert_eq!(store.head_position().await.unwrap(), head);
}

#[tokio::test]
async fn a_member_export_past_its_limit_is_refused_with_the_limit() {
    let h = Harness::with(
        program(),
        loyalty_engine::EngineOptions {
            max_export_events: 2,
            ..options()
        },
    )
    .await;
    let m = h.enroll("alice").await;
    h.run(purchase(&m, "T1", 10, h.now())).await;
    h.run(purchase(&m, "T2", 10, h.now())).await;
    let export = h.engine.export_member(&m).await;
    assert!(
        matches!(export, Err(EngineError::LimitExceeded { limit: 2, .. })),
        "{export:?}"
    );
}

#[tokio::test]
async fn a_note_sealed_under_a_key_the_vault_never_had_is_an_error_not_an_erasure() {
    // Given a note sealed under the store's vault, read through another (empty) vault, as a
    // server pointed at the wrong key file would
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(adjust(&m, "ADJ1", 40, NOTE, h.now())).await;
    let elsewhere = start(
        h.store.clone(),
        program(),
        h.clock.clone(),
        loyalty_engine::EngineOptions {
            vault: Some(Arc::new(loyalty_store::vault::MemoryVault::new())),
            ..options()
        },
    )
    .await;
    // When its export is asked for
    let export = elsewhere.export_member(&m).await;
    // Then it fails, naming the key file, instead of showing the note as erased
    let Err(EngineError::Corrupt(why)) = export else {
        panic!("{export:?}")
    };
    assert!(why.contains("key_file"), "{why}");
}

#[tokio::test]
async fn an_erasure_goes_through_an_event_this_build_cannot_read() {
    // Given a member with a sealed note and, after it, an event of a newer release
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(adjust(&m, "ADJ1", 40, NOTE, h.now())).await;
    append_written_elsewhere(
        &h,
        &m,
        "GoodwillGranted",
        schema::CURRENT_SCHEMA_VERSION + 1,
        br#"{"note": {"sealed": {"key_id": "k_x"}}, "v3": 1}"#,
    )
    .await;
    // When the member's data is erased
    let report = erase(&h, &m).await;
    // Then the keys are destroyed and the erasure is recorded, the newer event counted too
    assert_eq!((report.keys_destroyed, report.sealed_notes), (1, 2));
}

#[tokio::test]
async fn an_adjustment_without_a_note_needs_no_key() {
    let h = Harness::new().await;
    let m = h.enroll("alice").await;
    h.run(adjust(&m, "ADJ1", 40, "", h.now())).await;
    let vault = h.store.key_vault().unwrap();
    // No key was made for alice: erasing finds none.
    assert_eq!(
        vault
            .erase(m.as_str(), h.now())
            .await
            .unwrap()
            .keys_destroyed,
        0
    );
}
