//! Transaction ids are unique across members. The member's stream cannot see other members, so
//! each transaction id gets a reservation stream `txn-<id>` created with `NoStream`: the store's
//! optimistic concurrency lets exactly one member win it. The reservation is written before the
//! purchase is appended to the member's stream; if the process dies in between, the retry finds
//! a reservation naming the same member and goes on (the purchase is never locked out).

use chrono::{DateTime, Utc};
use loyalty_core::{MemberId, TransactionId};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, StoreError, StreamFrom,
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

/// Reserves `txn` for `member`; succeeds again for the same member (a retry).
pub(crate) async fn reserve(
    store: &dyn EventStore,
    ids: &dyn IdGenerator,
    txn: &TransactionId,
    member: &MemberId,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let data = serde_json::to_vec(&Reservation {
        transaction_id: txn.to_string(),
        member_id: member.to_string(),
        reserved_at: now,
    })
    .map_err(|e| EngineError::Corrupt(e.to_string()))?;
    let event = EventData {
        id: ids.event_id(),
        event_type: RESERVED_EVENT.to_owned(),
        schema_version: 1,
        data: Bytes::from(data),
        metadata: Bytes::from_static(b"{}"),
    };
    match store
        .append(&txn_stream(txn), ExpectedRevision::NoStream, vec![event])
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::WrongExpectedRevision { .. }) => match owner(store, txn).await? {
            Some(owner) if &owner == member => Ok(()),
            Some(owner) => Err(EngineError::TransactionOfAnotherMember {
                transaction: txn.clone(),
                owner,
            }),
            None => Err(EngineError::Corrupt(format!(
                "reservation stream of {txn} exists but is empty"
            ))),
        },
        Err(e) => Err(e.into()),
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
