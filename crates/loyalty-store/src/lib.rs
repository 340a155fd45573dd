//! The book of record: one event store trait shaped after EventStoreDB.
//!
//! Streams are named by string (one per member, `member-<id>`); events in a stream are numbered
//! by revision from 0; every event also has a global [`Position`] in `$all` that only grows.
//! Appends carry an [`ExpectedRevision`] (optimistic concurrency). Event ids deduplicate retries.
//!
//! **Contract** every backend keeps (and the conformance suite checks):
//! - an append is all or nothing, and returns only once it is durable;
//! - positions grow strictly with append order; `$all` never shows a half-written append;
//! - appending events whose ids are already stored in that stream, in the same order, returns
//!   the original [`AppendResult`] and stores nothing new (the retry of a timed-out append).
//!   A retry carries its original expected revision, and with `Exact` or `NoStream` it is
//!   always recognised. With `Any` or `StreamExists` a backend may look only among the
//!   stream's recent events (SQLite: the last 256). Ids already stored in part are
//!   [`StoreError::PartialDuplicate`]. New ids appended where the caller expected the stream
//!   to end are new events;
//! - `$all` never yields system streams (names starting with `$`);
//! - every size is bounded by [`Limits`], and exceeding one is its own error;
//! - [`EventStore::truncate_before`] hides a stream's events below a revision from stream reads
//!   for good, and changes nothing else about the stream: revisions, positions and
//!   [`EventStore::stream_revision`] stay, later appends continue from the stream's last
//!   revision (a stream truncated past its end still exists, as with EventStoreDB's `$tb`).
//!   Truncating at or below an earlier truncation changes nothing. A backend may keep
//!   truncated events in `$all` until it reclaims space (EventStoreDB: until a scavenge); the
//!   embedded stores remove them at once. A retried append whose events were truncated is no
//!   longer recognised as a retry.
#![forbid(unsafe_code)]

use std::fmt;

use async_trait::async_trait;
pub use bytes::Bytes;
pub use uuid::Uuid;

pub mod chain;
mod error;
mod memory;
mod read_ahead;
mod subscription;
pub mod vault;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::StoreError;
pub use memory::InMemoryStore;
pub use read_ahead::ReadAhead;
pub use subscription::{
    SUBSCRIPTION_BUFFER, Subscription, SubscriptionMessage, SubscriptionSender, spawn_catch_up,
};

/// What the writer believes the stream's last revision is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedRevision {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
    /// The stream must exist, whatever its revision.
    StreamExists,
    /// No check.
    Any,
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(r) => write!(f, "revision {r}"),
            Self::StreamExists => f.write_str("stream exists"),
            Self::Any => f.write_str("any"),
        }
    }
}

impl ExpectedRevision {
    /// The optimistic concurrency check: `Ok` if a stream at `actual` satisfies this
    /// expectation, else the conflict error naming both.
    pub fn check(self, stream: &str, actual: CurrentRevision) -> Result<(), StoreError> {
        let ok = match (self, actual) {
            (Self::Any, _)
            | (Self::NoStream, CurrentRevision::NoStream)
            | (Self::StreamExists, CurrentRevision::Current(_)) => true,
            (Self::Exact(e), CurrentRevision::Current(a)) => e == a,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(StoreError::WrongExpectedRevision {
                stream: stream.to_owned(),
                expected: self,
                actual,
            })
        }
    }
}

/// What the stream's last revision actually is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CurrentRevision {
    NoStream,
    Current(u64),
}

impl fmt::Display for CurrentRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Current(r) => write!(f, "revision {r}"),
        }
    }
}

/// A place in `$all`. EventStoreDB positions are a (commit, prepare) pair of log offsets, not
/// consecutive integers; the embedded store uses its sequence number for both. Compare, never
/// do arithmetic on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    /// Before the first event: reading or subscribing "after START" yields everything.
    pub const START: Position = Position {
        commit: 0,
        prepare: 0,
    };

    pub const fn new(commit: u64, prepare: u64) -> Self {
        Self { commit, prepare }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.commit, self.prepare)
    }
}

/// An event to append. `data` and `metadata` are JSON documents (UTF-8 bytes); the store keeps
/// them byte for byte and does not interpret them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Bytes,
    pub metadata: Bytes,
}

impl EventData {
    /// Bytes this event counts against [`Limits::max_append_bytes`].
    pub fn size(&self) -> usize {
        self.event_type.len() + self.data.len() + self.metadata.len()
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub id: Uuid,
    pub event_type: String,
    /// The version the writer gave. 0 marks an event this trait did not write (on a shared
    /// EventStoreDB cluster, another application's event without our metadata envelope): its
    /// `data` and `metadata` are then the raw bytes stored, for the reader to skip.
    pub schema_version: u32,
    pub data: Bytes,
    pub metadata: Bytes,
}

/// One stream's part of [`EventStore::append_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<EventData>,
}

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Revision of the last event of the append: pass it as `Exact` for the next one.
    pub next_expected_revision: u64,
    /// Position of the last event of the append in `$all`.
    pub position: Position,
}

/// Where a stream read starts (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFrom {
    Start,
    End,
    Revision(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// Which events of `$all` a subscription delivers: those whose stream name starts with one of
/// the prefixes (all non-system streams when the list is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFilter {
    pub stream_prefixes: Vec<String>,
}

impl StreamFilter {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn prefixes<I, S>(prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            stream_prefixes: prefixes.into_iter().map(Into::into).collect(),
        }
    }

    pub fn matches(&self, stream: &str) -> bool {
        !stream.starts_with('$')
            && (self.stream_prefixes.is_empty()
                || self
                    .stream_prefixes
                    .iter()
                    .any(|p| stream.starts_with(p.as_str())))
    }
}

/// The explicit limits of a store; exceeding one is an error, never a silent truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events in one append.
    pub max_append_events: usize,
    /// Most bytes (type + data + metadata, summed) in one append. EventStoreDB's default is 1 MiB.
    pub max_append_bytes: usize,
    /// Most events one read may ask for.
    pub max_page_size: usize,
    /// Longest stream name, in bytes.
    pub max_stream_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_append_events: 1_000,
            max_append_bytes: 1024 * 1024,
            max_page_size: 4_096,
            max_stream_name_bytes: 255,
        }
    }
}

impl Limits {
    /// Checks a stream name and an append against these limits. Backends call this first, so
    /// that every backend rejects the same inputs with the same errors.
    pub fn check_append(&self, stream: &str, events: &[EventData]) -> Result<(), StoreError> {
        self.check_stream_name(stream)?;
        if events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if events.len() > self.max_append_events {
            return Err(StoreError::TooManyEvents {
                count: events.len(),
                limit: self.max_append_events,
            });
        }
        let bytes: usize = events.iter().map(EventData::size).sum();
        if bytes > self.max_append_bytes {
            return Err(StoreError::AppendTooLarge {
                bytes,
                limit: self.max_append_bytes,
            });
        }
        // A retry is recognised by its event ids, so they must be unique within one append.
        let mut ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(StoreError::DuplicateEventId(w[0]));
        }
        Ok(())
    }

    /// Checks every part of a multi-stream append, and the parts together against the same
    /// limits as one append (they may be committed as one).
    pub fn check_append_many(&self, appends: &[StreamAppend]) -> Result<(), StoreError> {
        if appends.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        for part in appends {
            self.check_append(&part.stream, &part.events)?;
        }
        let count: usize = appends.iter().map(|a| a.events.len()).sum();
        if count > self.max_append_events {
            return Err(StoreError::TooManyEvents {
                count,
                limit: self.max_append_events,
            });
        }
        let bytes: usize = appends
            .iter()
            .flat_map(|a| a.events.iter().map(EventData::size))
            .sum();
        if bytes > self.max_append_bytes {
            return Err(StoreError::AppendTooLarge {
                bytes,
                limit: self.max_append_bytes,
            });
        }
        Ok(())
    }

    pub fn check_stream_name(&self, stream: &str) -> Result<(), StoreError> {
        if stream.is_empty() || stream.starts_with('$') || stream.len() > self.max_stream_name_bytes
        {
            return Err(StoreError::InvalidStreamName(stream.to_owned()));
        }
        Ok(())
    }

    pub fn check_page(&self, max_count: usize) -> Result<(), StoreError> {
        if max_count == 0 || max_count > self.max_page_size {
            return Err(StoreError::PageTooLarge {
                requested: max_count,
                limit: self.max_page_size,
            });
        }
        Ok(())
    }
}

/// The book of record. Every method is cancel-safe in the sense that dropping the future never
/// leaves a half-written append visible.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if its revision matches `expected`. Returns only once the
    /// events are durable.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError>;

    /// Appends to several streams, in order, each with its own expected revision; returns one
    /// result per part. A store with multi-stream transactions (the embedded one) commits all
    /// parts or none, in one durable write: see [`EventStore::atomic_append_many`]. The default,
    /// for stores without them (EventStoreDB), appends the parts one after the other and stops
    /// at the first failure, so a prefix of the parts may be stored. Callers must be correct
    /// either way; the atomic form saves them a durable write per extra stream.
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let limits = self.limits();
        limits.check_append_many(&appends)?;
        let mut results = Vec::with_capacity(appends.len());
        for part in appends {
            results.push(
                self.append(&part.stream, part.expected, part.events)
                    .await?,
            );
        }
        Ok(results)
    }

    /// Whether [`EventStore::append_many`] is all-or-nothing.
    fn atomic_append_many(&self) -> bool {
        false
    }

    /// Reads up to `max_count` events of one stream. A stream that does not exist reads as
    /// empty.
    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `max_count` events of `$all` strictly after `after`, forwards.
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// A catch-up subscription to `$all`: every matching event strictly after `after` (history
    /// first, then live events as they are appended), in order, with no gap and no duplicate.
    /// [`SubscriptionMessage::CaughtUp`] is sent once when history is exhausted.
    async fn subscribe_all(
        &self,
        after: Position,
        filter: StreamFilter,
    ) -> Result<Subscription, StoreError>;

    /// Makes the events of `stream` with a revision below `revision` unreadable from the
    /// stream, for good: keeps checkpoint, lease and snapshot streams bounded.
    ///
    /// - `read_stream` from [`StreamFrom::Start`] begins at the first kept revision, and a
    ///   backwards read stops there;
    /// - revisions, positions and [`EventStore::stream_revision`] are unchanged, and later
    ///   appends continue from the stream's last revision (an `Exact(last)` append succeeds);
    /// - a `revision` past the stream's end truncates every event it holds now, and the stream
    ///   still exists (as EventStoreDB's `$tb` leaves it): events appended later are readable;
    /// - truncating at or below an earlier truncation changes nothing (so a retry is safe),
    ///   and truncating a stream that does not exist changes nothing;
    /// - `$all`: a backend may keep truncated events there until it reclaims space
    ///   (EventStoreDB keeps them until a scavenge); the embedded stores remove them at once.
    ///
    /// Returns once the truncation is durable. The default refuses, so that stores written for
    /// tests (wrappers that inject faults) need not implement it.
    async fn truncate_before(&self, stream: &str, revision: u64) -> Result<(), StoreError> {
        let _ = (stream, revision);
        Err(StoreError::Backend(
            "truncate_before is not supported by this store".into(),
        ))
    }

    /// The last revision of a stream (also when its events were all truncated). The default
    /// reads the stream's last event, which suits stores that never truncate.
    async fn stream_revision(&self, stream: &str) -> Result<CurrentRevision, StoreError> {
        let last = self
            .read_stream(stream, StreamFrom::End, Direction::Backwards, 1)
            .await?;
        Ok(match last.first() {
            Some(e) => CurrentRevision::Current(e.revision),
            None => CurrentRevision::NoStream,
        })
    }

    /// The last revisions of several streams, in order (`NoStream` for those that do not
    /// exist). The default asks for each in turn; a store that can answers in one round trip
    /// (an import checks tens of thousands of streams).
    async fn stream_revisions(
        &self,
        streams: &[String],
    ) -> Result<Vec<CurrentRevision>, StoreError> {
        let mut out = Vec::with_capacity(streams.len());
        for stream in streams {
            out.push(self.stream_revision(stream).await?);
        }
        Ok(out)
    }

    /// The last position of `$all`, or [`Position::START`] if the store is empty.
    async fn head_position(&self) -> Result<Position, StoreError>;

    /// Up to `max_count` links of the store's hash chain strictly after `after`, forwards,
    /// including the links of truncated events (see [`chain`]). The default, for stores that
    /// do not keep the chain, answers [`StoreError::Unsupported`].
    async fn read_chain(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<chain::ChainLink>, StoreError> {
        let _ = (after, max_count);
        Err(StoreError::Unsupported("a hash chain"))
    }

    /// The key vault kept beside the log (see [`vault`]), if this backend has one: the
    /// embedded and PostgreSQL stores keep it in the same database; EventStoreDB has none (the
    /// server opens a key file of its own).
    fn key_vault(&self) -> Option<std::sync::Arc<dyn vault::KeyVault>> {
        None
    }

    fn limits(&self) -> Limits;
}
