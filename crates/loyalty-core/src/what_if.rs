//! What-if: the recorded history of a period decided again under another program, in memory,
//! and compared with what was recorded.
//!
//! Events record decisions, not requests, but each holds enough of its command to ask it
//! again: a purchase keeps its lines (sku, category, quantity, amount), store, terminal and
//! times; a refund the amount taken from each line; a redemption its reward or points; an
//! activity its id and kind; an adjustment or goodwill its points, reason and operator. The
//! engine gives each decision as the log holds it (the events of one append, with the command's
//! name and times from their metadata); [`command_of`] turns it back into its command, and
//! [`MemberWhatIf`] folds a member's history: before the period as recorded, inside it each
//! command decided again by the new program at its recorded business time (`occurred_at`) and
//! server time (`recorded_at`), and the recorded events beside it, for the comparison.
//!
//! What the new program's rules decide ([`Basis::Rules`]): enrollments (the welcome bonus),
//! purchases (earning, campaigns, caps, tier upgrades, referral qualification), refunds
//! (clawbacks in proportion to what the purchase earned under the new rules), redemptions (a
//! reward's cost, the points available), cancellations, activities (points and limits), expiry
//! sweeps, expiry notices and tier reviews (at the times the log shows they ran), referral
//! credits and revocations, win-back bonuses (with the measurements recorded). What the command
//! states ([`Basis::Stated`]): manual adjustments and goodwill keep their points, opening balances
//! their points and expiry, suspensions, reinstatements and closures their effect; they are
//! decided again only so that their lots and debits land on the what-if balance. Imported
//! history (a migration) keeps the award mode the log shows (the legacy program's points, or
//! none).
//!
//! Limits, because the log records what happened and not what did not: scheduled work that
//! changed nothing left no event, so a sweep or review the new program would have made act
//! where the recorded one found nothing to do does not run (balances at the end of the period
//! still count points past their expiry as expired); a referral credit runs for the referrer
//! whenever the log shows one, whatever the newcomer's purchase earns under the new rules.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::command::{
    Adjust, CancelRedemption, Close, Command, CreditReferralBonus, Enroll, Expire, Goodwill,
    NotifyExpiry, OpenBalance, PurchaseLine, RecordActivity, RecordPurchase, Redeem, RedeemTarget,
    Refund, RefundLine, RefundScope, Reinstate, ReviewTier, RevokeReferralBonus, Suspend, WinBack,
};
use crate::decide::{ImportedAward, decide_imported};
use crate::event::{Event, LotExpiry, TierChangeReason, TierRef};
use crate::evolve::evolve;
use crate::ids::{MemberId, ReasonCode};
use crate::points::Points;
use crate::program::Program;
use crate::state::{Balance, MemberState, MemberStatus};
use crate::time::{ServerTime, TimeWindow};

/// Members listed in each direction of the largest differences.
pub const TOP_DIFFERENCES: usize = 10;

/// Commands are decided again with any business time accepted: the log shows each was accepted
/// when it came (within the live window then, or further back by an import), and the same
/// check against its recorded server time would only refuse imports.
const ANY_TIME: TimeWindow = TimeWindow {
    max_ahead: TimeDelta::MAX,
    max_behind: TimeDelta::MAX,
};

/// `[from, to)`: the decisions recorded (by the server's clock) from `from` and before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Period {
    /// `None` unless `from` is before `to`.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Period> {
        (from < to).then_some(Period { from, to })
    }

    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }

    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }
}

/// One decision as the log holds it: the events one append wrote, with what their metadata
/// says of the command (absent for events written without the engine's metadata).
#[derive(Debug, Clone, Copy)]
pub struct RecordedDecision<'a> {
    pub events: &'a [Event],
    /// The command's name (`RecordPurchase`...), as the engine stores it.
    pub command: Option<&'a str>,
    /// The command's business time.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The server's clock when it was decided.
    pub recorded_at: DateTime<Utc>,
    /// Written by a historical import (whose awards are the legacy program's).
    pub imported: bool,
}

/// A recorded decision turned back into its command.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub command: Command,
    /// How a purchase or enrollment earns: by the rules, or as the import said.
    pub award: ImportedAward,
}

/// What a recorded decision is, for the what-if.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The command to decide again.
    Command(Replay),
    /// An event that follows its command (a tier upgrade, a referral qualified or revoked,
    /// recorded without the metadata that groups it with its purchase or refund): deciding the
    /// command again decides it too.
    Follows,
    /// The events do not say which command made them: carried over as recorded.
    NoCommand,
}

/// Whether the program's rules decide a command's points, or the command states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Decided again by the new program's rules.
    Rules,
    /// The points (or the effect) are the command's own: carried over unchanged, decided
    /// again only so their lots and debits apply to the what-if balance.
    Stated,
}

/// The events whose points (or effect) no rule decides, with the command each records: carried
/// over unchanged ([`Basis::Stated`]), and decided again only so that their lots and debits land
/// on the what-if balance. Imported purchases and enrollments keep the award mode the log shows.
pub const CARRIED_OVER_UNCHANGED: [(&str, &str); 6] = [
    ("PointsAdjusted", "manual adjustments keep their points"),
    ("GoodwillGranted", "goodwill keeps its points"),
    (
        "BalanceOpened",
        "opening balances keep their points and expiry",
    ),
    ("MemberSuspended", "suspensions stand"),
    ("MemberReinstated", "reinstatements stand"),
    (
        "AccountClosed",
        "closures stand (forfeiting what the what-if balance holds)",
    ),
];

/// Which basis a command is decided on.
pub fn basis(command: &Command, award: ImportedAward) -> Basis {
    match command {
        Command::Adjust(_)
        | Command::Goodwill(_)
        | Command::OpenBalance(_)
        | Command::Suspend(_)
        | Command::Reinstate(_)
        | Command::Close(_) => Basis::Stated,
        Command::RecordPurchase(_) | Command::Enroll(_) if award != ImportedAward::Rules => {
            Basis::Stated
        }
        _ => Basis::Rules,
    }
}

/// The command a recorded decision answered. `state` is the member's what-if state before it
/// (a refund recorded before stores scoped transaction ids names its purchase by id alone).
pub fn command_of(
    member: &MemberId,
    state: &MemberState,
    decision: &RecordedDecision<'_>,
) -> Reading {
    let events = decision.events;
    let Some(name) = decision.command else {
        // Without metadata each event stands alone: it names its command by its kind.
        return match events {
            [event] => from_event(member, state, event, decision),
            _ => Reading::NoCommand,
        };
    };
    let occurred_at = decision.occurred_at;
    let member_id = member.clone();
    // Scheduled commands may have found only expiries to record, or nothing of their own kind:
    // their name and time are enough.
    let scheduled = match name {
        "Expire" => occurred_at.map(|occurred_at| {
            Command::Expire(Expire {
                member_id: member_id.clone(),
                occurred_at,
            })
        }),
        "ReviewTier" => occurred_at.map(|occurred_at| {
            Command::ReviewTier(ReviewTier {
                member_id: member_id.clone(),
                occurred_at,
            })
        }),
        "NotifyExpiry" => occurred_at.map(|occurred_at| {
            Command::NotifyExpiry(NotifyExpiry {
                member_id: member_id.clone(),
                occurred_at,
            })
        }),
        _ => None,
    };
    if let Some(command) = scheduled {
        return Reading::Command(Replay {
            command,
            award: ImportedAward::Rules,
        });
    }
    let wanted = match name {
        "Enroll" => "Enrolled",
        "RecordPurchase" => "PurchaseRecorded",
        "Refund" => "RefundRecorded",
        "Redeem" => "PointsRedeemed",
        "CancelRedemption" => "RedemptionCancelled",
        "RecordActivity" => "ActivityRewarded|ActivityRefused",
        "Adjust" => "PointsAdjusted",
        "Goodwill" => "GoodwillGranted",
        "Suspend" => "MemberSuspended",
        "Reinstate" => "MemberReinstated",
        "Close" => "AccountClosed",
        "CreditReferralBonus" => "ReferralBonusCredited",
        "RevokeReferralBonus" => "ReferralBonusRevoked",
        "WinBack" => "WinBackAwarded",
        "OpenBalance" => "BalanceOpened",
        _ => return Reading::NoCommand,
    };
    let Some(primary) = events
        .iter()
        .find(|e| wanted.split('|').any(|t| t == e.event_type()))
    else {
        return Reading::NoCommand;
    };
    match from_event(member, state, primary, decision) {
        Reading::Command(mut replay) => {
            if decision.imported {
                replay.award = imported_award(primary);
            }
            Reading::Command(replay)
        }
        other => other,
    }
}

/// How an imported purchase or enrollment earned, as its event shows: the legacy program's
/// points (one `imported` rule), nothing, or the rules.
fn imported_award(event: &Event) -> ImportedAward {
    match event {
        Event::PurchaseRecorded(p) => {
            if let Some(rule) = p.transaction_rules.iter().find(|r| r.rule == "imported") {
                ImportedAward::Explicit(rule.points)
            } else if p.points.is_zero()
                && p.transaction_rules.is_empty()
                && p.lines.iter().all(|l| l.rules.is_empty())
            {
                ImportedAward::Nothing
            } else {
                ImportedAward::Rules
            }
        }
        Event::Enrolled(e) if e.welcome.is_none() => ImportedAward::Nothing,
        _ => ImportedAward::Rules,
    }
}

/// A recorded note, for a command replayed in memory: the text when it is plain; a sealed one
/// is left sealed (a note never changes a decision, and what-if holds no keys).
fn replayed_note(note: &crate::Note) -> String {
    match note {
        crate::Note::Plain(text) => text.clone(),
        crate::Note::Sealed(_) => "(sealed note)".to_owned(),
    }
}

/// The command one event records.
fn from_event(
    member: &MemberId,
    state: &MemberState,
    event: &Event,
    decision: &RecordedDecision<'_>,
) -> Reading {
    let member_id = member.clone();
    // The command's business time: the metadata's, else the event's.
    let at = |event_time: DateTime<Utc>| decision.occurred_at.unwrap_or(event_time);
    let command = match event {
        Event::Enrolled(e) => Command::Enroll(Enroll {
            member_id,
            referrer: e.referrer.clone(),
            occurred_at: e.enrolled_at,
        }),
        Event::PurchaseRecorded(e) => Command::RecordPurchase(RecordPurchase {
            member_id,
            transaction_id: e.transaction_id.clone(),
            store: e.store.clone(),
            terminal: e.terminal.clone(),
            occurred_at: e.occurred_at,
            currency: e.currency.clone(),
            lines: e
                .lines
                .iter()
                .map(|l| PurchaseLine {
                    sku: l.sku.clone(),
                    category: l.category.clone(),
                    quantity: l.quantity,
                    amount: l.amount,
                })
                .collect(),
        }),
        Event::RefundRecorded(e) => {
            // Before stores scoped transaction ids, the id alone named the purchase.
            let purchase_store = match &e.purchase_store {
                Some(store) => store.clone(),
                None => match state.purchase_by_transaction(&e.transaction_id) {
                    Some(p) => p.store.clone(),
                    None => return Reading::NoCommand,
                },
            };
            // The amounts taken from each line: what an amount spread over the lines came to,
            // so the refund returns the same money whatever the rules.
            let scope = if e.lines.is_empty() {
                RefundScope::Amount(e.amount)
            } else {
                RefundScope::Lines(
                    e.lines
                        .iter()
                        .map(|l| RefundLine {
                            line: l.line,
                            amount: l.amount,
                        })
                        .collect(),
                )
            };
            Command::Refund(Refund {
                member_id,
                refund_id: e.refund_id.clone(),
                store: e.store.clone().unwrap_or_else(|| purchase_store.clone()),
                purchase_store,
                transaction_id: e.transaction_id.clone(),
                occurred_at: e.occurred_at,
                currency: e.currency.clone(),
                scope,
            })
        }
        Event::PointsRedeemed(e) => Command::Redeem(Redeem {
            member_id,
            redemption_id: e.redemption_id.clone(),
            occurred_at: e.occurred_at,
            target: match &e.reward_id {
                // A catalog reward costs what the new program says.
                Some(reward) => RedeemTarget::Reward(reward.clone()),
                None => RedeemTarget::Points(e.points),
            },
        }),
        Event::RedemptionCancelled(e) => Command::CancelRedemption(CancelRedemption {
            member_id,
            redemption_id: e.redemption_id.clone(),
            occurred_at: at(e.occurred_at),
        }),
        Event::ActivityRewarded(e) => Command::RecordActivity(RecordActivity {
            member_id,
            activity_id: e.activity_id.clone(),
            kind: e.kind.clone(),
            occurred_at: at(e.credit.earned_at),
        }),
        Event::ActivityRefused(e) => Command::RecordActivity(RecordActivity {
            member_id,
            activity_id: e.activity_id.clone(),
            kind: e.kind.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::PointsAdjusted(e) => Command::Adjust(Adjust {
            member_id,
            adjustment_id: e.adjustment_id.clone(),
            points: e.points,
            reason_code: e.reason_code.clone(),
            note: replayed_note(&e.note),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::GoodwillGranted(e) => Command::Goodwill(Goodwill {
            member_id,
            complaint_id: e.complaint_id.clone(),
            points: e.credit.points,
            reason_code: e.reason_code.clone(),
            note: replayed_note(&e.note),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::ReferralBonusCredited(e) => Command::CreditReferralBonus(CreditReferralBonus {
            member_id,
            newcomer: e.newcomer.clone(),
            occurred_at: at(e.credit.earned_at),
        }),
        Event::ReferralBonusRevoked(e) => Command::RevokeReferralBonus(RevokeReferralBonus {
            member_id,
            newcomer: e.newcomer.clone(),
            reason: e.reason,
            occurred_at: e.occurred_at,
        }),
        Event::WinBackAwarded(e) => Command::WinBack(WinBack {
            member_id,
            occurred_at: e.occurred_at,
            p_alive: e.p_alive,
            inactive_days: e.inactive_days,
            purchase_days: e.purchase_days,
            model_version: e.model_version.clone(),
        }),
        Event::BalanceOpened(e) => Command::OpenBalance(OpenBalance {
            member_id,
            balance_id: e.balance_id.clone(),
            points: e.credit.points,
            // The balance keeps the expiry it was opened with (the event does not say whether
            // the legacy program or the policy then dated it); one that never expired takes
            // the new program's policy.
            expires_at: match e.credit.expiry {
                LotExpiry::At(t) => Some(t),
                LotExpiry::OnInactivity | LotExpiry::Never => None,
            },
            occurred_at: e.occurred_at,
        }),
        Event::MemberSuspended(e) => Command::Suspend(Suspend {
            member_id,
            reason_code: e.reason_code.clone(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::MemberReinstated(e) => {
            let Some(reason_code) = e
                .reason_code
                .clone()
                .or_else(|| ReasonCode::parse("unspecified").ok())
            else {
                return Reading::NoCommand;
            };
            Command::Reinstate(Reinstate {
                member_id,
                reason_code,
                operator: e.operator.clone(),
                occurred_at: e.occurred_at,
            })
        }
        Event::AccountClosed(e) => Command::Close(Close {
            member_id,
            reason_code: e.reason_code.clone(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::PointsExpired(e) => Command::Expire(Expire {
            member_id,
            occurred_at: at(e.occurred_at),
        }),
        Event::ExpiryNotified(e) => Command::NotifyExpiry(NotifyExpiry {
            member_id,
            occurred_at: at(e.occurred_at),
        }),
        Event::TierChanged(e) if e.reason == TierChangeReason::Review => {
            Command::ReviewTier(ReviewTier {
                member_id,
                occurred_at: at(e.occurred_at),
            })
        }
        Event::TierChanged(_) | Event::ReferralQualified(_) | Event::ReferralRevoked(_) => {
            return Reading::Follows;
        }
    };
    Reading::Command(Replay {
        command,
        award: ImportedAward::Rules,
    })
}

/// Where a member's history is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    During,
    After,
}

/// Whether the caller should go on reading the member's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    More,
    /// A decision recorded at or after the period's end was seen: nothing later matters.
    Done,
}

/// What one kind of command came to in the what-if.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CommandCounts {
    /// Decided again (and accepted).
    pub decided: u64,
    /// Refused by the new program (counted, not fatal).
    pub refused: u64,
}

/// Counts of the what-if's work, by command and by reason of refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    commands: BTreeMap<(Basis, &'static str), CommandCounts>,
    refusals: BTreeMap<(&'static str, &'static str), u64>,
    carried_over: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn decided(&mut self, command: &Command, award: ImportedAward) {
        let key = (basis(command, award), command.name());
        let counts = self.commands.entry(key).or_default();
        counts.decided = counts.decided.saturating_add(1);
    }

    fn refused(&mut self, command: &Command, award: ImportedAward, reason: &'static str) {
        let key = (basis(command, award), command.name());
        let counts = self.commands.entry(key).or_default();
        counts.refused = counts.refused.saturating_add(1);
        let n = self.refusals.entry((command.name(), reason)).or_default();
        *n = n.saturating_add(1);
    }

    fn carried(&mut self, events: &[Event]) {
        for e in events {
            let n = self.carried_over.entry(e.event_type()).or_default();
            *n = n.saturating_add(1);
        }
    }

    fn merge(&mut self, other: Tally) {
        for (key, c) in other.commands {
            let mine = self.commands.entry(key).or_default();
            mine.decided = mine.decided.saturating_add(c.decided);
            mine.refused = mine.refused.saturating_add(c.refused);
        }
        for (key, n) in other.refusals {
            let mine = self.refusals.entry(key).or_default();
            *mine = mine.saturating_add(n);
        }
        for (key, n) in other.carried_over {
            let mine = self.carried_over.entry(key).or_default();
            *mine = mine.saturating_add(n);
        }
    }

    /// Commands refused, all kinds together.
    pub fn refused_total(&self) -> u64 {
        self.commands
            .values()
            .fold(0u64, |a, c| a.saturating_add(c.refused))
    }

    /// Commands decided again and accepted, all kinds together.
    pub fn decided_total(&self) -> u64 {
        self.commands
            .values()
            .fold(0u64, |a, c| a.saturating_add(c.decided))
    }

    /// Refusals of one command kind for one reason (a `DomainError::code`).
    pub fn refusals(&self, command: &str, reason: &str) -> u64 {
        self.refusals
            .iter()
            .filter(|((c, r), _)| *c == command && *r == reason)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// A member's figures on one side: what moved during the period, and where she stands at its
/// end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberFigures {
    /// Enrolled by the period's end.
    pub enrolled: bool,
    pub closed: bool,
    /// Awards of every kind over the period (lifetime earned, manual adjustments apart).
    pub issued: Points,
    pub redeemed: Points,
    /// Recorded expiries plus points past their expiry at the end, not yet swept.
    pub expired: Points,
    pub clawed_back: Points,
    /// At the period's end.
    pub available: Points,
    pub pending: Points,
    pub debt: Points,
    pub tier: TierRef,
}

impl MemberFigures {
    fn of(state: &MemberState, start: &Balance, end: DateTime<Utc>) -> MemberFigures {
        let b = state.balance(end);
        let (s, e) = (&start.lifetime, &b.lifetime);
        MemberFigures {
            enrolled: state.status() != MemberStatus::NotEnrolled,
            closed: state.status() == MemberStatus::Closed,
            issued: e.earned.saturating_sub(s.earned),
            redeemed: e.redeemed.saturating_sub(s.redeemed),
            expired: e.expired.saturating_sub(s.expired),
            clawed_back: e.clawed_back.saturating_sub(s.clawed_back),
            available: b.available,
            pending: b.pending,
            debt: b.debt,
            tier: state.tier().clone(),
        }
    }
}

/// One member, recorded and what-if.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOutcome {
    pub member_id: MemberId,
    pub recorded: MemberFigures,
    pub what_if: MemberFigures,
    pub tally: Tally,
}

impl MemberOutcome {
    /// What-if minus recorded available points at the period's end.
    pub fn difference(&self) -> Points {
        self.what_if
            .available
            .saturating_sub(self.recorded.available)
    }
}

/// One member's history folded twice: as recorded, and with the period's commands decided again
/// by the new program. Feed it the member's decisions in stream order; memory is the member's
/// two states.
#[derive(Debug)]
pub struct MemberWhatIf<'p> {
    member: MemberId,
    program: &'p Program,
    period: Period,
    phase: Phase,
    /// As recorded (before the period, the state both sides share).
    recorded: MemberState,
    /// Split off from `recorded` when the period starts.
    what_if: Option<MemberState>,
    /// The shared balance at the period's start (lifetime totals the period's figures count
    /// from).
    start: Option<Balance>,
    tally: Tally,
}

impl<'p> MemberWhatIf<'p> {
    pub fn new(member: MemberId, program: &'p Program, period: Period) -> Self {
        MemberWhatIf {
            member,
            program,
            period,
            phase: Phase::Before,
            recorded: MemberState::default(),
            what_if: None,
            start: None,
            tally: Tally::default(),
        }
    }

    /// Folds the next recorded decision. The period starts at the first decision recorded at
    /// or after `from` and ends at the first recorded at or after `to`: a stream is in the
    /// order its decisions were made, and a server's clock that stepped back a little does not
    /// move a decision to the other side of a boundary it had already crossed.
    pub fn apply(&mut self, decision: &RecordedDecision<'_>) -> Next {
        if self.phase == Phase::After || decision.recorded_at >= self.period.to {
            self.phase = Phase::After;
            return Next::Done;
        }
        if self.phase == Phase::Before && decision.recorded_at < self.period.from {
            for e in decision.events {
                evolve(&mut self.recorded, e);
            }
            return Next::More;
        }
        if self.phase == Phase::Before {
            self.split();
        }
        for e in decision.events {
            evolve(&mut self.recorded, e);
        }
        let Some(what_if) = self.what_if.as_mut() else {
            return Next::More;
        };
        match command_of(&self.member, what_if, decision) {
            Reading::Command(replay) => {
                let time = ServerTime {
                    now: decision.recorded_at,
                    window: ANY_TIME,
                };
                match decide_imported(what_if, &replay.command, self.program, time, replay.award) {
                    Ok(d) => {
                        for e in &d.events {
                            evolve(what_if, e);
                        }
                        self.tally.decided(&replay.command, replay.award);
                    }
                    Err(e) => self.tally.refused(&replay.command, replay.award, e.code()),
                }
            }
            Reading::Follows => {}
            Reading::NoCommand => {
                for e in decision.events {
                    evolve(what_if, e);
                }
                self.tally.carried(decision.events);
            }
        }
        Next::More
    }

    /// The period starts: both sides continue from the state recorded so far.
    fn split(&mut self) {
        self.phase = Phase::During;
        self.start = Some(self.recorded.balance(self.period.from));
        self.what_if = Some(self.recorded.clone());
    }

    /// Both sides at the period's end; `None` for a member not enrolled by then.
    pub fn finish(mut self) -> Option<MemberOutcome> {
        if self.recorded.status() == MemberStatus::NotEnrolled {
            return None;
        }
        if self.what_if.is_none() {
            self.split();
        }
        let start = self.start.take()?;
        let what_if = self.what_if.take()?;
        let end = self.period.to;
        Some(MemberOutcome {
            recorded: MemberFigures::of(&self.recorded, &start, end),
            what_if: MemberFigures::of(&what_if, &start, end),
            member_id: self.member,
            tally: self.tally,
        })
    }
}

/// A member whose available points differ between the two sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberDifference {
    pub member_id: MemberId,
    pub recorded_available: Points,
    pub what_if_available: Points,
    /// What-if minus recorded.
    pub difference: Points,
}

/// The [`TOP_DIFFERENCES`] largest differences one way, largest first (then by member id, so
/// the list does not depend on the order members were read in).
#[derive(Debug, Clone, Default)]
struct Largest(Vec<MemberDifference>);

impl Largest {
    fn offer(&mut self, d: MemberDifference) {
        let key =
            |x: &MemberDifference| (std::cmp::Reverse(x.difference.abs()), x.member_id.clone());
        let at = self.0.partition_point(|x| key(x) < key(&d));
        if at < TOP_DIFFERENCES {
            self.0.insert(at, d);
            self.0.truncate(TOP_DIFFERENCES);
        }
    }
}

/// One side's sums.
#[derive(Debug, Clone, Default)]
struct SideSums {
    issued: Points,
    redeemed: Points,
    expired: Points,
    clawed_back: Points,
    available: Points,
    pending: Points,
    debt: Points,
    closed: u64,
    /// Members (enrolled, not closed) by tier: position in the program's list, and name.
    tiers: BTreeMap<(u32, String), u64>,
}

impl SideSums {
    fn add(&mut self, f: &MemberFigures) {
        if !f.enrolled {
            return;
        }
        self.issued = self.issued.saturating_add(f.issued);
        self.redeemed = self.redeemed.saturating_add(f.redeemed);
        self.expired = self.expired.saturating_add(f.expired);
        self.clawed_back = self.clawed_back.saturating_add(f.clawed_back);
        self.available = self.available.saturating_add(f.available);
        self.pending = self.pending.saturating_add(f.pending);
        self.debt = self.debt.saturating_add(f.debt);
        if f.closed {
            self.closed = self.closed.saturating_add(1);
        } else {
            let n = self
                .tiers
                .entry((f.tier.index, f.tier.name.clone()))
                .or_default();
            *n = n.saturating_add(1);
        }
    }

    fn merge(&mut self, other: SideSums) {
        self.issued = self.issued.saturating_add(other.issued);
        self.redeemed = self.redeemed.saturating_add(other.redeemed);
        self.expired = self.expired.saturating_add(other.expired);
        self.clawed_back = self.clawed_back.saturating_add(other.clawed_back);
        self.available = self.available.saturating_add(other.available);
        self.pending = self.pending.saturating_add(other.pending);
        self.debt = self.debt.saturating_add(other.debt);
        self.closed = self.closed.saturating_add(other.closed);
        for (tier, n) in other.tiers {
            let mine = self.tiers.entry(tier).or_default();
            *mine = mine.saturating_add(n);
        }
    }

    fn finish(self, program: &Program) -> Side {
        let outstanding = self.available.saturating_add(self.pending);
        Side {
            points_issued: self.issued,
            points_redeemed: self.redeemed,
            points_expired: self.expired,
            points_clawed_back: self.clawed_back,
            points_available: self.available,
            points_pending: self.pending,
            points_outstanding: outstanding,
            debt: self.debt,
            point_value: program.point_value(),
            liability: program.points_value(outstanding).unwrap_or(Decimal::MAX),
            closed_members: self.closed,
            tiers: self
                .tiers
                .into_iter()
                .map(|((_, tier), members)| TierCount { tier, members })
                .collect(),
        }
    }
}

/// Sums over members, merged across workers.
#[derive(Debug, Clone, Default)]
pub struct WhatIfTotals {
    members: u64,
    recorded: SideSums,
    what_if: SideSums,
    better_off: u64,
    worse_off: u64,
    unchanged: u64,
    gains: Largest,
    losses: Largest,
    tally: Tally,
}

impl WhatIfTotals {
    pub fn add(&mut self, outcome: MemberOutcome) {
        self.members = self.members.saturating_add(1);
        self.recorded.add(&outcome.recorded);
        self.what_if.add(&outcome.what_if);
        let difference = outcome.difference();
        let entry = || MemberDifference {
            member_id: outcome.member_id.clone(),
            recorded_available: outcome.recorded.available,
            what_if_available: outcome.what_if.available,
            difference,
        };
        if difference.is_positive() {
            self.better_off = self.better_off.saturating_add(1);
            self.gains.offer(entry());
        } else if difference.is_negative() {
            self.worse_off = self.worse_off.saturating_add(1);
            self.losses.offer(entry());
        } else {
            self.unchanged = self.unchanged.saturating_add(1);
        }
        self.tally.merge(outcome.tally);
    }

    pub fn merge(&mut self, other: WhatIfTotals) {
        self.members = self.members.saturating_add(other.members);
        self.recorded.merge(other.recorded);
        self.what_if.merge(other.what_if);
        self.better_off = self.better_off.saturating_add(other.better_off);
        self.worse_off = self.worse_off.saturating_add(other.worse_off);
        self.unchanged = self.unchanged.saturating_add(other.unchanged);
        for d in other.gains.0 {
            self.gains.offer(d);
        }
        for d in other.losses.0 {
            self.losses.offer(d);
        }
        self.tally.merge(other.tally);
    }

    /// The comparison: the recorded side valued by the program in force, the what-if side by
    /// the new one (its point value is part of what is being tried).
    pub fn finish(self, recorded: &Program, what_if: &Program) -> WhatIfSummary {
        let commands = self
            .tally
            .commands
            .iter()
            .map(|((basis, command), c)| CommandSummary {
                command,
                basis: *basis,
                decided: c.decided,
                refused: c.refused,
            })
            .collect();
        let refusals = self
            .tally
            .refusals
            .iter()
            .map(|((command, reason), n)| RefusalCount {
                command,
                reason,
                count: *n,
            })
            .collect();
        let carried_over = self
            .tally
            .carried_over
            .iter()
            .map(|(event_type, n)| CarriedOver {
                event_type,
                events: *n,
            })
            .collect();
        WhatIfSummary {
            members: self.members,
            commands_decided: self.tally.decided_total(),
            commands_refused: self.tally.refused_total(),
            recorded: self.recorded.finish(recorded),
            what_if: self.what_if.finish(what_if),
            better_off: self.better_off,
            worse_off: self.worse_off,
            unchanged: self.unchanged,
            largest_gains: self.gains.0,
            largest_losses: self.losses.0,
            commands,
            refusals,
            carried_over,
        }
    }
}

/// Members in a tier at the period's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierCount {
    pub tier: String,
    pub members: u64,
}

/// One side of the comparison: the period's movements and the position at its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    pub points_issued: Points,
    pub points_redeemed: Points,
    pub points_expired: Points,
    pub points_clawed_back: Points,
    pub points_available: Points,
    pub points_pending: Points,
    /// Available plus pending: what the retailer owes.
    pub points_outstanding: Points,
    pub debt: Points,
    pub point_value: Decimal,
    /// `points_outstanding x point_value`.
    pub liability: Decimal,
    pub closed_members: u64,
    /// Members not closed, by tier (the program's order).
    pub tiers: Vec<TierCount>,
}

/// One kind of command: how many were decided again, how many the new program refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandSummary {
    pub command: &'static str,
    pub basis: Basis,
    pub decided: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalCount {
    pub command: &'static str,
    /// The refusal's code (`insufficient_points`...).
    pub reason: &'static str,
    pub count: u64,
}

/// Events whose command the log does not show, folded as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarriedOver {
    pub event_type: &'static str,
    pub events: u64,
}

/// The what-if, recorded beside decided again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhatIfSummary {
    /// Members enrolled by the period's end.
    pub members: u64,
    pub commands_decided: u64,
    pub commands_refused: u64,
    pub recorded: Side,
    pub what_if: Side,
    /// By available points at the period's end.
    pub better_off: u64,
    pub worse_off: u64,
    pub unchanged: u64,
    pub largest_gains: Vec<MemberDifference>,
    pub largest_losses: Vec<MemberDifference>,
    pub commands: Vec<CommandSummary>,
    pub refusals: Vec<RefusalCount>,
    pub carried_over: Vec<CarriedOver>,
}
