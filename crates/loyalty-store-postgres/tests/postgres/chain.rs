//! The hash chain on PostgreSQL beyond the conformance suite: a database written by an earlier
//! build (schema version 1, no chain) gets its chain at open, events a process of an earlier
//! build appends during an upgrade are chained before the next append, and an edited event is
//! named by `verify`.
use crate::common;

use common::{Schemas, connect, options};
use loyalty_store::chain::{ChainLink, ChainReport, VerifyOptions, event_hash, verify};
use loyalty_store::conformance::sample_event;
use loyalty_store::{EventStore, ExpectedRevision, Position, StreamAppend};
use loyalty_store_postgres::PostgresStore;

/// Checkpoint streams are the only ones these tests truncate.
fn may_truncate(stream: &str) -> bool {
    stream.starts_with("checkpoint-")
}

async fn verified(store: &PostgresStore) -> ChainReport {
    verify(
        store,
        VerifyOptions {
            up_to: None,
            may_truncate: &may_truncate,
        },
    )
    .await
    .expect("verify runs")
}

async fn all_links(store: &PostgresStore) -> Vec<ChainLink> {
    store
        .read_chain(Position::START, 4_096)
        .await
        .expect("read_chain")
}

/// Runs `sql` on its own connection (what an operator, an intruder or an older build does).
async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a raw connection");
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = connection.await;
}

/// Appends a few events to two member streams and a checkpoint stream, one part of them in an
/// `append_many`.
async fn some_history(store: &PostgresStore) {
    for n in 0..3 {
        store
            .append("member-ana", ExpectedRevision::Any, vec![sample_event(n)])
            .await
            .unwrap();
        store
            .append("checkpoint-p", ExpectedRevision::Any, vec![sample_event(n)])
            .await
            .unwrap();
    }
    store
        .append_many(vec![
            StreamAppend {
                stream: "member-ben".to_owned(),
                expected: ExpectedRevision::NoStream,
                events: vec![sample_event(7), sample_event(8)],
            },
            StreamAppend {
                stream: "member-ana".to_owned(),
                expected: ExpectedRevision::Exact(2),
                events: vec![sample_event(9)],
            },
        ])
        .await
        .unwrap();
}

/// Takes the schema back to what version 1 (an earlier build) left: no chain table, no chain
/// columns, and none of the tables of later versions (the key vault's).
fn back_to_version_1(schema: &str) -> String {
    format!(
        "SET search_path TO {schema};
         DROP TABLE member_keys, member_erasures;
         DROP TABLE chain;
         ALTER TABLE streams DROP COLUMN last_hash;
         ALTER TABLE log_head DROP COLUMN chained_to, DROP COLUMN chain_hash;
         UPDATE loyalty_schema_version SET version = 1;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_an_earlier_build_gets_the_same_chain_at_open() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given a history, and its chain as computed at append
    let schema = factory.schema();
    let store = connect(&factory.url, options(&schema)).await;
    some_history(&store).await;
    let at_append = all_links(&store).await;
    assert_eq!(at_append.len(), 9);
    store.close().await;
    // And the same database as an earlier build would have left it
    execute(&factory.url, &back_to_version_1(&schema)).await;
    // When this build opens it
    let store = connect(&factory.url, options(&schema)).await;
    // Then every event has the link it would have had, and the chain verifies
    assert_eq!(all_links(&store).await, at_append);
    let report = verified(&store).await;
    assert_eq!(report.mismatch, None, "{report:?}");
    assert_eq!(report.links, 9);
    // And appends continue the chain from there
    store
        .append(
            "member-ana",
            ExpectedRevision::Exact(3),
            vec![sample_event(10)],
        )
        .await
        .unwrap();
    let report = verified(&store).await;
    assert_eq!((&report.mismatch, report.links), (&None, 10));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_truncated_before_the_upgrade_are_not_chained_and_the_rest_verifies() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given an earlier build's database whose checkpoint stream was truncated to its last event
    let schema = factory.schema();
    let store = connect(&factory.url, options(&schema)).await;
    some_history(&store).await;
    store.truncate_before("checkpoint-p", 2).await.unwrap();
    let held = store.read_all(Position::START, 100).await.unwrap();
    assert_eq!(held.len(), 7);
    store.close().await;
    execute(&factory.url, &back_to_version_1(&schema)).await;
    // When this build opens it
    let store = connect(&factory.url, options(&schema)).await;
    // Then the events it holds are chained, each with the hash of its content, and verify
    // passes
    let links = all_links(&store).await;
    assert_eq!(links.len(), held.len());
    for (link, event) in links.iter().zip(&held) {
        assert_eq!(link.position, event.position);
        assert_eq!(link.event_hash, event_hash(event.into()));
    }
    let report = verified(&store).await;
    assert_eq!((&report.mismatch, report.links), (&None, 7), "{report:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_an_earlier_builds_process_appends_is_chained_before_the_next_append() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given a store of this build
    let schema = factory.schema();
    let store = connect(&factory.url, options(&schema)).await;
    some_history(&store).await;
    // When a process of the earlier build, still running, appends with its own statement
    // (positions from the counter, the stream's last revision moved, no link)
    execute(
        &factory.url,
        &format!(
            "SET search_path TO {schema};
             BEGIN;
             WITH head AS (
                 UPDATE log_head SET position = position + 1 WHERE id = 0 RETURNING position
             ), written AS (
                 INSERT INTO events
                     (position, stream, revision, event_id, event_type, schema_version, data,
                      metadata)
                 SELECT head.position, 'member-ben', 2, gen_random_uuid(), 'PointsEarned', 1,
                        convert_to('{{}}', 'UTF8'), convert_to('{{}}', 'UTF8')
                 FROM head
             )
             INSERT INTO streams (stream, last_revision) VALUES ('member-ben', 2)
             ON CONFLICT (stream) DO UPDATE SET last_revision = EXCLUDED.last_revision;
             COMMIT;"
        ),
    )
    .await;
    // And this build appends next
    store
        .append(
            "member-ben",
            ExpectedRevision::Exact(2),
            vec![sample_event(11)],
        )
        .await
        .unwrap();
    // Then the earlier build's event has its link, before the new one's, and verify passes
    let links = all_links(&store).await;
    let ben: Vec<u64> = links
        .iter()
        .filter(|l| l.stream == "member-ben")
        .map(|l| l.revision)
        .collect();
    assert_eq!(ben, [0, 1, 2, 3]);
    let report = verified(&store).await;
    assert_eq!((&report.mismatch, report.links), (&None, 11), "{report:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_changed_in_a_stored_event_is_named_by_verify() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given a history
    let schema = factory.schema();
    let store = connect(&factory.url, options(&schema)).await;
    some_history(&store).await;
    let ana = store
        .read_stream(
            "member-ana",
            loyalty_store::StreamFrom::Revision(1),
            loyalty_store::Direction::Forwards,
            1,
        )
        .await
        .unwrap()
        .remove(0);
    // When one byte of ana's second event is changed in the database
    execute(
        &factory.url,
        &format!(
            "UPDATE {schema}.events SET data = set_byte(data, 10, get_byte(data, 10) # 1)
             WHERE stream = 'member-ana' AND revision = 1"
        ),
    )
    .await;
    // Then verify stops there, naming it
    let report = verified(&store).await;
    let mismatch = report.mismatch.expect("the change is found");
    assert_eq!(
        (
            mismatch.position,
            mismatch.stream.as_str(),
            mismatch.revision
        ),
        (ana.position, "member-ana", 1)
    );
    assert!(mismatch.reason.contains("changed"), "{}", mismatch.reason);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_refused_inside_a_batch_leave_no_link_and_the_chain_verifies() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    // Given one store, whose writer commits the appends waiting together (each in a
    // savepoint)
    let store = std::sync::Arc::new(connect(&factory.url, options(&factory.schema())).await);
    store
        .append(
            "member-ana",
            ExpectedRevision::NoStream,
            vec![sample_event(0)],
        )
        .await
        .unwrap();
    // When, all at once, 32 appends race for ana's next revision (each with a reservation in
    // the same transaction, written before ana's part is refused) and 32 others append to
    // streams of their own, round after round
    for round in 0..4u64 {
        let racers: Vec<_> = (0..64u64)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    let mut parts = vec![StreamAppend {
                        stream: format!("txn-{round}-{i}"),
                        expected: ExpectedRevision::NoStream,
                        events: vec![sample_event(i)],
                    }];
                    if i % 2 == 0 {
                        parts.push(StreamAppend {
                            stream: "member-ana".to_owned(),
                            expected: ExpectedRevision::Exact(round),
                            events: vec![sample_event(i)],
                        });
                    }
                    (i % 2 == 0, store.append_many(parts).await)
                })
            })
            .collect();
        let (mut ana_won, mut own_written) = (0, 0);
        for racer in futures::future::join_all(racers).await {
            match racer.expect("racer task") {
                (true, Ok(_)) => ana_won += 1,
                (false, Ok(_)) => own_written += 1,
                (false, Err(e)) => panic!("an append to a stream of its own failed: {e}"),
                (true, Err(_)) => {}
            }
        }
        // Then one wins ana's revision, and every other append goes through
        assert_eq!((ana_won, own_written), (1, 32), "round {round}");
    }
    // And only what was written is linked, and the chain verifies
    let report = verified(&store).await;
    assert_eq!(report.mismatch, None, "{report:?}");
    assert_eq!(report.links, 1 + 4 * (2 + 32));
    assert_eq!(all_links(&store).await.len() as u64, report.links);
    std::sync::Arc::try_unwrap(store)
        .expect("the racers are done")
        .close()
        .await;
}
