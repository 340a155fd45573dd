//! `loyalty what-if` as an analyst runs it: the real binary on an embedded store in a temporary
//! directory, holding a history imported by `loyalty import`.

use crate::offline;

use offline::{loyalty, repo_root, text};
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};

const HEADER: &str = "type,member_id,occurred_at,store,transaction_id,amount,category,refund_id,points,balance_id,expires_at\n";

/// Ana bought take-home beans a month ago, ben pastries; imported now, earning by the rules.
fn import_history(dir: &Path) {
    let day = |days_ago: i64| (Utc::now() - Duration::days(days_ago)).date_naive();
    let mut csv = HEADER.to_owned();
    for m in ["ana", "ben"] {
        csv.push_str(&format!("member,{m},{},,,,,,,,\n", day(60)));
    }
    csv.push_str(&format!(
        "purchase,ana,{},paris-marais,a1,24.00,coffee-beans,,,,\n",
        day(30)
    ));
    csv.push_str(&format!(
        "purchase,ben,{},paris-marais,b1,24.00,pastry,,,,\n",
        day(30)
    ));
    let file = dir.join("history.csv");
    std::fs::write(&file, csv).unwrap();
    let out = loyalty(
        dir,
        &["import", file.to_str().unwrap(), "--points", "rules"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The demo program with take-home beans earning four times the base instead of twice.
fn beans_doubled(dir: &Path) -> PathBuf {
    let demo = std::fs::read_to_string(repo_root().join("config/program.toml")).unwrap();
    let from = "category = \"coffee-beans\"                 # take-home beans earn double\nmultiplier = \"2\"";
    assert!(
        demo.contains(from),
        "the demo program's beans multiplier moved"
    );
    let path = dir.join("beans-doubled.toml");
    std::fs::write(
        &path,
        demo.replacen(from, "category = \"coffee-beans\"\nmultiplier = \"4\"", 1),
    )
    .unwrap();
    path
}

#[test]
fn what_if_prints_the_beans_buyer_better_off_as_json_and_as_tables() {
    // Given ana's beans and ben's pastries, recorded today
    let dir = tempfile::tempdir().unwrap();
    import_history(dir.path());
    let program = beans_doubled(dir.path());
    // Two days either side: the dates are the program's (Paris), and the period ends at the
    // start of its `--to` day there, so one UTC day either side missed the import when run
    // between 23:00 and midnight UTC.
    let yesterday = (Utc::now() - Duration::days(2)).date_naive().to_string();
    let tomorrow = (Utc::now() + Duration::days(2)).date_naive().to_string();
    let args = [
        "what-if",
        "--program",
        program.to_str().unwrap(),
        "--from",
        &yesterday,
        "--to",
        &tomorrow,
    ];
    // When the period is decided again with beans earning double, as JSON
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = loyalty(dir.path(), &json_args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Then ana alone is better off, by the points her beans earned once more, and nothing
    // the new program refused
    assert_eq!(report["members"], 2);
    assert_eq!(report["better_off"], 1);
    assert_eq!(report["unchanged"], 1);
    assert_eq!(report["commands_refused"], 0);
    let gains = report["largest_gains"].as_array().unwrap();
    assert_eq!(gains.len(), 1);
    assert_eq!(gains[0]["member_id"], "ana");
    let issued = |side: &str| report[side]["points_issued"].as_i64().unwrap();
    assert_eq!(
        issued("what_if") - issued("recorded"),
        gains[0]["difference"].as_i64().unwrap()
    );
    assert!(gains[0]["difference"].as_i64().unwrap() > 0);
    // and the kinds carried over unchanged are named
    let unchanged: Vec<&str> = report["carried_over_unchanged"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["event_type"].as_str())
        .collect();
    assert!(unchanged.contains(&"PointsAdjusted"), "{unchanged:?}");

    // When it is printed for the terminal
    let out = loyalty(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tables = text(&out.stdout);
    // Then the side-by-side table and ana's line are there
    assert!(tables.contains("points issued"), "{tables}");
    assert!(tables.contains("Largest gains"), "{tables}");
    assert!(
        tables.lines().any(|l| l.contains("ana") && l.contains('+')),
        "{tables}"
    );
}

#[test]
fn what_if_refuses_a_period_that_ends_before_it_starts_and_a_program_that_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let program = beans_doubled(dir.path());
    let out = loyalty(
        dir.path(),
        &[
            "what-if",
            "--program",
            program.to_str().unwrap(),
            "--from",
            "2026-03-01",
            "--to",
            "2026-02-01",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("must be before --to"),
        "{}",
        text(&out.stderr)
    );
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[program]\nname = 1\n").unwrap();
    let out = loyalty(
        dir.path(),
        &[
            "what-if",
            "--program",
            broken.to_str().unwrap(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("broken.toml"),
        "{}",
        text(&out.stderr)
    );
}
