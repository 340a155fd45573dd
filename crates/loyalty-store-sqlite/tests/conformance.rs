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
