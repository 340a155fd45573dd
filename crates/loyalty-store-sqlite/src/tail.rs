//! The tail: the events this store's writer committed last, kept in memory so that live
//! subscriptions are fed what was just appended instead of reading it back from the file
//! (issue 17: every projection re-read and re-decoded every event the engine had just written).
//!
//! # The rule that keeps it exact
//!
//! The tail holds a segment of `$all`, `(base, end]`, and promises: **the events the file holds
//! at positions in `(base, end]` are exactly the events held here, less those a truncation
//! rule hides** (see below), as of this writer's last batch. A subscription page is served from the tail only when the segment
//! covers the whole range it asks for: `after >= base`, and either the page is full or `end`
//! reaches the durable head. Anything else reads the file, as before. Reads never go past the
//! durable head either way, so nothing is shown before it is durable.
//!
//! The writer keeps the promise, batch by batch:
//!
//! - Inside each batch's write transaction (`BEGIN IMMEDIATE`: nobody else can write until it
//!   commits) it reads the file's last position, `tip`, and SQLite's `PRAGMA data_version`,
//!   which changes whenever *another connection* committed to the file (a second store on it,
//!   another process, an older build) and never for this connection's own commits. The
//!   segment goes on only if `tip == end` and the version is the one seen at the previous
//!   batch: then nobody but this writer has written since the segment was last extended.
//!   (The position check alone would miss another store's truncation, which moves no
//!   position. The version also moves when the checkpointer's own connection empties the log
//!   file, a TRUNCATE checkpoint; the tail then restarts needlessly, which costs nothing to a
//!   subscription that keeps up: measured, none read the file.)
//!   Otherwise the tail starts afresh, empty, at `base = end = tip`, so it never vouches for a
//!   range that could hold another writer's events (their positions interleave with ours:
//!   each writer takes the file's maximum plus one).
//! - The batch's events get positions `tip + 1, tip + 2, ...` in order (an append refused
//!   inside the batch is rolled back to its savepoint and gives its positions back, and its
//!   events are dropped here too). After `COMMIT` they are added, and `end` moves to the
//!   batch's last position, before the batch goes to the syncer: by the time the durable head
//!   covers them, they are here.
//! - A batch that fails leaves the tail invalid until the next batch starts it afresh.
//! - When the tail outgrows its byte bound it drops its oldest events and `base` moves up to
//!   the last one dropped.
//!
//! # Truncations
//!
//! `truncate_before` deletes the rows of a stream below a revision (`keep_from`), and `$all`
//! reads skip them at once. The writer records, as soon as the truncation is applied inside
//! its transaction (before the commit makes it visible in the file), a rule: events of that
//! stream with a revision below `keep_from` are hidden. The rule is exact for every event the
//! tail will ever hold: the stream's events that existed then have revisions up to its last,
//! and are deleted exactly when below `keep_from` (which is at most the last plus one); later
//! events get higher revisions, never below it. A rule lasts until `base` passes the position
//! of the stream's last event at the time, the last one it could hide. A batch that fails
//! after recording a rule invalidates the tail, since the rule may hide events that stayed.
//!
//! A truncation written by *another* store on the file reaches this tail only at this store's
//! next batch (the version changes and the tail starts afresh): until then a subscription
//! may still be given the events it deleted, as it would have been just before the
//! truncation. That is the lag this store already has for the other store's appends, which
//! it reads only after its own next write (see [`crate::SqliteStore`]); one store per file
//! remains the way to run it.
//!
//! # Cost
//!
//! `RecordedEvent` owns its payloads as `Bytes`, so a page served from here costs one
//! reference count per payload and two small string allocations per event, under the lock
//! only the `Arc` clones: no syscall, no SQL, no row decoding. The writer copies each payload
//! once into the tail rather than keeping the caller's buffer, which may be a slice of a much
//! larger one (an HTTP body) or have spare capacity: that keeps the byte bound honest.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use loyalty_store::{Bytes, EventData, Position, RecordedEvent};

/// What an event costs beyond its data, metadata, stream name and type: the `RecordedEvent`
/// itself in its `Arc`, the queue's slot, and the allocator's headers of its five allocations.
const EVENT_OVERHEAD: usize = std::mem::size_of::<RecordedEvent>() + 16 + 8 + 5 * 16;

#[derive(Debug)]
pub(crate) struct Tail {
    /// 0: no tail; every page is read from the file.
    max_bytes: usize,
    state: Mutex<State>,
    from_tail: AtomicU64,
    from_file: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Whether `(base, end]` holds the promise of the module's rule. False until the first
    /// batch and after a failed one.
    valid: bool,
    base: u64,
    end: u64,
    /// In position order, one position after another (only the first follows `base`).
    events: VecDeque<Arc<RecordedEvent>>,
    bytes: usize,
    /// Per truncated stream, the revision below which its events are hidden.
    truncated: HashMap<String, Truncation>,
    /// The rules by the last position each can hide, to drop them once `base` passes it.
    expiring: BinaryHeap<Reverse<(u64, String)>>,
    /// The writer connection's `PRAGMA data_version` at the start of the last batch.
    data_version: Option<i64>,
    /// Truncations of the open write transaction (stream, `keep_from`, last position), made
    /// rules once it commits.
    pending: Vec<(String, u64, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Truncation {
    keep_from: u64,
    last_position: u64,
}

/// Events served to subscriptions since the store was opened, by where they came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionStats {
    /// Events subscriptions got from the in-memory tail of recent commits.
    pub from_tail: u64,
    /// Events subscriptions read from the file (history, a lagging subscriber, a tail reset
    /// or one turned off).
    pub from_file: u64,
    /// Events the tail holds now.
    pub tail_events: usize,
    /// Bytes the tail counts for them against [`crate::SqliteOptions::tail_bytes`].
    pub tail_bytes: usize,
}

impl Tail {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            state: Mutex::new(State::default()),
            from_tail: AtomicU64::new(0),
            from_file: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change leaves the state whole before anything that could panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- the writer's side -------------------------------------------------------------

    /// Called inside a batch's write transaction, with the file's last position and the write
    /// connection's data version: goes on with the segment, or starts afresh at `tip`.
    pub(crate) fn start_batch(&self, tip: u64, data_version: i64) {
        if !self.enabled() {
            return;
        }
        let mut state = self.lock();
        let seen = state.data_version.replace(data_version);
        if !(state.valid && state.end == tip && seen == Some(data_version)) {
            state.restart(tip);
        }
    }

    /// Called once a truncation is applied inside the batch's transaction (see the module). The
    /// rule waits for the commit: until then the file still holds what it deletes (and keeps it
    /// if the batch fails), and from now until the rule is in place, pages are read from the
    /// file, so no subscriber is shown either side of the truncation before the file is.
    pub(crate) fn truncated(&self, stream: &str, keep_from: u64, last_position: u64) {
        if !self.enabled() {
            return;
        }
        self.lock()
            .pending
            .push((stream.to_owned(), keep_from, last_position));
    }

    /// After the batch committed, before it is published: its events (in position order) and
    /// the file's last position now.
    pub(crate) fn committed(&self, events: Vec<RecordedEvent>, tip: u64) {
        if !self.enabled() {
            return;
        }
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.pending);
        if !state.valid {
            return;
        }
        for (stream, keep_from, last_position) in pending {
            state.install_truncation(stream, keep_from, last_position);
        }
        for event in events {
            // Positions follow one another within a batch; anything else breaks the promise.
            if event.position.commit != state.end + 1 {
                tracing::warn!(
                    position = %event.position,
                    end = state.end,
                    "a gap in the writer's batch: the tail of recent commits starts afresh"
                );
                state.restart(tip);
                return;
            }
            state.end = event.position.commit;
            state.bytes += cost(&event);
            state.events.push_back(Arc::new(event));
        }
        if state.end != tip {
            state.restart(tip);
            return;
        }
        while state.bytes > self.max_bytes {
            let Some(oldest) = state.events.pop_front() else {
                break;
            };
            state.bytes -= cost(&oldest);
            state.base = oldest.position.commit;
        }
        state.expire_rules();
    }

    /// The batch failed: whatever it told the tail (a truncation rule) may not hold.
    pub(crate) fn abandon(&self) {
        if self.enabled() {
            let mut state = self.lock();
            state.valid = false;
            state.pending.clear();
        }
    }

    // ---- the subscriptions' side -------------------------------------------------------

    /// Up to `max` events after `after` and up to `durable`, as `reader::read_all` would read
    /// them from the file, if the tail covers that whole range; `None` to read the file.
    pub(crate) fn read(
        &self,
        after: Position,
        max: usize,
        durable: Position,
    ) -> Option<Vec<RecordedEvent>> {
        if !self.enabled() {
            return None;
        }
        // The embedded store uses one sequence for both halves of a position.
        let after = after.commit.max(after.prepare);
        let durable = durable.commit;
        let picked: Vec<Arc<RecordedEvent>> = {
            let state = self.lock();
            // A truncation waiting for its commit: the file is the one to read meanwhile.
            if !state.valid || !state.pending.is_empty() || after < state.base {
                return None;
            }
            let start = state.events.partition_point(|e| e.position.commit <= after);
            let picked: Vec<_> = state
                .events
                .range(start..)
                .take_while(|e| e.position.commit <= durable)
                .filter(|e| !state.hides(e))
                .take(max)
                .cloned()
                .collect();
            // A short page tells the subscription it has caught up: only if nothing the file
            // holds up to the durable head is missing.
            if picked.len() < max && state.end < durable {
                return None;
            }
            picked
        };
        self.from_tail
            .fetch_add(picked.len() as u64, Ordering::Relaxed);
        Some(picked.iter().map(|e| RecordedEvent::clone(e)).collect())
    }

    /// Counts events a subscription read from the file.
    pub(crate) fn read_from_file(&self, count: usize) {
        self.from_file.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        let (tail_events, tail_bytes) = {
            let state = self.lock();
            (state.events.len(), state.bytes)
        };
        SubscriptionStats {
            from_tail: self.from_tail.load(Ordering::Relaxed),
            from_file: self.from_file.load(Ordering::Relaxed),
            tail_events,
            tail_bytes,
        }
    }
}

impl State {
    /// Hides the events of `stream` below `keep_from` up to `last_position` (a committed
    /// truncation).
    fn install_truncation(&mut self, stream: String, keep_from: u64, last_position: u64) {
        if last_position <= self.base {
            // Nothing it deleted is held.
            return;
        }
        let moved = match self.truncated.get_mut(&stream) {
            Some(rule) => {
                rule.keep_from = rule.keep_from.max(keep_from);
                let moved = last_position > rule.last_position;
                rule.last_position = rule.last_position.max(last_position);
                moved
            }
            None => {
                self.truncated.insert(
                    stream.clone(),
                    Truncation {
                        keep_from,
                        last_position,
                    },
                );
                true
            }
        };
        // One entry per position a rule has lasted to: at most one per event held.
        if moved {
            self.expiring.push(Reverse((last_position, stream)));
        }
    }

    /// An empty, valid segment at `tip`.
    fn restart(&mut self, tip: u64) {
        self.valid = true;
        self.base = tip;
        self.end = tip;
        self.events.clear();
        self.bytes = 0;
        self.truncated.clear();
        self.expiring.clear();
    }

    fn hides(&self, event: &RecordedEvent) -> bool {
        !self.truncated.is_empty()
            && self
                .truncated
                .get(&event.stream)
                .is_some_and(|rule| event.revision < rule.keep_from)
    }

    /// Drops the rules that can hide nothing the tail still holds.
    fn expire_rules(&mut self) {
        while let Some(Reverse((last, _))) = self.expiring.peek() {
            if *last > self.base {
                break;
            }
            let Some(Reverse((last, stream))) = self.expiring.pop() else {
                break;
            };
            // A later truncation of the same stream may have moved its rule further.
            if self
                .truncated
                .get(&stream)
                .is_some_and(|rule| rule.last_position <= last)
            {
                self.truncated.remove(&stream);
            }
        }
    }
}

/// The event as the tail keeps it: as `reader::read_all` returns it, with payloads of its own.
pub(crate) fn recorded(
    stream: &str,
    revision: u64,
    position: u64,
    event: &EventData,
) -> RecordedEvent {
    RecordedEvent {
        stream: stream.to_owned(),
        revision,
        position: Position::new(position, position),
        id: event.id,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        data: Bytes::copy_from_slice(&event.data),
        metadata: Bytes::copy_from_slice(&event.metadata),
    }
}

fn cost(event: &RecordedEvent) -> usize {
    event.data.len()
        + event.metadata.len()
        + event.stream.len()
        + event.event_type.len()
        + EVENT_OVERHEAD
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use loyalty_store::conformance::sample_event;
    use loyalty_store::{
        EventStore, ExpectedRevision, StreamAppend, StreamFilter, Subscription, SubscriptionMessage,
    };

    use super::*;
    use crate::{SqliteOptions, SqliteStore};

    async fn open(path: &Path, tail_bytes: usize) -> SqliteStore {
        let options = SqliteOptions {
            tail_bytes,
            ..SqliteOptions::default()
        };
        SqliteStore::open(path, options).await.unwrap()
    }

    /// The next `count` events the subscription delivers (passing over `CaughtUp`).
    async fn receive(sub: &mut Subscription, count: usize) -> Vec<RecordedEvent> {
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("the subscription hung")
                .expect("the subscription ended")
                .expect("the subscription failed");
            if let SubscriptionMessage::Event(event) = message {
                events.push(event);
            }
        }
        events
    }

    /// Everything the file holds, read from it.
    async fn read_file(store: &SqliteStore) -> Vec<RecordedEvent> {
        let mut all = Vec::new();
        loop {
            let after = all
                .last()
                .map_or(Position::START, |e: &RecordedEvent| e.position);
            let page = store.read_all(after, 1_000).await.unwrap();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    fn events(first: u64, count: u64) -> Vec<EventData> {
        (first..first + count).map(sample_event).collect()
    }

    /// Appends of one event, of several, and to several streams at once, each awaited.
    async fn append_mix(store: &SqliteStore, round: u64) -> usize {
        let stream = format!("member-{round}");
        store
            .append(&stream, ExpectedRevision::Any, events(round * 10, 1))
            .await
            .unwrap();
        store
            .append(&stream, ExpectedRevision::Any, events(round * 10 + 1, 3))
            .await
            .unwrap();
        store
            .append_many(vec![
                StreamAppend {
                    stream: format!("txn-{round}"),
                    expected: ExpectedRevision::NoStream,
                    events: events(round * 10 + 4, 2),
                },
                StreamAppend {
                    stream,
                    expected: ExpectedRevision::Any,
                    events: events(round * 10 + 6, 1),
                },
            ])
            .await
            .unwrap();
        7
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_subscription_is_fed_from_the_tail_exactly_as_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir.path().join("events.db"), 8 * 1024 * 1024).await);
        let mut sub = store
            .subscribe_all(Position::START, StreamFilter::all())
            .await
            .unwrap();
        let mut delivered = Vec::new();
        for round in 0..20 {
            let appended = append_mix(&store, round).await;
            delivered.extend(receive(&mut sub, appended).await);
        }
        // Concurrent appends, committed in groups, while the subscription follows.
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..10 {
                        store
                            .append(&format!("w-{w}"), ExpectedRevision::Any, events(i, 1))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        delivered.extend(receive(&mut sub, 80).await);
        for writer in writers {
            writer.await.unwrap();
        }

        assert_eq!(
            delivered,
            read_file(&store).await,
            "every field of every event"
        );
        let stats = store.subscription_stats();
        assert_eq!(stats.from_tail, 220, "{stats:?}");
        assert_eq!(stats.from_file, 0, "{stats:?}");
        assert_eq!(stats.tail_events, 220, "{stats:?}");
        drop(sub);
        Arc::into_inner(store).unwrap().close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_left_behind_by_an_overflowing_tail_reads_the_file_then_the_tail_again()
    {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("events.db"), 4 * 1024).await;
        let mut sub = store
            .subscribe_all(Position::START, StreamFilter::all())
            .await
            .unwrap();
        // Given a subscription that follows from the tail...
        store
            .append("member-a", ExpectedRevision::Any, events(0, 1))
            .await
            .unwrap();
        let mut delivered = receive(&mut sub, 1).await;
        assert_eq!(store.subscription_stats().from_tail, 1);
        // ...when one append stores more than the tail holds, the subscription finds the
        // events after its position gone from the tail and reads them from the file...
        store
            .append("member-b", ExpectedRevision::Any, events(1, 40))
            .await
            .unwrap();
        delivered.extend(receive(&mut sub, 40).await);
        let stats = store.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (1, 40), "{stats:?}");
        assert!(stats.tail_bytes <= 4 * 1024, "{stats:?}");
        assert!(stats.tail_events < 40, "{stats:?}");
        // ...an event larger than the whole tail is not kept either...
        let mut large = sample_event(41);
        large.data = Bytes::from(format!(r#"{{"padding":"{}"}}"#, "x".repeat(8 * 1024)));
        store
            .append("member-c", ExpectedRevision::Any, vec![large])
            .await
            .unwrap();
        delivered.extend(receive(&mut sub, 1).await);
        let stats = store.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (1, 41), "{stats:?}");
        assert_eq!(stats.tail_events, 0, "{stats:?}");
        // ...and once it has caught up, it follows from the tail again.
        for i in 42..50 {
            store
                .append("member-a", ExpectedRevision::Any, events(i, 1))
                .await
                .unwrap();
            delivered.extend(receive(&mut sub, 1).await);
        }
        let stats = store.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (9, 41), "{stats:?}");
        assert_eq!(delivered, read_file(&store).await);
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_written_before_the_store_opened_comes_from_the_file_then_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = open(&path, 8 * 1024 * 1024).await;
        for round in 0..5 {
            append_mix(&store, round).await;
        }
        store.close().await.unwrap();
        // Given a store opened on a file that already holds 35 events...
        let store = open(&path, 8 * 1024 * 1024).await;
        assert_eq!(store.subscription_stats().tail_events, 0);
        let mut sub = store
            .subscribe_all(Position::START, StreamFilter::all())
            .await
            .unwrap();
        // ...a subscription from the start reads them from the file...
        let mut delivered = receive(&mut sub, 35).await;
        let stats = store.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (0, 35), "{stats:?}");
        // ...and what is appended next from the tail.
        for round in 5..8 {
            let appended = append_mix(&store, round).await;
            delivered.extend(receive(&mut sub, appended).await);
        }
        let stats = store.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (21, 35), "{stats:?}");
        assert_eq!(delivered, read_file(&store).await);
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tail_of_zero_bytes_serves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("events.db"), 0).await;
        let mut sub = store
            .subscribe_all(Position::START, StreamFilter::all())
            .await
            .unwrap();
        let mut delivered = Vec::new();
        for round in 0..3 {
            let appended = append_mix(&store, round).await;
            delivered.extend(receive(&mut sub, appended).await);
        }
        let stats = store.subscription_stats();
        assert_eq!(
            stats,
            SubscriptionStats {
                from_tail: 0,
                from_file: 21,
                tail_events: 0,
                tail_bytes: 0
            }
        );
        assert_eq!(delivered, read_file(&store).await);
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncated_events_leave_the_tail_as_they_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("events.db"), 8 * 1024 * 1024).await;
        for i in 0..5 {
            store
                .append("snapshot-a", ExpectedRevision::Any, events(i, 1))
                .await
                .unwrap();
            append_mix(&store, i).await;
        }
        // Given the first three events of a stream are truncated...
        store.truncate_before("snapshot-a", 3).await.unwrap();
        // ...and the stream goes on (its new events are below the revision asked, not hidden)...
        store.truncate_before("txn-0", 100).await.unwrap();
        store
            .append("txn-0", ExpectedRevision::Any, events(50, 2))
            .await
            .unwrap();
        // ...a subscription from the start, served by the tail, skips exactly what the file
        // no longer holds.
        let expected = read_file(&store).await;
        assert_eq!(expected.len(), 5 + 35 - 3 - 2 + 2);
        let mut sub = store
            .subscribe_all(Position::START, StreamFilter::all())
            .await
            .unwrap();
        let delivered = receive(&mut sub, expected.len()).await;
        assert_eq!(delivered, expected);
        let stats = store.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (37, 0), "{stats:?}");
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_store_writing_the_file_sends_subscriptions_back_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let first = open(&path, 8 * 1024 * 1024).await;
        let second = open(&path, 8 * 1024 * 1024).await;
        let mut sub = first
            .subscribe_all(Position::START, StreamFilter::all())
            .await
            .unwrap();
        // Given the first store's subscription follows its own appends from the tail...
        first
            .append("a-1", ExpectedRevision::Any, events(0, 3))
            .await
            .unwrap();
        let mut delivered = receive(&mut sub, 3).await;
        // ...when the other store appends in between, its events are read from the file, in
        // their place in $all, once the first store writes again...
        second
            .append("b-1", ExpectedRevision::Any, events(3, 2))
            .await
            .unwrap();
        first
            .append("a-1", ExpectedRevision::Any, events(5, 1))
            .await
            .unwrap();
        delivered.extend(receive(&mut sub, 3).await);
        let streams: Vec<_> = delivered.iter().map(|e| e.stream.as_str()).collect();
        assert_eq!(streams, ["a-1", "a-1", "a-1", "b-1", "b-1", "a-1"]);
        assert_eq!(delivered, read_file(&first).await);
        let stats = first.subscription_stats();
        assert_eq!((stats.from_tail, stats.from_file), (3, 3), "{stats:?}");
        // ...and when the other store truncates events the tail holds (which moves no
        // position), the first store's next write still drops them from its tail.
        first
            .append("a-2", ExpectedRevision::Any, events(6, 1))
            .await
            .unwrap();
        delivered.extend(receive(&mut sub, 1).await);
        second.truncate_before("a-2", 1).await.unwrap();
        first
            .append("a-3", ExpectedRevision::Any, events(7, 1))
            .await
            .unwrap();
        delivered.extend(receive(&mut sub, 1).await);
        // A subscription from just before the truncated event, which the tail held, gets
        // what the file holds after it: a-3's event alone, read from the file.
        let from = delivered[5].position;
        let expected: Vec<_> = read_file(&first)
            .await
            .into_iter()
            .filter(|e| e.position > from)
            .collect();
        let streams: Vec<_> = expected.iter().map(|e| e.stream.as_str()).collect();
        assert_eq!(streams, ["a-3"]);
        let before = first.subscription_stats();
        let mut again = first
            .subscribe_all(from, StreamFilter::all())
            .await
            .unwrap();
        assert_eq!(receive(&mut again, expected.len()).await, expected);
        let after = first.subscription_stats();
        assert_eq!(after.from_file - before.from_file, 1, "{after:?}");
        second.close().await.unwrap();
        first.close().await.unwrap();
    }

    fn event_at(stream: &str, revision: u64, position: u64) -> RecordedEvent {
        recorded(stream, revision, position, &sample_event(position))
    }

    #[test]
    fn a_truncation_rule_hides_only_what_was_deleted_and_the_rule_of_contiguity_holds() {
        let tail = Tail::new(1024 * 1024);
        // (stream, revision) of what the tail serves after `after`, up to `durable`.
        let read = |after: u64, durable: u64| {
            tail.read(
                Position::new(after, after),
                100,
                Position::new(durable, durable),
            )
            .map(|events| {
                events
                    .iter()
                    .map(|e| (e.stream.clone(), e.revision))
                    .collect::<Vec<_>>()
            })
        };
        tail.start_batch(0, 7);
        tail.committed(
            vec![
                event_at("s", 0, 1),
                event_at("t", 0, 2),
                event_at("s", 1, 3),
            ],
            3,
        );
        // In one batch: s is truncated below 5, past its end (keep_from 2), then goes on.
        tail.start_batch(3, 7);
        tail.truncated("s", 2, 3);
        // Until the truncation commits, the file (which still holds s 0 and 1) is read.
        assert_eq!(read(0, 3), None);
        tail.committed(vec![event_at("s", 2, 4), event_at("s", 3, 5)], 5);
        assert_eq!(
            read(0, 5),
            Some(vec![("t".into(), 0), ("s".into(), 2), ("s".into(), 3)])
        );
        // Nothing past the durable head.
        assert_eq!(read(0, 2), Some(vec![("t".into(), 0)]));
        // A head past the tail's end (a batch it was not given) is read from the file.
        assert_eq!(read(0, 6), None);
        // A failed batch leaves nothing to serve.
        tail.start_batch(5, 7);
        tail.abandon();
        assert_eq!(read(0, 5), None);
        // The next batch starts afresh where the file ends.
        tail.start_batch(5, 7);
        tail.committed(vec![event_at("u", 0, 6)], 6);
        assert_eq!(read(4, 6), None);
        assert_eq!(read(5, 6).map(|e| e.len()), Some(1));
        // Another connection's commit (the version moved) starts it afresh.
        tail.start_batch(6, 8);
        tail.committed(vec![event_at("u", 1, 7)], 7);
        assert_eq!(
            read(5, 7),
            None,
            "positions up to 6 may be another writer's"
        );
        assert_eq!(read(6, 7).map(|e| e.len()), Some(1));
        // A gap in positions (another writer appended) starts it afresh too.
        tail.start_batch(9, 8);
        tail.committed(vec![event_at("u", 2, 10)], 10);
        assert_eq!(read(7, 10), None);
        assert_eq!(read(9, 10).map(|e| e.len()), Some(1));
        // A page never holds more than asked.
        assert_eq!(
            tail.read(Position::new(9, 9), 0, Position::new(10, 10))
                .map(|e| e.len()),
            Some(0)
        );
    }

    #[test]
    fn a_truncation_whose_batch_fails_hides_nothing() {
        let tail = Tail::new(1 << 20);
        tail.start_batch(0, 1);
        tail.committed(vec![event_at("s", 0, 1), event_at("s", 1, 2)], 2);
        tail.start_batch(2, 1);
        tail.truncated("s", 1, 2);
        let page = tail.read(Position::new(0, 0), 10, Position::new(2, 2));
        assert!(
            page.is_none(),
            "read from the file while the truncation is open"
        );
        // The commit failed: the file keeps both events, and the tail never hid one.
        tail.abandon();
        let state = tail.lock();
        assert!(state.truncated.is_empty() && state.pending.is_empty());
        assert!(!state.valid);
    }

    #[test]
    fn rules_expire_once_the_events_they_hide_are_dropped() {
        let one = cost(&event_at("s", 0, 1));
        let tail = Tail::new(2 * one);
        tail.start_batch(0, 1);
        tail.committed(vec![event_at("s", 0, 1), event_at("s", 1, 2)], 2);
        tail.start_batch(2, 1);
        tail.truncated("s", 1, 2);
        tail.committed(Vec::new(), 2);
        assert_eq!(tail.lock().truncated.len(), 1);
        tail.start_batch(2, 1);
        tail.committed(vec![event_at("t", 0, 3), event_at("t", 1, 4)], 4);
        let state = tail.lock();
        assert_eq!((state.base, state.end, state.events.len()), (2, 4, 2));
        assert!(state.truncated.is_empty() && state.expiring.is_empty());
    }
}
