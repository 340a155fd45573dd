//! Auditors: the versions of the program rules recorded in the log, and the text of each, so
//! that every decision's `rules_version` can be read back as the rules that made it.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loyalty_engine::{MIN_VERSION_PREFIX, ProgramLookup};

use super::ApiPath;
use crate::auth::{Allowed, Auditors};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::programs::{ProgramHistory, ProgramText};

#[utoipa::path(
    get,
    path = "/v1/audit/programs",
    tag = "audit",
    summary = "The versions of the program rules recorded in the log, oldest first",
    description = "A server records its program (the whole text, normalised, with its hash as \
        the version) when it starts with one the log has not seen. Every decision's \
        `rules_version` is one of these versions. The newest 1,000 are listed.",
    responses((status = 200, description = "OK", body = crate::wire::programs::ProgramHistory)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn history(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
) -> Result<Json<ProgramHistory>, ApiError> {
    let history = state.engine.program_history().await?;
    Ok(Json(ProgramHistory::from(&history)))
}

#[utoipa::path(
    get,
    path = "/v1/audit/programs/{version}",
    tag = "audit",
    summary = "One recorded version of the program rules, with its text",
    description = "By its version (a decision's `rules_version`), a prefix of at least 8 hex \
        digits that no other version shares, or a label (the latest program recorded with it: \
        events recorded before versions were hashes name the label).",
    params(("version" = crate::wire::programs::ProgramRef, Path, description = "A version, a unique prefix of one, or a label")),
    responses((status = 200, description = "OK", body = crate::wire::programs::ProgramText)),
    security(("apiKey" = ["auditor"])),
)]
pub async fn show(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    ApiPath(reference): ApiPath<String>,
) -> Result<Json<ProgramText>, ApiError> {
    let well_formed = (1..=64).contains(&reference.chars().count())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !well_formed {
        return Err(ApiError::invalid(format!(
            "{reference:?} is not a program version, a prefix of one or a label: 1 to 64 of \
             A-Z a-z 0-9 . _ : -"
        )));
    }
    match state.engine.resolve_program(&reference).await? {
        ProgramLookup::Found(program) => Ok(Json(ProgramText::from(program.as_ref()))),
        ProgramLookup::Unknown => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-program",
            "Unknown program version",
            format!(
                "no recorded program has the version or label {reference:?} (a prefix needs \
                 at least {MIN_VERSION_PREFIX} hex digits)"
            ),
        )
        .with("version", reference)),
        ProgramLookup::Ambiguous(versions) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous-program-version",
            "Ambiguous program version",
            format!(
                "{reference:?} begins {} recorded versions: give more of it",
                versions.len()
            ),
        )
        .with("versions", versions)),
    }
}
