//! The in-memory store: for tests of the layers above, with the same semantics as every other
//! backend (it runs the same conformance suite). Nothing survives the process.
//!
//! Clones share one store: a clone is how a test "reopens" it. The store's key vault (a
//! [`MemoryVault`]) is shared the same way.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::chain::{self, ChainLink, EventFields, GENESIS, Hash};
use crate::vault::{KeyVault, MemoryVault};
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
    vault: MemoryVault,
}

#[derive(Debug, Default)]
struct State {
    /// `$all`, by position. A map rather than a vector because truncation removes events from
    /// anywhere in it.
    log: BTreeMap<Position, RecordedEvent>,
    streams: HashMap<String, StreamState>,
    /// The offset the next event ends after.
    offset: u64,
    /// The last position ever assigned: it stays the head when its event is truncated.
    head: Position,
    /// One link per event ever appended, in position order, kept when the event is truncated
    /// (about 150 bytes each, for good: this store is for tests). Appends hold the state's
    /// mutex, so the chain is computed in position order.
    chain: Vec<ChainLink>,
}

#[derive(Debug, Default)]
struct StreamState {
    /// The revision of the first event still stored: those below it were truncated.
    first: u64,
    /// Positions of the stored events, by revision from `first`.
    events: VecDeque<Position>,
    /// Event id -> revision of the stored events, to recognise retries.
    ids: HashMap<uuid::Uuid, u64>,
    /// The `stream_hash` of the stream's last event, truncated or not (the default, all
    /// zeros, is `GENESIS`).
    last_hash: Hash,
}

impl StreamState {
    /// The revision the next append starts at. A stream is only created by an append, so a
    /// stored stream's is at least 1, truncated or not.
    fn next_revision(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    fn position_of(&self, revision: u64) -> Option<Position> {
        let index = usize::try_from(revision.checked_sub(self.first)?).ok()?;
        self.events.get(index).copied()
    }
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
                vault: MemoryVault::new(),
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
        Ok(state
            .log
            .range((Bound::Excluded(after), Bound::Unbounded))
            .take(max_count)
            .map(|(_, e)| e.clone())
            .collect())
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
            if let Some(result) = retry_result(stream, existing, &events)? {
                return Ok(result);
            }
            let current = match existing.and_then(|s| s.next_revision().checked_sub(1)) {
                Some(last) => CurrentRevision::Current(last),
                None => CurrentRevision::NoStream,
            };
            expected.check(stream, current)?;
            let entry = state.streams.entry(stream.to_owned()).or_default();
            let mut result = None;
            for event in events {
                let revision = entry.next_revision();
                state.offset += event.size() as u64 + RECORD_HEADER_BYTES;
                let position = Position::new(state.offset, state.offset);
                entry.events.push_back(position);
                entry.ids.insert(event.id, revision);
                let recorded = RecordedEvent {
                    stream: stream.to_owned(),
                    revision,
                    position,
                    id: event.id,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    data: event.data,
                    metadata: event.metadata,
                };
                let event_hash = chain::event_hash(EventFields::from(&recorded));
                let previous = state.chain.last().map_or(GENESIS, |l| l.chain_hash);
                entry.last_hash = chain::link(&entry.last_hash, &event_hash);
                state.chain.push(ChainLink {
                    position,
                    stream: stream.to_owned(),
                    revision,
                    event_hash,
                    stream_hash: entry.last_hash,
                    chain_hash: chain::chain_link(
                        &previous,
                        position,
                        stream,
                        revision,
                        &event_hash,
                    ),
                });
                state.log.insert(position, recorded);
                state.head = position;
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
        let (first, next) = (s.first, s.next_revision());
        let revisions: Vec<u64> = match direction {
            Direction::Forwards => {
                // Truncated revisions are skipped: a read from before them starts at `first`.
                let start = match from {
                    StreamFrom::Start => first,
                    StreamFrom::End => next,
                    StreamFrom::Revision(r) => r.max(first),
                };
                (start..next).take(max_count).collect()
            }
            Direction::Backwards => {
                // Backwards from past the end reads from the last event, as EventStoreDB does,
                // and stops at the first event kept.
                let Some(last) = next.checked_sub(1).filter(|&last| last >= first) else {
                    return Ok(Vec::new());
                };
                let start = match from {
                    StreamFrom::Start => first,
                    StreamFrom::End => last,
                    StreamFrom::Revision(r) => r.min(last),
                };
                if start < first {
                    return Ok(Vec::new());
                }
                (first..=start).rev().take(max_count).collect()
            }
        };
        Ok(revisions
            .into_iter()
            .filter_map(|r| s.position_of(r).and_then(|p| state.log.get(&p)).cloned())
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

    async fn truncate_before(&self, stream: &str, revision: u64) -> Result<(), StoreError> {
        self.inner.limits.check_stream_name(stream)?;
        let mut state = self.state();
        let state = &mut *state;
        let Some(s) = state.streams.get_mut(stream) else {
            return Ok(());
        };
        // Past the end means every event stored now: later appends stay readable.
        let keep_from = revision.min(s.next_revision());
        while s.first < keep_from {
            let Some(position) = s.events.pop_front() else {
                break;
            };
            if let Some(event) = state.log.remove(&position) {
                s.ids.remove(&event.id);
            }
            s.first += 1;
        }
        Ok(())
    }

    async fn stream_revision(&self, stream: &str) -> Result<CurrentRevision, StoreError> {
        self.inner.limits.check_stream_name(stream)?;
        Ok(
            match self
                .state()
                .streams
                .get(stream)
                .and_then(|s| s.next_revision().checked_sub(1))
            {
                Some(last) => CurrentRevision::Current(last),
                None => CurrentRevision::NoStream,
            },
        )
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        Ok(self.state().head)
    }

    async fn read_chain(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<ChainLink>, StoreError> {
        self.inner.limits.check_page(max_count)?;
        let state = self.state();
        let start = state.chain.partition_point(|l| l.position <= after);
        Ok(state.chain[start..]
            .iter()
            .take(max_count)
            .cloned()
            .collect())
    }

    /// The store's own vault: every clone of the store answers the same one.
    fn key_vault(&self) -> Option<Arc<dyn KeyVault>> {
        Some(Arc::new(self.inner.vault.clone()))
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
    let position = existing.position_of(last).ok_or_else(partial)?;
    Ok(Some(AppendResult {
        next_expected_revision: last,
        position,
    }))
}
