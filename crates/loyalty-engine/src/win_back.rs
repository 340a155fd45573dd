//! The program's win-back rule, applied by the scheduler once a day: members whose purchase
//! model says they are probably gone (P(alive) below the rule's threshold), or who have not
//! bought for the rule's number of days, get its bonus, at most once per its period.
//!
//! The engine measures (the model's P(alive) and its version, the days since the last
//! purchase) and sends the measurements in a `WinBack` command; the core checks them against
//! the rule and records them in `WinBackAwarded`, so replay never measures again.

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use loyalty_analytics::RepeatSummary;
use loyalty_core::{Command, DomainError, MemberId, MemberStatus, WinBack};
use rust_decimal::Decimal;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::metadata::CommandContext;
use crate::readmodel::nanos;

/// What one day's run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WinBackRun {
    pub(crate) awarded: u64,
    pub(crate) failed: u64,
    /// Selected but over the batch limit: the next scheduler run takes them.
    pub(crate) deferred: u64,
}

impl Engine {
    /// Runs the win-back rule for the local day of `now`, unless it already ran that day.
    pub(crate) async fn run_win_back(&self, now: DateTime<Utc>) -> Result<WinBackRun, EngineError> {
        let program = self.inner.program.clone();
        let Some(rule) = program.win_back.clone() else {
            return Ok(WinBackRun::default());
        };
        let tz = program.timezone();
        let today = loyalty_core::calendar::local_date(now, tz);
        if *self.inner.win_back_ran_on.lock() == Some(today) {
            return Ok(WinBackRun::default());
        }
        // The model sees whole days: it is calibrated on the history up to yesterday.
        let models = match rule.below_p_alive {
            Some(_) => match self.models(today.pred_opt()).await {
                Ok(models) => Some(models),
                Err(e) => {
                    tracing::warn!(error = %e, "win-back: no purchase model, inactivity only");
                    None
                }
            },
            None => None,
        };
        let engine = self.clone();
        let rule_for_scan = rule.clone();
        let mut selected = tokio::task::spawn_blocking(move || {
            let rule = rule_for_scan;
            let period = TimeDelta::days(i64::from(rule.once_every_days));
            let since = nanos(now - period);
            let mut selected = Vec::new();
            engine.inner.model.for_each(|member, row| {
                if row.status() != MemberStatus::Active || row.last_win_back_at > since {
                    return;
                }
                let Some(summary) = row.summary(member, tz) else {
                    return;
                };
                let days = u32::try_from(summary.frequency_by(today)).unwrap_or(u32::MAX);
                let Some(last) = summary.last_purchase_by(today) else {
                    return;
                };
                let inactive_days = u32::try_from((today - last).num_days()).unwrap_or(0);
                let p_alive = models.as_ref().and_then(|m| {
                    let s = RepeatSummary::of(&summary, m.calibration_end, m.unit)?;
                    let p = m.bg_nbd.params.p_alive(s.frequency, s.recency, s.age);
                    Decimal::from_f64_retain(p).map(|d| d.round_dp(4))
                });
                if rule.qualifies(p_alive, inactive_days, days)
                    && let Ok(member_id) = MemberId::parse(member)
                {
                    selected.push(WinBack {
                        member_id,
                        occurred_at: now,
                        p_alive,
                        inactive_days,
                        purchase_days: days,
                        model_version: p_alive.and(models.as_ref()).map(|m| m.version.clone()),
                    });
                }
            });
            selected
        })
        .await
        .map_err(|e| EngineError::Corrupt(format!("the win-back scan failed: {e}")))?;
        let mut run = WinBackRun::default();
        let limit = self.inner.options.scheduler_batch_limit.max(1);
        if selected.len() > limit {
            run.deferred = (selected.len() - limit) as u64;
            selected.truncate(limit);
        }
        let context = CommandContext::new().with_actor(crate::scheduler::ACTOR);
        let concurrency = self.inner.options.scheduler_concurrency.max(1);
        let mut results = futures::stream::iter(selected)
            .map(|c| self.execute_with(Command::WinBack(c), context.clone()))
            .buffer_unordered(concurrency);
        while let Some(result) = results.next().await {
            match result {
                Ok(r) if !r.replayed => run.awarded += 1,
                // Already granted today (another server), or the member changed since the
                // scan: the rule said no, which is not a failure.
                Ok(_)
                | Err(EngineError::Domain(
                    DomainError::WinBackTooSoon { .. }
                    | DomainError::WinBackNotDue
                    | DomainError::MemberSuspended
                    | DomainError::MemberClosed,
                )) => {}
                Err(e) => {
                    run.failed += 1;
                    tracing::warn!(error = %e, "win-back failed for a member");
                }
            }
        }
        // Done for the day once nobody is left over; failures are tried again tomorrow.
        if run.deferred == 0 {
            *self.inner.win_back_ran_on.lock() = Some(today);
        }
        Ok(run)
    }
}
