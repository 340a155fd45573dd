//! The PostgreSQL store (skipped without LOYALTY_TEST_POSTGRES_URL, a hard failure when it is set).
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

mod chain;
mod common;
mod conformance;
mod ordering;
mod processes;
mod schema;
mod vault;
