//! The PostgreSQL store against the whole conformance suite, each case in a fresh schema of
//! the server named by `LOYALTY_TEST_POSTGRES_URL`. Unset, every case prints one line saying
//! it is skipped and passes; set, a server that cannot be reached fails every case.
use crate::common;

use common::Schemas;

// The factory expression is evaluated at the start of each case: without a server it returns
// from the test (after printing the skip line), so every case of the suite's one list runs here.
loyalty_store::conformance_tests!(match Schemas::from_env() {
    Some(factory) => factory,
    None => return,
});

/// As for SQLite: truncated events leave `$all` at once (the rows are deleted), and positions
/// never go back, across a reopen too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_events_leave_all_at_once() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    loyalty_store::conformance::truncated_events_leave_all_at_once(&factory).await;
}

// The key vault's cases, on the vault of a store in a fresh schema.
loyalty_store::vault_conformance_tests!(match Schemas::from_env() {
    Some(factory) => factory,
    None => return,
});
