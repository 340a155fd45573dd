//! Opening a store: schema versions, names, session settings, and an unreachable server.
use crate::common;

use std::time::Duration;

use common::{Schemas, connect, options};
use loyalty_store::{EventStore, ExpectedRevision, StoreError};
use loyalty_store_postgres::{OpenError, PostgresOptions, PostgresStore, SCHEMA_VERSION};

/// Needs no server: the name is checked before connecting.
#[tokio::test]
async fn a_schema_name_that_is_not_a_plain_identifier_is_refused() {
    for bad in ["", "Loyalty", "1abc", "a-b", "a\"b", "a b", &"s".repeat(49)] {
        let err = PostgresStore::connect(
            "postgres://nobody@127.0.0.1:1/none",
            PostgresOptions {
                schema: bad.to_owned(),
                ..PostgresOptions::default()
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, OpenError::InvalidSchema(ref s) if s == bad),
            "{bad:?}: {err}"
        );
    }
}

/// Needs no server: nothing listens on port 1, and that is a transient failure.
#[tokio::test]
async fn an_unreachable_server_fails_the_connect_as_unavailable() {
    let err = PostgresStore::connect(
        "postgres://nobody@127.0.0.1:1/none",
        PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap_err();
    let err = StoreError::from(err);
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_this_build_is_refused() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let schema = factory.schema();
    connect(&factory.url, options(&schema)).await.close().await;

    let (client, connection) = tokio_postgres::connect(&factory.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let newer = SCHEMA_VERSION as i32 + 1;
    client
        .batch_execute(&format!(
            "UPDATE {schema}.loyalty_schema_version SET version = {newer}"
        ))
        .await
        .unwrap();
    drop(client);
    let _ = connection.await;

    let err = PostgresStore::connect(&factory.url, options(&schema))
        .await
        .unwrap_err();
    match &err {
        OpenError::SchemaTooNew {
            schema: s,
            found,
            supported,
        } => {
            assert_eq!(s, &schema);
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
    assert!(err.to_string().contains("newer"), "{err}");
}

/// Stores opening a fresh schema at the same moment (processes starting together) all get
/// it created and migrated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opening_a_fresh_schema_together_all_succeed() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let schema = factory.schema();
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let (url, options) = (factory.url.clone(), options(&schema));
            tokio::spawn(async move { connect(&url, options).await })
        })
        .collect();
    let stores: Vec<_> = futures::future::join_all(opening)
        .await
        .into_iter()
        .map(|s| s.expect("connect task"))
        .collect();
    let first = stores[0]
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .unwrap();
    assert_eq!(stores[3].head_position().await.unwrap(), first.position);
    for store in stores {
        store.close().await;
    }
}

/// Commits must be durable: the store forces `synchronous_commit = on` over whatever the URL
/// asks for (and `connect` refuses a session where it is not on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_commit_is_forced_on_over_the_urls_options() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let separator = if factory.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}options=-c%20synchronous_commit%3Doff%20-c%20search_path%3Dpublic",
        factory.url
    );
    let store = connect(&url, options(&factory.schema())).await;
    store
        .append(
            "member-1",
            ExpectedRevision::NoStream,
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .expect("append in the store's own schema");
    store.wait_ready(Duration::from_secs(5)).await.unwrap();
    store.close().await;
}
