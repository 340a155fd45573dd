//! PostgreSQL's failures as the trait's [`StoreError`]s.
//!
//! - a lost or refused connection, an exhausted pool, a server shutting down or not yet
//!   accepting connections, too many connections, a read-only server (a standby, or a primary
//!   just demoted), a serialization failure, a deadlock, a lock or statement timeout:
//!   [`StoreError::Unavailable`], transient. The transaction was rolled back, or its outcome
//!   is unknown (the connection died while committing), and a retry with the same event ids is
//!   recognised either way;
//! - SQLSTATE 53100 (`disk_full`): [`StoreError::StorageFull`], transient too;
//! - a closed pool: [`StoreError::Closed`];
//! - anything else: [`StoreError::Backend`].
use std::error::Error as _;

use deadpool_postgres::PoolError;
use loyalty_store::StoreError;
use tokio_postgres::error::SqlState;

/// `?` for driver results inside the store: maps the error with [`sql_error`].
pub(crate) trait SqlResult<T> {
    fn sql(self) -> Result<T, StoreError>;
}

impl<T> SqlResult<T> for Result<T, tokio_postgres::Error> {
    fn sql(self) -> Result<T, StoreError> {
        self.map_err(|e| sql_error(&e))
    }
}

impl<T> SqlResult<T> for Result<T, PoolError> {
    fn sql(self) -> Result<T, StoreError> {
        self.map_err(|e| pool_error(&e))
    }
}

/// Whether SQLSTATE `code` says "try again later" rather than "this cannot work".
fn is_transient(code: &SqlState) -> bool {
    let code = code.code();
    // Class 08: connection exception.
    code.starts_with("08")
        || matches!(
            code,
            // admin_shutdown, crash_shutdown, cannot_connect_now
            "57P01" | "57P02" | "57P03"
            // too_many_connections, out_of_memory
            | "53300" | "53200"
            // serialization_failure, deadlock_detected
            | "40001" | "40P01"
            // read_only_sql_transaction: a standby, or a primary demoted by a failover
            | "25006"
            // lock_not_available (lock_timeout), query_canceled (statement_timeout)
            | "55P03" | "57014"
        )
}

pub(crate) fn sql_error(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let text = describe_db(db);
        let code = db.code();
        if *code == SqlState::DISK_FULL {
            return StoreError::StorageFull(text);
        }
        if is_transient(code) {
            return StoreError::Unavailable(text);
        }
        return StoreError::Backend(text);
    }
    let text = describe(e);
    // The driver's own failures: I/O (refused, reset, timed out connections), a connection
    // already closed, its connect timeout. Conversions and protocol surprises are not transient.
    let mut io = false;
    let mut source = e.source();
    while let Some(s) = source {
        io |= s.is::<std::io::Error>();
        source = s.source();
    }
    if e.is_closed() || io || e.to_string().starts_with("timeout") {
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

pub(crate) fn pool_error(e: &PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => sql_error(e),
        PoolError::Closed => StoreError::Closed,
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "timed out getting a PostgreSQL connection from the pool ({kind:?})"
        )),
        PoolError::PostCreateHook(e) => StoreError::Unavailable(e.to_string()),
        PoolError::NoRuntimeSpecified => StoreError::Backend(e.to_string()),
    }
}

/// The server's message with its SQLSTATE, detail and hint.
fn describe_db(db: &tokio_postgres::error::DbError) -> String {
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!(" (hint: {hint})"));
    }
    text
}

/// The driver error and its chain of causes: its own `Display` shows only its kind.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return describe_db(db);
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
