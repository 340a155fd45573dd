//! `loyalty liability` as an accountant runs it: the real binary on an embedded store holding
//! imported opening balances, as a table, as CSV and as JSON.

use crate::offline;

use offline::{loyalty, repo_root, text};
use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Days, SecondsFormat, Utc};

fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Two members whose opening balances expire 60 and 500 days from now (an import's dates are
/// in the past, its expiry dates anywhere).
fn store_with_balances(dir: &Path, now: DateTime<Utc>) {
    let ago = |days| date(now - Days::new(days));
    let ahead = |days| date(now + Days::new(days));
    let csv = format!(
        "type,member_id,occurred_at,store,transaction_id,amount,category,refund_id,points,\
         balance_id,expires_at\n\
         member,ana,{e},,,,,,,,\n\
         member,ben,{e},,,,,,,,\n\
         balance,ana,{b},,,,,,300,,{x1}\n\
         balance,ben,{b},,,,,,200,,{x2}\n",
        e = ago(20),
        b = ago(2),
        x1 = ahead(60),
        x2 = ahead(500),
    );
    let file = dir.join("legacy.csv");
    std::fs::write(&file, csv).unwrap();
    let out = loyalty(dir, &["import", file.to_str().unwrap(), "--points", "none"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn the_liability_is_printed_as_a_table_as_csv_and_as_json() {
    // Given a store holding 300 points expiring in 60 days and 200 in 500 days
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    store_with_balances(dir.path(), now);
    let as_of = (now + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);

    // When the liability is asked as CSV
    let out = loyalty(dir.path(), &["liability", "--as-of", &as_of, "--csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Then there is a row per bucket, the total owed and the net of breakage
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: BTreeMap<String, BTreeMap<String, String>> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let row: BTreeMap<String, String> = header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect();
            (row["bucket"].clone(), row)
        })
        .collect();
    assert_eq!(
        rows.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "expired_not_swept",
            "later",
            "net_of_breakage",
            "no_expiry",
            "total_owed",
            "within_180_days",
            "within_30_days",
            "within_365_days",
            "within_90_days",
        ]
    );
    // The balances, in the buckets of their expiry dates, at the shipped program's valuation
    let value = |points: i64| {
        let program = loyalty_core::Program::from_toml_str(
            &std::fs::read_to_string(repo_root().join("config/program.toml")).unwrap(),
        )
        .unwrap();
        program
            .points_value(loyalty_core::Points::new(points))
            .unwrap()
    };
    let within_90 = &rows["within_90_days"];
    assert_eq!(within_90["points"], "300");
    assert_eq!(within_90["lots"], "1");
    assert_eq!(within_90["value"], value(300).to_string());
    assert_eq!(within_90["owed"], "true");
    assert_eq!(rows["later"]["points"], "200");
    let total = &rows["total_owed"];
    assert_eq!(total["points"], "500");
    assert_eq!(total["value"], value(500).to_string());
    // No expiry or redemption in the store's history: no breakage is expected
    assert_eq!(total["breakage_rate"], "0");
    assert_eq!(total["expected_breakage_points"], "0");
    assert_eq!(rows["net_of_breakage"]["value"], value(500).to_string());

    // When it is asked as a table
    let out = loyalty(dir.path(), &["liability", "--as-of", &as_of]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    // Then the buckets and the totals read as sentences
    for expected in [
        "within 90 days",
        "no expiry date",
        "outstanding (owed)",
        "Breakage rate: 0%",
        "Liability net of breakage:",
    ] {
        assert!(
            table.contains(expected),
            "{expected:?} missing from:\n{table}"
        );
    }

    // When it is asked as JSON, with a shorter lookback
    let out = loyalty(
        dir.path(),
        &[
            "liability",
            "--as-of",
            &as_of,
            "--json",
            "--lookback-days",
            "90",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Then it is the HTTP API's answer
    assert_eq!(json["buckets"].as_array().unwrap().len(), 7);
    assert_eq!(json["totals"]["points_outstanding"], 500);
    assert_eq!(json["breakage"]["lookback_days"], 90);
}

#[test]
fn a_lookback_out_of_bounds_or_two_formats_at_once_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let as_of = "2026-12-31T23:59:59Z";
    for args in [
        vec!["liability", "--as-of", as_of, "--lookback-days", "0"],
        vec!["liability", "--as-of", as_of, "--lookback-days", "3651"],
        vec!["liability", "--as-of", as_of, "--csv", "--json"],
    ] {
        let out = loyalty(dir.path(), &args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            !dir.path().join("store.sqlite").exists(),
            "{args:?} opened the store"
        );
    }
}
