//! The SQLite store against the conformance suite: each case gets its own file.
use async_trait::async_trait;
use loyalty_store::conformance::StoreFactory;
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

struct SqliteFiles {
    dir: TempDir,
}

impl SqliteFiles {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

#[async_trait]
impl StoreFactory for SqliteFiles {
    type Store = SqliteStore;

    async fn create(&self) -> SqliteStore {
        SqliteStore::open(self.dir.path().join("events.db"), SqliteOptions::default())
            .await
            .expect("open store")
    }

    async fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let path = store.path().to_path_buf();
        store.close().await.expect("close store");
        SqliteStore::open(path, SqliteOptions::default())
            .await
            .expect("reopen store")
    }
}

loyalty_store::conformance_tests!(SqliteFiles::new());

/// Only the embedded stores promise it: truncated events leave `$all` at once, and positions
/// never go back, across a reopen too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_events_leave_all_at_once() {
    loyalty_store::conformance::truncated_events_leave_all_at_once(&SqliteFiles::new()).await;
}

loyalty_store::vault_conformance_tests!(SqliteFiles::new());

/// A key file of its own (for a log kept in EventStoreDB) keeps the same contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_of_its_own_keeps_the_vault_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = loyalty_store_sqlite::SqliteKeyVault::open(dir.path().join("keys.db"))
        .expect("open key file");
    loyalty_store::conformance::run_vault(std::sync::Arc::new(vault)).await;
}
