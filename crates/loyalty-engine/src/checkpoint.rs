//! Checkpoints of process managers, stored in the event store itself (stream
//! `checkpoint-<name>`), so that a restarted server resumes where the last one stopped.
//! A checkpoint may lag behind the work done: everything a process manager does is keyed so that
//! doing it again is a replay. Only the last checkpoint is ever read, so the stream is truncated
//! to it every [`TRUNCATE_EVERY`] checkpoints: it stays bounded however long the server runs.

use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, Position, StreamFrom,
};
use serde::{Deserialize, Serialize};

use crate::EngineError;
use crate::IdGenerator;

pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
const CHECKPOINT_EVENT: &str = "CheckpointStored";
/// The events before the last checkpoint are truncated every this many checkpoints.
pub(crate) const TRUNCATE_EVERY: u64 = 16;

#[derive(Debug, Serialize, Deserialize)]
struct StoredCheckpoint {
    commit: u64,
    prepare: u64,
}

pub(crate) fn stream_name(name: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{name}")
}

/// The last stored checkpoint, or the start of `$all`.
pub(crate) async fn load(store: &dyn EventStore, name: &str) -> Result<Position, EngineError> {
    let last = store
        .read_stream(&stream_name(name), StreamFrom::End, Direction::Backwards, 1)
        .await?;
    match last.first() {
        None => Ok(Position::START),
        Some(event) => {
            let stored: StoredCheckpoint = serde_json::from_slice(&event.data).map_err(|e| {
                EngineError::Corrupt(format!(
                    "checkpoint {name} at revision {}: {e}",
                    event.revision
                ))
            })?;
            Ok(Position::new(stored.commit, stored.prepare))
        }
    }
}

/// Stores a checkpoint. Two servers may race: any order is fine since both positions were
/// handled, so no expected revision is checked.
pub(crate) async fn store(
    store: &dyn EventStore,
    ids: &dyn IdGenerator,
    name: &str,
    position: Position,
) -> Result<(), EngineError> {
    let data = serde_json::to_vec(&StoredCheckpoint {
        commit: position.commit,
        prepare: position.prepare,
    })
    .map_err(|e| EngineError::Corrupt(e.to_string()))?;
    let event = EventData {
        id: ids.event_id(),
        event_type: CHECKPOINT_EVENT.to_owned(),
        schema_version: 1,
        data: Bytes::from(data),
        metadata: Bytes::from_static(b"{}"),
    };
    let stream = stream_name(name);
    let written = store
        .append(&stream, ExpectedRevision::Any, vec![event])
        .await?;
    crate::bounded::keep_last(
        store,
        &stream,
        written.next_expected_revision,
        TRUNCATE_EVERY,
    )
    .await;
    Ok(())
}
