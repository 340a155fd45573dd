//! Retention analytics for a loyalty program, computed from per-member purchase summaries
//! (what a projection of the log keeps per member), not from the log itself.
//!
//! - [`retention`]: customers at the start and the end of a period, new customers, the
//!   retention rate `(end - new) / start`, churn, and the revenue at risk from churn
//!   (`customers x average yearly spend x churn rate`); per period (month, quarter, year) and
//!   per enrollment cohort;
//! - [`concentration`]: the share of net spend from the top members, and the curve;
//! - [`rfm`]: recency, frequency and monetary quintile scores per member.
//!
//! Pure and synchronous, like the core: the caller passes the summaries and the dates. Money
//! and rates are exact decimals; dates are the program's local calendar dates.
#![forbid(unsafe_code)]

pub mod concentration;
pub mod period;
pub mod retention;
pub mod rfm;
pub mod summary;

pub use concentration::{ConcentrationPoint, concentration_curve, top_share};
pub use period::{Period, PeriodKind};
pub use retention::{
    CohortRetention, Retention, RetentionPolicy, cohort_retention, retention, revenue_at_risk,
};
pub use rfm::{RfmScore, rfm_scores};
pub use summary::MemberSummary;

/// Why an analysis cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyticsError {
    #[error("the period ends ({end}) before it starts ({start})")]
    EmptyPeriod {
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    },
    #[error("a share must be above 0 and at most 100 percent, not {0}")]
    BadShare(rust_decimal::Decimal),
}
