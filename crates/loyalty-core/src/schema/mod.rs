//! The stored event schema, kept apart from the domain's [`Event`] enum: each event type has
//! its own serde DTO per schema version, so the domain can change shape while old history
//! stays readable. Documents are JSON; decimals are strings, instants RFC 3339 strings.
//!
//! Adding a field: add it to the DTO with `#[serde(default)]` (old documents still decode).
//! Changing a meaning: add a `v2` module and an upcast from v1 in [`decode`].

mod v1;

use crate::error::SchemaError;
use crate::event::Event;

/// The version [`encode`] writes.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

/// An event as stored: type name, schema version and the JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub data: Vec<u8>,
}

/// Every event type name, for readers that want to check a type before decoding.
pub const EVENT_TYPES: &[&str] = &[
    "Enrolled",
    "PurchaseRecorded",
    "ReferralQualified",
    "TierChanged",
    "RefundRecorded",
    "PointsRedeemed",
    "RedemptionCancelled",
    "PointsExpired",
    "ActivityRewarded",
    "ActivityRefused",
    "PointsAdjusted",
    "GoodwillGranted",
    "ReferralBonusCredited",
    "ReferralRevoked",
    "ReferralBonusRevoked",
    "MemberSuspended",
    "MemberReinstated",
    "AccountClosed",
    "WinBackAwarded",
    "BalanceOpened",
    "ExpiryNotified",
];

pub fn encode(event: &Event) -> StoredEvent {
    StoredEvent {
        event_type: event.event_type(),
        schema_version: CURRENT_SCHEMA_VERSION,
        data: v1::encode(event),
    }
}

pub fn decode(event_type: &str, schema_version: u32, data: &[u8]) -> Result<Event, SchemaError> {
    if !EVENT_TYPES.contains(&event_type) {
        return Err(SchemaError::UnknownEventType {
            event_type: event_type.chars().take(64).collect(),
        });
    }
    match schema_version {
        1 => v1::decode(event_type, data).map_err(|e| SchemaError::Malformed {
            event_type: event_type.to_owned(),
            version: schema_version,
            reason: e.to_string(),
        }),
        version => Err(SchemaError::UnknownVersion {
            event_type: event_type.to_owned(),
            version,
        }),
    }
}
