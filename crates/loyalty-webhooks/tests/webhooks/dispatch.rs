//! The dispatcher end to end: an engine on the in-memory store, endpoints to a receiver on
//! 127.0.0.1, purchases recorded through the engine, deliveries checked at the receiver and in
//! the delivery log.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use loyalty_store::{
    Bytes, Direction, EventData, EventStore, ExpectedRevision, Position, StreamFrom,
};
use loyalty_webhooks::endpoint::{EndpointStatus, EventType, StartFrom};
use loyalty_webhooks::log::{AttemptOutcome, DeliveryAttempt, DeliveryQuery};
use loyalty_webhooks::message::Message;
use loyalty_webhooks::{LOG_PREFIX, WebhookError, WebhookSettings};
use standardwebhooks::Webhook;
use support::{Harness, Received, Receiver, Reply, eventually, id};

/// Whether the endpoint's stored checkpoint has passed every one of `messages` (so each was
/// delivered, and the log says so).
async fn checkpoint_passed(h: &Harness, name: &str, messages: &[Message]) -> bool {
    let Some(last) = messages.last() else {
        return true;
    };
    let status = h.webhooks.status(&id(name)).await.expect("status");
    status.checkpoint.is_some_and(|c| c >= last.position)
}

/// Every attempt of the endpoint's log, newest first.
async fn all_attempts(h: &Harness, name: &str) -> Vec<DeliveryAttempt> {
    h.webhooks
        .deliveries(
            &id(name),
            DeliveryQuery {
                limit: 500,
                ..DeliveryQuery::default()
            },
        )
        .await
        .expect("deliveries")
        .attempts
}

async fn attempts_of(h: &Harness, name: &str, message_id: &str) -> Vec<DeliveryAttempt> {
    h.webhooks
        .deliveries(
            &id(name),
            DeliveryQuery {
                limit: 500,
                message_id: Some(message_id.to_owned()),
                ..DeliveryQuery::default()
            },
        )
        .await
        .expect("deliveries")
        .attempts
}

fn ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

/// Checks order per member at the receiver: a member's next message came only after the
/// previous one was answered with a 2xx (a retry of the same message may come in between).
fn assert_in_order_per_member(requests: &[Received]) {
    let mut last: HashMap<&str, &Received> = HashMap::new();
    for request in requests {
        if let Some(previous) = last.get(request.member_id.as_str()) {
            assert!(
                request.position >= previous.position,
                "{} sent after a later message of {}",
                request.id,
                request.member_id
            );
            if request.position > previous.position {
                assert!(
                    (200..300).contains(&previous.reply.status),
                    "{} sent before {} was delivered",
                    request.id,
                    previous.id
                );
            }
        }
        last.insert(request.member_id.as_str(), request);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_is_delivered_signed_so_that_the_standard_webhooks_library_verifies_it() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    let (endpoint, secret) = h.endpoint("crm", &receiver.url, |_| {}).await;
    h.enroll("alice").await;
    h.purchase("alice", "T1", 20).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    let types: Vec<EventType> = messages.iter().map(|m| m.event_type).collect();
    assert!(
        types.contains(&EventType::MemberEnrolled) && types.contains(&EventType::PurchaseRecorded)
    );

    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let requests = receiver.requests();
    assert_eq!(
        requests.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids(&messages)
    );
    let verifier = Webhook::new(&secret.expose()).expect("a secret the library reads");
    for (request, message) in requests.iter().zip(&messages) {
        let mut headers = http::HeaderMap::new();
        for (name, value) in &request.headers {
            headers.insert(
                name.as_str().parse::<http::HeaderName>().expect("name"),
                value.as_bytes().try_into().expect("value"),
            );
        }
        verifier
            .verify(&request.body, &headers)
            .expect("the signature verifies");
        assert_eq!(
            request.body, message.payload,
            "the body is the message's payload"
        );
        let header = |name: &str| request.headers[name].to_str().expect("text").to_owned();
        assert_eq!(header("webhook-id"), message.id);
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("user-agent"), support::settings().user_agent);
        let sent_at: i64 = header("webhook-timestamp").parse().expect("unix seconds");
        assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    }
    let status = h.webhooks.status(&id("crm")).await.expect("status");
    assert!(status.last_delivered_at.is_some());
    assert_eq!(status.last_failure, None);
    assert!(h.webhooks.dispatcher_stats().delivered >= 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_answered_with_errors_is_retried_with_the_same_id_until_it_is_delivered() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    receiver.plan(|r| {
        if r.nth <= 2 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    h.enroll("alice").await;
    h.purchase("alice", "T1", 20).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert_eq!(messages.len(), 1, "only the purchase is wanted");
    let message = &messages[0];

    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.headers["webhook-id"], message.id.as_str());
        assert_eq!(request.body, message.payload);
    }
    let attempts = attempts_of(&h, "crm", &message.id).await;
    let summary: Vec<(u32, Option<u16>, AttemptOutcome)> = attempts
        .iter()
        .map(|a| (a.attempt, a.status, a.outcome))
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, Some(200), AttemptOutcome::Delivered),
            (2, Some(500), AttemptOutcome::Retrying),
            (1, Some(500), AttemptOutcome::Retrying),
        ]
    );
    let status = h.webhooks.status(&id("crm")).await.expect("status");
    assert_eq!(
        status.last_failure.map(|(_, why)| why).as_deref(),
        Some("HTTP 500")
    );
    let stats = h.webhooks.dispatcher_stats();
    assert_eq!((stats.delivered, stats.failed_attempts), (1, 2));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_counts_as_a_failure_and_is_retried() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    receiver.plan(|r| {
        if r.nth == 1 {
            Reply::ok().after(Duration::from_secs(2))
        } else {
            Reply::ok()
        }
    });
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded];
            e.timeout_ms = Some(200);
        })
        .await;
    h.purchase("alice", "T1", 20).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let attempts = attempts_of(&h, "crm", &messages[0].id).await;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    let (second, first) = (&attempts[0], &attempts[1]);
    assert_eq!(first.outcome, AttemptOutcome::Retrying);
    assert_eq!(first.status, None);
    assert!(
        first
            .error
            .as_deref()
            .is_some_and(|e| e.contains("timeout")),
        "{:?}",
        first.error
    );
    assert!(
        first.latency_ms < 1_500,
        "the timeout cut the request short"
    );
    assert_eq!(second.outcome, AttemptOutcome::Delivered);
    assert_eq!(receiver.count(&messages[0].id), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_member_go_one_at_a_time_in_order_while_members_go_in_parallel() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    // Delays that differ from message to message, and a first failure for some: a later
    // message of a member must still wait for its earlier one.
    receiver.plan(|r| {
        let digit = u64::from(r.id.as_bytes()[r.id.len() - 1] % 8);
        if r.nth == 1 && digit == 0 {
            Reply::status(503)
        } else {
            Reply::ok().after(Duration::from_millis(20 + 10 * digit))
        }
    });
    let members = ["ann", "bob", "cat", "dan"];
    for round in 0..5 {
        for m in members {
            h.purchase(m, &format!("{m}-{round}"), 10 + round).await;
        }
    }
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.start = StartFrom::Start;
            e.max_in_flight = Some(8);
        })
        .await;
    let messages = h.messages_after(Position::START, &endpoint).await;
    assert!(messages.len() >= 20);

    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let requests = receiver.requests();
    assert_in_order_per_member(&requests);
    assert!(receiver.got_all(&messages));
    let (overall, per_member) = receiver.most_busy();
    assert_eq!(per_member, 1, "two requests of one member at once");
    assert!(overall >= 2, "members were not delivered in parallel");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_queue_is_delivered_whole_and_in_order() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    for n in 0..150 {
        let m = ["ann", "bob", "cat"][n % 3];
        h.purchase(m, &format!("T{n}"), 10).await;
    }
    // One at a time: the queue (64 messages) fills and reading waits for room.
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.start = StartFrom::Start;
            e.max_in_flight = Some(1);
            e.event_types = vec![EventType::PurchaseRecorded];
        })
        .await;
    let messages = h.messages_after(Position::START, &endpoint).await;
    assert_eq!(messages.len(), 150);
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let got: Vec<String> = receiver.requests().into_iter().map(|r| r.id).collect();
    assert_eq!(
        got,
        ids(&messages),
        "every message once, in the log's order"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_hold_back_another_one() {
    let h = Harness::new(support::settings()).await;
    let slow = Receiver::start().await;
    slow.plan(|_| Reply::ok().after(Duration::from_secs(3)));
    let fast = Receiver::start().await;
    let (slow_endpoint, _) = h
        .endpoint("slow", &slow.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded];
            e.max_in_flight = Some(1);
            e.timeout_ms = Some(10_000);
        })
        .await;
    let (fast_endpoint, _) = h
        .endpoint("fast", &fast.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    for n in 0..5 {
        h.purchase("alice", &format!("T{n}"), 10).await;
    }
    let fast_messages = h
        .messages_after(fast_endpoint.start_after, &fast_endpoint)
        .await;
    let started = std::time::Instant::now();
    assert!(eventually(async || checkpoint_passed(&h, "fast", &fast_messages).await).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fast endpoint waited for the slow one"
    );
    let slow_messages = h
        .messages_after(slow_endpoint.start_after, &slow_endpoint)
        .await;
    assert_eq!(
        slow.requests().len(),
        1,
        "one at a time to the slow endpoint"
    );
    assert!(!checkpoint_passed(&h, "slow", &slow_messages).await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_past_its_retry_time_is_marked_failing_then_recovers_when_a_probe_succeeds()
 {
    let settings = WebhookSettings {
        retry_for_secs: 1,
        failing_probe_secs: 1,
        ..support::settings()
    };
    let h = Harness::new(settings).await;
    let receiver = Receiver::start().await;
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    receiver.plan(move |_| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    h.purchase("alice", "A1", 10).await;
    h.purchase("bob", "B1", 10).await;
    h.purchase("alice", "A2", 10).await;

    assert!(
        eventually(async || h.get("crm").await.status == EndpointStatus::Failing).await,
        "never marked failing"
    );
    let failing = h.get("crm").await;
    let (_, reason) = failing.failing.expect("a reason");
    assert!(reason.contains("503"), "{reason}");
    assert!(
        eventually(async || {
            all_attempts(&h, "crm")
                .await
                .iter()
                .any(|a| a.outcome == AttemptOutcome::GaveUp)
        })
        .await,
        "no attempt recorded as given up"
    );

    // While failing, only the oldest message is tried, about once per probe interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = receiver.requests().len();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let probes: Vec<Received> = receiver.requests().split_off(before);
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(
        !probes.is_empty() && probes.len() <= 4,
        "{} probes",
        probes.len()
    );
    assert!(
        probes.iter().all(|p| p.id == messages[0].id),
        "a probe of another message"
    );

    down.store(false, Ordering::SeqCst);
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    assert!(eventually(async || h.get("crm").await.status == EndpointStatus::Enabled).await);
    assert_eq!(h.get("crm").await.failing, None);
    assert_in_order_per_member(&receiver.requests());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_endpoint_accumulates_its_backlog_and_drains_it_on_resume() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    h.purchase("alice", "T1", 10).await;
    let first = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &first).await).await);

    h.webhooks.pause(&id("crm")).await.expect("paused");
    // The dispatcher is woken by the change and stops the endpoint's worker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.purchase("alice", "T2", 10).await;
    h.purchase("bob", "T3", 10).await;
    h.purchase("alice", "T4", 10).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "a paused endpoint got a request"
    );

    h.webhooks.resume(&id("crm")).await.expect("resumed");
    let all = h.messages_after(endpoint.start_after, &endpoint).await;
    assert_eq!(all.len(), 4);
    assert!(eventually(async || checkpoint_passed(&h, "crm", &all).await).await);
    let got: Vec<String> = receiver.requests().into_iter().map(|r| r.id).collect();
    let mut want = ids(&all);
    want.sort();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want, "each message once");
    assert_in_order_per_member(&receiver.requests());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_sends_again_every_message_after_the_position_with_the_same_ids() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    for n in 1..=3 {
        h.purchase("alice", &format!("T{n}"), 10).await;
    }
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert_eq!(messages.len(), 3);
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);

    let replayed = h
        .webhooks
        .replay(&id("crm"), messages[0].position)
        .await
        .expect("replayed");
    assert_eq!(replayed.generation, endpoint.generation + 1);
    assert!(eventually(async || receiver.requests().len() == 5).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<String> = receiver.requests().into_iter().map(|r| r.id).collect();
    let want: Vec<String> = ids(&messages)
        .into_iter()
        .chain(ids(&messages[1..]))
        .collect();
    assert_eq!(
        got, want,
        "the messages after the position, again, in order"
    );
    for request in receiver.requests() {
        let message = messages.iter().find(|m| m.id == request.id).expect("known");
        assert_eq!(request.body, message.payload, "the same body again");
    }
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_sends_one_message_again_outside_the_order() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    h.purchase("alice", "T1", 10).await;
    h.purchase("alice", "T2", 10).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    assert!(matches!(
        h.webhooks.redeliver(&id("crm"), "msg_unknown").await,
        Err(WebhookError::MessageNotFound(_))
    ));

    h.webhooks
        .redeliver(&id("crm"), &messages[0].id)
        .await
        .expect("redelivery asked");
    assert!(eventually(async || receiver.count(&messages[0].id) == 2).await);
    assert!(eventually(async || h.get("crm").await.redeliveries.is_empty()).await);
    assert!(
        eventually(async || {
            attempts_of(&h, "crm", &messages[0].id)
                .await
                .first()
                .is_some_and(|a| a.redelivery && a.outcome == AttemptOutcome::Delivered)
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(&messages[0].id), 2, "sent again once");
    assert_eq!(
        receiver.count(&messages[1].id),
        1,
        "the other message is not sent again"
    );
    let again = receiver.requests().pop().expect("a request");
    assert_eq!(again.body, messages[0].payload);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dispatcher_resumes_from_its_checkpoint_without_losing_a_message() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    receiver.plan(|_| Reply::ok().after(Duration::from_millis(40)));
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded];
            e.max_in_flight = Some(2);
        })
        .await;
    for n in 0..12 {
        let m = if n % 2 == 0 { "alice" } else { "bob" };
        h.purchase(m, &format!("T{n}"), 10).await;
    }
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert_eq!(messages.len(), 12);

    // Stopped and started again on the same server: it goes on under the same lease.
    assert!(eventually(async || receiver.delivered_ids().len() >= 3).await);
    h.webhooks.shutdown().await;
    let stopped_at = receiver.requests().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        receiver.requests().len(),
        stopped_at,
        "a stopped dispatcher sent something"
    );
    h.webhooks.start_dispatcher();
    assert!(eventually(async || receiver.delivered_ids().len() >= stopped_at + 3).await);

    // The server stops, another starts on the same store.
    h.stop().await;
    let h = Harness::on(h.store.clone(), support::settings()).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);

    let requests = receiver.requests();
    let want: HashSet<String> = ids(&messages).into_iter().collect();
    let got: HashSet<String> = requests.iter().map(|r| r.id.clone()).collect();
    assert_eq!(got, want, "every message, and nothing else");
    for request in &requests {
        let message = messages.iter().find(|m| m.id == request.id).expect("known");
        assert_eq!(
            request.body, message.payload,
            "a duplicate is the same message"
        );
    }
    assert!(receiver.got_all(&messages));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_with_its_status_and_is_not_followed() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    receiver.plan(|r| {
        if r.nth <= 2 {
            Reply::redirect(307)
        } else {
            Reply::ok()
        }
    });
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    h.purchase("alice", "T1", 10).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let attempts = attempts_of(&h, "crm", &messages[0].id).await;
    let summary: Vec<(Option<u16>, AttemptOutcome)> =
        attempts.iter().map(|a| (a.status, a.outcome)).collect();
    assert_eq!(
        summary,
        vec![
            (Some(200), AttemptOutcome::Delivered),
            (Some(307), AttemptOutcome::Retrying),
            (Some(307), AttemptOutcome::Retrying),
        ]
    );
    assert_eq!(receiver.elsewhere(), 0, "a redirect was followed");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_pages_newest_first_with_a_cursor_and_a_message_filter() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    receiver.plan(|r| {
        if r.nth == 1 {
            Reply::status(502)
        } else {
            Reply::ok()
        }
    });
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    for n in 1..=3 {
        h.purchase("alice", &format!("T{n}"), 10).await;
    }
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);
    let all = all_attempts(&h, "crm").await;
    assert_eq!(all.len(), 6);
    // Newest first: one member, so the messages went in order, each failed once then passed.
    let order: Vec<(String, u32)> = all
        .iter()
        .map(|a| (a.message_id.clone(), a.attempt))
        .collect();
    let want: Vec<(String, u32)> = messages
        .iter()
        .rev()
        .flat_map(|m| [(m.id.clone(), 2), (m.id.clone(), 1)])
        .collect();
    assert_eq!(order, want);

    let query = |before: Option<String>| DeliveryQuery {
        limit: 4,
        before,
        message_id: None,
    };
    let first = h
        .webhooks
        .deliveries(&id("crm"), query(None))
        .await
        .expect("page 1");
    assert_eq!(first.attempts, all[..4].to_vec());
    let cursor = first.next.expect("a next page");
    let second = h
        .webhooks
        .deliveries(&id("crm"), query(Some(cursor)))
        .await
        .expect("page 2");
    assert_eq!(second.attempts, all[4..].to_vec());
    assert_eq!(second.next, None);

    let filtered = attempts_of(&h, "crm", &messages[1].id).await;
    assert_eq!(
        filtered
            .iter()
            .map(|a| (a.attempt, a.outcome))
            .collect::<Vec<_>>(),
        vec![
            (2, AttemptOutcome::Delivered),
            (1, AttemptOutcome::Retrying)
        ]
    );
    assert!(matches!(
        h.webhooks
            .deliveries(&id("crm"), query(Some("nonsense".into())))
            .await,
        Err(WebhookError::InvalidCursor)
    ));
    assert!(matches!(
        h.webhooks.deliveries(&id("nobody"), query(None)).await,
        Err(WebhookError::EndpointNotFound(_))
    ));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_endpoint_stops_its_deliveries_and_empties_its_log() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    h.purchase("alice", "T1", 10).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || checkpoint_passed(&h, "crm", &messages).await).await);

    h.webhooks.delete(&id("crm")).await.expect("deleted");
    let log = format!("{LOG_PREFIX}crm");
    let store = h.store.clone();
    assert!(
        eventually(async || {
            store
                .read_stream(&log, StreamFrom::Start, Direction::Forwards, 10)
                .await
                .expect("read")
                .is_empty()
        })
        .await,
        "the log is still there"
    );
    h.purchase("alice", "T2", 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests().len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_allow_private_targets_refuses_an_endpoint_on_loopback_at_delivery()
{
    // The endpoint was created while private targets were allowed; this server's settings
    // forbid them: its dispatcher must not send there.
    let h = Harness::new(WebhookSettings {
        enabled: false,
        ..support::settings()
    })
    .await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded]
        })
        .await;
    let strict = loyalty_webhooks::Webhooks::new(
        h.engine.clone(),
        WebhookSettings {
            allow_private_targets: false,
            ..support::settings()
        },
    );
    strict.start_dispatcher();
    h.purchase("alice", "T1", 10).await;
    let messages = h.messages_after(endpoint.start_after, &endpoint).await;
    assert!(eventually(async || !attempts_of(&h, "crm", &messages[0].id).await.is_empty()).await);
    let attempt = attempts_of(&h, "crm", &messages[0].id)
        .await
        .pop()
        .expect("an attempt");
    assert_eq!(attempt.outcome, AttemptOutcome::Retrying);
    assert_eq!(attempt.status, None);
    assert!(
        attempt
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not allowed")),
        "{:?}",
        attempt.error
    );
    assert!(
        receiver.requests().is_empty(),
        "the request reached loopback"
    );
    strict.shutdown().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_a_newer_release_stops_deliveries_before_it_and_a_restart_reads_it_again() {
    let h = Harness::new(support::settings()).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = h
        .endpoint("crm", &receiver.url, |e| {
            e.event_types = vec![EventType::PurchaseRecorded];
        })
        .await;
    // Given a purchase, then one a newer release recorded (a schema version this build does
    // not read), then another purchase
    h.purchase("alice", "T1", 10).await;
    let first = h.messages_after(endpoint.start_after, &endpoint).await;
    assert_eq!(first.len(), 1);
    let newest_known =
        loyalty_core::schema::newest_version("PurchaseRecorded").expect("a known type");
    let newer = h
        .store
        .append(
            "member-bob",
            ExpectedRevision::Any,
            vec![EventData {
                id: uuid::Uuid::new_v4(),
                event_type: "PurchaseRecorded".to_owned(),
                schema_version: newest_known + 1,
                data: Bytes::from_static(b"{\"written\":\"by a newer release\"}"),
                metadata: Bytes::from_static(b"{}"),
            }],
        )
        .await
        .expect("appended");
    h.purchase("alice", "T2", 10).await;

    // Then the message before it is delivered, and the checkpoint stays before it
    assert!(eventually(async || checkpoint_passed(&h, "crm", &first).await).await);
    assert!(
        eventually(async || h.webhooks.dispatcher_stats().halted_endpoints == 1).await,
        "the halt is not reported"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.delivered_ids(), ids(&first), "went past the event");
    let status = h.webhooks.status(&id("crm")).await.expect("status");
    assert!(status.checkpoint.is_some_and(|c| c < newer.position));
    // And the status names the event
    let halted = status
        .halted
        .expect("the status says where deliveries stopped");
    assert_eq!(halted.stream, "member-bob");
    assert_eq!(halted.revision, 0);
    assert_eq!(halted.position, newer.position);
    assert_eq!(halted.event_type, "PurchaseRecorded");
    assert_eq!(halted.version, newest_known + 1);
    assert_eq!(halted.newest_known, newest_known);

    // When the server restarts (a build that reads the event would go on from here), it starts
    // again before the event: it has not been skipped
    h.stop().await;
    assert_eq!(
        h.webhooks.dispatcher_stats().halted_endpoints,
        0,
        "a stopped dispatcher reports no halt"
    );
    let h = Harness::on(h.store.clone(), support::settings()).await;
    assert!(
        eventually(async || {
            h.webhooks
                .status(&id("crm"))
                .await
                .is_ok_and(|s| s.halted.is_some_and(|e| e.position == newer.position))
        })
        .await
    );
    let status = h.webhooks.status(&id("crm")).await.expect("status");
    assert!(status.checkpoint.is_some_and(|c| c < newer.position));
    assert_eq!(receiver.delivered_ids(), ids(&first));
    h.stop().await;
}
