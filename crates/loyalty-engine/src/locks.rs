//! Per-member serialisation of commands without a lock per member: a fixed array of async
//! mutexes, a member maps to one of them by hash. Two commands for one member queue up (so the
//! second one usually finds the cached state current and never conflicts); commands for
//! different members run in parallel unless they happen to share a stripe.
//! Memory stays fixed whatever the number of members.

use std::hash::{BuildHasher, Hash};

use tokio::sync::{Mutex, MutexGuard};

pub(crate) struct StripedLocks {
    stripes: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl StripedLocks {
    pub(crate) fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    /// Waits for the stripe of `key`. Never hold two stripes at once (that could deadlock).
    pub(crate) async fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, ()> {
        let index = (self.hasher.hash_one(key) as usize) % self.stripes.len();
        self.stripes[index].lock().await
    }
}

impl std::fmt::Debug for StripedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripedLocks")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}
