//! The rules in force: every program a server ran with, recorded in the log itself.
//!
//! Decisions record the version of the rules that made them (`rules_version`): the hash of the
//! program's normalised text (`loyalty_core::program::version`). So that the version resolves
//! to the rules, the engine records the text in the stream `program` (event `ProgramRecorded`)
//! when it starts with a program whose version the stream has not seen, before it decides
//! anything. The append expects the revision it read: of two servers starting at once with the
//! same new program, one appends, the other gets a conflict, reads again, finds the version
//! and appends nothing.
//!
//! Events written before versions were hashes carry the program's label (then called
//! `rules_version`) instead: [`Engine::resolve_program`] falls back to the latest recorded
//! program with that label.
//!
//! Bounds: the stream is read newest first, at most [`MAX_PROGRAM_VERSIONS`] events, in pages
//! of [`READ_PAGE`] events (each holds a whole program text, up to
//! `loyalty_core::program::version::MAX_PROGRAM_TEXT_BYTES`, so a page stays under 6 MiB).
//! A log with more versions than that lists only the newest ([`ProgramHistory::more`] says so),
//! and a server starting with a program recorded only before those records it again (the
//! history then shows it twice, with both dates). The stream is never truncated.

use chrono::{DateTime, Utc};
use loyalty_core::Program;
use loyalty_core::program::version::{is_lower_hex, version_of};
use loyalty_store::{
    Bytes, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, Position,
    RecordedEvent, StoreError, StreamFrom,
};
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, IdGenerator};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::views::position_text;

/// The stream of recorded programs.
pub const PROGRAM_STREAM: &str = "program";
/// The event type of a recorded program.
pub const PROGRAM_RECORDED: &str = "ProgramRecorded";
/// The stored schema version of [`PROGRAM_RECORDED`] this build writes and reads.
const SCHEMA_VERSION: u32 = 1;
/// Most versions read from the stream (newest first) by any query or at start.
pub const MAX_PROGRAM_VERSIONS: usize = 1_000;
/// Events per read of the stream.
pub const READ_PAGE: usize = 16;
/// Shortest prefix of a version accepted for it.
pub const MIN_VERSION_PREFIX: usize = 8;
/// Attempts to record the program when other servers keep appending to the stream.
const MAX_RECORD_ATTEMPTS: u32 = 5;

/// `ProgramRecorded` as stored, schema v1 (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProgramRecordedV1 {
    version: String,
    label: Option<String>,
    name: String,
    text: String,
    recorded_at: DateTime<Utc>,
}

/// One recorded version of the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramVersion {
    /// Lowercase hex SHA-256 of the normalised text: what decisions record as `rules_version`.
    pub version: String,
    /// The program's label (`[program] label`), if it has one.
    pub label: Option<String>,
    /// The program's name.
    pub name: String,
    /// The recording server's clock when it started with this program.
    pub recorded_at: DateTime<Utc>,
    /// Revision in the stream `program`.
    pub revision: u64,
    #[serde(with = "position_text")]
    pub position: Position,
}

/// A recorded version with its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedProgram {
    #[serde(flatten)]
    pub info: ProgramVersion,
    /// The normalised program text (TOML), which `info.version` is the hash of.
    pub text: String,
}

/// The recorded versions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramHistory {
    pub versions: Vec<ProgramVersion>,
    /// Older versions exist beyond the [`MAX_PROGRAM_VERSIONS`] newest listed.
    pub more: bool,
}

/// What a version, a prefix of one or a label resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramLookup {
    Found(Box<RecordedProgram>),
    /// Nothing recorded matches.
    Unknown,
    /// A prefix that matches several versions (listed).
    Ambiguous(Vec<String>),
}

/// What starting with a program did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The version was already recorded (at this revision).
    AlreadyThere(u64),
    /// Appended at this revision.
    Appended(u64),
}

fn decode(event: &RecordedEvent) -> Result<RecordedProgram, EngineError> {
    let corrupt = |why: String| {
        EngineError::Corrupt(format!(
            "{PROGRAM_STREAM} revision {} ({}): {why}",
            event.revision, event.event_type
        ))
    };
    if event.event_type != PROGRAM_RECORDED {
        return Err(corrupt("not a recorded program".into()));
    }
    if event.schema_version != SCHEMA_VERSION {
        return Err(corrupt(format!(
            "schema version {} is not one this build reads ({SCHEMA_VERSION}): upgrade",
            event.schema_version
        )));
    }
    let stored: ProgramRecordedV1 =
        serde_json::from_slice(&event.data).map_err(|e| corrupt(e.to_string()))?;
    // The version is the text's hash: a record whose text does not hash to it was altered.
    if version_of(&stored.text) != stored.version {
        return Err(corrupt(format!(
            "the text does not hash to its version {}",
            stored.version
        )));
    }
    Ok(RecordedProgram {
        info: ProgramVersion {
            version: stored.version,
            label: stored.label,
            name: stored.name,
            recorded_at: stored.recorded_at,
            revision: event.revision,
            position: event.position,
        },
        text: stored.text,
    })
}

/// How a scan treats an event it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// An error: the auditors' queries must not hide a record they cannot read.
    Refuse,
    /// Skipped with a warning: a start-up only looks for its own version, and one record a
    /// newer release wrote (or one damaged) must not keep every server of this one from
    /// starting.
    Skip,
}

/// Visits the recorded programs newest first, at most [`MAX_PROGRAM_VERSIONS`], until `visit`
/// says stop (`false`). Returns the revision of the newest event read (`None`: none) and
/// whether older events were left unread because of the bound.
async fn scan_newest_first(
    store: &dyn EventStore,
    unreadable: Unreadable,
    mut visit: impl FnMut(RecordedProgram) -> bool,
) -> Result<(Option<u64>, bool), EngineError> {
    let mut from = StreamFrom::End;
    let mut newest = None;
    let mut read = 0usize;
    loop {
        let page = store
            .read_stream(PROGRAM_STREAM, from, Direction::Backwards, READ_PAGE)
            .await?;
        let Some(last) = page.last().map(|e| e.revision) else {
            return Ok((newest, false));
        };
        for event in &page {
            newest.get_or_insert(event.revision);
            if read == MAX_PROGRAM_VERSIONS {
                return Ok((newest, true));
            }
            read += 1;
            let program = match (decode(event), unreadable) {
                (Ok(program), _) => program,
                (Err(e), Unreadable::Skip) => {
                    tracing::warn!(error = %e, "a recorded program this build cannot read is skipped");
                    continue;
                }
                (Err(e), Unreadable::Refuse) => return Err(e),
            };
            if !visit(program) {
                return Ok((newest, false));
            }
        }
        match last.checked_sub(1) {
            Some(next) if page.len() == READ_PAGE => from = StreamFrom::Revision(next),
            _ => return Ok((newest, false)),
        }
    }
}

/// Records `program` unless its version is already in the stream (see the module's docs).
pub(crate) async fn record(
    store: &dyn EventStore,
    program: &Program,
    clock: &dyn Clock,
    ids: &dyn IdGenerator,
) -> Result<Recorded, EngineError> {
    let version = program.version();
    let id = ids.event_id();
    for _ in 0..MAX_RECORD_ATTEMPTS {
        // Read before the scan: an append between the two then conflicts, and is read again.
        // (The scan's newest event gives the same revision; this covers a stream with no
        // readable event, which must not be taken for one that does not exist.)
        let before = store.stream_revision(PROGRAM_STREAM).await?;
        let mut found = None;
        let (newest, _) = scan_newest_first(store, Unreadable::Skip, |p| {
            if p.info.version == version {
                found = Some(p.info.revision);
            }
            found.is_none()
        })
        .await?;
        if let Some(revision) = found {
            return Ok(Recorded::AlreadyThere(revision));
        }
        let expected = match (newest, before) {
            (Some(revision), _) | (None, CurrentRevision::Current(revision)) => {
                ExpectedRevision::Exact(revision)
            }
            (None, CurrentRevision::NoStream) => ExpectedRevision::NoStream,
        };
        let stored = ProgramRecordedV1 {
            version: version.to_owned(),
            label: program.label().map(str::to_owned),
            name: program.name().to_owned(),
            text: program.normalized_text().to_owned(),
            recorded_at: clock.now(),
        };
        let data = serde_json::to_vec(&stored)
            .map_err(|e| EngineError::Corrupt(format!("program not serialisable: {e}")))?;
        let event = EventData {
            // The same id on every attempt: a retried append is recognised by it.
            id,
            event_type: PROGRAM_RECORDED.to_owned(),
            schema_version: SCHEMA_VERSION,
            data: Bytes::from(data),
            metadata: Bytes::from_static(b"{}"),
        };
        match store.append(PROGRAM_STREAM, expected, vec![event]).await {
            Ok(written) => {
                let revision = written.next_expected_revision;
                tracing::info!(version, revision, "recorded a new version of the program");
                return Ok(Recorded::Appended(revision));
            }
            // Another server appended meanwhile (perhaps this very version): read again.
            Err(StoreError::WrongExpectedRevision { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(EngineError::Conflict {
        stream: PROGRAM_STREAM.to_owned(),
        attempts: MAX_RECORD_ATTEMPTS,
    })
}

/// The recorded programs of a store, read without an engine (what `loyalty program` uses: it
/// reads the log and records nothing). [`Engine`]'s methods of the same names ask it.
#[derive(Clone, Copy)]
pub struct ProgramLog<'a> {
    store: &'a dyn EventStore,
}

impl std::fmt::Debug for ProgramLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramLog").finish_non_exhaustive()
    }
}

impl<'a> ProgramLog<'a> {
    pub fn new(store: &'a dyn EventStore) -> Self {
        ProgramLog { store }
    }

    /// The recorded versions of the program, oldest first (the newest
    /// [`MAX_PROGRAM_VERSIONS`]).
    pub async fn history(&self) -> Result<ProgramHistory, EngineError> {
        let mut versions = Vec::new();
        let (_, more) = scan_newest_first(self.store, Unreadable::Refuse, |p| {
            versions.push(p.info);
            true
        })
        .await?;
        versions.reverse();
        Ok(ProgramHistory { versions, more })
    }

    /// The recorded program of exactly this version, with its text.
    pub async fn text(&self, version: &str) -> Result<Option<RecordedProgram>, EngineError> {
        let mut found = None;
        scan_newest_first(self.store, Unreadable::Refuse, |p| {
            if p.info.version == version {
                found = Some(p);
            }
            found.is_none()
        })
        .await?;
        Ok(found)
    }

    /// The program a `rules_version` (as decisions record it) or an auditor's reference names:
    /// the exact version; else, for at least [`MIN_VERSION_PREFIX`] lowercase hex digits, the
    /// one version they begin (several: ambiguous); else (events written before versions were
    /// hashes recorded the label) the latest recorded program with that label.
    pub async fn resolve(&self, reference: &str) -> Result<ProgramLookup, EngineError> {
        let as_prefix = reference.len() >= MIN_VERSION_PREFIX && is_lower_hex(reference);
        let mut exact = None;
        let mut by_prefix: Vec<RecordedProgram> = Vec::new();
        let mut by_label = None;
        scan_newest_first(self.store, Unreadable::Refuse, |p| {
            if p.info.version == reference {
                exact = Some(p);
                return false;
            }
            if as_prefix && p.info.version.starts_with(reference) {
                // Keep one text at most (memory): the others only count, by version.
                if by_prefix.iter().all(|q| q.info.version != p.info.version) {
                    let text = if by_prefix.is_empty() {
                        p.text
                    } else {
                        String::new()
                    };
                    by_prefix.push(RecordedProgram { info: p.info, text });
                }
            } else if by_label.is_none() && p.info.label.as_deref() == Some(reference) {
                // Newest first: the first seen is the latest.
                by_label = Some(p);
            }
            true
        })
        .await?;
        if let Some(p) = exact {
            return Ok(ProgramLookup::Found(Box::new(p)));
        }
        if by_prefix.len() > 1 {
            return Ok(ProgramLookup::Ambiguous(
                by_prefix.into_iter().map(|p| p.info.version).collect(),
            ));
        }
        Ok(by_prefix
            .pop()
            .or(by_label)
            .map_or(ProgramLookup::Unknown, |p| {
                ProgramLookup::Found(Box::new(p))
            }))
    }
}

impl Engine {
    /// The recorded versions of the program, oldest first (see [`ProgramLog::history`]).
    pub async fn program_history(&self) -> Result<ProgramHistory, EngineError> {
        ProgramLog::new(self.inner.store.as_ref()).history().await
    }

    /// The recorded program of exactly this version (see [`ProgramLog::text`]).
    pub async fn program_text(
        &self,
        version: &str,
    ) -> Result<Option<RecordedProgram>, EngineError> {
        ProgramLog::new(self.inner.store.as_ref())
            .text(version)
            .await
    }

    /// What a `rules_version`, a version prefix or a label names (see
    /// [`ProgramLog::resolve`]).
    pub async fn resolve_program(&self, reference: &str) -> Result<ProgramLookup, EngineError> {
        ProgramLog::new(self.inner.store.as_ref())
            .resolve(reference)
            .await
    }
}
