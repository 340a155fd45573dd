//! Aggregate snapshots: a long-lived member's hot state, stored now and then in the stream
//! `snapshot-<member>`, so that loading the member after a cache miss or a restart reads the
//! snapshot and the events after it, not the whole stream.
//!
//! A snapshot is a cache of the events, never a source of truth: it records the stream revision
//! and position it reflects, a format version, and the hot limits it was compacted with. One
//! that does not match what this build expects, or does not decode, is ignored (the member is
//! loaded from its events, and the next snapshot replaces it). The events keep everything, and
//! decisions that need what a hot state retired still read the full history.
//!
//! The state is MessagePack with field names (`rmp-serde`): self-describing, so a field added
//! with a default still reads; then LZ4-compressed (the names and the lots' near-equal values
//! repeat), so that a member with thousands of unspent lots still fits in one append. The
//! stream keeps only its last snapshot.

use loyalty_core::{HotLimits, MemberId, MemberState};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, Position, StreamFrom,
};
use serde::{Deserialize, Serialize};

use crate::engine::CachedMember;
use crate::error::EngineError;

pub const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_EVENT: &str = "MemberSnapshotTaken";

/// The format of snapshots this build writes and reads. Bump it when `MemberState` changes
/// meaning (a field reinterpreted, or added without a default): older snapshots are then
/// ignored and rebuilt from the events.
pub(crate) const SNAPSHOT_VERSION: u32 = 2;

/// The most bytes a snapshot may claim to decompress to: more is not a snapshot we wrote (the
/// cache of member states is bounded far below it).
const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn stream_name(member: &MemberId) -> String {
    format!("{SNAPSHOT_PREFIX}{member}")
}

/// What a snapshot event holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    member: String,
    /// The member stream's revision and position the state reflects.
    revision: u64,
    commit: u64,
    prepare: u64,
    /// The hot limits it was compacted with (their debug text): a state compacted with other
    /// limits may lack what these keep, so it is not used.
    limits: String,
    state: MemberState,
}

/// The snapshot's MessagePack bytes, after checking the size it claims.
fn decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    let claimed = data
        .first_chunk::<4>()
        .map(|b| u32::from_le_bytes(*b) as usize)
        .ok_or("too short for a snapshot")?;
    if claimed > MAX_DECOMPRESSED_BYTES {
        return Err(format!("claims {claimed} bytes decompressed"));
    }
    lz4_flex::decompress_size_prepended(data).map_err(|e| e.to_string())
}

fn limits_text(limits: &HotLimits) -> String {
    format!("{limits:?}")
}

/// The member's latest usable snapshot, as a cached member (not yet compacted with the
/// reader's limits), or `None`.
pub(crate) async fn read(
    store: &dyn EventStore,
    member: &MemberId,
    limits: &HotLimits,
) -> Result<Option<CachedMember>, EngineError> {
    let last = store
        .read_stream(
            &stream_name(member),
            StreamFrom::End,
            Direction::Backwards,
            1,
        )
        .await?;
    let Some(event) = last.first() else {
        return Ok(None);
    };
    if event.event_type != SNAPSHOT_EVENT || event.schema_version != SNAPSHOT_VERSION {
        tracing::debug!(%member, version = event.schema_version, "member snapshot of another format ignored");
        return Ok(None);
    }
    let stored: Stored = match decompress(&event.data)
        .and_then(|bytes| rmp_serde::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(%member, revision = event.revision, error = %e,
                "member snapshot unreadable, loading the events instead");
            return Ok(None);
        }
    };
    if stored.member != member.as_str() || stored.limits != limits_text(limits) {
        return Ok(None);
    }
    Ok(Some(CachedMember {
        state: stored.state.restored(),
        revision: Some(stored.revision),
        position: Position::new(stored.commit, stored.prepare),
        snapshot_revision: Some(stored.revision),
    }))
}

/// Stores a snapshot of `state` at `revision` and keeps only it. Too large for one event
/// (the store's limit): not stored, and the member loads from its events as before.
pub(crate) async fn write(
    store: &dyn EventStore,
    member: &MemberId,
    state: MemberState,
    revision: u64,
    position: Position,
    limits: &HotLimits,
) -> Result<(), EngineError> {
    let stored = Stored {
        member: member.to_string(),
        revision,
        commit: position.commit,
        prepare: position.prepare,
        limits: limits_text(limits),
        state,
    };
    let encoded = rmp_serde::to_vec_named(&stored)
        .map_err(|e| EngineError::Corrupt(format!("member snapshot not serialisable: {e}")))?;
    let data = lz4_flex::compress_prepend_size(&encoded);
    // A member holding thousands of unspent lots outgrows one append: her loads then start
    // from her last snapshot that fitted (or from her events).
    if data.len() > store.limits().max_append_bytes {
        tracing::info!(%member, bytes = data.len(), "member snapshot too large to store");
        return Ok(());
    }
    let event = EventData {
        id: uuid::Uuid::new_v4(),
        event_type: SNAPSHOT_EVENT.to_owned(),
        schema_version: SNAPSHOT_VERSION,
        data: Bytes::from(data),
        metadata: Bytes::from_static(b"{}"),
    };
    let stream = stream_name(member);
    let written = store
        .append(&stream, ExpectedRevision::Any, vec![event])
        .await?;
    crate::bounded::keep_last(store, &stream, written.next_expected_revision, 1).await;
    Ok(())
}
