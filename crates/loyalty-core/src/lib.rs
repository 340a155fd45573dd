//! The loyalty points ledger as pure, synchronous code: the program's rules, the member
//! aggregate (`decide` a command against the state, `evolve` the state with an event), and the
//! stored event schema. No IO, no clock, no randomness: time, ids and rules are arguments.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use loyalty_core::*;
//!
//! let program = Program::from_toml_str(include_str!("../../../config/program.toml")).unwrap();
//! let member = MemberId::parse("M1").unwrap();
//! let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
//!
//! // One stream per member: decide, append the events, evolve the state with them.
//! let mut state = MemberState::default();
//! let enroll = Command::from(Enroll { member_id: member.clone(), referrer: None, occurred_at: at });
//! // The server's clock: it decides what is pending, spendable and expired.
//! let server = ServerTime::at(at);
//! let decision = decide(&state, &enroll, &program, server).unwrap();
//! for event in &decision.events {
//!     let stored = schema::encode(event); // what the event store keeps
//!     let back = schema::decode(stored.event_type, stored.schema_version, &stored.data).unwrap();
//!     evolve(&mut state, &back);
//! }
//! // The welcome bonus is spendable at once (only purchase points wait for the return window).
//! assert_eq!(state.balance(at).available, Points::new(50));
//! // A retry of the same command is a replay: no new events, the original outcome.
//! let again = decide(&state, &enroll, &program, server).unwrap();
//! assert!(again.replayed && again.events.is_empty());
//! ```
#![forbid(unsafe_code)]

pub mod calendar;
mod command;
mod decide;
mod earning;
mod error;
mod event;
mod evolve;
mod fingerprint;
pub mod fold;
pub mod hot;
mod ids;
mod money;
mod note;
mod outcome;
mod points;
pub mod program;
pub mod schema;
mod state;
pub mod tiers;
pub mod time;
pub mod what_if;

pub use command::*;
pub use decide::{ImportedAward, decide, decide_imported};
pub use error::{DomainError, ProgramError, SchemaError};
pub use event::*;
pub use evolve::evolve;
pub use hot::HotLimits;
pub use ids::*;
pub use money::{Currency, RoundingMode, RoundingScope};
pub use note::{Note, SealedNote};
pub use outcome::{Decision, LotSummary, Outcome};
pub use points::Points;
pub use program::Program;
pub use state::{
    Balance, Lifetime, LineRecord, Lot, MemberState, MemberStatus, NextExpiry, Processed,
    PurchaseRecord, QualifyingEntry, RedemptionRecord, ReferralBonusRecord, ReferralRecord,
};
pub use time::{ServerTime, TimeWindow};
