//! The hash chain ([`loyalty_store::chain`]) on PostgreSQL: computed by the writer inside the
//! append's transaction, under the log lock, so links are written in position order with the
//! events they cover and commit (or roll back) with them.
//!
//! The chain's head lives in `log_head` (`chained_to`, `chain_hash`), each stream's last
//! `stream_hash` in `streams.last_hash`, the links in `chain` (schema version 2). Events stored
//! above `chained_to` were written without a link: by an earlier build (the database was
//! upgraded), or by a process of an earlier build still running while the others were upgraded
//! (it checked the schema version when it connected, and its statements still work). They are
//! chained here, in position order, at open and before the next append; events such a process
//! truncated before they were chained cannot be chained (their bytes are gone), and the chain
//! simply never holds them.
use std::collections::HashMap;

use loyalty_store::chain::{ChainLink, EventFields, GENESIS, Hash, chain_link, event_hash, link};
use loyalty_store::{Limits, Position, RecordedEvent, StoreError};
use tokio_postgres::types::Type;

use crate::error::SqlResult;
use crate::{EVENT_COLUMNS, Names, recorded, saturating_i64, take_log_lock, to_u64};

/// Events chained per statement when catching up with unchained events: bounds the memory
/// (one page of events) and the size of one statement.
const CATCH_UP_PAGE: i64 = 1_024;

/// The head of the log and of its chain, as the writer reads it under the log lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainHead {
    /// The last position assigned (`log_head.position`).
    pub position: u64,
    /// The position the chain covers (every event stored up to it has its link).
    pub chained_to: u64,
    /// The last link's `chain_hash` (GENESIS before the first).
    pub hash: Hash,
}

impl ChainHead {
    /// Whether events were stored without a link (see the module's documentation).
    pub fn pending(&self) -> bool {
        self.chained_to < self.position
    }
}

pub(crate) const HEAD_QUERY: &str =
    "SELECT position, chained_to, chain_hash FROM log_head WHERE id = 0";

pub(crate) fn head_from_row(row: &tokio_postgres::Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        position: to_u64(row.try_get(0).sql()?, "log_head.position")?,
        chained_to: to_u64(row.try_get(1).sql()?, "log_head.chained_to")?,
        hash: to_hash(row.try_get(2).sql()?, "log_head.chain_hash")?,
    })
}

pub(crate) fn to_hash(bytes: Vec<u8>, what: &str) -> Result<Hash, StoreError> {
    let length = bytes.len();
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} holds {length} bytes, not 32")))
}

/// The links of one part's events, about to be stored at the positions after `head.position`
/// in the stream whose last hash is `stream_hash` (GENESIS for a stream not chained yet).
/// Moves `head` and `stream_hash` past them.
pub(crate) fn links(
    head: &mut ChainHead,
    stream_hash: &mut Hash,
    stream: &str,
    first_revision: u64,
    events: &[loyalty_store::EventData],
) -> Vec<ChainLink> {
    let mut out = Vec::with_capacity(events.len());
    for (offset, e) in events.iter().enumerate() {
        let p = head.position + 1;
        let position = Position::new(p, p);
        let revision = first_revision + offset as u64;
        let hash = event_hash(EventFields {
            position,
            stream,
            revision,
            id: e.id,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            data: &e.data,
            metadata: &e.metadata,
        });
        *stream_hash = link(stream_hash, &hash);
        head.hash = chain_link(&head.hash, position, stream, revision, &hash);
        head.position = p;
        head.chained_to = p;
        out.push(ChainLink {
            position,
            stream: stream.to_owned(),
            revision,
            event_hash: hash,
            stream_hash: *stream_hash,
            chain_hash: head.hash,
        });
    }
    out
}

/// The three hash columns of `links`, as arrays to bind.
pub(crate) fn hash_columns(links: &[ChainLink]) -> [Vec<&[u8]>; 3] {
    [
        links.iter().map(|l| l.event_hash.as_slice()).collect(),
        links.iter().map(|l| l.stream_hash.as_slice()).collect(),
        links.iter().map(|l| l.chain_hash.as_slice()).collect(),
    ]
}

/// Chains the events stored above `head.chained_to`, in position order, a page at a time,
/// inside the caller's write transaction (which holds the log lock), and moves `head` to the
/// end of the log. With `max_pages`, stops after that many pages (the caller commits and comes
/// back). Returns the number of events chained.
pub(crate) async fn chain_pending(
    tx: &deadpool_postgres::Transaction<'_>,
    head: &mut ChainHead,
    max_pages: Option<usize>,
) -> Result<u64, StoreError> {
    let read = tx
        .prepare_typed_cached(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 AND position <= $2
                 ORDER BY position LIMIT $3"
            ),
            &[Type::INT8, Type::INT8, Type::INT8],
        )
        .await
        .sql()?;
    let stream_hashes = tx
        .prepare_typed_cached(
            "SELECT stream, last_hash FROM streams WHERE stream = ANY($1)",
            &[Type::TEXT_ARRAY],
        )
        .await
        .sql()?;
    let write = tx
        .prepare_typed_cached(
            "WITH chained AS (
                INSERT INTO chain (position, stream, revision, event_hash, stream_hash, chain_hash)
                SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::bytea[],
                                     $5::bytea[], $6::bytea[])
            ), streams_moved AS (
                UPDATE streams SET last_hash = moved.hash
                FROM UNNEST($7::text[], $8::bytea[]) AS moved(stream, hash)
                WHERE streams.stream = moved.stream
            )
            UPDATE log_head SET chained_to = $9, chain_hash = $10 WHERE id = 0",
            &[
                Type::INT8_ARRAY,
                Type::TEXT_ARRAY,
                Type::INT8_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::BYTEA_ARRAY,
                Type::TEXT_ARRAY,
                Type::BYTEA_ARRAY,
                Type::INT8,
                Type::BYTEA,
            ],
        )
        .await
        .sql()?;
    let mut chained = 0;
    let mut pages = 0;
    while head.pending() && max_pages.is_none_or(|max| pages < max) {
        pages += 1;
        let rows = tx
            .query(
                &read,
                &[
                    &saturating_i64(head.chained_to),
                    &saturating_i64(head.position),
                    &CATCH_UP_PAGE,
                ],
            )
            .await
            .sql()?;
        let events = rows.iter().map(recorded).collect::<Result<Vec<_>, _>>()?;
        // The page's streams' last hashes, moved along as their events are chained.
        let mut names: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut last: HashMap<String, Hash> = HashMap::with_capacity(names.len());
        for row in tx.query(&stream_hashes, &[&names]).await.sql()? {
            let stream: String = row.try_get(0).sql()?;
            let hash = match row.try_get::<_, Option<Vec<u8>>>(1).sql()? {
                Some(bytes) => to_hash(bytes, "streams.last_hash")?,
                None => GENESIS,
            };
            last.insert(stream, hash);
        }
        let mut links = Vec::with_capacity(events.len());
        for event in &events {
            let stream_hash = last.entry(event.stream.clone()).or_insert(GENESIS);
            links.push(link_of(event, stream_hash, &mut head.hash));
        }
        // The end of this page, or of the log: positions past the last event stored were
        // taken by events truncated before they could be chained.
        head.chained_to = if (events.len() as i64) < CATCH_UP_PAGE {
            head.position
        } else {
            events.last().map_or(head.position, |e| e.position.commit)
        };
        let positions: Vec<i64> = links
            .iter()
            .map(|l| saturating_i64(l.position.commit))
            .collect();
        let streams: Vec<&str> = links.iter().map(|l| l.stream.as_str()).collect();
        let revisions: Vec<i64> = links.iter().map(|l| saturating_i64(l.revision)).collect();
        let [event_hashes, stream_hashes_column, chain_hashes] = hash_columns(&links);
        let (moved_streams, moved_hashes): (Vec<&str>, Vec<&[u8]>) = last
            .iter()
            .map(|(stream, hash)| (stream.as_str(), hash.as_slice()))
            .unzip();
        tx.execute(
            &write,
            &[
                &positions,
                &streams,
                &revisions,
                &event_hashes,
                &stream_hashes_column,
                &chain_hashes,
                &moved_streams,
                &moved_hashes,
                &saturating_i64(head.chained_to),
                &head.hash.as_slice(),
            ],
        )
        .await
        .sql()?;
        chained += links.len() as u64;
    }
    Ok(chained)
}

/// The link of an event already stored, moving its stream's and the chain's last hashes.
fn link_of(event: &RecordedEvent, stream_hash: &mut Hash, chain_hash: &mut Hash) -> ChainLink {
    let hash = event_hash(EventFields::from(event));
    *stream_hash = link(stream_hash, &hash);
    *chain_hash = chain_link(
        chain_hash,
        event.position,
        &event.stream,
        event.revision,
        &hash,
    );
    ChainLink {
        position: event.position,
        stream: event.stream.clone(),
        revision: event.revision,
        event_hash: hash,
        stream_hash: *stream_hash,
        chain_hash: *chain_hash,
    }
}

/// At open: chains what an earlier build stored, a page per transaction (each under the log
/// lock, so appends of other servers interleave and the work done is kept if the process
/// stops). Returns the number of events chained.
pub(crate) async fn catch_up_at_open(
    client: &mut deadpool_postgres::Object,
    names: &Names,
) -> Result<u64, StoreError> {
    // Most opens find nothing to chain: that is seen without the log lock (no wait behind a
    // batch of appends, and nothing a role that may only read needs to be allowed).
    if !head_from_row(&client.query_one(HEAD_QUERY, &[]).await.sql()?)?.pending() {
        return Ok(0);
    }
    let mut chained = 0;
    loop {
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .sql()?;
        take_log_lock(&tx, names.log_lock).await?;
        let mut head = head_from_row(&tx.query_one(HEAD_QUERY, &[]).await.sql()?)?;
        if !head.pending() {
            return Ok(chained);
        }
        chained += chain_pending(&tx, &mut head, Some(1)).await?;
        tx.commit().await.sql()?;
        if chained > 0 && chained.is_multiple_of(64 * CATCH_UP_PAGE as u64) {
            let schema = names.schema.as_str();
            tracing::info!(schema, chained, "chaining the events of an earlier build");
        }
    }
}

/// `read_chain`: up to `max_count` links after `after`, in position order.
pub(crate) async fn read_chain(
    client: &deadpool_postgres::Object,
    limits: Limits,
    after: Position,
    max_count: usize,
) -> Result<Vec<ChainLink>, StoreError> {
    limits.check_page(max_count)?;
    // As in `read_all`: positions here are (p, p).
    let bound = if after.prepare < after.commit {
        after.commit - 1
    } else {
        after.commit
    };
    let statement = client
        .prepare_cached(
            "SELECT position, stream, revision, event_hash, stream_hash, chain_hash FROM chain
             WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .await
        .sql()?;
    let rows = client
        .query(
            &statement,
            &[&saturating_i64(bound), &saturating_i64(max_count as u64)],
        )
        .await
        .sql()?;
    rows.iter()
        .map(|row| {
            let position = to_u64(row.try_get(0).sql()?, "chain.position")?;
            Ok(ChainLink {
                position: Position::new(position, position),
                stream: row.try_get(1).sql()?,
                revision: to_u64(row.try_get(2).sql()?, "chain.revision")?,
                event_hash: to_hash(row.try_get(3).sql()?, "chain.event_hash")?,
                stream_hash: to_hash(row.try_get(4).sql()?, "chain.stream_hash")?,
                chain_hash: to_hash(row.try_get(5).sql()?, "chain.chain_hash")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use loyalty_store::{Bytes, EventData, Uuid};

    use super::*;

    fn event(n: u8) -> EventData {
        EventData {
            id: Uuid::from_bytes([n; 16]),
            event_type: "T".to_owned(),
            schema_version: 1,
            data: Bytes::from(vec![n; 3]),
            metadata: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn links_computed_at_append_equal_links_computed_from_the_stored_events() {
        // Given a chain at position 7 and a stream already chained once
        let start = ChainHead {
            position: 7,
            chained_to: 7,
            hash: [9; 32],
        };
        let (mut head, mut stream_hash) = (start, [5; 32]);
        let events = [event(1), event(2)];
        // When two events are linked at append, at revisions 3 and 4
        let at_append = links(&mut head, &mut stream_hash, "s", 3, &events);
        // Then catching up from the stored events gives the same links and the same head
        let (mut from_stream, mut from_chain) = ([5; 32], [9; 32]);
        let stored: Vec<ChainLink> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let p = 8 + i as u64;
                let recorded = RecordedEvent {
                    stream: "s".to_owned(),
                    revision: 3 + i as u64,
                    position: Position::new(p, p),
                    id: e.id,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: e.data.clone(),
                    metadata: e.metadata.clone(),
                };
                link_of(&recorded, &mut from_stream, &mut from_chain)
            })
            .collect();
        assert_eq!(at_append, stored);
        assert_eq!((head.position, head.chained_to), (9, 9));
        assert_eq!(head.hash, from_chain);
        assert_eq!(stream_hash, from_stream);
        assert_ne!(at_append[0].chain_hash, at_append[1].chain_hash);
    }
}
