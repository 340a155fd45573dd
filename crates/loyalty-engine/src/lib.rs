//! The application layer of loyalty: the command handler (load, decide, append with the
//! expected revision, bounded retries), cross-member uniqueness of transaction ids through
//! reservation streams, read models fed by a catch-up subscription to `$all`, read-your-writes,
//! scheduled work, the referral process manager and the auditors' queries.
//! See `/notes/engine-api.md` (the contract with the server) and ARCHITECTURE.md.
#![forbid(unsafe_code)]

mod analytics;
mod audit;
mod bounded;
mod cache;
pub mod chain;
mod checkpoint;
mod clock;
mod codec;
mod decoded;
mod engine;
mod error;
mod health;
mod import;
mod lease;
mod liability;
mod locks;
mod member_snapshot;
mod metadata;
mod options;
mod privacy;
mod program_history;
mod progress;
mod quote;
mod readmodel;
mod referral;
mod reservation;
mod runner;
mod scheduler;
mod views;
mod what_if;
mod win_back;

pub use analytics::{
    AtRiskReport, BacktestReport, CohortReport, CohortRow, ConcentrationReport, FittedModels,
    MAX_MEMBERS_PAGE, MAX_PERIODS, MemberValue, ModelReport, RetentionReport, RfmPage,
};
pub use chain::{Anchor, AnchorVerdict};
pub use clock::{Clock, IdGenerator, ManualClock, RandomIds, SequentialIds, SystemClock};
pub use engine::Engine;
pub use error::{EngineError, NewerSchemaEvent};
pub use import::{ImportPhase, ImportReport, ImportRow, ImportRowError, MAX_IMPORT_ROWS};
pub use lease::LeaseHandle;
pub use liability::{
    BreakageEstimate, DEFAULT_BREAKAGE_LOOKBACK_DAYS, ExpiryBucket, ExpiryBucketKind,
    LiabilityStatement, MAX_BREAKAGE_LOOKBACK_DAYS,
};
pub use metadata::{CommandContext, EventMetadata, MAX_CONTEXT_FIELD};
pub use options::EngineOptions;
pub use privacy::{
    EXPORT_SCOPE, ErasureRecord, ErasureReport, ExportedEvent, MemberExport, PERSONAL_DATA_ERASED,
    RevealedNote,
};
pub use program_history::{
    MAX_PROGRAM_VERSIONS, MIN_VERSION_PREFIX, ProgramHistory, ProgramLog, ProgramLookup,
    ProgramVersion, RecordedProgram,
};
pub use quote::Quote;
pub use views::{
    BalanceView, CommandResult, HistoryCursor, HistoryPage, LiabilityReport, LogEntry, LogPage,
    MemberSnapshot, NextExpiryView, NextTierView, ProfileView, ProgramTotals, RefundRequest,
    ReplayReport, RewardView, ScheduledFailure, ScheduledReport, StatementLine, TierRefView,
    TierView, VerifyReport, option_position_text, parse_position, position_text,
};
pub use what_if::{MAX_IN_FLIGHT, MEMBERS_PER_BATCH, ProgramName, UnchangedKind, WhatIfReport};

/// Stream names the engine writes: `member-<id>` (one per member), `txn-<id>` (transaction
/// reservations), `checkpoint-<name>` (process manager checkpoints), `lease-<name>` (who runs
/// the work that must run once), `health-<server>` (write probes while the store fails),
/// `snapshot-<member>` (a long-lived member's hot state, a cache of its events), `program`
/// (each version of the program rules the servers ran with, its text: `program_history`).
pub mod streams {
    pub use crate::checkpoint::CHECKPOINT_PREFIX;
    pub use crate::codec::{MEMBER_PREFIX, TXN_PREFIX};
    pub use crate::health::HEALTH_PREFIX;
    pub use crate::lease::LEASE_PREFIX;
    pub use crate::member_snapshot::{
        SNAPSHOT_PREFIX, stored_revision as snapshot_member_revision,
    };
    pub use crate::privacy::PRIVACY_PREFIX;
    pub use crate::program_history::{PROGRAM_RECORDED, PROGRAM_STREAM};
}
