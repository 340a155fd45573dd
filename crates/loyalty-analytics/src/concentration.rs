//! How concentrated sales are: the share of net spend (refunds deducted) that comes from the
//! best members. The usual rule of thumb says the top 20% bring most of it; this says how
//! much, for this program.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::summary::MemberSummary;

/// The shares reported by [`concentration_curve`], in percent of members.
pub const CURVE_PERCENTS: [u32; 5] = [1, 5, 10, 20, 50];

/// One point of the curve: the top `percent` of members (at least one) bring `share` of the
/// net spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcentrationPoint {
    pub percent: Decimal,
    pub members: u64,
    pub spend: Decimal,
    /// Between 0 and 1; `None` when the total net spend is not positive.
    pub share: Option<Decimal>,
}

/// The share of net spend from the top `percent` of members (by net spend).
pub fn top_share<'a>(
    summaries: impl IntoIterator<Item = &'a MemberSummary>,
    percent: Decimal,
) -> Result<ConcentrationPoint, AnalyticsError> {
    let spends = sorted_spends(summaries);
    point(&spends, percent)
}

/// The share of net spend from the top 1, 5, 10, 20 and 50% of members.
pub fn concentration_curve<'a>(
    summaries: impl IntoIterator<Item = &'a MemberSummary>,
) -> Vec<ConcentrationPoint> {
    let spends = sorted_spends(summaries);
    CURVE_PERCENTS
        .iter()
        .filter_map(|p| point(&spends, Decimal::from(*p)).ok())
        .collect()
}

/// Net spends, largest first.
fn sorted_spends<'a>(summaries: impl IntoIterator<Item = &'a MemberSummary>) -> Vec<Decimal> {
    let mut spends: Vec<Decimal> = summaries.into_iter().map(|m| m.net_spend).collect();
    spends.sort_unstable_by(|a, b| b.cmp(a));
    spends
}

fn point(spends: &[Decimal], percent: Decimal) -> Result<ConcentrationPoint, AnalyticsError> {
    if percent <= Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
        return Err(AnalyticsError::BadShare(percent));
    }
    // The top p% of n members, rounded up: the top 20% of 7 members are 2 of them.
    let wanted = (Decimal::from(spends.len()) * percent / Decimal::ONE_HUNDRED).ceil();
    let members = usize::try_from(wanted.mantissa())
        .unwrap_or(usize::MAX)
        .min(spends.len());
    let spend: Decimal = spends[..members].iter().sum();
    let total: Decimal = spends.iter().sum();
    Ok(ConcentrationPoint {
        percent,
        members: members as u64,
        spend,
        share: (total > Decimal::ZERO).then(|| spend / total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn member(i: usize, spend: Decimal) -> MemberSummary {
        let mut m = MemberSummary::new(format!("m{i}"), "2026-01-01".parse().unwrap());
        m.net_spend = spend;
        m
    }

    #[test]
    fn the_top_fifth_of_ten_members_is_the_two_biggest_spenders() {
        let members: Vec<MemberSummary> = [500, 300, 50, 40, 30, 30, 20, 15, 10, 5]
            .iter()
            .enumerate()
            .map(|(i, s)| member(i, Decimal::from(*s)))
            .collect();
        let top = top_share(&members, dec!(20)).unwrap();
        assert_eq!(top.members, 2);
        assert_eq!(top.spend, dec!(800));
        assert_eq!(top.share, Some(dec!(0.8)));
        let curve = concentration_curve(&members);
        assert_eq!(curve.len(), 5);
        // The top 1% of ten members is still one member.
        assert_eq!(curve[0].members, 1);
        assert_eq!(curve[0].share, Some(dec!(0.5)));
        assert_eq!(curve[4].members, 5);
        assert!(top_share(&members, dec!(0)).is_err());
        assert!(top_share(&members, dec!(101)).is_err());
    }

    #[test]
    fn refunds_count_against_a_member_and_no_positive_total_has_no_share() {
        let members = vec![member(0, dec!(-10)), member(1, dec!(0))];
        assert_eq!(top_share(&members, dec!(50)).unwrap().share, None);
    }
}
