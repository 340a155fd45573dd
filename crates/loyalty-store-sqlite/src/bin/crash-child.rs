//! The crash test's child: appends to a few streams concurrently, forever, and prints each
//! acknowledged append (`<stream> <first revision> <id>,<id>,<id>`) once `append` has returned.
//! The test kills it with SIGKILL at random moments and checks the file after each kill.
//!
//! Every append is three events; each event's data names its revision and its metadata the
//! first revision of its append, so a half-written append would be visible to the checker.
use std::sync::Arc;

use anyhow::{Context, ensure};
use loyalty_store::{Bytes, CurrentRevision, EventData, EventStore, ExpectedRevision, Uuid};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

/// Concurrent appenders, so that kills also land in the middle of multi-append batches.
const STREAMS: usize = 4;
const EVENTS_PER_APPEND: u64 = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: crash-child <store file>")?;
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).await?);
    let appenders: Vec<_> = (0..STREAMS)
        .map(|i| {
            tokio::spawn(append_forever(
                Arc::clone(&store),
                format!("member-crash-{i}"),
            ))
        })
        .collect();
    for appender in appenders {
        appender.await??;
    }
    Ok(())
}

async fn append_forever(store: Arc<SqliteStore>, stream: String) -> anyhow::Result<()> {
    let mut next = match store.stream_revision(&stream).await? {
        CurrentRevision::NoStream => 0,
        CurrentRevision::Current(r) => r + 1,
    };
    loop {
        let expected = match next {
            0 => ExpectedRevision::NoStream,
            n => ExpectedRevision::Exact(n - 1),
        };
        let events: Vec<EventData> = (next..next + EVENTS_PER_APPEND)
            .map(|revision| EventData {
                id: Uuid::new_v4(),
                event_type: "CrashTested".to_owned(),
                schema_version: 1,
                data: Bytes::from(format!(r#"{{"revision":{revision}}}"#)),
                metadata: Bytes::from(format!(r#"{{"append_starts_at":{next}}}"#)),
            })
            .collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let result = store.append(&stream, expected, events).await?;
        ensure!(
            result.next_expected_revision == next + EVENTS_PER_APPEND - 1,
            "append landed at an unexpected revision: {result:?}"
        );
        println!("{stream} {next} {}", ids.join(","));
        next += EVENTS_PER_APPEND;
    }
}
