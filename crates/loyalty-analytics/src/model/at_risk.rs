//! Members who are probably gone, ranked by the value that leaves with them.
//!
//! For a member with P(alive) `p` and a value `V` over the horizon if alive (the discounted
//! expected spend of [`super::clv`] over `p`, i.e. what they would bring if they have not
//! gone), the expected value is `p V` (their CLV) and the value at risk `(1 - p) V`: the
//! expected loss if they have gone, which is also what winning them back would be worth. A
//! member whose history says "big spender, long silent" ranks first; one who never spent much
//! ranks low however likely they are gone. (Ranking by `(1 - p)` times the CLV instead would
//! count `p` twice and bury exactly the members most likely gone.)
// Statistics use f64 inside this crate only; money that leaves it is rust_decimal.
#![allow(clippy::float_arithmetic)]

use std::cmp::Reverse;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::bgnbd::BgNbdParams;
use super::clv::Valuation;
use super::gamma_gamma::GammaGammaParams;
use super::{RepeatSummary, TimeUnit, rate_to_f64, to_decimal};
use crate::AnalyticsError;
use crate::summary::MemberSummary;

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRiskQuery {
    /// The day the members' histories run to (the models' calibration end).
    pub now: NaiveDate,
    /// The unit the models were fitted in.
    pub unit: TimeUnit,
    /// The horizon the value is counted over, in `unit`.
    pub horizon: u32,
    /// Yearly, 0.10 for 10%.
    pub discount_rate_yearly: Decimal,
    /// Only members whose P(alive) is below this (0 to 1).
    pub p_alive_below: Decimal,
    /// At most this many members, the most valuable first.
    pub limit: usize,
}

/// A member probably gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRisk {
    pub member_id: String,
    /// To 4 decimal places.
    pub p_alive: Decimal,
    /// Their expected value over the horizon (their CLV), to the cent.
    pub expected_value: Decimal,
    /// `(1 - P(alive))` times their value over the horizon if alive, to the cent.
    pub value_at_risk: Decimal,
}

/// The members who had bought by `query.now` with P(alive) below `query.p_alive_below`, by
/// value at risk (largest first, then by member id), at most `query.limit` of them. Members
/// without a repeat purchase are alive by the model's assumption and never listed.
pub fn at_risk(
    members: &[MemberSummary],
    bg: &BgNbdParams,
    gg: &GammaGammaParams,
    query: &AtRiskQuery,
) -> Result<Vec<AtRisk>, AnalyticsError> {
    let valuation = Valuation::new(
        bg,
        gg,
        query.horizon,
        query.discount_rate_yearly,
        query.unit,
    )?;
    let threshold = rate_to_f64(query.p_alive_below, "the P(alive) threshold")?;
    let mut found = Vec::new();
    for m in members {
        let Some(s) = RepeatSummary::of(m, query.now, query.unit) else {
            continue;
        };
        // P(alive) first: it is cheap, and most members are above the threshold.
        let p = bg.p_alive(s.frequency, s.recency, s.age);
        if p.is_nan() || p >= threshold {
            continue;
        }
        let if_alive = valuation.if_alive(&s)?;
        found.push(AtRisk {
            member_id: m.member_id.clone(),
            p_alive: to_decimal(p, 4, "P(alive)")?,
            expected_value: to_decimal(p * if_alive, 2, "the expected value")?,
            value_at_risk: to_decimal((1.0 - p) * if_alive, 2, "the value at risk")?,
        });
    }
    found.sort_by(|x, y| {
        (Reverse(x.value_at_risk), &x.member_id).cmp(&(Reverse(y.value_at_risk), &y.member_id))
    });
    found.truncate(query.limit);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    use crate::model::fixtures::{CDNOW_BG as BG, CDNOW_GG as GG};

    /// A member who first bought on 2026-01-01 and again every `every` days `times` times, each
    /// purchase day worth `spend`.
    fn member(id: &str, every: u64, times: u64, spend: Decimal) -> MemberSummary {
        let mut m = MemberSummary::new(id, d("2025-12-01"));
        let first = d("2026-01-01");
        m.record(first, spend);
        for k in 1..=times {
            m.record(first + chrono::Days::new(every * k), spend);
        }
        m
    }

    fn query(limit: usize) -> AtRiskQuery {
        AtRiskQuery {
            now: d("2026-12-31"),
            unit: TimeUnit::Weeks,
            horizon: 52,
            discount_rate_yearly: dec!(0.1),
            p_alive_below: dec!(0.5),
            limit,
        }
    }

    #[test]
    fn members_probably_gone_are_ranked_by_the_value_lost_with_them() {
        let members = [
            // Bought weekly in January, silent since: gone, big spender.
            member("big-gone", 7, 4, dec!(200)),
            // Same pattern, small spender.
            member("small-gone", 7, 4, dec!(20)),
            // Buys every two weeks all year: alive.
            member("regular", 14, 25, dec!(50)),
            // One purchase only: alive by assumption.
            member("once", 1, 0, dec!(500)),
        ];
        let found = at_risk(&members, &BG, &GG, &query(10)).unwrap();
        let ids: Vec<&str> = found.iter().map(|a| a.member_id.as_str()).collect();
        assert_eq!(ids, ["big-gone", "small-gone"]);
        let big = &found[0];
        assert!(big.p_alive < dec!(0.05), "{big:?}");
        // Value at risk / expected value = (1 - p) / p: large for a member probably gone.
        assert!(big.value_at_risk > big.expected_value * dec!(10), "{big:?}");
        // The regular's own P(alive) is high.
        let regular = RepeatSummary::of(&members[2], d("2026-12-31"), TimeUnit::Weeks).unwrap();
        assert!(BG.p_alive(regular.frequency, regular.recency, regular.age) > 0.5);
        // The limit keeps the most valuable.
        let one = at_risk(&members, &BG, &GG, &query(1)).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0], found[0]);
    }

    #[test]
    fn the_value_at_risk_is_the_value_if_alive_times_the_probability_gone() {
        let m = member("m", 7, 4, dec!(100));
        let found = at_risk(std::slice::from_ref(&m), &BG, &GG, &query(10)).unwrap();
        let s = RepeatSummary::of(&m, d("2026-12-31"), TimeUnit::Weeks).unwrap();
        let p = BG.p_alive(s.frequency, s.recency, s.age);
        let clv = super::super::clv::clv(&BG, &GG, &s, 52, dec!(0.1), TimeUnit::Weeks).unwrap();
        assert_eq!(found[0].expected_value, clv);
        let if_alive = Valuation::new(&BG, &GG, 52, dec!(0.1), TimeUnit::Weeks)
            .unwrap()
            .if_alive(&s)
            .unwrap();
        assert_eq!(
            found[0].value_at_risk,
            to_decimal((1.0 - p) * if_alive, 2, "").unwrap()
        );
        assert_eq!(found[0].p_alive, to_decimal(p, 4, "").unwrap());
    }
}
