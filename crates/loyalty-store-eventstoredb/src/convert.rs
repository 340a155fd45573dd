//! Mappings between the trait's types and the `eventstore` client's, one to one.

use loyalty_store::{
    CurrentRevision, EventData, ExpectedRevision, Position, RecordedEvent, StoreError,
};

use crate::envelope;

/// `$all` positions map field by field: commit to commit, prepare to prepare. The trait orders
/// positions by (commit, prepare), which is `$all` order in EventStoreDB too.
pub(crate) fn position_from_es(p: eventstore::Position) -> Position {
    Position::new(p.commit, p.prepare)
}

pub(crate) fn position_to_es(p: Position) -> eventstore::Position {
    eventstore::Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

pub(crate) fn expected_to_es(expected: ExpectedRevision) -> eventstore::ExpectedRevision {
    match expected {
        ExpectedRevision::NoStream => eventstore::ExpectedRevision::NoStream,
        ExpectedRevision::Exact(r) => eventstore::ExpectedRevision::Exact(r),
        ExpectedRevision::StreamExists => eventstore::ExpectedRevision::StreamExists,
        ExpectedRevision::Any => eventstore::ExpectedRevision::Any,
    }
}

pub(crate) fn current_from_es(current: eventstore::CurrentRevision) -> CurrentRevision {
    match current {
        eventstore::CurrentRevision::Current(r) => CurrentRevision::Current(r),
        eventstore::CurrentRevision::NoStream => CurrentRevision::NoStream,
    }
}

/// System streams (`$settings`, `$stats-...`, `$$...` metadata streams) are the server's, not
/// the engine's: `$all` reads and subscriptions drop them.
pub(crate) fn is_system_stream(stream: &str) -> bool {
    stream.starts_with('$')
}

/// An event as sent: `data` with the JSON content type when it is exactly one JSON value (the
/// server keeps only that flag), the schema version and metadata in the custom metadata
/// envelope, and the caller's event id so the server can deduplicate a retried append.
pub(crate) fn event_to_es(event: &EventData) -> Result<eventstore::EventData, StoreError> {
    let base = match envelope::exact_json(&event.data) {
        Some(raw) => eventstore::EventData::json(&event.event_type, &raw)
            .map_err(|e| StoreError::Backend(format!("encoding event {}: {e}", event.id)))?,
        None => eventstore::EventData::binary(&event.event_type, event.data.clone()),
    };
    Ok(base
        .id(event.id)
        .metadata(envelope::encode(event.schema_version, &event.metadata)))
}

/// Bytes an event counts against the server's `MaxAppendSize`, as the server computes it
/// (`Event.SizeOnDisk`): data, custom metadata (the envelope) and the event type in UTF-16.
pub(crate) fn wire_size(event: &EventData) -> usize {
    event.data.len()
        + envelope::encode(event.schema_version, &event.metadata).len()
        + event.event_type.encode_utf16().count() * 2
}

/// An event as read. One whose custom metadata is not our envelope was not written through
/// the trait (another application's stream in a shared cluster, or an edit by hand): it comes
/// with `schema_version` 0 and its raw data and custom metadata, for the reader to count and
/// skip. Failing instead would end a subscription that then reopens at the same event forever.
pub(crate) fn event_from_es(event: &eventstore::RecordedEvent) -> RecordedEvent {
    let (schema_version, metadata) = match envelope::decode(&event.custom_metadata) {
        Ok(decoded) => decoded,
        Err(why) => {
            tracing::debug!(
                stream = %event.stream_id,
                revision = event.revision,
                %why,
                "an event not written by loyalty: delivered with schema version 0"
            );
            (FOREIGN_SCHEMA_VERSION, event.custom_metadata.clone())
        }
    };
    RecordedEvent {
        stream: event.stream_id.clone(),
        revision: event.revision,
        position: position_from_es(event.position),
        id: event.id,
        event_type: event.event_type.clone(),
        schema_version,
        data: event.data.clone(),
        metadata,
    }
}

/// The schema version of an event without our envelope (see [`event_from_es`]).
pub(crate) const FOREIGN_SCHEMA_VERSION: u32 = 0;
