//! A log of realistic history written straight into a store, for the replay and memory figures.
//!
//! The events are decided by the real core (`decide`/`evolve` on each member's commands) and
//! stored exactly as the engine stores them (schema v-current data, the engine's metadata), one
//! append per member, many appenders at once. Going around the engine here is deliberate: this
//! builds the input of the replay measurement, it is not itself measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use loyalty_core::{Command, MemberState, Program, ServerTime, decide, evolve, schema};
use loyalty_engine::EventMetadata;
use loyalty_store::{Bytes, EventData, EventStore, ExpectedRevision, StreamAppend, Uuid};

use crate::workload;

/// What was written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub members: u64,
    pub events: u64,
}

/// The events of one member's history, ready to append, ids derived from `seed` so that the
/// data set is the same on every run.
pub fn member_events(program: &Program, member: u64, seed: u64) -> Vec<EventData> {
    let mut rng = fastrand::Rng::with_seed(seed ^ member.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut state = MemberState::default();
    let mut out = Vec::new();
    for command in workload::member_history(&mut rng, member) {
        // A refusal (say, a redemption larger than the balance) is part of realistic traffic
        // and appends nothing.
        // The history is written as if recorded when it happened: the server's clock is the
        // business time (as the metadata says below).
        let server = ServerTime::at(command.occurred_at());
        let Ok(decision) = decide(&state, &command, program, server) else {
            continue;
        };
        let metadata = metadata_of(&command, program);
        for event in decision.events {
            evolve(&mut state, &event);
            let stored = schema::encode(&event);
            out.push(EventData {
                id: Uuid::from_u64_pair(seed ^ member, out.len() as u64),
                event_type: stored.event_type.to_owned(),
                schema_version: stored.schema_version,
                data: Bytes::from(stored.data),
                metadata: metadata.clone(),
            });
        }
    }
    out
}

fn metadata_of(command: &Command, program: &Program) -> Bytes {
    let occurred_at = command.occurred_at();
    let metadata = EventMetadata {
        client_id: command.client_id().unwrap_or_default(),
        command: command.name().to_owned(),
        correlation_id: None,
        causation_id: None,
        occurred_at,
        recorded_at: occurred_at,
        rules_version: program.rules_version().to_owned(),
        actor: Some("bench".to_owned()),
    };
    Bytes::from(serde_json::to_vec(&metadata).expect("metadata serialises"))
}

/// Members written by one `append_many`: the data set is input, not the measurement, so it is
/// written in large atomic groups (well inside the store's per-append limits).
const MEMBERS_PER_APPEND: u64 = 100;

/// Writes the histories of members `0..members` with `appenders` concurrent appenders.
pub async fn write(
    store: Arc<dyn EventStore>,
    program: Arc<Program>,
    members: u64,
    appenders: u64,
    seed: u64,
) -> anyhow::Result<Written> {
    let events = Arc::new(AtomicU64::new(0));
    let counted = events.clone();
    crate::parallel::for_each_range(members, appenders, MEMBERS_PER_APPEND, move |first, end| {
        let (store, program, events) = (store.clone(), program.clone(), counted.clone());
        async move {
            let parts: Vec<StreamAppend> = (first..end)
                .map(|member| StreamAppend {
                    stream: format!("member-{}", workload::member_id(member)),
                    expected: ExpectedRevision::NoStream,
                    events: member_events(&program, member, seed),
                })
                .collect();
            let count: usize = parts.iter().map(|p| p.events.len()).sum();
            events.fetch_add(count as u64, Ordering::Relaxed);
            store.append_many(parts).await?;
            Ok(())
        }
    })
    .await?;
    Ok(Written {
        members,
        events: events.load(Ordering::Relaxed),
    })
}
