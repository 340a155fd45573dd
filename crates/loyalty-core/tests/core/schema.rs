//! The stored schema: every event round-trips, and documents written by every version stay
//! readable. The golden files under `tests/golden/<Type>/v<N>.json` are the stored documents of
//! every event type at every schema version it has, written once (`UPDATE_GOLDEN=1 cargo test
//! -p loyalty-core --test core schema::` writes the missing ones and never rewrites a file) and read
//! by every later build.

use crate::support;

use std::path::{Path, PathBuf};

use loyalty_core::schema;
use loyalty_core::*;
use support::*;

/// A history touching every event type. The golden files `v1.json` were written from it (the
/// first event of each type): change it only by adding commands at the end, or the golden
/// files no longer match what it decides.
fn full_history() -> Vec<Event> {
    given([
        enroll_referred_by("R9"),
        purchase("T1", "2026-01-10T10:00:00Z", "250"),
        refund_lines("F1", "T1", "2026-01-11T10:00:00Z", &[(0, "10")]),
        // Takes T1 below the referral's minimum: the referral is revoked.
        refund_lines("F2", "T1", "2026-01-12T10:00:00Z", &[(0, "235")]),
        redeem("R1", "2026-02-01T10:00:00Z", 40),
        cancel("R1", "2026-02-02T10:00:00Z"),
        activity("A1", "survey", "2026-02-03T10:00:00Z"),
        activity("A2", "survey", "2026-02-04T10:00:00Z"),
        adjust("J1", "2026-02-05T10:00:00Z", 40),
        adjust("J2", "2026-02-05T11:00:00Z", -30),
        goodwill("C1", "2026-02-06T10:00:00Z", 15),
        win_back("2026-06-06T10:00:00Z", None, 120),
        credit_referral("N1", "2026-02-07T10:00:00Z"),
        revoke_referral("N1", "2026-02-07T11:00:00Z"),
        suspend("2026-02-08T10:00:00Z"),
        reinstate("2026-02-09T10:00:00Z"),
        notify_expiry("2027-01-17T23:00:00Z"),
        expire("2027-03-01T00:00:00Z"),
        open_balance("B1", 100, Some("2027-08-01T00:00:00Z")),
        review("2028-01-10T10:00:00Z"),
        close("2028-02-01T10:00:00Z"),
    ])
    .history()
    .to_vec()
}

#[test]
fn every_event_type_round_trips_through_the_stored_schema() {
    let history = full_history();
    let mut seen: Vec<&str> = history.iter().map(Event::event_type).collect();
    seen.sort();
    seen.dedup();
    let mut all = schema::EVENT_TYPES.to_vec();
    all.sort();
    assert_eq!(seen, all, "the history must cover every event type");
    for event in &history {
        let stored = schema::encode(event);
        assert_eq!(stored.event_type, event.event_type());
        assert_eq!(
            Some(stored.schema_version),
            schema::newest_version(stored.event_type)
        );
        let back = schema::decode(stored.event_type, stored.schema_version, &stored.data)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", stored.event_type));
        assert_eq!(&back, event);
    }
}

#[test]
fn a_state_rebuilt_from_stored_events_equals_the_original() {
    let history = full_history();
    let decoded: Vec<Event> = history
        .iter()
        .map(|e| {
            let s = schema::encode(e);
            schema::decode(s.event_type, s.schema_version, &s.data).unwrap()
        })
        .collect();
    assert_eq!(
        MemberState::from_events(&decoded),
        MemberState::from_events(&history)
    );
}

#[test]
fn money_is_stored_as_strings_never_as_floats() {
    let history = full_history();
    let purchase = history
        .iter()
        .find(|e| matches!(e, Event::PurchaseRecorded(_)))
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&schema::encode(purchase).data).unwrap();
    assert_eq!(json["lines"][0]["amount"], "250");
    assert_eq!(json["eligible_amount"], "250");
    assert_eq!(json["points"], 250);
}

/// Written by hand as v1 stored it: this must stay readable for as long as history exists.
const PURCHASE_V1: &str = include_str!("../golden/PurchaseRecorded/v1.hand-written.json");

#[test]
fn a_hand_written_v1_purchase_decodes() {
    let event = schema::decode("PurchaseRecorded", 1, PURCHASE_V1.as_bytes()).unwrap();
    let Event::PurchaseRecorded(p) = event else {
        panic!("wrong variant");
    };
    assert_eq!(p.transaction_id.as_str(), "T-2026-0001");
    assert_eq!(p.lines[0].amount, d("3.40"));
    assert_eq!(p.lines[0].rules[1].rule, "campaign:pastry-x2");
    assert_eq!(p.points, Points::new(6));
    let credit = p.credit.unwrap();
    assert_eq!(credit.expiry, LotExpiry::At(t("2027-04-30T22:00:00Z")));
    // A field added after v1 was first written (activity_deadline) defaults when absent.
    assert_eq!(credit.activity_deadline, None);
}

#[test]
fn a_hand_written_v1_redemption_decodes() {
    let doc = include_str!("../golden/PointsRedeemed/v1.hand-written.json");
    let Event::PointsRedeemed(r) = schema::decode("PointsRedeemed", 1, doc.as_bytes()).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(r.draws.len(), 2);
    assert_eq!(r.reward_id.unwrap().as_str(), "free-latte");
}

#[test]
fn a_reinstatement_recorded_before_reinstatements_had_reasons_still_decodes() {
    let old = include_str!("../golden/MemberReinstated/v1.without-reason.json");
    let Event::MemberReinstated(r) = schema::decode("MemberReinstated", 1, old.as_bytes()).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(r.reason_code, None);
    let new = r#"{"reason_code": "appeal-upheld", "operator": "alice",
        "occurred_at": "2026-05-01T12:00:00Z"}"#;
    let Event::MemberReinstated(r) = schema::decode("MemberReinstated", 1, new.as_bytes()).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(r.reason_code.unwrap().as_str(), "appeal-upheld");
}

/// An expiry notice as v1 stores it: this must stay readable for as long as history exists
/// (the webhooks read it to send `points.expiring`).
const EXPIRY_NOTIFIED_V1: &str = include_str!("../golden/ExpiryNotified/v1.hand-written.json");

#[test]
fn a_hand_written_v1_expiry_notice_decodes_and_encodes_back_to_the_same_document() {
    let event = schema::decode("ExpiryNotified", 1, EXPIRY_NOTIFIED_V1.as_bytes()).unwrap();
    let Event::ExpiryNotified(notice) = &event else {
        panic!("wrong variant");
    };
    assert_eq!(notice.occurred_at, t("2027-01-17T23:00:00.250Z"));
    assert_eq!(
        notice.lots,
        vec![
            NotifiedLot {
                lot_id: lot("welcome:M1"),
                points: p(50),
                expires_at: t("2027-01-31T23:00:00Z"),
            },
            NotifiedLot {
                lot_id: lot("purchase:S1:T1"),
                points: p(70),
                expires_at: t("2027-01-31T23:00:00Z"),
            },
        ]
    );
    let stored = schema::encode(&event);
    assert_eq!(stored.event_type, "ExpiryNotified");
    let written: serde_json::Value = serde_json::from_slice(&stored.data).unwrap();
    let expected: serde_json::Value = serde_json::from_str(EXPIRY_NOTIFIED_V1).unwrap();
    assert_eq!(written, expected);
}

#[test]
fn an_unknown_type_or_version_is_its_own_error() {
    assert!(matches!(
        schema::decode("PointsTeleported", 1, b"{}"),
        Err(SchemaError::UnknownEventType { .. })
    ));
    let newer = schema::CURRENT_SCHEMA_VERSION + 1;
    assert!(matches!(
        schema::decode("PointsRedeemed", newer, b"{}"),
        Err(SchemaError::UnknownVersion { version, .. }) if version == newer
    ));
    assert!(matches!(
        schema::decode("PointsRedeemed", 0, b"{}"),
        Err(SchemaError::UnknownVersion { version: 0, .. })
    ));
}

#[test]
fn a_version_past_the_newest_is_told_apart_from_a_foreign_events_and_an_unknown_types() {
    // Given the newest version this build reads of a known type
    let newest = schema::newest_version("PointsRedeemed").unwrap();
    // Then only a greater version of a known type is a newer writer's
    assert!(schema::is_newer("PointsRedeemed", newest + 1));
    assert!(!schema::is_newer("PointsRedeemed", newest));
    assert!(
        !schema::is_newer("PointsRedeemed", 0),
        "version 0: a foreign event"
    );
    assert!(
        !schema::is_newer("PointsTeleported", 99),
        "an unknown type is unreadable"
    );
    assert_eq!(schema::newest_version("PointsTeleported"), None);
}

// ---- golden files ----

/// The `rules_version` written into the golden files: the decisions' rules version changes
/// meaning over time (a label, then a hash of the program), so the files hold a fixed value
/// and the expected events are given the same one.
const GOLDEN_RULES_VERSION: &str = "golden-rules-1";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The stored document of `event`, with the fixed rules version.
fn golden_document(event: &Event) -> serde_json::Value {
    let mut document: serde_json::Value =
        serde_json::from_slice(&schema::encode(event).data).unwrap();
    if let Some(version) = document.get_mut("rules_version") {
        *version = serde_json::Value::String(GOLDEN_RULES_VERSION.to_owned());
    }
    document
}

/// `event` as its golden file must decode: the same, with the fixed rules version.
fn expected_from_golden(event: &Event) -> Event {
    let document = serde_json::to_vec(&golden_document(event)).unwrap();
    let version = schema::newest_version(event.event_type()).unwrap();
    schema::decode(event.event_type(), version, &document).unwrap()
}

/// The stored document of `event` without its fingerprint.
fn without_fingerprint(event: &Event) -> serde_json::Value {
    let mut document = golden_document(event);
    document.as_object_mut().unwrap().remove("fingerprint");
    document
}

/// The first event of each type in the history.
fn first_of_each_type() -> Vec<Event> {
    let mut firsts: Vec<Event> = Vec::new();
    for event in full_history() {
        if !firsts.iter().any(|e| e.event_type() == event.event_type()) {
            firsts.push(event);
        }
    }
    firsts
}

/// With `UPDATE_GOLDEN=1`: writes the golden file of every type at the version `encode`
/// writes, when it does not exist yet. An existing file is history: never rewritten.
fn write_missing_golden_files() {
    if std::env::var_os("UPDATE_GOLDEN").is_none_or(|v| v != "1") {
        return;
    }
    for event in first_of_each_type() {
        let stored = schema::encode(&event);
        let dir = golden_dir().join(stored.event_type);
        let path = dir.join(format!("v{}.json", stored.schema_version));
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let text = serde_json::to_string_pretty(&golden_document(&event)).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
        eprintln!("wrote {}", path.display());
    }
}

/// Every golden file: (type, version, file name, document).
fn golden_files() -> Vec<(String, u32, String, String)> {
    let mut files = Vec::new();
    for dir in std::fs::read_dir(golden_dir()).unwrap() {
        let dir = dir.unwrap().path();
        let event_type = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let version = name
                .strip_prefix('v')
                .and_then(|rest| rest.split('.').next())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("{name}: golden files are named v<N>[.what].json"));
            files.push((
                event_type.clone(),
                version,
                name,
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    files.sort();
    files
}

#[test]
fn every_event_type_has_a_golden_file_at_every_schema_version_it_has() {
    write_missing_golden_files();
    let files = golden_files();
    let mut missing = Vec::new();
    for event_type in schema::EVENT_TYPES {
        let newest = schema::newest_version(event_type).unwrap();
        for version in 1..=newest {
            let name = format!("v{version}.json");
            if !files
                .iter()
                .any(|(t, _, n, _)| t == event_type && *n == name)
            {
                missing.push(format!("{event_type}/{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no golden file for {missing:?}: run UPDATE_GOLDEN=1 cargo test -p loyalty-core --test core schema::"
    );
    for (event_type, version, name, _) in &files {
        assert!(
            schema::EVENT_TYPES.contains(&event_type.as_str()),
            "golden file {event_type}/{name} is of no known type"
        );
        assert!(
            *version <= schema::newest_version(event_type).unwrap(),
            "golden file {event_type}/{name} is newer than this build"
        );
    }
}

#[test]
fn every_golden_file_decodes_with_todays_code_into_the_event_it_was_written_from() {
    write_missing_golden_files();
    let expected = first_of_each_type();
    let mut checked = 0;
    for (event_type, version, name, document) in golden_files() {
        let decoded = schema::decode(&event_type, version, document.as_bytes())
            .unwrap_or_else(|e| panic!("golden file {event_type}/{name} does not decode: {e}"));
        assert_eq!(decoded.event_type(), event_type, "{event_type}/{name}");
        // `v<N>.json` was written from the history; the others are checked one by one below.
        if name == format!("v{version}.json") {
            let original = expected
                .iter()
                .find(|e| e.event_type() == event_type)
                .unwrap_or_else(|| panic!("the history has no {event_type}"));
            let expected = expected_from_golden(original);
            if version == schema::newest_version(&event_type).unwrap() {
                assert_eq!(decoded, expected, "golden file {event_type}/{name}");
            } else {
                // An older document keeps the fingerprint it was written with; the formula may
                // have changed since (adjustments and goodwill left the note out when notes
                // were sealed), and the core still recognises the old one on a retry.
                assert_eq!(
                    without_fingerprint(&decoded),
                    without_fingerprint(&expected),
                    "golden file {event_type}/{name}"
                );
            }
            checked += 1;
        }
    }
    let versions: u32 = schema::EVENT_TYPES
        .iter()
        .map(|t| schema::newest_version(t).unwrap())
        .sum();
    assert_eq!(checked, versions as usize);
}

#[test]
fn golden_documents_at_a_types_newest_version_pass_the_upcast_unchanged() {
    for (event_type, version, name, document) in golden_files() {
        let document: serde_json::Value = serde_json::from_str(&document).unwrap();
        let upcast = schema::upcast(&event_type, version, document.clone())
            .unwrap_or_else(|e| panic!("{event_type}/{name}: {e}"));
        if version == schema::newest_version(&event_type).unwrap() {
            assert_eq!(upcast, document, "{event_type}/{name}");
        }
    }
}

#[test]
fn a_golden_document_at_the_version_encode_writes_is_what_encode_writes_again() {
    for (event_type, version, name, document) in golden_files() {
        if Some(version) != schema::newest_version(&event_type)
            || name != format!("v{version}.json")
        {
            continue;
        }
        let decoded = schema::decode(&event_type, version, document.as_bytes()).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&schema::encode(&decoded).data).unwrap();
        let golden: serde_json::Value = serde_json::from_str(&document).unwrap();
        assert_eq!(
            written, golden,
            "{event_type}/{name}: encode writes another document"
        );
    }
}

#[test]
fn the_upcast_refuses_an_unknown_type_or_a_version_it_does_not_have() {
    let doc = serde_json::json!({});
    assert!(matches!(
        schema::upcast("PointsTeleported", 1, doc.clone()),
        Err(SchemaError::UnknownEventType { .. })
    ));
    assert!(matches!(
        schema::upcast(
            "PointsExpired",
            schema::CURRENT_SCHEMA_VERSION + 1,
            doc.clone()
        ),
        Err(SchemaError::UnknownVersion { .. })
    ));
    assert!(matches!(
        schema::upcast("PointsExpired", 0, doc),
        Err(SchemaError::UnknownVersion { version: 0, .. })
    ));
}

#[test]
fn a_malformed_document_is_refused_with_the_reason() {
    let bad_id = PURCHASE_V1.replace("T-2026-0001\"", "T 2026 0001\"");
    let err = schema::decode("PurchaseRecorded", 1, bad_id.as_bytes()).unwrap_err();
    assert!(matches!(err, SchemaError::Malformed { .. }), "{err:?}");
    let float = PURCHASE_V1.replace(
        "\"points\": 6,\n  \"eligible",
        "\"points\": 6.5,\n  \"eligible",
    );
    assert!(schema::decode("PurchaseRecorded", 1, float.as_bytes()).is_err());
}

#[test]
fn a_sealed_note_is_stored_as_an_object_and_decodes_sealed() {
    // Given a goodwill event whose note the engine sealed
    let golden = std::fs::read_to_string(golden_dir().join("GoodwillGranted/v2.sealed.json"))
        .expect("the sealed golden file");
    // When today's code reads it
    let event = schema::decode("GoodwillGranted", 2, golden.as_bytes()).unwrap();
    // Then the note is still sealed (the core never opens it), and writes back the same
    let Event::GoodwillGranted(g) = &event else {
        panic!("{event:?}")
    };
    assert_eq!(
        g.note,
        Note::Sealed(SealedNote {
            key_id: "k_00112233445566778899aabbccddeeff".into(),
            nonce: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX".into(),
            ciphertext: "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ".into(),
        })
    );
    let written: serde_json::Value = serde_json::from_slice(&schema::encode(&event).data).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&golden).unwrap();
    assert_eq!(written, expected);
    assert!(!golden.contains("cold croissant"));
}

#[test]
fn a_retry_of_goodwill_recorded_with_the_fingerprint_from_before_notes_were_sealed_is_a_replay() {
    // Given a member whose goodwill was recorded by an earlier release (schema v1, whose
    // fingerprint included the note)
    let v1 = std::fs::read(golden_dir().join("GoodwillGranted/v1.json")).unwrap();
    let recorded = schema::decode("GoodwillGranted", 1, &v1).unwrap();
    let at = t("2026-02-06T10:00:00Z");
    let program = program();
    let mut state = MemberState::default();
    let enrolled_at = match enroll() {
        Command::Enroll(e) => e.occurred_at,
        other => panic!("{other:?}"),
    };
    for event in decide(&state, &enroll(), &program, ServerTime::at(enrolled_at))
        .unwrap()
        .events
    {
        evolve(&mut state, &event);
    }
    evolve(&mut state, &recorded);
    // When the till sends the same goodwill again
    let retry = decide(
        &state,
        &goodwill("C1", "2026-02-06T10:00:00Z", 15),
        &program,
        ServerTime::at(at),
    )
    .unwrap();
    // Then it is a replay, not a conflict
    assert!(retry.replayed && retry.events.is_empty());
}
