//! The event store trait on EventStoreDB (KurrentDB), through the official `eventstore` gRPC
//! client, for engines that outgrow one machine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loyalty_store::StoreError> {
//! use loyalty_store_eventstoredb::{EventStoreDbOptions, EventStoreDbStore};
//! let store = EventStoreDbStore::connect("esdb://localhost:2113?tls=false", EventStoreDbOptions::default())?;
//! store.wait_ready(std::time::Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
//!
//! Mapping decisions (see the README for the reasons):
//! - expected revisions map one to one; the server's wrong-expected-version reply becomes
//!   [`StoreError::WrongExpectedRevision`] with both revisions; a refusal caused by event ids
//!   that are already stored in part becomes [`StoreError::PartialDuplicate`];
//! - the caller's event ids are sent as EventStoreDB event ids, so the server deduplicates a
//!   retried append and answers it with the original revision;
//! - `schema_version` and `metadata` travel in the custom metadata as a small JSON envelope
//!   (`{"schemaVersion":N,"metadata":<the caller's JSON, verbatim>}`), see [`envelope`];
//! - `$all` positions map field by field, (commit, prepare) to (commit, prepare);
//! - `$all` reads and subscriptions drop system streams (`$`-prefixed); subscriptions are also
//!   filtered on the server (the engine's stream prefixes, or the regex `^[^$]`), and again
//!   here before anything is decoded;
//! - an event without the envelope (another application's, in a shared cluster) is delivered
//!   with `schema_version` 0 and its raw data and custom metadata, never as an error: an
//!   error would end the subscription, which would reopen at the same event forever;
//! - `truncate_before` sets the stream's `$tb` metadata (never lowering it, never past the
//!   stream's end); the server keeps the events in `$all` until a scavenge;
//! - no hash chain is kept: [`EventStore::read_chain`] answers
//!   [`StoreError::Unsupported`], and `loyalty_store::chain::verify` derives the chain from
//!   `$all` as it reads it (`derived: true`). The server assigns the positions, inside its
//!   own commit, so no client can chain an event at append time, and a client-side chain
//!   stored in another stream could not be written in the same transaction as the events it
//!   covers. A derived chain proves the log against an anchor (its root up to the anchor's
//!   position), not event by event. A scavenge after truncation removes the truncated events
//!   from `$all`, which changes the derived chain: anchors taken on EventStoreDB hold between
//!   scavenges, so take a new anchor after each one (and keep the old ones with the report of
//!   the scavenge).
#![forbid(unsafe_code)]

mod connection;
mod convert;
pub mod envelope;
mod options;
mod subscription;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventstore::{
    AppendToStreamOptions, ReadAllOptions, ReadStreamOptions, StreamMetadata, StreamPosition,
};
use loyalty_store::{
    AppendResult, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, Limits,
    Position, RecordedEvent, StoreError, StreamFilter, StreamFrom, Subscription,
};

pub use options::EventStoreDbOptions;

use crate::connection::{Connection, Failure};
use crate::convert::{
    current_from_es, event_from_es, event_to_es, expected_to_es, is_system_stream,
    position_from_es, position_to_es, wire_size,
};

/// Events read per page when `head_position` scans `$all` backwards past system events.
const HEAD_PAGE: usize = 256;
/// Pages `head_position` scans at most; past that, the oldest position scanned is returned
/// (it is at or after every engine event, so reading after it misses nothing new).
const HEAD_SCAN_PAGES: usize = 16;
/// Smallest page read from `$all`, so that skipping system events takes few round trips.
const MIN_ALL_PAGE: usize = 64;
/// Attempts at writing a stream's metadata while others keep changing it.
const METADATA_ATTEMPTS: usize = 8;

/// An [`EventStore`] on an EventStoreDB or KurrentDB server (single node or cluster).
///
/// Clones share one connection. Construction does no I/O: the adapter connects in the
/// background, [`EventStoreDbStore::is_ready`] tells whether it currently can reach the
/// server, and operations retry transient failures a bounded number of times before
/// returning [`StoreError::Unavailable`].
#[derive(Clone)]
pub struct EventStoreDbStore {
    connection: Arc<Connection>,
}

impl fmt::Debug for EventStoreDbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStoreDbStore")
            .field("connection", &self.connection)
            .finish()
    }
}

fn failure(stream: Option<&str>, failure: Failure) -> StoreError {
    match failure {
        Failure::Unavailable(why) => StoreError::Unavailable(why),
        Failure::Client(eventstore::Error::ResourceDeleted) => StoreError::Backend(format!(
            "stream {} was deleted in EventStoreDB",
            stream.unwrap_or("?")
        )),
        Failure::Client(error) => StoreError::Backend(error.to_string()),
    }
}

impl EventStoreDbStore {
    /// A store for the server at `url`: `esdb://host:2113?tls=false` for one node,
    /// `esdb://host1:2113,host2:2113,host3:2113` or `esdb+discover://cluster-dns:2113` for a
    /// cluster. Must be called inside a tokio runtime; returns at once (it does not wait for
    /// the server, see [`EventStoreDbStore::wait_ready`]).
    pub fn connect(url: &str, options: EventStoreDbOptions) -> Result<Self, StoreError> {
        Ok(Self {
            connection: Connection::open(url, options)?,
        })
    }

    /// Whether the last contact with the server succeeded (for a readiness endpoint).
    pub fn is_ready(&self) -> bool {
        self.connection.is_ready()
    }

    /// Waits until the server is reachable, at most `within`.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), StoreError> {
        self.connection.wait_ready(within).await
    }

    fn read_timeout(&self) -> Duration {
        self.connection.options.operation_timeout
    }

    /// Up to `count` records of `$all` from `from` (inclusive), in the given direction, system
    /// events included.
    async fn read_all_raw(
        &self,
        from: StreamPosition<eventstore::Position>,
        backwards: bool,
        count: usize,
    ) -> Result<Vec<eventstore::RecordedEvent>, StoreError> {
        let options = ReadAllOptions::default()
            .position(from)
            .max_count(count)
            .deadline(self.read_timeout());
        let options = if backwards {
            options.backwards()
        } else {
            options.forwards()
        };
        let options = &options;
        self.connection
            .run(|client| async move {
                let mut read = client.read_all(options).await?;
                let mut events = Vec::new();
                while let Some(resolved) = read.next().await? {
                    if let Some(event) = resolved.event {
                        events.push(event);
                    }
                }
                Ok(events)
            })
            .await
            .map_err(|f| failure(None, f))
    }

    /// Up to `count` events of `stream` (empty when the stream does not exist).
    async fn read_stream_raw(
        &self,
        stream: &str,
        from: StreamPosition<u64>,
        backwards: bool,
        count: usize,
    ) -> Result<Vec<eventstore::RecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(from)
            .max_count(count)
            .deadline(self.read_timeout());
        let options = &if backwards {
            options.backwards()
        } else {
            options.forwards()
        };
        self.connection
            .run(|client| async move {
                let mut read = match client.read_stream(stream, options).await {
                    Ok(read) => read,
                    Err(eventstore::Error::ResourceNotFound) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let mut events = Vec::new();
                loop {
                    match read.next().await {
                        Ok(Some(resolved)) => events.extend(resolved.event),
                        Ok(None) | Err(eventstore::Error::ResourceNotFound) => return Ok(events),
                        Err(e) => return Err(e),
                    }
                }
            })
            .await
            .map_err(|f| failure(Some(stream), f))
    }

    /// The stream's metadata (`$$<stream>`'s last event) and that event's revision, if any.
    async fn metadata(&self, stream: &str) -> Result<Option<(u64, StreamMetadata)>, StoreError> {
        let metadata_stream = format!("$${stream}");
        let last = self
            .read_stream_raw(&metadata_stream, StreamPosition::End, true, 1)
            .await?;
        let Some(event) = last.first() else {
            return Ok(None);
        };
        let metadata = event.as_json::<StreamMetadata>().map_err(|e| {
            StoreError::Corrupt(format!(
                "the metadata of stream {stream} cannot be read: {e}"
            ))
        })?;
        Ok(Some((event.revision, metadata)))
    }

    /// The position of the event at `revision` (for answers that carry no position: the
    /// server's reply to an append it recognised as a retry).
    async fn position_of(&self, stream: &str, revision: u64) -> Result<Position, StoreError> {
        let events = self
            .read_stream_raw(stream, StreamPosition::Position(revision), false, 1)
            .await?;
        match events.first() {
            Some(e) if e.revision == revision => Ok(position_from_es(e.position)),
            _ => Err(StoreError::Backend(format!(
                "append to {stream} acknowledged at revision {revision}, which cannot be read"
            ))),
        }
    }

    /// Turns the server's wrong-expected-version reply into the trait's error. The server also
    /// answers so when the append's ids are already stored in part (it cannot be a retry): the
    /// stored events at the expected place tell which case it is.
    async fn conflict(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        actual: CurrentRevision,
        events: &[EventData],
    ) -> StoreError {
        let partial = StoreError::PartialDuplicate {
            stream: stream.to_owned(),
        };
        let conflict = StoreError::WrongExpectedRevision {
            stream: stream.to_owned(),
            expected,
            actual,
        };
        let from = match (expected, actual) {
            // Without a revision to check, the server refuses only an overlap of ids.
            (ExpectedRevision::Any, _)
            | (ExpectedRevision::StreamExists, CurrentRevision::Current(_)) => return partial,
            (ExpectedRevision::StreamExists, CurrentRevision::NoStream)
            | (_, CurrentRevision::NoStream) => return conflict,
            (ExpectedRevision::NoStream, CurrentRevision::Current(_)) => 0,
            (ExpectedRevision::Exact(r), CurrentRevision::Current(current)) => {
                if current <= r {
                    return conflict;
                }
                r + 1
            }
        };
        match self
            .read_stream_raw(stream, StreamPosition::Position(from), false, events.len())
            .await
        {
            Ok(stored) if stored.iter().zip(events).any(|(s, e)| s.id == e.id) => partial,
            Ok(_) => conflict,
            Err(e) => e,
        }
    }
}

#[async_trait]
impl EventStore for EventStoreDbStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        let limits = self.limits();
        limits.check_append(stream, &events)?;
        // The envelope adds a few bytes per event: check what the server will count too.
        let bytes: usize = events.iter().map(wire_size).sum();
        if bytes > limits.max_append_bytes {
            return Err(StoreError::AppendTooLarge {
                bytes,
                limit: limits.max_append_bytes,
            });
        }
        let proposed = events
            .iter()
            .map(event_to_es)
            .collect::<Result<Vec<_>, _>>()?;
        let options = &AppendToStreamOptions::default()
            .expected_revision(expected_to_es(expected))
            .deadline(self.read_timeout());
        let proposed = &proposed;
        let outcome = self
            .connection
            .run(|client| async move {
                client
                    .append_to_stream(stream, options, proposed.clone())
                    .await
            })
            .await;
        match outcome {
            Ok(written) => {
                let revision = written.next_expected_version;
                // The server's answer is the append's commit position in both fields: the
                // position of a single event (whose commit and prepare positions are equal),
                // not that of the last of several. A retry it recognised has no position at
                // all (the client shows the start of `$all`). In both cases, read it back.
                let position =
                    if events.len() == 1 && written.position != eventstore::Position::start() {
                        position_from_es(written.position)
                    } else {
                        self.position_of(stream, revision).await?
                    };
                Ok(AppendResult {
                    next_expected_revision: revision,
                    position,
                })
            }
            Err(Failure::Client(eventstore::Error::WrongExpectedVersion { current, .. })) => {
                Err(self
                    .conflict(stream, expected, current_from_es(current), &events)
                    .await)
            }
            Err(f) => Err(failure(Some(stream), f)),
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: StreamFrom,
        direction: Direction,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limits = self.limits();
        limits.check_stream_name(stream)?;
        limits.check_page(max_count)?;
        let from = match from {
            StreamFrom::Start => StreamPosition::Start,
            StreamFrom::End => StreamPosition::End,
            StreamFrom::Revision(r) => StreamPosition::Position(r),
        };
        let backwards = direction == Direction::Backwards;
        self.read_stream_raw(stream, from, backwards, max_count)
            .await?
            .iter()
            .map(|e| Ok(event_from_es(e)))
            .collect()
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.limits().check_page(max_count)?;
        let mut out = Vec::new();
        let mut cursor = after;
        // Ends: each page moves the cursor forwards, until the page is full or `$all` ends.
        loop {
            // Reading from a position includes the event at it: one more than needed.
            let want = (max_count - out.len()).max(MIN_ALL_PAGE) + 1;
            let from = if cursor == Position::START {
                StreamPosition::Start
            } else {
                StreamPosition::Position(position_to_es(cursor))
            };
            let page = self.read_all_raw(from, false, want).await?;
            let end = page.len() < want;
            for event in &page {
                let position = position_from_es(event.position);
                if position <= cursor {
                    continue;
                }
                cursor = position;
                if is_system_stream(&event.stream_id) {
                    continue;
                }
                out.push(event_from_es(event));
                if out.len() == max_count {
                    return Ok(out);
                }
            }
            if end {
                return Ok(out);
            }
        }
    }

    async fn subscribe_all(
        &self,
        after: Position,
        filter: StreamFilter,
    ) -> Result<Subscription, StoreError> {
        Ok(subscription::spawn(
            Arc::clone(&self.connection),
            after,
            filter,
        ))
    }

    /// Sets the stream's `$tb` metadata through the client's `set_stream_metadata`, keeping
    /// the rest of the metadata, with the metadata stream's revision as the expected one (a
    /// concurrent change is read again and retried). `$tb` is never lowered (that would
    /// bring truncated events back until a scavenge) and never set past the stream's end plus
    /// one: a `$tb` beyond it would also hide events appended later.
    async fn truncate_before(&self, stream: &str, revision: u64) -> Result<(), StoreError> {
        self.limits().check_stream_name(stream)?;
        for _ in 0..METADATA_ATTEMPTS {
            let last = match self.stream_revision(stream).await? {
                CurrentRevision::NoStream => return Ok(()),
                CurrentRevision::Current(last) => last,
            };
            let before = revision.min(last.saturating_add(1));
            let (expected, mut metadata) = match self.metadata(stream).await? {
                Some((version, metadata)) => {
                    (eventstore::ExpectedRevision::Exact(version), metadata)
                }
                None => (
                    eventstore::ExpectedRevision::NoStream,
                    StreamMetadata::default(),
                ),
            };
            if before <= metadata.truncate_before.unwrap_or(0) {
                return Ok(());
            }
            metadata.truncate_before = Some(before);
            let options = &AppendToStreamOptions::default()
                .expected_revision(expected)
                .deadline(self.read_timeout());
            let metadata = &metadata;
            let written =
                self.connection
                    .run(|client| async move {
                        client.set_stream_metadata(stream, options, metadata).await
                    })
                    .await;
            match written {
                Ok(_) => return Ok(()),
                // Someone else changed the metadata meanwhile: read it again.
                Err(Failure::Client(eventstore::Error::WrongExpectedVersion { .. })) => continue,
                Err(f) => return Err(failure(Some(stream), f)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the metadata of stream {stream} changed {METADATA_ATTEMPTS} times while it was \
             being truncated"
        )))
    }

    /// The last event's revision; when no event can be read, `$tb - 1` from the stream's
    /// metadata. The server keeps a stream truncated past its end (its last revision still
    /// counts for appends), but a read shows no event of it, and `truncate_before` never sets
    /// `$tb` past the last revision plus one.
    async fn stream_revision(&self, stream: &str) -> Result<CurrentRevision, StoreError> {
        self.limits().check_stream_name(stream)?;
        let last = self
            .read_stream_raw(stream, StreamPosition::End, true, 1)
            .await?;
        if let Some(event) = last.first() {
            return Ok(CurrentRevision::Current(event.revision));
        }
        Ok(
            match self
                .metadata(stream)
                .await?
                .and_then(|(_, m)| m.truncate_before)
            {
                Some(tb) if tb > 0 => CurrentRevision::Current(tb - 1),
                _ => CurrentRevision::NoStream,
            },
        )
    }

    async fn head_position(&self) -> Result<Position, StoreError> {
        let mut cursor: Option<Position> = None;
        for _ in 0..HEAD_SCAN_PAGES {
            let from = cursor.map_or(StreamPosition::End, |c| {
                StreamPosition::Position(position_to_es(c))
            });
            let page = self.read_all_raw(from, true, HEAD_PAGE).await?;
            let end = page.len() < HEAD_PAGE;
            for event in &page {
                let position = position_from_es(event.position);
                // Whether a backwards read includes its starting position or not, skip it.
                if cursor.is_some_and(|c| position >= c) {
                    continue;
                }
                if !is_system_stream(&event.stream_id) {
                    return Ok(position);
                }
                cursor = Some(position);
            }
            if end {
                return Ok(Position::START);
            }
        }
        Ok(cursor.unwrap_or(Position::START))
    }

    fn limits(&self) -> Limits {
        self.connection.options.limits
    }
}
