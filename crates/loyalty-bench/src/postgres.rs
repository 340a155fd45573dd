//! The PostgreSQL section: durable ingest and replay on the PostgreSQL store, measured as on
//! SQLite, each store in a fresh schema of the server named by `LOYALTY_BENCH_POSTGRES_URL` (or
//! else CI's `LOYALTY_TEST_POSTGRES_URL`), dropped afterwards. With neither set the section is
//! skipped with one line: `make bench` needs no server. With one set, a server that cannot be
//! reached fails the run, since a figure silently missing would read as a pass.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use loyalty_store::{EventStore, Uuid};
use loyalty_store_postgres::{PostgresOptions, PostgresStore, drop_schema};

use crate::report::Report;
use crate::{PG_INGEST, Sizes, fsync, replay};

/// The variables that may name the server, the first set one winning: the bench's own, then
/// the one CI sets for the tests (so `make test`'s smoke run covers this section too).
const URL_VARS: [&str; 2] = ["LOYALTY_BENCH_POSTGRES_URL", "LOYALTY_TEST_POSTGRES_URL"];

/// How long dropping a schema waits for sessions still using it (a store just dropped closes
/// its connections in the background).
const DROP_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The section's figures, or one line saying why it is skipped.
pub async fn figures(report: &mut Report, sizes: Sizes) -> anyhow::Result<()> {
    let Some((var, url)) = server_url() else {
        println!(
            "postgres: skipped, neither {} nor {} names a PostgreSQL server (e.g. \
             {}=postgres://postgres@127.0.0.1:5432/test)",
            URL_VARS[0], URL_VARS[1], URL_VARS[0]
        );
        return Ok(());
    };
    println!(
        "postgres: on the server named by {var} ({})",
        server_of(&url)
    );
    let schemas = Schemas {
        url,
        var,
        created: Mutex::new(Vec::new()),
    };
    let measured = measure(report, &schemas, sizes).await;
    // Also after a failure: the schemas the failed part created are of no further use.
    let dropped = schemas.drop_all().await;
    match (measured, dropped) {
        (Err(failure), Err(drop_failure)) => {
            // The measurement's failure is the one to report; the leftovers are named.
            eprintln!("postgres: {drop_failure:#}");
            Err(failure)
        }
        (measured, dropped) => measured.and(dropped),
    }
}

async fn measure(report: &mut Report, schemas: &Schemas, sizes: Sizes) -> anyhow::Result<()> {
    report.parameter("pg_dataset_members", sizes.pg_dataset_members);
    crate::ingest_figures(report, sizes, &PG_INGEST, |_| schemas.open()).await?;
    replay_figures(report, schemas, sizes).await
}

/// The server's URL and the variable that named it; an empty variable counts as unset.
fn server_url() -> Option<(&'static str, String)> {
    URL_VARS
        .into_iter()
        .find_map(|var| match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => Some((var, url)),
            _ => None,
        })
}

/// The URL without its user and password, to print.
fn server_of(url: &str) -> &str {
    url.rsplit_once('@').map_or(url, |(_, server)| server)
}

/// The fresh schemas of one run, each `bench_<uuid>` so that runs (and tests) sharing a
/// database never meet, and all dropped at the end.
struct Schemas {
    url: String,
    var: &'static str,
    created: Mutex<Vec<String>>,
}

impl Schemas {
    /// A store in a fresh schema. The store's own pool size, as a server would run it: appends
    /// take the schema's log lock one at a time, so more connections would only queue there.
    async fn open(&self) -> anyhow::Result<Arc<dyn EventStore>> {
        let schema = format!("bench_{}", Uuid::new_v4().simple());
        let options = PostgresOptions {
            schema: schema.clone(),
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect(&self.url, options)
            .await
            .with_context(|| {
                format!(
                    "cannot open a store on the PostgreSQL server named by {} ({}), in a fresh \
                     schema {schema}",
                    self.var,
                    server_of(&self.url)
                )
            })?;
        // Registered once created: a failed connect creates nothing (the schema and its tables
        // are made in one transaction).
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(schema);
        Ok(Arc::new(store))
    }

    /// Drops every schema created; fails naming those left behind.
    async fn drop_all(&self) -> anyhow::Result<()> {
        let schemas = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        let mut left = Vec::new();
        for schema in schemas {
            // Bounded: a server gone silent must not hang the end of the run.
            let dropped = tokio::time::timeout(
                DROP_LOCK_TIMEOUT * 2,
                drop_schema(&self.url, &schema, DROP_LOCK_TIMEOUT),
            )
            .await;
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => left.push(format!("{schema} ({e})")),
                Err(_) => left.push(format!("{schema} (timed out)")),
            }
        }
        anyhow::ensure!(
            left.is_empty(),
            "could not drop the bench's PostgreSQL schemas: {}",
            left.join(", ")
        );
        Ok(())
    }
}

/// Replay on PostgreSQL: a smaller data set written into a fresh schema, a full replay of it
/// into fresh read models, and reading and decoding the same events (the limit).
async fn replay_figures(
    report: &mut Report,
    schemas: &Schemas,
    sizes: Sizes,
) -> anyhow::Result<()> {
    let store = schemas.open().await?;
    let written = crate::write_dataset(
        store.clone(),
        sizes.pg_dataset_members,
        "PostgreSQL data set",
    )
    .await?;
    report.parameter("pg_dataset_events", written.events);
    // The engine's start replays the log into its live projections; the replay measured below
    // is a second one, into fresh read models, as on SQLite.
    let caught_up = Instant::now();
    let engine = crate::start_engine(store.clone()).await?;
    let head = store.head_position().await?;
    crate::caught_up_to(&engine, head).await;
    let live_rate = fsync::per_second(written.events, caught_up.elapsed());
    println!("  live projections caught up with the log at {live_rate:.0} events/s");
    report.parameter("pg_live_catch_up_events_per_s", live_rate);
    let (events, replay_rate, until) = replay::replay(&engine).await?;
    let page = engine
        .options()
        .read_page_size
        .min(store.limits().max_page_size);
    engine.shutdown().await;
    let (decoded, decode_rate) = replay::decode(store, page, until).await?;
    anyhow::ensure!(
        events == decoded,
        "replay on PostgreSQL read {events} events, decode {decoded}"
    );
    println!(
        "  replay {replay_rate:.0} events/s, read + decode {decode_rate:.0} events/s ({events} \
         events)"
    );
    report.figure(
        "pg_replay_events_per_s",
        "PostgreSQL replay into fresh projections",
        replay_rate,
        "events/s",
    );
    report.figure(
        "pg_decode_events_per_s",
        "PostgreSQL read + decode only (the limit)",
        decode_rate,
        "events/s",
    );
    report.figure(
        "pg_replay_vs_decode",
        "PostgreSQL replay / decode",
        replay_rate / decode_rate,
        "ratio",
    );
    Ok(())
}
