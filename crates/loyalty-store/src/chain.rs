//! Tamper evidence: every stored event's hash, chained to the previous event of its stream and
//! to the previous event of `$all`, computed by the store when it appends.
//!
//! - `event_hash` covers everything the store keeps of an event: its position, stream,
//!   revision, id, type, schema version, data and metadata (each length-prefixed, so no two
//!   events encode alike);
//! - `stream_hash = link(previous stream_hash, event_hash)`, from [`GENESIS`] at the stream's
//!   first event: a member's statement is proven by her stream alone;
//! - `chain_hash = chain_link(previous chain_hash, position, stream, revision, event_hash)` in
//!   position order over every event ever appended, from [`GENESIS`]: the head of this chain
//!   is what an anchor signs. It commits to the link's labels too, because a truncated event's
//!   link is all that is left of it: a link relabelled as a truncatable stream's would otherwise
//!   hide a deleted member event. (The stream hash needs no such cover: `verify` recomputes it
//!   from the event hashes and labels the chain protects.)
//!
//! A store that computes the chain keeps one [`ChainLink`] per event for good, also when the
//! event is truncated (`truncate_before` removes the event's bytes, never its link), so that
//! the chain still verifies across checkpoint and snapshot streams that are kept short.
//! Changing one byte of a stored event changes its `event_hash`; rewriting the stored hashes
//! to match changes every `chain_hash` after it, which an anchor kept outside the store shows.
//!
//! A store that does not keep the chain (EventStoreDB: the server assigns positions, so no
//! client can chain at append) answers [`StoreError::Unsupported`] to
//! [`EventStore::read_chain`](crate::EventStore::read_chain); [`verify`] then derives the
//! chain from `$all` as it reads, which proves the log against an anchor, not event by event.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::{EventStore, Position, RecordedEvent, StoreError, Uuid};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash before the first event (of the store, and of each stream).
pub const GENESIS: Hash = [0; 32];

/// Domain separation: a digest of one kind can never be taken for one of the other.
const EVENT_TAG: &[u8] = b"loyalty-event-v1\0";
const LINK_TAG: &[u8] = b"loyalty-link-v1\0";
const CHAIN_TAG: &[u8] = b"loyalty-chain-v1\0";

/// What an event's hash covers, borrowed from wherever the backend holds it.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub position: Position,
    pub stream: &'a str,
    pub revision: u64,
    pub id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
}

impl<'a> From<&'a RecordedEvent> for EventFields<'a> {
    fn from(e: &'a RecordedEvent) -> Self {
        EventFields {
            position: e.position,
            stream: &e.stream,
            revision: e.revision,
            id: e.id,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            data: &e.data,
            metadata: &e.metadata,
        }
    }
}

/// The hash of one event's stored content.
pub fn event_hash(e: EventFields<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(EVENT_TAG);
    h.update(e.position.commit.to_be_bytes());
    h.update(e.position.prepare.to_be_bytes());
    bytes(&mut h, e.stream.as_bytes());
    h.update(e.revision.to_be_bytes());
    h.update(e.id.as_bytes());
    bytes(&mut h, e.event_type.as_bytes());
    h.update(e.schema_version.to_be_bytes());
    bytes(&mut h, e.data);
    bytes(&mut h, e.metadata);
    h.finalize().into()
}

fn bytes(h: &mut Sha256, b: &[u8]) {
    h.update((b.len() as u64).to_be_bytes());
    h.update(b);
}

/// The next hash of a chain whose last hash is `previous`.
pub fn link(previous: &Hash, event_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(LINK_TAG);
    h.update(previous);
    h.update(event_hash);
    h.finalize().into()
}

/// The next hash of the store-wide chain: it commits to the event's hash and to the place the
/// link names (position, stream, revision), so that a link whose event was truncated, or
/// deleted, cannot be relabelled (say, as a bookkeeping stream's, which may be truncated)
/// without changing every chain hash after it.
pub fn chain_link(
    previous: &Hash,
    position: Position,
    stream: &str,
    revision: u64,
    event_hash: &Hash,
) -> Hash {
    let mut h = Sha256::new();
    h.update(CHAIN_TAG);
    h.update(previous);
    h.update(position.commit.to_be_bytes());
    h.update(position.prepare.to_be_bytes());
    bytes(&mut h, stream.as_bytes());
    h.update(revision.to_be_bytes());
    h.update(event_hash);
    h.finalize().into()
}

/// One event's place in the chain, as the store keeps it (also after the event is truncated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub position: Position,
    pub stream: String,
    pub revision: u64,
    pub event_hash: Hash,
    pub stream_hash: Hash,
    pub chain_hash: Hash,
}

/// What [`verify`] checks, and how far.
#[derive(Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// The last position to verify (inclusive): an anchor's. `None` verifies up to the head
    /// the store has when the walk starts.
    pub up_to: Option<Position>,
    /// Whether `truncate_before` may have removed events of this stream. A link whose event is
    /// gone from `$all` is counted as truncated when this says yes, and is a mismatch when it
    /// says no: a member's ledger is never truncated, so a missing event there was deleted.
    pub may_truncate: &'a (dyn Fn(&str) -> bool + Send + Sync),
}

impl fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("up_to", &self.up_to)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`verify`]. A store whose chain verifies has `mismatch == None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The store keeps no chain: it was derived from `$all` as read (see the module docs), so
    /// only its head means anything, compared with an anchor's.
    pub derived: bool,
    /// Links walked (derived ones included), up to the mismatch if there is one.
    pub links: u64,
    /// Events of `$all` read and hashed (and compared with their link when the store keeps
    /// the chain).
    pub events_checked: u64,
    /// Links whose event `truncate_before` removed from `$all`.
    pub truncated: u64,
    /// The last link that verified: what an anchor signs. `None` for an empty store.
    pub head: Option<ChainHead>,
    /// The first event that does not match, where the walk stopped.
    pub mismatch: Option<ChainMismatch>,
}

/// The end of the verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub position: Position,
    pub chain_hash: Hash,
}

/// The first event whose content or link does not match the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMismatch {
    pub position: Position,
    pub stream: String,
    pub revision: u64,
    pub reason: String,
}

impl fmt::Display for ChainMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "position {}, stream {}, revision {}: {}",
            self.position, self.stream, self.revision, self.reason
        )
    }
}

/// Walks the store's chain from [`GENESIS`] together with `$all`, page by page (the store's
/// `max_page_size`), up to `options.up_to` (inclusive) or the store's head as it is when the
/// walk starts (appends go on meanwhile: a link read later would otherwise meet an event not
/// yet read, or the other way round), and stops at the first mismatch:
///
/// - every link's `chain_hash` is `link(previous chain_hash, event_hash)`, and its
///   `stream_hash` is `link(previous stream_hash of its stream, event_hash)`;
/// - every event still in `$all` has a link at its position, naming its stream and revision,
///   whose `event_hash` is the hash of the event as read;
/// - a link whose event is gone from `$all` is truncated, and a mismatch unless
///   `options.may_truncate` allows it for its stream.
///
/// A store that keeps no chain ([`StoreError::Unsupported`]) has it derived from `$all`:
/// `derived` is then true, nothing can mismatch, and the head is what an anchor is checked
/// against. Store errors end the walk as errors, never as mismatches.
pub async fn verify(
    store: &dyn EventStore,
    options: VerifyOptions<'_>,
) -> Result<ChainReport, StoreError> {
    let page = store.limits().max_page_size;
    let head = store.head_position().await?;
    let end = options.up_to.map_or(head, |up_to| up_to.min(head));
    let first = match store.read_chain(Position::START, page).await {
        Err(StoreError::Unsupported(_)) => return derive(store, end, page).await,
        other => other?,
    };
    let mut walk = Walk {
        may_truncate: options.may_truncate,
        report: ChainReport {
            derived: false,
            links: 0,
            events_checked: 0,
            truncated: 0,
            head: None,
            mismatch: None,
        },
        chain: GENESIS,
        last_position: Position::START,
        streams: HashMap::new(),
    };
    let mut links = Pages::new();
    links.refill(first, |l| l.position);
    let mut events = Pages::new();
    loop {
        if links.needs_more() {
            let after = links.after;
            links.refill(store.read_chain(after, page).await?, |l| l.position);
        }
        if events.needs_more() {
            let after = events.after;
            events.refill(store.read_all(after, page).await?, |e| e.position);
        }
        let link = links.items.front().filter(|l| l.position <= end);
        let event = events.items.front().filter(|e| e.position <= end);
        let mismatch = match (link, event) {
            (None, None) => break,
            (Some(l), Some(e)) if l.position == e.position => {
                let mismatch = walk.step(l, Some(e));
                links.items.pop_front();
                events.items.pop_front();
                mismatch
            }
            // The event comes before the next link, or after the last one.
            (Some(l), Some(e)) if e.position < l.position => {
                Some(mismatch_at(e, "the event has no link in the chain"))
            }
            (None, Some(e)) => Some(mismatch_at(e, "the event has no link in the chain")),
            // The link's event is gone from `$all` (the next event is further on, or none).
            (Some(l), _) => {
                let mismatch = walk.step(l, None);
                links.items.pop_front();
                mismatch
            }
        };
        if let Some(mismatch) = mismatch {
            walk.report.mismatch = Some(mismatch);
            break;
        }
    }
    Ok(walk.report)
}

/// The state of a walk over stored links.
struct Walk<'a> {
    may_truncate: &'a (dyn Fn(&str) -> bool + Send + Sync),
    report: ChainReport,
    chain: Hash,
    last_position: Position,
    /// Each stream's last `stream_hash`, to check the next link of that stream. Memory: one
    /// entry per stream in the store (its name, 32 bytes of hash and the map's overhead: about
    /// 100 bytes for a `member-<uuid>` stream), so some 100 MB for a million members. Reading
    /// the previous link back from the store instead would cost a round trip per event.
    streams: HashMap<Box<str>, Hash>,
}

impl Walk<'_> {
    /// Checks one link (and its event, if still in `$all`) and moves the walk past it.
    fn step(&mut self, l: &ChainLink, event: Option<&RecordedEvent>) -> Option<ChainMismatch> {
        let at = |reason: String| {
            Some(ChainMismatch {
                position: l.position,
                stream: l.stream.clone(),
                revision: l.revision,
                reason,
            })
        };
        if l.position <= self.last_position {
            return at(format!(
                "the link comes after the link at {}, not before it",
                self.last_position
            ));
        }
        if l.chain_hash
            != chain_link(
                &self.chain,
                l.position,
                &l.stream,
                l.revision,
                &l.event_hash,
            )
        {
            return at(
                "the chain is broken here: the link's chain hash does not follow from \
                 the previous link's and its event hash"
                    .to_owned(),
            );
        }
        let previous = self
            .streams
            .get(l.stream.as_str())
            .copied()
            .unwrap_or(GENESIS);
        if l.stream_hash != link(&previous, &l.event_hash) {
            return at(
                "the stream's chain is broken here: the link's stream hash does not \
                 follow from the stream's previous link and its event hash"
                    .to_owned(),
            );
        }
        match event {
            Some(e) => {
                self.report.events_checked += 1;
                if (e.stream.as_str(), e.revision) != (l.stream.as_str(), l.revision) {
                    return at(format!(
                        "the event at this position is revision {} of stream {}, not the one \
                         its link names",
                        e.revision, e.stream
                    ));
                }
                if event_hash(e.into()) != l.event_hash {
                    return at("the event's stored content does not match its hash in the \
                         chain: it was changed after it was appended"
                        .to_owned());
                }
            }
            None => {
                if !(self.may_truncate)(&l.stream) {
                    return at("the event is gone from $all, and its stream is never \
                         truncated: it was deleted"
                        .to_owned());
                }
                self.report.truncated += 1;
            }
        }
        self.chain = l.chain_hash;
        self.last_position = l.position;
        match self.streams.get_mut(l.stream.as_str()) {
            Some(hash) => *hash = l.stream_hash,
            None => {
                self.streams.insert(l.stream.as_str().into(), l.stream_hash);
            }
        }
        self.report.links += 1;
        self.report.head = Some(ChainHead {
            position: l.position,
            chain_hash: l.chain_hash,
        });
        None
    }
}

fn mismatch_at(e: &RecordedEvent, reason: &str) -> ChainMismatch {
    ChainMismatch {
        position: e.position,
        stream: e.stream.clone(),
        revision: e.revision,
        reason: reason.to_owned(),
    }
}

/// One page at a time of a forward read (links or events), and where the next one starts.
struct Pages<T> {
    items: VecDeque<T>,
    after: Position,
    /// The last read answered nothing: there is no more.
    done: bool,
}

impl<T> Pages<T> {
    fn new() -> Self {
        Self {
            items: VecDeque::new(),
            after: Position::START,
            done: false,
        }
    }

    fn needs_more(&self) -> bool {
        self.items.is_empty() && !self.done
    }

    fn refill(&mut self, page: Vec<T>, position: impl Fn(&T) -> Position) {
        match page.last() {
            Some(last) => self.after = position(last),
            None => self.done = true,
        }
        self.items.extend(page);
    }
}

/// The chain of a store that keeps none, computed from `$all` as it is read. Stream hashes are
/// not computed: nothing stored could be checked against them, and the report has no use for
/// them, so the walk keeps no per-stream memory.
async fn derive(
    store: &dyn EventStore,
    end: Position,
    page: usize,
) -> Result<ChainReport, StoreError> {
    let mut report = ChainReport {
        derived: true,
        links: 0,
        events_checked: 0,
        truncated: 0,
        head: None,
        mismatch: None,
    };
    let mut chain = GENESIS;
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, page).await?;
        if batch.is_empty() {
            return Ok(report);
        }
        for e in &batch {
            if e.position > end {
                return Ok(report);
            }
            if e.position <= after {
                report.mismatch = Some(mismatch_at(
                    e,
                    "$all went back: the event comes after a later position",
                ));
                return Ok(report);
            }
            after = e.position;
            chain = chain_link(
                &chain,
                e.position,
                &e.stream,
                e.revision,
                &event_hash(e.into()),
            );
            report.links += 1;
            report.events_checked += 1;
            report.head = Some(ChainHead {
                position: e.position,
                chain_hash: chain,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::{
        AppendResult, Bytes, Direction, EventData, ExpectedRevision, InMemoryStore, Limits,
        StreamFilter, StreamFrom, Subscription,
    };

    type Edit<T> = Arc<dyn Fn(&mut Vec<T>) + Send + Sync>;

    /// The in-memory store with what it answers edited on the way out: a stored event or link
    /// changed, dropped or never kept, as an attacker with the file would leave it.
    struct Tampered {
        inner: InMemoryStore,
        events: Edit<RecordedEvent>,
        /// `None`: the store keeps no chain (as EventStoreDB).
        links: Option<Edit<ChainLink>>,
    }

    impl Tampered {
        fn new(inner: &InMemoryStore) -> Self {
            Self {
                inner: inner.clone(),
                events: Arc::new(|_| {}),
                links: Some(Arc::new(|_| {})),
            }
        }
    }

    #[async_trait]
    impl EventStore for Tampered {
        async fn append(
            &self,
            stream: &str,
            expected: ExpectedRevision,
            events: Vec<EventData>,
        ) -> Result<AppendResult, StoreError> {
            self.inner.append(stream, expected, events).await
        }

        async fn read_stream(
            &self,
            stream: &str,
            from: StreamFrom,
            direction: Direction,
            max_count: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.inner
                .read_stream(stream, from, direction, max_count)
                .await
        }

        async fn read_all(
            &self,
            after: Position,
            max_count: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            let mut page = self.inner.read_all(after, max_count).await?;
            (self.events)(&mut page);
            Ok(page)
        }

        async fn subscribe_all(
            &self,
            after: Position,
            filter: StreamFilter,
        ) -> Result<Subscription, StoreError> {
            self.inner.subscribe_all(after, filter).await
        }

        async fn head_position(&self) -> Result<Position, StoreError> {
            self.inner.head_position().await
        }

        async fn read_chain(
            &self,
            after: Position,
            max_count: usize,
        ) -> Result<Vec<ChainLink>, StoreError> {
            let Some(edit) = &self.links else {
                return Err(StoreError::Unsupported("a hash chain"));
            };
            let mut page = self.inner.read_chain(after, max_count).await?;
            edit(&mut page);
            Ok(page)
        }

        fn limits(&self) -> Limits {
            self.inner.limits()
        }
    }

    fn event(n: u64) -> EventData {
        EventData {
            id: Uuid::new_v4(),
            event_type: "PointsEarned".to_owned(),
            schema_version: 1,
            data: Bytes::from(format!(r#"{{"points":"{n}"}}"#)),
            metadata: Bytes::from_static(b"{}"),
        }
    }

    fn events(count: u64) -> Vec<EventData> {
        (0..count).map(event).collect()
    }

    fn checkpoints(stream: &str) -> bool {
        stream.starts_with("checkpoint-")
    }

    fn options(may_truncate: &(dyn Fn(&str) -> bool + Send + Sync)) -> VerifyOptions<'_> {
        VerifyOptions {
            up_to: None,
            may_truncate,
        }
    }

    /// Eleven events in pages of two: member-1 0..3, checkpoint-1 0..4 (0..3 truncated),
    /// member-2 0..2, member-1 3..5.
    async fn history() -> InMemoryStore {
        let store = InMemoryStore::with_limits(Limits {
            max_page_size: 2,
            ..Limits::default()
        });
        for (stream, expected, count) in [
            ("member-1", ExpectedRevision::NoStream, 3),
            ("checkpoint-1", ExpectedRevision::NoStream, 4),
            ("member-2", ExpectedRevision::NoStream, 2),
            ("member-1", ExpectedRevision::Exact(2), 2),
        ] {
            store.append(stream, expected, events(count)).await.unwrap();
        }
        store.truncate_before("checkpoint-1", 3).await.unwrap();
        store
    }

    async fn whole<T>(
        mut read: impl AsyncFnMut(Position) -> Result<Vec<T>, StoreError>,
        position: impl Fn(&T) -> Position,
    ) -> Vec<T> {
        let mut all = Vec::new();
        let mut after = Position::START;
        loop {
            let page = read(after).await.unwrap();
            let Some(last) = page.last() else {
                return all;
            };
            after = position(last);
            all.extend(page);
        }
    }

    async fn links_of(store: &InMemoryStore) -> Vec<ChainLink> {
        whole(|after| store.read_chain(after, 2), |l| l.position).await
    }

    async fn events_of(store: &InMemoryStore) -> Vec<RecordedEvent> {
        whole(|after| store.read_all(after, 2), |e| e.position).await
    }

    fn named(mismatch: &ChainMismatch) -> (Position, &str, u64) {
        (
            mismatch.position,
            mismatch.stream.as_str(),
            mismatch.revision,
        )
    }

    fn assert_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn a_store_that_keeps_its_chain_verifies_across_pages_up_to_its_head() {
        // Given a history read in pages of two, with truncated checkpoints...
        let store = history().await;
        let links = links_of(&store).await;

        // ...when it is verified with checkpoints allowed to be truncated...
        let verifying = verify(&store, options(&checkpoints));
        assert_send(&verifying);
        let report = verifying.await.unwrap();

        // ...then every link checks, the truncated ones are counted, and the head is the last.
        assert_eq!(report.mismatch, None);
        assert!(!report.derived);
        assert_eq!(report.links, 11);
        assert_eq!(report.truncated, 3);
        assert_eq!(report.events_checked, 8);
        let last = links.last().unwrap();
        assert_eq!(
            report.head,
            Some(ChainHead {
                position: last.position,
                chain_hash: last.chain_hash
            })
        );
        assert_eq!(last.position, store.head_position().await.unwrap());
    }

    #[tokio::test]
    async fn an_event_whose_bytes_changed_is_named_by_position_stream_and_revision() {
        // Given one byte of member-2's revision 1 changed where it is stored...
        let store = history().await;
        let target = events_of(&store).await[5].clone();
        assert_eq!((target.stream.as_str(), target.revision), ("member-2", 1));
        let mut tampered = Tampered::new(&store);
        let at = target.position;
        tampered.events = Arc::new(move |page| {
            for e in page.iter_mut().filter(|e| e.position == at) {
                let mut data = e.data.to_vec();
                data[2] ^= 1;
                e.data = Bytes::from(data);
            }
        });

        // ...when the chain is verified...
        let report = verify(&tampered, options(&checkpoints)).await.unwrap();

        // ...then that event is named, and the walk stopped there.
        let mismatch = report.mismatch.expect("a mismatch");
        assert_eq!(named(&mismatch), (at, "member-2", 1));
        assert!(mismatch.reason.contains("content"), "{}", mismatch.reason);
        assert!(report.head.unwrap().position < at);
        assert_eq!(report.links, 8);
    }

    #[tokio::test]
    async fn a_link_rewritten_to_match_changed_bytes_is_named_by_its_broken_chain() {
        // Given member-2's revision 1 changed and its link's event hash rewritten to match...
        let store = history().await;
        let all = events_of(&store).await;
        let mut changed = all[5].clone();
        assert_eq!((changed.stream.as_str(), changed.revision), ("member-2", 1));
        changed.data = Bytes::from_static(br#"{"points":"9999"}"#);
        let new_hash = event_hash((&changed).into());
        let at = changed.position;
        let mut tampered = Tampered::new(&store);
        let replacement = changed.clone();
        tampered.events = Arc::new(move |page| {
            for e in page.iter_mut().filter(|e| e.position == at) {
                *e = replacement.clone();
            }
        });
        tampered.links = Some(Arc::new(move |page| {
            for l in page.iter_mut().filter(|l| l.position == at) {
                l.event_hash = new_hash;
            }
        }));

        // ...when verified, the same event is named, by its link.
        let report = verify(&tampered, options(&checkpoints)).await.unwrap();
        let mismatch = report.mismatch.expect("a mismatch");
        assert_eq!(named(&mismatch), (at, "member-2", 1));
        assert!(
            mismatch.reason.contains("chain is broken"),
            "{}",
            mismatch.reason
        );

        // And rewriting that link's chain and stream hashes too moves the break to the next
        // link: the chain after it no longer follows.
        let links = links_of(&store).await;
        // The link before it is member-2's revision 0, the previous of both chains.
        let previous = &links[7];
        assert_eq!(
            (previous.stream.as_str(), previous.revision),
            ("member-2", 0)
        );
        let rewritten = ChainLink {
            event_hash: new_hash,
            stream_hash: link(&previous.stream_hash, &new_hash),
            chain_hash: chain_link(
                &previous.chain_hash,
                links[8].position,
                &links[8].stream,
                links[8].revision,
                &new_hash,
            ),
            ..links[8].clone()
        };
        tampered.links = Some(Arc::new(move |page| {
            for l in page.iter_mut().filter(|l| l.position == at) {
                *l = rewritten.clone();
            }
        }));
        let report = verify(&tampered, options(&checkpoints)).await.unwrap();
        let mismatch = report.mismatch.expect("a mismatch");
        assert_eq!(named(&mismatch), (links[9].position, "member-1", 3));
        assert!(
            mismatch.reason.contains("chain is broken"),
            "{}",
            mismatch.reason
        );
    }

    #[tokio::test]
    async fn a_missing_event_is_a_deletion_in_a_kept_stream_and_a_truncation_elsewhere() {
        // Given member-1's revision 1 gone from `$all`, its link kept...
        let store = history().await;
        let gone = events_of(&store).await[1].clone();
        assert_eq!((gone.stream.as_str(), gone.revision), ("member-1", 1));
        let mut tampered = Tampered::new(&store);
        let at = gone.position;
        tampered.events = Arc::new(move |page| page.retain(|e| e.position != at));

        // ...when member streams may not be truncated, it is named as deleted...
        let report = verify(&tampered, options(&checkpoints)).await.unwrap();
        let mismatch = report.mismatch.expect("a mismatch");
        assert_eq!(named(&mismatch), (at, "member-1", 1));
        assert!(mismatch.reason.contains("deleted"), "{}", mismatch.reason);

        // ...and when every stream may be, it is counted as truncated.
        let report = verify(&tampered, options(&|_| true)).await.unwrap();
        assert_eq!(report.mismatch, None);
        assert_eq!(report.truncated, 4);
    }

    #[tokio::test]
    async fn a_deleted_event_whose_link_is_relabelled_as_a_truncatable_stream_is_named() {
        // Given member-1's revision 1 deleted, and its link relabelled as the first event of a
        // checkpoint stream, its stream hash recomputed to fit the new label...
        let store = history().await;
        let gone = events_of(&store).await[1].clone();
        assert_eq!((gone.stream.as_str(), gone.revision), ("member-1", 1));
        let mut tampered = Tampered::new(&store);
        let at = gone.position;
        tampered.events = Arc::new(move |page| page.retain(|e| e.position != at));
        tampered.links = Some(Arc::new(move |page| {
            for l in page.iter_mut().filter(|l| l.position == at) {
                l.stream = "checkpoint-zzz".to_owned();
                l.revision = 0;
                l.stream_hash = link(&GENESIS, &l.event_hash);
            }
        }));

        // ...when member streams may not be truncated, the relabelled link breaks the chain:
        // the store-wide chain commits to the labels of every link
        let report = verify(&tampered, options(&checkpoints)).await.unwrap();
        let mismatch = report.mismatch.expect("a mismatch");
        assert_eq!(mismatch.position, at);
        assert!(
            mismatch.reason.contains("chain is broken"),
            "{}",
            mismatch.reason
        );
    }

    #[tokio::test]
    async fn an_event_without_a_link_is_named() {
        let store = history().await;
        let unlinked = events_of(&store).await[7].clone();
        let mut tampered = Tampered::new(&store);
        let at = unlinked.position;
        tampered.links = Some(Arc::new(move |page| page.retain(|l| l.position != at)));

        let report = verify(&tampered, options(&checkpoints)).await.unwrap();

        let mismatch = report.mismatch.expect("a mismatch");
        assert_eq!(
            named(&mismatch),
            (at, unlinked.stream.as_str(), unlinked.revision)
        );
        assert!(mismatch.reason.contains("no link"), "{}", mismatch.reason);
    }

    #[tokio::test]
    async fn verify_stops_at_up_to_with_the_head_there() {
        // Given an event changed after the fifth link...
        let store = history().await;
        let links = links_of(&store).await;
        let mut tampered = Tampered::new(&store);
        let changed = links[8].position;
        tampered.events = Arc::new(move |page| {
            for e in page.iter_mut().filter(|e| e.position == changed) {
                e.metadata = Bytes::from_static(b"{\"x\":1}");
            }
        });

        // ...verifying up to the fifth link passes, with the head there...
        let up_to = VerifyOptions {
            up_to: Some(links[4].position),
            may_truncate: &checkpoints,
        };
        let report = verify(&tampered, up_to).await.unwrap();
        assert_eq!(report.mismatch, None);
        assert_eq!(report.links, 5);
        assert_eq!(
            report.head,
            Some(ChainHead {
                position: links[4].position,
                chain_hash: links[4].chain_hash
            })
        );

        // ...and beyond the head it stops at the head, where the change is found.
        let beyond = VerifyOptions {
            up_to: Some(Position::new(u64::MAX, u64::MAX)),
            may_truncate: &checkpoints,
        };
        let report = verify(&tampered, beyond).await.unwrap();
        assert_eq!(report.mismatch.map(|m| m.position), Some(changed));
    }

    #[tokio::test]
    async fn a_store_without_a_chain_is_derived_with_the_head_its_chain_would_have() {
        // Given a store that keeps no chain, over the same events as one that does (nothing
        // truncated: a derived chain only has the events `$all` still holds)...
        let store = InMemoryStore::with_limits(Limits {
            max_page_size: 3,
            ..Limits::default()
        });
        for stream in ["member-1", "member-2", "member-1"] {
            store
                .append(stream, ExpectedRevision::Any, events(4))
                .await
                .unwrap();
        }
        let mut without_chain = Tampered::new(&store);
        without_chain.links = None;

        // ...when it is verified...
        let report = verify(&without_chain, options(&|_| false)).await.unwrap();

        // ...then the chain is derived, and its head is the stored chain's.
        assert!(report.derived);
        assert_eq!(report.mismatch, None);
        assert_eq!((report.links, report.events_checked), (12, 12));
        let last = links_of(&store).await.pop().unwrap();
        assert_eq!(
            report.head,
            Some(ChainHead {
                position: last.position,
                chain_hash: last.chain_hash
            })
        );
        let stored = verify(&store, options(&|_| false)).await.unwrap();
        assert_eq!(stored.head, report.head);
    }
}
