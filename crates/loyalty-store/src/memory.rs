//! The in-memory store: for tests of the layers above, with the same semantics as every other
//! backend (it runs the same conformance suite). Nothing survives the process.
//!
//! Clones share one store: a clone is how a test "reopens" it.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{
    AppendResult, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, Limits,
    Position, RecordedEvent, StoreError, StreamFilter, StreamFrom, Subscription, spawn_catch_up,
};

/// Bytes each event adds to the log offset beyond its payload, as a stand-in for a record
/// header. Positions are therefore log offsets, far from consecutive, like EventStoreDB's: the
/// layers above must not assume `position + 1`.
const RECORD_HEADER_BYTES: u64 = 64;

#[derive(Debug, Clone)]
pub struct InMemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    head: watch::Sender<Position>,
    limits: Limits,
}

#[derive(Debug, Default)]
struct State {
    /// `$all`, in position order.
    log: Vec<RecordedEvent>,
    streams: HashMap<String, StreamState>,
    /// The offset the next event ends after.
    offset: u64,
}

#[derive(Debug, Default)]
struct StreamState {
    /// Indexes into the log, by revision.
    events: Vec<usize>,
    /// Event id -> revision, to recognise retries.
    ids: HashMap<uuid::Uuid, u64>,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryStore {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        let (head, _) = watch::channel(Position::START);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                head,
                limits,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied append: appends mutate
        // only after every check has passed, so the state is usable even if poisoned.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.limits.check_page(max_count)?;
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let start = state.log.partition_point(|e| e.position <= after);
        Ok(state.log[start..].iter().take(max_count).cloned().collect())
    }
}

#[async_trait]
impl EventStore for InMemoryStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.limits.check_append(stream, &events)?;
        let result = {
            let mut state = self.state();
            let state = &mut *state;
            let existing = state.streams.get(stream);
            if let Some(result) = retry_result(stream, existing, &state.log, &events)? {
                return Ok(result);
            }
            let current = match existing.and_then(|s| s.events.len().checked_sub(1)) {
                Some(last) => CurrentRevision::Current(last as u64),
                None => CurrentRevision::NoStream,
            };
            expected.check(stream, current)?;
            let entry = state.streams.entry(stream.to_owned()).or_default();
            let mut result = None;
            for event in events {
                let revision = entry.events.len() as u64;
                state.offset += event.size() as u64 + RECORD_HEADER_BYTES;
                let position = Position::new(state.offset, state.offset);
                entry.events.push(state.log.len());
                entry.ids.insert(event.id, revision);
                state.log.push(RecordedEvent {
                    stream: stream.to_owned(),
                    revision,
                    position,
                    id: event.id,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    data: event.data,
                    metadata: event.metadata,
                });
                result = Some(AppendResult {
                    next_expected_revision: revision,
                    position,
                });
            }
            result.ok_or(StoreError::EmptyAppend)?
        };
        self.inner.head.send_replace(result.position);
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.limits.check_stream_name(stream)?;
        self.inner.limits.check_page(max_count)?;
        let state = self.state();
        let Some(s) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let len = s.events.len() as u64;
        let revisions: Vec<u64> = match direction {
            Direction::Forwards => {
                let start = match from {
                    StreamFrom::Start => 0,
                    StreamFrom::End => len,
                    StreamFrom::Revision(r) => r,
                };
                (start..len).take(max_count).collect()
            }
            Direction::Backwards => {
                // Backwards from past the end reads from the last event, as EventStoreDB does.
                let last = len - 1; // a stored stream has at least one event
                let start = match from {
                    StreamFrom::Start => 0,
                    StreamFrom::End => last,
                    StreamFrom::Revision(r) => r.min(last),
                };
                (0..=start).rev().take(max_count).collect()
            }
        };
        Ok(revisions
            .into_iter()
            .map(|r| state.log[s.events[r as usize]].clone())
            .collect())
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, max_count)
    }

    async fn subscribe_all(
        &self,
        after: Position,
        filter: StreamFilter,
    ) -> Result<Subscription, StoreError> {
        let inner = Arc::clone(&self.inner);
        let page = self.inner.limits.max_page_size.min(256);
        Ok(spawn_catch_up(
            move |after, max| {
                let result = inner.read_all(after, max);
                async move { result }
            },
            self.inner.head.subscribe(),
            after,
            filter,
            page,
        ))
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(self
            .state()
            .log
            .last()
            .map_or(Position::START, |e| e.position))
    }

    fn limits(&self) -> Limits {
        self.inner.limits
    }
}

/// If every event id is already stored in the stream, consecutively and in the same order, the
/// append is a retry: its original result. Some but not all: an error.
fn retry_result(
    stream: &str,
    existing: Option<&StreamState>,
    log: &[RecordedEvent],
    events: &[EventData],
) -> Result<Option<AppendResult>, StoreError> {
    let Some(existing) = existing else {
        return Ok(None);
    };
    let found: Vec<Option<u64>> = events
        .iter()
        .map(|e| existing.ids.get(&e.id).copied())
        .collect();
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    let partial = || StoreError::PartialDuplicate {
        stream: stream.to_owned(),
    };
    let Some(Some(first)) = found.first().copied() else {
        return Err(partial());
    };
    for (offset, revision) in found.iter().enumerate() {
        if *revision != Some(first + offset as u64) {
            return Err(partial());
        }
    }
    let last = first + events.len() as u64 - 1;
    let position = log[existing.events[last as usize]].position;
    Ok(Some(AppendResult {
        next_expected_revision: last,
        position,
    }))
}
