//! Customer lifetime value over a horizon: BG/NBD's expected purchase days times Gamma-Gamma's
//! expected spend per purchase day, discounted, as `lifetimes`' `customer_lifetime_value`.
//!
//! The horizon `H` (in the unit) is cut into months (a twelfth of 365.25 days; the last one
//! shorter if `H` is not whole months), ending at `e_1 < ... < e_k = H`. Month `i` brings the
//! purchases expected by its end less those by its start, each worth the expected spend, and
//! is discounted from its end at the yearly rate `d`, compounded:
//!
//! ```text
//! CLV = S · Σ_i [E(e_i) - E(e_{i-1})] / (1 + d)^(e_i / units per year),   E(0) = 0
//! ```
//!
//! with `E(t)` [`BgNbdParams::expected_purchases`] over `t` and `S`
//! [`GammaGammaParams::expected_average_spend`]. `lifetimes` steps by months too, with a
//! monthly rate; a yearly rate `d` is the monthly rate `(1 + d)^(1/12) - 1`.
// Statistics use f64 inside this crate only; money that leaves it is rust_decimal.
#![allow(clippy::float_arithmetic)]

use rust_decimal::Decimal;

use super::bgnbd::BgNbdParams;
use super::gamma_gamma::GammaGammaParams;
use super::{RepeatSummary, TimeUnit, rate_to_f64, to_decimal};
use crate::AnalyticsError;

/// The member's lifetime value over the next `horizon` units, discounted at
/// `discount_rate_yearly` (0.10 for 10% a year), rounded to the cent. `bg` must have been
/// fitted, and `summary` built, in `unit`.
pub fn clv(
    bg: &BgNbdParams,
    gg: &GammaGammaParams,
    summary: &RepeatSummary,
    horizon: u32,
    discount_rate_yearly: Decimal,
    unit: TimeUnit,
) -> Result<Decimal, AnalyticsError> {
    let value = Valuation::new(bg, gg, horizon, discount_rate_yearly, unit)?;
    let p_alive = bg.p_alive(summary.frequency, summary.recency, summary.age);
    to_decimal(p_alive * value.if_alive(summary)?, 2, "the lifetime value")
}

/// The checked settings of a valuation, shared by the members valued with them.
#[derive(Debug, Clone)]
pub(crate) struct Valuation<'a> {
    bg: &'a BgNbdParams,
    gg: &'a GammaGammaParams,
    /// The months' ends `e_i` and their discount factors.
    steps: Vec<(f64, f64)>,
}

impl<'a> Valuation<'a> {
    pub(crate) fn new(
        bg: &'a BgNbdParams,
        gg: &'a GammaGammaParams,
        horizon: u32,
        discount_rate_yearly: Decimal,
        unit: TimeUnit,
    ) -> Result<Valuation<'a>, AnalyticsError> {
        bg.check()?;
        gg.check()?;
        let rate = rate_to_f64(discount_rate_yearly, "the discount rate")?;
        if rate <= -1.0 {
            return Err(AnalyticsError::InvalidInput(format!(
                "a discount rate must be above -100%, not {discount_rate_yearly}"
            )));
        }
        let horizon = f64::from(horizon);
        let (month, per_year, ln_1pd) = (unit.per_month(), unit.per_year(), rate.ln_1p());
        let mut steps = Vec::new();
        let mut i = 1.0;
        loop {
            let end = (i * month).min(horizon);
            if end <= 0.0 {
                break;
            }
            steps.push((end, (-ln_1pd * end / per_year).exp()));
            if end >= horizon {
                break;
            }
            i += 1.0;
        }
        Ok(Valuation { bg, gg, steps })
    }

    /// The discounted value over the horizon of the member if alive (the CLV over P(alive)):
    /// what they are worth if they have not gone, and what is lost if they have.
    pub(crate) fn if_alive(&self, summary: &RepeatSummary) -> Result<f64, AnalyticsError> {
        summary.check()?;
        let spend = self
            .gg
            .expected_average_spend(summary.frequency, summary.monetary);
        let mut value = 0.0;
        let mut before = 0.0;
        for &(end, discount) in &self.steps {
            let by_end =
                self.bg
                    .expected_purchases_if_alive(summary.frequency, summary.age, end)?;
            value += (by_end - before) * discount;
            before = by_end;
        }
        Ok(spend * value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::prelude::ToPrimitive;
    use rust_decimal_macros::dec;

    use crate::model::fixtures::{CDNOW_BG as BG, CDNOW_GG as GG};

    fn member(frequency: u32, recency: f64, age: f64, monetary: Decimal) -> RepeatSummary {
        RepeatSummary {
            frequency,
            recency,
            age,
            monetary: Some(monetary),
        }
    }

    #[test]
    fn without_discount_the_clv_is_expected_purchases_times_expected_spend() {
        let s = member(4, 30.0, 38.0, dec!(25));
        // 52 weeks: 12 months of 4.348 weeks less a bit, and a short 13th.
        let clv = clv(&BG, &GG, &s, 52, dec!(0), TimeUnit::Weeks).unwrap();
        let want = BG.expected_purchases(4, 30.0, 38.0, 52.0).unwrap()
            * GG.expected_average_spend(4, Some(dec!(25)));
        assert_eq!(clv, to_decimal(want, 2, "").unwrap());
        assert!(clv > dec!(10), "{clv}");
    }

    #[test]
    fn discounting_month_by_month_matches_a_sum_written_out() {
        // 3 months of days (horizon 91 days, months of 30.4375 days: ends 30.4375, 60.875, 91).
        let s = member(2, 50.0, 200.0, dec!(40));
        let bg = BgNbdParams {
            alpha: 4.414 * 7.0,
            ..BG
        };
        let e = |t: f64| bg.expected_purchases(2, 50.0, 200.0, t).unwrap();
        let spend = GG.expected_average_spend(2, Some(dec!(40)));
        let d = |t: f64| 1.2f64.powf(-t / 365.25);
        let want = spend
            * ((e(30.4375) - e(0.0)) * d(30.4375)
                + (e(60.875) - e(30.4375)) * d(60.875)
                + (e(91.0) - e(60.875)) * d(91.0));
        let got = clv(&bg, &GG, &s, 91, dec!(0.2), TimeUnit::Days).unwrap();
        assert_eq!(got, to_decimal(want, 2, "").unwrap());
        // Discounting lowers the value, and a longer horizon raises it.
        let undiscounted = clv(&bg, &GG, &s, 91, dec!(0), TimeUnit::Days).unwrap();
        let longer = clv(&bg, &GG, &s, 365, dec!(0.2), TimeUnit::Days).unwrap();
        assert!(
            got < undiscounted && got < longer,
            "{got} {undiscounted} {longer}"
        );
    }

    #[test]
    fn a_member_probably_gone_is_worth_little() {
        let active = member(10, 37.0, 38.0, dec!(25));
        let gone = member(10, 5.0, 38.0, dec!(25));
        let a = clv(&BG, &GG, &active, 52, dec!(0.1), TimeUnit::Weeks).unwrap();
        let g = clv(&BG, &GG, &gone, 52, dec!(0.1), TimeUnit::Weeks).unwrap();
        assert!(g.to_f64().unwrap() < a.to_f64().unwrap() / 100.0, "{a} {g}");
        assert_eq!(
            clv(&BG, &GG, &active, 0, dec!(0.1), TimeUnit::Weeks).unwrap(),
            dec!(0)
        );
    }

    #[test]
    fn bad_settings_are_errors() {
        let s = member(1, 1.0, 2.0, dec!(10));
        assert!(matches!(
            clv(&BG, &GG, &s, 52, dec!(-1), TimeUnit::Weeks),
            Err(AnalyticsError::InvalidInput(_))
        ));
        let bad = BgNbdParams { r: -1.0, ..BG };
        assert!(matches!(
            clv(&bad, &GG, &s, 52, dec!(0.1), TimeUnit::Weeks),
            Err(AnalyticsError::InvalidInput(_))
        ));
    }
}
