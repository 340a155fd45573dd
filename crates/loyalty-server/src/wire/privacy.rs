//! A member's data rights: everything held about them (`GET /v1/members/{member_id}/export`)
//! and the erasure of their personal data (`POST /v1/members/{member_id}/erasure`).
//!
//! The personal data inside events is the support notes staff write about a member; the engine
//! seals them with a key of the member's, and erasing destroys the key. A note is therefore
//! shown as its text while the key lives and as `{"status": "erased"}` afterwards; the events
//! themselves (and their points) stay, so balances and the hash chain are unchanged.
use chrono::{DateTime, Utc};
use loyalty_engine::{
    ErasureRecord as EngineErasureRecord, ErasureReport as EngineErasureReport,
    ExportedEvent as EngineExportedEvent, MemberExport as EngineMemberExport,
    RevealedNote as EngineRevealedNote,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::MemberAsOf;
use crate::dto::PositionText;

/// Everything the ledger holds about a member, with their support notes opened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberExport {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// When the export was made (the server's clock).
    pub exported_at: DateTime<Utc>,
    /// The member's status, balance and tier as of the export, replayed from the log (as
    /// `GET /v1/members/{member_id}/as-of` shows them); null when not enrolled.
    #[schema(required = true)]
    pub member: Option<MemberAsOf>,
    /// Every event of the member's stream, oldest first.
    pub events: Vec<ExportedEvent>,
    /// The erasures of the member's personal data, oldest first.
    pub erasures: Vec<ErasureRecord>,
    /// What in this export is personal data, in a sentence.
    pub personal_data: String,
}

impl From<&EngineMemberExport> for MemberExport {
    fn from(e: &EngineMemberExport) -> Self {
        Self {
            member_id: e.member_id.to_string(),
            exported_at: e.exported_at,
            member: e.member.as_ref().map(MemberAsOf::from),
            events: e.events.iter().map(ExportedEvent::from).collect(),
            erasures: e.erasures.iter().map(ErasureRecord::from).collect(),
            personal_data: e.personal_data.to_owned(),
        }
    }
}

/// One event of the member's stream, as stored, with its note opened.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportedEvent {
    /// The event's revision in the member's stream (from 0).
    pub revision: u64,
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    pub event_type: String,
    /// The version of the stored document's schema.
    pub schema_version: u32,
    /// Business time; null for an event whose document does not say.
    #[schema(required = true)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// Server time: when the ledger recorded it; null for events recorded without the engine's
    /// metadata.
    #[schema(required = true)]
    pub recorded_at: Option<DateTime<Utc>>,
    /// The stored event document (a sealed note stays sealed here: its text is in `note`).
    pub data: serde_json::Value,
    /// The event's metadata (`recorded_at`, actor, correlation id...).
    pub metadata: serde_json::Value,
    /// The event's support note, opened; null for an event that carries none.
    #[schema(required = true)]
    pub note: Option<RevealedNote>,
}

impl From<&EngineExportedEvent> for ExportedEvent {
    fn from(e: &EngineExportedEvent) -> Self {
        Self {
            revision: e.revision,
            position: PositionText(e.position),
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            data: e.data.clone(),
            metadata: e.metadata.clone(),
            note: e.note.as_ref().map(RevealedNote::from),
        }
    }
}

/// A support note as it can be read now: its text, or `erased` once the member's key was
/// destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RevealedNote {
    /// The note's text.
    Present { text: String },
    /// The member's personal data was erased: the note can never be read again.
    Erased,
}

impl From<&EngineRevealedNote> for RevealedNote {
    fn from(n: &EngineRevealedNote) -> Self {
        match n {
            EngineRevealedNote::Present { text } => RevealedNote::Present { text: text.clone() },
            EngineRevealedNote::Erased => RevealedNote::Erased,
        }
    }
}

/// An erasure of the member's personal data, as the log records it (stream
/// `privacy-<member_id>`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErasureRecord {
    pub erased_at: DateTime<Utc>,
    #[schema(value_type = crate::schema::Id)]
    pub reason_code: String,
    #[schema(value_type = crate::schema::Id)]
    pub operator: String,
    /// The member keys this erasure destroyed.
    pub keys_destroyed: u64,
    /// Sealed notes of the member's stream it left unreadable.
    pub sealed_notes: u64,
    /// Where the erasure stands in the log.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
}

impl From<&EngineErasureRecord> for ErasureRecord {
    fn from(r: &EngineErasureRecord) -> Self {
        Self {
            erased_at: r.erased_at,
            reason_code: r.reason_code.clone(),
            operator: r.operator.clone(),
            keys_destroyed: r.keys_destroyed,
            sealed_notes: r.sealed_notes,
            position: PositionText(r.position),
        }
    }
}

/// What an erasure did (`POST /v1/members/{member_id}/erasure`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErasureReport {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub erased_at: DateTime<Utc>,
    /// The member keys this request destroyed (0 when an earlier erasure already had).
    pub keys_destroyed: u64,
    /// Sealed notes of the member's stream that can no longer be read.
    pub sealed_notes: u64,
    /// Notes written in the clear before notes were sealed (schema version 1 events): the
    /// append-only log keeps them, so the erasure cannot reach them.
    pub plain_notes: u64,
    /// Where the erasure's record stands in the log.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
}

impl From<&EngineErasureReport> for ErasureReport {
    fn from(r: &EngineErasureReport) -> Self {
        Self {
            member_id: r.member_id.to_string(),
            erased_at: r.erased_at,
            keys_destroyed: r.keys_destroyed,
            sealed_notes: r.sealed_notes,
            plain_notes: r.plain_notes,
            position: PositionText(r.position),
        }
    }
}

#[cfg(test)]
mod tests {
    use loyalty_core::{OperatorId, ReasonCode};
    use loyalty_engine::CommandContext;

    use super::*;
    use crate::wire::testkit::{self, assert_same_json, assert_valid};

    fn notes(export: &MemberExport) -> Vec<RevealedNote> {
        export
            .events
            .iter()
            .filter_map(|e| e.note.clone())
            .collect()
    }

    #[tokio::test]
    async fn exports_and_erasure_reports_serialise_as_the_engine_values_did() {
        // Given a member with an adjustment and a goodwill grant, each with a note
        let world = testkit::world().await;
        let before = world.engine.export_member(&world.member).await.unwrap();
        let wire = MemberExport::from(&before);
        assert_same_json(&wire, &before);
        assert_valid::<MemberExport>(&wire);
        assert_eq!(notes(&wire).len(), 2);
        assert!(
            notes(&wire)
                .iter()
                .all(|n| matches!(n, RevealedNote::Present { .. }))
        );

        // When the member's personal data is erased
        let report = world
            .engine
            .erase_member(
                &world.member,
                ReasonCode::parse("member-request".to_owned()).unwrap(),
                OperatorId::parse("dpo-1".to_owned()).unwrap(),
                &CommandContext::new(),
            )
            .await
            .unwrap();
        let wire = ErasureReport::from(&report);
        assert_same_json(&wire, &report);
        assert_valid::<ErasureReport>(&wire);

        // Then the export, with the notes erased and the erasure listed, does too
        let after = world.engine.export_member(&world.member).await.unwrap();
        let wire = MemberExport::from(&after);
        assert_same_json(&wire, &after);
        assert_valid::<MemberExport>(&wire);
        assert_eq!(notes(&wire), vec![RevealedNote::Erased; 2]);
        assert_eq!(wire.erasures.len(), 1);
    }
}
