//! The commands that only read write nothing to the log: not even the program record an engine
//! makes at start when the log has not seen its program (a store written by a release from
//! before programs were recorded, or one that no server of this program started on yet).

use crate::offline;

use offline::{loyalty, repo_root, text};
use std::path::Path;

use chrono::{Duration, SecondsFormat, Utc};
use loyalty_core::{Command, Enroll, MemberId};
use loyalty_engine::streams::PROGRAM_STREAM;
use loyalty_store::{CurrentRevision, EventStore, Position};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Enrolls `members` on the store of `dir` without recording the program, as a release from
/// before programs were recorded did.
fn store_without_program_record(dir: &Path, members: &[&str]) {
    runtime().block_on(async {
        let store = SqliteStore::open(dir.join("store.sqlite"), SqliteOptions::default())
            .await
            .unwrap();
        let program =
            loyalty_cli::runtime::load_program(&repo_root().join("config/program.toml")).unwrap();
        // Decided and appended by hand: an engine would record its program first, and a
        // read-only one refuses commands.
        let at = Utc::now() - Duration::days(1);
        for member in members {
            let command = Command::Enroll(Enroll {
                member_id: MemberId::parse(*member).unwrap(),
                referrer: None,
                occurred_at: at,
            });
            let decision = loyalty_core::decide(
                &loyalty_core::MemberState::default(),
                &command,
                &program,
                loyalty_core::ServerTime::at(at),
            )
            .unwrap();
            let events = decision
                .events
                .iter()
                .map(|e| {
                    let stored = loyalty_core::schema::encode(e);
                    loyalty_store::EventData {
                        id: loyalty_store::Uuid::new_v4(),
                        event_type: stored.event_type.to_owned(),
                        schema_version: stored.schema_version,
                        data: stored.data.into(),
                        metadata: loyalty_store::Bytes::from_static(b"{}"),
                    }
                })
                .collect();
            store
                .append(
                    &format!("member-{member}"),
                    loyalty_store::ExpectedRevision::NoStream,
                    events,
                )
                .await
                .unwrap();
        }
    });
}

/// The head of the store's log, and whether it holds a program record.
fn head_of(dir: &Path) -> (Position, bool) {
    runtime().block_on(async {
        let store = SqliteStore::open(dir.join("store.sqlite"), SqliteOptions::default())
            .await
            .unwrap();
        let head = store.head_position().await.unwrap();
        let recorded = store.stream_revision(PROGRAM_STREAM).await.unwrap();
        (head, recorded != CurrentRevision::NoStream)
    })
}

#[test]
fn read_only_commands_leave_a_log_without_a_program_record_as_it_was() {
    // Given a store whose log holds two members and no program record
    let dir = tempfile::tempdir().unwrap();
    store_without_program_record(dir.path(), &["ana", "ben"]);
    let (head, recorded) = head_of(dir.path());
    assert!(head > Position::START);
    assert!(!recorded, "the seeding wrote a program record");

    // When each command that only reads runs on it
    let now = Utc::now();
    let as_of = (now + Duration::minutes(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let from = (now - Duration::days(30)).date_naive().to_string();
    let to = (now + Duration::days(1)).date_naive().to_string();
    let program = repo_root().join("config/program.toml");
    let program = program.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["replay"],
        &["verify"],
        &["statement", "ana"],
        &["statement", "ana", "--as-of", &as_of],
        &["liability", "--as-of", &as_of, "--json"],
        &["analytics", "--json", "retention"],
        &[
            "what-if",
            "--program",
            program,
            "--from",
            &from,
            "--to",
            &to,
            "--json",
        ],
        &["program", "history"],
    ];
    for args in commands {
        let out = loyalty(dir.path(), args);
        assert!(
            out.status.success(),
            "loyalty {}: {}",
            args.join(" "),
            text(&out.stderr)
        );
        // Then the log's head has not moved, and still holds no program record
        assert_eq!(
            head_of(dir.path()),
            (head, false),
            "loyalty {} wrote to the log",
            args.join(" ")
        );
    }

    // And a command that writes still records the program first, as a server does
    let csv = dir.path().join("more.csv");
    std::fs::write(
        &csv,
        format!(
            "type,member_id,occurred_at,store,transaction_id,amount,category,refund_id,points,\
             balance_id,expires_at\nmember,cleo,{},,,,,,,,\n",
            (now - Duration::days(2)).date_naive()
        ),
    )
    .unwrap();
    let out = loyalty(
        dir.path(),
        &["import", csv.to_str().unwrap(), "--points", "none"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (after, recorded) = head_of(dir.path());
    assert!(after > head);
    assert!(recorded, "import did not record the program");
}
