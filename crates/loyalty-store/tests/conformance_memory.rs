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
