//! The store's pure helpers and the in-memory store against the conformance suite.
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

mod conformance_memory;
mod contract_helpers;
