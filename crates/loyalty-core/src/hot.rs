//! The hot state: what a member's state keeps so that decisions stay cheap however long the
//! member's history grows.
//!
//! [`MemberState::compact`] retires what decisions rarely need: the oldest purchases (beyond a
//! count), the oldest redemptions, the oldest client ids, lots emptied for good, tier-metric
//! entries and activity-limit periods no accepted command can reach any more. The events keep
//! everything; the hot state remembers only a 64-bit digest of each retired id. A command that
//! touches something retired (a retry of a years-old transaction id, a refund of a purchase
//! retired, a cancellation of an old redemption, scheduled work dated long ago) is told apart by
//! [`MemberState::needs_history`], and the engine decides it on the full history instead: the
//! same answer as if nothing had been retired, at the cost of reading the stream once.
//!
//! **Invariant:** for a command the hot state does not refuse with `needs_history`, `decide`
//! on the hot state answers exactly what it answers on the full state. The property tests
//! check it, and that compacting the full state gives the hot state kept step by step.

use std::collections::{BTreeSet, HashSet};

use chrono::{NaiveDate, TimeDelta};

use crate::command::Command;
use crate::program::{Program, QualifyingWindow};
use crate::state::MemberState;
use crate::time::TimeWindow;

/// How much a hot state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotLimits {
    /// Purchases kept for refunds (the newest).
    pub max_purchases: usize,
    /// Redemptions kept for cancellations (the newest).
    pub max_redemptions: usize,
    /// Client ids kept with their outcome (the newest; enrollment and referral ids are always
    /// kept).
    pub max_processed: usize,
    /// A command dated more than this before the newest business time is decided on the full
    /// history: the accepted window (behind and ahead) and a day of margin.
    pub horizon: TimeDelta,
    /// Tier-metric entries older than this before the newest business time are dropped: the
    /// horizon, a year back to the review a late scheduler may still run, the qualifying window
    /// and a month of margin.
    pub qualifying_horizon: TimeDelta,
}

impl HotLimits {
    /// The limits for `program` under the accepted `window`.
    pub fn new(program: &Program, window: TimeWindow) -> HotLimits {
        let horizon = window.max_behind + window.max_ahead + TimeDelta::days(1);
        let window_days = match program.tiers.window {
            QualifyingWindow::Rolling { months } => i64::from(months) * 31,
            QualifyingWindow::CalendarYear => 366,
        };
        HotLimits {
            max_purchases: 256,
            max_redemptions: 256,
            max_processed: 1024,
            horizon,
            qualifying_horizon: horizon + TimeDelta::days(366 + window_days + 31),
        }
    }
}

/// What a compacted state adds: its limits and the digests of what it retired.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HotPart {
    /// Not kept in snapshots: whoever reads one compacts it again with its own limits.
    #[serde(skip)]
    pub(crate) limits: Option<HotLimits>,
    pub(crate) retired: HashSet<u64>,
}

/// Client ids a compaction may retire. Enrollment and referral ids are few per member and
/// always kept.
pub(crate) fn retirable(client_id: &str) -> bool {
    !(client_id.starts_with("enroll:") || client_id.starts_with("referral"))
}

/// The digest a retired id is remembered by: FNV-1a 64 of a kind and the id. A collision can
/// only send a command to the full history, never change its answer.
fn digest(kind: &str, id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([b'|']).chain(id.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl MemberState {
    /// Whether this state was compacted (it then answers [`Self::needs_history`]).
    pub fn is_compacted(&self) -> bool {
        self.hot.is_some()
    }

    fn retired(&self, kind: &str, id: &str) -> bool {
        self.hot
            .as_ref()
            .is_some_and(|h| h.retired.contains(&digest(kind, id)))
    }

    /// Whether a lot with this id exists or existed (new lot ids must not reuse either).
    pub(crate) fn has_lot_id(&self, id: &crate::ids::LotId) -> bool {
        self.lot(id).is_some() || self.retired("lot", id.as_str())
    }

    /// Whether `command` touches what this hot state retired, so that only the full history can
    /// decide it exactly. Always false for a state never compacted.
    pub fn needs_history(&self, command: &Command) -> bool {
        let Some(hot) = &self.hot else {
            return false;
        };
        if let Some(id) = command.client_id()
            && !self.processed.contains_key(&id)
            && self.retired("client", &id)
        {
            return true;
        }
        match command {
            Command::Refund(r) => {
                let key = r.purchase_key();
                self.purchase(&key).is_none() && self.retired("sale", &key.to_string())
            }
            Command::CancelRedemption(c) => {
                self.redemption(&c.redemption_id).is_none()
                    && self.retired("redemption", c.redemption_id.as_str())
            }
            // A review dated long ago (scheduled work run as of an old instant) reads tier-metric
            // entries the hot state may have dropped. Callers' commands are dated inside the
            // window, which the horizon covers; those outside it are refused either way.
            Command::ReviewTier(c) => match (hot.limits, self.latest_at) {
                (Some(limits), Some(latest)) => c.occurred_at < latest - limits.horizon,
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether `event` can be folded into this state without what it retired: an event decided
    /// on the full history (a refund of a retired purchase, a cancellation of a retired
    /// redemption giving points back to lots retired) cannot, and the state must then be rebuilt
    /// from the full history. Always true for a state never compacted.
    pub fn applies_cleanly(&self, event: &crate::Event) -> bool {
        use crate::Event as E;
        if self.hot.is_none() {
            return true;
        }
        let lots = |draws: &[crate::LotDraw]| draws.iter().all(|d| self.lot(&d.lot_id).is_some());
        match event {
            E::RefundRecorded(e) => {
                let purchase = match &e.purchase_store {
                    Some(store) => self.purchase(&crate::PurchaseKey::new(
                        store.clone(),
                        e.transaction_id.clone(),
                    )),
                    None => self.purchase_by_transaction(&e.transaction_id),
                };
                purchase.is_some() && lots(&e.debit.draws)
            }
            E::RedemptionCancelled(e) => {
                self.redemption(&e.redemption_id).is_some() && lots(&e.restored)
            }
            E::PointsRedeemed(e) => lots(&e.draws),
            E::PointsExpired(e) => self.lot(&e.lot_id).is_some(),
            // A notice names lots holding points, which a compaction never retires; checked
            // all the same, so that a flag is never lost with a lot missing.
            E::ExpiryNotified(e) => e.lots.iter().all(|l| self.lot(&l.lot_id).is_some()),
            E::PointsAdjusted(e) => e.debit.as_ref().is_none_or(|d| lots(&d.draws)),
            E::ReferralRevoked(e) => lots(&e.debit.draws),
            E::ReferralBonusRevoked(e) => lots(&e.debit.draws),
            E::AccountClosed(e) => lots(&e.forfeited),
            _ => true,
        }
    }

    /// Retires what decisions within `limits` no longer need (see the module's doc). Cheap when
    /// there is nothing to retire; calling it again changes nothing.
    pub fn compact(&mut self, limits: &HotLimits) {
        let mut retired = self.hot.take().map(|h| h.retired).unwrap_or_default();
        while self.purchase_order.len() > limits.max_purchases {
            if let Some(key) = self.purchase_order.pop_front() {
                self.purchases.remove(&key);
                retired.insert(digest("sale", &key.to_string()));
            }
        }
        while self.redemption_order.len() > limits.max_redemptions {
            if let Some(id) = self.redemption_order.pop_front() {
                self.redemptions.remove(&id);
                retired.insert(digest("redemption", id.as_str()));
            }
        }
        while self.processed_order.len() > limits.max_processed {
            if let Some(id) = self.processed_order.pop_front() {
                self.processed.remove(&id);
                retired.insert(digest("client", &id));
            }
        }
        self.retire_empty_lots(&mut retired);
        if let Some(latest) = self.latest_at {
            let oldest = latest - limits.qualifying_horizon;
            self.qualifying.retain(|q| q.at >= oldest);
            // An activity is dated no earlier than the horizon before the newest business
            // time: a period that ended before that (a day of margin for the timezone) can
            // never count one again.
            let last_reachable = (latest - limits.horizon - TimeDelta::days(1)).date_naive();
            self.activity_counts.retain(|(_, period), _| {
                period_end(period).is_none_or(|end| end >= last_reachable)
            });
        }
        self.hot = Some(Box::new(HotPart {
            limits: Some(*limits),
            retired,
        }));
    }

    /// Lots with no points left that no kept redemption could give points back to.
    fn retire_empty_lots(&mut self, retired: &mut HashSet<u64>) {
        if !self.lots.iter().any(|l| !l.remaining.is_positive()) {
            return;
        }
        let referenced: BTreeSet<&crate::ids::LotId> = self
            .redemptions
            .values()
            .filter(|r| !r.cancelled)
            .flat_map(|r| r.draws.iter().map(|d| &d.lot_id))
            .collect();
        let keep: Vec<bool> = self
            .lots
            .iter()
            .map(|l| l.remaining.is_positive() || referenced.contains(&l.id))
            .collect();
        if keep.iter().all(|k| *k) {
            return;
        }
        let mut kept = Vec::with_capacity(self.lots.len());
        for (lot, keep) in std::mem::take(&mut self.lots).into_iter().zip(keep) {
            if keep {
                kept.push(lot);
            } else {
                retired.insert(digest("lot", lot.id.as_str()));
            }
        }
        self.lots = kept;
        self.rebuild_lot_index();
    }

    /// A rough size in bytes, for caches bounded in bytes: counts of what the state holds times
    /// what each costs on the heap (measured with the demo program's purchases, rounded up).
    pub fn approx_bytes(&self) -> usize {
        let lines: usize = self.purchases.values().map(|p| p.lines.len()).sum();
        1_024
            + self.lots.len() * 200
            + self.purchases.len() * 200
            + lines * 100
            + self.redemptions.len() * 200
            + self.processed.len() * 250
            + self.qualifying.len() * 48
            + self.activity_counts.len() * 100
            + self.referral_bonuses.len() * 150
            + self.hot.as_ref().map_or(0, |h| h.retired.len() * 16)
    }
}

/// The last local date of the limit period a key names (`day:2026-11-28`, `week:2026-W48`,
/// `month:2026-11`, `year:2026`); `None` for `once` and anything unknown (kept forever).
fn period_end(key: &str) -> Option<NaiveDate> {
    let (kind, value) = key.split_once(':')?;
    match kind {
        "day" => NaiveDate::parse_from_str(value, "%Y-%m-%d").ok(),
        "week" => {
            let (year, week) = value.split_once("-W")?;
            NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, chrono::Weekday::Sun)
        }
        "month" => {
            let first = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").ok()?;
            first.checked_add_months(chrono::Months::new(1))?.pred_opt()
        }
        "year" => NaiveDate::from_ymd_opt(value.parse().ok()?, 12, 31),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::period_key;
    use crate::program::Period;
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_period_ends_on_the_last_day_of_the_key_it_is_filed_under() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let tz = chrono_tz::Europe::Paris;
        let end = |p| period_end(&period_key(at, p, tz));
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(end(Period::Day), d(2026, 11, 28));
        assert_eq!(end(Period::Week), d(2026, 11, 29));
        assert_eq!(end(Period::Month), d(2026, 11, 30));
        assert_eq!(end(Period::Year), d(2026, 12, 31));
        assert_eq!(end(Period::Once), None);
    }
}
