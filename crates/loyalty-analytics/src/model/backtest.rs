//! How well BG/NBD predicts: fit on a calibration period, predict each member's purchase days
//! in the holdout period after it, and compare with what they did (`lifetimes`'
//! `calibration_and_holdout_data` and its "calibration purchases vs holdout purchases" plot).
// Statistics use f64 inside this crate only; money that leaves it is rust_decimal.
#![allow(clippy::float_arithmetic)]

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::bgnbd::{BgNbdFit, fit_bg_nbd};
use super::{RepeatSummary, TimeUnit, to_decimal};
use crate::AnalyticsError;
use crate::summary::MemberSummary;

/// A backtest's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    pub unit: TimeUnit,
    pub calibration_end: NaiveDate,
    pub holdout_end: NaiveDate,
    /// The model fitted on the calibration period.
    pub fit: BgNbdFit,
    /// Members who had bought by the calibration end: those the model predicts. (Members
    /// whose first purchase is in the holdout are not customers yet at the calibration end;
    /// the model does not count acquisitions.)
    pub members: u64,
    /// Purchase days predicted in the holdout, summed over the members, to 2 decimal places.
    pub predicted_total: Decimal,
    /// Purchase days they had in the holdout.
    pub actual_total: u64,
    /// By repeat purchase days in the calibration period: 0, 1, ..., 6 and 7 or more.
    pub bins: Vec<BacktestBin>,
}

/// The members with a given calibration frequency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestBin {
    /// "0" to "6", and "7+".
    pub label: String,
    /// The bin's smallest calibration frequency (7 for "7+").
    pub min_frequency: u32,
    pub members: u64,
    /// Mean predicted purchase days in the holdout, to 4 decimal places (0 without members).
    pub mean_predicted: Decimal,
    /// Mean actual purchase days in the holdout, to 4 decimal places (0 without members).
    pub mean_actual: Decimal,
}

/// The last bin holds this many repeat purchase days or more.
const LAST_BIN: u32 = 7;

/// Fits BG/NBD on the purchases up to `calibration_end` and compares its predictions of the
/// purchase days in `(calibration_end, holdout_end]` with the actual ones.
pub fn backtest(
    members: &[MemberSummary],
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    unit: TimeUnit,
) -> Result<Backtest, AnalyticsError> {
    if holdout_end <= calibration_end {
        return Err(AnalyticsError::EmptyPeriod {
            start: calibration_end,
            end: holdout_end,
        });
    }
    let (summaries, actual): (Vec<RepeatSummary>, Vec<u64>) = members
        .iter()
        .filter_map(|m| {
            let summary = RepeatSummary::of(m, calibration_end, unit)?;
            let in_holdout = m.frequency_by(holdout_end) - m.frequency_by(calibration_end);
            Some((summary, in_holdout as u64))
        })
        .unzip();
    let fit = fit_bg_nbd(&summaries)?;
    let horizon = unit.between(calibration_end, holdout_end);
    let bins = (LAST_BIN + 1) as usize;
    let (mut count, mut predicted, mut observed) =
        (vec![0u64; bins], vec![0.0; bins], vec![0u64; bins]);
    for (s, actual) in summaries.iter().zip(&actual) {
        let p = fit
            .params
            .expected_purchases(s.frequency, s.recency, s.age, horizon)?;
        let bin = s.frequency.min(LAST_BIN) as usize;
        count[bin] += 1;
        predicted[bin] += p;
        observed[bin] += actual;
    }
    let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
    let bins = (0..bins)
        .map(|i| {
            Ok(BacktestBin {
                label: if i as u32 == LAST_BIN {
                    format!("{LAST_BIN}+")
                } else {
                    i.to_string()
                },
                min_frequency: i as u32,
                members: count[i],
                mean_predicted: to_decimal(mean(predicted[i], count[i]), 4, "a mean prediction")?,
                mean_actual: to_decimal(mean(observed[i] as f64, count[i]), 4, "a mean")?,
            })
        })
        .collect::<Result<Vec<_>, AnalyticsError>>()?;
    Ok(Backtest {
        unit,
        calibration_end,
        holdout_end,
        members: summaries.len() as u64,
        predicted_total: to_decimal(predicted.iter().sum(), 2, "the predicted total")?,
        actual_total: observed.iter().sum(),
        bins,
        fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bgnbd::BgNbdParams;
    use crate::model::gamma_gamma::GammaGammaParams;
    use crate::model::sim;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rust_decimal::prelude::ToPrimitive;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_backtest_on_simulated_members_predicts_the_holdout_total_within_ten_percent() {
        // Days as the unit: a mean rate r/α of one purchase day every 4 weeks or so among the
        // keen, most members much slower, a third gone after each repeat purchase at first.
        let bg = BgNbdParams {
            r: 0.4,
            alpha: 30.0,
            a: 0.8,
            b: 2.5,
        };
        let gg = GammaGammaParams {
            p: 6.0,
            q: 4.0,
            gamma: 15.0,
        };
        let mut rng = StdRng::seed_from_u64(99);
        // First purchases over 2025's first half; calibration to the end of 2025, holdout the
        // first half of 2026.
        let members = sim::members(
            &bg,
            &gg,
            20_000,
            d("2025-01-01"),
            181,
            d("2026-06-30"),
            &mut rng,
        );
        let result = backtest(&members, d("2025-12-31"), d("2026-06-30"), TimeUnit::Days).unwrap();
        assert_eq!(result.members, 20_000);
        let predicted = result.predicted_total.to_f64().unwrap();
        let actual = result.actual_total as f64;
        // The holdout has several thousand purchase days, so its Poisson noise is about 1-2%;
        // the rest of the 10% is for the estimates' error (the fit's, with 20,000 members, a
        // few percent) and for purchases on the same day merging (rare at these rates).
        assert!(
            (predicted - actual).abs() / actual < 0.10,
            "predicted {predicted}, actual {actual}: {result:?}"
        );
        assert!(actual > 3_000.0, "{actual}");
        assert_eq!(result.bins.len(), 8);
        assert_eq!(result.bins[7].label, "7+");
        let in_bins: u64 = result.bins.iter().map(|b| b.members).sum();
        assert_eq!(in_bins, 20_000);
        // Those who bought more in calibration buy more in the holdout, predicted and actual.
        assert!(result.bins[3].mean_actual > result.bins[0].mean_actual);
        assert!(result.bins[3].mean_predicted > result.bins[0].mean_predicted);
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["unit"], "days");
    }

    #[test]
    fn a_backtest_counts_holdout_purchase_days_of_members_who_bought_in_calibration() {
        let mut members = Vec::new();
        for i in 0..40u32 {
            let mut m = MemberSummary::new(format!("m{i}"), d("2026-01-01"));
            m.record(d("2026-01-02"), Decimal::TEN);
            for k in 0..(i % 5) {
                let day = d("2026-01-10") + chrono::Days::new(u64::from(k * 7 + i % 7));
                m.record(day, Decimal::TEN);
            }
            if i % 3 == 0 {
                m.record(d("2026-03-10"), Decimal::TEN);
                m.record(d("2026-03-10"), Decimal::ONE); // same day: one purchase day
            }
            members.push(m);
        }
        // First bought in the holdout: not predicted, not counted.
        let mut late = MemberSummary::new("late", d("2026-01-01"));
        late.record(d("2026-03-01"), Decimal::TEN);
        members.push(late);
        let result = backtest(&members, d("2026-02-28"), d("2026-04-30"), TimeUnit::Weeks).unwrap();
        assert_eq!(result.members, 40);
        assert_eq!(result.actual_total, 14); // i = 0, 3, ..., 39
        assert_eq!(result.bins[0].members, 8);
        assert!(result.bins[7].members == 0 && result.bins[7].mean_actual == Decimal::ZERO);
        assert!(matches!(
            backtest(&members, d("2026-02-28"), d("2026-02-28"), TimeUnit::Weeks),
            Err(AnalyticsError::EmptyPeriod { .. })
        ));
    }
}
