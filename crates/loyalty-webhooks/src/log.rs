//! An endpoint's delivery log and checkpoint: the stream `webhook-log-<endpoint>`, whose events
//! each record a batch of attempts and the checkpoint reached when they were written. The
//! dispatcher appends a batch every `log_flush_ms` (or `log_batch` attempts); the stream keeps
//! its last `log_keep_events` events (a little more between two truncations).
//!
//! Stored form (event type `DeliveriesRecorded`, schema version 1), this module's own DTO:
//!
//! ```json
//! {"generation":0,"checkpoint":{"commit":42,"prepare":42},
//!  "attempts":[{"message_id":"msg_...","event_type":"purchase.recorded","member_id":"alice",
//!    "commit":40,"prepare":40,"revision":3,"attempt":1,"at":"2026-03-01T10:00:00Z",
//!    "status":200,"error":null,"latency_ms":12,"outcome":"delivered","redelivery":false}]}
//! ```
//!
//! Only one server writes an endpoint's log (the one holding the `webhooks` lease), so appends
//! expect no revision. The checkpoint is read from the last event at the start of a worker;
//! `generation` says which replay of the endpoint it belongs to (a newer endpoint generation
//! restarts from the endpoint's `start_after`). `revision` is the source event's revision in
//! its member stream: a redelivery re-reads the event there.

use chrono::{DateTime, Utc};
use loyalty_store::{
    Bytes, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, Position,
    RecordedEvent, StreamFrom,
};
use serde::{Deserialize, Serialize};

use crate::endpoint::{EndpointId, EventType};
use crate::{LOG_PREFIX, WebhookError, Webhooks};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered,
    /// Not delivered; it will be tried again.
    Retrying,
    /// Not delivered within the retry time: the endpoint was marked failing (the message stays
    /// in its backlog).
    GaveUp,
    /// A manual redelivery that was not answered with a 2xx: it is not tried again (the
    /// message's place in the endpoint's order is not affected).
    Failed,
}

/// One attempt to deliver one message (its stored form is this module's own DTO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub message_id: String,
    pub event_type: EventType,
    pub member_id: String,
    /// The source event's position in `$all`.
    pub position: Position,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the request was sent (server clock).
    pub at: DateTime<Utc>,
    /// The HTTP status, when one came back.
    pub status: Option<u16>,
    /// Why it failed without a status (timeout, connection refused...), bounded in length.
    pub error: Option<String>,
    pub latency_ms: u64,
    pub outcome: AttemptOutcome,
    /// A manual redelivery (outside the endpoint's order).
    pub redelivery: bool,
}

/// A page of the delivery log, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// At most this many attempts (1..=`MAX_PAGE`; a value outside is brought into it).
    pub limit: usize,
    /// The cursor of the previous page's `next`.
    pub before: Option<String>,
    /// Only this message's attempts.
    pub message_id: Option<String>,
}

pub const MAX_PAGE: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct DeliveryPage {
    pub attempts: Vec<DeliveryAttempt>,
    /// The cursor of the next (older) page, if there is one.
    pub next: Option<String>,
}

/// How far an endpoint's deliveries got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// Every message at or before this position was delivered (or not wanted).
    pub checkpoint: Option<Position>,
    /// The last 2xx answer.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// The last attempt that failed, and why.
    pub last_failure: Option<(DateTime<Utc>, String)>,
    /// The event of a newer release deliveries stopped at, on this server (the one delivering):
    /// nothing after it is sent until a server of a build that reads it delivers.
    pub halted: Option<loyalty_engine::NewerSchemaEvent>,
}

const EVENT_TYPE: &str = "DeliveriesRecorded";
const SCHEMA_VERSION: u32 = 1;
/// Events read per store call when scanning a log backwards.
const READ_CHUNK: usize = 64;
/// Events `status` looks back through for the last delivery and the last failure.
const STATUS_SCAN_EVENTS: usize = 64;
/// Events looked back through for a checkpoint (every event carries one: this only skips
/// unreadable ones).
const CHECKPOINT_SCAN_EVENTS: usize = 64;
/// Most attempts in one stored event, whatever `log_batch` says: keeps an event well under the
/// store's append size limit (an attempt is at most about 500 bytes).
const MAX_ATTEMPTS_PER_EVENT: usize = 1_000;

/// The log stream of an endpoint.
pub fn stream_name(id: &EndpointId) -> String {
    format!("{LOG_PREFIX}{id}")
}

/// An attempt as the dispatcher records it: the attempt, and the source event's revision in
/// its member stream (for a redelivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedAttempt {
    pub(crate) attempt: DeliveryAttempt,
    pub(crate) revision: u64,
}

/// Where a message's source event is, for a redelivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) position: Position,
    pub(crate) member_id: String,
    pub(crate) revision: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredBatch {
    generation: u64,
    checkpoint: Option<StoredPosition>,
    attempts: Vec<StoredAttempt>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct StoredPosition {
    commit: u64,
    prepare: u64,
}

impl From<Position> for StoredPosition {
    fn from(p: Position) -> Self {
        StoredPosition {
            commit: p.commit,
            prepare: p.prepare,
        }
    }
}

impl From<StoredPosition> for Position {
    fn from(p: StoredPosition) -> Self {
        Position::new(p.commit, p.prepare)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredAttempt {
    message_id: String,
    event_type: EventType,
    member_id: String,
    commit: u64,
    prepare: u64,
    revision: u64,
    attempt: u32,
    at: DateTime<Utc>,
    status: Option<u16>,
    error: Option<String>,
    latency_ms: u64,
    outcome: AttemptOutcome,
    #[serde(default)]
    redelivery: bool,
}

impl StoredAttempt {
    fn from_logged(logged: &LoggedAttempt) -> StoredAttempt {
        let a = &logged.attempt;
        StoredAttempt {
            message_id: a.message_id.clone(),
            event_type: a.event_type,
            member_id: a.member_id.clone(),
            commit: a.position.commit,
            prepare: a.position.prepare,
            revision: logged.revision,
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            error: a.error.clone(),
            latency_ms: a.latency_ms,
            outcome: a.outcome,
            redelivery: a.redelivery,
        }
    }

    fn position(&self) -> Position {
        Position::new(self.commit, self.prepare)
    }

    fn to_attempt(&self) -> DeliveryAttempt {
        DeliveryAttempt {
            message_id: self.message_id.clone(),
            event_type: self.event_type,
            member_id: self.member_id.clone(),
            position: self.position(),
            attempt: self.attempt,
            at: self.at,
            status: self.status,
            error: self.error.clone(),
            latency_ms: self.latency_ms,
            outcome: self.outcome,
            redelivery: self.redelivery,
        }
    }

    fn failure(&self) -> Option<String> {
        match (self.outcome, &self.error, self.status) {
            (AttemptOutcome::Delivered, _, _) => None,
            (_, Some(error), _) => Some(error.clone()),
            (_, None, Some(status)) => Some(format!("HTTP {status}")),
            (_, None, None) => Some("failed".to_owned()),
        }
    }
}

/// A stored batch, if the event is one this server reads: `Ok(None)` for another type or a
/// newer schema version (a newer server's, during a rolling upgrade).
fn decode(event: &RecordedEvent) -> Result<Option<StoredBatch>, WebhookError> {
    if event.event_type != EVENT_TYPE || event.schema_version != SCHEMA_VERSION {
        return Ok(None);
    }
    serde_json::from_slice(&event.data).map(Some).map_err(|e| {
        WebhookError::Corrupt(format!(
            "delivery log {} at revision {}: {e}",
            event.stream, event.revision
        ))
    })
}

/// Reads a stream backwards, a chunk at a time, from its end or from a revision.
struct Backwards {
    stream: String,
    next: Option<StreamFrom>,
}

impl Backwards {
    fn new(stream: String, from: StreamFrom) -> Backwards {
        Backwards {
            stream,
            next: Some(from),
        }
    }

    /// The next (older) chunk; empty once the stream's first kept event was read.
    async fn chunk(&mut self, store: &dyn EventStore) -> Result<Vec<RecordedEvent>, WebhookError> {
        let Some(from) = self.next else {
            return Ok(Vec::new());
        };
        let events = store
            .read_stream(&self.stream, from, Direction::Backwards, READ_CHUNK)
            .await?;
        self.next = match events.last() {
            Some(last) if events.len() == READ_CHUNK && last.revision > 0 => {
                Some(StreamFrom::Revision(last.revision - 1))
            }
            _ => None,
        };
        Ok(events)
    }
}

/// Appends a batch of attempts with the checkpoint reached and its generation (one event per
/// `log_batch` attempts, at least one event), then truncates the stream to its last
/// `keep` events now and then.
pub(crate) async fn append(
    store: &dyn EventStore,
    id: &EndpointId,
    generation: u64,
    checkpoint: Option<Position>,
    attempts: &[LoggedAttempt],
    log_batch: usize,
    keep: u64,
) -> Result<(), WebhookError> {
    let stream = stream_name(id);
    let per_event = log_batch.clamp(1, MAX_ATTEMPTS_PER_EVENT);
    let mut chunks: Vec<&[LoggedAttempt]> = attempts.chunks(per_event).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let mut last = None;
    for chunk in chunks {
        let batch = StoredBatch {
            generation,
            checkpoint: checkpoint.map(StoredPosition::from),
            attempts: chunk.iter().map(StoredAttempt::from_logged).collect(),
        };
        let data = serde_json::to_vec(&batch).map_err(|e| WebhookError::Corrupt(e.to_string()))?;
        let event = EventData {
            id: uuid::Uuid::new_v4(),
            event_type: EVENT_TYPE.to_owned(),
            schema_version: SCHEMA_VERSION,
            data: Bytes::from(data),
            metadata: Bytes::from_static(b"{}"),
        };
        // One writer (the lease holder): no expected revision. A late write of a server that
        // just lost the lease can only put an older checkpoint last: messages sent again,
        // never skipped.
        let written = store
            .append(&stream, ExpectedRevision::Any, vec![event])
            .await?;
        last = Some(written.next_expected_revision);
    }
    if let Some(last) = last {
        keep_last(store, &stream, last, keep).await;
    }
    Ok(())
}

/// After the event at revision `last`: truncates the events before the last `keep`, every
/// `keep / 16` events (so at most that many more are kept). Best effort, like the engine's
/// bookkeeping streams.
async fn keep_last(store: &dyn EventStore, stream: &str, last: u64, keep: u64) {
    let keep = keep.max(1);
    let every = (keep / 16).max(1);
    let count = last.saturating_add(1);
    if count <= keep || !last.is_multiple_of(every) {
        return;
    }
    if let Err(e) = store.truncate_before(stream, count - keep).await {
        tracing::debug!(%stream, error = %e, "delivery log not truncated");
    }
}

/// Empties a (deleted) endpoint's log for good.
pub(crate) async fn remove(store: &dyn EventStore, id: &EndpointId) -> Result<(), WebhookError> {
    let stream = stream_name(id);
    // Nothing left to read: no truncation written (the dispatcher checks every deleted
    // endpoint each time it takes the lease).
    let last = store
        .read_stream(&stream, StreamFrom::End, Direction::Backwards, 1)
        .await?;
    if last.is_empty() {
        return Ok(());
    }
    if let CurrentRevision::Current(last) = store.stream_revision(&stream).await? {
        store
            .truncate_before(&stream, last.saturating_add(1))
            .await?;
    }
    Ok(())
}

/// The checkpoint of the endpoint's log and the generation it belongs to; `(0, None)` for a
/// log without one. An unreadable event is skipped (with a warning): an older checkpoint means
/// messages sent again, a stalled endpoint would mean none.
pub(crate) async fn load_checkpoint(
    store: &dyn EventStore,
    id: &EndpointId,
) -> Result<(u64, Option<Position>), WebhookError> {
    let mut reader = Backwards::new(stream_name(id), StreamFrom::End);
    let mut seen = 0;
    while seen < CHECKPOINT_SCAN_EVENTS {
        let events = reader.chunk(store).await?;
        if events.is_empty() {
            break;
        }
        for event in &events {
            seen += 1;
            match decode(event) {
                Ok(Some(StoredBatch {
                    generation,
                    checkpoint: Some(checkpoint),
                    ..
                })) => return Ok((generation, Some(checkpoint.into()))),
                Ok(_) => {}
                Err(e) => tracing::warn!(endpoint = %id, error = %e,
                    "delivery log event skipped"),
            }
        }
    }
    Ok((0, None))
}

/// How far the endpoint's deliveries got.
pub(crate) async fn status(
    webhooks: &Webhooks,
    id: &EndpointId,
) -> Result<DeliveryStatus, WebhookError> {
    crate::registry::get(webhooks, id).await?;
    read_status(webhooks, id).await
}

/// [`status`] of an endpoint the caller knows exists.
pub(crate) async fn read_status(
    webhooks: &Webhooks,
    id: &EndpointId,
) -> Result<DeliveryStatus, WebhookError> {
    let store = webhooks.inner.engine.store().as_ref();
    let mut status = DeliveryStatus::default();
    let mut checkpoint_seen = false;
    let mut reader = Backwards::new(stream_name(id), StreamFrom::End);
    let mut seen = 0;
    'scan: while seen < STATUS_SCAN_EVENTS {
        let events = reader.chunk(store).await?;
        if events.is_empty() {
            break;
        }
        for event in &events {
            seen += 1;
            let Some(batch) = decode(event)? else {
                continue;
            };
            if !checkpoint_seen {
                checkpoint_seen = true;
                status.checkpoint = batch.checkpoint.map(Position::from);
            }
            for attempt in batch.attempts.iter().rev() {
                match attempt.failure() {
                    None if status.last_delivered_at.is_none() => {
                        status.last_delivered_at = Some(attempt.at);
                    }
                    Some(why) if status.last_failure.is_none() => {
                        status.last_failure = Some((attempt.at, why));
                    }
                    _ => {}
                }
            }
            if status.last_delivered_at.is_some() && status.last_failure.is_some() {
                break 'scan;
            }
        }
    }
    status.halted = webhooks.halted_at(id);
    Ok(status)
}

/// A cursor: the stored event (revision) and the attempt in it (index) a page ended at.
fn parse_cursor(text: &str) -> Result<(u64, usize), WebhookError> {
    let (revision, index) = text.split_once('.').ok_or(WebhookError::InvalidCursor)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(revision) || !digits(index) {
        return Err(WebhookError::InvalidCursor);
    }
    Ok((
        revision.parse().map_err(|_| WebhookError::InvalidCursor)?,
        index.parse().map_err(|_| WebhookError::InvalidCursor)?,
    ))
}

fn cursor_text(revision: u64, index: usize) -> String {
    format!("{revision}.{index}")
}

/// The endpoint's delivery log, newest first.
pub(crate) async fn page(
    webhooks: &Webhooks,
    id: &EndpointId,
    query: DeliveryQuery,
) -> Result<DeliveryPage, WebhookError> {
    let before = query.before.as_deref().map(parse_cursor).transpose()?;
    crate::registry::get(webhooks, id).await?;
    let limit = query.limit.clamp(1, MAX_PAGE);
    let store = webhooks.inner.engine.store().as_ref();
    let from = match before {
        Some((revision, _)) => StreamFrom::Revision(revision),
        None => StreamFrom::End,
    };
    let mut reader = Backwards::new(stream_name(id), from);
    // One more than asked for, to know whether there is a next page.
    let mut found: Vec<(u64, usize, DeliveryAttempt)> = Vec::with_capacity(limit + 1);
    'scan: loop {
        let events = reader.chunk(store).await?;
        if events.is_empty() {
            break;
        }
        for event in &events {
            let Some(batch) = decode(event)? else {
                continue;
            };
            for (index, attempt) in batch.attempts.iter().enumerate().rev() {
                if let Some((revision, at)) = before
                    && event.revision == revision
                    && index >= at
                {
                    continue;
                }
                if query
                    .message_id
                    .as_deref()
                    .is_some_and(|m| m != attempt.message_id)
                {
                    continue;
                }
                found.push((event.revision, index, attempt.to_attempt()));
                if found.len() > limit {
                    break 'scan;
                }
            }
        }
    }
    let next = if found.len() > limit {
        found.truncate(limit);
        found
            .last()
            .map(|(revision, index, _)| cursor_text(*revision, *index))
    } else {
        None
    };
    Ok(DeliveryPage {
        attempts: found.into_iter().map(|(_, _, a)| a).collect(),
        next,
    })
}

/// Where the message's source event is, from the newest attempt of it the log still holds.
pub(crate) async fn find_source(
    store: &dyn EventStore,
    id: &EndpointId,
    message_id: &str,
) -> Result<Option<Source>, WebhookError> {
    let mut reader = Backwards::new(stream_name(id), StreamFrom::End);
    loop {
        let events = reader.chunk(store).await?;
        if events.is_empty() {
            return Ok(None);
        }
        for event in &events {
            let Some(batch) = decode(event)? else {
                continue;
            };
            if let Some(attempt) = batch.attempts.iter().find(|a| a.message_id == message_id) {
                return Ok(Some(Source {
                    position: attempt.position(),
                    member_id: attempt.member_id.clone(),
                    revision: attempt.revision,
                }));
            }
        }
    }
}

/// The position of a message of the endpoint's delivery log (for a redelivery request).
pub(crate) async fn find_message(
    webhooks: &Webhooks,
    id: &EndpointId,
    message_id: &str,
) -> Result<Option<Position>, WebhookError> {
    let store = webhooks.inner.engine.store().as_ref();
    Ok(find_source(store, id, message_id)
        .await?
        .map(|source| source.position))
}

#[cfg(test)]
mod tests {
    use loyalty_store::InMemoryStore;

    use super::*;

    fn id() -> EndpointId {
        EndpointId::parse("crm").expect("an id")
    }

    fn logged(n: u64, outcome: AttemptOutcome) -> LoggedAttempt {
        LoggedAttempt {
            attempt: DeliveryAttempt {
                message_id: format!("msg_{n}"),
                event_type: EventType::PurchaseRecorded,
                member_id: "alice".to_owned(),
                position: Position::new(n * 100, n * 100),
                attempt: 1,
                at: "2026-03-01T12:00:00Z".parse().expect("a time"),
                status: Some(if outcome == AttemptOutcome::Delivered {
                    200
                } else {
                    500
                }),
                error: None,
                latency_ms: 3,
                outcome,
                redelivery: false,
            },
            revision: n,
        }
    }

    #[test]
    fn a_cursor_is_a_revision_and_an_index() {
        assert_eq!(parse_cursor("12.3").expect("valid"), (12, 3));
        assert_eq!(cursor_text(12, 3), "12.3");
        for bad in [
            "",
            "12",
            "12.",
            ".3",
            "a.b",
            "-1.2",
            "1.2.3",
            "1 .2",
            "99999999999999999999999.1",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(WebhookError::InvalidCursor)),
                "{bad:?} accepted"
            );
        }
    }

    #[tokio::test]
    async fn the_checkpoint_is_the_last_batchs_with_its_generation() {
        let store = InMemoryStore::new();
        assert_eq!(
            load_checkpoint(&store, &id()).await.expect("load"),
            (0, None)
        );
        append(&store, &id(), 0, Some(Position::new(5, 5)), &[], 10, 100)
            .await
            .expect("append");
        append(
            &store,
            &id(),
            2,
            Some(Position::new(9, 9)),
            &[logged(1, AttemptOutcome::Delivered)],
            10,
            100,
        )
        .await
        .expect("append");
        assert_eq!(
            load_checkpoint(&store, &id()).await.expect("load"),
            (2, Some(Position::new(9, 9)))
        );
    }

    #[tokio::test]
    async fn a_log_keeps_about_its_last_events_and_its_checkpoint() {
        let store = InMemoryStore::new();
        for n in 0..100 {
            append(
                &store,
                &id(),
                0,
                Some(Position::new(n, n)),
                &[logged(n, AttemptOutcome::Delivered)],
                10,
                16,
            )
            .await
            .expect("append");
        }
        let kept = store
            .read_stream(
                &stream_name(&id()),
                StreamFrom::Start,
                Direction::Forwards,
                1000,
            )
            .await
            .expect("read");
        assert!((16..=17).contains(&kept.len()), "{} kept", kept.len());
        assert_eq!(
            load_checkpoint(&store, &id()).await.expect("load"),
            (0, Some(Position::new(99, 99)))
        );
    }

    #[tokio::test]
    async fn many_attempts_are_split_into_events_of_at_most_the_batch_size() {
        let store = InMemoryStore::new();
        let attempts: Vec<_> = (0..25)
            .map(|n| logged(n, AttemptOutcome::Retrying))
            .collect();
        append(&store, &id(), 0, None, &attempts, 10, 100)
            .await
            .expect("append");
        let events = store
            .read_stream(
                &stream_name(&id()),
                StreamFrom::Start,
                Direction::Forwards,
                100,
            )
            .await
            .expect("read");
        let sizes: Vec<usize> = events
            .iter()
            .map(|e| decode(e).expect("decodes").expect("ours").attempts.len())
            .collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let found = find_source(&store, &id(), "msg_7").await.expect("find");
        assert_eq!(
            found,
            Some(Source {
                position: Position::new(700, 700),
                member_id: "alice".to_owned(),
                revision: 7,
            })
        );
        assert_eq!(
            find_source(&store, &id(), "msg_99").await.expect("find"),
            None
        );
    }

    #[tokio::test]
    async fn removing_a_log_leaves_nothing_to_read() {
        let store = InMemoryStore::new();
        append(&store, &id(), 0, Some(Position::new(1, 1)), &[], 10, 100)
            .await
            .expect("append");
        remove(&store, &id()).await.expect("remove");
        assert_eq!(
            load_checkpoint(&store, &id()).await.expect("load"),
            (0, None)
        );
        // Removing again, or a log that never was, changes nothing.
        remove(&store, &id()).await.expect("again");
        remove(&store, &EndpointId::parse("other").expect("id"))
            .await
            .expect("none");
    }
}
