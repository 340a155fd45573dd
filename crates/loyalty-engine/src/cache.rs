//! A bounded cache of recent aggregate states, sharded so that commands for different members
//! rarely touch the same lock.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::Mutex;

const SHARDS: usize = 16;

/// An LRU map split in shards; the capacity is shared out among them.
pub(crate) struct ShardedLru<K, V> {
    shards: Vec<Mutex<LruCache<K, V>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    /// A cache of about `capacity` entries (at least one per shard); 0 disables caching.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| match NonZeroUsize::new(per_shard) {
                Some(cap) => Mutex::new(LruCache::new(cap)),
                None => Mutex::new(LruCache::new(NonZeroUsize::MIN)),
            })
            .collect();
        Self {
            shards: if capacity == 0 { Vec::new() } else { shards },
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> Option<&Mutex<LruCache<K, V>>> {
        if self.shards.is_empty() {
            return None;
        }
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        self.shards.get(index)
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        self.shard(key)?.lock().get(key).cloned()
    }

    /// Takes an entry out (the caller puts it back when done with it).
    pub(crate) fn take(&self, key: &K) -> Option<V> {
        self.shard(key)?.lock().pop(key)
    }

    pub(crate) fn put(&self, key: K, value: V) {
        if let Some(shard) = self.shard(&key) {
            shard.lock().put(key, value);
        }
    }

    #[cfg(test)]
    pub(crate) fn remove(&self, key: &K) {
        if let Some(shard) = self.shard(key) {
            shard.lock().pop(key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

impl<K, V> std::fmt::Debug for ShardedLru<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedLru")
            .field("shards", &self.shards.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_forgets_the_least_recently_used_entries() {
        // Given a cache of 16 entries (one per shard)
        let cache = ShardedLru::new(16);
        // When 1,000 distinct keys go in
        for i in 0..1_000u32 {
            cache.put(i, i * 2);
        }
        // Then it holds no more than its capacity, and the last key is there
        assert!(cache.len() <= 16);
        assert_eq!(cache.get(&999), Some(1_998));
    }

    #[test]
    fn a_cache_of_capacity_zero_keeps_nothing() {
        let cache = ShardedLru::new(0);
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn a_removed_entry_is_gone() {
        let cache = ShardedLru::new(100);
        cache.put("a", 1);
        cache.remove(&"a");
        assert_eq!(cache.get(&"a"), None);
    }
}
