//! Member events as the read models take them: the domain event and the server time it was
//! recorded at. Three ways in, cheapest first:
//!
//! - the engine hands over the events it has just appended ([`Handoff`]): the projection that
//!   meets them in `$all` a moment later takes them as they are, instead of decoding the stored
//!   copy of what it already holds;
//! - a replay decodes a page on every core ([`decode_page`]);
//! - otherwise one event is decoded where it is met ([`decode`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hashbrown::{Equivalent, HashMap};
use loyalty_core::Event;
use loyalty_store::{EventStore, Position, ReadAhead, RecordedEvent};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::task::AbortOnDropHandle;

use crate::codec;
use crate::error::EngineError;

/// A member event decoded, with its `recorded_at`.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub(crate) event: Event,
    pub(crate) recorded_at: DateTime<Utc>,
}

/// Decodes a stored member event and the time it was recorded at.
pub(crate) fn decode(recorded: &RecordedEvent) -> Result<Decoded, EngineError> {
    let event = codec::decode(recorded)?;
    let recorded_at = recorded_at(recorded, &event);
    Ok(Decoded { event, recorded_at })
}

/// The fields [`crate::EventMetadata`] requires, borrowed where the JSON allows it: the same
/// documents parse (a foreign writer's metadata that lacks one of them falls back to the event's
/// business time, as a full parse would), without allocating the strings only to drop them.
/// Only `recorded_at` is read; the others are parsed so that the same documents are accepted.
#[derive(Deserialize)]
#[allow(dead_code, reason = "parsed so that the same documents are accepted")]
struct RecordedAtOnly<'a> {
    #[serde(borrow)]
    client_id: Cow<'a, str>,
    #[serde(borrow)]
    command: Cow<'a, str>,
    #[serde(borrow)]
    correlation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    causation_id: Option<Cow<'a, str>>,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    #[serde(borrow)]
    rules_version: Cow<'a, str>,
    #[serde(borrow)]
    actor: Option<Cow<'a, str>>,
}

/// When the engine recorded the event: its metadata's `recorded_at`; the business time for an
/// event someone else wrote.
pub(crate) fn recorded_at(recorded: &RecordedEvent, event: &Event) -> DateTime<Utc> {
    serde_json::from_slice::<RecordedAtOnly<'_>>(&recorded.metadata)
        .map_or_else(|_| event.occurred_at(), |m| m.recorded_at)
}

/// Below this many events a page is decoded on the calling thread: starting threads would cost
/// more than they save (live traffic arrives a few events at a time; a replay's pages are full).
pub(crate) const PARALLEL_FROM: usize = 256;

/// Decodes the member events of a page, on every core for a big page; `None` for events of other
/// streams. The results are in the page's order: applying them stays sequential.
pub(crate) fn decode_page(page: &[RecordedEvent]) -> Vec<Option<Result<Decoded, EngineError>>> {
    let members: Vec<usize> = page
        .iter()
        .enumerate()
        .filter(|(_, recorded)| recorded.stream.starts_with(codec::MEMBER_PREFIX))
        .map(|(i, _)| i)
        .collect();
    let mut decoded: Vec<Option<Result<Decoded, EngineError>>> =
        std::iter::repeat_with(|| None).take(page.len()).collect();
    for (i, result) in members.iter().zip(decode_at(page, &members)) {
        decoded[*i] = Some(result);
    }
    decoded
}

/// Decoded pages that may wait in the channel for the caller. With the one the caller folds,
/// the one the task is handing over and the one `ReadAhead` reads, at most four pages are held.
const PAGES_AHEAD: usize = 1;

/// A decoded page: the recorded events and, in the same order, [`decode_page`]'s results.
pub(crate) type DecodedPage = (
    Vec<RecordedEvent>,
    Vec<Option<Result<Decoded, EngineError>>>,
);

/// The pages of `$all` after a position, read and decoded ahead of the caller by a task of their
/// own: the caller folds one page while the next is decoded (on every core) and the one after it
/// read. A replay used to decode, then fold, page after page: the fold ran on one core while the
/// other waited (`perf`). Dropping this stops the task.
pub(crate) struct DecodedPages {
    receiver: tokio::sync::mpsc::Receiver<Result<DecodedPage, EngineError>>,
    /// `None` once the end or an error was reported; dropped, the task is aborted.
    task: Option<AbortOnDropHandle<()>>,
}

impl DecodedPages {
    pub(crate) fn new(store: Arc<dyn EventStore>, after: Position, page_size: usize) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let task = tokio::spawn(async move {
            let mut pages = ReadAhead::new(store, after, page_size);
            loop {
                let next = match pages.next_page().await {
                    Ok(Some(page)) => {
                        let decoding = tokio::task::spawn_blocking(move || {
                            let decoded = decode_page(&page);
                            (page, decoded)
                        });
                        match decoding.await {
                            Ok(pair) => Ok(pair),
                            // A panic while decoding is a bug: it surfaces in the caller.
                            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                            Err(e) => Err(stopped(&e)),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => Err(EngineError::from(e)),
                };
                let failed = next.is_err();
                if sender.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        DecodedPages {
            receiver,
            task: Some(AbortOnDropHandle::new(task)),
        }
    }

    /// The next page; `None` after the last one, and on every call after that or after an
    /// error (which is reported once).
    pub(crate) async fn next(&mut self) -> Result<Option<DecodedPage>, EngineError> {
        if self.task.is_none() {
            return Ok(None);
        }
        match self.receiver.recv().await {
            Some(Ok(page)) => Ok(Some(page)),
            Some(Err(e)) => {
                self.task = None;
                Err(e)
            }
            // The task ended: after the last page, or by a panic (the caller's too) or a
            // cancellation, neither of which may look like the end of the log.
            None => match self.task.take() {
                Some(task) => match task.await {
                    Ok(()) => Ok(None),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(stopped(&e)),
                },
                None => Ok(None),
            },
        }
    }
}

/// A task of the pipeline ended without finishing (cancelled, the runtime shutting down).
fn stopped(e: &tokio::task::JoinError) -> EngineError {
    EngineError::Store(loyalty_store::StoreError::Backend(format!(
        "reading and decoding the log stopped: {e}"
    )))
}

impl std::fmt::Debug for DecodedPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedPages").finish_non_exhaustive()
    }
}

/// Decodes the events of `page` at the indexes `at`, in that order, on every core when they
/// are many.
pub(crate) fn decode_at(page: &[RecordedEvent], at: &[usize]) -> Vec<Result<Decoded, EngineError>> {
    let wanted: Vec<&RecordedEvent> = at.iter().map(|&i| &page[i]).collect();
    decode_many(&wanted)
}

/// Decodes events in their order, on every core when they are many.
fn decode_many(events: &[&RecordedEvent]) -> Vec<Result<Decoded, EngineError>> {
    let one = |recorded: &&RecordedEvent| decode(recorded);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if threads < 2 || events.len() < PARALLEL_FROM {
        return events.iter().map(one).collect();
    }
    let chunk = events.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = events.chunks(chunk);
        // The calling thread decodes the first part itself.
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        let mut decoded: Vec<_> = first.iter().map(one).collect();
        for handle in others {
            match handle.join() {
                Ok(part) => decoded.extend(part),
                // A panic while decoding is a bug: surface it where it would have surfaced.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        decoded
    })
}

/// Bytes the handoff may hold (the encoded size of its events, a fair proxy for their decoded
/// size). A projection that keeps up takes each event within microseconds; one that falls behind
/// decodes from the store as before, and the oldest entries go.
pub(crate) const HANDOFF_MAX_BYTES: usize = 4 << 20;

/// The events the engine has just appended, decoded, until the read models' projection meets
/// them in `$all`.
///
/// Entries are keyed by stream and revision, and put only after the append succeeded: a stream's
/// revision is then ours, whoever else writes to the store, so what the projection takes is
/// exactly what it would have decoded (tests compare both ways on every append in debug builds).
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    inner: Mutex<HandoffInner>,
}

#[derive(Debug, Default)]
struct HandoffInner {
    events: HashMap<Key, Decoded>,
    /// In the order they were put: stream, revision, the append's last position, bytes.
    order: VecDeque<(Box<str>, u64, Position, usize)>,
    bytes: usize,
    taken: u64,
}

/// A handed-over event: its stream and revision.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    stream: Box<str>,
    revision: u64,
}

/// The same, borrowed from the recorded event the projection meets: looked up without
/// allocating. Its hash equals [`Key`]'s (a `Box<str>` and a `&str` hash as their `str`).
#[derive(Hash)]
struct KeyRef<'a> {
    stream: &'a str,
    revision: u64,
}

impl<'a> KeyRef<'a> {
    fn of(recorded: &'a RecordedEvent) -> Self {
        KeyRef {
            stream: &recorded.stream,
            revision: recorded.revision,
        }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.revision == key.revision && self.stream == &*key.stream
    }
}

impl Handoff {
    /// Puts the events of one successful append: `events[i]` is at revision `first_revision + i`
    /// of `stream`, the last one at `position`; `sizes[i]` is its encoded size.
    pub(crate) fn put(
        &self,
        stream: &str,
        first_revision: u64,
        position: Position,
        events: impl IntoIterator<Item = (Decoded, usize)>,
    ) {
        let mut inner = self.inner.lock();
        for ((decoded, size), revision) in events.into_iter().zip(first_revision..) {
            let key: Box<str> = stream.into();
            inner.bytes = inner.bytes.saturating_add(size);
            inner
                .order
                .push_back((key.clone(), revision, position, size));
            inner.events.insert(
                Key {
                    stream: key,
                    revision,
                },
                decoded,
            );
        }
        while inner.bytes > HANDOFF_MAX_BYTES {
            let Some((stream, revision, _, size)) = inner.order.pop_front() else {
                break;
            };
            inner.bytes = inner.bytes.saturating_sub(size);
            inner.events.remove(&Key { stream, revision });
        }
    }

    /// The indexes of the page's member events the engine did not hand over (or that are no
    /// longer held), in order; one lock for the whole page.
    pub(crate) fn missing(&self, page: &[RecordedEvent]) -> Vec<usize> {
        let inner = self.inner.lock();
        page.iter()
            .enumerate()
            .filter(|(_, recorded)| {
                recorded.stream.starts_with(codec::MEMBER_PREFIX)
                    && !inner.events.contains_key(&KeyRef::of(recorded))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Takes the decoded form of `recorded` if the engine handed it over. Entries of appends
    /// wholly before `recorded` are dropped on the way: the projection has passed them (they
    /// were met before the engine could put them).
    pub(crate) fn take(&self, recorded: &RecordedEvent) -> Option<Decoded> {
        let mut inner = self.inner.lock();
        if inner.order.is_empty() {
            return None;
        }
        while let Some((_, _, position, _)) = inner.order.front()
            && *position < recorded.position
        {
            if let Some((stream, revision, _, size)) = inner.order.pop_front() {
                inner.bytes = inner.bytes.saturating_sub(size);
                inner.events.remove(&Key { stream, revision });
            }
        }
        let taken = inner.events.remove(&KeyRef::of(recorded));
        if taken.is_some() {
            inner.taken += 1;
        }
        taken
    }

    /// Events the projection took instead of decoding them, since the start.
    pub(crate) fn taken(&self) -> u64 {
        self.inner.lock().taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use loyalty_core::{Command, Enroll, MemberId, MemberState, Program, ServerTime, decide};
    use loyalty_store::Bytes;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap()
    }

    fn enrolled(member: &str) -> Event {
        let program = Program::from_toml_str(include_str!("../../../config/program.toml")).unwrap();
        let command = Command::Enroll(Enroll {
            member_id: MemberId::new(member).unwrap(),
            referrer: None,
            occurred_at: at(),
        });
        let decision = decide(
            &MemberState::default(),
            &command,
            &program,
            ServerTime::at(at()),
        );
        decision.unwrap().events.remove(0)
    }

    fn recorded(stream: &str, revision: u64, position: u64, metadata: &str) -> RecordedEvent {
        RecordedEvent {
            stream: stream.to_owned(),
            revision,
            position: Position::new(position, position),
            id: uuid::Uuid::nil(),
            event_type: "MemberEnrolled".to_owned(),
            schema_version: 1,
            data: Bytes::new(),
            metadata: Bytes::from(metadata.to_owned()),
        }
    }

    fn decoded(member: &str) -> Decoded {
        Decoded {
            event: enrolled(member),
            recorded_at: at(),
        }
    }

    #[test]
    fn the_borrowing_parse_accepts_exactly_the_documents_the_full_metadata_parse_accepts() {
        let full = r#"{"client_id":"t-1","command":"RecordPurchase","correlation_id":"c\"1",
            "causation_id":null,"occurred_at":"2026-03-01T09:59:00Z",
            "recorded_at":"2026-03-01T10:00:00.123456789Z","rules_version":"v\u00e9",
            "actor":"till 7","later_field":[1,2]}"#;
        let minimal = r#"{"client_id":"","command":"c","occurred_at":"2026-03-01T09:59:00Z",
            "recorded_at":"2026-03-02T00:00:00Z","rules_version":"v"}"#;
        let no_client = r#"{"command":"c","occurred_at":"2026-03-01T09:59:00Z",
            "recorded_at":"2026-03-02T00:00:00Z","rules_version":"v"}"#;
        let actor_not_text = r#"{"client_id":"","command":"c","occurred_at":"2026-03-01T09:59:00Z",
            "recorded_at":"2026-03-02T00:00:00Z","rules_version":"v","actor":7}"#;
        let event = enrolled("m1");
        for document in [
            full,
            minimal,
            no_client,
            actor_not_text,
            "",
            "{}",
            "not json",
        ] {
            let expected = serde_json::from_slice::<crate::EventMetadata>(document.as_bytes())
                .map_or_else(|_| event.occurred_at(), |m| m.recorded_at);
            let got = recorded_at(&recorded("member-m1", 0, 1, document), &event);
            assert_eq!(got, expected, "{document}");
        }
        // Both fallbacks and both reads were exercised.
        assert_eq!(
            recorded_at(&recorded("member-m1", 0, 1, minimal), &event),
            Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
        );
        assert_eq!(
            recorded_at(&recorded("member-m1", 0, 1, no_client), &event),
            event.occurred_at()
        );
    }

    #[test]
    fn the_projection_takes_what_the_engine_handed_over_once() {
        let handoff = Handoff::default();
        handoff.put(
            "member-a",
            3,
            Position::new(10, 10),
            [(decoded("a"), 100), (decoded("a"), 100)],
        );
        let taken = handoff.take(&recorded("member-a", 3, 9, "")).unwrap();
        assert_eq!(taken.event, enrolled("a"));
        assert!(handoff.take(&recorded("member-a", 3, 9, "")).is_none());
        assert!(handoff.take(&recorded("member-a", 4, 10, "")).is_some());
        assert!(handoff.take(&recorded("member-b", 4, 10, "")).is_none());
        assert_eq!(handoff.taken(), 2);
    }

    #[test]
    fn entries_the_projection_passed_before_they_were_put_are_dropped() {
        let handoff = Handoff::default();
        handoff.put("member-a", 0, Position::new(5, 5), [(decoded("a"), 10)]);
        handoff.put("member-b", 0, Position::new(6, 6), [(decoded("b"), 10)]);
        // The projection is at position 7: both appends are behind it.
        assert!(handoff.take(&recorded("member-c", 0, 7, "")).is_none());
        assert!(handoff.inner.lock().events.is_empty());
        assert_eq!(handoff.inner.lock().bytes, 0);
    }

    #[test]
    fn the_handoff_holds_at_most_its_bytes_and_lets_the_oldest_go() {
        let handoff = Handoff::default();
        let size = HANDOFF_MAX_BYTES / 4;
        for revision in 0..6 {
            handoff.put(
                "member-a",
                revision,
                Position::new(revision + 1, revision + 1),
                [(decoded("a"), size)],
            );
        }
        assert!(handoff.inner.lock().bytes <= HANDOFF_MAX_BYTES);
        // Revisions 0 and 1 went; the projection decodes them from the store.
        assert!(handoff.take(&recorded("member-a", 0, 1, "")).is_none());
        assert!(handoff.take(&recorded("member-a", 1, 2, "")).is_none());
        assert!(handoff.take(&recorded("member-a", 2, 3, "")).is_some());
    }

    /// Every page comes, in order, each event decoded beside its recorded form; after the
    /// end, asking again answers the end again.
    #[tokio::test]
    async fn decoded_pages_come_in_order_and_the_end_stays_the_end() {
        use loyalty_store::{EventData, ExpectedRevision, InMemoryStore};
        let store = Arc::new(InMemoryStore::new());
        for i in 0..25u64 {
            let member = format!("m{i}");
            let stored = loyalty_core::schema::encode(&enrolled(&member));
            let event = EventData {
                id: uuid::Uuid::new_v4(),
                event_type: stored.event_type.to_owned(),
                schema_version: stored.schema_version,
                data: Bytes::from(stored.data),
                metadata: Bytes::from_static(b"{}"),
            };
            let stream = if i % 5 == 0 {
                format!("txn-{i}")
            } else {
                format!("member-{member}")
            };
            store
                .append(&stream, ExpectedRevision::NoStream, vec![event])
                .await
                .unwrap();
        }
        let mut pages = DecodedPages::new(store, Position::START, 4);
        let mut seen = Vec::new();
        while let Some((page, decoded)) = pages.next().await.unwrap() {
            assert!(page.len() <= 4);
            assert_eq!(page.len(), decoded.len());
            for (recorded, decoded) in page.iter().zip(decoded) {
                let i: u64 = recorded
                    .stream
                    .rsplit(['-', 'm'])
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                match decoded {
                    None => assert!(recorded.stream.starts_with("txn-")),
                    Some(d) => assert_eq!(d.unwrap().event, enrolled(&format!("m{i}"))),
                }
                seen.push(i);
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert!(pages.next().await.unwrap().is_none());
    }

    #[test]
    fn a_page_decodes_on_every_core_in_its_own_order() {
        let events: Vec<RecordedEvent> = (0..1000u64)
            .map(|i| {
                let member = format!("m{i}");
                let stored = loyalty_core::schema::encode(&enrolled(&member));
                let stream = if i % 7 == 0 {
                    format!("txn-{i}")
                } else {
                    format!("member-{member}")
                };
                RecordedEvent {
                    event_type: stored.event_type.to_owned(),
                    schema_version: stored.schema_version,
                    data: Bytes::from(stored.data),
                    ..recorded(&stream, 0, i + 1, "")
                }
            })
            .collect();
        let page = decode_page(&events);
        assert_eq!(page.len(), events.len());
        for (i, (recorded, decoded)) in events.iter().zip(page).enumerate() {
            match decoded {
                None => assert!(recorded.stream.starts_with("txn-"), "{i}"),
                Some(decoded) => {
                    assert_eq!(decoded.unwrap().event, enrolled(&format!("m{i}")));
                }
            }
        }
    }
}
