//! The store conformance suite, run through the `eventstore` client against the in-process
//! test server, and against a real EventStoreDB / KurrentDB when `EVENTSTORE_URL` is set.

use std::time::Duration;

use async_trait::async_trait;
use loyalty_esdb_testserver::TestServer;
use loyalty_store::conformance::{self, StoreFactory};
use loyalty_store_eventstoredb::{EventStoreDbOptions, EventStoreDbStore};

/// A bound on waiting for a server that should be up: a hang guard, not a speed assertion.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);

async fn connected(url: &str) -> EventStoreDbStore {
    let store = EventStoreDbStore::connect(url, EventStoreDbOptions::default())
        .unwrap_or_else(|e| panic!("connection string {url}: {e}"));
    store
        .wait_ready(CONNECT_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("EventStoreDB at {url} is unreachable: {e}"));
    store
}

/// One test server per case, started on 127.0.0.1 port 0 on first use.
#[derive(Debug, Default)]
struct TestServerFactory {
    server: tokio::sync::OnceCell<TestServer>,
}

#[async_trait]
impl StoreFactory for TestServerFactory {
    type Store = EventStoreDbStore;

    async fn create(&self) -> EventStoreDbStore {
        let server = self
            .server
            .get_or_init(|| async { TestServer::start().await.expect("start the test server") })
            .await;
        connected(&server.url()).await
    }

    async fn reopen(&self, store: EventStoreDbStore) -> EventStoreDbStore {
        drop(store);
        self.create().await
    }
}

mod against_the_test_server {
    use super::TestServerFactory;

    loyalty_store::conformance_tests!(TestServerFactory::default());
}

/// A real server, shared by every case (the suite's cases use fresh stream prefixes).
#[derive(Debug)]
struct RealServerFactory {
    url: String,
}

#[async_trait]
impl StoreFactory for RealServerFactory {
    type Store = EventStoreDbStore;

    async fn create(&self) -> EventStoreDbStore {
        connected(&self.url).await
    }

    async fn reopen(&self, store: EventStoreDbStore) -> EventStoreDbStore {
        drop(store);
        self.create().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_against_the_real_server_named_by_eventstore_url() {
    let Ok(url) = std::env::var("EVENTSTORE_URL") else {
        eprintln!(
            "skipped: EVENTSTORE_URL is not set (e.g. EVENTSTORE_URL=esdb://localhost:2113?tls=false)"
        );
        return;
    };
    conformance::run_all(&RealServerFactory { url }).await;
}
