//! The key vault on PostgreSQL beyond the conformance suite: an erased key's bytes leave the
//! key table's file, the vault of a closed store answers `Closed`, and a schema of the previous
//! version gets the vault's tables.
use crate::common;

use chrono::{DateTime, TimeZone, Utc};
use common::{Schemas, connect, options};
use loyalty_store::vault::MemberKey;
use loyalty_store::{EventStore, ExpectedRevision, StoreError};
use loyalty_store_postgres::{OpenError, PostgresOptions, PostgresStore, SCHEMA_VERSION};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
}

/// A connection of its own (what an operator, or an intruder with the files, sees).
async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a raw connection");
    tokio::spawn(connection);
    client
}

/// The bytes of the key table's file, after a checkpoint has written every page to it; `None`
/// (after saying why) when the role may not read server files.
async fn key_table_file(client: &tokio_postgres::Client, schema: &str) -> Option<Vec<u8>> {
    let read = async {
        client.batch_execute("CHECKPOINT").await?;
        client
            .query_one(
                "SELECT pg_read_binary_file(pg_relation_filepath($1::text::regclass))",
                &[&format!("{schema}.member_keys")],
            )
            .await
    };
    match read.await {
        Ok(row) => Some(row.get(0)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            eprintln!(
                "skipped: the test role may not run CHECKPOINT or read server files ({e}); \
                 use a superuser to search the key table's file"
            );
            None
        }
        Err(e) => panic!("reading the key table's file: {e}"),
    }
}

fn holds(bytes: &[u8], secret: &[u8]) -> bool {
    bytes.windows(secret.len()).any(|w| w == secret)
}

/// Many keys, most of them erased: none of the erased secrets is left in the key table's file
/// (a plain VACUUM left about a third of them), and every live one is there, so the search
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_keys_are_gone_from_the_key_tables_file() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let schema = factory.schema();
    let store = connect(&factory.url, options(&schema)).await;
    let vault = store.key_vault().expect("a vault");
    let mut keys: Vec<MemberKey> = Vec::new();
    for n in 0..150 {
        keys.push(vault.key_for(&format!("member-{n:04}")).await.unwrap());
    }
    let client = raw_client(&factory.url).await;
    let Some(before) = key_table_file(&client, &schema).await else {
        return;
    };
    let missing = keys.iter().filter(|k| !holds(&before, &k.secret)).count();
    assert_eq!(missing, 0, "new keys not found in the table's file");

    let (mut erased, mut kept) = (Vec::new(), Vec::new());
    for (n, key) in keys.into_iter().enumerate() {
        if n % 3 == 0 {
            kept.push(key);
        } else {
            let erasure = vault.erase(&key.member_id, at()).await.unwrap();
            assert_eq!(erasure.keys_destroyed, 1);
            erased.push(key);
        }
    }
    let after = key_table_file(&client, &schema)
        .await
        .expect("read the file again");
    let left: Vec<&str> = erased
        .iter()
        .filter(|k| holds(&after, &k.secret))
        .map(|k| k.key_id.as_str())
        .collect();
    assert!(
        left.is_empty(),
        "erased keys still in the table's file: {left:?}"
    );
    let missing = kept.iter().filter(|k| !holds(&after, &k.secret)).count();
    assert_eq!(missing, 0, "live keys not found in the table's file");
    store.close().await;
}

/// Once the store is closed (its pool is), its vault answers `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_of_a_closed_store_answers_closed() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let store = connect(&factory.url, options(&factory.schema())).await;
    let vault = store.key_vault().expect("a vault");
    let key = vault.key_for("ana").await.unwrap();
    store.close().await;
    assert_eq!(vault.key_for("ben").await.unwrap_err(), StoreError::Closed);
    assert_eq!(
        vault.key(&key.key_id).await.unwrap_err(),
        StoreError::Closed
    );
    assert_eq!(
        vault.erase("ana", at()).await.unwrap_err(),
        StoreError::Closed
    );
    assert_eq!(
        vault.erased_at("ana").await.unwrap_err(),
        StoreError::Closed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_version_2_is_upgraded_and_gets_a_key_vault() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given a schema as version 2 left it (this build's without the vault's tables, which
    // the step to 3 adds), holding an event...
    let schema = factory.schema();
    let store = connect(&factory.url, options(&schema)).await;
    let appended = store
        .append(
            "member-7",
            ExpectedRevision::NoStream,
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .unwrap();
    store.close().await;
    let client = raw_client(&factory.url).await;
    client
        .batch_execute(&format!(
            "DROP TABLE {schema}.member_keys, {schema}.member_erasures;
             UPDATE {schema}.loyalty_schema_version SET version = 2;"
        ))
        .await
        .unwrap_or_else(|e| panic!("back to version 2: {e}"));

    // ...when this build connects...
    let store = connect(&factory.url, options(&schema)).await;

    // ...then it is at the current version, its event is there, and its vault works.
    let version: i32 = client
        .query_one(
            &format!("SELECT version FROM {schema}.loyalty_schema_version"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION as i32);
    assert_eq!(store.head_position().await.unwrap(), appended.position);
    let vault = store.key_vault().expect("a vault");
    let key = vault.key_for("m-7").await.unwrap();
    assert_eq!(vault.key(&key.key_id).await.unwrap(), Some(key));
    assert_eq!(vault.erase("m-7", at()).await.unwrap().keys_destroyed, 1);
    store.close().await;
}

#[tokio::test]
async fn a_tool_that_only_reads_refuses_a_schema_of_an_older_version_and_leaves_it() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given a schema as version 2 left it
    let schema = factory.schema();
    connect(&factory.url, options(&schema)).await.close().await;
    let client = raw_client(&factory.url).await;
    client
        .batch_execute(&format!(
            "DROP TABLE {schema}.member_keys, {schema}.member_erasures;
             UPDATE {schema}.loyalty_schema_version SET version = 2;"
        ))
        .await
        .unwrap_or_else(|e| panic!("back to version 2: {e}"));
    // When a tool that must not upgrade it connects
    let refused = PostgresStore::connect(
        &factory.url,
        PostgresOptions {
            upgrade: false,
            ..options(&schema)
        },
    )
    .await;
    // Then it is refused and the schema is still at version 2
    let Err(err) = refused else {
        panic!("connected to an older schema without upgrading it")
    };
    assert!(
        matches!(err, OpenError::SchemaTooOld { found: 2, .. }),
        "{err}"
    );
    let version: i32 = client
        .query_one(
            &format!("SELECT version FROM {schema}.loyalty_schema_version"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
}
