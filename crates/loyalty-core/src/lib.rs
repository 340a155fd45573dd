//! The loyalty points ledger as pure, synchronous code: the program's rules, the member
//! aggregate (`decide` a command against the state, `evolve` the state with an event), and the
//! stored event schema. No IO, no clock, no randomness: time, ids and rules are arguments.
#![forbid(unsafe_code)]

pub mod calendar;
mod command;
mod decide;
mod earning;
mod error;
mod event;
mod evolve;
mod fingerprint;
mod ids;
mod money;
mod outcome;
mod points;
pub mod program;
pub mod schema;
mod state;
pub mod tiers;

pub use command::*;
pub use decide::decide;
pub use error::{DomainError, ProgramError, SchemaError};
pub use event::*;
pub use evolve::evolve;
pub use ids::*;
pub use money::{Currency, RoundingMode};
pub use outcome::{Decision, LotSummary, Outcome};
pub use points::Points;
pub use program::Program;
pub use state::{
    Balance, Lifetime, LineRecord, Lot, MemberState, MemberStatus, NextExpiry, Processed,
    PurchaseRecord, QualifyingEntry, RedemptionRecord,
};
