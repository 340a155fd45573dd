//! A bounded cache of recent aggregate states, sharded so that commands for different members
//! rarely touch the same lock. Bounded twice: in entries and in bytes (each entry says what it
//! weighs), so a few members with long histories cannot take the memory a setting allows for
//! thousands.

use std::hash::{BuildHasher, Hash};

use lru::LruCache;
use parking_lot::Mutex;

const SHARDS: usize = 16;

/// What an entry costs, roughly, in bytes.
pub(crate) trait Weighed {
    fn weight(&self) -> usize;
}

struct Shard<K: Hash + Eq, V> {
    entries: LruCache<K, (V, usize)>,
    bytes: usize,
}

/// An LRU map split in shards; both limits are shared out among them.
pub(crate) struct ShardedLru<K: Hash + Eq, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    max_entries: usize,
    max_bytes: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq, V: Weighed> ShardedLru<K, V> {
    /// A cache of about `entries` entries and `bytes` bytes (each shard gets its share, at
    /// least one entry); 0 for either disables caching.
    pub(crate) fn new(entries: usize, bytes: usize) -> Self {
        let enabled = entries > 0 && bytes > 0;
        Self {
            shards: if enabled {
                (0..SHARDS)
                    .map(|_| {
                        Mutex::new(Shard {
                            entries: LruCache::unbounded(),
                            bytes: 0,
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            },
            max_entries: entries.div_ceil(SHARDS).max(1),
            max_bytes: bytes.div_ceil(SHARDS).max(1),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> Option<&Mutex<Shard<K, V>>> {
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
        self.shard(key)?
            .lock()
            .entries
            .get(key)
            .map(|(v, _)| v.clone())
    }

    /// Takes an entry out (the caller puts it back when done with it).
    pub(crate) fn take(&self, key: &K) -> Option<V> {
        let mut shard = self.shard(key)?.lock();
        let (value, weight) = shard.entries.pop(key)?;
        shard.bytes = shard.bytes.saturating_sub(weight);
        Some(value)
    }

    /// Puts an entry in, then forgets the least recently used ones until the shard is within
    /// both limits. An entry heavier than a whole shard's share is not kept at all.
    pub(crate) fn put(&self, key: K, value: V) {
        let Some(shard) = self.shard(&key) else {
            return;
        };
        let weight = value.weight();
        let mut shard = shard.lock();
        if weight > self.max_bytes {
            if let Some((_, old)) = shard.entries.pop(&key) {
                shard.bytes = shard.bytes.saturating_sub(old);
            }
            return;
        }
        if let Some((_, old)) = shard.entries.put(key, (value, weight)) {
            shard.bytes = shard.bytes.saturating_sub(old);
        }
        shard.bytes = shard.bytes.saturating_add(weight);
        while shard.entries.len() > self.max_entries || shard.bytes > self.max_bytes {
            match shard.entries.pop_lru() {
                Some((_, (_, w))) => shard.bytes = shard.bytes.saturating_sub(w),
                None => break,
            }
        }
    }

    /// Entries and bytes held (for metrics).
    pub(crate) fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock();
            (n + s.entries.len(), b + s.bytes)
        })
    }

    #[cfg(test)]
    pub(crate) fn remove(&self, key: &K) {
        self.take(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.usage().0
    }
}

impl<K: Hash + Eq, V> std::fmt::Debug for ShardedLru<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedLru")
            .field("shards", &self.shards.len())
            .field("max_bytes_per_shard", &self.max_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weighed for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    #[test]
    fn a_full_cache_forgets_the_least_recently_used_entries() {
        // Given a cache of 16 entries (one per shard)
        let cache = ShardedLru::new(16, usize::MAX / 2);
        // When 1,000 distinct keys go in
        for i in 0..1_000u32 {
            cache.put(i, i * 2);
        }
        // Then it holds no more than its capacity, and the last key is there
        assert!(cache.len() <= 16);
        assert_eq!(cache.get(&999), Some(1_998));
    }

    #[test]
    fn heavy_entries_are_bounded_by_bytes_not_only_by_count() {
        // Given a cache of a thousand entries but 16,000 bytes (1,000 per shard)
        let cache = ShardedLru::new(1_000, 16_000);
        // When entries of 400 bytes go in
        for i in 0..1_000u32 {
            cache.put(i, 400);
        }
        // Then no shard holds more than its 1,000 bytes: at most two entries each
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 16_000, "{bytes}");
        assert!(entries <= 32, "{entries}");
        // And an entry heavier than a shard's share is not kept
        cache.put(5_000, 1_500);
        assert_eq!(cache.get(&5_000), None);
    }

    #[test]
    fn a_taken_entry_no_longer_counts() {
        let cache = ShardedLru::new(100, 100_000);
        cache.put(1u32, 700u32);
        assert_eq!(cache.usage(), (1, 700));
        assert_eq!(cache.take(&1), Some(700));
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn a_cache_of_capacity_zero_keeps_nothing() {
        let cache = ShardedLru::new(0, 1_000);
        cache.put("a", 1u32);
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn a_removed_entry_is_gone() {
        let cache = ShardedLru::new(100, 1_000);
        cache.put("a", 1u32);
        cache.remove(&"a");
        assert_eq!(cache.get(&"a"), None);
    }
}
