//! The server's transaction log: every event in `$all` order, with byte-offset positions.

use std::collections::HashMap;

use bytes::Bytes;
use uuid::Uuid;

/// Bytes a record takes in the log besides its variable parts, so that positions grow by more
/// than one per event (EventStoreDB positions are byte offsets in its transaction file).
const RECORD_OVERHEAD: u64 = 97;

/// First offset of the log: the real server's first records start past a header.
const FIRST_OFFSET: u64 = 4_096;

/// .NET ticks (100 ns) between 0001-01-01 and 1970-01-01, as the server's `created` metadata uses.
const TICKS_AT_UNIX_EPOCH: u128 = 621_355_968_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub stream: String,
    pub revision: u64,
    /// Commit position: the offset of the first event of the append that wrote it.
    pub commit: u64,
    /// Prepare position: the offset of this event's own record.
    pub prepare: u64,
    pub id: Uuid,
    pub event_type: String,
    pub is_json: bool,
    pub created_ticks: u128,
    pub custom_metadata: Bytes,
    pub data: Bytes,
}

impl StoredEvent {
    pub fn position(&self) -> (u64, u64) {
        (self.commit, self.prepare)
    }
}

/// One event as proposed by a writer.
#[derive(Debug, Clone)]
pub(crate) struct Proposed {
    pub id: Uuid,
    pub event_type: String,
    pub is_json: bool,
    pub custom_metadata: Bytes,
    pub data: Bytes,
}

/// What the writer expects of the stream (the protocol's `expected_stream_revision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    Revision(u64),
    NoStream,
    Any,
    StreamExists,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendOutcome {
    /// Written: last revision and the (commit, prepare) of the last event.
    Written { revision: u64, position: (u64, u64) },
    /// The same event ids were already written at that place: nothing new is stored. Like the
    /// real server, the reply carries the revision but no position.
    Idempotent { revision: u64 },
    /// Wrong expected version, with the stream's current revision (`None`: no stream).
    WrongExpectedVersion { current: Option<u64> },
}

#[derive(Debug, Default)]
pub(crate) struct Log {
    events: Vec<StoredEvent>,
    streams: HashMap<String, Vec<usize>>,
    next_offset: u64,
}

impl Log {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn get(&self, index: usize) -> Option<&StoredEvent> {
        self.events.get(index)
    }

    pub fn last_revision(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .map(|indices| indices.len() as u64 - 1)
    }

    /// The stream's `$tb` (truncate before): the `$tb` of the last event of its metadata
    /// stream `$$<stream>`, 0 when there is none. Events below it are hidden from reads of
    /// the stream, as the real server does; they stay in `$all` (the real server keeps them
    /// there until a scavenge).
    pub fn truncate_before(&self, stream: &str) -> u64 {
        let metadata_stream = format!("$${stream}");
        self.streams
            .get(&metadata_stream)
            .and_then(|indices| indices.last())
            .and_then(|&i| serde_json::from_slice::<serde_json::Value>(&self.events[i].data).ok())
            .and_then(|metadata| metadata.get("$tb").and_then(serde_json::Value::as_u64))
            .unwrap_or(0)
    }

    /// The events of one stream, by revision.
    pub fn stream(&self, stream: &str) -> Option<Vec<&StoredEvent>> {
        self.streams
            .get(stream)
            .map(|indices| indices.iter().map(|&i| &self.events[i]).collect())
    }

    /// Index of the first event whose position is at or after `position`.
    pub fn first_index_at_or_after(&self, position: (u64, u64)) -> usize {
        self.events.partition_point(|e| e.position() < position)
    }

    /// Index of the first event whose position is strictly after `position`.
    pub fn first_index_after(&self, position: (u64, u64)) -> usize {
        self.events.partition_point(|e| e.position() <= position)
    }

    pub fn append(
        &mut self,
        stream: &str,
        expected: Expected,
        events: Vec<Proposed>,
        now_ticks: u128,
    ) -> AppendOutcome {
        let current = self.last_revision(stream);
        let existing: Vec<Uuid> = self
            .streams
            .get(stream)
            .map(|indices| indices.iter().map(|&i| self.events[i].id).collect())
            .unwrap_or_default();
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();

        // The real server's idempotency check: the append's ids already stored, in order, at
        // the place the writer expected. The ids matching only in part is a conflict.
        let from = match expected {
            Expected::Revision(r) => Some(r as usize + 1),
            Expected::NoStream => Some(0),
            Expected::Any | Expected::StreamExists => existing.iter().position(|id| *id == ids[0]),
        };
        if let Some(from) = from
            && from < existing.len()
        {
            let stored = &existing[from..existing.len().min(from + ids.len())];
            if stored == ids.as_slice() {
                return AppendOutcome::Idempotent {
                    revision: (from + ids.len() - 1) as u64,
                };
            }
            if matches!(expected, Expected::Any | Expected::StreamExists) {
                return AppendOutcome::WrongExpectedVersion { current };
            }
        }

        let accepted = match expected {
            Expected::Revision(r) => current == Some(r),
            Expected::NoStream => current.is_none(),
            Expected::StreamExists => current.is_some(),
            Expected::Any => true,
        };
        if !accepted {
            return AppendOutcome::WrongExpectedVersion { current };
        }

        let commit = self.next_offset.max(FIRST_OFFSET);
        let mut offset = commit;
        let mut revision = current.map_or(0, |r| r + 1);
        let mut last = (commit, commit);
        for event in events {
            let size = RECORD_OVERHEAD
                + (stream.len() + event.event_type.len() + event.data.len()) as u64
                + event.custom_metadata.len() as u64;
            let stored = StoredEvent {
                stream: stream.to_owned(),
                revision,
                commit,
                prepare: offset,
                id: event.id,
                event_type: event.event_type,
                is_json: event.is_json,
                created_ticks: now_ticks,
                custom_metadata: event.custom_metadata,
                data: event.data,
            };
            last = stored.position();
            self.streams
                .entry(stream.to_owned())
                .or_default()
                .push(self.events.len());
            self.events.push(stored);
            offset += size;
            revision += 1;
        }
        self.next_offset = offset;
        AppendOutcome::Written {
            revision: revision - 1,
            position: last,
        }
    }
}

/// Now, in .NET ticks since 0001-01-01, as the server stamps `created`.
pub(crate) fn now_ticks() -> u128 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    TICKS_AT_UNIX_EPOCH + since_epoch.as_nanos() / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed(ids: &[Uuid]) -> Vec<Proposed> {
        ids.iter()
            .map(|&id| Proposed {
                id,
                event_type: "T".to_owned(),
                is_json: true,
                custom_metadata: Bytes::new(),
                data: Bytes::from_static(b"{}"),
            })
            .collect()
    }

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn positions_are_byte_offsets_with_one_commit_position_per_append() {
        let mut log = Log::default();
        let outcome = log.append("s", Expected::NoStream, proposed(&ids(3)), 0);
        let events = log.stream("s").unwrap();
        assert!(events.iter().all(|e| e.commit == FIRST_OFFSET));
        assert_eq!(events[0].prepare, FIRST_OFFSET);
        assert!(events[1].prepare - events[0].prepare > RECORD_OVERHEAD);
        assert_eq!(
            outcome,
            AppendOutcome::Written {
                revision: 2,
                position: events[2].position()
            }
        );
    }

    #[test]
    fn a_retry_at_the_expected_place_is_idempotent_whatever_happened_since() {
        let mut log = Log::default();
        let first = ids(2);
        log.append("s", Expected::NoStream, proposed(&first), 0);
        log.append("s", Expected::Revision(1), proposed(&ids(1)), 0);

        for expected in [Expected::NoStream, Expected::Any, Expected::StreamExists] {
            let retry = log.append("s", expected, proposed(&first), 0);
            assert_eq!(
                retry,
                AppendOutcome::Idempotent { revision: 1 },
                "{expected:?}"
            );
        }
        let prefix = log.append("s", Expected::NoStream, proposed(&first[..1]), 0);
        assert_eq!(prefix, AppendOutcome::Idempotent { revision: 0 });
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn ids_stored_only_in_part_are_a_wrong_expected_version() {
        let mut log = Log::default();
        let first = ids(2);
        log.append("s", Expected::NoStream, proposed(&first), 0);

        let overlapping = [first[1], Uuid::new_v4()];
        let reordered = [first[1], first[0]];
        for attempt in [&overlapping, &reordered] {
            let outcome = log.append("s", Expected::Any, proposed(attempt), 0);
            assert_eq!(
                outcome,
                AppendOutcome::WrongExpectedVersion { current: Some(1) }
            );
        }
        let stale = log.append("s", Expected::Revision(0), proposed(&overlapping), 0);
        assert_eq!(
            stale,
            AppendOutcome::WrongExpectedVersion { current: Some(1) }
        );
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn truncate_before_is_the_tb_of_the_last_metadata_event() {
        let mut log = Log::default();
        assert_eq!(log.truncate_before("s"), 0);
        let metadata = |json: &'static str| {
            vec![Proposed {
                id: Uuid::new_v4(),
                event_type: "$metadata".to_owned(),
                is_json: true,
                custom_metadata: Bytes::new(),
                data: Bytes::from_static(json.as_bytes()),
            }]
        };
        log.append("$$s", Expected::Any, metadata(r#"{"$tb":3}"#), 0);
        assert_eq!(log.truncate_before("s"), 3);
        assert_eq!(log.truncate_before("s2"), 0);
        log.append(
            "$$s",
            Expected::Any,
            metadata(r#"{"$tb":7,"$maxAge":60}"#),
            0,
        );
        assert_eq!(log.truncate_before("s"), 7);
        log.append("$$s", Expected::Any, metadata(r#"{"$maxAge":60}"#), 0);
        assert_eq!(log.truncate_before("s"), 0);
    }

    #[test]
    fn expected_revisions_are_checked_like_the_real_server() {
        let mut log = Log::default();
        let missing = log.append("s", Expected::StreamExists, proposed(&ids(1)), 0);
        assert_eq!(
            missing,
            AppendOutcome::WrongExpectedVersion { current: None }
        );
        let ahead = log.append("s", Expected::Revision(0), proposed(&ids(1)), 0);
        assert_eq!(ahead, AppendOutcome::WrongExpectedVersion { current: None });
        log.append("s", Expected::Any, proposed(&ids(1)), 0);
        let exists = log.append("s", Expected::NoStream, proposed(&ids(1)), 0);
        assert_eq!(
            exists,
            AppendOutcome::WrongExpectedVersion { current: Some(0) }
        );
        let exact = log.append("s", Expected::Revision(0), proposed(&ids(1)), 0);
        assert!(matches!(exact, AppendOutcome::Written { revision: 1, .. }));
    }
}
