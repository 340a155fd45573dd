//! Personal data: support notes sealed under member keys, shown back while the key lives,
//! everything held about a member exported, and erasure by crypto-shredding.
//!
//! The log is append-only and hash-chained: nothing in it can be deleted without breaking the
//! chain, and a balance is proved by its events. So the one kind of personal data events hold,
//! the free-text note staff write about a member (adjustments, goodwill), is sealed before it
//! is appended, with XChaCha20-Poly1305 under a 256-bit key of the member's that lives in the
//! store's key vault ([`loyalty_store::vault`]), never in the log. Erasing a member destroys
//! their keys: the sealed bytes stay, the chain still verifies, balances and the liability are
//! unchanged (a note never moved a point), and statements and exports show the note as erased.
//!
//! Member ids are the retailer's own pseudonymous customer numbers: the engine never holds
//! names, e-mail addresses or phone numbers (ARCHITECTURE.md, "Personal data").

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use loyalty_core::{Event, MemberId, Note, OperatorId, ReasonCode, SealedNote};
use loyalty_store::vault::{KeyVault, MemberKey};
use loyalty_store::{Direction, EventData, ExpectedRevision, Position, RecordedEvent, StreamFrom};
use serde::{Deserialize, Serialize};

use crate::audit::json;
use crate::codec::{self, member_stream};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::metadata::{CommandContext, EventMetadata};
use crate::views::{MemberSnapshot, position_text};

/// Erasures of member `<id>` are recorded in stream `privacy-<id>` (not in the member's own
/// stream: an erasure is not a ledger event, and the member aggregate never reads it).
pub const PRIVACY_PREFIX: &str = "privacy-";
/// The type of an erasure's record.
pub const PERSONAL_DATA_ERASED: &str = "PersonalDataErased";
/// Binds a sealed note to its member and key: a ciphertext copied into another member's event
/// does not open.
const NOTE_CONTEXT: &str = "loyalty-note-v1";
/// Most erasure records an export lists (an erasure is an operator's act: a handful per member).
const MAX_ERASURES_LISTED: usize = 100;

/// What an export says it holds, for the person who asked.
pub const EXPORT_SCOPE: &str = "Everything this loyalty engine holds about the member id: \
    every event of the member's ledger stream (purchases, refunds, redemptions, expiries, \
    adjustments, tier changes...) with its metadata, support notes in clear while they are not \
    erased, the erasures recorded, and the member's balance and tier as of the export. The \
    member id is the retailer's own customer number: names and contact details are not held \
    here.";

pub(crate) fn privacy_stream(member: &MemberId) -> String {
    format!("{PRIVACY_PREFIX}{member}")
}

/// A note as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RevealedNote {
    Present {
        text: String,
    },
    /// Its key was destroyed: the text is gone for good.
    Erased,
}

/// One event of a member's export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedEvent {
    pub revision: u64,
    #[serde(with = "position_text")]
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: Option<DateTime<Utc>>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// The stored document (a sealed note stays sealed here; `note` shows it opened).
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
    pub note: Option<RevealedNote>,
}

/// An erasure, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub erased_at: DateTime<Utc>,
    pub reason_code: String,
    pub operator: String,
    pub keys_destroyed: u64,
    pub sealed_notes: u64,
    /// Where the record is in the log (not stored in it: filled in when read).
    #[serde(skip_deserializing, with = "position_text")]
    pub position: Position,
}

/// Everything held about a member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberExport {
    pub member_id: MemberId,
    pub exported_at: DateTime<Utc>,
    /// The member's status, balance and tier now (`None` if not enrolled).
    pub member: Option<MemberSnapshot>,
    pub events: Vec<ExportedEvent>,
    pub erasures: Vec<ErasureRecord>,
    pub personal_data: &'static str,
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub member_id: MemberId,
    pub erased_at: DateTime<Utc>,
    /// Keys destroyed by this call (0 when an earlier erasure already destroyed them all).
    pub keys_destroyed: u64,
    /// Sealed notes in the member's stream, none of which can be read any more.
    pub sealed_notes: u64,
    /// Notes written in the clear before notes were sealed (schema version 1): the log keeps
    /// them, so they are not erased; an operator must know.
    pub plain_notes: u64,
    /// The erasure's record in the log.
    #[serde(with = "position_text")]
    pub position: Position,
}

/// Seals `text` for `member` under `key`.
fn seal(key: &MemberKey, member: &MemberId, text: &str) -> Result<SealedNote, EngineError> {
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.secret));
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = format!("{NOTE_CONTEXT}|{member}|{}", key.key_id);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: text.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| EngineError::Corrupt("a note could not be sealed".into()))?;
    Ok(SealedNote {
        key_id: key.key_id.clone(),
        nonce: BASE64.encode(nonce),
        ciphertext: BASE64.encode(ciphertext),
    })
}

/// Opens a note sealed for `member` under `key`. A note that does not open under its own key
/// was altered (or moved to another member's event): that is corruption, not an erasure.
fn open(key: &MemberKey, member: &MemberId, sealed: &SealedNote) -> Result<String, EngineError> {
    let corrupt = |why: &str| {
        EngineError::Corrupt(format!(
            "a note of member {member} sealed under {} {why}",
            sealed.key_id
        ))
    };
    let nonce = BASE64
        .decode(&sealed.nonce)
        .ok()
        .filter(|n| n.len() == 24)
        .ok_or_else(|| corrupt("has a malformed nonce"))?;
    let ciphertext = BASE64
        .decode(&sealed.ciphertext)
        .map_err(|_| corrupt("is not base64"))?;
    let aad = format!("{NOTE_CONTEXT}|{member}|{}", key.key_id);
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.secret));
    let plain = cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| corrupt("does not open: altered, or not this member's"))?;
    String::from_utf8(plain).map_err(|_| corrupt("is not UTF-8"))
}

/// The support note an event carries, if its type has one.
pub(crate) fn note_of(event: &Event) -> Option<&Note> {
    match event {
        Event::PointsAdjusted(e) => Some(&e.note),
        Event::GoodwillGranted(e) => Some(&e.note),
        _ => None,
    }
}

fn note_of_mut(event: &mut Event) -> Option<&mut Note> {
    match event {
        Event::PointsAdjusted(e) => Some(&mut e.note),
        Event::GoodwillGranted(e) => Some(&mut e.note),
        _ => None,
    }
}

/// Whether a note must be sealed before it is stored: plain and not empty (an empty note holds
/// nothing personal, and needs no key).
pub(crate) fn needs_seal(note: &Note) -> bool {
    matches!(note, Note::Plain(text) if !text.is_empty())
}

/// Keys looked up while reading one member's events: each key once.
pub(crate) struct KeyRing {
    vault: Option<Arc<dyn KeyVault>>,
    keys: HashMap<String, Option<MemberKey>>,
}

impl KeyRing {
    /// Opens `note` of `member`'s event.
    pub(crate) async fn reveal(
        &mut self,
        member: &MemberId,
        note: &Note,
    ) -> Result<RevealedNote, EngineError> {
        let sealed = match note {
            Note::Plain(text) => return Ok(RevealedNote::Present { text: text.clone() }),
            Note::Sealed(sealed) => sealed,
        };
        let key = match self.keys.get(&sealed.key_id) {
            Some(key) => key.clone(),
            None => {
                let vault = self.vault.as_ref().ok_or(EngineError::NoKeyVault)?;
                let key = vault.key(&sealed.key_id).await?;
                // A vault answers `None` for a destroyed key and for one it never had (another
                // vault's: a wrong `key_file`). Only the first is an erasure; the second must
                // not pass for one, or an erasure in the wrong vault would look done.
                if key.is_none() && vault.erased_at(member.as_str()).await?.is_none() {
                    return Err(EngineError::Corrupt(format!(
                        "member {member}'s note is sealed under key {}, which the key vault \
                         does not know and never erased: is [privacy] key_file the vault \
                         these notes were sealed with?",
                        sealed.key_id
                    )));
                }
                self.keys.insert(sealed.key_id.clone(), key.clone());
                key
            }
        };
        match key {
            // A key of another member does not open this one (and is not theirs to show).
            Some(key) if key.member_id == member.as_str() => Ok(RevealedNote::Present {
                text: open(&key, member, sealed)?,
            }),
            Some(_) => Err(EngineError::Corrupt(format!(
                "a note of member {member} names another member's key {}",
                sealed.key_id
            ))),
            None => Ok(RevealedNote::Erased),
        }
    }

    /// The note of a stored event, opened; `None` for events without one.
    pub(crate) async fn reveal_event(
        &mut self,
        member: &MemberId,
        event: &Event,
    ) -> Result<Option<RevealedNote>, EngineError> {
        match note_of(event) {
            Some(note) => Ok(Some(self.reveal(member, note).await?)),
            None => Ok(None),
        }
    }
}

impl Engine {
    /// The vault that keeps member keys: the options', else the store's.
    pub(crate) fn key_vault(&self) -> Option<Arc<dyn KeyVault>> {
        self.options()
            .vault
            .clone()
            .or_else(|| self.store().key_vault())
    }

    pub(crate) fn key_ring(&self) -> KeyRing {
        KeyRing {
            vault: self.key_vault(),
            keys: HashMap::new(),
        }
    }

    /// Seals the plain notes of events about to be appended to `member`'s stream. Events
    /// without a note (nearly all) cost nothing: the vault is asked only when there is one.
    pub(crate) async fn seal_notes(
        &self,
        member: &MemberId,
        events: &mut [Event],
    ) -> Result<(), EngineError> {
        if !events.iter().any(|e| note_of(e).is_some_and(needs_seal)) {
            return Ok(());
        }
        let vault = self.key_vault().ok_or(EngineError::NoKeyVault)?;
        let key = vault.key_for(member.as_str()).await?;
        for event in events.iter_mut() {
            if let Some(note) = note_of_mut(event).filter(|n| needs_seal(n))
                && let Note::Plain(text) = note
            {
                *note = Note::Sealed(seal(&key, member, text)?);
            }
        }
        Ok(())
    }

    /// One page of `stream` forwards from revision `from`, and the revision after it when the
    /// page was full (more may follow).
    async fn stream_page(
        &self,
        stream: &str,
        from: u64,
    ) -> Result<(Vec<RecordedEvent>, Option<u64>), EngineError> {
        let page_size = self.inner.page_size;
        let page = self
            .store()
            .read_stream(
                stream,
                StreamFrom::Revision(from),
                Direction::Forwards,
                page_size,
            )
            .await?;
        let next = page
            .last()
            .filter(|_| page.len() == page_size)
            .map(|last| last.revision.saturating_add(1));
        Ok((page, next))
    }

    /// Reads all of a stream, a page at a time, refusing more than `limit` events.
    async fn whole_stream(
        &self,
        stream: &str,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<RecordedEvent>, EngineError> {
        let mut events = Vec::new();
        let mut from = Some(0);
        while let Some(revision) = from {
            let (page, next) = self.stream_page(stream, revision).await?;
            events.extend(page);
            if events.len() > limit {
                return Err(EngineError::LimitExceeded {
                    what,
                    requested: events.len(),
                    limit,
                });
            }
            from = next;
        }
        Ok(events)
    }

    /// The member's latest erasures, oldest first: at most [`MAX_ERASURES_LISTED`] (an
    /// erasure is recorded each time one is asked for, and a client retrying in a loop must
    /// not make the export fail).
    async fn erasures(&self, member: &MemberId) -> Result<Vec<ErasureRecord>, EngineError> {
        let mut records = self
            .store()
            .read_stream(
                &privacy_stream(member),
                StreamFrom::End,
                Direction::Backwards,
                MAX_ERASURES_LISTED,
            )
            .await?;
        records.reverse();
        records
            .iter()
            .filter(|r| r.event_type == PERSONAL_DATA_ERASED)
            .map(|r| {
                let mut record: ErasureRecord = serde_json::from_slice(&r.data).map_err(|e| {
                    EngineError::Corrupt(format!("{} revision {}: {e}", r.stream, r.revision))
                })?;
                record.position = r.position;
                Ok(record)
            })
            .collect()
    }

    /// Everything held about `member`: their ledger stream with notes opened while their key
    /// lives, their erasures, and their balance and tier now. At most
    /// [`crate::EngineOptions::max_export_events`] events.
    pub async fn export_member(&self, member: &MemberId) -> Result<MemberExport, EngineError> {
        let recorded = self
            .whole_stream(
                &member_stream(member),
                self.options().max_export_events,
                "member export",
            )
            .await?;
        if recorded.is_empty() {
            return Err(EngineError::UnknownMember(member.clone()));
        }
        let now = self.clock().now();
        // The balance and tier now, folded from the events just read (not a second read).
        let mut row = crate::readmodel::MemberRow::default();
        let applied = self.fold_as_of(&mut row, &recorded, now)?;
        let member_now = self.snapshot_of(member, &row, applied, now);
        let mut ring = self.key_ring();
        let mut events = Vec::with_capacity(recorded.len());
        for r in &recorded {
            let event = codec::decode(r)?;
            events.push(ExportedEvent {
                revision: r.revision,
                position: r.position,
                event_type: r.event_type.clone(),
                schema_version: r.schema_version,
                occurred_at: Some(event.occurred_at()),
                recorded_at: codec::metadata(r).map(|m| m.recorded_at),
                data: json(&r.data),
                metadata: json(&r.metadata),
                note: ring.reveal_event(member, &event).await?,
            });
        }
        Ok(MemberExport {
            member_id: member.clone(),
            exported_at: now,
            member: member_now,
            events,
            erasures: self.erasures(member).await?,
            personal_data: EXPORT_SCOPE,
        })
    }

    /// The sealed and the plain notes of a member's stream, read from the stored documents
    /// (`"note": {"sealed": ...}` against a v1 string or `{"plain": ...}`).
    async fn count_notes(&self, stream: &str) -> Result<(u64, u64), EngineError> {
        #[derive(Deserialize)]
        struct WithNote {
            note: Option<serde_json::Value>,
        }
        let (mut sealed, mut plain) = (0u64, 0u64);
        let mut from = Some(0);
        while let Some(revision) = from {
            let (page, next) = self.stream_page(stream, revision).await?;
            for r in &page {
                if r.event_type != "PointsAdjusted" && r.event_type != "GoodwillGranted" {
                    continue;
                }
                match serde_json::from_slice::<WithNote>(&r.data).map(|d| d.note) {
                    Ok(Some(serde_json::Value::Object(o))) if o.contains_key("sealed") => {
                        sealed += 1;
                    }
                    Ok(Some(serde_json::Value::String(text))) if !text.is_empty() => plain += 1,
                    Ok(Some(serde_json::Value::Object(o)))
                        if o.get("plain").is_some_and(|t| t.as_str() != Some("")) =>
                    {
                        plain += 1;
                    }
                    _ => {}
                }
            }
            from = next;
        }
        Ok((sealed, plain))
    }

    /// Erases `member`'s personal data: destroys their keys (every sealed note of theirs is
    /// unreadable from then on), then records the erasure in `privacy-<member>`. Balances, the
    /// liability and the hash chain are untouched. Erasing again is harmless (it destroys any
    /// key made since, and is recorded again).
    pub async fn erase_member(
        &self,
        member: &MemberId,
        reason_code: ReasonCode,
        operator: OperatorId,
        context: &CommandContext,
    ) -> Result<ErasureReport, EngineError> {
        if self.options().read_only {
            return Err(EngineError::ReadOnly);
        }
        let stream = member_stream(member);
        if matches!(
            self.store().stream_revision(&stream).await?,
            loyalty_store::CurrentRevision::NoStream
        ) {
            return Err(EngineError::UnknownMember(member.clone()));
        }
        let vault = self.key_vault().ok_or(EngineError::NoKeyVault)?;
        // No command of this member's is sealing a note meanwhile (on this server): a note
        // sealed with a key read just before the erasure would be appended after it.
        let _guard = self.lock_member(member).await;
        // Counted before anything is destroyed, from the raw documents: an event this build
        // cannot decode (a newer release's) must not fail the erasure halfway.
        let (sealed_notes, plain_notes) = self.count_notes(&stream).await?;
        let now = self.clock().now();
        // Keys, then the record: once the keys are gone the notes are; the record says so. If
        // the record's append fails, the caller's retry destroys nothing more and records it.
        let erasure = vault.erase(member.as_str(), now).await?;
        let record = ErasureRecord {
            erased_at: erasure.erased_at,
            reason_code: reason_code.to_string(),
            operator: operator.to_string(),
            keys_destroyed: erasure.keys_destroyed,
            sealed_notes,
            position: Position::START,
        };
        let metadata = EventMetadata::new(
            String::new(),
            "EraseMember".to_owned(),
            context,
            now,
            now,
            self.program().rules_version().to_owned(),
        );
        let data = EventData {
            id: self.ids().event_id(),
            event_type: PERSONAL_DATA_ERASED.to_owned(),
            schema_version: 1,
            data: serde_json::to_vec(&record)
                .map_err(|e| EngineError::Corrupt(format!("erasure record: {e}")))?
                .into(),
            metadata: serde_json::to_vec(&metadata)
                .map_err(|e| EngineError::Corrupt(format!("erasure metadata: {e}")))?
                .into(),
        };
        let appended = self
            .store()
            .append(&privacy_stream(member), ExpectedRevision::Any, vec![data])
            .await?;
        tracing::info!(
            %member,
            keys_destroyed = erasure.keys_destroyed,
            sealed_notes,
            plain_notes,
            "personal data erased"
        );
        Ok(ErasureReport {
            member_id: member.clone(),
            erased_at: erasure.erased_at,
            keys_destroyed: erasure.keys_destroyed,
            sealed_notes,
            plain_notes,
            position: appended.position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(member: &str) -> MemberKey {
        loyalty_store::vault::new_key(member)
    }

    fn alice() -> MemberId {
        MemberId::parse("alice").unwrap()
    }

    #[test]
    fn a_sealed_note_opens_under_its_key_and_holds_no_plaintext() {
        let k = key("alice");
        let sealed = seal(&k, &alice(), "lost card").unwrap();
        assert_eq!(sealed.key_id, k.key_id);
        assert!(!sealed.ciphertext.contains("lost card"));
        assert_eq!(open(&k, &alice(), &sealed).unwrap(), "lost card");
        // Random nonces: the same text seals differently each time.
        assert_ne!(seal(&k, &alice(), "lost card").unwrap(), sealed);
    }

    #[test]
    fn an_altered_or_moved_note_does_not_open() {
        let k = key("alice");
        let sealed = seal(&k, &alice(), "lost card").unwrap();
        let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let altered = SealedNote {
            ciphertext: BASE64.encode(bytes),
            ..sealed.clone()
        };
        assert!(matches!(
            open(&k, &alice(), &altered),
            Err(EngineError::Corrupt(_))
        ));
        // The same ciphertext in bob's event, even with the same key bytes, does not open:
        // the member is bound in the associated data.
        let bob = MemberId::parse("bob").unwrap();
        assert!(open(&k, &bob, &sealed).is_err());
        let other_key = key("alice");
        assert!(open(&other_key, &alice(), &sealed).is_err());
    }
}
