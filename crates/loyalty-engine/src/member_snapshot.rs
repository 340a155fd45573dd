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
    Bytes, Direction, EventData, EventStore, ExpectedRevision, Position, StoreError, StreamFrom,
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
    let metadata = Bytes::from(
        serde_json::to_vec(&SnapshotMetadata {
            member_revision: revision,
        })
        .map_err(|e| EngineError::Corrupt(format!("snapshot metadata: {e}")))?,
    );
    let stream = stream_name(member);
    // Snapshots are written in the background, several at once: one of an older revision may
    // finish after a newer one. Each append expects the snapshot stream's revision it read, and
    // one that is no newer than the stored snapshot is dropped, so the stream's last snapshot is
    // always the newest (an older one on top would make every load replay what the newer one
    // had already folded).
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let last = store
            .read_stream(&stream, StreamFrom::End, Direction::Backwards, 1)
            .await?;
        let expected = match last.first() {
            Some(stored) if stored_revision(&stored.metadata).is_some_and(|r| r >= revision) => {
                return Ok(());
            }
            Some(stored) => ExpectedRevision::Exact(stored.revision),
            None => ExpectedRevision::NoStream,
        };
        let event = EventData {
            id: uuid::Uuid::new_v4(),
            event_type: SNAPSHOT_EVENT.to_owned(),
            schema_version: SNAPSHOT_VERSION,
            data: Bytes::from(data.clone()),
            metadata: metadata.clone(),
        };
        match store.append(&stream, expected, vec![event]).await {
            Ok(written) => {
                crate::bounded::keep_last(store, &stream, written.next_expected_revision, 1).await;
                return Ok(());
            }
            // Another snapshot landed in between: look again at what it holds.
            Err(StoreError::WrongExpectedRevision { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    tracing::debug!(%member, revision, "member snapshot skipped: the stream kept moving");
    Ok(())
}

/// How often one snapshot is retried against others landing at once (each retry reads the
/// stream again; past this the member simply waits for her next snapshot).
const MAX_WRITE_ATTEMPTS: usize = 4;

/// The snapshot event's metadata: the member revision it reflects, readable without
/// decompressing the state.
#[derive(Serialize, Deserialize)]
struct SnapshotMetadata {
    member_revision: u64,
}

/// The member revision a stored snapshot reflects, from its metadata (`None` for a snapshot
/// written before the metadata held it, which any new snapshot then replaces).
pub fn stored_revision(metadata: &[u8]) -> Option<u64> {
    serde_json::from_slice::<SnapshotMetadata>(metadata)
        .ok()
        .map(|m| m.member_revision)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use loyalty_store::InMemoryStore;

    use super::*;

    fn limits() -> HotLimits {
        HotLimits {
            max_purchases: 8,
            max_redemptions: 8,
            max_processed: 8,
            horizon: TimeDelta::days(2),
            qualifying_horizon: TimeDelta::days(800),
        }
    }

    async fn stored_revision_of(store: &InMemoryStore, member: &MemberId) -> Option<u64> {
        read(store, member, &limits())
            .await
            .expect("read")
            .and_then(|cached| cached.revision)
    }

    #[tokio::test]
    async fn a_snapshot_finishing_after_a_newer_one_is_dropped() {
        // Given the snapshot of alice at revision 39 stored
        let store = InMemoryStore::new();
        let alice = MemberId::new("alice").expect("an id");
        let limits = limits();
        let at = async |revision: u64| {
            write(
                &store,
                &alice,
                MemberState::default(),
                revision,
                Position::new(revision, revision),
                &limits,
            )
            .await
        };
        at(39).await.expect("written");
        // When the one at revision 19, started earlier, finishes after it
        at(19).await.expect("dropped without an error");
        // Then the stream still holds the newer one, and only it
        assert_eq!(stored_revision_of(&store, &alice).await, Some(39));
        // And a newer one still replaces it
        at(59).await.expect("written");
        assert_eq!(stored_revision_of(&store, &alice).await, Some(59));
    }
}
