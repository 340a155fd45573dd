//! `loyalty program history` and `loyalty program show` as an auditor runs them: the real
//! binary on an embedded store in a temporary directory, after servers started on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use loyalty_core::Program;
use loyalty_core::program::version::version_of;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `loyalty ARGS` on the store of `dir`, with the program rules of `program`.
fn loyalty(dir: &Path, program: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loyalty"))
        .arg("--config")
        .arg(repo_root().join("config/loyalty.toml"))
        .args(args)
        .current_dir(dir)
        .env("LOYALTY_PROGRAM", program)
        .env("LOYALTY_STORE__PATH", dir.join("store.sqlite"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("the loyalty binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts an engine on the store with `program` as a server start does (the commands that only
/// read, such as `replay`, record nothing) and stops it.
fn start_with(dir: &Path, program: &Path) {
    use figment::providers::Format;
    let shipped = figment::providers::Toml::file(repo_root().join("config/loyalty.toml"));
    let mut settings =
        loyalty_cli::settings::Settings::from_figment(figment::Figment::new().merge(shipped))
            .unwrap();
    settings.program = program.to_owned();
    settings.store.path = dir.join("store.sqlite");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = loyalty_cli::runtime::start_engine(
            &settings,
            std::sync::Arc::new(loyalty_engine::SystemClock),
        )
        .await
        .unwrap();
        engine.shutdown().await;
    });
}

#[test]
fn the_history_lists_each_program_once_and_show_prints_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let demo_text = std::fs::read_to_string(repo_root().join("config/program.toml")).unwrap();
    let demo = dir.path().join("program.toml");
    std::fs::write(&demo, &demo_text).unwrap();
    let version = Program::from_toml_str(&demo_text)
        .unwrap()
        .version()
        .to_owned();

    // Given a store where nothing started yet, the history is empty (and says why)
    let out = loyalty(dir.path(), &demo, &["program", "history"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no program recorded yet"));

    // Given a server started twice with the demo, once more with its comments changed, then
    // once with a higher earning rate and another label
    start_with(dir.path(), &demo);
    start_with(dir.path(), &demo);
    let recommented = dir.path().join("recommented.toml");
    std::fs::write(
        &recommented,
        format!(
            "# reviewed by the auditors\n\n{}",
            demo_text.replace(" = ", " =  ")
        ),
    )
    .unwrap();
    start_with(dir.path(), &recommented);
    let changed_text = demo_text
        .replacen("points_per_unit = \"1\"", "points_per_unit = \"2\"", 1)
        .replacen("label = \"2026.11.2\"", "label = \"2026.12.1\"", 1);
    assert_ne!(changed_text, demo_text);
    let changed = dir.path().join("changed.toml");
    std::fs::write(&changed, &changed_text).unwrap();
    start_with(dir.path(), &changed);
    let changed_version = Program::from_toml_str(&changed_text)
        .unwrap()
        .version()
        .to_owned();

    // When the history is printed, then it has two versions, oldest first, with their labels
    let out = loyalty(dir.path(), &demo, &["program", "history"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(&version) || l.contains(&changed_version))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains(&version) && rows[0].contains("2026.11.2"),
        "{table}"
    );
    assert!(
        rows[1].contains(&changed_version) && rows[1].contains("2026.12.1"),
        "{table}"
    );
    let out = loyalty(dir.path(), &demo, &["program", "history", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["versions"].as_array().unwrap().len(), 2);
    assert_eq!(json["versions"][1]["version"], changed_version.as_str());

    // When a version is shown by an 8-digit prefix, then the text printed is the one the
    // version is the hash of, and it loads as the changed program
    let out = loyalty(
        dir.path(),
        &demo,
        &["program", "show", &changed_version[..8]],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert_eq!(version_of(&shown), changed_version);
    let program = Program::from_toml_str(&shown).unwrap();
    assert_eq!(program.earning.points_per_unit.to_string(), "2");
    // And by its label
    let out = loyalty(dir.path(), &demo, &["program", "show", "2026.11.2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(version_of(&text(&out.stdout)), version);

    // An unknown version exits 1, naming what was asked
    let out = loyalty(dir.path(), &demo, &["program", "show", "deadbeefdeadbeef"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("deadbeefdeadbeef"));
}

#[test]
fn reading_the_history_records_nothing() {
    // Given a store on which no server started
    let dir = tempfile::tempdir().unwrap();
    let demo = repo_root().join("config/program.toml");
    // When the history is read twice, then it is empty both times: reading does not record
    // the configured program
    for _ in 0..2 {
        let out = loyalty(dir.path(), &demo, &["program", "history", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["versions"], serde_json::json!([]));
    }
}
