//! An expected revision beyond anything SQLite can store is an ordinary conflict: the retry
//! check must not overflow looking for events after it.
use loyalty_store::conformance::sample_event;
use loyalty_store::{EventStore, ExpectedRevision, StoreError};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn an_expected_revision_past_what_sqlite_can_hold_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db"), SqliteOptions::default())
        .await
        .unwrap();
    store
        .append("s-1", ExpectedRevision::NoStream, vec![sample_event(1)])
        .await
        .unwrap();
    for huge in [i64::MAX as u64, u64::MAX] {
        let err = store
            .append("s-1", ExpectedRevision::Exact(huge), vec![sample_event(2)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::WrongExpectedRevision { .. }),
            "expected {huge}: {err}"
        );
    }
    store.close().await.unwrap();
}
