//! The retention analytics over the read model: each member's purchase summary comes from
//! their row (the days they bought on, their spend by day), so no answer scans the log.
//!
//! Everything here is CPU work over every member: the public methods run it on a blocking
//! thread, and return the reports the HTTP API and the CLI both show.

use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate};
use loyalty_analytics::{
    AtRisk, AtRiskQuery, BacktestBin, BgNbdFit, BgNbdFitDecimal, CohortRetention,
    ConcentrationPoint, GammaGammaFit, GammaGammaFitDecimal, MemberSummary, Period, PeriodKind,
    RepeatSummary, Retention, RetentionPolicy, RfmScore, TimeUnit,
};
use loyalty_core::MemberId;
use loyalty_core::program::ModelTimeUnit;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::EngineError;

/// Most periods one retention or cohort report covers (120 months: ten years by month).
pub const MAX_PERIODS: usize = 120;
/// Most members one page of a per-member report holds.
pub const MAX_MEMBERS_PAGE: usize = 1000;

/// Retention, churn and revenue at risk for each period from `from` to `to`.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub kind: PeriodKind,
    /// A customer bought in this many days before a day (the program's `active_days`).
    pub active_days: u32,
    pub periods: Vec<Retention>,
}

/// Each enrollment cohort and the share of it that bought in every period after it.
#[derive(Debug, Clone, Serialize)]
pub struct CohortReport {
    pub kind: PeriodKind,
    pub cohorts: Vec<CohortRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CohortRow {
    pub cohort: Period,
    pub members: u64,
    /// Members who bought in the cohort's period and in each one after it.
    pub active: Vec<u64>,
    /// The same as shares of the cohort (4 decimals); empty for an empty cohort.
    pub rates: Vec<Decimal>,
}

/// How concentrated net spend is among the members.
#[derive(Debug, Clone, Serialize)]
pub struct ConcentrationReport {
    pub members: u64,
    pub net_spend: Decimal,
    /// The top 20% of members: the usual rule of thumb.
    pub top_20: Option<ConcentrationPoint>,
    pub curve: Vec<ConcentrationPoint>,
}

/// One page of RFM scores, by member id.
#[derive(Debug, Clone, Serialize)]
pub struct RfmPage {
    pub as_of: NaiveDate,
    /// Members who bought by `as_of` (the ones scored).
    pub scored: u64,
    pub members: Vec<RfmScore>,
    /// Pass it as `after` for the next page.
    pub next_after: Option<String>,
}

/// Periods shown when the caller names none: a year of months, four quarters, three years.
const DEFAULT_PERIODS: [(PeriodKind, u32); 3] = [
    (PeriodKind::Month, 12),
    (PeriodKind::Quarter, 4),
    (PeriodKind::Year, 3),
];

/// Refuses a span of more than [`MAX_PERIODS`] periods (counted from the calendar, before any
/// is built) or one that ends before it starts.
fn check_periods(kind: PeriodKind, from: NaiveDate, to: NaiveDate) -> Result<(), EngineError> {
    // The index of the period containing a day, counted in periods since year 0.
    let index = |d: NaiveDate| {
        (i64::from(d.year()) * 12 + i64::from(d.month0())).div_euclid(i64::from(kind.months()))
    };
    let periods = index(to) - index(from) + 1;
    if to < from || periods > MAX_PERIODS as i64 {
        return Err(EngineError::LimitExceeded {
            what: "periods",
            requested: usize::try_from(periods.max(0)).unwrap_or(usize::MAX),
            limit: MAX_PERIODS,
        });
    }
    Ok(())
}

fn rate(part: u64, whole: u64) -> Option<Decimal> {
    (whole > 0).then(|| (Decimal::from(part) / Decimal::from(whole)).round_dp(4))
}

impl Engine {
    /// Today's date in the program's timezone, by the server's clock.
    pub fn today(&self) -> NaiveDate {
        loyalty_core::calendar::local_date(self.inner.clock.now(), self.inner.program.timezone())
    }

    /// The span a report covers when `from` or `to` are not given: up to today, and back
    /// twelve months, four quarters or three years.
    pub fn period_span(
        &self,
        kind: PeriodKind,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> (NaiveDate, NaiveDate) {
        let to = to.unwrap_or_else(|| self.today());
        let from = from.unwrap_or_else(|| {
            let count = DEFAULT_PERIODS
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(1, |(_, n)| *n);
            to.checked_sub_months(Months::new(kind.months() * (count - 1)))
                .unwrap_or(to)
        });
        (from, to)
    }

    /// Every enrolled member's purchase summary, from the read model.
    pub fn member_summaries(&self) -> Vec<MemberSummary> {
        let tz = self.inner.program.timezone();
        let mut out = Vec::new();
        self.inner.model.for_each(|member, row| {
            if let Some(summary) = row.summary(member, tz) {
                out.push(summary);
            }
        });
        out
    }

    /// Runs `f` over every member's summary on a blocking thread.
    pub(crate) async fn with_summaries<T: Send + 'static>(
        &self,
        f: impl FnOnce(Vec<MemberSummary>) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || f(engine.member_summaries()))
            .await
            .map_err(|e| EngineError::Corrupt(format!("an analytics task failed: {e}")))?
    }

    /// Retention per period of `kind`, for the periods containing `from` to `to` that are
    /// over by today.
    pub async fn retention_report(
        &self,
        kind: PeriodKind,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<RetentionReport, EngineError> {
        check_periods(kind, from, to)?;
        let policy = RetentionPolicy {
            active_days: self.inner.program.analytics.active_days,
        };
        let today = self.today();
        self.with_summaries(move |members| {
            // Only periods that are over: a period's end counts customers at a day to come.
            let periods = Period::range(kind, from, to)
                .into_iter()
                .filter(|p| p.end <= today)
                .map(|p| loyalty_analytics::retention(&members, p, policy))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RetentionReport {
                kind,
                active_days: policy.active_days,
                periods,
            })
        })
        .await
    }

    /// The enrollment cohorts of `kind` from `from` to `to`, and how each kept buying.
    pub async fn cohort_report(
        &self,
        kind: PeriodKind,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<CohortReport, EngineError> {
        check_periods(kind, from, to)?;
        self.with_summaries(move |members| {
            let cohorts = loyalty_analytics::cohort_retention(&members, kind, from, to)
                .into_iter()
                .map(|c: CohortRetention| CohortRow {
                    rates: c
                        .active
                        .iter()
                        .filter_map(|a| rate(*a, c.members))
                        .collect(),
                    cohort: c.cohort,
                    members: c.members,
                    active: c.active,
                })
                .collect();
            Ok(CohortReport { kind, cohorts })
        })
        .await
    }

    /// The share of net spend from the top members.
    pub async fn concentration_report(&self) -> Result<ConcentrationReport, EngineError> {
        self.with_summaries(|members| {
            let curve = loyalty_analytics::concentration_curve(&members);
            Ok(ConcentrationReport {
                members: members.len() as u64,
                net_spend: members.iter().map(|m| m.net_spend).sum(),
                top_20: curve
                    .iter()
                    .find(|p| p.percent == Decimal::from(20))
                    .cloned(),
                curve,
            })
        })
        .await
    }

    /// RFM scores as of today, one page of members (by id, after `after`).
    pub async fn rfm_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<RfmPage, EngineError> {
        if limit == 0 || limit > MAX_MEMBERS_PAGE {
            return Err(EngineError::LimitExceeded {
                what: "limit",
                requested: limit,
                limit: MAX_MEMBERS_PAGE,
            });
        }
        let as_of = self.today();
        self.with_summaries(move |members| {
            // Quintiles are over every member who bought: the page is cut after scoring.
            let mut scores = loyalty_analytics::rfm_scores(&members, as_of);
            let scored = scores.len() as u64;
            scores.sort_unstable_by(|a, b| a.member_id.cmp(&b.member_id));
            let start = after.map_or(0, |a| scores.partition_point(|s| s.member_id <= a));
            let mut page: Vec<RfmScore> = scores.drain(start..).take(limit + 1).collect();
            let more = page.len() > limit;
            page.truncate(limit);
            Ok(RfmPage {
                as_of,
                scored,
                next_after: more
                    .then(|| page.last().map(|s| s.member_id.clone()))
                    .flatten(),
                members: page,
            })
        })
        .await
    }
}

// ---------------------------------------------------------------------------- the models

/// The models fitted on every member's history up to a calibration end: what the model
/// endpoints, the at-risk list, lifetime values and the win-back rule read.
#[derive(Debug, Clone)]
pub struct FittedModels {
    pub calibration_end: NaiveDate,
    pub unit: TimeUnit,
    pub bg_nbd: BgNbdFit,
    /// `None` when too few members bought twice with a positive spend.
    pub gamma_gamma: Option<GammaGammaFit>,
    /// Names the fit in events that used it (a win-back records it): the model, the unit,
    /// the calibration end and a digest of the parameters.
    pub version: String,
    /// Read-model events when it was fitted (a fit is reused until the log grew by 1%).
    events: u64,
    pub fit_millis: u64,
}

/// The latest fit, reused while it describes the log well enough: same calibration end and
/// unit, and the read models applied less than 1% more events since.
#[derive(Debug, Default)]
pub(crate) struct ModelCache {
    latest: parking_lot::Mutex<Option<Arc<FittedModels>>>,
    /// One fit at a time: concurrent requests wait for it instead of fitting again.
    fitting: tokio::sync::Mutex<()>,
}

fn unit_of(unit: ModelTimeUnit) -> TimeUnit {
    match unit {
        ModelTimeUnit::Days => TimeUnit::Days,
        ModelTimeUnit::Weeks => TimeUnit::Weeks,
    }
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Days => "days",
        TimeUnit::Weeks => "weeks",
    }
}

fn fit(
    members: &[MemberSummary],
    calibration_end: NaiveDate,
    unit: TimeUnit,
    events: u64,
) -> Result<FittedModels, EngineError> {
    let started = std::time::Instant::now();
    let summaries: Vec<RepeatSummary> = members
        .iter()
        .filter_map(|m| RepeatSummary::of(m, calibration_end, unit))
        .collect();
    let bg_nbd = loyalty_analytics::fit_bg_nbd(&summaries)?;
    let gamma_gamma = loyalty_analytics::fit_gamma_gamma(&summaries).ok();
    let digest = crate::readmodel::key(&format!(
        "{:?}/{:?}",
        bg_nbd.to_decimal()?,
        gamma_gamma
            .as_ref()
            .map(GammaGammaFit::to_decimal)
            .transpose()?
    ));
    Ok(FittedModels {
        calibration_end,
        unit,
        version: format!(
            "bgnbd-gg/{}/{calibration_end}/{digest:016x}",
            unit_name(unit)
        ),
        bg_nbd,
        gamma_gamma,
        events,
        fit_millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// The fitted models, as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub calibration_end: NaiveDate,
    pub time_unit: TimeUnit,
    pub version: String,
    pub bg_nbd: BgNbdFitDecimal,
    pub gamma_gamma: Option<GammaGammaFitDecimal>,
    /// The program's horizon, in `time_unit`s.
    pub horizon: u32,
    /// Repeat purchase days a new customer makes over the horizon.
    pub expected_purchases_new: Decimal,
    pub fit_millis: u64,
}

/// The models fitted up to one date, tested on what happened after it.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    pub time_unit: TimeUnit,
    pub calibration_end: NaiveDate,
    pub holdout_end: NaiveDate,
    pub bg_nbd: BgNbdFitDecimal,
    pub members: u64,
    pub predicted_total: Decimal,
    pub actual_total: u64,
    pub bins: Vec<BacktestBin>,
}

/// Members probably gone, by the value that leaves with them.
#[derive(Debug, Clone, Serialize)]
pub struct AtRiskReport {
    pub as_of: NaiveDate,
    pub version: String,
    /// The program's `at_risk_below`.
    pub p_alive_below: Decimal,
    pub horizon: u32,
    pub time_unit: TimeUnit,
    pub members: Vec<AtRisk>,
}

/// One member's outlook by the models.
#[derive(Debug, Clone, Serialize)]
pub struct MemberValue {
    pub member_id: String,
    pub as_of: NaiveDate,
    pub version: String,
    pub time_unit: TimeUnit,
    /// Repeat purchase days, and the first to the last purchase day and to today in units
    /// (4 decimals).
    pub frequency: u32,
    pub recency: Decimal,
    pub age: Decimal,
    pub p_alive: Decimal,
    pub horizon: u32,
    pub expected_purchases: Decimal,
    /// `None` without a Gamma-Gamma fit.
    pub expected_average_spend: Option<Decimal>,
    pub lifetime_value: Option<Decimal>,
}

fn units(value: f64) -> Decimal {
    Decimal::from_f64_retain(value).map_or(Decimal::ZERO, |d| d.round_dp(4))
}

impl Engine {
    /// The models fitted on every member's history up to `calibration_end` (yesterday by
    /// default: today is not over), in the program's time unit; a recent fit is reused.
    pub async fn models(
        &self,
        calibration_end: Option<NaiveDate>,
    ) -> Result<Arc<FittedModels>, EngineError> {
        let calibration_end =
            calibration_end.unwrap_or_else(|| self.today().pred_opt().unwrap_or(NaiveDate::MIN));
        let unit = unit_of(self.inner.program.analytics.time_unit);
        let cache = &self.inner.models;
        let fresh = |events: u64| {
            let latest = cache.latest.lock();
            latest
                .as_ref()
                .filter(|m| {
                    m.calibration_end == calibration_end
                        && m.unit == unit
                        && events.saturating_sub(m.events) <= m.events / 100
                })
                .cloned()
        };
        if let Some(models) = fresh(self.inner.model.events_applied()) {
            return Ok(models);
        }
        let _fitting = cache.fitting.lock().await;
        let events = self.inner.model.events_applied();
        if let Some(models) = fresh(events) {
            return Ok(models);
        }
        let models = Arc::new(
            self.with_summaries(move |members| fit(&members, calibration_end, unit, events))
                .await?,
        );
        tracing::info!(version = %models.version, members = models.bg_nbd.members,
            millis = models.fit_millis, "purchase models fitted");
        *cache.latest.lock() = Some(models.clone());
        Ok(models)
    }

    /// The fitted models' parameters.
    pub async fn model_report(
        &self,
        calibration_end: Option<NaiveDate>,
    ) -> Result<ModelReport, EngineError> {
        let models = self.models(calibration_end).await?;
        let horizon = self.inner.program.analytics.horizon;
        let new = models
            .bg_nbd
            .params
            .expected_purchases_new(f64::from(horizon))?;
        Ok(ModelReport {
            calibration_end: models.calibration_end,
            time_unit: models.unit,
            version: models.version.clone(),
            bg_nbd: models.bg_nbd.to_decimal()?,
            gamma_gamma: models
                .gamma_gamma
                .as_ref()
                .map(GammaGammaFit::to_decimal)
                .transpose()?,
            horizon,
            expected_purchases_new: units(new),
            fit_millis: models.fit_millis,
        })
    }

    /// Fits on the history up to `calibration_end` and compares the predicted purchase days up
    /// to `holdout_end` (today by default) with the actual ones.
    pub async fn backtest_report(
        &self,
        calibration_end: NaiveDate,
        holdout_end: Option<NaiveDate>,
    ) -> Result<BacktestReport, EngineError> {
        let holdout_end = holdout_end.unwrap_or_else(|| self.today());
        let unit = unit_of(self.inner.program.analytics.time_unit);
        self.with_summaries(move |members| {
            let b = loyalty_analytics::backtest(&members, calibration_end, holdout_end, unit)?;
            Ok(BacktestReport {
                time_unit: b.unit,
                calibration_end: b.calibration_end,
                holdout_end: b.holdout_end,
                bg_nbd: b.fit.to_decimal()?,
                members: b.members,
                predicted_total: b.predicted_total,
                actual_total: b.actual_total,
                bins: b.bins,
            })
        })
        .await
    }

    /// The members whose probability of being alive is below the program's `at_risk_below`,
    /// by value at risk, at most `limit` of them.
    pub async fn at_risk_report(&self, limit: usize) -> Result<AtRiskReport, EngineError> {
        if limit == 0 || limit > MAX_MEMBERS_PAGE {
            return Err(EngineError::LimitExceeded {
                what: "limit",
                requested: limit,
                limit: MAX_MEMBERS_PAGE,
            });
        }
        let models = self.models(None).await?;
        let gg = models.gamma_gamma.clone().ok_or_else(|| {
            loyalty_analytics::AnalyticsError::NotEnoughData(
                "no spend model: too few members bought twice with a positive spend".into(),
            )
        })?;
        let rules = self.inner.program.analytics.clone();
        let query = AtRiskQuery {
            now: models.calibration_end,
            unit: models.unit,
            horizon: rules.horizon,
            discount_rate_yearly: rules.discount_rate,
            p_alive_below: rules.at_risk_below,
            limit,
        };
        let bg = models.bg_nbd.params;
        let members = self
            .with_summaries(move |members| {
                Ok(loyalty_analytics::at_risk(
                    &members, &bg, &gg.params, &query,
                )?)
            })
            .await?;
        Ok(AtRiskReport {
            as_of: models.calibration_end,
            version: models.version.clone(),
            p_alive_below: rules.at_risk_below,
            horizon: rules.horizon,
            time_unit: models.unit,
            members,
        })
    }

    /// One member's outlook: probability of being alive, expected purchases and lifetime
    /// value over the program's horizon. `None` for an unknown member or one who never bought.
    pub async fn member_value(
        &self,
        member: &MemberId,
    ) -> Result<Option<MemberValue>, EngineError> {
        let tz = self.inner.program.timezone();
        let Some(summary) = self
            .inner
            .model
            .with_row(member, |row| row.summary(member.as_str(), tz))
            .flatten()
        else {
            return Ok(None);
        };
        let models = self.models(None).await?;
        let Some(s) = RepeatSummary::of(&summary, models.calibration_end, models.unit) else {
            return Ok(None);
        };
        let rules = &self.inner.program.analytics;
        let horizon = f64::from(rules.horizon);
        let forecast = models.bg_nbd.params.forecast(&s, horizon)?;
        let (spend, value) = match &models.gamma_gamma {
            Some(gg) => (
                Some(
                    gg.params
                        .expected_average_spend_decimal(s.frequency, s.monetary)?,
                ),
                Some(loyalty_analytics::clv(
                    &models.bg_nbd.params,
                    &gg.params,
                    &s,
                    rules.horizon,
                    rules.discount_rate,
                    models.unit,
                )?),
            ),
            None => (None, None),
        };
        Ok(Some(MemberValue {
            member_id: member.as_str().to_owned(),
            as_of: models.calibration_end,
            version: models.version.clone(),
            time_unit: models.unit,
            frequency: s.frequency,
            recency: units(s.recency),
            age: units(s.age),
            p_alive: forecast.p_alive,
            horizon: rules.horizon,
            expected_purchases: forecast.expected_purchases,
            expected_average_spend: spend,
            lifetime_value: value,
        }))
    }
}
