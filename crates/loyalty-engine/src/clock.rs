//! Time and ids come in from outside so that tests (and replays) are deterministic.

use std::fmt;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use parking_lot::Mutex;
use uuid::Uuid;

/// Where the engine reads "now" (the recorded time of events, due dates of scheduled work).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: tests set the business day they need.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock() = now;
    }

    pub fn advance(&self, by: ChronoDuration) {
        let mut now = self.now.lock();
        *now += by;
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.now.lock())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}

/// Where event ids come from. The store deduplicates a retried append by its event ids, so the
/// ids of one append are generated once and reused by every attempt of that append.
pub trait IdGenerator: Send + Sync + 'static {
    fn event_id(&self) -> Uuid;
}

/// Random (version 4) UUIDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn event_id(&self) -> Uuid {
        Uuid::new_v4()
    }
}

/// Counts up from a seed: reproducible ids for tests.
#[derive(Debug)]
pub struct SequentialIds {
    next: Mutex<u128>,
}

impl SequentialIds {
    pub fn new(start: u128) -> Self {
        Self {
            next: Mutex::new(start),
        }
    }
}

impl Default for SequentialIds {
    fn default() -> Self {
        Self::new(1)
    }
}

impl IdGenerator for SequentialIds {
    fn event_id(&self) -> Uuid {
        let mut next = self.next.lock();
        let id = Uuid::from_u128(*next);
        *next = next.wrapping_add(1);
        id
    }
}
