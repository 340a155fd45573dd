//! Figure 3: rebuilding every projection from the log, beside reading and decoding the same
//! events without projecting them (the limit).

use std::sync::Arc;
use std::time::Instant;

use loyalty_core::schema;
use loyalty_engine::Engine;
use loyalty_store::{EventStore, Position, ReadAhead};

use crate::fsync::per_second;

/// Events per second of a full replay into fresh read models, and the position it reached.
pub async fn replay(engine: &Engine) -> anyhow::Result<(u64, f64, Position)> {
    let start = Instant::now();
    let report = engine.replay(|_| {}).await?;
    anyhow::ensure!(
        report.unreadable_events == 0,
        "the replay met unreadable events"
    );
    Ok((
        report.events_replayed,
        per_second(report.events_replayed, start.elapsed()),
        report.position,
    ))
}

/// Events per second of reading `$all` up to `until` in the engine's page size, with the same
/// read-ahead as the replay, and decoding every member event's data, projecting nothing.
pub async fn decode(
    store: Arc<dyn EventStore>,
    page: usize,
    until: Position,
) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let mut events = 0u64;
    let mut pages = ReadAhead::new(store, Position::START, page);
    while let Some(batch) = pages.next_page().await? {
        for recorded in &batch {
            if recorded.position > until {
                return Ok((events, per_second(events, start.elapsed())));
            }
            events += 1;
            if recorded.stream.starts_with("member-") {
                let event = schema::decode(
                    &recorded.event_type,
                    recorded.schema_version,
                    &recorded.data,
                )?;
                std::hint::black_box(event);
            }
        }
    }
    Ok((events, per_second(events, start.elapsed())))
}
