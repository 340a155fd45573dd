//! The core's behaviours: decide and evolve, given / when / then, with the program's rules.
//!
//! One test binary for the crate (each file below was its own): the workspace links one
//! binary per crate instead of one per file, which is most of CI's link time.

// First, and with macro_use: its `only!` and `none!` are in textual scope for every file below.
#[macro_use]
mod support;

mod bonuses;
mod calendar;
mod earning;
mod expiry_notices;
mod hot;
mod import;
mod integrity;
mod program;
mod program_version;
mod properties;
mod refunds;
mod schema;
mod spending;
mod tiers_and_account;
mod what_if;
