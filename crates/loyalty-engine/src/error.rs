//! One error type for the engine: the domain's "no" kept apart from technical failures.

use chrono::{DateTime, Utc};
use loyalty_core::{DomainError, MemberId, PurchaseKey, SchemaError};
use loyalty_store::{Position, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The domain said no (the command breaks a rule): a client error.
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("unknown member {0}")]
    UnknownMember(MemberId),
    #[error("unknown transaction {} of store {}", .0.transaction_id, .0.store)]
    UnknownTransaction(PurchaseKey),
    /// The sale is already recorded for another member.
    #[error("transaction {} of store {} belongs to another member", sale.transaction_id, sale.store)]
    TransactionOfAnotherMember {
        sale: PurchaseKey,
        /// The member who holds the sale (not shown to clients by default).
        owner: MemberId,
    },
    /// Scheduled work was asked to run as of a time the server's clock has not reached: it
    /// would expire points early.
    #[error("scheduled work cannot run as of {requested}: the server's clock says {now}")]
    ScheduledAhead {
        requested: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Concurrent writers kept winning: the command was not applied.
    #[error("stream {stream} kept changing: gave up after {attempts} attempts")]
    Conflict { stream: String, attempts: u32 },
    /// A read asked for a position the projections did not reach within the wait limit.
    #[error("read models have not reached position {wanted} (at {reached})")]
    NotCaughtUp { wanted: Position, reached: Position },
    /// A read asked for a position past the log's head: no write reached it.
    #[error("position {wanted} is past the head of the log ({head})")]
    PositionAheadOfLog { wanted: Position, head: Position },
    /// A page or batch was asked for outside its limits.
    #[error("{what} of {requested} is not between 1 and {limit}")]
    LimitExceeded {
        what: &'static str,
        requested: usize,
        limit: usize,
    },
    /// An analysis cannot be computed from this data (too few members, a period that ends
    /// before it starts, a model fit that did not converge).
    #[error(transparent)]
    Analytics(#[from] loyalty_analytics::AnalyticsError),
    /// The event store failed (technical).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event cannot be read with this version of the schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A stored event was written by a newer release (a schema version this build does not
    /// read): this server must be upgraded. Nothing was decided on a partial history.
    #[error("{0}")]
    NewerSchema(NewerSchemaEvent),
    /// Engine data in the store (a reservation, a checkpoint) that cannot be read.
    #[error("corrupt engine record: {0}")]
    Corrupt(String),
    /// A command carries personal data (a support note) and no key vault is configured to
    /// seal it with: it is refused rather than written in the clear, where it could never be
    /// erased.
    #[error(
        "no key vault for personal data: this store keeps none; set [privacy] key_file in the \
         settings"
    )]
    NoKeyVault,
    /// A command or an erasure was given to an engine started read-only (a report tool).
    #[error("this engine was started read-only: it appends nothing")]
    ReadOnly,
    /// The engine was shut down.
    #[error("engine is shut down")]
    ShutDown,
}

/// The event a newer release wrote, as an operator needs it named to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{stream} revision {revision} (position {position}) holds a {event_type} event of schema \
     version {version}, newer than this build reads (up to v{newest_known}): upgrade this \
     server to the release that wrote it (roll out readers first, then writers)"
)]
pub struct NewerSchemaEvent {
    pub stream: String,
    pub revision: u64,
    pub position: Position,
    pub event_type: String,
    pub version: u32,
    /// The newest version of the type this build reads.
    pub newest_known: u32,
}

impl EngineError {
    /// A client may send the same request again later and it may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Conflict { .. } | Self::NotCaughtUp { .. } => true,
            Self::Store(e) => e.is_transient(),
            _ => false,
        }
    }
}
