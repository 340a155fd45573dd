//! The SQLite store: the conformance suite, crashes, group commit, the WAL's bound, two stores on one file.
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

mod chain;
mod checkpoint;
mod conformance;
mod crash;
mod group_commit;
mod huge_revisions;
mod schema;
mod storage_full;
mod two_stores;
mod vault;
mod wal_bound;
