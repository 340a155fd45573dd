//! The key vault: per-member data keys kept outside the log, for crypto-shredding.
//!
//! The log is append-only and hash-chained, so personal data written into it in the clear could
//! never be erased without breaking the chain. The engine therefore seals personal data (support
//! notes) with a key of the member's before appending it; the key lives here, in a table beside
//! the log, never in an event. Erasing a member destroys their keys: the sealed bytes stay in the
//! log (and the chain still verifies) but nobody can read them any more.
//!
//! **Contract** every vault keeps (and the conformance suite checks):
//! - a member has at most one live key; [`KeyVault::key_for`] returns it, creating it (32 random
//!   bytes) on first use or after an erasure, and concurrent callers get the same key;
//! - [`KeyVault::key`] finds a live key by id, and answers `None` for a destroyed one;
//! - [`KeyVault::erase`] destroys every key the member has and records when; it returns once
//!   the destruction is durable and the key bytes are gone from the backend's files (as far
//!   as the backend can: see each one's notes). Erasing again is harmless: it destroys nothing
//!   more and reports 0 keys;
//! - [`KeyVault::erased_at`] answers the latest time given to `erase` for the member, kept to
//!   the microsecond at least (PostgreSQL keeps microseconds);
//! - a vault taken from a store ([`crate::EventStore::key_vault`]) works while the store is
//!   open, and keeps nothing open itself: once the store is closed it answers
//!   [`StoreError::Closed`].
//!
//! The backends: [`MemoryVault`] (the in-memory store's; nothing survives the process), the
//! SQLite store's (`loyalty_store_sqlite::SqliteKeyVault`, in the store's file or a key file of
//! its own), and the PostgreSQL store's (tables in the store's schema).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreError;

/// Bytes of a member key (XChaCha20-Poly1305 takes 256-bit keys).
pub const KEY_BYTES: usize = 32;

/// A member's data key.
#[derive(Clone, PartialEq, Eq)]
pub struct MemberKey {
    /// Names the key in sealed data: `k_` and 32 lowercase hex digits, random.
    pub key_id: String,
    pub member_id: String,
    pub secret: [u8; KEY_BYTES],
}

impl std::fmt::Debug for MemberKey {
    // Never print the secret, not even in a test's failure message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberKey")
            .field("key_id", &self.key_id)
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub member_id: String,
    /// Keys destroyed by this call (0 when the member had none left).
    pub keys_destroyed: u64,
    pub erased_at: DateTime<Utc>,
}

#[async_trait]
pub trait KeyVault: Send + Sync + std::fmt::Debug + 'static {
    /// The member's live key, created if there is none.
    async fn key_for(&self, member_id: &str) -> Result<MemberKey, StoreError>;

    /// The key `key_id` names, while it lives.
    async fn key(&self, key_id: &str) -> Result<Option<MemberKey>, StoreError>;

    /// Destroys every key of `member_id`, durably, and remembers `at` as the member's latest
    /// erasure (unless one remembered already is later: clocks of several servers may
    /// disagree). The [`Erasure`] names `at` as the backend keeps it (PostgreSQL: to the
    /// microsecond).
    async fn erase(&self, member_id: &str, at: DateTime<Utc>) -> Result<Erasure, StoreError>;

    /// When the member's keys were last destroyed (the latest `at` given to
    /// [`KeyVault::erase`]), if ever.
    async fn erased_at(&self, member_id: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// A fresh key id and secret from the operating system's generator.
pub fn new_key(member_id: &str) -> MemberKey {
    let mut secret = [0u8; KEY_BYTES];
    let mut id = [0u8; 16];
    getrandom::fill(&mut secret).expect("the operating system's random generator failed");
    getrandom::fill(&mut id).expect("the operating system's random generator failed");
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    MemberKey {
        key_id: format!("k_{hex}"),
        member_id: member_id.to_owned(),
        secret,
    }
}

/// Parses a stored secret, refusing one of the wrong length (a damaged row).
pub fn secret_from_bytes(key_id: &str, bytes: &[u8]) -> Result<[u8; KEY_BYTES], StoreError> {
    bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "key {key_id} has a secret of {} bytes, not {KEY_BYTES}",
            bytes.len()
        ))
    })
}

/// The in-memory vault: the in-memory store's, and a vault for tests. Clones share one vault,
/// as clones of [`crate::InMemoryStore`] share one store. Nothing survives the process.
#[derive(Debug, Clone, Default)]
pub struct MemoryVault {
    inner: Arc<Mutex<MemoryKeys>>,
}

#[derive(Debug, Default)]
struct MemoryKeys {
    /// Live keys by id.
    keys: HashMap<String, MemberKey>,
    /// Each member's live key id.
    live: HashMap<String, String>,
    /// Each member's latest erasure.
    erasures: HashMap<String, DateTime<Utc>>,
}

impl MemoryVault {
    pub fn new() -> Self {
        Self::default()
    }

    fn keys(&self) -> MutexGuard<'_, MemoryKeys> {
        // Every change below is a single map operation after the checks: a panic cannot
        // leave the maps half-changed, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl KeyVault for MemoryVault {
    async fn key_for(&self, member_id: &str) -> Result<MemberKey, StoreError> {
        let mut keys = self.keys();
        if let Some(key) = keys.live.get(member_id).and_then(|id| keys.keys.get(id)) {
            return Ok(key.clone());
        }
        let key = new_key(member_id);
        keys.live.insert(member_id.to_owned(), key.key_id.clone());
        keys.keys.insert(key.key_id.clone(), key.clone());
        Ok(key)
    }

    async fn key(&self, key_id: &str) -> Result<Option<MemberKey>, StoreError> {
        Ok(self.keys().keys.get(key_id).cloned())
    }

    async fn erase(&self, member_id: &str, at: DateTime<Utc>) -> Result<Erasure, StoreError> {
        let mut keys = self.keys();
        let mut keys_destroyed = 0;
        if let Some(id) = keys.live.remove(member_id)
            && let Some(mut key) = keys.keys.remove(&id)
        {
            // Best effort: the copies handed out earlier are the callers' to drop.
            key.secret.fill(0);
            std::hint::black_box(&key.secret);
            keys_destroyed = 1;
        }
        let latest = keys.erasures.entry(member_id.to_owned()).or_insert(at);
        *latest = (*latest).max(at);
        Ok(Erasure {
            member_id: member_id.to_owned(),
            keys_destroyed,
            erased_at: at,
        })
    }

    async fn erased_at(&self, member_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.keys().erasures.get(member_id).copied())
    }
}
