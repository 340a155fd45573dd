//! The versions of the program rules recorded in the log (`GET /v1/audit/programs` and
//! `GET /v1/audit/programs/{version}`): what an auditor reads to know the rules that made a
//! decision, whose `rules_version` names one of them.
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use loyalty_engine::{
    ProgramHistory as EngineProgramHistory, ProgramVersion as EngineProgramVersion, RecordedProgram,
};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::dto::PositionText;

/// A version of the program: 64 lowercase hex digits.
pub const VERSION_PATTERN: &str = "^[0-9a-f]{64}$";

/// What the path of `GET /v1/audit/programs/{version}` names a program by: a version, a
/// prefix of one (at least 8 hex digits), or a label. The same characters as an id.
pub const PROGRAM_REF_PATTERN: &str = crate::schema::ID_PATTERN;

/// A reference to a recorded program, as the path takes it.
#[derive(Debug)]
pub struct ProgramRef;

impl PartialSchema for ProgramRef {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(PROGRAM_REF_PATTERN))
            .min_length(Some(1))
            .max_length(Some(64))
            .description(Some(
                "A program version (the `rules_version` decisions record: 64 lowercase hex \
                 digits), a prefix of one of at least 8 digits that no other version shares, \
                 or a label (`rules_version` of events recorded before versions were hashes): \
                 the latest program recorded with it.",
            ))
            .examples(["2026.11.2"])
            .into()
    }
}

impl ToSchema for ProgramRef {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProgramRef")
    }
}

/// A program version (hex SHA-256 of its normalised text).
#[derive(Debug)]
pub struct ProgramVersionHash;

impl PartialSchema for ProgramVersionHash {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(VERSION_PATTERN))
            .description(Some(
                "Lowercase hex SHA-256 of the program's normalised text: what decisions \
                 record as `rules_version`.",
            ))
            .into()
    }
}

impl ToSchema for ProgramVersionHash {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProgramVersionHash")
    }
}

/// One recorded version of the program.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramVersion {
    #[schema(value_type = ProgramVersionHash)]
    pub version: String,
    /// The program's label (`[program] label`); null when it has none.
    #[schema(required = true)]
    pub label: Option<String>,
    /// The program's name.
    pub name: String,
    /// When a server first started with it (that server's clock).
    pub recorded_at: DateTime<Utc>,
    /// Its revision in the stream `program`.
    pub revision: u64,
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
}

impl From<&EngineProgramVersion> for ProgramVersion {
    fn from(v: &EngineProgramVersion) -> Self {
        Self {
            version: v.version.clone(),
            label: v.label.clone(),
            name: v.name.clone(),
            recorded_at: v.recorded_at,
            revision: v.revision,
            position: PositionText(v.position),
        }
    }
}

/// The recorded versions of the program, oldest first (`GET /v1/audit/programs`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramHistory {
    pub versions: Vec<ProgramVersion>,
    /// Older versions exist that are not listed (only the newest 1,000 are read).
    pub more: bool,
}

impl From<&EngineProgramHistory> for ProgramHistory {
    fn from(h: &EngineProgramHistory) -> Self {
        Self {
            versions: h.versions.iter().map(ProgramVersion::from).collect(),
            more: h.more,
        }
    }
}

/// A recorded version and its text (`GET /v1/audit/programs/{version}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramText {
    #[schema(value_type = ProgramVersionHash)]
    pub version: String,
    /// The program's label; null when it has none.
    #[schema(required = true)]
    pub label: Option<String>,
    pub name: String,
    pub recorded_at: DateTime<Utc>,
    pub revision: u64,
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    /// The normalised program (TOML, keys sorted, no comments): `version` is its SHA-256.
    pub text: String,
}

impl From<&RecordedProgram> for ProgramText {
    fn from(p: &RecordedProgram) -> Self {
        let info = ProgramVersion::from(&p.info);
        Self {
            version: info.version,
            label: info.label,
            name: info.name,
            recorded_at: info.recorded_at,
            revision: info.revision,
            position: info.position,
            text: p.text.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use loyalty_engine::Engine;

    use super::*;
    use crate::wire::testkit::{assert_same_json, assert_valid, world};

    async fn recorded(engine: &Engine) -> RecordedProgram {
        let version = engine.program().version().to_owned();
        engine
            .program_text(&version)
            .await
            .unwrap()
            .expect("the engine recorded its program at start")
    }

    #[tokio::test]
    async fn the_history_matches_its_schema_and_the_engines_json() {
        // Given an engine that started with the demo program
        let world = world().await;
        let history = world.engine.program_history().await.unwrap();
        assert_eq!(history.versions.len(), 1);
        // When it is put on the wire, then it is what the engine's value serialises to, and
        // its schema admits it
        let wire = ProgramHistory::from(&history);
        assert_same_json(&wire, &history);
        assert_valid::<ProgramHistory>(&wire);
    }

    #[tokio::test]
    async fn a_recorded_program_matches_its_schema_and_the_engines_json() {
        let world = world().await;
        let program = recorded(&world.engine).await;
        let wire = ProgramText::from(&program);
        assert_same_json(&wire, &program);
        assert_valid::<ProgramText>(&wire);
        assert_eq!(wire.version, world.engine.program().version());
    }
}
