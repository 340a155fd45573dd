//! The stored event schema, kept apart from the domain's [`Event`] enum: each event type has
//! its own serde DTO per schema version, so the domain can change shape while old history
//! stays readable. Documents are JSON; decimals are strings, instants RFC 3339 strings.
//!
//! # Versions
//!
//! Each event type has its own versions, from 1. [`decode`] reads a document at the type's
//! newest version with that version's DTO, straight from the bytes (the replay's fast path);
//! a document at an older version is first upcast, step by step, over `serde_json::Value`
//! ([`upcast`]: a table of steps per type and version), then read with the newest DTO. A
//! version newer than this build knows is refused ([`SchemaError::UnknownVersion`], which
//! [`is_newer`] tells apart from a foreign event's version 0): the engine turns it into a
//! clear "upgrade" error. Every type at every version has a golden file under
//! `tests/golden/<Type>/v<N>.json`, written once and decoded by every later build
//! (`tests/core/schema.rs`).
//!
//! Adding an optional field: add it to the DTO with `#[serde(default)]`; old documents decode
//! with the default and no new version is needed (that is how `activity_deadline` and a
//! reinstatement's `reason_code` came in).
//!
//! # Adding a version 2 of a type
//!
//! For a renamed field, a field now required, or a changed meaning (say `GoodwillGranted`
//! whose support note becomes ciphertext for crypto-shredding):
//!
//! 1. Write the new DTO in a module `v2.rs`, for the changed types only (the others stay on
//!    v1's DTO), with its `encode` and `decode` like `v1.rs`.
//! 2. Add to [`upcast::STEPS`] a `Step { event_type: "GoodwillGranted", from: 1, apply }`
//!    whose `apply` turns a v1 document into a v2 one ([`upcast::rename_field`],
//!    [`upcast::add_field`], or code of its own). [`newest_version`] then answers 2 for the
//!    type. Steps are never edited once released.
//! 3. In `decode_newest`, send `("GoodwillGranted", 2)` to `v2::decode`; raise
//!    [`CURRENT_SCHEMA_VERSION`] to the highest version of any type (a test checks it).
//! 4. Run `UPDATE_GOLDEN=1 cargo test -p loyalty-core --test core schema::`: it writes the missing
//!    `tests/golden/GoodwillGranted/v2.json` and leaves `v1.json` as it is, which must still
//!    decode (now through the step) into the expected event.
//! 5. Deploy readers first, then writers (ARCHITECTURE.md, "Schema evolution"): the first
//!    release reads v2 and still writes v1 (in [`encode`], keep `v1::encode` and version 1 for
//!    the type); once every server runs it, the next release writes v2. A server that meets a
//!    version it does not know refuses to load that member and stops its projections there,
//!    instead of deciding on a partial history. (Version 2 of the two note-carrying types
//!    broke this order once, on purpose: ARCHITECTURE.md, "Schema evolution", says why.)

pub mod upcast;
mod v1;
mod v2;

use crate::error::SchemaError;
use crate::event::Event;

/// The highest version [`encode`] writes for any type: a reader that meets a greater one was
/// deployed before the writer that wrote it (the webhooks, like the projections, stop there).
pub const CURRENT_SCHEMA_VERSION: u32 = 2;

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

/// The newest schema version of `event_type` this build reads (`None`: an unknown type).
pub fn newest_version(event_type: &str) -> Option<u32> {
    EVENT_TYPES
        .contains(&event_type)
        .then(|| upcast::newest_in(upcast::STEPS, event_type))
}

/// Whether a stored event of a known type was written with a schema version newer than this
/// build reads: written by a newer release, so this one must be upgraded to read it (as
/// opposed to version 0, another application's event, or an unknown type).
pub fn is_newer(event_type: &str, schema_version: u32) -> bool {
    newest_version(event_type).is_some_and(|newest| schema_version > newest)
}

pub fn encode(event: &Event) -> StoredEvent {
    let event_type = event.event_type();
    // Each type at its newest version: `v2::encode` writes the two types that are at 2 and
    // hands every other one to `v1::encode`.
    StoredEvent {
        event_type,
        schema_version: upcast::newest_in(upcast::STEPS, event_type),
        data: v2::encode(event),
    }
}

/// Upcasts a stored document of `event_type` from `schema_version` to the type's newest
/// version (unchanged when it is the newest already). [`decode`] does it for older documents;
/// exposed for tests and tools that show what a document reads as.
pub fn upcast(
    event_type: &str,
    schema_version: u32,
    document: serde_json::Value,
) -> Result<serde_json::Value, SchemaError> {
    if !EVENT_TYPES.contains(&event_type) {
        return Err(SchemaError::UnknownEventType {
            event_type: event_type.chars().take(64).collect(),
        });
    }
    if schema_version == 0 || is_newer(event_type, schema_version) {
        return Err(SchemaError::UnknownVersion {
            event_type: event_type.to_owned(),
            version: schema_version,
        });
    }
    upcast::upcast_in(upcast::STEPS, event_type, schema_version, document).map_err(|reason| {
        SchemaError::Malformed {
            event_type: event_type.to_owned(),
            version: schema_version,
            reason,
        }
    })
}

pub fn decode(event_type: &str, schema_version: u32, data: &[u8]) -> Result<Event, SchemaError> {
    let Some(newest) = newest_version(event_type) else {
        return Err(SchemaError::UnknownEventType {
            event_type: event_type.chars().take(64).collect(),
        });
    };
    let malformed = |reason: String| SchemaError::Malformed {
        event_type: event_type.to_owned(),
        version: schema_version,
        reason,
    };
    if schema_version == newest {
        return decode_newest(event_type, newest, data).map_err(malformed);
    }
    if schema_version == 0 || schema_version > newest {
        return Err(SchemaError::UnknownVersion {
            event_type: event_type.to_owned(),
            version: schema_version,
        });
    }
    // An older version: through the steps, then the newest DTO.
    let document: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| malformed(e.to_string()))?;
    let upcast = upcast(event_type, schema_version, document)?;
    let bytes = serde_json::to_vec(&upcast).map_err(|e| malformed(e.to_string()))?;
    decode_newest(event_type, newest, &bytes).map_err(malformed)
}

/// Reads a document at the type's newest version with that version's DTO.
fn decode_newest(event_type: &str, version: u32, data: &[u8]) -> Result<Event, String> {
    match version {
        1 => v1::decode(event_type, data).map_err(|e| e.to_string()),
        2 => v2::decode(event_type, data).map_err(|e| e.to_string()),
        other => Err(format!("no DTO for {event_type} v{other}")),
    }
}
