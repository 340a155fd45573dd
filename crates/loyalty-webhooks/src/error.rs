use loyalty_engine::{EngineError, NewerSchemaEvent};
use loyalty_store::StoreError;

/// What went wrong: the request was refused (the first group, a 4xx), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no webhook endpoint {0}")]
    EndpointNotFound(String),
    #[error("webhook endpoint {0} exists with other settings")]
    EndpointExists(String),
    #[error("invalid endpoint id: {0}")]
    InvalidEndpointId(String),
    #[error("invalid endpoint url: {0}")]
    InvalidUrl(String),
    #[error("the endpoint url points to a private, loopback or link-local address: {0}")]
    TargetNotAllowed(String),
    #[error("at most {limit} webhook endpoints")]
    TooManyEndpoints { limit: usize },
    #[error("invalid signing secret: {0}")]
    InvalidSecret(String),
    #[error("invalid endpoint setting: {0}")]
    InvalidSetting(String),
    #[error("no message {0} in the endpoint's delivery log")]
    MessageNotFound(String),
    #[error("position {requested} is ahead of the log's head {head}")]
    PositionAheadOfLog { requested: String, head: String },
    #[error("at most {limit} redeliveries may wait per endpoint")]
    TooManyRedeliveries { limit: usize },
    #[error("invalid delivery log cursor")]
    InvalidCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A member event a newer release wrote (a schema version this build does not read):
    /// deliveries stop before it until a build that reads it runs.
    #[error("{0}")]
    NewerSchema(NewerSchemaEvent),
    #[error("corrupt webhook data: {0}")]
    Corrupt(String),
}
