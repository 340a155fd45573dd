//! A helper for the multi-process ordering test, not a tool: opens the store in a schema and
//! appends to a few streams of its own in a loop, printing each acknowledged append as
//! `<position> <event id>,<event id>,...` on stdout.
//!
//! Usage: `append-child <url> <schema> <name> <appends>`
#![forbid(unsafe_code)]

use std::io::Write;

use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, Uuid};
use loyalty_store_postgres::{PostgresOptions, PostgresStore};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, name, appends] = args.as_slice() else {
        eprintln!("usage: append-child <url> <schema> <name> <appends>");
        std::process::exit(2);
    };
    let appends: u64 = appends.parse().expect("a number of appends");
    let options = PostgresOptions {
        schema: schema.clone(),
        pool_size: 2,
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect(url, options)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let mut out = std::io::stdout().lock();
    for k in 0..appends {
        let events: Vec<EventData> = (0..1 + k % 3)
            .map(|n| EventData {
                id: Uuid::new_v4(),
                event_type: "PointsEarned".to_owned(),
                schema_version: 1,
                data: Bytes::from(format!(r#"{{"appender":"{name}","append":{k},"n":{n}}}"#)),
                metadata: Bytes::from_static(b"{}"),
            })
            .collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let result = store
            .append(&format!("{name}-s{}", k % 5), ExpectedRevision::Any, events)
            .await
            .unwrap_or_else(|e| panic!("append: {e}"));
        writeln!(out, "{} {}", result.position.commit, ids.join(",")).expect("stdout");
    }
    out.flush().expect("stdout");
    drop(out);
    store.close().await;
}
