//! Retention analytics for a loyalty program, computed from per-member purchase summaries
//! (what a projection of the log keeps per member), not from the log itself.
//!
//! - [`retention`](mod@retention): customers at the start and the end of a period, new customers, the
//!   retention rate `(end - new) / start`, churn, and the revenue at risk from churn
//!   (`customers x average yearly spend x churn rate`); per period (month, quarter, year) and
//!   per enrollment cohort;
//! - [`concentration`]: the share of net spend from the top members, and the curve;
//! - [`rfm`]: recency, frequency and monetary quintile scores per member;
//! - [`model`]: probabilistic models of the customer base, fitted by maximum likelihood:
//!   BG/NBD (purchases to come, the probability a member is still a customer), Gamma-Gamma
//!   (spend per purchase), the lifetime value they give, a calibration/holdout backtest, and
//!   the members probably gone ranked by the value at risk.
//!
//! Pure and synchronous, like the core: the caller passes the summaries and the dates. Money
//! and rates are exact decimals; dates are the program's local calendar dates. The models
//! compute in f64 inside the crate (the workspace denies float arithmetic elsewhere); what
//! they hand out as money, probabilities or counts is a `Decimal`.
#![forbid(unsafe_code)]

pub mod concentration;
pub mod model;
pub mod period;
pub mod retention;
pub mod rfm;
pub mod summary;

pub use concentration::{ConcentrationPoint, concentration_curve, top_share};
pub use model::at_risk::{AtRisk, AtRiskQuery, at_risk};
pub use model::backtest::{Backtest, BacktestBin, backtest};
pub use model::bgnbd::{BgNbdFit, BgNbdFitDecimal, BgNbdParams, Forecast, fit_bg_nbd};
pub use model::clv::clv;
pub use model::gamma_gamma::{
    GammaGammaFit, GammaGammaFitDecimal, GammaGammaParams, fit_gamma_gamma,
};
pub use model::{RepeatSummary, TimeUnit};
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
    /// Too few members, or members without what a model needs (repeat purchases, spend).
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// The maximum-likelihood fit did not give an estimate.
    #[error("the model fit failed: {0}")]
    FitFailed(String),
    /// An argument a model cannot take (a negative parameter, recency after age, a discount
    /// rate of -100% or less).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A result that is not a finite number (an infinite mean spend, a series that did not
    /// converge).
    #[error("numerical failure: {0}")]
    NumericalFailure(String),
}
