//! Probabilistic customer-base models, as in the literature and the Python `lifetimes` library:
//!
//! - [`bgnbd`]: BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): how
//!   many repeat purchase days a member will have, and the probability they are still "alive";
//! - [`gamma_gamma`]: Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): their expected
//!   average spend per purchase day;
//! - [`clv`]: the two combined into a discounted customer lifetime value;
//! - [`backtest`]: fit on a calibration period, predict a holdout period, compare;
//! - [`at_risk`]: members who are probably gone, ranked by the value lost with them.
//!
//! The models see a member through a [`RepeatSummary`] (frequency, recency, age, monetary) in a
//! [`TimeUnit`]. Parameters are fitted by maximum likelihood (Nelder-Mead over log-parameters);
//! the data are grouped first, so a fit's cost grows with the distinct summaries, not members.
// Statistics use f64 inside this crate only; money that leaves it is rust_decimal.
#![allow(clippy::float_arithmetic)]

pub mod at_risk;
pub mod backtest;
pub mod bgnbd;
pub mod clv;
pub mod gamma_gamma;
#[cfg(any(test, feature = "simulate"))]
pub mod sim;

/// Parameters the tests share: the published fits to the CDNOW sample (in weeks), BG/NBD in
/// "Counting your customers the easy way", Gamma-Gamma in "RFM and CLV".
#[cfg(test)]
pub(crate) mod fixtures {
    use super::bgnbd::BgNbdParams;
    use super::gamma_gamma::GammaGammaParams;

    pub(crate) const CDNOW_BG: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    pub(crate) const CDNOW_GG: GammaGammaParams = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
}

use std::cell::Cell;
use std::sync::OnceLock;

use argmin::core::{CostFunction, Executor, State};
use argmin::solver::neldermead::NelderMead;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::summary::MemberSummary;

/// The unit the models count time in. Days keep the most detail; weeks match most of the
/// literature's examples (CDNOW). Fitted parameters only make sense in the unit they were
/// fitted in: `alpha` is a time scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Days,
    Weeks,
}

/// Days in an average (Gregorian) year: what a yearly discount rate is spread over.
const DAYS_PER_YEAR: f64 = 365.25;

impl TimeUnit {
    /// Days in one unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }

    /// The time from `from` to `to`, in this unit (negative if `to` is earlier).
    pub fn between(self, from: NaiveDate, to: NaiveDate) -> f64 {
        (to - from).num_days() as f64 / self.days()
    }

    /// Units in an average year.
    pub fn per_year(self) -> f64 {
        DAYS_PER_YEAR / self.days()
    }

    /// Units in an average month (a year's twelfth): the step of the CLV's discounting.
    pub fn per_month(self) -> f64 {
        self.per_year() / 12.0
    }
}

/// What the models know of one member at the end of a calibration period, as in `lifetimes`'
/// `summary_data_from_transaction_data`: time starts at their first purchase day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatSummary {
    /// Repeat purchase days: distinct purchase days up to the calibration end, less the first.
    pub frequency: u32,
    /// From the first to the last purchase day, in the unit (0 when `frequency` is 0).
    pub recency: f64,
    /// From the first purchase day to the calibration end, in the unit ("T").
    pub age: f64,
    /// Mean net spend per repeat purchase day: net spend on the days after the first purchase
    /// day up to the calibration end (refunds included, on the day they were taken), over
    /// `frequency`. `None` when `frequency` is 0 or that mean is not positive: the
    /// Gamma-Gamma model only has positive spends. The first day is left out as in the
    /// literature: it is the day the member was acquired, often unlike the ones that follow.
    pub monetary: Option<Decimal>,
}

impl RepeatSummary {
    /// The member as of `calibration_end`; `None` if they had not bought by then (the models
    /// start counting at the first purchase: such a member is not yet a customer).
    pub fn of(
        member: &MemberSummary,
        calibration_end: NaiveDate,
        unit: TimeUnit,
    ) -> Option<RepeatSummary> {
        let days = &member.purchase_days[..member.frequency_by(calibration_end)];
        let (&first, &last) = (days.first()?, days.last()?);
        let frequency = u32::try_from(days.len() - 1).unwrap_or(u32::MAX);
        let monetary = if frequency == 0 {
            None
        } else {
            let repeat_spend: Decimal = member
                .daily_spend
                .iter()
                .filter(|(d, _)| *d > first && *d <= calibration_end)
                .map(|(_, v)| *v)
                .sum();
            let mean = repeat_spend / Decimal::from(frequency);
            (mean > Decimal::ZERO).then_some(mean)
        };
        Some(RepeatSummary {
            frequency,
            recency: unit.between(first, last),
            age: unit.between(first, calibration_end),
            monetary,
        })
    }

    /// The summary's numbers are ones the models can take: finite, `0 <= recency <= age`,
    /// recency 0 without repeat purchases.
    pub(crate) fn check(&self) -> Result<(), AnalyticsError> {
        let ok = self.recency.is_finite()
            && self.age.is_finite()
            && self.recency >= 0.0
            && self.recency <= self.age
            && (self.frequency > 0 || self.recency == 0.0);
        if ok {
            Ok(())
        } else {
            Err(AnalyticsError::InvalidInput(format!(
                "a repeat summary needs 0 <= recency <= age (recency 0 without repeat \
                 purchases), not frequency {}, recency {}, age {}",
                self.frequency, self.recency, self.age
            )))
        }
    }
}

/// An f64 result as a Decimal rounded to `dp` places, for the API (which carries no f64).
pub(crate) fn to_decimal(value: f64, dp: u32, what: &str) -> Result<Decimal, AnalyticsError> {
    Decimal::from_f64_retain(value)
        .map(|d| d.round_dp(dp))
        .ok_or_else(|| AnalyticsError::NumericalFailure(format!("{what} is {value}")))
}

/// A fitted parameter or statistic as a Decimal with 6 significant digits, for the API.
pub(crate) fn to_decimal_sf(value: f64, what: &str) -> Result<Decimal, AnalyticsError> {
    Decimal::from_f64_retain(value)
        .and_then(|d| d.round_sf(6))
        .ok_or_else(|| AnalyticsError::NumericalFailure(format!("{what} is {value}")))
}

/// A Decimal rate as f64.
pub(crate) fn rate_to_f64(rate: Decimal, what: &str) -> Result<f64, AnalyticsError> {
    rate.to_f64()
        .ok_or_else(|| AnalyticsError::InvalidInput(format!("{what} {rate} is out of range")))
}

/// `ln(e^x + e^y)` without overflow: the larger exponent is factored out.
pub(crate) fn log_add_exp(x: f64, y: f64) -> f64 {
    let (hi, lo) = if x >= y { (x, y) } else { (y, x) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// Items summed per block by [`block_sum`]: big enough that a block's work dwarfs handing it
/// to a thread, small enough that a few hundred thousand cells split evenly.
const BLOCK: usize = 1 << 14;

/// The threads [`block_sum`] uses: the machine's cores (asked once; the answer can come from
/// reading cgroup files).
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `Σ f(item)`, summed per block of [`BLOCK`] items, the blocks spread over the cores, then the
/// blocks' sums added in order. A likelihood over half a million cells is evaluated a few
/// hundred times per fit: this is what makes a fit on a million members take seconds rather
/// than many. The result does not depend on the number of threads (each block is summed in
/// order, and the blocks' sums too), so fits are reproducible from one machine to another.
pub(crate) fn block_sum<T: Sync>(items: &[T], f: impl Fn(&T) -> f64 + Sync) -> f64 {
    let blocks: Vec<&[T]> = items.chunks(BLOCK).collect();
    let sum_block = |block: &[T]| block.iter().map(&f).sum::<f64>();
    let threads = threads().min(blocks.len());
    if threads <= 1 {
        return blocks.iter().map(|b| sum_block(b)).sum();
    }
    let mut sums = vec![0.0; blocks.len()];
    let per_thread = blocks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (out, blocks) in sums.chunks_mut(per_thread).zip(blocks.chunks(per_thread)) {
            let sum_block = &sum_block;
            scope.spawn(move || {
                for (o, b) in out.iter_mut().zip(blocks) {
                    *o = sum_block(b);
                }
            });
        }
    });
    sums.iter().sum()
}

/// Log-parameters beyond this (parameters outside about 2e-9..5e8) are not an estimate but a
/// parameter the data do not pin down running off towards 0 or infinity. (Both of BG/NBD's
/// `a` and `b` growing large together is a legitimate limit, every member having the same
/// dropout probability, and they stop well below this: the likelihood flattens out.)
const LOG_PARAM_LIMIT: f64 = 20.0;

/// Where a minimisation ended.
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    pub log_params: Vec<f64>,
    pub cost: f64,
    pub evaluations: u64,
}

/// A cost over log-parameters, for argmin. Argmin's Nelder-Mead unwraps the costs of its first
/// simplex, so the cost never fails: a non-finite value (a likelihood of 0, an overflow, a
/// parameter out of range) is +infinity, which the simplex simply moves away from.
struct LogParamCost<'a, F> {
    cost: &'a F,
    evaluations: &'a Cell<u64>,
}

impl<F: Fn(&[f64]) -> f64> CostFunction for LogParamCost<'_, F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, log_params: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        self.evaluations.set(self.evaluations.get() + 1);
        if log_params
            .iter()
            .any(|t| !t.is_finite() || t.abs() > LOG_PARAM_LIMIT + 5.0)
        {
            return Ok(f64::INFINITY);
        }
        let value = (self.cost)(log_params);
        Ok(if value.is_nan() { f64::INFINITY } else { value })
    }
}

/// Nelder-Mead runs at most (each restarted from the previous best with a fresh simplex).
const MAX_ROUNDS: usize = 6;
/// Iterations per run: a 4-parameter fit converges in a few hundred.
const MAX_ITERS: u64 = 5_000;
/// A run stops when the standard deviation of the simplex's costs is below this. The costs are
/// mean negative log-likelihoods per member (order 1 to 10), so this is 1e-13 to 1e-12
/// relative: above the rounding noise of a sum over a million members, and tight enough that
/// the parameters settle to about 1e-5 relative, far inside their standard errors.
const SD_TOLERANCE: f64 = 1e-12;

/// Minimises `cost` (a mean negative log-likelihood over log-parameters) from `start`.
///
/// Nelder-Mead can stall when its simplex collapses along a ridge (the BG/NBD's `a` and `b`
/// are correlated); restarting from the best point with a fresh simplex until a run no longer
/// improves is the usual remedy.
pub(crate) fn minimize(
    cost: impl Fn(&[f64]) -> f64,
    start: &[f64],
    model: &str,
) -> Result<Minimum, AnalyticsError> {
    let evaluations = Cell::new(0);
    let problem = || LogParamCost {
        cost: &cost,
        evaluations: &evaluations,
    };
    let failed = |e: argmin::core::Error| AnalyticsError::FitFailed(format!("{model}: {e}"));
    let mut best = Minimum {
        log_params: start.to_vec(),
        cost: problem().cost(&start.to_vec()).map_err(failed)?,
        evaluations: 0,
    };
    if !best.cost.is_finite() {
        return Err(AnalyticsError::FitFailed(format!(
            "{model}: the likelihood is zero or not finite at the starting point"
        )));
    }
    for round in 0..MAX_ROUNDS {
        // A wide first simplex (a factor e on each parameter) to find the basin, then
        // narrower ones to polish.
        let step = if round == 0 { 1.0 } else { 0.1 };
        let mut simplex = vec![best.log_params.clone()];
        for i in 0..start.len() {
            let mut vertex = best.log_params.clone();
            vertex[i] += step;
            simplex.push(vertex);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(SD_TOLERANCE)
            .map_err(failed)?;
        let result = Executor::new(problem(), solver)
            .configure(|state| state.max_iters(MAX_ITERS))
            // No clock in this crate: the timer only feeds argmin's observers, and there are
            // none.
            .timer(false)
            .run()
            .map_err(failed)?;
        let state = result.state();
        let cost = state.get_best_cost();
        let improved = best.cost - cost;
        if let Some(param) = state.get_best_param()
            && cost < best.cost
        {
            best.log_params = param.clone();
            best.cost = cost;
        }
        if improved <= SD_TOLERANCE * 10.0 {
            break;
        }
    }
    if let Some(i) = best
        .log_params
        .iter()
        .position(|t| t.abs() > LOG_PARAM_LIMIT)
    {
        return Err(AnalyticsError::FitFailed(format!(
            "{model}: parameter {i} ran off to {:e}: the data do not pin it down (too few \
             members or repeat purchases, or a calibration period too short)",
            best.log_params[i].exp()
        )));
    }
    best.evaluations = evaluations.get();
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_repeat_summary_counts_a_day_with_several_purchases_once() {
        let mut m = MemberSummary::new("m", d("2026-01-01"));
        m.record(d("2026-01-05"), dec!(10));
        m.record(d("2026-01-05"), dec!(5));
        m.record(d("2026-01-12"), dec!(20));
        m.record(d("2026-01-12"), dec!(4));
        m.record(d("2026-01-19"), dec!(6));
        let s = RepeatSummary::of(&m, d("2026-02-02"), TimeUnit::Days).unwrap();
        assert_eq!(s.frequency, 2);
        assert_eq!(s.recency, 14.0);
        assert_eq!(s.age, 28.0);
        // Repeat days' spend (24 + 6) over 2 repeat days; the first day's 15 is left out.
        assert_eq!(s.monetary, Some(dec!(15)));
        let w = RepeatSummary::of(&m, d("2026-02-02"), TimeUnit::Weeks).unwrap();
        assert_eq!((w.frequency, w.recency, w.age), (2, 2.0, 4.0));
    }

    #[test]
    fn the_calibration_end_cuts_purchases_and_spend_after_it() {
        let mut m = MemberSummary::new("m", d("2026-01-01"));
        m.record(d("2026-01-05"), dec!(10));
        m.record(d("2026-01-08"), dec!(30));
        m.record(d("2026-01-10"), dec!(99));
        m.record(d("2026-01-11"), dec!(-30));
        let s = RepeatSummary::of(&m, d("2026-01-09"), TimeUnit::Days).unwrap();
        assert_eq!((s.frequency, s.recency, s.age), (1, 3.0, 4.0));
        assert_eq!(s.monetary, Some(dec!(30)));
        // The calibration end day itself is in.
        let s = RepeatSummary::of(&m, d("2026-01-10"), TimeUnit::Days).unwrap();
        assert_eq!((s.frequency, s.recency, s.age), (2, 5.0, 5.0));
        assert_eq!(s.monetary, Some(dec!(64.5)));
        // Before the first purchase the member is not a customer yet.
        assert_eq!(RepeatSummary::of(&m, d("2026-01-04"), TimeUnit::Days), None);
        // On the first purchase day: a customer of age 0 with no repeat purchase.
        let s = RepeatSummary::of(&m, d("2026-01-05"), TimeUnit::Days).unwrap();
        assert_eq!(
            (s.frequency, s.recency, s.age, s.monetary),
            (0, 0.0, 0.0, None)
        );
    }

    #[test]
    fn refunds_lower_the_monetary_value_and_a_net_refund_leaves_none() {
        let mut m = MemberSummary::new("m", d("2026-01-01"));
        m.record(d("2026-01-02"), dec!(50));
        m.record(d("2026-01-03"), dec!(20));
        m.record(d("2026-01-05"), dec!(30));
        m.record(d("2026-01-06"), dec!(-10));
        let s = RepeatSummary::of(&m, d("2026-01-31"), TimeUnit::Days).unwrap();
        assert_eq!(s.frequency, 2);
        assert_eq!(s.monetary, Some(dec!(20))); // (20 + 30 - 10) / 2
        // A refund of the first day's purchase, taken later, counts against the repeat days.
        m.record(d("2026-01-07"), dec!(-45));
        let s = RepeatSummary::of(&m, d("2026-01-31"), TimeUnit::Days).unwrap();
        assert_eq!(s.monetary, None); // (40 - 45) / 2 is not positive
        // A refund on the first day nets into the first day, which is left out.
        let mut m = MemberSummary::new("m", d("2026-01-01"));
        m.record(d("2026-01-02"), dec!(50));
        m.record(d("2026-01-02"), dec!(-50));
        m.record(d("2026-01-03"), dec!(20));
        let s = RepeatSummary::of(&m, d("2026-01-31"), TimeUnit::Days).unwrap();
        assert_eq!(s.monetary, Some(dec!(20)));
    }

    #[test]
    fn time_units_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&TimeUnit::Weeks).unwrap(),
            "\"weeks\""
        );
        let unit: TimeUnit = serde_json::from_str("\"days\"").unwrap();
        assert_eq!(unit, TimeUnit::Days);
    }

    #[test]
    fn log_add_exp_does_not_overflow_and_handles_a_zero_term() {
        assert!((log_add_exp(0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_add_exp(-5.0, f64::NEG_INFINITY), -5.0);
    }

    #[test]
    fn the_minimiser_finds_a_known_minimum_in_log_space() {
        // Minimum at log-params (ln 2, ln 0.5).
        let cost = |t: &[f64]| (t[0] - 2f64.ln()).powi(2) + 3.0 * (t[1] - 0.5f64.ln()).powi(2);
        let m = minimize(cost, &[0.0, 0.0], "test").unwrap();
        assert!((m.log_params[0].exp() - 2.0).abs() < 1e-5, "{m:?}");
        assert!((m.log_params[1].exp() - 0.5).abs() < 1e-5, "{m:?}");
    }

    #[test]
    fn the_minimiser_reports_a_parameter_running_off() {
        // Keeps decreasing as the first parameter grows: no maximum-likelihood estimate.
        let cost = |t: &[f64]| (-t[0]).exp() + t[1] * t[1];
        let err = minimize(cost, &[0.0, 0.0], "test").unwrap_err();
        assert!(matches!(err, AnalyticsError::FitFailed(_)), "{err:?}");
    }
}
