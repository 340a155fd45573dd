//! What analysts read: retention and churn per period, enrollment cohorts, the concentration of
//! spend, RFM scores, the fitted purchase models (BG/NBD, Gamma-Gamma), their backtest, the
//! members at risk and one member's outlook. Rates, money and model parameters are decimal
//! strings.
use chrono::NaiveDate;
use loyalty_engine::{
    AtRiskReport as EngineAtRiskReport, BacktestReport as EngineBacktestReport,
    CohortReport as EngineCohortReport, CohortRow as EngineCohortRow,
    ConcentrationReport as EngineConcentrationReport, MemberValue as EngineMemberValue,
    ModelReport as EngineModelReport, RetentionReport as EngineRetentionReport,
    RfmPage as EngineRfmPage,
};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

/// The length of the periods a report is cut into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Month,
    Quarter,
    Year,
}

impl From<loyalty_analytics::PeriodKind> for PeriodKind {
    fn from(k: loyalty_analytics::PeriodKind) -> Self {
        match k {
            loyalty_analytics::PeriodKind::Month => PeriodKind::Month,
            loyalty_analytics::PeriodKind::Quarter => PeriodKind::Quarter,
            loyalty_analytics::PeriodKind::Year => PeriodKind::Year,
        }
    }
}

/// The unit the purchase models count time in (the program's `analytics.time_unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Days,
    Weeks,
}

impl From<loyalty_analytics::TimeUnit> for TimeUnit {
    fn from(u: loyalty_analytics::TimeUnit) -> Self {
        match u {
            loyalty_analytics::TimeUnit::Days => TimeUnit::Days,
            loyalty_analytics::TimeUnit::Weeks => TimeUnit::Weeks,
        }
    }
}

/// A period of the program's calendar: `[start, end)`, from its first day up to, not
/// including, the next period's.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl From<&loyalty_analytics::Period> for Period {
    fn from(p: &loyalty_analytics::Period) -> Self {
        Self {
            start: p.start,
            end: p.end,
        }
    }
}

/// Retention, churn and revenue at risk per period (`GET /v1/analytics/retention`); only
/// periods that are over are listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionReport {
    pub kind: PeriodKind,
    /// A customer bought in this many days before a day (the program's `active_days`).
    pub active_days: u32,
    pub periods: Vec<RetentionPeriod>,
}

impl From<&EngineRetentionReport> for RetentionReport {
    fn from(r: &EngineRetentionReport) -> Self {
        Self {
            kind: PeriodKind::from(r.kind),
            active_days: r.active_days,
            periods: r.periods.iter().map(RetentionPeriod::from).collect(),
        }
    }
}

/// Retention over one period: customers at the start (S) and at the end (E), new customers
/// (N).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionPeriod {
    pub period: Period,
    pub customers_at_start: u64,
    pub customers_at_end: u64,
    /// Customers at the end who were not at the start (`enrolled` + `won_back`).
    pub new_customers: u64,
    pub enrolled: u64,
    pub won_back: u64,
    /// Customers at the start who were still customers at the end.
    pub retained: u64,
    pub churned: u64,
    /// `(E - N) / S` (a decimal string); null without customers at the start.
    #[schema(value_type = Option<crate::schema::Amount>, required = true, examples("0.8125"))]
    pub retention_rate: Option<Decimal>,
    /// `1 - retention_rate` (a decimal string); null without customers at the start.
    #[schema(value_type = Option<crate::schema::Amount>, required = true, examples("0.1875"))]
    pub churn_rate: Option<Decimal>,
    /// What the start's customers spent in the twelve months before it, on average (money, a
    /// decimal string); null without customers at the start.
    #[schema(value_type = Option<crate::schema::Amount>, required = true, examples("312.40"))]
    pub average_yearly_spend: Option<Decimal>,
    /// `S x average yearly spend x churn rate` (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("4200.00"))]
    pub revenue_at_risk: Decimal,
}

impl From<&loyalty_analytics::Retention> for RetentionPeriod {
    fn from(r: &loyalty_analytics::Retention) -> Self {
        Self {
            period: Period::from(&r.period),
            customers_at_start: r.customers_at_start,
            customers_at_end: r.customers_at_end,
            new_customers: r.new_customers,
            enrolled: r.enrolled,
            won_back: r.won_back,
            retained: r.retained,
            churned: r.churned,
            retention_rate: r.retention_rate,
            churn_rate: r.churn_rate,
            average_yearly_spend: r.average_yearly_spend,
            revenue_at_risk: r.revenue_at_risk,
        }
    }
}

/// Enrollment cohorts and the share of each that bought in every period after it (`GET
/// /v1/analytics/cohorts`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CohortReport {
    pub kind: PeriodKind,
    pub cohorts: Vec<CohortRow>,
}

impl From<&EngineCohortReport> for CohortReport {
    fn from(r: &EngineCohortReport) -> Self {
        Self {
            kind: PeriodKind::from(r.kind),
            cohorts: r.cohorts.iter().map(CohortRow::from).collect(),
        }
    }
}

/// One enrollment cohort.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CohortRow {
    /// The period its members enrolled in.
    pub cohort: Period,
    pub members: u64,
    /// Members who bought in the cohort's period and in each one after it.
    pub active: Vec<u64>,
    #[schema(schema_with = super::decimal_strings)]
    pub rates: Vec<Decimal>,
}

impl From<&EngineCohortRow> for CohortRow {
    fn from(c: &EngineCohortRow) -> Self {
        Self {
            cohort: Period::from(&c.cohort),
            members: c.members,
            active: c.active.clone(),
            rates: c.rates.clone(),
        }
    }
}

/// How concentrated net spend is among the members (`GET /v1/analytics/concentration`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConcentrationReport {
    pub members: u64,
    /// Net spend of every member, refunds deducted (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("15230.50"))]
    pub net_spend: Decimal,
    /// The top 20% of members (the usual rule of thumb); null without members.
    #[schema(required = true)]
    pub top_20: Option<ConcentrationPoint>,
    /// The top 1, 5, 10, 20 and 50% of members.
    pub curve: Vec<ConcentrationPoint>,
}

impl From<&EngineConcentrationReport> for ConcentrationReport {
    fn from(r: &EngineConcentrationReport) -> Self {
        Self {
            members: r.members,
            net_spend: r.net_spend,
            top_20: r.top_20.as_ref().map(ConcentrationPoint::from),
            curve: r.curve.iter().map(ConcentrationPoint::from).collect(),
        }
    }
}

/// The top `percent` of members (at least one) bring `share` of the net spend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConcentrationPoint {
    /// Percent of the members, by net spend (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("20"))]
    pub percent: Decimal,
    pub members: u64,
    /// Their net spend (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("9120.00"))]
    pub spend: Decimal,
    /// Between 0 and 1 (a decimal string); null when the total net spend is not positive.
    #[schema(value_type = Option<crate::schema::Amount>, required = true, examples("0.5988"))]
    pub share: Option<Decimal>,
}

impl From<&loyalty_analytics::ConcentrationPoint> for ConcentrationPoint {
    fn from(p: &loyalty_analytics::ConcentrationPoint) -> Self {
        Self {
            percent: p.percent,
            members: p.members,
            spend: p.spend,
            share: p.share,
        }
    }
}

/// A page of RFM scores as of today, by member id (`GET /v1/analytics/rfm`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RfmPage {
    pub as_of: NaiveDate,
    /// Members who bought by `as_of` (the ones scored, over every page).
    pub scored: u64,
    pub members: Vec<RfmScore>,
    /// Pass it as `?after=` for the next page; null on the last page.
    #[schema(value_type = Option<crate::schema::Id>, required = true)]
    pub next_after: Option<String>,
}

impl From<&EngineRfmPage> for RfmPage {
    fn from(p: &EngineRfmPage) -> Self {
        Self {
            as_of: p.as_of,
            scored: p.scored,
            members: p.members.iter().map(RfmScore::from).collect(),
            next_after: p.next_after.clone(),
        }
    }
}

/// A member's recency, frequency and monetary values and their quintile scores (1 to 5, 5 the
/// best) among every member who bought.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RfmScore {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// Days since the last purchase.
    pub recency_days: i64,
    /// Purchase days.
    pub frequency: u64,
    /// Net spend (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("84.20"))]
    pub monetary: Decimal,
    #[schema(minimum = 1, maximum = 5)]
    pub r: u8,
    #[schema(minimum = 1, maximum = 5)]
    pub f: u8,
    #[schema(minimum = 1, maximum = 5)]
    pub m: u8,
}

impl From<&loyalty_analytics::RfmScore> for RfmScore {
    fn from(s: &loyalty_analytics::RfmScore) -> Self {
        Self {
            member_id: s.member_id.clone(),
            recency_days: s.recency_days,
            frequency: s.frequency,
            monetary: s.monetary,
            r: s.r,
            f: s.f,
            m: s.m,
        }
    }
}

/// The purchase models fitted by maximum likelihood on every member's purchase days up to
/// `calibration_end` (`GET /v1/analytics/model`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelReport {
    pub calibration_end: NaiveDate,
    pub time_unit: TimeUnit,
    /// Names the fit (recorded in the events that used it, such as a win-back).
    pub version: String,
    pub bg_nbd: BgNbdFit,
    /// The spend model; null when too few members bought twice with a positive spend.
    #[schema(required = true)]
    pub gamma_gamma: Option<GammaGammaFit>,
    /// The program's horizon, in `time_unit`s.
    pub horizon: u32,
    /// Repeat purchase days a new customer makes over the horizon (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("3.2145"))]
    pub expected_purchases_new: Decimal,
    /// How long the fit took, in milliseconds.
    pub fit_millis: u64,
}

impl From<&EngineModelReport> for ModelReport {
    fn from(r: &EngineModelReport) -> Self {
        Self {
            calibration_end: r.calibration_end,
            time_unit: TimeUnit::from(r.time_unit),
            version: r.version.clone(),
            bg_nbd: BgNbdFit::from(&r.bg_nbd),
            gamma_gamma: r.gamma_gamma.as_ref().map(GammaGammaFit::from),
            horizon: r.horizon,
            expected_purchases_new: r.expected_purchases_new,
            fit_millis: r.fit_millis,
        }
    }
}

/// A BG/NBD fit (purchases to come, the probability a member is still a customer): the
/// parameters to 6 significant digits, the log-likelihood to 2 decimals, all decimal strings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BgNbdFit {
    /// Shape of the purchase rates' gamma distribution.
    #[schema(value_type = crate::schema::Amount, examples("0.242593"))]
    pub r: Decimal,
    /// Rate of the purchase rates' gamma distribution, in the time unit.
    #[schema(value_type = crate::schema::Amount, examples("4.41358"))]
    pub alpha: Decimal,
    /// First shape of the dropout probabilities' beta distribution.
    #[schema(value_type = crate::schema::Amount, examples("0.792923"))]
    pub a: Decimal,
    /// Second shape of the dropout probabilities' beta distribution.
    #[schema(value_type = crate::schema::Amount, examples("2.42595"))]
    pub b: Decimal,
    #[schema(value_type = crate::schema::Amount, examples("-9582.43"))]
    pub log_likelihood: Decimal,
    /// Members fitted on.
    pub members: u64,
}

impl From<&loyalty_analytics::BgNbdFitDecimal> for BgNbdFit {
    fn from(f: &loyalty_analytics::BgNbdFitDecimal) -> Self {
        Self {
            r: f.r,
            alpha: f.alpha,
            a: f.a,
            b: f.b,
            log_likelihood: f.log_likelihood,
            members: f.members,
        }
    }
}

/// A Gamma-Gamma fit (spend per purchase): the parameters to 6 significant digits, the
/// log-likelihood to 2 decimals, all decimal strings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GammaGammaFit {
    /// Shape of the spend per transaction.
    #[schema(value_type = crate::schema::Amount, examples("6.24882"))]
    pub p: Decimal,
    /// Shape of the members' spend rates.
    #[schema(value_type = crate::schema::Amount, examples("3.74464"))]
    pub q: Decimal,
    /// Rate of the members' spend rates, in money.
    #[schema(value_type = crate::schema::Amount, examples("15.0443"))]
    pub gamma: Decimal,
    #[schema(value_type = crate::schema::Amount, examples("-4073.12"))]
    pub log_likelihood: Decimal,
    /// Members fitted on: those with a repeat purchase and a positive mean spend.
    pub members: u64,
}

impl From<&loyalty_analytics::GammaGammaFitDecimal> for GammaGammaFit {
    fn from(f: &loyalty_analytics::GammaGammaFitDecimal) -> Self {
        Self {
            p: f.p,
            q: f.q,
            gamma: f.gamma,
            log_likelihood: f.log_likelihood,
            members: f.members,
        }
    }
}

/// The BG/NBD model fitted up to `calibration_end`, tested on the purchase days up to
/// `holdout_end` (`GET /v1/analytics/backtest`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestReport {
    pub time_unit: TimeUnit,
    pub calibration_end: NaiveDate,
    pub holdout_end: NaiveDate,
    pub bg_nbd: BgNbdFit,
    /// Members who had bought by the calibration end (those the model predicts).
    pub members: u64,
    /// Purchase days predicted in the holdout, summed over the members, to 2 decimals (a
    /// decimal string).
    #[schema(value_type = crate::schema::Amount, examples("412.37"))]
    pub predicted_total: Decimal,
    /// Purchase days they had in the holdout.
    pub actual_total: u64,
    /// By repeat purchase days in the calibration period: 0, 1, ..., 6 and 7 or more.
    pub bins: Vec<BacktestBin>,
}

impl From<&EngineBacktestReport> for BacktestReport {
    fn from(r: &EngineBacktestReport) -> Self {
        Self {
            time_unit: TimeUnit::from(r.time_unit),
            calibration_end: r.calibration_end,
            holdout_end: r.holdout_end,
            bg_nbd: BgNbdFit::from(&r.bg_nbd),
            members: r.members,
            predicted_total: r.predicted_total,
            actual_total: r.actual_total,
            bins: r.bins.iter().map(BacktestBin::from).collect(),
        }
    }
}

/// The members with a given calibration frequency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestBin {
    /// `"0"` to `"6"`, and `"7+"`.
    #[schema(examples("7+"))]
    pub label: String,
    /// The bin's smallest calibration frequency (7 for `"7+"`).
    pub min_frequency: u32,
    pub members: u64,
    /// Mean predicted purchase days in the holdout, to 4 decimals, 0 without members (a
    /// decimal string).
    #[schema(value_type = crate::schema::Amount, examples("1.2345"))]
    pub mean_predicted: Decimal,
    /// Mean actual purchase days in the holdout, to 4 decimals, 0 without members (a decimal
    /// string).
    #[schema(value_type = crate::schema::Amount, examples("1.1875"))]
    pub mean_actual: Decimal,
}

impl From<&loyalty_analytics::BacktestBin> for BacktestBin {
    fn from(b: &loyalty_analytics::BacktestBin) -> Self {
        Self {
            label: b.label.clone(),
            min_frequency: b.min_frequency,
            members: b.members,
            mean_predicted: b.mean_predicted,
            mean_actual: b.mean_actual,
        }
    }
}

/// Members whose probability of being alive is below the program's `at_risk_below`, by value
/// at risk, largest first (`GET /v1/analytics/at-risk`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AtRiskReport {
    /// The models' calibration end: the day the members' histories run to.
    pub as_of: NaiveDate,
    /// The models' version.
    pub version: String,
    /// The program's `at_risk_below` (a decimal string between 0 and 1).
    #[schema(value_type = crate::schema::Amount, examples("0.5"))]
    pub p_alive_below: Decimal,
    /// The horizon values are counted over, in `time_unit`s.
    pub horizon: u32,
    pub time_unit: TimeUnit,
    pub members: Vec<AtRiskMember>,
}

impl From<&EngineAtRiskReport> for AtRiskReport {
    fn from(r: &EngineAtRiskReport) -> Self {
        Self {
            as_of: r.as_of,
            version: r.version.clone(),
            p_alive_below: r.p_alive_below,
            horizon: r.horizon,
            time_unit: TimeUnit::from(r.time_unit),
            members: r.members.iter().map(AtRiskMember::from).collect(),
        }
    }
}

/// A member probably gone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AtRiskMember {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The probability they are still a customer, to 4 decimals (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("0.1834"))]
    pub p_alive: Decimal,
    /// Their expected value over the horizon (their CLV), to the cent (money, a decimal
    /// string).
    #[schema(value_type = crate::schema::Amount, examples("52.10"))]
    pub expected_value: Decimal,
    /// `(1 - P(alive))` times their value over the horizon if alive, to the cent (money, a
    /// decimal string).
    #[schema(value_type = crate::schema::Amount, examples("231.75"))]
    pub value_at_risk: Decimal,
}

impl From<&loyalty_analytics::AtRisk> for AtRiskMember {
    fn from(a: &loyalty_analytics::AtRisk) -> Self {
        Self {
            member_id: a.member_id.clone(),
            p_alive: a.p_alive,
            expected_value: a.expected_value,
            value_at_risk: a.value_at_risk,
        }
    }
}

/// One member's outlook by the models (`GET /v1/analytics/members/{member_id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberValue {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    /// The models' calibration end.
    pub as_of: NaiveDate,
    /// The models' version.
    pub version: String,
    pub time_unit: TimeUnit,
    /// Repeat purchase days.
    pub frequency: u32,
    /// From the first to the last purchase day, in `time_unit`s, to 4 decimals (a decimal
    /// string).
    #[schema(value_type = crate::schema::Amount, examples("30.1429"))]
    pub recency: Decimal,
    /// From the first purchase day to `as_of`, in `time_unit`s, to 4 decimals (a decimal
    /// string).
    #[schema(value_type = crate::schema::Amount, examples("38.4286"))]
    pub age: Decimal,
    /// The probability they are still a customer, to 4 decimals (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("0.8931"))]
    pub p_alive: Decimal,
    /// The program's horizon, in `time_unit`s.
    pub horizon: u32,
    /// Expected purchase days over the horizon, to 4 decimals (a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("6.2077"))]
    pub expected_purchases: Decimal,
    /// Expected spend per purchase (money, a decimal string); null without a spend model.
    #[schema(value_type = Option<crate::schema::Amount>, required = true, examples("18.42"))]
    pub expected_average_spend: Option<Decimal>,
    /// Value over the horizon, discounted (money, a decimal string); null without a spend
    /// model.
    #[schema(value_type = Option<crate::schema::Amount>, required = true, examples("104.87"))]
    pub lifetime_value: Option<Decimal>,
}

impl From<&EngineMemberValue> for MemberValue {
    fn from(v: &EngineMemberValue) -> Self {
        Self {
            member_id: v.member_id.clone(),
            as_of: v.as_of,
            version: v.version.clone(),
            time_unit: TimeUnit::from(v.time_unit),
            frequency: v.frequency,
            recency: v.recency,
            age: v.age,
            p_alive: v.p_alive,
            horizon: v.horizon,
            expected_purchases: v.expected_purchases,
            expected_average_spend: v.expected_average_spend,
            lifetime_value: v.lifetime_value,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use loyalty_analytics::{
        AtRisk, BacktestBin as Bin, BgNbdFitDecimal, ConcentrationPoint as Point,
        GammaGammaFitDecimal, PeriodKind as Kind, TimeUnit as Unit,
    };
    use rust_decimal::Decimal;

    use super::*;
    use crate::wire::testkit::{self, assert_same_json, assert_valid};

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn bg_nbd() -> BgNbdFitDecimal {
        BgNbdFitDecimal {
            r: dec("0.242593"),
            alpha: dec("4.41358"),
            a: dec("0.792923"),
            b: dec("2.42595"),
            log_likelihood: dec("-9582.43"),
            members: 2357,
        }
    }

    fn gamma_gamma() -> GammaGammaFitDecimal {
        GammaGammaFitDecimal {
            p: dec("6.24882"),
            q: dec("3.74464"),
            gamma: dec("15.0443"),
            log_likelihood: dec("-4073.12"),
            members: 946,
        }
    }

    #[tokio::test]
    async fn retention_and_cohort_reports_serialise_as_the_engine_reports_did() {
        let world = testkit::world().await;
        let engine = &world.engine;
        for kind in [Kind::Month, Kind::Quarter, Kind::Year] {
            let (from, to) = engine.period_span(kind, None, None);
            let report = engine.retention_report(kind, from, to).await.unwrap();
            assert!(!report.periods.is_empty());
            let wire = RetentionReport::from(&report);
            assert_same_json(&wire, &report);
            assert_valid::<RetentionReport>(&wire);

            let (from, to) =
                engine.period_span(kind, Some(day(2026, 1, 1)), Some(day(2026, 12, 31)));
            let report = engine.cohort_report(kind, from, to).await.unwrap();
            assert!(report.cohorts.iter().any(|c| !c.rates.is_empty()));
            let wire = CohortReport::from(&report);
            assert_same_json(&wire, &report);
            assert_valid::<CohortReport>(&wire);
        }
    }

    #[test]
    fn retention_with_and_without_customers_serialises_as_the_analytics_did() {
        let period = loyalty_analytics::Period {
            start: day(2026, 1, 1),
            end: day(2026, 2, 1),
        };
        let full = loyalty_analytics::Retention {
            period,
            customers_at_start: 700,
            customers_at_end: 690,
            new_customers: 130,
            enrolled: 100,
            won_back: 30,
            retained: 560,
            churned: 140,
            retention_rate: Some(dec("0.8")),
            churn_rate: Some(dec("0.2")),
            average_yearly_spend: Some(dec("300.00")),
            revenue_at_risk: dec("42000.0000"),
        };
        let empty = loyalty_analytics::Retention {
            customers_at_start: 0,
            retention_rate: None,
            churn_rate: None,
            average_yearly_spend: None,
            revenue_at_risk: Decimal::ZERO,
            ..full.clone()
        };
        let report = EngineRetentionReport {
            kind: Kind::Month,
            active_days: 365,
            periods: vec![full, empty],
        };
        let wire = RetentionReport::from(&report);
        assert_same_json(&wire, &report);
        assert_valid::<RetentionReport>(&wire);
    }

    #[tokio::test]
    async fn concentration_reports_serialise_as_the_engine_reports_did() {
        let world = testkit::world().await;
        let report = world.engine.concentration_report().await.unwrap();
        assert!(report.top_20.is_some());
        let wire = ConcentrationReport::from(&report);
        assert_same_json(&wire, &report);
        assert_valid::<ConcentrationReport>(&wire);

        // Nobody bought: no share, no top 20%.
        let empty = EngineConcentrationReport {
            members: 0,
            net_spend: Decimal::ZERO,
            top_20: None,
            curve: vec![Point {
                percent: dec("1"),
                members: 0,
                spend: Decimal::ZERO,
                share: None,
            }],
        };
        let wire = ConcentrationReport::from(&empty);
        assert_same_json(&wire, &empty);
        assert_valid::<ConcentrationReport>(&wire);
    }

    #[tokio::test]
    async fn rfm_pages_serialise_as_the_engine_pages_did() {
        let world = testkit::world().await;
        let first = world.engine.rfm_page(None, 1).await.unwrap();
        assert!(first.next_after.is_some() && !first.members.is_empty());
        let rest = world
            .engine
            .rfm_page(first.next_after.clone(), 1000)
            .await
            .unwrap();
        assert!(rest.next_after.is_none());
        for page in [&first, &rest] {
            let wire = RfmPage::from(page);
            assert_same_json(&wire, page);
            assert_valid::<RfmPage>(&wire);
        }
    }

    #[test]
    fn model_reports_serialise_as_the_engine_reports_did() {
        for gamma in [Some(gamma_gamma()), None] {
            let report = EngineModelReport {
                calibration_end: day(2026, 3, 1),
                time_unit: Unit::Weeks,
                version: "bgnbd-gg/weeks/2026-03-01/00c0ffee00c0ffee".into(),
                bg_nbd: bg_nbd(),
                gamma_gamma: gamma,
                horizon: 52,
                expected_purchases_new: dec("3.2145"),
                fit_millis: 41,
            };
            let wire = ModelReport::from(&report);
            assert_same_json(&wire, &report);
            assert_valid::<ModelReport>(&wire);
        }
    }

    #[test]
    fn backtest_reports_serialise_as_the_engine_reports_did() {
        let bin = |label: &str, min: u32, members: u64, predicted: &str, actual: &str| Bin {
            label: label.into(),
            min_frequency: min,
            members,
            mean_predicted: dec(predicted),
            mean_actual: dec(actual),
        };
        let report = EngineBacktestReport {
            time_unit: Unit::Days,
            calibration_end: day(2025, 12, 31),
            holdout_end: day(2026, 3, 1),
            bg_nbd: bg_nbd(),
            members: 2357,
            predicted_total: dec("412.37"),
            actual_total: 398,
            bins: vec![
                bin("0", 0, 1411, "0.0812", "0.0750"),
                bin("1", 1, 0, "0", "0"),
                bin("7+", 7, 42, "3.9021", "4.1190"),
            ],
        };
        let wire = BacktestReport::from(&report);
        assert_same_json(&wire, &report);
        assert_valid::<BacktestReport>(&wire);
    }

    #[test]
    fn at_risk_reports_serialise_as_the_engine_reports_did() {
        let report = EngineAtRiskReport {
            as_of: day(2026, 3, 1),
            version: "bgnbd-gg/weeks/2026-03-01/00c0ffee00c0ffee".into(),
            p_alive_below: dec("0.5"),
            horizon: 52,
            time_unit: Unit::Weeks,
            members: vec![
                AtRisk {
                    member_id: "m-17".into(),
                    p_alive: dec("0.1834"),
                    expected_value: dec("52.10"),
                    value_at_risk: dec("231.75"),
                },
                AtRisk {
                    member_id: "m-4".into(),
                    p_alive: dec("0.4999"),
                    expected_value: dec("0.00"),
                    value_at_risk: dec("0.01"),
                },
            ],
        };
        let wire = AtRiskReport::from(&report);
        assert_same_json(&wire, &report);
        assert_valid::<AtRiskReport>(&wire);
    }

    #[test]
    fn member_values_serialise_as_the_engine_values_did() {
        let value = EngineMemberValue {
            member_id: "m-1".into(),
            as_of: day(2026, 3, 1),
            version: "bgnbd-gg/weeks/2026-03-01/00c0ffee00c0ffee".into(),
            time_unit: Unit::Weeks,
            frequency: 4,
            recency: dec("30.1429"),
            age: dec("38.4286"),
            p_alive: dec("0.8931"),
            horizon: 52,
            expected_purchases: dec("6.2077"),
            expected_average_spend: Some(dec("18.42")),
            lifetime_value: Some(dec("104.87")),
        };
        let without_spend_model = EngineMemberValue {
            expected_average_spend: None,
            lifetime_value: None,
            ..value.clone()
        };
        for v in [&value, &without_spend_model] {
            let wire = MemberValue::from(v);
            assert_same_json(&wire, v);
            assert_valid::<MemberValue>(&wire);
        }
    }
}
