//! Customers drawn from the models' generative processes, for the tests and the benchmark
//! (feature `simulate`).
// Statistics use f64 inside this crate only; money that leaves it is rust_decimal.
#![allow(clippy::float_arithmetic)]

use chrono::{Days, NaiveDate};
use rand::Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};
use rust_decimal::Decimal;

use super::RepeatSummary;
use super::bgnbd::BgNbdParams;
use super::gamma_gamma::GammaGammaParams;
use crate::summary::MemberSummary;

/// One customer's BG/NBD life from their first purchase (time 0): the times of their repeat
/// purchases before `until`. While alive they buy at Poisson rate `λ ~ Gamma(r, α)`; after
/// each repeat purchase they drop out with probability `p ~ Beta(a, b)` (as `lifetimes`'
/// `beta_geometric_nbd_model` generator).
pub fn bg_nbd_purchases(params: &BgNbdParams, until: f64, rng: &mut impl Rng) -> Vec<f64> {
    let lambda = Gamma::new(params.r, 1.0 / params.alpha)
        .unwrap()
        .sample(rng);
    let p = Beta::new(params.a, params.b).unwrap().sample(rng);
    let gap = Exp::new(lambda).unwrap();
    let mut times = Vec::new();
    let mut t = 0.0;
    loop {
        t += gap.sample(rng);
        if t > until {
            return times;
        }
        times.push(t);
        if rng.random::<f64>() < p {
            return times;
        }
    }
}

/// `n` customers observed until `period`, their first purchases uniform over `[0, window)`, in
/// continuous time.
pub fn bg_nbd_customers(
    params: &BgNbdParams,
    n: usize,
    window: f64,
    period: f64,
    rng: &mut impl Rng,
) -> Vec<RepeatSummary> {
    (0..n)
        .map(|_| {
            let age = period - rng.random_range(0.0..window);
            let times = bg_nbd_purchases(params, age, rng);
            RepeatSummary {
                frequency: times.len() as u32,
                recency: times.last().copied().unwrap_or(0.0),
                age,
                monetary: None,
            }
        })
        .collect()
}

/// A customer's spend per transaction under Gamma-Gamma: `Gamma(p, ν)` (shape `p`, rate `ν`),
/// their `ν ~ Gamma(q, γ)`.
pub fn spend_distribution(params: &GammaGammaParams, rng: &mut impl Rng) -> Gamma<f64> {
    let nu = Gamma::new(params.q, 1.0 / params.gamma)
        .unwrap()
        .sample(rng);
    Gamma::new(params.p, 1.0 / nu).unwrap()
}

/// Members who joined on `start` and first bought on a day in the first `window_days`, with
/// BG/NBD purchases and Gamma-Gamma spends (to the cent) until `end`, by day. Several
/// purchases on a day count as one purchase day, as in the data the models see.
pub fn members(
    bg: &BgNbdParams,
    gg: &GammaGammaParams,
    n: usize,
    start: NaiveDate,
    window_days: u64,
    end: NaiveDate,
    rng: &mut impl Rng,
) -> Vec<MemberSummary> {
    let cents = |v: f64| Decimal::from_f64_retain(v).unwrap().round_dp(2);
    (0..n)
        .map(|i| {
            let mut m = MemberSummary::new(format!("m{i:06}"), start);
            let first = start + Days::new(rng.random_range(0..window_days));
            let spend = spend_distribution(gg, rng);
            m.record(first, cents(spend.sample(rng)).max(Decimal::ONE));
            let until = (end - first).num_days() as f64 + 1.0;
            for t in bg_nbd_purchases(bg, until, rng) {
                let day = first + Days::new(t as u64);
                if day <= end {
                    m.record(day, cents(spend.sample(rng)).max(Decimal::ONE));
                }
            }
            m
        })
        .collect()
}
