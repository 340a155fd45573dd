//! `loyalty import` and `loyalty analytics` as a retailer runs them: the real binary on an
//! embedded store in a temporary directory.

use crate::offline;

use offline::{loyalty, text};

const HEADER: &str = "type,member_id,occurred_at,store,transaction_id,amount,category,refund_id,points,balance_id,expires_at\n";

/// Three members over two years: enrolments, purchases, a refund, opening balances.
fn history() -> String {
    let mut csv = HEADER.to_owned();
    for (m, enrolled) in [
        ("ana", "2024-01-10"),
        ("ben", "2024-02-01"),
        ("cy", "2024-03-15"),
    ] {
        csv.push_str(&format!("member,{m},{enrolled},,,,,,,,\n"));
        for (i, day) in ["2024-04-02", "2024-09-20", "2025-05-05"]
            .iter()
            .enumerate()
        {
            csv.push_str(&format!(
                "purchase,{m},{day},paris-opera,{m}-{i},24.50,pastry,,,,\n"
            ));
        }
        csv.push_str(&format!("balance,{m},2026-11-01,,,,,,300,,2027-06-30\n"));
    }
    csv.push_str("refund,ana,2025-05-06,paris-opera,ana-2,4.50,,ana-r1,,,\n");
    csv
}

#[test]
fn a_file_with_a_bad_row_imports_nothing_and_a_good_one_imports_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.csv");

    // Line 3 has an amount that is not a number, line 5 a purchase before its member enrolled.
    let mut bad = HEADER.to_owned();
    bad.push_str("member,ana,2024-01-10,,,,,,,,\n");
    bad.push_str("purchase,ana,2024-04-02,paris-opera,t1,lots,pastry,,,,\n");
    bad.push_str("member,ben,2024-02-01,,,,,,,,\n");
    bad.push_str("purchase,ben,2023-04-02,paris-opera,t2,10.00,pastry,,,,\n");
    std::fs::write(&file, bad).unwrap();
    let out = loyalty(
        dir.path(),
        &["import", file.to_str().unwrap(), "--points", "none"],
    );
    assert!(!out.status.success());
    let errors = text(&out.stderr);
    assert!(errors.contains("legacy.csv:3: amount \"lots\""), "{errors}");
    assert!(errors.contains("nothing imported"), "{errors}");
    // Line 3 fixed: the purchase before the enrolment is the store's refusal now.
    let fixed = std::fs::read_to_string(&file)
        .unwrap()
        .replace("lots", "10.00");
    std::fs::write(&file, fixed).unwrap();
    let out = loyalty(
        dir.path(),
        &["import", file.to_str().unwrap(), "--points", "none"],
    );
    assert!(!out.status.success());
    let errors = text(&out.stderr);
    assert!(errors.contains("legacy.csv:5: member ben"), "{errors}");
    let out = loyalty(dir.path(), &["analytics", "concentration", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["members"], 0, "nothing was imported: {report}");

    std::fs::write(&file, history()).unwrap();
    let out = loyalty(
        dir.path(),
        &["import", file.to_str().unwrap(), "--points", "none"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["imported"].clone(), report["members"].clone()),
        (16.into(), 3.into())
    );
    let again = loyalty(
        dir.path(),
        &["import", file.to_str().unwrap(), "--points", "none"],
    );
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (
            report["imported"].clone(),
            report["already_imported"].clone()
        ),
        (0.into(), 16.into())
    );

    // The analytics see the history: net spend 3 x 3 x 24.50 less the 4.50 refund.
    let out = loyalty(dir.path(), &["analytics", "concentration"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("net spend 216.00"), "{table}");
    let out = loyalty(dir.path(), &["statement", "ana"]);
    assert!(
        text(&out.stdout).contains("Opening balance"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn ndjson_rows_carry_the_legacy_points_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.ndjson");
    std::fs::write(
        &file,
        concat!(
            r#"{"type":"member","member_id":"dee","occurred_at":"2025-01-10T09:00:00Z"}"#, "\n",
            r#"{"type":"purchase","member_id":"dee","occurred_at":"2025-02-10","store":"paris-opera","transaction_id":"d1","amount":"30.00","points":77}"#, "\n",
        ),
    )
    .unwrap();
    let out = loyalty(
        dir.path(),
        &["import", file.to_str().unwrap(), "--points", "explicit"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = loyalty(dir.path(), &["statement", "dee"]);
    let statement = text(&out.stdout);
    assert!(statement.contains("\"lifetime_earned\": 77"), "{statement}");
}
