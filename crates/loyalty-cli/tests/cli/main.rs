//! The `loyalty` binary's commands, run as a user runs them.
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

mod audit;
mod import;
mod liability;
mod offline;
mod operations;
mod privacy;
mod program;
mod read_only;
mod replicas;
mod support;
mod webhooks;
mod what_if;
