//! Between domain events and stored events: `schema::encode`/`decode` for the data, the
//! engine's JSON metadata beside it, and the stream names.

use loyalty_core::{Event, MemberId, PurchaseKey, TransactionId, schema};
use loyalty_store::{Bytes, EventData, RecordedEvent};

use crate::clock::IdGenerator;
use crate::error::EngineError;
use crate::metadata::EventMetadata;

pub const MEMBER_PREFIX: &str = "member-";
pub const TXN_PREFIX: &str = "txn-";

pub(crate) fn member_stream(member: &MemberId) -> String {
    format!("{MEMBER_PREFIX}{member}")
}

/// The reservation stream of a sale: `txn-<store>/<transaction>` (transaction ids are unique per
/// store).
pub(crate) fn txn_stream(sale: &PurchaseKey) -> String {
    format!("{TXN_PREFIX}{sale}")
}

/// The reservation stream written before stores scoped transaction ids: `txn-<transaction>`.
/// Ids never hold `/`, so the two forms cannot name the same stream.
pub(crate) fn legacy_txn_stream(txn: &TransactionId) -> String {
    format!("{TXN_PREFIX}{txn}")
}

/// The member a `member-<id>` stream belongs to.
pub(crate) fn member_of_stream(stream: &str) -> Option<MemberId> {
    stream
        .strip_prefix(MEMBER_PREFIX)
        .and_then(|id| MemberId::parse(id).ok())
}

pub(crate) fn encode(
    event: &Event,
    metadata: &EventMetadata,
    ids: &dyn IdGenerator,
) -> Result<EventData, EngineError> {
    // The last gate before the log: a note in clear here would be there for good (`privacy`).
    if crate::privacy::note_of(event).is_some_and(crate::privacy::needs_seal) {
        return Err(EngineError::Corrupt(format!(
            "a {} with its note in clear reached the log's encoder: notes are sealed first",
            event.event_type()
        )));
    }
    let stored = schema::encode(event);
    // The projection takes the engine's own events instead of decoding what is stored
    // (`decoded::Handoff`): both must be the same event. Checked on every append of every test.
    debug_assert_eq!(
        schema::decode(stored.event_type, stored.schema_version, &stored.data)
            .ok()
            .as_ref(),
        Some(event),
        "an event does not decode to itself"
    );
    // Sized for a typical metadata document (ids, actor, the two times, rules version), so
    // that it is written without growing the buffer several times.
    let mut encoded_metadata = Vec::with_capacity(384);
    serde_json::to_writer(&mut encoded_metadata, metadata)
        .map_err(|e| EngineError::Corrupt(format!("metadata not serialisable: {e}")))?;
    encoded_metadata.shrink_to_fit();
    let metadata = encoded_metadata;
    Ok(EventData {
        id: ids.event_id(),
        event_type: stored.event_type.to_owned(),
        schema_version: stored.schema_version,
        data: Bytes::from(stored.data),
        metadata: Bytes::from(metadata),
    })
}

/// Reads a stored member event. One written by a newer release is its own error, naming the
/// event: deciding or projecting without it would be wrong, so the caller stops there.
pub(crate) fn decode(recorded: &RecordedEvent) -> Result<Event, EngineError> {
    schema::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.data,
    )
    .map_err(|e| match schema::newest_version(&recorded.event_type) {
        Some(newest_known) if recorded.schema_version > newest_known => {
            EngineError::NewerSchema(crate::error::NewerSchemaEvent {
                stream: recorded.stream.clone(),
                revision: recorded.revision,
                position: recorded.position,
                event_type: recorded.event_type.clone(),
                version: recorded.schema_version,
                newest_known,
            })
        }
        _ => EngineError::Schema(e),
    })
}

/// The engine's metadata of a stored event; `None` for events written by someone else.
pub(crate) fn metadata(recorded: &RecordedEvent) -> Option<EventMetadata> {
    serde_json::from_slice(&recorded.metadata).ok()
}
