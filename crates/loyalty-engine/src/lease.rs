//! Leases held through the event store, so that work meant to run once across servers (the
//! scheduler, the referral process manager) runs on one server at a time, and another takes
//! over within a bounded time after the holder dies.
//!
//! A lease is the stream `lease-<name>`. Its last event says who holds it and until when (on
//! the writer's clock). A server takes or renews it with an append that expects the revision
//! it read: of two servers racing for it, one append wins and the other gets a conflict. A
//! holder renews every third of the time-to-live; a holder that dies stops renewing, and once
//! the recorded `until` has passed on another server's clock that server takes the lease.
//! So the lease changes hands within `ttl + ttl / 3` after its holder dies, and at once when
//! the holder shuts down in order (it writes a release).
//!
//! The holder stops working once `ttl` has passed on its own monotonic clock since it sent
//! its last successful renewal, which is before `until` on any clock that agrees with its
//! own. Servers whose clocks disagree by more than that margin may briefly both work: the work
//! done under a lease is idempotent (every command it issues is keyed and decided against the
//! member's stream), so an overlap costs duplicate effort, never a duplicate effect. The
//! lease is an efficiency and load guarantee, not what keeps the ledger right.
//!
//! The stream stays bounded: after every [`TRUNCATE_EVERY`] renewals the events before the
//! last one are truncated.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loyalty_store::{
    Bytes, CurrentRevision, Direction, EventData, EventStore, ExpectedRevision, StoreError,
    StreamFrom,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::EngineError;

pub const LEASE_PREFIX: &str = "lease-";
const LEASE_EVENT: &str = "LeaseHeld";
/// The events of a lease stream before its last are truncated every this many renewals.
const TRUNCATE_EVERY: u64 = 32;

/// The stored lease: who holds it, until when (on the holder's clock).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StoredLease {
    holder: String,
    until: DateTime<Utc>,
}

pub(crate) fn stream_name(name: &str) -> String {
    format!("{LEASE_PREFIX}{name}")
}

/// A holder's view of its lease: whether it may work now.
#[derive(Debug, Clone)]
pub struct LeaseHandle {
    /// The monotonic instant until which this server holds the lease; `None`: not held.
    held_until: watch::Receiver<Option<Instant>>,
}

impl LeaseHandle {
    /// Whether this server holds the lease now.
    pub fn is_held(&self) -> bool {
        self.held_until
            .borrow()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Waits until this server holds the lease; `false` if the keeper stopped (shutdown).
    pub async fn wait_held(&mut self) -> bool {
        loop {
            if self.is_held() {
                return true;
            }
            if self.held_until.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Resolves once the lease is no longer held (lost, lapsed, or the keeper stopped).
    pub async fn lost(&mut self) {
        loop {
            let until = *self.held_until.borrow_and_update();
            match until {
                Some(until) if Instant::now() < until => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        changed = self.held_until.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                    }
                }
                _ => return,
            }
        }
    }
}

/// Who may take a lease, for how long, on which store.
pub(crate) struct Keeper {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) name: String,
    /// This server's id (unique per process).
    pub(crate) holder: String,
    pub(crate) ttl: Duration,
}

/// What an attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// Taken or renewed with the event at `revision`: held until this monotonic instant.
    Held { until: Instant, revision: u64 },
    /// Another server holds it (or won the race for it).
    Elsewhere,
}

impl Keeper {
    /// Takes or renews the lease, every third of the time-to-live, until shutdown; releases
    /// it at shutdown if held.
    pub(crate) fn spawn(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> (JoinHandle<()>, LeaseHandle) {
        let (tx, rx) = watch::channel(None);
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut revision = None;
            loop {
                if *shutdown.borrow() {
                    break;
                }
                match self.attempt().await {
                    Ok(Attempt::Held {
                        until,
                        revision: at,
                    }) => {
                        revision = Some(at);
                        tx.send_replace(Some(until));
                    }
                    Ok(Attempt::Elsewhere) => {
                        revision = None;
                        tx.send_replace(None);
                    }
                    // The store did not answer: a lease renewed before stays good until it
                    // lapses by itself (`LeaseHandle::is_held` checks the time).
                    Err(e) => tracing::warn!(lease = %self.name, error = %e,
                        "lease not renewed this time"),
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => {}
                }
            }
            let held = tx.borrow().is_some_and(|until| Instant::now() < until);
            tx.send_replace(None);
            if let (true, Some(revision)) = (held, revision) {
                self.release(revision).await;
            }
        });
        (task, LeaseHandle { held_until: rx })
    }

    /// One try at taking or renewing the lease.
    async fn attempt(&self) -> Result<Attempt, EngineError> {
        let stream = stream_name(&self.name);
        let sent = Instant::now();
        let now = self.clock.now();
        let last = self
            .store
            .read_stream(&stream, StreamFrom::End, Direction::Backwards, 1)
            .await?;
        let expected = match last.first() {
            Some(event) => {
                let current: StoredLease = serde_json::from_slice(&event.data).map_err(|e| {
                    EngineError::Corrupt(format!(
                        "lease {} at revision {}: {e}",
                        self.name, event.revision
                    ))
                })?;
                if current.holder != self.holder && now < current.until {
                    return Ok(Attempt::Elsewhere);
                }
                ExpectedRevision::Exact(event.revision)
            }
            // Every event truncated (never done by a keeper, which keeps the last), or none.
            None => match self.store.stream_revision(&stream).await? {
                CurrentRevision::NoStream => ExpectedRevision::NoStream,
                CurrentRevision::Current(r) => ExpectedRevision::Exact(r),
            },
        };
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let until = now.checked_add_signed(ttl).unwrap_or(now);
        match self.write(&stream, expected, until).await {
            Ok(revision) => {
                crate::bounded::keep_last(self.store.as_ref(), &stream, revision, TRUNCATE_EVERY)
                    .await;
                Ok(Attempt::Held {
                    until: sent + self.ttl,
                    revision,
                })
            }
            // Another server took or renewed it between our read and our append.
            Err(StoreError::WrongExpectedRevision { .. }) => Ok(Attempt::Elsewhere),
            Err(e) => Err(e.into()),
        }
    }

    async fn write(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let data = serde_json::to_vec(&StoredLease {
            holder: self.holder.clone(),
            until,
        })
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let event = EventData {
            // Random, not the engine's id generator: two servers' lease events must never
            // share an id (the store would take the second for a retry of the first).
            id: uuid::Uuid::new_v4(),
            event_type: LEASE_EVENT.to_owned(),
            schema_version: 1,
            data: Bytes::from(data),
            metadata: Bytes::from_static(b"{}"),
        };
        let written = self.store.append(stream, expected, vec![event]).await?;
        Ok(written.next_expected_revision)
    }

    /// Hands the lease back at shutdown (until = now), so another server takes it at once.
    /// Expects the revision of our last renewal: if another server has taken it meanwhile,
    /// nothing is written.
    async fn release(&self, revision: u64) {
        let stream = stream_name(&self.name);
        let now = self.clock.now();
        match self
            .write(&stream, ExpectedRevision::Exact(revision), now)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "lease released"),
            Err(e) => tracing::debug!(lease = %self.name, error = %e, "lease not released"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loyalty_store::InMemoryStore;

    use super::*;
    use crate::clock::ManualClock;

    const TTL: Duration = Duration::from_secs(30);

    fn keeper(store: &Arc<InMemoryStore>, clock: &Arc<ManualClock>, holder: &str) -> Keeper {
        Keeper {
            store: store.clone(),
            clock: clock.clone(),
            name: "work".to_owned(),
            holder: holder.to_owned(),
            ttl: TTL,
        }
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            "2026-03-01T12:00:00Z".parse().expect("a time"),
        ))
    }

    #[tokio::test]
    async fn the_first_server_takes_the_lease_and_the_second_finds_it_held() {
        let store = Arc::new(InMemoryStore::new());
        let clock = clock();
        let (a, b) = (keeper(&store, &clock, "a"), keeper(&store, &clock, "b"));
        assert!(matches!(
            a.attempt().await.expect("a"),
            Attempt::Held { revision: 0, .. }
        ));
        assert!(matches!(b.attempt().await.expect("b"), Attempt::Elsewhere));
        // The holder renews its own lease.
        assert!(matches!(
            a.attempt().await.expect("a"),
            Attempt::Held { revision: 1, .. }
        ));
    }

    #[tokio::test]
    async fn another_server_takes_a_lease_once_it_has_lapsed_on_its_clock() {
        let store = Arc::new(InMemoryStore::new());
        let clock = clock();
        let (a, b) = (keeper(&store, &clock, "a"), keeper(&store, &clock, "b"));
        a.attempt().await.expect("a");
        clock.advance(chrono::Duration::seconds(29));
        assert!(matches!(b.attempt().await.expect("b"), Attempt::Elsewhere));
        clock.advance(chrono::Duration::seconds(2));
        assert!(matches!(
            b.attempt().await.expect("b"),
            Attempt::Held { revision: 1, .. }
        ));
        // And the one that died and came back finds it taken.
        assert!(matches!(a.attempt().await.expect("a"), Attempt::Elsewhere));
    }

    #[tokio::test]
    async fn of_two_servers_racing_for_a_free_lease_exactly_one_wins() {
        let store = Arc::new(InMemoryStore::new());
        let clock = clock();
        for round in 0..20 {
            let keepers: Vec<Keeper> = (0..4)
                .map(|i| Keeper {
                    name: format!("race-{round}"),
                    ..keeper(&store, &clock, &format!("server-{i}"))
                })
                .collect();
            let attempts = futures::future::join_all(keepers.iter().map(Keeper::attempt)).await;
            let won = attempts
                .into_iter()
                .filter(|a| matches!(a, Ok(Attempt::Held { .. })))
                .count();
            assert_eq!(won, 1, "round {round}");
        }
    }

    #[tokio::test]
    async fn a_lease_stream_keeps_only_its_last_events() {
        let store = Arc::new(InMemoryStore::new());
        let clock = clock();
        let a = keeper(&store, &clock, "a");
        for _ in 0..(3 * TRUNCATE_EVERY) {
            a.attempt().await.expect("renew");
        }
        let kept = store
            .read_stream(
                &stream_name("work"),
                StreamFrom::Start,
                Direction::Forwards,
                1000,
            )
            .await
            .expect("read");
        assert!(kept.len() <= TRUNCATE_EVERY as usize, "{} kept", kept.len());
        assert_eq!(
            store
                .stream_revision(&stream_name("work"))
                .await
                .expect("rev"),
            CurrentRevision::Current(3 * TRUNCATE_EVERY - 1)
        );
    }

    #[tokio::test]
    async fn a_keeper_releases_its_lease_at_shutdown_and_another_takes_it_at_once() {
        let store = Arc::new(InMemoryStore::new());
        let clock = clock();
        let (shutdown, rx) = watch::channel(false);
        let (task, mut handle) = keeper(&store, &clock, "a").spawn(rx);
        assert!(handle.wait_held().await);
        let b = keeper(&store, &clock, "b");
        assert!(matches!(b.attempt().await.expect("b"), Attempt::Elsewhere));
        shutdown.send_replace(true);
        task.await.expect("keeper");
        assert!(!handle.is_held());
        // No time has passed on the clock: the release is what lets b in.
        assert!(matches!(
            b.attempt().await.expect("b"),
            Attempt::Held { .. }
        ));
    }

    #[tokio::test]
    async fn a_holder_that_dies_without_releasing_is_replaced_once_its_lease_lapses() {
        let store = Arc::new(InMemoryStore::new());
        let clock = clock();
        let (_shutdown, rx) = watch::channel(false);
        let (task, mut handle) = keeper(&store, &clock, "a").spawn(rx);
        assert!(handle.wait_held().await);
        task.abort(); // as a SIGKILL would: no release
        let _ = task.await;
        let b = keeper(&store, &clock, "b");
        assert!(matches!(b.attempt().await.expect("b"), Attempt::Elsewhere));
        clock.advance(chrono::Duration::from_std(TTL).expect("ttl") + chrono::Duration::seconds(1));
        assert!(matches!(
            b.attempt().await.expect("b"),
            Attempt::Held { .. }
        ));
    }
}
