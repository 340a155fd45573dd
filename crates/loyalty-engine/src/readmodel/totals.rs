//! Program totals: sums of the rows' views over every member.

use chrono::{DateTime, Utc};
use loyalty_core::{MemberStatus, Points, Program};
use loyalty_store::Position;
use rust_decimal::Decimal;

use super::row::MemberRow;
use crate::views::ProgramTotals;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TotalsAcc {
    members: u64,
    active: u64,
    suspended: u64,
    closed: u64,
    available: Points,
    pending: Points,
    debt: Points,
    breakage: Points,
    earned: Points,
    redeemed: Points,
    clawed_back: Points,
    forfeited: Points,
}

impl TotalsAcc {
    pub(crate) fn add(&mut self, row: &MemberRow, as_of: DateTime<Utc>) {
        match row.status {
            MemberStatus::NotEnrolled => return,
            MemberStatus::Active => self.active += 1,
            MemberStatus::Suspended => self.suspended += 1,
            MemberStatus::Closed => self.closed += 1,
        }
        self.members += 1;
        let parts = row.balance_parts(as_of);
        let t = &row.totals;
        self.available = self.available.saturating_add(parts.available);
        self.pending = self.pending.saturating_add(parts.pending);
        self.debt = self.debt.saturating_add(row.debt);
        self.breakage = self
            .breakage
            .saturating_add(t.expired.saturating_add(parts.due));
        self.earned = self.earned.saturating_add(t.earned);
        self.redeemed = self.redeemed.saturating_add(t.redeemed);
        self.clawed_back = self.clawed_back.saturating_add(t.clawed_back);
        self.forfeited = self.forfeited.saturating_add(t.forfeited);
    }

    pub(crate) fn finish(
        self,
        program: &Program,
        as_of: DateTime<Utc>,
        position: Position,
    ) -> ProgramTotals {
        let outstanding = self.available.saturating_add(self.pending);
        let value = program.point_value();
        ProgramTotals {
            as_of,
            position,
            members: self.members,
            active_members: self.active,
            suspended_members: self.suspended,
            closed_members: self.closed,
            points_outstanding: outstanding,
            points_available: self.available,
            points_pending: self.pending,
            debt: self.debt,
            point_value: value,
            liability: program.points_value(outstanding).unwrap_or(Decimal::MAX),
            currency: program.currency().clone(),
            breakage_points: self.breakage,
            breakage_value: program.points_value(self.breakage).unwrap_or(Decimal::MAX),
            lifetime_earned: self.earned,
            redeemed: self.redeemed,
            clawed_back: self.clawed_back,
            forfeited: self.forfeited,
        }
    }
}
