//! Scheduled work: expire due lots, record the notices of lots expiring soon (the program's
//! `[notices] points_expiring_days`) and run due tier reviews, for every member that needs it,
//! and once a day the program's win-back rule (`win_back.rs`).
//! Each piece of work is an ordinary command decided against the member's stream, so running it
//! twice, or on two servers at once, finds nothing left to do the second time (or loses the
//! append race, catches up and finds nothing to do).
//! Pending points need no scheduled event: balances compare `spendable_from` with "now".

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use loyalty_core::{Command, Expire, MemberId, NotifyExpiry, Outcome, Points, ReviewTier};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::metadata::CommandContext;
use crate::views::{ScheduledFailure, ScheduledReport};

pub(crate) const ACTOR: &str = "scheduler";
/// The lease under which one server runs the scheduler.
const LEASE_NAME: &str = "scheduler";
const MAX_FAILURES_LISTED: usize = 100;

struct Due {
    member: MemberId,
    expire: bool,
    notify: bool,
    review: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Done {
    expiry_run: bool,
    points_expired: i64,
    lots_expired: u64,
    notified: bool,
    reviewed: bool,
    tier_changed: bool,
    failure: Option<String>,
}

impl Engine {
    /// Expires due lots, records the notices of lots expiring within the program's notice
    /// period and runs due tier reviews as of `now`, which may not be ahead of the engine's
    /// clock (what is due is the server's call). Idempotent.
    pub async fn run_scheduled(&self, now: DateTime<Utc>) -> Result<ScheduledReport, EngineError> {
        let clock = self.inner.clock.now();
        if now > clock {
            return Err(EngineError::ScheduledAhead {
                requested: now,
                now: clock,
            });
        }
        // Pick the members from read models that include everything written so far.
        let head = self.inner.store.head_position().await?;
        self.wait_for(head).await?;
        let program = &self.inner.program;
        // The latest expiry a notice sent now covers (`None`: the program sends none). The
        // core decides with the same horizon, by the engine's clock (at or after `now`), so a
        // member selected here finds what to announce.
        let notice_until = program.points_expiring_until(now);
        let mut due = Vec::new();
        self.inner.model.for_each(|member, row| {
            let expire = row.next_due().is_some_and(|t| t <= now);
            let notify = notice_until.is_some_and(|until| row.notice_due(now, until));
            let review = row.review_due(program, now);
            if (expire || notify || review.is_some())
                && let Ok(member) = MemberId::parse(member)
            {
                due.push(Due {
                    member,
                    expire,
                    notify,
                    review,
                });
            }
        });
        let mut report = ScheduledReport {
            members_due: due.len() as u64,
            ..ScheduledReport::default()
        };
        let limit = self.inner.options.scheduler_batch_limit.max(1);
        if due.len() > limit {
            report.deferred = (due.len() - limit) as u64;
            due.truncate(limit);
        }
        let concurrency = self.inner.options.scheduler_concurrency.max(1);
        let mut results = futures::stream::iter(due)
            .map(|d| self.work_on(d, now))
            .buffer_unordered(concurrency);
        let mut points_expired = 0i64;
        while let Some((member, done)) = results.next().await {
            report.expiry_runs += u64::from(done.expiry_run);
            points_expired = points_expired.saturating_add(done.points_expired);
            report.lots_expired += done.lots_expired;
            report.expiry_notices += u64::from(done.notified);
            report.tier_reviews += u64::from(done.reviewed);
            report.tier_changes += u64::from(done.tier_changed);
            if let Some(error) = done.failure {
                report.failures_total += 1;
                if report.failures.len() < MAX_FAILURES_LISTED {
                    report.failures.push(ScheduledFailure {
                        member_id: member,
                        error,
                    });
                }
            }
        }
        report.points_expired = Points::new(points_expired);
        let win_back = self.run_win_back(now).await?;
        report.win_backs = win_back.awarded;
        report.failures_total += win_back.failed;
        report.deferred += win_back.deferred;
        Ok(report)
    }

    async fn work_on(&self, due: Due, now: DateTime<Utc>) -> (MemberId, Done) {
        let mut done = Done::default();
        let context = CommandContext::new().with_actor(ACTOR);
        if due.expire {
            let command = Command::Expire(Expire {
                member_id: due.member.clone(),
                occurred_at: now,
            });
            match self.execute_with(command, context.clone()).await {
                Ok(result) => {
                    done.expiry_run = true;
                    if let Outcome::Expired { points, lots } = result.outcome {
                        done.points_expired = points.value();
                        done.lots_expired = lots.len() as u64;
                    }
                }
                Err(e) => done.failure = Some(e.to_string()),
            }
        }
        // After the expiry: what it expired needs no notice.
        if due.notify {
            let command = Command::NotifyExpiry(NotifyExpiry {
                member_id: due.member.clone(),
                occurred_at: now,
            });
            match self.execute_with(command, context.clone()).await {
                Ok(result) => {
                    done.notified = matches!(
                        result.outcome,
                        Outcome::ExpiryNotified { ref lots, .. } if !lots.is_empty()
                    );
                }
                Err(e) => {
                    if done.failure.is_none() {
                        done.failure = Some(e.to_string());
                    }
                }
            }
        }
        if let Some(review_at) = due.review {
            let command = Command::ReviewTier(ReviewTier {
                member_id: due.member.clone(),
                occurred_at: now,
            });
            match self.execute_with(command, context).await {
                Ok(result) => {
                    done.reviewed = true;
                    match result.outcome {
                        Outcome::TierChanged { .. } => done.tier_changed = true,
                        // Nothing recorded: remember it, so the next run skips this member.
                        _ => self.inner.model.note_reviewed(&due.member, review_at),
                    }
                }
                Err(e) => {
                    if done.failure.is_none() {
                        done.failure = Some(e.to_string());
                    }
                }
            }
        }
        (due.member, done)
    }

    /// Runs [`Engine::run_scheduled`] every `every` with the engine's clock, until shutdown,
    /// while this server holds the scheduler's lease: of several servers on one store, one
    /// does the scan and the work (another takes over within the lease's time-to-live and a
    /// third after it dies).
    pub fn spawn_scheduler(&self, every: Duration) -> JoinHandle<()> {
        let engine = self.clone();
        let mut shutdown = self.inner.shutdown.subscribe();
        let every = every.max(Duration::from_millis(10));
        let lease = self.spawn_lease(LEASE_NAME);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
                if *shutdown.borrow() {
                    return;
                }
                if !lease.is_held() {
                    tracing::debug!("scheduled work runs on the server holding its lease");
                    continue;
                }
                engine
                    .inner
                    .scheduled_runs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match engine.run_scheduled(engine.inner.clock.now()).await {
                    Ok(report) => {
                        if report.members_due > 0 {
                            tracing::info!(
                                members = report.members_due,
                                points_expired = report.points_expired.value(),
                                expiry_notices = report.expiry_notices,
                                tier_changes = report.tier_changes,
                                failures = report.failures_total,
                                "scheduled work done"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "scheduled work failed"),
                }
            }
        })
    }
}
