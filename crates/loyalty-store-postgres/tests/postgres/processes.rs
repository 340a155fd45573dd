//! The global order across processes: child processes append to one schema at once while a
//! subscription here reads from the start. It must see every acknowledged event exactly once,
//! in strictly increasing position order.
use crate::common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Schemas, connect, options};
use loyalty_store::{EventStore, Position, StreamFilter, SubscriptionMessage, Uuid};

const CHILDREN: usize = 4;
const APPENDS_EACH: u64 = 300;
/// A guard against a hang, not a speed assertion.
const LIVENESS: Duration = Duration::from_secs(120);
/// Once every child has exited, a subscriber that receives nothing for this long has missed
/// events (the head poll runs every 500 ms).
const STALLED: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_event_of_concurrent_processes_once_and_in_order() {
    let Some(factory) = Schemas::from_env() else {
        return;
    };
    let schema = factory.schema();
    let subscriber = connect(&factory.url, options(&schema)).await;
    let mut sub = subscriber
        .subscribe_all(Position::START, StreamFilter::all())
        .await
        .unwrap();

    let children: Vec<_> = (0..CHILDREN)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_append-child"))
                .args([
                    factory.url.as_str(),
                    schema.as_str(),
                    &format!("p{i}"),
                    &APPENDS_EACH.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a child")
        })
        .collect();
    // Read while the children write; their output is gathered by blocking threads.
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|child| child.wait_with_output().expect("child output"))
            .collect::<Vec<_>>()
    });
    let mut seen = Vec::new();
    let mut outputs = Some(outputs);
    let mut acked: Option<Vec<(u64, Vec<Uuid>)>> = None;
    loop {
        if let Some(acked) = &acked {
            let total: usize = acked.iter().map(|(_, ids)| ids.len()).sum();
            let wait = if seen.len() >= total {
                Duration::from_secs(1)
            } else {
                STALLED
            };
            match tokio::time::timeout(wait, sub.next()).await {
                Ok(Some(Ok(SubscriptionMessage::Event(e)))) => seen.push(e),
                Ok(Some(Ok(SubscriptionMessage::CaughtUp { .. }))) => {}
                Ok(other) => panic!("the subscription failed: {other:?}"),
                Err(_) => break,
            }
            continue;
        }
        tokio::select! {
            message = tokio::time::timeout(LIVENESS, sub.next()) => match message {
                Ok(Some(Ok(SubscriptionMessage::Event(e)))) => seen.push(e),
                Ok(Some(Ok(SubscriptionMessage::CaughtUp { .. }))) => {}
                other => panic!("the subscription failed or hung: {other:?}"),
            },
            done = outputs.as_mut().expect("children running") => {
                outputs = None;
                let mut all = Vec::new();
                for output in done.expect("children task") {
                    assert!(output.status.success(), "a child failed: {output:?}");
                    for line in String::from_utf8(output.stdout).expect("utf-8").lines() {
                        let (position, ids) = line.split_once(' ').expect("position and ids");
                        let ids = ids.split(',').map(|id| id.parse().expect("uuid")).collect();
                        all.push((position.parse().expect("position"), ids));
                    }
                }
                assert_eq!(all.len(), CHILDREN * APPENDS_EACH as usize);
                acked = Some(all);
            }
        }
    }
    let acked = acked.expect("children done");
    let acked_ids: HashSet<Uuid> = acked
        .iter()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    assert_eq!(
        seen.len(),
        acked_ids.len(),
        "delivered as many events as acknowledged"
    );
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.id).collect();
    assert_eq!(
        seen_ids, acked_ids,
        "exactly the acknowledged events, each once"
    );
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "positions strictly increase"
    );
    for (position, ids) in &acked {
        let last = seen
            .iter()
            .find(|e| e.position.commit == *position)
            .expect("the acknowledged position was delivered");
        assert_eq!(Some(&last.id), ids.last());
    }
    subscriber.close().await;
}
