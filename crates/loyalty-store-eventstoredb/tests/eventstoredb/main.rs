//! The EventStoreDB store, against our wire-compatible test server (and a real one with EVENTSTORE_URL).
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

mod adapter;
mod conformance;
mod foreign_events;
