//! What the PostgreSQL tests share: the server named by `LOYALTY_TEST_POSTGRES_URL`, and a
//! factory of stores each in a fresh schema of its own, dropped when the factory is.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use loyalty_store::conformance::StoreFactory;
use loyalty_store_postgres::{PostgresOptions, PostgresStore};

/// The variable naming the test server. Unset: every test that needs it is skipped (with one
/// line on stderr). Set: a server that cannot be reached fails the test.
pub const URL_VAR: &str = "LOYALTY_TEST_POSTGRES_URL";

/// The server's URL, or `None` after printing why the calling test is skipped.
pub fn url_or_skip() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: {URL_VAR} is not set, so there is no PostgreSQL server to test against \
                 (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

pub fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_owned(),
        // The suite runs many cases at once against one server: a few connections each.
        pool_size: 4,
        ..PostgresOptions::default()
    }
}

/// Connects, panicking with the reason: with the URL set, an unreachable server is a failure.
pub async fn connect(url: &str, options: PostgresOptions) -> PostgresStore {
    PostgresStore::connect(url, options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} (set by {URL_VAR}): {e}"))
}

/// Stores in fresh schemas; the schemas are dropped with the factory, unless the test failed
/// (they are kept for a look, and named).
#[derive(Debug)]
pub struct Schemas {
    pub url: String,
    created: Mutex<Vec<String>>,
}

impl Schemas {
    pub fn new(url: String) -> Self {
        Self {
            url,
            created: Mutex::new(Vec::new()),
        }
    }

    /// The factory, or `None` (having printed the one skip line) when no server is named.
    pub fn from_env() -> Option<Self> {
        url_or_skip().map(Self::new)
    }

    /// A fresh schema, dropped with the factory.
    pub fn schema(&self) -> String {
        let schema = fresh_schema();
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(schema.clone());
        schema
    }
}

#[async_trait]
impl StoreFactory for Schemas {
    type Store = PostgresStore;

    async fn create(&self) -> PostgresStore {
        connect(&self.url, options(&self.schema())).await
    }

    async fn reopen(&self, store: PostgresStore) -> PostgresStore {
        let schema = store.schema().to_owned();
        store.close().await;
        connect(&self.url, options(&schema)).await
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let schemas = std::mem::take(self.created.get_mut().unwrap_or_else(|p| p.into_inner()));
        if schemas.is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("kept the failed test's schemas for a look: {schemas:?}");
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test schemas");
            runtime.block_on(async {
                for schema in &schemas {
                    if let Err(e) =
                        loyalty_store_postgres::drop_schema(&url, schema, Duration::from_secs(10))
                            .await
                    {
                        eprintln!("could not drop the test schema {schema}: {e}");
                    }
                }
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("dropping the test schemas panicked");
        }
    }
}
