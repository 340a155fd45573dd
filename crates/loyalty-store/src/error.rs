use crate::{CurrentRevision, ExpectedRevision};

/// What can go wrong in a store. The domain's "no" is not here: this is the technical layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("wrong expected revision on stream {stream}: expected {expected}, actual {actual}")]
    WrongExpectedRevision {
        stream: String,
        expected: ExpectedRevision,
        actual: CurrentRevision,
    },
    #[error("an append must carry at least one event")]
    EmptyAppend,
    #[error("append of {count} events exceeds the limit of {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("append of {bytes} bytes exceeds the limit of {limit}")]
    AppendTooLarge { bytes: usize, limit: usize },
    #[error("page of {requested} events is not between 1 and the limit of {limit}")]
    PageTooLarge { requested: usize, limit: usize },
    #[error("invalid stream name {0:?}")]
    InvalidStreamName(String),
    #[error("event id {0} appears more than once in one append")]
    DuplicateEventId(uuid::Uuid),
    #[error("some but not all of the append's event ids are already stored in stream {stream}")]
    PartialDuplicate { stream: String },
    /// Not ready or lost connection: worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store is out of space: retry once space is freed. Nothing of the failed write was
    /// stored, and the store takes writes again once there is room.
    #[error("the store is out of space: {0}; retry once space is freed")]
    StorageFull(String),
    /// The store was closed or the subscription stopped.
    #[error("store closed")]
    Closed,
    /// A stored file or message that cannot be read.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    #[error("store failed: {0}")]
    Backend(String),
    /// This store does not do that (a feature another backend has).
    #[error("this store does not keep {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Errors that may succeed when tried again unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::StorageFull(_))
    }
}
