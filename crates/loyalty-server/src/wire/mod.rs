//! The response bodies of the HTTP API: what a handler serialises, with the schema the OpenAPI
//! document states for it (utoipa). The engine's, core's and analytics' types are not the wire
//! format: each shape a client reads is defined here once, built from the engine's value by a
//! `From` impl (or a constructor for the bodies a handler puts together itself), and serialises
//! to exactly the JSON the engine's type gave.
//!
//! Conventions, as the schemas state them:
//! - points are JSON integers (`int64`); counts are non-negative integers;
//! - money, rates and model parameters are decimal strings (`"4.50"`, `"0.8125"`) matching
//!   [`DECIMAL_PATTERN`], never JSON numbers;
//! - instants are RFC 3339 strings (`date-time`), calendar days are `date` strings;
//! - log positions are `"commit/prepare"` strings matching [`POSITION_PATTERN`];
//! - ids are strings matching [`ID_PATTERN`];
//! - a field is always present: an `Option` is written as `null` (required and nullable),
//!   never left out.
//!
//! One file per area: [`outcome`] (the answer to a command), [`members`] (profile, history,
//! rewards), [`audit`] (the log, as-of replays, liability, totals), [`analytics`] (retention,
//! cohorts, concentration, RFM, the purchase models), [`tiers`] (the tier distribution),
//! [`ops`] (health, readiness, the scheduler, imports) and [`webhooks`] (endpoints, delivery
//! status and log, event types).

pub mod analytics;
pub mod audit;
pub mod members;
pub mod ops;
pub mod outcome;
pub mod privacy;
pub mod programs;
mod quote;
pub mod tiers;
pub mod webhooks;
pub use quote::PurchaseQuote;
pub use tiers::{TierCount, TierMonth, TierReport};

pub use analytics::{
    AtRiskMember, AtRiskReport, BacktestBin, BacktestReport, BgNbdFit, CohortReport, CohortRow,
    ConcentrationPoint, ConcentrationReport, GammaGammaFit, MemberValue, ModelReport, Period,
    PeriodKind, RetentionPeriod, RetentionReport, RfmPage, RfmScore, TimeUnit,
};
pub use audit::{
    LiabilityReport, LogEntry, LogPage, MemberAsOf, MemberEventsPage, ProgramTotals, TotalsReport,
};
pub use members::{
    HistoryPage, MemberBalance, MemberProfile, MemberStatus, MemberTier, NextExpiry, NextTier,
    Reward, RewardsList, StatementLine, TierMetric, TierRef,
};
pub use ops::{
    Health, ImportReport, ImportRowError, Readiness, ScheduledFailure, ScheduledReport,
    SchedulerRun,
};
pub use outcome::{CommandOutcome, CommandResponse, LotDraw, LotExpiry, LotSummary};

/// Decimals, positions, ids and currency codes: the shared scalars' patterns (`schema.rs`),
/// which the answers reference by name.
pub use crate::schema::{CURRENCY_PATTERN, DECIMAL_PATTERN, ID_PATTERN, POSITION_PATTERN};

/// The schema of a field that is always `null` in this answer (it is shared with another
/// answer of the same shape that fills it).
fn always_null() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Null)
        .description(Some(
            "Always null in this answer (the field belongs to the other page of the same log).",
        ))
        .build()
}

/// The schema of a list of decimal strings.
fn decimal_strings() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .pattern(Some(DECIMAL_PATTERN)),
        )
        .description(Some(
            "Shares of the cohort (decimal strings, 4 decimals), one per entry of `active`; \
             empty for an empty cohort.",
        ))
        .build()
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod tests;
