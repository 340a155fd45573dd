//! Webhook delivery: the registry, signing, dispatch, and the golden payloads.
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

mod dispatch;
mod golden;
mod registry;
mod signing;
mod support;
