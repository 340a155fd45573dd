//! Quotes: what a purchase would earn if it were recorded now, decided exactly as
//! [`Engine::execute`] would decide it, with nothing appended, reserved or cached.
//!
//! A quote loads the member's state as a command does on a cache miss (`Engine::load_hot`), runs the core's
//! `decide` with the server's clock and accepted window (so a basket a real purchase would
//! refuse is refused with the same [`loyalty_core::DomainError`]), and folds the decided events
//! onto a copy of the member's read-model row, the row the member's profile is computed from:
//! the balances and the tier progress of a quote are the profile's own computation
//! (`MemberRow::balance_view`, `MemberRow::tier_view`), before and after the purchase. The
//! row's fold is the core's (`loyalty_core::fold`), the accounting `evolve` runs.
//!
//! A quote never looks at idempotency: it quotes the basket as if it were new. A transaction id
//! already recorded for this member is not answered with the recorded outcome: the basket is
//! decided as a new sale (under an id the member never used, the outcome then naming the
//! request's id again), so the quote says what the same basket would earn now. Nor does a
//! quote check that the transaction id is not another member's: that is the reservation's
//! job, when the purchase is recorded.

use chrono::{DateTime, Utc};
use loyalty_core::{
    CampaignId, Command, DomainError, Event, LineAward, MemberId, MemberState, Outcome,
    RecordPurchase, RuleAward, ServerTime, TransactionId, decide,
};
use rust_decimal::Decimal;

use crate::codec::member_stream;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::views::{BalanceView, TierView};

/// Ids tried, at most, for a basket whose transaction id the member already used.
const MAX_QUOTE_IDS: u32 = 1_000;

/// What a purchase would do if recorded now ([`Engine::quote`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub member_id: MemberId,
    /// The server's clock the purchase was decided at and the balances and tier are evaluated
    /// at.
    pub as_of: DateTime<Utc>,
    /// Revision of the member's stream the quote was decided on.
    pub stream_revision: u64,
    /// The outcome the purchase would have: always [`Outcome::PurchaseRecorded`], naming the
    /// request's transaction id.
    pub outcome: Outcome,
    /// The basket's lines in the request's order, each with the points of every rule that
    /// applied to it.
    pub lines: Vec<LineAward>,
    /// Rules that would award the purchase as a whole (fixed campaign bonuses, a cap).
    pub transaction_rules: Vec<RuleAward>,
    /// What would count as qualifying spend.
    pub eligible_amount: Decimal,
    pub campaigns_applied: Vec<CampaignId>,
    /// The member's balance now, as the profile shows it.
    pub balance_before: BalanceView,
    /// The balance the profile would show once the purchase is recorded (its `stream_revision`
    /// is the one the purchase would reach).
    pub balance_after: BalanceView,
    /// The tier and its progress the profile would show once the purchase is recorded (the
    /// next tier when the purchase would cross a threshold).
    pub tier_after: TierView,
}

impl Engine {
    /// Quotes `purchase`: the points it would earn now, per line and per rule, and the member's
    /// balance and tier progress after it, without appending, reserving or caching anything
    /// (see the module's documentation; idempotency is not consulted).
    pub async fn quote(&self, purchase: RecordPurchase) -> Result<Quote, EngineError> {
        if self.is_shut_down() {
            return Err(EngineError::ShutDown);
        }
        let inner = &self.inner;
        let member = purchase.member_id.clone();
        // The member's state, read as a command reads it on a cache miss (her snapshot in the
        // store and the events after it), into a state of the quote's own: the cache is neither
        // read (another server may have written since) nor filled.
        let mut loaded = self.load_hot(&member).await?;
        let mut attempts: u32 = 1;
        loop {
            let now = inner.clock.now();
            let time = ServerTime {
                now,
                window: inner.options.time_window,
            };
            let (command, quoted_id) = as_new(&loaded.state, &purchase)?;
            let decision = decide(&loaded.state, &command, &inner.program, time)?;
            let revision = loaded
                .revision
                .ok_or_else(|| EngineError::Corrupt(format!("{member} decided without events")))?;
            // The profile's row at the revision the purchase was decided on.
            self.wait_for(loaded.position).await?;
            let row = inner
                .model
                .get(member.as_str())
                .filter(|row| row.revision == revision);
            let Some(mut row) = row else {
                // Another write reached the member meanwhile: decide again on it.
                if attempts > inner.options.max_conflict_retries {
                    return Err(EngineError::Conflict {
                        stream: member_stream(&member),
                        attempts,
                    });
                }
                attempts = attempts.saturating_add(1);
                self.catch_up(&member, &mut loaded).await?;
                continue;
            };
            let balance_before = row.balance_view(&member, now);
            let tz = inner.model.timezone();
            for event in &decision.events {
                row.apply(event, tz);
            }
            let appended = u64::try_from(decision.events.len()).unwrap_or(u64::MAX);
            row.revision = revision.saturating_add(appended);
            let Some(Event::PurchaseRecorded(recorded)) = decision
                .events
                .iter()
                .find(|e| matches!(e, Event::PurchaseRecorded(_)))
            else {
                return Err(EngineError::Corrupt(
                    "a purchase was decided without PurchaseRecorded".into(),
                ));
            };
            let mut outcome = decision.outcome.clone();
            if quoted_id.is_some()
                && let Outcome::PurchaseRecorded { transaction_id, .. } = &mut outcome
            {
                transaction_id.clone_from(&purchase.transaction_id);
            }
            return Ok(Quote {
                member_id: member.clone(),
                as_of: now,
                stream_revision: revision,
                outcome,
                lines: recorded.lines.clone(),
                transaction_rules: recorded.transaction_rules.clone(),
                eligible_amount: recorded.eligible_amount,
                campaigns_applied: recorded.campaigns_applied.clone(),
                balance_before,
                balance_after: row.balance_view(&member, now),
                tier_after: row.tier_view(&member, &inner.program, now),
            });
        }
    }
}

/// The purchase as a new sale of the member: as given when its client id was never processed
/// (and not retired by the hot state), else under an id the member never used (returned).
fn as_new(
    state: &MemberState,
    purchase: &RecordPurchase,
) -> Result<(Command, Option<TransactionId>), EngineError> {
    let seen = |command: &Command| {
        state.needs_history(command)
            || command
                .client_id()
                .is_some_and(|id| state.processed(&id).is_some())
    };
    let command = Command::RecordPurchase(purchase.clone());
    if !seen(&command) {
        return Ok((command, None));
    }
    for n in 0..MAX_QUOTE_IDS {
        let id = TransactionId::parse(format!("quote.{n}"))?;
        let command = Command::RecordPurchase(RecordPurchase {
            transaction_id: id.clone(),
            ..purchase.clone()
        });
        if !seen(&command) {
            return Ok((command, Some(id)));
        }
    }
    // A member with a thousand sales named like quotes: the domain's answer to an id in use.
    Err(DomainError::IdempotencyConflict {
        client_id: Command::RecordPurchase(purchase.clone())
            .client_id()
            .unwrap_or_default(),
    }
    .into())
}
