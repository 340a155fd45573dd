//! A sale belongs to one member. Transaction ids are unique per store (two stores may both
//! number a sale "1001"), and the member's stream cannot see other members, so each sale gets a
//! reservation stream `txn-<store>/<transaction>` created with `NoStream`: the store's
//! optimistic concurrency lets exactly one member win it. The reservation is appended with the
//! purchase, first: atomically where the store can (SQLite), else just before it; if the process
//! dies in between, the retry finds a reservation naming the same member and goes on (the
//! purchase is never locked out).
//!
//! Reservations written before stores scoped the ids are named `txn-<transaction>`; a refund
//! still finds its purchase through them.

use chrono::{DateTime, Utc};
use loyalty_core::{MemberId, PurchaseKey};
use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, StreamAppend, StreamFrom,
};
use serde::{Deserialize, Serialize};

use crate::clock::IdGenerator;
use crate::codec::{legacy_txn_stream, txn_stream};
use crate::error::EngineError;

pub(crate) const RESERVED_EVENT: &str = "TransactionReserved";

#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    /// Absent in reservations written before stores scoped transaction ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<String>,
    transaction_id: String,
    member_id: String,
    reserved_at: DateTime<Utc>,
}

/// The append that reserves `sale` for `member`: the first event of its reservation stream,
/// expecting no stream. The engine appends it together with the purchase (`append_many`): one
/// durable write on a store with multi-stream transactions, the reservation first on the others.
pub(crate) fn reservation_append(
    ids: &dyn IdGenerator,
    sale: &PurchaseKey,
    member: &MemberId,
    now: DateTime<Utc>,
) -> Result<StreamAppend, EngineError> {
    let data = serde_json::to_vec(&Reservation {
        store: Some(sale.store.to_string()),
        transaction_id: sale.transaction_id.to_string(),
        member_id: member.to_string(),
        reserved_at: now,
    })
    .map_err(|e| EngineError::Corrupt(e.to_string()))?;
    Ok(StreamAppend {
        stream: txn_stream(sale),
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

/// The reservation stream of `sale` already exists: fine if it names `member` (a retry, or a
/// purchase whose reservation was stored before the process died), else the sale is another
/// member's.
pub(crate) async fn confirm_owner(
    store: &dyn EventStore,
    sale: &PurchaseKey,
    member: &MemberId,
) -> Result<(), EngineError> {
    match reserved_for(store, &txn_stream(sale)).await? {
        Some(owner) if &owner == member => Ok(()),
        Some(owner) => Err(EngineError::TransactionOfAnotherMember {
            sale: sale.clone(),
            owner,
        }),
        None => Err(EngineError::Corrupt(format!(
            "reservation stream of {sale} exists but is empty"
        ))),
    }
}

/// The member holding `sale`, from its reservation stream (authoritative), or from the older
/// unscoped reservation of its transaction id.
pub(crate) async fn owner(
    store: &dyn EventStore,
    sale: &PurchaseKey,
) -> Result<Option<MemberId>, EngineError> {
    if let Some(owner) = reserved_for(store, &txn_stream(sale)).await? {
        return Ok(Some(owner));
    }
    reserved_for(store, &legacy_txn_stream(&sale.transaction_id)).await
}

async fn reserved_for(
    store: &dyn EventStore,
    stream: &str,
) -> Result<Option<MemberId>, EngineError> {
    let events = store
        .read_stream(stream, StreamFrom::Start, Direction::Forwards, 1)
        .await?;
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let reservation: Reservation = serde_json::from_slice(&first.data)
        .map_err(|e| EngineError::Corrupt(format!("reservation {stream}: {e}")))?;
    MemberId::parse(reservation.member_id)
        .map(Some)
        .map_err(|e| EngineError::Corrupt(format!("reservation {stream}: {e}")))
}
