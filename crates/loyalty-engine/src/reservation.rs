//! Transaction ids are unique across members. The member's stream cannot see other members, so
//! each transaction id gets a reservation stream `txn-<id>` created with `NoStream`: the store's
//! optimistic concurrency lets exactly one member win it. The reservation is appended with the
//! purchase, first: atomically where the store can (SQLite), else just before it; if the process
//! dies in between, the retry finds a reservation naming the same member and goes on (the
//! purchase is never locked out).

use chrono::{DateTime, Utc};
use loyalty_core::{MemberId, TransactionId};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, StreamAppend, StreamFrom,
};
use serde::{Deserialize, Serialize};

use crate::clock::IdGenerator;
use crate::codec::txn_stream;
use crate::error::EngineError;

pub(crate) const RESERVED_EVENT: &str = "TransactionReserved";

#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    transaction_id: String,
    member_id: String,
    reserved_at: DateTime<Utc>,
}

/// The append that reserves `txn` for `member`: the first event of `txn-<id>`, expecting no
/// stream. The engine appends it together with the purchase (`append_many`): one durable
/// write on a store with multi-stream transactions, the reservation first on the others.
pub(crate) fn reservation_append(
    ids: &dyn IdGenerator,
    txn: &TransactionId,
    member: &MemberId,
    now: DateTime<Utc>,
) -> Result<StreamAppend, EngineError> {
    let data = serde_json::to_vec(&Reservation {
        transaction_id: txn.to_string(),
        member_id: member.to_string(),
        reserved_at: now,
    })
    .map_err(|e| EngineError::Corrupt(e.to_string()))?;
    Ok(StreamAppend {
        stream: txn_stream(txn),
        expected: ExpectedRevision::NoStream,
        events: vec![EventData {
            id: ids.event_id(),
            event_type: RESERVED_EVENT.to_owned(),
            schema_version: 1,
            data: Bytes::from(data),
            metadata: Bytes::from_static(b"{}"),
        }],
    })
}

/// The reservation stream of `txn` already exists: fine if it names `member` (a retry, or a
/// purchase whose reservation was stored before the process died), else the transaction is
/// another member's.
pub(crate) async fn confirm_owner(
    store: &dyn EventStore,
    txn: &TransactionId,
    member: &MemberId,
) -> Result<(), EngineError> {
    match owner(store, txn).await? {
        Some(owner) if &owner == member => Ok(()),
        Some(owner) => Err(EngineError::TransactionOfAnotherMember {
            transaction: txn.clone(),
            owner,
        }),
        None => Err(EngineError::Corrupt(format!(
            "reservation stream of {txn} exists but is empty"
        ))),
    }
}

/// The member holding `txn`, from its reservation stream (authoritative).
pub(crate) async fn owner(
    store: &dyn EventStore,
    txn: &TransactionId,
) -> Result<Option<MemberId>, EngineError> {
    let events = store
        .read_stream(&txn_stream(txn), StreamFrom::Start, Direction::Forwards, 1)
        .await?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let reservation: Reservation = serde_json::from_slice(&first.data)
        .map_err(|e| EngineError::Corrupt(format!("reservation of {txn}: {e}")))?;
    MemberId::parse(reservation.member_id)
        .map(Some)
        .map_err(|e| EngineError::Corrupt(format!("reservation of {txn}: {e}")))
}
