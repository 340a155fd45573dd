//! The auditors' tools on the log, as an operator and an auditor run them: the real binary on
//! an embedded store in a temporary directory. A key is made, an anchor signed and kept, and
//! then one byte of one stored member event is changed in the SQLite file behind the store's
//! back: `verify --chain` names that event and the anchor no longer holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `loyalty ARGS` in `dir` (on the SQLite store there unless `env` names another),
/// with `env` on top of the shipped settings.
fn loyalty_env(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loyalty"))
        .arg("--config")
        .arg(repo_root().join("config/loyalty.toml"))
        .args(args)
        .current_dir(dir)
        .env("LOYALTY_PROGRAM", repo_root().join("config/program.toml"))
        .env("LOYALTY_STORE__PATH", dir.join("store.sqlite"))
        .env("LOYALTY_SNAPSHOTS__EVERY_EVENTS", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("the loyalty binary runs")
}

/// Runs `loyalty ARGS` on the store in `dir`, signing anchors with `key` when given.
fn loyalty_with_key(dir: &Path, key: Option<&Path>, args: &[&str]) -> Output {
    let env: Vec<_> = key
        .map(|k| ("LOYALTY_AUDIT__SIGNING_KEY_FILE", path(k).to_owned()))
        .into_iter()
        .collect();
    loyalty_env(dir, &env, args)
}

fn loyalty(dir: &Path, args: &[&str]) -> Output {
    loyalty_with_key(dir, None, args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `audit keygen FILE`: the public key it prints.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(name);
    let out = loyalty(dir, &["audit", "keygen", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = text(&out.stdout).trim().to_owned();
    assert_eq!(public.len(), 64, "{public}");
    assert!(public.bytes().all(|b| b.is_ascii_hexdigit()), "{public}");
    (file, public)
}

/// Three members, each with two purchases, imported into the store (through the engine, as
/// any write: the store chains every event).
fn history(dir: &Path) {
    history_in(dir, &[]);
}

fn history_in(dir: &Path, env: &[(&str, String)]) {
    let mut csv = concat!(
        "type,member_id,occurred_at,store,transaction_id,amount,category,refund_id,points,",
        "balance_id,expires_at\n"
    )
    .to_owned();
    for m in ["ana", "ben", "cy"] {
        csv.push_str(&format!("member,{m},2025-01-10,,,,,,,,\n"));
        for (i, day) in ["2025-02-02", "2025-03-20"].iter().enumerate() {
            csv.push_str(&format!(
                "purchase,{m},{day},paris-opera,{m}-{i},24.50,pastry,,,,\n"
            ));
        }
    }
    let file = dir.join("history.csv");
    std::fs::write(&file, csv).unwrap();
    let out = loyalty_env(dir, env, &["import", path(&file), "--points", "none"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `anchor --out FILE` with `key`: the anchor as written.
fn anchor(dir: &Path, key: &Path, name: &str) -> (PathBuf, Value) {
    let file = dir.join(name);
    let out = loyalty_with_key(dir, Some(key), &["anchor", "--out", path(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let anchor: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (file, anchor)
}

/// Changes one byte of the stored data of `stream`'s event at `revision` (a digit becomes
/// another digit, so the JSON still reads), directly in the SQLite file; returns the event's
/// position.
fn change_one_byte(store: &Path, stream: &str, revision: i64) -> i64 {
    let db = rusqlite::Connection::open(store).expect("the store file opens");
    let (position, mut data): (i64, Vec<u8>) = db
        .query_row(
            "SELECT position, data FROM events WHERE stream = ?1 AND revision = ?2",
            rusqlite::params![stream, revision],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the event is stored");
    let digit = data
        .iter()
        .position(u8::is_ascii_digit)
        .expect("a digit in the event");
    data[digit] = if data[digit] == b'9' {
        b'8'
    } else {
        data[digit] + 1
    };
    let changed = db
        .execute(
            "UPDATE events SET data = ?1 WHERE position = ?2",
            rusqlite::params![data, position],
        )
        .unwrap();
    assert_eq!(changed, 1);
    position
}

#[test]
fn a_key_an_anchor_and_its_verification_on_an_untouched_log() {
    let dir = tempfile::tempdir().unwrap();
    // Given a key: written readable by its owner only, and never over an existing file
    let (key, public) = keygen(dir.path(), "anchor-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let before = std::fs::read(&key).unwrap();
    let again = loyalty(dir.path(), &["audit", "keygen", path(&key)]);
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key was overwritten"
    );
    // And a history
    history(dir.path());
    // When an anchor is signed
    let (file, anchor) = anchor(dir.path(), &key, "anchor.json");
    assert_eq!(anchor["format"], "loyalty-anchor-v1");
    assert_eq!(anchor["public_key"], public.as_str());
    assert!(anchor["events"].as_u64().unwrap() >= 9, "{anchor}");
    // Then the chain verifies, the anchor holds, and the read models still verify
    let out = loyalty(dir.path(), &["verify", "--chain"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["chain"]["verified"], true, "{report}");
    let out = loyalty(
        dir.path(),
        &["verify", "--anchor", path(&file), "--public-key", &public],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the anchor holds"));
    let out = loyalty(dir.path(), &["verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // And anchor refuses to run without a key, and to overwrite an anchor kept
    let out = loyalty(dir.path(), &["anchor"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("signing_key_file"),
        "{}",
        text(&out.stderr)
    );
    let out = loyalty_with_key(dir.path(), Some(&key), &["anchor", "--out", path(&file)]);
    assert!(!out.status.success());
}

#[test]
fn one_byte_changed_in_a_stored_member_event_is_named_and_the_anchor_fails() {
    let dir = tempfile::tempdir().unwrap();
    // Given a history and an anchor of it
    let (key, public) = keygen(dir.path(), "anchor-key.pem");
    history(dir.path());
    let (file, _) = anchor(dir.path(), &key, "anchor.json");
    // When one byte of ben's second event is changed in the SQLite file
    let position = change_one_byte(&dir.path().join("store.sqlite"), "member-ben", 1);
    // Then verify --chain fails, naming that event
    let out = loyalty(dir.path(), &["verify", "--chain"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let errors = text(&out.stderr);
    assert!(
        errors.contains(&format!("position {position}/{position}"))
            && errors.contains("stream member-ben")
            && errors.contains("revision 1"),
        "{errors}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mismatch = &report["chain"]["mismatch"];
    assert_eq!(mismatch["stream"], "member-ben", "{report}");
    assert_eq!(mismatch["revision"], 1);
    assert_eq!(mismatch["position"], format!("{position}/{position}"));
    // And the anchor taken before no longer holds
    let out = loyalty(
        dir.path(),
        &["verify", "--anchor", path(&file), "--public-key", &public],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let errors = text(&out.stderr);
    assert!(errors.contains("has changed"), "{errors}");
    assert!(errors.contains("member-ben"), "{errors}");
    // And no new anchor is signed over the changed log
    let out = loyalty_with_key(dir.path(), Some(&key), &["anchor"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not verify"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_anchor_signed_by_another_key_or_edited_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    // Given the operator's key, another key, and an anchor signed with the other one
    let (_, operator) = keygen(dir.path(), "operator.pem");
    let (other, other_public) = keygen(dir.path(), "other.pem");
    history(dir.path());
    let (file, mut anchor) = anchor(dir.path(), &other, "anchor.json");
    // Then it fails against the operator's public key
    let out = loyalty(
        dir.path(),
        &["verify", "--anchor", path(&file), "--public-key", &operator],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not by the trusted key"),
        "{}",
        text(&out.stderr)
    );
    // And an anchor whose count of events was edited fails on its own key's signature
    anchor["events"] = (anchor["events"].as_u64().unwrap() - 1).into();
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, anchor.to_string()).unwrap();
    let out = loyalty(
        dir.path(),
        &[
            "verify",
            "--anchor",
            path(&edited),
            "--public-key",
            &other_public,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("signature does not verify"),
        "{}",
        text(&out.stderr)
    );
    // And an anchor checked against no trusted key at all is refused: the key it names
    // proves nothing by itself
    let out = loyalty(dir.path(), &["verify", "--anchor", path(&file)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("needs the key the anchor must be signed by"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_webhook_delivery_logs_are_among_the_streams_the_chain_lets_truncate() {
    // loyalty-webhooks truncates its delivery logs; the engine, which it is built on, names
    // their prefix without seeing that crate.
    let stream = format!("{}ep_1", loyalty_webhooks::LOG_PREFIX);
    assert!(loyalty_engine::chain::may_truncate(&stream));
    assert!(!loyalty_engine::chain::may_truncate("member-ana"));
}

/// On `store`'s backend: a history, an anchor, `verify --chain` and `verify --anchor`; returns
/// the chain report of `verify --chain`.
async fn anchor_round_trip(store: Vec<(&'static str, String)>) -> Value {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keygen(dir.path(), "anchor-key.pem");
        history_in(dir.path(), &store);
        let mut signing = store.clone();
        signing.push(("LOYALTY_AUDIT__SIGNING_KEY_FILE", path(&key).to_owned()));
        let file = dir.path().join("anchor.json");
        let out = loyalty_env(dir.path(), &signing, &["anchor", "--out", path(&file)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = loyalty_env(
            dir.path(),
            &store,
            &["verify", "--anchor", path(&file), "--public-key", &public],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = loyalty_env(dir.path(), &store, &["verify", "--chain"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["chain"].clone()
    })
    .await
    .expect("the commands ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_eventstoredb_the_chain_is_derived_and_an_anchor_holds() {
    // Given the wire-compatible EventStoreDB test server
    let server = loyalty_esdb_testserver::TestServer::start()
        .await
        .expect("the test server starts");
    let store = vec![
        ("LOYALTY_STORE__KIND", "eventstoredb".to_owned()),
        ("LOYALTY_STORE__URL", server.url()),
    ];
    // When a history is anchored and verified there
    let report = anchor_round_trip(store).await;
    // Then the chain was derived from $all (the server keeps none), and verified
    assert_eq!(report["derived"], true, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert!(report["links"].as_u64().unwrap() >= 9, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_stored_chain_verifies_and_an_anchor_holds() {
    let Ok(url) = std::env::var("LOYALTY_TEST_POSTGRES_URL") else {
        eprintln!("skipped: LOYALTY_TEST_POSTGRES_URL is not set (CI sets it)");
        return;
    };
    // Given a fresh schema of the test server
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let store = vec![
        ("LOYALTY_STORE__KIND", "postgres".to_owned()),
        ("LOYALTY_STORE__URL", url.clone()),
        ("LOYALTY_STORE__SCHEMA", schema.clone()),
    ];
    // When a history is anchored and verified there
    let report = anchor_round_trip(store).await;
    // Then the store's own chain was walked and every event checked against it
    assert_eq!(report["derived"], false, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["events_checked"], report["links"], "{report}");
    loyalty_store_postgres::drop_schema(&url, &schema, std::time::Duration::from_secs(10))
        .await
        .expect("the test schema is dropped");
}
