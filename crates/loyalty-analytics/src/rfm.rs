//! RFM: recency (days since the last purchase), frequency (days with a purchase) and monetary
//! value (net spend), each scored 1 to 5 by quintile among the members who bought; 5 is best
//! (the most recent, the most frequent, the biggest spenders).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::summary::MemberSummary;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RfmScore {
    pub member_id: String,
    pub recency_days: i64,
    pub frequency: u64,
    pub monetary: Decimal,
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// The RFM scores as of `as_of` of the members who bought by then.
pub fn rfm_scores<'a>(
    summaries: impl IntoIterator<Item = &'a MemberSummary>,
    as_of: NaiveDate,
) -> Vec<RfmScore> {
    let mut scores: Vec<RfmScore> = summaries
        .into_iter()
        .filter_map(|m| {
            let last = m.last_purchase_by(as_of)?;
            Some(RfmScore {
                member_id: m.member_id.clone(),
                recency_days: (as_of - last).num_days(),
                frequency: m.frequency_by(as_of) as u64,
                monetary: m.net_spend,
                r: 0,
                f: 0,
                m: 0,
            })
        })
        .collect();
    // Fewer days since the last purchase is better: score the negated recency.
    let r = quintiles(&scores, |s| std::cmp::Reverse(s.recency_days));
    let f = quintiles(&scores, |s| s.frequency);
    let m = quintiles(&scores, |s| s.monetary);
    for (i, s) in scores.iter_mut().enumerate() {
        (s.r, s.f, s.m) = (r[i], f[i], m[i]);
    }
    scores
}

/// Scores 1 (lowest fifth) to 5 (highest fifth) by the rank of `key`; equal keys share the
/// score of the first of them, so a tie never splits across two scores.
fn quintiles<K: Ord>(scores: &[RfmScore], key: impl Fn(&RfmScore) -> K) -> Vec<u8> {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| key(&scores[i]));
    let mut out = vec![0u8; n];
    let mut rank_of_tie = 0;
    for (rank, &i) in order.iter().enumerate() {
        if rank == 0 || key(&scores[order[rank - 1]]) != key(&scores[i]) {
            rank_of_tie = rank;
        }
        // rank_of_tie < n, so this is 0..=4.
        out[i] = 1 + u8::try_from(rank_of_tie * 5 / n).unwrap_or(4);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_most_recent_most_frequent_biggest_spender_scores_five_five_five() {
        let mut members = Vec::new();
        for i in 0..10u32 {
            let mut m = MemberSummary::new(format!("m{i}"), d("2025-01-01"));
            // Member i bought on i + 1 days, the last one i days before the end of 2026.
            for k in 0..=i {
                m.record(
                    d("2026-12-31") - chrono::TimeDelta::days(i64::from(i + 10 * k)),
                    dec!(10),
                );
            }
            members.push(m);
        }
        // One who never bought is not scored.
        members.push(MemberSummary::new("idle", d("2025-01-01")));
        let scores = rfm_scores(&members, d("2026-12-31"));
        assert_eq!(scores.len(), 10);
        let best = scores.iter().find(|s| s.member_id == "m0").unwrap();
        assert_eq!((best.recency_days, best.frequency), (0, 1));
        assert_eq!((best.r, best.f, best.m), (5, 1, 1));
        let loyal = scores.iter().find(|s| s.member_id == "m9").unwrap();
        assert_eq!((loyal.r, loyal.f, loyal.m), (1, 5, 5));
        // Two members per quintile.
        for q in 1..=5u8 {
            assert_eq!(
                scores.iter().filter(|s| s.f == q).count(),
                2,
                "quintile {q}"
            );
        }
    }

    #[test]
    fn equal_values_share_one_score() {
        let members: Vec<MemberSummary> = (0..5)
            .map(|i| {
                let mut m = MemberSummary::new(format!("m{i}"), d("2025-01-01"));
                m.record(d("2026-06-01"), dec!(20));
                m
            })
            .collect();
        let scores = rfm_scores(&members, d("2026-12-31"));
        assert!(scores.iter().all(|s| (s.r, s.f, s.m) == (1, 1, 1)));
    }
}
