//! Schema version 2, for the two event types that carry a support note: the note became an
//! object, `{"plain": "..."}` or `{"sealed": {"key_id", "nonce", "ciphertext"}}`, when the
//! engine began sealing personal data for crypto-shredding. A version 1 document (`"note":
//! "text"`) is upcast to `{"plain": "text"}` (`upcast::STEPS`). Every other field is as in v1.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::v1::{CreditV1, DebitV1, instant};
use crate::event::{self as ev, Event};
use crate::ids::{AdjustmentId, ComplaintId, OperatorId, ReasonCode};
use crate::note::{Note, SealedNote};
use crate::points::Points;

type Instant = DateTime<Utc>;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum NoteV2 {
    Plain(String),
    Sealed(SealedNoteV2),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedNoteV2 {
    key_id: String,
    nonce: String,
    ciphertext: String,
}

impl From<&Note> for NoteV2 {
    fn from(note: &Note) -> Self {
        match note {
            Note::Plain(text) => NoteV2::Plain(text.clone()),
            Note::Sealed(s) => NoteV2::Sealed(SealedNoteV2 {
                key_id: s.key_id.clone(),
                nonce: s.nonce.clone(),
                ciphertext: s.ciphertext.clone(),
            }),
        }
    }
}

impl From<NoteV2> for Note {
    fn from(note: NoteV2) -> Self {
        match note {
            NoteV2::Plain(text) => Note::Plain(text),
            NoteV2::Sealed(s) => Note::Sealed(SealedNote {
                key_id: s.key_id,
                nonce: s.nonce,
                ciphertext: s.ciphertext,
            }),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PointsAdjustedV2 {
    adjustment_id: AdjustmentId,
    points: Points,
    reason_code: ReasonCode,
    note: NoteV2,
    operator: OperatorId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    #[serde(default)]
    credit: Option<CreditV1>,
    #[serde(default)]
    debit: Option<DebitV1>,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct GoodwillGrantedV2 {
    complaint_id: ComplaintId,
    reason_code: ReasonCode,
    note: NoteV2,
    operator: OperatorId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    credit: CreditV1,
    fingerprint: String,
}

fn to_json<T: Serialize>(dto: &T) -> Vec<u8> {
    // As in v1: strings, integers and options only, so serializing cannot fail.
    let mut out = Vec::with_capacity(super::v1::TYPICAL_DOCUMENT_BYTES);
    serde_json::to_writer(&mut out, dto).expect("v2 DTOs always serialize to JSON");
    out.shrink_to_fit();
    out
}

/// The document of a `PointsAdjusted` or a `GoodwillGranted` (the types at version 2).
pub(super) fn encode(event: &Event) -> Vec<u8> {
    match event {
        Event::PointsAdjusted(e) => to_json(&PointsAdjustedV2 {
            adjustment_id: e.adjustment_id.clone(),
            points: e.points,
            reason_code: e.reason_code.clone(),
            note: (&e.note).into(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
            credit: e.credit.as_ref().map(Into::into),
            debit: e.debit.as_ref().map(Into::into),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::GoodwillGranted(e) => to_json(&GoodwillGrantedV2 {
            complaint_id: e.complaint_id.clone(),
            reason_code: e.reason_code.clone(),
            note: (&e.note).into(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
            credit: (&e.credit).into(),
            fingerprint: e.fingerprint.clone(),
        }),
        other => super::v1::encode(other),
    }
}

pub(super) fn decode(event_type: &str, data: &[u8]) -> Result<Event, serde_json::Error> {
    let text = std::str::from_utf8(data).map_err(serde::de::Error::custom)?;
    Ok(match event_type {
        "PointsAdjusted" => {
            let e: PointsAdjustedV2 = serde_json::from_str(text)?;
            Event::PointsAdjusted(ev::PointsAdjusted {
                adjustment_id: e.adjustment_id,
                points: e.points,
                reason_code: e.reason_code,
                note: e.note.into(),
                operator: e.operator,
                occurred_at: e.occurred_at,
                credit: e.credit.map(Into::into),
                debit: e.debit.map(Into::into),
                fingerprint: e.fingerprint,
            })
        }
        "GoodwillGranted" => {
            let e: GoodwillGrantedV2 = serde_json::from_str(text)?;
            Event::GoodwillGranted(ev::GoodwillGranted {
                complaint_id: e.complaint_id,
                reason_code: e.reason_code,
                note: e.note.into(),
                operator: e.operator,
                occurred_at: e.occurred_at,
                credit: e.credit.into(),
                fingerprint: e.fingerprint,
            })
        }
        other => {
            return Err(serde::de::Error::custom(format!(
                "{other} has no schema version 2"
            )));
        }
    })
}
