//! The in-memory store against the conformance suite.
#![cfg(feature = "conformance")]

use async_trait::async_trait;
use loyalty_store::InMemoryStore;
use loyalty_store::conformance::StoreFactory;

struct Memory;

#[async_trait]
impl StoreFactory for Memory {
    type Store = InMemoryStore;

    async fn create(&self) -> InMemoryStore {
        InMemoryStore::new()
    }

    /// Clones share the store's state: dropping the old handle and keeping a clone is the
    /// in-memory store's close and reopen.
    async fn reopen(&self, store: InMemoryStore) -> InMemoryStore {
        store.clone()
    }
}

loyalty_store::conformance_tests!(Memory);

#[tokio::test]
async fn truncated_events_leave_all_at_once() {
    loyalty_store::conformance::truncated_events_leave_all_at_once(&Memory).await;
}

loyalty_store::vault_conformance_tests!(Memory);

/// A vault of its own (not a store's) passes the same cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_vault_of_its_own_keeps_the_vault_contract() {
    loyalty_store::conformance::run_vault(std::sync::Arc::new(
        loyalty_store::vault::MemoryVault::new(),
    ))
    .await;
}

/// Clones of the store share its vault, as they share its events.
#[tokio::test]
async fn clones_of_the_store_share_its_key_vault() {
    use loyalty_store::EventStore;
    let store = InMemoryStore::new();
    let key = store.key_vault().unwrap().key_for("m-1").await.unwrap();
    let clone = store.clone();
    drop(store);
    let vault = clone.key_vault().unwrap();
    assert_eq!(vault.key(&key.key_id).await.unwrap(), Some(key.clone()));
    assert_eq!(vault.key_for("m-1").await.unwrap(), key);
}
