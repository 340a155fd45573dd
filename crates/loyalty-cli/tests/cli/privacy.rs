//! `loyalty member export` and `loyalty member erase` as a data-protection officer runs them:
//! the real binary on an embedded store holding a support note about a member. The note is
//! shown by the export, never written to the store's files in the clear, and reads `erased`
//! once the member's personal data is erased.

use crate::offline;

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use loyalty_core::{
    Adjust, AdjustmentId, Command, Enroll, MemberId, OperatorId, Points, Program, ReasonCode,
};
use loyalty_engine::{Engine, EngineOptions, RandomIds, SystemClock};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};
use offline::{loyalty, repo_root, text};
use serde_json::{Value, json};

/// A note with personal data in it, as support staff write them.
const NOTE: &str = "Ms Dupont called from 06 12 34 56 78: card lost on the metro";

/// Enrolls `m1` and adjusts their points with [`NOTE`], on the store the binary will use.
async fn store_with_a_note(dir: &Path) {
    let store = SqliteStore::open(&dir.join("store.sqlite"), SqliteOptions::default())
        .await
        .expect("the store opens");
    let text = std::fs::read_to_string(repo_root().join("config/program.toml")).unwrap();
    let engine = Engine::start(
        Arc::new(store),
        Arc::new(Program::from_toml_str(&text).unwrap()),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        EngineOptions::default(),
    )
    .await
    .expect("the engine starts");
    let member = MemberId::parse("m1").unwrap();
    let now = Utc::now();
    for command in [
        Command::Enroll(Enroll {
            member_id: member.clone(),
            referrer: None,
            occurred_at: now,
        }),
        Command::Adjust(Adjust {
            member_id: member.clone(),
            adjustment_id: AdjustmentId::parse("adj-1").unwrap(),
            points: Points::new(250),
            reason_code: ReasonCode::parse("lost-card").unwrap(),
            note: NOTE.into(),
            operator: OperatorId::parse("support-1").unwrap(),
            occurred_at: now,
        }),
    ] {
        engine.execute(command).await.expect("the command applies");
    }
    engine.shutdown().await;
}

/// The store's files (the database, its write-ahead log and shared memory, and the read
/// models' snapshots beside it) do not hold the note's text, nor any of its distinctive words.
#[track_caller]
fn assert_store_files_hold_no_plaintext(dir: &Path, when: &str) {
    let mut files = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("store.sqlite")
        })
        .collect();
    while let Some(path) = paths.pop() {
        if path.is_dir() {
            paths.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let name = path.display();
        // The write-ahead log and shared memory go when the last connection closes: a file
        // listed a moment ago may be gone, with nothing left to hold.
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{when}: reading {name}: {e}"),
        };
        files += 1;
        for needle in [NOTE, "Dupont", "06 12 34 56 78"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{when}: {name} holds {needle:?}"
            );
        }
    }
    assert!(files >= 1, "{when}: no store file in {}", dir.display());
}

fn json_of(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(stdout)))
}

/// The note of the export's `PointsAdjusted` event.
fn adjustment_note(export: &Value) -> Value {
    export["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event_type"] == "PointsAdjusted")
        .unwrap_or_else(|| panic!("no PointsAdjusted in {export}"))["note"]
        .clone()
}

#[tokio::test]
async fn the_export_shows_the_note_until_the_erasure_and_the_store_never_holds_its_text() {
    // Given a store holding an adjustment with a note about the member
    let dir = tempfile::tempdir().unwrap();
    store_with_a_note(dir.path()).await;
    assert_store_files_hold_no_plaintext(dir.path(), "after the adjustment");

    // When the member is exported, then the note's text is shown
    let out = loyalty(dir.path(), &["member", "export", "m1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export = json_of(&out.stdout);
    assert_eq!(export["member_id"], "m1");
    assert_eq!(
        adjustment_note(&export),
        json!({"status": "present", "text": NOTE})
    );
    assert_eq!(export["erasures"], json!([]));
    let balance = export["member"]["balance"]["balance"].clone();
    assert_eq!(balance, 250 + 50, "{export}");
    // And written to a file with --out, the same
    let file = dir.path().join("m1-export.json");
    let out = loyalty(
        dir.path(),
        &["member", "export", "m1", "--out", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let written = json_of(&std::fs::read(&file).unwrap());
    assert_eq!(written["events"], export["events"]);
    assert_store_files_hold_no_plaintext(dir.path(), "after the exports");

    // When the member's personal data is erased, then the report says one key and one note
    let out = loyalty(
        dir.path(),
        &[
            "member",
            "erase",
            "m1",
            "--reason",
            "member-request",
            "--operator",
            "dpo-1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json_of(&out.stdout);
    assert_eq!(report["member_id"], "m1");
    assert_eq!(report["keys_destroyed"], 1, "{report}");
    assert_eq!(report["sealed_notes"], 1, "{report}");
    assert_store_files_hold_no_plaintext(dir.path(), "after the erasure");

    // And the export shows the note erased, the erasure recorded, the balance unchanged
    let out = loyalty(dir.path(), &["member", "export", "m1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export = json_of(&out.stdout);
    assert_eq!(adjustment_note(&export), json!({"status": "erased"}));
    let erasures = export["erasures"].as_array().expect("erasures");
    assert_eq!(erasures.len(), 1, "{export}");
    assert_eq!(erasures[0]["reason_code"], "member-request");
    assert_eq!(erasures[0]["operator"], "dpo-1");
    assert_eq!(erasures[0]["position"], report["position"]);
    assert_eq!(export["member"]["balance"]["balance"], balance);
    assert_store_files_hold_no_plaintext(dir.path(), "after the last export");
}

/// Runs the binary with `args` and checks that it fails with `needle` in its error.
fn refused_saying(dir: &Path, args: &[&str], needle: &str) {
    let out = loyalty(dir, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
}

#[tokio::test]
async fn an_unknown_member_or_a_bad_reason_is_an_error_and_erases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    store_with_a_note(dir.path()).await;

    refused_saying(dir.path(), &["member", "export", "nobody"], "nobody");
    refused_saying(
        dir.path(),
        &["member", "erase", "nobody", "--reason", "member-request"],
        "nobody",
    );
    refused_saying(
        dir.path(),
        &["member", "erase", "m1", "--reason", "not a code!"],
        "--reason",
    );

    // Without --reason the command line itself is refused
    let out = loyalty(dir.path(), &["member", "erase", "m1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--reason"),
        "{}",
        text(&out.stderr)
    );

    // The note is still there to read
    let out = loyalty(dir.path(), &["member", "export", "m1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        adjustment_note(&json_of(&out.stdout)),
        json!({"status": "present", "text": NOTE})
    );
}

#[tokio::test]
async fn a_key_file_beside_a_store_that_keeps_its_own_keys_is_refused() {
    // Given a store holding a note, its keys in its own file
    let dir = tempfile::tempdir().unwrap();
    store_with_a_note(dir.path()).await;
    // When a command is run with a separate key file configured as well
    let keys = dir.path().join("keys.sqlite");
    let out = offline::loyalty_with(
        dir.path(),
        &["member", "export", "m1"],
        &[("LOYALTY_PRIVACY__KEY_FILE", &keys)],
    );
    // Then it is refused (two vaults would split a member's keys), and no key file is made
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("key_file"),
        "{}",
        text(&out.stderr)
    );
    assert!(!keys.exists());
}
