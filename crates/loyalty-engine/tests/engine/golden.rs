//! Golden files of what the engine stores beside every event: its metadata document
//! (`tests/golden/EventMetadata/v1.json`), written once (`UPDATE_GOLDEN=1 cargo test -p
//! loyalty-engine --test engine golden` writes a missing file, never rewrites one) and read by
//! every later build. The member events themselves have theirs in loyalty-core.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use loyalty_engine::EventMetadata;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/EventMetadata")
        .join(name)
}

/// What `v1.json` holds. The rules version is a fixed value: its meaning changed over time (a
/// label, then a hash of the program), and old documents keep whatever they held.
fn expected_v1() -> EventMetadata {
    EventMetadata {
        client_id: "T-2026-0001".into(),
        command: "RecordPurchase".into(),
        correlation_id: Some("req-7f3a".into()),
        causation_id: Some("evt-1234".into()),
        occurred_at: Utc.with_ymd_and_hms(2026, 3, 28, 9, 15, 0).unwrap(),
        recorded_at: Utc.with_ymd_and_hms(2026, 3, 28, 9, 15, 2).unwrap()
            + chrono::Duration::milliseconds(250),
        rules_version: "golden-rules-1".into(),
        actor: Some("till-3".into()),
    }
}

fn read(name: &str) -> EventMetadata {
    let path = golden(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes v1.json)", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
}

#[test]
fn the_v1_metadata_golden_file_decodes_into_the_metadata_it_was_written_from() {
    let path = golden("v1.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") && !path.exists() {
        let text = serde_json::to_string_pretty(&expected_v1()).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
    }
    assert_eq!(read("v1.json"), expected_v1());
}

#[test]
fn metadata_with_a_field_a_newer_release_added_still_decodes() {
    // A newer release may add a field: this build reads what it knows and leaves the rest.
    assert_eq!(read("v1.with-a-newer-field.json"), expected_v1());
}

#[test]
fn metadata_without_the_optional_fields_decodes_with_none() {
    let minimal = read("v1.minimal.json");
    assert_eq!(minimal.correlation_id, None);
    assert_eq!(minimal.causation_id, None);
    assert_eq!(minimal.actor, None);
    assert_eq!(minimal.recorded_at, expected_v1().recorded_at);
}
