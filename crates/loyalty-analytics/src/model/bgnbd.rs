//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
//! member buys as a Poisson process of rate `λ`; after each repeat purchase they drop out for
//! good with probability `p`. Across members `λ ~ Gamma(r, alpha)` (shape `r`, rate `alpha`,
//! so `alpha` is in the time unit) and `p ~ Beta(a, b)`.
//!
//! The formulas follow the paper and `lifetimes`' `BetaGeoFitter`, with `x` the frequency,
//! `t_x` the recency and `T` the age of a [`RepeatSummary`].
// Statistics use f64 inside this crate only; money that leaves it is rust_decimal.
#![allow(clippy::float_arithmetic)]

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use super::{RepeatSummary, block_sum, log_add_exp, minimize, to_decimal, to_decimal_sf};
use crate::AnalyticsError;

/// The four BG/NBD parameters, all positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    /// Shape of the purchase rates' gamma distribution.
    pub r: f64,
    /// Rate (inverse scale) of the purchase rates' gamma distribution, in the time unit.
    pub alpha: f64,
    /// The dropout probabilities' beta distribution.
    pub a: f64,
    pub b: f64,
}

/// A maximum-likelihood fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgNbdFit {
    pub params: BgNbdParams,
    /// The total log-likelihood of the members at `params`.
    pub log_likelihood: f64,
    /// Members fitted on.
    pub members: u64,
    /// Distinct (frequency, recency, age) summaries among them: what the fit's cost grows with.
    pub groups: u64,
    /// Likelihood evaluations the optimiser made.
    pub evaluations: u64,
}

/// [`BgNbdFit`]'s numbers as decimals for the API: parameters to 6 significant digits, the
/// log-likelihood (a sum that grows with the members) to 2 decimal places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgNbdFitDecimal {
    pub r: Decimal,
    pub alpha: Decimal,
    pub a: Decimal,
    pub b: Decimal,
    pub log_likelihood: Decimal,
    pub members: u64,
}

/// One member's outlook, as decimals for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forecast {
    /// The probability they are still a customer, to 4 decimal places.
    pub p_alive: Decimal,
    /// Expected purchase days over the horizon, to 4 decimal places.
    pub expected_purchases: Decimal,
}

impl BgNbdFit {
    pub fn to_decimal(&self) -> Result<BgNbdFitDecimal, AnalyticsError> {
        let p = &self.params;
        Ok(BgNbdFitDecimal {
            r: to_decimal_sf(p.r, "r")?,
            alpha: to_decimal_sf(p.alpha, "alpha")?,
            a: to_decimal_sf(p.a, "a")?,
            b: to_decimal_sf(p.b, "b")?,
            log_likelihood: to_decimal(self.log_likelihood, 2, "the log-likelihood")?,
            members: self.members,
        })
    }
}

/// Terms the hypergeometric series may take. It needs about `37 (alpha + T + t) / (alpha + T)`
/// for a horizon `t`; this only runs out for a horizon some 25,000 times longer than
/// `alpha + T`, which no fitted model on real data comes near.
const MAX_SERIES_TERMS: u32 = 1_000_000;
/// The series stops when its tail is bounded below this, relative to the result's parts.
const SERIES_TOLERANCE: f64 = 1e-15;
/// Up to this `a`, the expectation's series is Euler's form; above, the paper's.
const EULER_FORM_MAX_A: f64 = 10.0;
/// The paper's form's partial sums are divided by this when above it, so they cannot overflow.
const RESCALE_ABOVE: f64 = 1e250;

/// A bound on the ratios of a hypergeometric series' later terms: the ratio from term `n` to
/// `n + 1` is `z (1 + (k n + m)/((n+c)(n+1)))`; see [`BgNbdParams::expected_purchases_if_alive`].
#[derive(Debug, Clone, Copy)]
struct RatioBound {
    z: f64,
    k_pos: f64,
    m_pos: f64,
    c: f64,
    /// From here on the bound holds (the ratio is positive and the bound decreasing).
    n_min: f64,
}

impl RatioBound {
    /// `n_positive`: past this the series' terms keep their sign.
    fn new(z: f64, k: f64, m: f64, c: f64, n_positive: f64) -> RatioBound {
        let k_pos = k.max(0.0);
        // (k⁺n + m⁺)/((n+c)(n+1)) decreases for n >= sqrt(c) (only k⁺n's part needs it).
        let n_decreasing = if k_pos > 0.0 { c.max(0.0).sqrt() } else { 0.0 };
        RatioBound {
            z,
            k_pos,
            m_pos: m.max(0.0),
            c,
            n_min: n_decreasing.max(n_positive).max(1.0),
        }
    }

    /// A bound on the sum of the terms after term `n`, whose absolute value is `term`.
    fn tail(&self, n: f64, term: f64) -> Option<f64> {
        if n < self.n_min {
            return None;
        }
        let rho = self.z * (1.0 + (self.k_pos * n + self.m_pos) / ((n + self.c) * (n + 1.0)));
        (rho < 1.0).then(|| term * rho / (1.0 - rho))
    }
}

impl BgNbdParams {
    /// The parameters are positive and finite.
    pub fn check(&self) -> Result<(), AnalyticsError> {
        let all = [self.r, self.alpha, self.a, self.b];
        if all.iter().all(|v| v.is_finite() && *v > 0.0) {
            Ok(())
        } else {
            Err(AnalyticsError::InvalidInput(format!(
                "BG/NBD parameters must be positive, not {self:?}"
            )))
        }
    }

    /// The log-likelihood of one member with `frequency` repeat purchases, the last at
    /// `recency`, observed for `age` (paper eq. 6, in the numerically stable form of
    /// `lifetimes`):
    ///
    /// ```text
    /// ln A1 = lnΓ(r+x) - lnΓ(r) + r ln α
    /// ln A2 = lnΓ(a+b) + lnΓ(b+x) - lnΓ(b) - lnΓ(a+b+x)
    /// ln A3 = -(r+x) ln(α+T)
    /// ln A4 = ln a - ln(b+x-1) - (r+x) ln(α+t_x)          (x > 0 only)
    /// LL = ln A1 + ln A2 + ln(e^{ln A3} + [x>0] e^{ln A4})  (log-sum-exp)
    /// ```
    pub fn log_likelihood(&self, frequency: u32, recency: f64, age: f64) -> f64 {
        let x = f64::from(frequency);
        let Self { r, alpha, a, b } = *self;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + age).ln();
        if frequency == 0 {
            return a1 + a2 + a3;
        }
        let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + recency).ln();
        a1 + a2 + log_add_exp(a3, a4)
    }

    /// `ln` of the odds that the member dropped out after their last purchase rather than is
    /// still alive; `-inf` without a repeat purchase (dropping out only follows one).
    fn log_dropout_odds(&self, frequency: u32, recency: f64, age: f64) -> f64 {
        if frequency == 0 {
            return f64::NEG_INFINITY;
        }
        let x = f64::from(frequency);
        let Self { r, alpha, a, b } = *self;
        (a / (b + x - 1.0)).ln() + (r + x) * ((alpha + age).ln() - (alpha + recency).ln())
    }

    /// The probability the member is still alive at `age` (paper eq. 11, as `lifetimes`'
    /// `conditional_probability_alive`): `1 / (1 + [x>0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x))`;
    /// 1 without a repeat purchase.
    pub fn p_alive(&self, frequency: u32, recency: f64, age: f64) -> f64 {
        // 1 / (1 + e^odds): e^odds overflowing to infinity gives 0, as it should.
        1.0 / (1.0 + self.log_dropout_odds(frequency, recency, age).exp())
    }

    /// Expected purchase days in the next `horizon`, given the member's history (paper eq. 10,
    /// `lifetimes`' `conditional_expected_number_of_purchases_up_to_time`):
    /// `P(alive) · E[purchases in horizon | alive]`; see [`Self::expected_purchases_if_alive`].
    pub fn expected_purchases(
        &self,
        frequency: u32,
        recency: f64,
        age: f64,
        horizon: f64,
    ) -> Result<f64, AnalyticsError> {
        Ok(self.p_alive(frequency, recency, age)
            * self.expected_purchases_if_alive(frequency, age, horizon)?)
    }

    /// Expected repeat purchase days of a new customer in their first `horizon` after the first
    /// purchase (paper eq. 7, `lifetimes`' `expected_number_of_purchases_up_to_time`):
    /// `(a+b-1)/(a-1) · [1 - (α/(α+t))^r ₂F₁(r, b; a+b-1; t/(α+t))]`, which is the conditional
    /// expectation of a member with no history (x = 0, T = 0).
    pub fn expected_purchases_new(&self, horizon: f64) -> Result<f64, AnalyticsError> {
        self.expected_purchases_if_alive(0, 0.0, horizon)
    }

    /// [`Self::p_alive`] and [`Self::expected_purchases`] of a summary, as decimals.
    pub fn forecast(
        &self,
        summary: &RepeatSummary,
        horizon: f64,
    ) -> Result<Forecast, AnalyticsError> {
        let (x, t_x, age) = (summary.frequency, summary.recency, summary.age);
        Ok(Forecast {
            p_alive: to_decimal(self.p_alive(x, t_x, age), 4, "P(alive)")?,
            expected_purchases: to_decimal(
                self.expected_purchases(x, t_x, age, horizon)?,
                4,
                "the expected purchases",
            )?,
        })
    }

    /// Expected purchase days in the next `t = horizon` of a member alive at age `T` after `x`
    /// repeat purchases: the paper's eq. 10 without its P(alive) factor,
    ///
    /// ```text
    /// Q = c/(a-1) · [1 - (1-z)^(r+x) ₂F₁(r+x, b+x; c; z)],   c = a+b+x-1, z = t/(α+T+t)
    /// ```
    ///
    /// Computed as written it overflows (₂F₁ grows like (1-z)^-(r+x-a+1), huge for a frequent
    /// buyer), divides by zero at `a = 1` (and at `c = 0`), and cancels near both. Two series
    /// avoid that, each where it is accurate and quick (both checked against 40-digit values
    /// over a grid of `a` from 0.05 to 10⁷, `x` to 500 and `z` to 0.9999; see the tests):
    ///
    /// - `a <= 10`: Euler's transformation ₂F₁(A, B; c; z) = (1-z)^(c-A-B) ₂F₁(c-A, c-B; c; z)
    ///   combines the powers to `(1-z)^(a-1)` and takes `x` out of the function's upper
    ///   parameters. Each series term of the new ₂F₁ beyond the first holds a factor `(a-1)`,
    ///   and `c` cancels against the first factor of its `(c)_n`, so
    ///
    ///   ```text
    ///   Q = -c · expm1((a-1) L)/(a-1) - (1-z)^(a-1) · Σ_{n≥1} v_n,        L = ln(1-z)
    ///   v_1 = (a+b-1-r) z,   v_{n+1} = v_n · (a+b-1-r+n)(a-1+n) z / ((c+n)(n+1))
    ///   ```
    ///
    ///   finite at `a = 1` (the first part tends to `-c L`) and for any `c > -1`. For a large
    ///   `a` and `z` near 1 its terms grow like `(a z)^n / n!` before they fall, and the two
    ///   parts cancel: hence the other form there.
    /// - `a > 10`: the paper's form, `1 - (1-z)^(r+x) ₂F₁` being one less the mean of
    ///   `(1 + p t/(α+T))^-(r+x)` over `p ~ Beta(a-1, b+x)`, in (0, 1); all its terms are
    ///   positive (`c > 9`), summed with a running scale so they cannot overflow, and
    ///   `c/(a-1)` is below `1 + (b+x)/9`.
    ///
    /// Either series' term ratio tends to `z < 1`. It stops at the first term `n` whose tail is
    /// bounded below 1e-15 (`SERIES_TOLERANCE`) relative to the result: with the ratio written
    /// `z (1 + (k n + m)/((n+c)(n+1)))`, every later ratio is at most
    /// `ρ = z (1 + (k⁺n + m⁺)/((n+c)(n+1)))` (decreasing in `n`, once `n >= sqrt(c)` if
    /// `k > 0`), so if `ρ < 1` the tail is at most `|v_n| ρ/(1-ρ)`.
    pub fn expected_purchases_if_alive(
        &self,
        frequency: u32,
        age: f64,
        horizon: f64,
    ) -> Result<f64, AnalyticsError> {
        if horizon.is_nan() || horizon <= 0.0 {
            return Ok(0.0);
        }
        let x = f64::from(frequency);
        let z = horizon / (self.alpha + age + horizon);
        // ln(1-z) = -ln(1 + t/(α+T)): accurate when t is small.
        let ln_1mz = -(horizon / (self.alpha + age)).ln_1p();
        let q = if self.a <= EULER_FORM_MAX_A {
            self.if_alive_euler(x, z, ln_1mz)
        } else {
            self.if_alive_direct(x, z, ln_1mz)
        };
        q.ok_or_else(|| {
            AnalyticsError::NumericalFailure(format!(
                "the hypergeometric series for {frequency} purchases at age {age} over \
                 {horizon} did not converge in {MAX_SERIES_TERMS} terms with {self:?}"
            ))
        })
    }

    /// `Q` by Euler's transformation (see [`Self::expected_purchases_if_alive`]).
    fn if_alive_euler(&self, x: f64, z: f64, ln_1mz: f64) -> Option<f64> {
        let Self { r, a, b, .. } = *self;
        let c = a + b + x - 1.0;
        let upper = a + b - 1.0 - r;
        let expm1_over = if a == 1.0 {
            ln_1mz
        } else {
            ((a - 1.0) * ln_1mz).exp_m1() / (a - 1.0)
        };
        let first = -c * expm1_over;
        let weight = ((a - 1.0) * ln_1mz).exp(); // (1-z)^(a-1)
        let bound = RatioBound::new(z, a - 2.0 - r - x, upper * (a - 1.0) - c, c, -upper);
        let mut term = upper * z;
        let mut sum = term;
        let mut n = 1.0;
        for _ in 0..MAX_SERIES_TERMS {
            if term == 0.0 {
                return Some(first - weight * sum);
            }
            if let Some(tail) = bound.tail(n, term.abs())
                && weight * tail <= SERIES_TOLERANCE * (first.abs() + weight * sum.abs())
            {
                return Some(first - weight * sum);
            }
            term *= (upper + n) * (a - 1.0 + n) * z / ((c + n) * (n + 1.0));
            sum += term;
            n += 1.0;
        }
        None
    }

    /// `Q` by the paper's form, for `a > 10` (see [`Self::expected_purchases_if_alive`]).
    fn if_alive_direct(&self, x: f64, z: f64, ln_1mz: f64) -> Option<f64> {
        let Self { r, a, b, .. } = *self;
        let (s, bx, c) = (r + x, b + x, a + b + x - 1.0);
        // ln((1-z)^(r+x)), plus the log of the scale the terms are kept in.
        let mut ln_weight = s * ln_1mz;
        let bound = RatioBound::new(z, r + x - a, s * bx - c, c, 0.0);
        let (mut term, mut sum, mut n) = (1.0f64, 1.0f64, 0.0);
        let result = |sum: f64, ln_weight: f64| c / (a - 1.0) * -(ln_weight + sum.ln()).exp_m1();
        for _ in 0..MAX_SERIES_TERMS {
            term *= (s + n) * (bx + n) * z / ((c + n) * (n + 1.0));
            sum += term;
            n += 1.0;
            if sum > RESCALE_ABOVE {
                sum /= RESCALE_ABOVE;
                term /= RESCALE_ABOVE;
                ln_weight += RESCALE_ABOVE.ln();
            }
            if term == 0.0 {
                return Some(result(sum, ln_weight));
            }
            // The tail must be small next to 1 - (1-z)^(r+x) ₂F₁ (which is in (0, 1) and may
            // be small, for a short horizon): bounded below by the partial sums'.
            if let Some(tail) = bound.tail(n, term) {
                let tail = (ln_weight + tail.ln()).exp();
                let rest = -(ln_weight + sum.ln()).exp_m1() - tail;
                if tail <= SERIES_TOLERANCE * rest {
                    return Some(result(sum, ln_weight));
                }
            }
        }
        None
    }
}

/// The members' summaries grouped: members with the same (frequency, recency, age) have the
/// same likelihood, so each distinct triple is computed once and weighted by its count. The
/// likelihood's pieces are further shared: its gamma functions depend on the frequency only,
/// and its logarithms `ln(α + t)` on the recency or the age only, of which there are few
/// distinct values (with days as the unit, about as many as days in the data).
#[derive(Debug, Clone)]
struct Grouped {
    /// Distinct frequencies.
    frequencies: Vec<f64>,
    /// Members per distinct frequency.
    frequency_counts: Vec<f64>,
    /// Distinct recencies and ages.
    times: Vec<f64>,
    cells: Vec<Cell>,
    members: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    /// Index into `frequencies`.
    frequency: u32,
    /// Indexes into `times`.
    recency: u32,
    age: u32,
    /// Members (a whole number, as f64 for the sums).
    count: f64,
}

/// Index of `value` in `values`, added if new.
fn intern(values: &mut Vec<f64>, index: &mut HashMap<u64, u32>, value: f64) -> u32 {
    *index.entry(value.to_bits()).or_insert_with(|| {
        values.push(value);
        u32::try_from(values.len() - 1).unwrap_or(u32::MAX)
    })
}

impl Grouped {
    fn new(summaries: &[RepeatSummary]) -> Result<Grouped, AnalyticsError> {
        // Keyed on the exact bits of recency and age: identical triples share a cell. -0.0 is
        // not a concern: `check` rejects negatives and days arithmetic never yields -0.0.
        let mut cells: HashMap<(u32, u64, u64), u64> = HashMap::new();
        for s in summaries {
            s.check()?;
            *cells
                .entry((s.frequency, s.recency.to_bits(), s.age.to_bits()))
                .or_default() += 1;
        }
        Ok(Grouped::from_counts(cells))
    }

    /// Each member its own cell: what grouping must not change (tests only).
    #[cfg(test)]
    fn ungrouped(summaries: &[RepeatSummary]) -> Grouped {
        let mut g = Grouped::from_counts(HashMap::new());
        let (mut xs, mut ts) = (HashMap::new(), HashMap::new());
        for s in summaries {
            let frequency = intern(&mut g.frequencies, &mut xs, f64::from(s.frequency));
            if g.frequency_counts.len() < g.frequencies.len() {
                g.frequency_counts.push(0.0);
            }
            g.frequency_counts[frequency as usize] += 1.0;
            g.cells.push(Cell {
                frequency,
                recency: intern(&mut g.times, &mut ts, s.recency),
                age: intern(&mut g.times, &mut ts, s.age),
                count: 1.0,
            });
        }
        g.members = summaries.len() as u64;
        g
    }

    fn from_counts(counts: HashMap<(u32, u64, u64), u64>) -> Grouped {
        let mut g = Grouped {
            frequencies: Vec::new(),
            frequency_counts: Vec::new(),
            times: Vec::new(),
            cells: Vec::with_capacity(counts.len()),
            members: 0,
        };
        // Sorted, so that the sums run in the same order on every run (a HashMap's order is
        // random) and a fit is reproducible to the last bit.
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_unstable();
        let (mut xs, mut ts) = (HashMap::new(), HashMap::new());
        for ((x, recency, age), count) in counts {
            let frequency = intern(&mut g.frequencies, &mut xs, f64::from(x));
            if g.frequency_counts.len() < g.frequencies.len() {
                g.frequency_counts.push(0.0);
            }
            g.frequency_counts[frequency as usize] += count as f64;
            g.cells.push(Cell {
                frequency,
                recency: intern(&mut g.times, &mut ts, f64::from_bits(recency)),
                age: intern(&mut g.times, &mut ts, f64::from_bits(age)),
                count: count as f64,
            });
            g.members += count;
        }
        g
    }

    /// The total log-likelihood at `params`: [`BgNbdParams::log_likelihood`] summed over the
    /// members, with the shared pieces computed once.
    fn log_likelihood(&self, params: &BgNbdParams) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *params;
        let (ln_gamma_r, ln_gamma_b, ln_gamma_ab) = (ln_gamma(r), ln_gamma(b), ln_gamma(a + b));
        let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
        let mut total = 0.0;
        // Per frequency: r + x, and ln a - ln(b+x-1) of ln A4. ln A1 + ln A2 is summed here,
        // weighted by the members with that frequency, rather than per cell.
        let mut per_x = Vec::with_capacity(self.frequencies.len());
        for (&x, &count) in self.frequencies.iter().zip(&self.frequency_counts) {
            let a1 = ln_gamma(r + x) - ln_gamma_r + r * ln_alpha;
            let a2 = ln_gamma_ab + ln_gamma(b + x) - ln_gamma_b - ln_gamma(a + b + x);
            total += count * (a1 + a2);
            let a4_const = if x > 0.0 {
                ln_a - (b + x - 1.0).ln()
            } else {
                f64::NEG_INFINITY
            };
            per_x.push((r + x, a4_const));
        }
        let ln_alpha_t: Vec<f64> = self.times.iter().map(|t| (alpha + t).ln()).collect();
        total
            + block_sum(&self.cells, |cell| {
                let (r_x, a4_const) = per_x[cell.frequency as usize];
                let a3 = -r_x * ln_alpha_t[cell.age as usize];
                let ll = if a4_const == f64::NEG_INFINITY {
                    a3
                } else {
                    log_add_exp(a3, a4_const - r_x * ln_alpha_t[cell.recency as usize])
                };
                cell.count * ll
            })
    }

    fn fit(&self) -> Result<BgNbdFit, AnalyticsError> {
        if self.members < 4 {
            return Err(AnalyticsError::NotEnoughData(format!(
                "the BG/NBD model has 4 parameters and there are {} customers",
                self.members
            )));
        }
        if self.frequencies.iter().all(|x| *x == 0.0) {
            return Err(AnalyticsError::NotEnoughData(
                "no customer made a repeat purchase: the BG/NBD model needs some".into(),
            ));
        }
        let members = self.members as f64;
        let params = |t: &[f64]| BgNbdParams {
            r: t[0].exp(),
            alpha: t[1].exp(),
            a: t[2].exp(),
            b: t[3].exp(),
        };
        // The mean negative log-likelihood per member: its scale does not depend on the number
        // of members, so one tolerance suits every fit.
        let cost = |t: &[f64]| -self.log_likelihood(&params(t)) / members;
        // lifetimes starts from all parameters 1. We start α (a time scale) from the data's
        // pooled repeat rate instead, r/α = (Σ x)/(Σ T): with days as the unit α is some tens,
        // and starting there saves the simplex a long walk on a large data set.
        let (mut purchases, mut time) = (0.0, 0.0);
        for cell in &self.cells {
            purchases += cell.count * self.frequencies[cell.frequency as usize];
            time += cell.count * self.times[cell.age as usize];
        }
        let alpha = (time / purchases).clamp(1e-3, 1e6);
        let found = minimize(cost, &[0.0, alpha.ln(), 0.0, 0.0], "BG/NBD")?;
        let params = params(&found.log_params);
        Ok(BgNbdFit {
            params,
            log_likelihood: self.log_likelihood(&params),
            members: self.members,
            groups: self.cells.len() as u64,
            evaluations: found.evaluations,
        })
    }
}

/// Fits the BG/NBD model to the members' summaries by maximum likelihood.
pub fn fit_bg_nbd(summaries: &[RepeatSummary]) -> Result<BgNbdFit, AnalyticsError> {
    Grouped::new(summaries)?.fit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sim;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const ONES: BgNbdParams = BgNbdParams {
        r: 1.0,
        alpha: 1.0,
        a: 1.0,
        b: 1.0,
    };

    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn the_log_likelihood_matches_hand_computed_small_cases() {
        // x = 0, t_x = 0, T = 1, all parameters 1: ln A1 = lnΓ(1) - lnΓ(1) + 1·ln 1 = 0,
        // ln A2 = lnΓ(2) + lnΓ(1) - lnΓ(1) - lnΓ(2) = 0, ln A3 = -(1+0) ln(1+1) = -ln 2.
        close(ONES.log_likelihood(0, 0.0, 1.0), -(2f64.ln()), 1e-12);
        // x = 1, t_x = 1, T = 2, all parameters 1: the likelihood (paper eq. 6) is
        // B(a,b+x)/B(a,b) Γ(r+x)α^r/(Γ(r)(α+T)^(r+x)) + B(a+1,b+x-1)/B(a,b) Γ(r+x)α^r/(Γ(r)(α+t_x)^(r+x))
        // = (1/2)(1/9) + (1/2)(1/4) = 1/18 + 1/8 = 13/72.
        close(
            ONES.log_likelihood(1, 1.0, 2.0),
            (13.0f64 / 72.0).ln(),
            1e-12,
        );
        // x = 2, t_x = 3, T = 5, r = 2, α = 3, a = 2, b = 4: B(2,6)/B(2,4) = (1/42)/(1/20) = 10/21,
        // Γ(4)·3²/(Γ(2)·8⁴) = 54/4096; B(3,5)/B(2,4) = (1/105)/(1/20) = 4/21, 54/6⁴ = 54/1296.
        let p = BgNbdParams {
            r: 2.0,
            alpha: 3.0,
            a: 2.0,
            b: 4.0,
        };
        let want: f64 = 10.0 / 21.0 * 54.0 / 4096.0 + 4.0 / 21.0 * 54.0 / 1296.0;
        close(p.log_likelihood(2, 3.0, 5.0), want.ln(), 1e-12);
    }

    #[test]
    fn p_alive_matches_hand_computed_values() {
        // No repeat purchase: alive (dropping out only follows a repeat purchase).
        assert_eq!(ONES.p_alive(0, 0.0, 10.0), 1.0);
        // x = 1, t_x = 1, T = 2: 1 / (1 + 1/(1+1-1) · (3/2)²) = 4/13, which is also the first
        // of the two likelihood terms above over their sum: (1/18) / (13/72).
        close(ONES.p_alive(1, 1.0, 2.0), 4.0 / 13.0, 1e-14);
        // Bought at the very end of the period: 1 / (1 + a/(b+x-1)) = b+x-1 / (a+b+x-1).
        close(ONES.p_alive(3, 7.0, 7.0), 3.0 / 4.0, 1e-14);
        // A frequent buyer long silent is gone, without overflow.
        assert_eq!(ONES.p_alive(500, 1.0, 10_000.0), 0.0);
    }

    #[test]
    fn expected_purchases_of_a_new_customer_match_a_closed_form() {
        // r = 1, α = 1, a = 2, b = 1, t = 1: λ ~ Exp(1), p ~ Beta(2,1) (density 2p), and
        // E = E[(1 - e^{-λpt})/p] = ∫ 2 (1 - 1/(1+p)) dp = 2(1 - ln 2); also the paper's
        // (a+b-1)/(a-1) (1 - (α/(α+t))^r ₂F₁(1,1;2;1/2)) with ₂F₁(1,1;2;z) = -ln(1-z)/z.
        let p = BgNbdParams {
            r: 1.0,
            alpha: 1.0,
            a: 2.0,
            b: 1.0,
        };
        close(
            p.expected_purchases_new(1.0).unwrap(),
            2.0 * (1.0 - 2f64.ln()),
            1e-13,
        );
        // Over t = 3: 2 ∫ (1 - 1/(1+3p)) dp = 2 (1 - ln(4)/3).
        close(
            p.expected_purchases_new(3.0).unwrap(),
            2.0 * (1.0 - 4f64.ln() / 3.0),
            1e-13,
        );
        assert_eq!(p.expected_purchases_new(0.0).unwrap(), 0.0);
    }

    #[test]
    fn conditional_expected_purchases_match_a_closed_form() {
        // r = 1, α = 1, a = 2, b = 1; x = 1, t_x = 1, T = 2; t = 3. Given alive,
        // λ ~ Gamma(2, 3), p ~ Beta(2, 2) (density 6p(1-p)) and
        // E[purchases | alive] = E[(1 - (1 + p t/(α+T))^-(r+x)) / p] = 6 ∫(1-p)(1-(1+p)^-2) dp
        // = 6 (ln 2 - 1/2); P(alive) = 1/(1 + 2/1 · (3/2)²) = 2/11.
        let p = BgNbdParams {
            r: 1.0,
            alpha: 1.0,
            a: 2.0,
            b: 1.0,
        };
        let if_alive = 6.0 * (2f64.ln() - 0.5);
        close(
            p.expected_purchases_if_alive(1, 2.0, 3.0).unwrap(),
            if_alive,
            1e-13,
        );
        close(p.p_alive(1, 1.0, 2.0), 2.0 / 11.0, 1e-14);
        close(
            p.expected_purchases(1, 1.0, 2.0, 3.0).unwrap(),
            if_alive * 2.0 / 11.0,
            1e-13,
        );
    }

    #[test]
    fn conditional_expected_purchases_match_the_papers_formula() {
        // Reference values of the paper's eq. 10 computed with mpmath (50 digits):
        //   c/(a-1) (1 - ((α+T)/(α+T+t))^(r+x) hyp2f1(r+x, b+x, c, t/(α+T+t))) / D
        // for the CDNOW estimates r = 0.243, α = 4.414, a = 0.793, b = 2.426 (a < 1, where
        // the first factor is negative and the ₂F₁ grows large).
        let p = BgNbdParams {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let cases = [
            // (x, t_x, T, t, expected)
            (0, 0.0, 38.86, 39.0, 0.19509805201126265),
            (2, 30.43, 38.86, 39.0, 1.2260281747671444),
            (7, 35.0, 38.0, 52.0, 5.7286816643461),
            (40, 37.0, 38.0, 52.0, 33.75130410280406),
            (5, 2.0, 38.0, 52.0, 0.0019749449453828507),
            (0, 0.0, 0.0, 1000.0, 6.580391613738232),
        ];
        for (x, t_x, big_t, t, want) in cases {
            let got = p.expected_purchases(x, t_x, big_t, t).unwrap();
            close(got, want, 1e-11);
        }
    }

    #[test]
    fn expected_purchases_if_alive_match_40_digit_values_in_every_regime() {
        // E[purchases in t | alive] = c/(a-1) (1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; c; z)),
        // computed with mpmath at 40 digits (for a = 1 and a >= 100, as the equivalent integral
        // over p ~ Beta(a, b+x) of (1 - (1 + p t/(α+T))^-(r+x))/p). The cases cover both of our
        // series (a <= 10 and a > 10, either side of the switch), a < 1, a = 1, huge a and b
        // (a fit where the dropout probability does not vary), frequent buyers (x = 500),
        // z = t/(α+T+t) from 0.001 to 0.9999, and a short horizon (where 1 - (1-z)^(r+x) ₂F₁
        // is small).
        let cases = [
            // (r, α, a, b, x, T, t, expected)
            (0.243, 4.414, 0.05, 0.5, 0, 38.0, 39.0, 0.21527527463239035),
            (0.243, 4.414, 0.3, 1.5, 3, 20.0, 52.0, 5.7622861587714755),
            (1.0, 2.0, 1.0, 3.0, 2, 10.0, 30.0, 4.471745755386466),
            (0.5, 30.0, 1.5, 2.0, 500, 1000.0, 365.0, 140.97977073168312),
            (5.0, 1.0, 5.0, 20.0, 0, 0.0, 1000.0, 5.999999956958813),
            (0.1, 0.5, 10.0, 20.0, 50, 0.0, 5000.0, 8.777777777777779),
            (0.1, 0.5, 10.5, 20.0, 50, 0.0, 5000.0, 8.368421052631579),
            (0.3, 28.0, 50.0, 100.0, 5, 300.0, 0.3, 0.004843058994782019),
            (1.0, 4.0, 1000.0, 2000.0, 1, 30.0, 30.0, 1.2088869955897084),
            (1.9, 3.77, 1.07e7, 2.14e7, 0, 8.14, 8.71, 1.017956010294233),
            (
                1.9,
                3.77,
                1.07e7,
                2.14e7,
                500,
                300.0,
                5000.0,
                3.000046915892235,
            ),
            (0.2, 1.0, 0.8, 2.5, 500, 0.0, 5000.0, 11272.664196670385),
        ];
        for (r, alpha, a, b, x, age, t, want) in cases {
            let p = BgNbdParams { r, alpha, a, b };
            let got = p.expected_purchases_if_alive(x, age, t).unwrap();
            assert!(
                (got - want).abs() <= 1e-10 * want,
                "{p:?} x {x} T {age} t {t}: got {got}, want {want}"
            );
        }
    }

    #[test]
    fn expected_purchases_are_continuous_through_a_equal_to_one() {
        // At a = 1 the paper's c/(a-1) factor divides by zero; our form does not.
        let at = |a: f64| {
            BgNbdParams {
                r: 0.5,
                alpha: 3.0,
                a,
                b: 2.0,
            }
            .expected_purchases(3, 10.0, 20.0, 30.0)
            .unwrap()
        };
        let (below, one, above) = (at(1.0 - 1e-9), at(1.0), at(1.0 + 1e-9));
        assert!(one.is_finite() && one > 0.0, "{one}");
        close(below, one, 1e-8);
        close(above, one, 1e-8);
    }

    #[test]
    fn a_new_customers_expectation_is_the_conditional_one_with_no_history() {
        let p = BgNbdParams {
            r: 0.25,
            alpha: 4.0,
            a: 0.8,
            b: 2.5,
        };
        let new = p.expected_purchases_new(26.0).unwrap();
        close(p.expected_purchases(0, 0.0, 0.0, 26.0).unwrap(), new, 1e-15);
        // And is increasing in the horizon, below the rate's mean r/α times t (dropouts).
        let later = p.expected_purchases_new(52.0).unwrap();
        assert!(new < later && later < 0.25 / 4.0 * 52.0, "{new} {later}");
    }

    #[test]
    fn a_fit_recovers_known_parameters_from_simulated_customers() {
        // The standard errors of the estimates with 30,000 customers, from the likelihood's
        // curvature at the estimates (the inverse Hessian in log-parameters, so relative) on
        // such simulations: r 1-1.4%, α 1.4-2.2%, a 2-8%, b 3-10% (largest for the second set,
        // whose a = 0.3 makes dropout probabilities very uneven). This agrees with the CDNOW
        // fit's (2,357 customers: r ±5%, α ±9%, a ±23%, b ±29%) shrunk by √(2357/30000). So we
        // allow 8% for r and α and 30% for a and b: three standard errors or more. A wrong
        // likelihood or an optimiser stopping short is off by more, and the fixed seed makes
        // the outcome the same on every run. (a and b are correlated: more dropouts can be
        // explained by a larger a or a smaller b.)
        let sets = [
            (0.25, 4.0, 0.8, 2.5),
            (0.5, 10.0, 0.3, 1.5),
            (1.0, 2.0, 1.2, 3.0),
        ];
        for (i, (r, alpha, a, b)) in sets.into_iter().enumerate() {
            let truth = BgNbdParams { r, alpha, a, b };
            let mut rng = StdRng::seed_from_u64(20260 + i as u64);
            // Observed for 52 weeks, first purchases spread over the first 26. Times are cut to
            // whole days, as a RepeatSummary of real data has them: members then share
            // summaries (all those without a repeat purchase and the same age, for one), which
            // groups them, and the cut moves recency and age by under a day, a bias far below
            // the tolerances (α is 2 to 10 weeks).
            let customers: Vec<RepeatSummary> =
                sim::bg_nbd_customers(&truth, 30_000, 26.0, 52.0, &mut rng)
                    .into_iter()
                    .map(|s| RepeatSummary {
                        recency: (s.recency * 7.0).floor() / 7.0,
                        age: (s.age * 7.0).floor() / 7.0,
                        ..s
                    })
                    .collect();
            let fit = fit_bg_nbd(&customers).unwrap();
            let got = fit.params;
            let rel = |g: f64, w: f64| (g - w).abs() / w;
            assert!(
                rel(got.r, r) < 0.08
                    && rel(got.alpha, alpha) < 0.08
                    && rel(got.a, a) < 0.30
                    && rel(got.b, b) < 0.30,
                "set {i}: fitted {got:?}, true {truth:?}"
            );
            // The fit is at least as likely as the truth: it is the maximum.
            let at_truth = Grouped::new(&customers).unwrap().log_likelihood(&truth);
            assert!(fit.log_likelihood >= at_truth, "{fit:?} vs {at_truth}");
            assert_eq!(fit.members, 30_000);
        }
    }

    #[test]
    fn grouping_changes_nothing() {
        let truth = BgNbdParams {
            r: 0.5,
            alpha: 3.0,
            a: 0.7,
            b: 2.0,
        };
        let mut rng = StdRng::seed_from_u64(7);
        // Days: many members share a summary.
        let customers: Vec<RepeatSummary> =
            sim::bg_nbd_customers(&truth, 2_000, 20.0, 40.0, &mut rng)
                .into_iter()
                .map(|s| RepeatSummary {
                    recency: s.recency.floor(),
                    age: s.age.floor(),
                    ..s
                })
                .collect();
        let grouped = Grouped::new(&customers).unwrap();
        let ungrouped = Grouped::ungrouped(&customers);
        assert!(
            grouped.cells.len() < customers.len(),
            "{}",
            grouped.cells.len()
        );
        assert_eq!(ungrouped.cells.len(), customers.len());
        // The same likelihood as the per-member formula summed, grouped or not.
        let by_member: f64 = customers
            .iter()
            .map(|s| truth.log_likelihood(s.frequency, s.recency, s.age))
            .sum();
        close(grouped.log_likelihood(&truth), by_member, 1e-12);
        close(ungrouped.log_likelihood(&truth), by_member, 1e-12);
        // And so the same fit.
        let (g, u) = (grouped.fit().unwrap(), ungrouped.fit().unwrap());
        close(g.log_likelihood, u.log_likelihood, 1e-12);
        for (pg, pu) in [
            (g.params.r, u.params.r),
            (g.params.alpha, u.params.alpha),
            (g.params.a, u.params.a),
            (g.params.b, u.params.b),
        ] {
            close(pg, pu, 1e-4);
        }
        assert_eq!((g.members, u.members), (2_000, 2_000));
    }

    #[test]
    fn a_fit_needs_repeat_purchases() {
        let none = vec![
            RepeatSummary {
                frequency: 0,
                recency: 0.0,
                age: 10.0,
                monetary: None,
            };
            10
        ];
        assert!(matches!(
            fit_bg_nbd(&none),
            Err(AnalyticsError::NotEnoughData(_))
        ));
        assert!(matches!(
            fit_bg_nbd(&none[..2]),
            Err(AnalyticsError::NotEnoughData(_))
        ));
        let bad = RepeatSummary {
            frequency: 1,
            recency: 11.0,
            age: 10.0,
            monetary: None,
        };
        assert!(matches!(
            fit_bg_nbd(&[bad]),
            Err(AnalyticsError::InvalidInput(_))
        ));
    }

    #[test]
    fn a_fit_converts_to_decimals_with_six_significant_digits() {
        let fit = BgNbdFit {
            params: BgNbdParams {
                r: 0.2425938,
                alpha: 4.41359,
                a: 0.79292,
                b: 2.425890,
            },
            log_likelihood: -9582.4292,
            members: 2357,
            groups: 1000,
            evaluations: 500,
        };
        let d = fit.to_decimal().unwrap();
        assert_eq!(d.r.to_string(), "0.242594");
        assert_eq!(d.alpha.to_string(), "4.41359");
        assert_eq!(d.log_likelihood.to_string(), "-9582.43");
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["r"], "0.242594");
    }
}
