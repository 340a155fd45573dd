//! `decide`: checks a command against the state and the program, and returns the events that
//! record what happened (or a typed rejection). Pure: time, ids and rules are arguments.
//!
//! Two instants are at hand (see [`crate::time`]): `Ctx::at`, the command's business time, picks
//! rules, campaigns, periods and starts the return window; `Ctx::now`, the server's clock,
//! decides what is pending, spendable and expired. Nothing spends, expires or unlocks points on
//! the strength of a time the server has not reached.

mod account;
mod bonus;
mod purchase;
mod spend;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::calendar;
use crate::command::Command;
use crate::error::DomainError;
use crate::event::{Credit, Debit, Event, LotDraw, LotExpiry, PointsExpired};
use crate::ids::LotId;
use crate::outcome::{self, Decision, Outcome};
use crate::points::Points;
use crate::program::{ClawbackPolicy, ExpiryPolicy, Program};
use crate::state::{MemberState, MemberStatus};
use crate::time::{self, ServerTime, check_representable};

/// How an imported purchase earns (a migration from a legacy program says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportedAward {
    /// By this program's rules, as a live purchase would (enrollments get the welcome bonus).
    Rules,
    /// Nothing: the history is there for the analytics and the tier's qualifying spend; the
    /// points the legacy program left come in as opening balances.
    Nothing,
    /// The points the legacy program awarded (a purchase's row says how many; enrollments get
    /// no welcome bonus), recorded as one transaction-level rule, `imported`.
    Explicit(Points),
}

/// Decides `command` against the member's `state` under `program`, with the server's clock and
/// accepted window in `time`.
pub fn decide(
    state: &MemberState,
    command: &Command,
    program: &Program,
    time: ServerTime,
) -> Result<Decision, DomainError> {
    decide_imported(state, command, program, time, ImportedAward::Rules)
}

/// Decides a command of a historical import: like [`decide`] (the caller passes a window that
/// reaches back as far as the history does), with the purchases' and enrollments' awards as
/// the import says.
pub fn decide_imported(
    state: &MemberState,
    command: &Command,
    program: &Program,
    time: ServerTime,
    award: ImportedAward,
) -> Result<Decision, DomainError> {
    if let Some(id) = state.member_id()
        && id != command.member_id()
    {
        return Err(DomainError::WrongMember {
            expected: id.to_string(),
            got: command.member_id().to_string(),
        });
    }
    // A compacted state cannot decide what touches the history it retired: the caller (the
    // engine) decides it on the full history instead.
    if state.needs_history(command) {
        return Err(DomainError::HistoryNeeded);
    }
    // Idempotency comes first: a retry gets its original answer whatever happened since.
    if let Some(client_id) = command.client_id()
        && let Some(done) = state.processed(&client_id)
    {
        if done.fingerprint == command.fingerprint()
            || command
                .legacy_fingerprint()
                .is_some_and(|legacy| legacy == done.fingerprint)
        {
            return Ok(Decision {
                events: Vec::new(),
                outcome: done.outcome.clone(),
                replayed: true,
            });
        }
        if !matches!(command, Command::Enroll(_)) {
            return Err(DomainError::IdempotencyConflict { client_id });
        }
    }
    // A retry is answered above whenever it comes; anything new must be dated now-ish.
    time::check_occurred_at(command, &time)?;
    match (state.status(), command) {
        (MemberStatus::NotEnrolled, Command::Enroll(c)) => {
            return bonus::enroll(state, c, program, time.now, award == ImportedAward::Rules);
        }
        (_, Command::Enroll(_)) => return Err(DomainError::AlreadyEnrolled),
        (MemberStatus::NotEnrolled, _) => return Err(DomainError::NotEnrolled),
        (MemberStatus::Closed, Command::Expire(_)) => {}
        (MemberStatus::Closed, _) => return Err(DomainError::MemberClosed),
        (
            MemberStatus::Suspended,
            Command::RecordPurchase(_)
            | Command::Redeem(_)
            | Command::RecordActivity(_)
            | Command::WinBack(_),
        ) => return Err(DomainError::MemberSuspended),
        _ => {}
    }
    // Nothing happens to an account before it exists: no purchase, activity or limit period
    // dated before the enrollment.
    if time::dated_by_caller(command)
        && let Some(enrolled_at) = state.enrolled_at()
        && command.occurred_at() < enrolled_at
    {
        return Err(DomainError::BeforeEnrollment { enrolled_at });
    }
    let mut ctx = Ctx::new(state, program, command.occurred_at(), time.now);
    ctx.award = award;
    match command {
        Command::Enroll(_) => Err(DomainError::AlreadyEnrolled),
        Command::RecordPurchase(c) => purchase::record(ctx, c),
        Command::Refund(c) => purchase::refund(ctx, c),
        Command::Redeem(c) => spend::redeem(ctx, c),
        Command::CancelRedemption(c) => spend::cancel(ctx, c),
        Command::Expire(_) => spend::expire(ctx),
        Command::NotifyExpiry(_) => spend::notify_expiry(ctx),
        Command::RecordActivity(c) => bonus::activity(ctx, c),
        Command::Adjust(c) => bonus::adjust(ctx, c),
        Command::Goodwill(c) => bonus::goodwill(ctx, c),
        Command::CreditReferralBonus(c) => bonus::referral(ctx, c),
        Command::RevokeReferralBonus(c) => bonus::revoke_referral(ctx, c),
        Command::WinBack(c) => bonus::win_back(ctx, c),
        Command::OpenBalance(c) => bonus::open_balance(ctx, c),
        Command::ReviewTier(_) => account::review(ctx),
        Command::Suspend(c) => account::suspend(ctx, c),
        Command::Reinstate(c) => account::reinstate(ctx, c),
        Command::Close(c) => account::close(ctx, c),
    }
}

/// A decision in progress: the events so far, the running debt (a decision may credit twice,
/// e.g. a purchase and a referral bonus, and each repays what is left of the debt) and the
/// points already drawn from each lot (a decision may debit twice, e.g. a refund and the
/// referral it revokes).
pub(crate) struct Ctx<'a> {
    pub state: &'a MemberState,
    pub program: &'a Program,
    /// Business time: rules, campaigns, periods, the start of the return window.
    pub at: DateTime<Utc>,
    /// The server's clock: pending, spendable, expired.
    pub now: DateTime<Utc>,
    pub events: Vec<Event>,
    pub debt: Points,
    drawn: BTreeMap<LotId, Points>,
    /// How a purchase earns: by the rules, except in an import that says otherwise.
    pub award: ImportedAward,
}

impl<'a> Ctx<'a> {
    fn new(
        state: &'a MemberState,
        program: &'a Program,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut ctx = Ctx {
            state,
            program,
            at,
            now,
            events: Vec::new(),
            debt: state.debt(),
            drawn: BTreeMap::new(),
            award: ImportedAward::Rules,
        };
        // Every decision first records the expiries due by the server's clock, so that a
        // purchase cannot revive points an inactivity deadline had already expired, and so that
        // clawbacks and spends only ever see live lots. A caller's business time plays no part:
        // a till dated a year ahead expires nothing.
        ctx.events.extend(due_expiries(state, now));
        ctx
    }

    /// Returns the decision whose outcome is derived from its primary event.
    pub fn finish_with_primary(self, primary_index: usize) -> Result<Decision, DomainError> {
        let outcome = self
            .events
            .get(primary_index)
            .and_then(outcome::from_event)
            .map(|(_, _, o)| o)
            .ok_or(DomainError::ArithmeticOverflow)?;
        Ok(self.finish(outcome))
    }

    pub fn finish(self, outcome: Outcome) -> Decision {
        Decision {
            events: self.events,
            outcome,
            replayed: false,
        }
    }

    /// Pushes an event and returns its index.
    pub fn push(&mut self, event: Event) -> usize {
        self.events.push(event);
        self.events.len() - 1
    }

    pub fn rules_version(&self) -> String {
        self.program.rules_version().to_owned()
    }

    /// Under the inactivity policy, the new deadline an activity at `self.at` sets.
    pub fn activity_deadline(&self) -> Result<Option<DateTime<Utc>>, DomainError> {
        match self.program.expiry {
            ExpiryPolicy::Inactivity { months } => {
                calendar::add_months(self.at, months, self.program.timezone())
                    .ok_or(DomainError::TimeOutOfRange)
                    .and_then(check_representable)
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    /// A new lot of `points` earned at the business time, repaying the debt first. Only points
    /// that a return can still take back (`Hold::ReturnWindow`) wait for the program's pending
    /// period, which starts at the sale and ends by the server's clock. The others are
    /// spendable at once: from the business time or the server's clock, whichever is earlier
    /// (an app a minute ahead does not hold its member's goodwill back).
    pub fn credit(
        &mut self,
        lot_id: LotId,
        points: Points,
        hold: Hold,
    ) -> Result<Credit, DomainError> {
        let tz = self.program.timezone();
        let out_of_range = || DomainError::TimeOutOfRange;
        let spendable_from = match hold {
            Hold::ReturnWindow => calendar::add_days(self.at, self.program.pending.days, tz)
                .ok_or_else(out_of_range)?,
            Hold::None => self.at.min(self.now),
        };
        let spendable_from = check_representable(spendable_from)?;
        let expiry = match self.program.expiry {
            ExpiryPolicy::LotMonths {
                months,
                end_of_month,
            } => {
                let at =
                    calendar::add_months(spendable_from, months, tz).ok_or_else(out_of_range)?;
                let at = if end_of_month {
                    calendar::end_of_month(at, tz).ok_or_else(out_of_range)?
                } else {
                    at
                };
                LotExpiry::At(check_representable(at)?)
            }
            ExpiryPolicy::Inactivity { .. } => LotExpiry::OnInactivity,
            ExpiryPolicy::Never => LotExpiry::Never,
        };
        let debt_repaid = if points.is_positive() {
            self.debt.min(points).max(Points::ZERO)
        } else {
            Points::ZERO
        };
        self.debt = self
            .debt
            .checked_sub(debt_repaid)
            .ok_or(DomainError::ArithmeticOverflow)?;
        Ok(Credit {
            lot_id,
            points,
            debt_repaid,
            earned_at: self.at,
            spendable_from,
            expiry,
            activity_deadline: self.activity_deadline()?,
        })
    }

    /// Points of `lot` this decision has not drawn yet.
    fn left_in(&self, lot: &crate::state::Lot) -> Points {
        let drawn = self.drawn.get(&lot.id).copied().unwrap_or(Points::ZERO);
        lot.remaining.saturating_sub(drawn).max(Points::ZERO)
    }

    /// Records draws this decision made, so that a later debit in it does not take them again.
    fn note_drawn(&mut self, draws: &[LotDraw]) {
        for d in draws {
            let drawn = self.drawn.entry(d.lot_id.clone()).or_insert(Points::ZERO);
            *drawn = drawn.saturating_add(d.points);
        }
    }

    /// Takes `amount` points: from `first` (the lot of what is being undone), then lots live by
    /// the server's clock, soonest-expiring first, then as debt (`allow`) or recorded as a
    /// shortfall (`clamp`).
    pub fn debit(&mut self, amount: Points, first: Option<&LotId>) -> Debit {
        let mut lots: Vec<_> = self.state.live_lots(self.now).collect();
        self.state.sort_for_spending(&mut lots);
        if let Some(first) = first
            && let Some(pos) = lots.iter().position(|l| &l.id == first)
        {
            let lot = lots.remove(pos);
            lots.insert(0, lot);
        }
        let mut left = amount.max(Points::ZERO);
        let mut draws = Vec::new();
        for lot in lots {
            if !left.is_positive() {
                break;
            }
            let take = left.min(self.left_in(lot));
            if !take.is_positive() {
                continue;
            }
            draws.push(LotDraw {
                lot_id: lot.id.clone(),
                points: take,
            });
            left = left.saturating_sub(take);
        }
        self.note_drawn(&draws);
        let (debt_added, shortfall) = match self.program.clawback_policy() {
            ClawbackPolicy::Allow => (left, Points::ZERO),
            ClawbackPolicy::Clamp => (Points::ZERO, left),
        };
        self.debt = self.debt.saturating_add(debt_added);
        Debit {
            draws,
            debt_added,
            shortfall,
        }
    }

    /// Checks a money amount against the currency's decimals and a maximum.
    pub fn check_amount(
        &self,
        field: &'static str,
        amount: Decimal,
        max: Decimal,
    ) -> Result<(), DomainError> {
        if amount <= Decimal::ZERO {
            return Err(DomainError::AmountNotPositive { field });
        }
        let max_decimals = self.program.program.minor_units;
        if amount.normalize().scale() > max_decimals {
            return Err(DomainError::AmountTooPrecise {
                field,
                max_decimals,
            });
        }
        if amount > max {
            return Err(DomainError::AmountTooLarge { field, max });
        }
        Ok(())
    }

    pub fn check_text(&self, field: &'static str, text: &str) -> Result<(), DomainError> {
        let max = self.program.limits.max_text_length;
        if text.chars().count() > max as usize {
            return Err(DomainError::TextTooLong { field, max });
        }
        Ok(())
    }
}

/// One `PointsExpired` per lot whose expiry has passed by the server's clock (`now`) and that
/// still holds points.
pub(crate) fn due_expiries(state: &MemberState, now: DateTime<Utc>) -> Vec<Event> {
    state
        .lots()
        .iter()
        .filter(|l| state.is_due(l, now))
        .filter_map(|l| {
            state.lot_expires_at(l).map(|expired_at| {
                Event::PointsExpired(PointsExpired {
                    lot_id: l.id.clone(),
                    points: l.remaining,
                    expired_at,
                    occurred_at: now,
                })
            })
        })
        .collect()
}

/// Whether a new lot waits for the program's pending period before it can be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Earned by a purchase (or by a referral that a purchase triggered): a return within the
    /// window takes the points back, so they are not spendable until it closes (counted from
    /// the sale's business time, judged by the server's clock).
    ReturnWindow,
    /// Welcome, activity, adjustment and goodwill points: nothing can take them back by a
    /// return, so they are spendable at once (goodwill after a complaint, above all).
    None,
}
