//! What a row answers at read time: balance, tier progress, redeemable rewards, due work.
//! Pending and due points depend on "now", so they are computed here, by the core's arithmetic.

use chrono::{DateTime, Utc};
use loyalty_core::fold::{self, BalanceParts};
use loyalty_core::{
    Balance, MemberId, MemberStatus, Points, Program, program::QualifyingMetric, tiers,
};
use rust_decimal::Decimal;

use super::row::{MemberRow, instant, nanos};
use crate::views::{BalanceView, NextExpiryView, NextTierView, RewardView, TierRefView, TierView};

impl MemberRow {
    pub(crate) fn balance_parts(&self, as_of: DateTime<Utc>) -> BalanceParts {
        fold::balance_parts(self.lot_facts(), as_of)
    }

    pub(crate) fn balance_view(&self, member: &MemberId, as_of: DateTime<Utc>) -> BalanceView {
        let b = Balance::from_parts(as_of, self.balance_parts(as_of), self.debt, &self.totals);
        let l = b.lifetime;
        BalanceView {
            member_id: member.clone(),
            as_of,
            available: b.available,
            pending: b.pending,
            debt: b.debt,
            balance: b.balance,
            lifetime_earned: l.earned,
            redeemed: l.redeemed,
            expired: l.expired,
            clawed_back: l.clawed_back,
            adjusted: l.adjusted,
            forfeited: l.forfeited,
            shortfall: l.shortfall,
            next_expiry: b.next_expiry.map(|n| NextExpiryView {
                points: n.points,
                at: n.at,
            }),
            stream_revision: self.revision,
        }
    }

    /// Where the member's tier stands in today's program (by name, as decisions place it).
    pub(crate) fn tier_position(&self, program: &Program) -> usize {
        tiers::position_named(program, &self.tier_name, self.tier_index) as usize
    }

    fn qualifying_value(
        &self,
        metric: QualifyingMetric,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Decimal {
        tiers::qualifying_sum(
            metric,
            self.qualifying.iter().map(|q| {
                (
                    DateTime::from_timestamp_nanos(q.at),
                    q.spend,
                    Points::new(q.points),
                )
            }),
            from,
            to,
        )
    }

    pub(crate) fn tier_view(
        &self,
        member: &MemberId,
        program: &Program,
        as_of: DateTime<Utc>,
    ) -> TierView {
        let window_start = tiers::window_start(program, as_of);
        let metric = program.tiers.metric;
        let value = self.qualifying_value(metric, window_start, as_of);
        let levels = program.tiers();
        let index = self.tier_position(program);
        let next = levels.get(index.saturating_add(1)).map(|l| NextTierView {
            name: l.name.clone(),
            threshold: l.threshold,
            remaining: (l.threshold - value).max(Decimal::ZERO),
        });
        TierView {
            member_id: member.clone(),
            as_of,
            current: TierRefView {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                name: levels
                    .get(index)
                    .map_or_else(|| self.tier_name.to_string(), |l| l.name.clone()),
            },
            since: instant(self.tier_since),
            metric: match metric {
                QualifyingMetric::QualifyingSpend => "qualifying_spend",
                QualifyingMetric::PointsEarned => "points_earned",
            },
            qualifying_value: value,
            window_start,
            next,
            next_review_at: self
                .enrolled_at()
                .and_then(|enrolled| tiers::next_review_at(program, enrolled, as_of)),
            last_review_at: instant(self.last_review_at),
        }
    }

    pub(crate) fn rewards_view(&self, program: &Program, as_of: DateTime<Utc>) -> Vec<RewardView> {
        if self.status != MemberStatus::Active {
            return Vec::new();
        }
        let available = self.balance_parts(as_of).available;
        let today = loyalty_core::calendar::local_date(as_of, program.timezone());
        let tier = self.tier_position(program);
        program
            .rewards()
            .iter()
            .filter(|r| r.available_from.is_none_or(|d| d <= today))
            .filter(|r| r.available_until.is_none_or(|d| today <= d))
            .filter(|r| {
                r.min_tier
                    .as_deref()
                    .and_then(|t| program.tier_index(t))
                    .is_none_or(|required| tier >= required)
            })
            .filter(|r| r.cost <= available)
            .filter_map(|r| {
                let used = self.reward_count(&r.id);
                let remaining_uses = r.per_member_limit.map(|l| l.saturating_sub(used));
                (remaining_uses != Some(0)).then(|| RewardView {
                    reward_id: r.id.clone(),
                    name: r.name.clone(),
                    cost: r.cost,
                    remaining_uses,
                })
            })
            .collect()
    }

    /// A tier review is due as of `now` and has not run yet (by the log or the scheduler's note).
    pub(crate) fn review_due(
        &self,
        program: &Program,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !matches!(self.status, MemberStatus::Active | MemberStatus::Suspended) {
            return None;
        }
        let enrolled = self.enrolled_at()?;
        let due = tiers::last_review_at(program, enrolled, now)?;
        let due_n = nanos(due);
        (due_n > self.last_review_at && due_n > self.reviewed_through).then_some(due)
    }
}
