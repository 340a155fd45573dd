//! How the trait's `schema_version` and `metadata` travel in EventStoreDB's one free-form field.
//!
//! An EventStoreDB event has an id, a type, a JSON flag, `data` and `custom_metadata` (bytes).
//! The content type is *not* kept by the server (only "is JSON" is), so it cannot carry the
//! schema version. The adapter therefore stores a small JSON envelope as the custom metadata:
//!
//! ```json
//! {"schemaVersion":3,"metadata":{"correlation_id":"..."}}
//! ```
//!
//! `metadata` holds the caller's metadata document verbatim (a raw JSON value, not re-encoded),
//! so it round-trips byte for byte and stays readable in the EventStoreDB UI. Metadata that is
//! empty has no `metadata` key; metadata that is not exactly one JSON value (surrounding
//! whitespace, invalid JSON, a bare `null`) travels as `"metadataBase64"` instead, so every
//! byte sequence still round-trips.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Outgoing<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
    #[serde(rename = "metadataBase64", skip_serializing_if = "Option::is_none")]
    metadata_base64: Option<String>,
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(rename = "metadataBase64", default)]
    metadata_base64: Option<String>,
}

/// `bytes` as one JSON value, if the bytes are exactly that value's text: re-serializing the
/// raw value then gives the same bytes back. A bare `null` is excluded because an optional
/// field cannot tell it from an absent one.
pub(crate) fn exact_json(bytes: &[u8]) -> Option<&RawValue> {
    let raw: &RawValue = serde_json::from_slice(bytes).ok()?;
    (raw.get().len() == bytes.len() && raw.get() != "null").then_some(raw)
}

/// The custom metadata to store for an event.
pub(crate) fn encode(schema_version: u32, metadata: &[u8]) -> Bytes {
    let (raw, base64) = if metadata.is_empty() {
        (None, None)
    } else if let Some(raw) = exact_json(metadata) {
        (Some(raw), None)
    } else {
        (None, Some(BASE64.encode(metadata)))
    };
    let envelope = Outgoing {
        schema_version,
        metadata: raw,
        metadata_base64: base64,
    };
    // Serializing a struct of an integer, a raw value and a string cannot fail.
    Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
}

/// The schema version and metadata stored in an event's custom metadata.
pub(crate) fn decode(custom_metadata: &[u8]) -> Result<(u32, Bytes), String> {
    let envelope: Incoming<'_> = serde_json::from_slice(custom_metadata)
        .map_err(|e| format!("custom metadata is not a loyalty envelope: {e}"))?;
    let metadata = match (envelope.metadata, envelope.metadata_base64) {
        (Some(raw), None) => Bytes::copy_from_slice(raw.get().as_bytes()),
        (None, Some(encoded)) => Bytes::from(
            BASE64
                .decode(encoded)
                .map_err(|e| format!("metadataBase64 is not base64: {e}"))?,
        ),
        (None, None) => Bytes::new(),
        (Some(_), Some(_)) => return Err("envelope has both metadata forms".to_owned()),
    };
    Ok((envelope.schema_version, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(schema_version: u32, metadata: &[u8]) -> (u32, Bytes) {
        decode(&encode(schema_version, metadata)).expect("decodes")
    }

    #[test]
    fn json_metadata_is_embedded_verbatim_and_round_trips() {
        let metadata = br#"{"b":1,  "a":[true, "\u00e9"]}"#;
        let stored = encode(4, metadata);
        let text = std::str::from_utf8(&stored).unwrap();
        assert!(
            text.contains(r#""metadata":{"b":1,  "a":[true, "\u00e9"]}"#),
            "{text}"
        );
        assert_eq!(round_trip(4, metadata), (4, Bytes::from_static(metadata)));
    }

    #[test]
    fn empty_metadata_round_trips_as_empty() {
        assert_eq!(encode(1, b"").as_ref(), br#"{"schemaVersion":1}"#);
        assert_eq!(round_trip(1, b""), (1, Bytes::new()));
    }

    #[test]
    fn metadata_that_is_not_exactly_one_json_value_round_trips_through_base64() {
        for odd in [
            &b" {}"[..],
            b"{} ",
            b"null",
            b"not json",
            b"\xff\x00",
            b"{}{}",
        ] {
            let stored = encode(u32::MAX, odd);
            assert!(
                std::str::from_utf8(&stored)
                    .unwrap()
                    .contains("metadataBase64"),
                "{odd:?}"
            );
            assert_eq!(
                round_trip(u32::MAX, odd),
                (u32::MAX, Bytes::copy_from_slice(odd))
            );
        }
    }

    #[test]
    fn foreign_custom_metadata_is_an_error_not_a_guess() {
        assert!(decode(b"").is_err());
        assert!(decode(br#"{"traceId":"x"}"#).is_err());
        assert!(decode(br#"{"schemaVersion":-1}"#).is_err());
    }
}
