//! The referral process manager: when a newcomer's stream records `ReferralQualified`, credit
//! the referrer; when it records `ReferralRevoked` (the qualifying purchase was refunded), take
//! the referrer's bonus back. It reads `$all` (member streams) from its stored checkpoint, in
//! order, so a revocation is always handled after the credit it undoes. Both commands are keyed
//! by the newcomer, so handling an event twice (after a restart with a lagging checkpoint, or on
//! two servers at once) is a replay, never a second bonus or a second clawback.

use std::time::Duration;

use loyalty_core::{Command, CreditReferralBonus, Event, RevokeReferralBonus};
use loyalty_store::{Position, RecordedEvent, StreamFilter, SubscriptionMessage};
use tokio::task::JoinHandle;

use crate::checkpoint;
use crate::codec::{self, MEMBER_PREFIX};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::lease::LeaseHandle;
use crate::metadata::CommandContext;
use crate::runner;

pub(crate) const CHECKPOINT_NAME: &str = "referrals";
/// The lease under which one server runs the process manager.
const LEASE_NAME: &str = "referrals";
pub(crate) const ACTOR: &str = "referral-process-manager";
const QUALIFIED: &str = "ReferralQualified";
const REVOKED: &str = "ReferralRevoked";
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs the process manager on the server that holds its lease: from the checkpoint the last
/// holder stored, until shutdown or until the lease is lost (another server then goes on from
/// the stored checkpoint; what it handles twice is a replay).
pub(crate) fn spawn(engine: Engine) -> JoinHandle<()> {
    let mut lease = engine.spawn_lease(LEASE_NAME);
    let mut shutdown = engine.inner.shutdown.subscribe();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(10);
        'lease: loop {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                held = lease.wait_held() => if !held { return },
                _ = shutdown.changed() => return,
            }
            let from = match checkpoint::load(engine.inner.store.as_ref(), CHECKPOINT_NAME).await {
                Ok(from) => from,
                Err(e) => {
                    tracing::warn!(error = %e, "referral checkpoint not readable yet, retrying");
                    if pause(&mut shutdown, &mut backoff).await {
                        return;
                    }
                    continue;
                }
            };
            tracing::info!(%from, "referral process manager runs here (lease held)");
            let mut manager = Manager {
                engine: engine.clone(),
                handled: from,
                stored: from,
                since_store: 0,
            };
            loop {
                let stop = manager.run(&mut shutdown, &mut lease).await;
                if let Err(e) = manager.store_checkpoint().await {
                    tracing::warn!(error = %e, "referral checkpoint not stored");
                }
                match stop {
                    Ok(Stop::Shutdown) => return,
                    Ok(Stop::LeaseLost) => {
                        tracing::info!("referral process manager stops here (lease lost)");
                        continue 'lease;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "referral process manager failed, resuming");
                        if pause(&mut shutdown, &mut backoff).await {
                            return;
                        }
                        if !lease.is_held() {
                            continue 'lease;
                        }
                    }
                }
            }
        }
    })
}

/// Sleeps for the backoff (then doubles it, up to [`MAX_BACKOFF`]); true if shutdown was asked
/// meanwhile.
async fn pause(shutdown: &mut tokio::sync::watch::Receiver<bool>, backoff: &mut Duration) -> bool {
    let stop = runner::pause(shutdown, *backoff).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    stop
}

/// Why a run ended without a failure.
enum Stop {
    Shutdown,
    LeaseLost,
}

struct Manager {
    engine: Engine,
    /// Every event up to here was handled.
    handled: Position,
    /// The checkpoint in the store.
    stored: Position,
    since_store: usize,
}

impl Manager {
    /// Runs until shutdown or the lease is lost (`Ok`), or a failure (`Err`: resumed from
    /// `handled`).
    async fn run(
        &mut self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        lease: &mut LeaseHandle,
    ) -> Result<Stop, EngineError> {
        let mut subscription = self
            .engine
            .inner
            .store
            .subscribe_all(self.handled, StreamFilter::prefixes([MEMBER_PREFIX]))
            .await?;
        loop {
            let message = tokio::select! {
                m = subscription.next() => m,
                _ = shutdown.changed() => return Ok(Stop::Shutdown),
                () = lease.lost() => return Ok(Stop::LeaseLost),
            };
            match message {
                Some(Ok(SubscriptionMessage::Event(recorded))) => {
                    self.handle(&recorded, shutdown).await?;
                    self.handled = recorded.position;
                    self.since_store += 1;
                    if self.since_store >= self.engine.inner.options.projection_checkpoint_every {
                        self.store_checkpoint().await?;
                    }
                }
                Some(Ok(SubscriptionMessage::CaughtUp { .. })) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(EngineError::Store(loyalty_store::StoreError::Closed)),
            }
        }
    }

    async fn handle(
        &self,
        recorded: &RecordedEvent,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), EngineError> {
        if recorded.event_type != QUALIFIED && recorded.event_type != REVOKED {
            return Ok(());
        }
        let Some(newcomer) = codec::member_of_stream(&recorded.stream) else {
            return Ok(());
        };
        // An event of our type that does not decode (written by something else, or damaged)
        // is skipped with a warning: stopping here would stall every referral after it. The
        // read models count it and `verify` lists it. One a newer release wrote is not
        // skipped: that release reads it, so this server stops before it (and retries with
        // backoff) rather than lose the referral it records.
        let event = match codec::decode(recorded) {
            Ok(event) => event,
            Err(e @ EngineError::NewerSchema(_)) => {
                tracing::error!(error = %e, "referral process manager stopped: upgrade this server");
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(stream = %recorded.stream, position = %recorded.position,
                    error = %e, "referral process manager skips an unreadable event");
                return Ok(());
            }
        };
        let command = match event {
            Event::ReferralQualified(qualified) => {
                Command::CreditReferralBonus(CreditReferralBonus {
                    member_id: qualified.referrer,
                    newcomer: newcomer.clone(),
                    occurred_at: qualified.occurred_at,
                })
            }
            Event::ReferralRevoked(revoked) => Command::RevokeReferralBonus(RevokeReferralBonus {
                member_id: revoked.referrer,
                newcomer: newcomer.clone(),
                reason: revoked.reason,
                occurred_at: revoked.occurred_at,
            }),
            _ => return Ok(()),
        };
        let referrer = command.member_id().clone();
        let context = CommandContext::new()
            .with_causation_id(recorded.id.to_string())
            .with_actor(ACTOR);
        let mut backoff = Duration::from_millis(10);
        loop {
            match self
                .engine
                .execute_with(command.clone(), context.clone())
                .await
            {
                Ok(_) => return Ok(()),
                // The domain's no is final (referrer closed, no referral rule): retrying
                // cannot change it. Logged for operators; the log keeps the newcomer's event.
                Err(EngineError::Domain(e)) => {
                    tracing::warn!(%referrer, %newcomer, command = command.name(), error = %e,
                        "referral command refused");
                    return Ok(());
                }
                Err(EngineError::ShutDown) => return Err(EngineError::ShutDown),
                Err(e) => {
                    tracing::warn!(error = %e, command = command.name(),
                        "referral command not delivered yet, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Err(EngineError::ShutDown),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn store_checkpoint(&mut self) -> Result<(), EngineError> {
        if self.handled > self.stored {
            checkpoint::store(
                self.engine.inner.store.as_ref(),
                self.engine.inner.ids.as_ref(),
                CHECKPOINT_NAME,
                self.handled,
            )
            .await?;
            self.stored = self.handled;
        }
        self.since_store = 0;
        Ok(())
    }
}
