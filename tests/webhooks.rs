//! Webhooks end to end: the real server on port 0 (its dispatcher running), endpoints managed
//! over HTTP with the admin key, and a receiver this test runs on loopback that records every
//! request. Signatures are checked with the Standard Webhooks project's own library
//! (`standardwebhooks`), not with our code.
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use loyalty_store::{Direction, StreamFrom};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN, TERMINAL, TestServer};

// ---------------------------------------------------------------- the receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    json: Value,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn webhook_id(&self) -> &str {
        self.header("webhook-id")
    }

    /// Whether `secret` signed this request, as the Standard Webhooks library computes the
    /// signature. The library's `verify` also holds the timestamp to this machine's clock,
    /// while the test server runs on a manual clock set months away: so the signature the
    /// library makes for the request's own id, timestamp and body is looked for among the
    /// request's signatures (the rest of `verify`, which the timestamp check would skip).
    fn signed_by(&self, secret: &str) -> bool {
        let hook = standardwebhooks::Webhook::new(secret).expect("a valid secret");
        if hook.verify(&self.body, &self.headers).is_ok() {
            return true;
        }
        let Ok(timestamp) = self.header("webhook-timestamp").parse::<i64>() else {
            return false;
        };
        let expected = hook
            .sign(self.webhook_id(), timestamp, &self.body)
            .expect("the library signs");
        self.header("webhook-signature")
            .split(' ')
            .any(|signature| signature == expected)
    }

    fn transaction(&self) -> &str {
        self.json["data"]["transaction_id"]
            .as_str()
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// The status it answers with (200 unless a test makes it fail).
    status: Mutex<u16>,
}

/// An HTTP receiver on 127.0.0.1 (so the server must allow private targets).
#[derive(Debug, Clone)]
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver binds");
        let url = format!(
            "http://{}/hooks",
            listener.local_addr().expect("an address")
        );
        let state = Arc::new(ReceiverState {
            status: Mutex::new(200),
            ..ReceiverState::default()
        });
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move {
                    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    state.received.lock().unwrap().push(Received {
                        headers,
                        body,
                        json,
                    });
                    let status = *state.status.lock().unwrap();
                    AxumStatus::from_u16(status).unwrap_or(AxumStatus::OK)
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn answer_with(&self, status: u16) {
        *self.state.status.lock().unwrap() = status;
    }

    /// The requests of `event_type`, in arrival order.
    fn of_type(&self, event_type: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.json["type"] == event_type)
            .collect()
    }

    /// The transaction ids of the purchases received, in arrival order.
    fn purchases(&self) -> Vec<String> {
        self.of_type("purchase.recorded")
            .iter()
            .map(|r| r.transaction().to_owned())
            .collect()
    }
}

// ---------------------------------------------------------------- helpers

/// A server whose endpoints may point at loopback, retrying quickly.
async fn server() -> TestServer {
    TestServer::start_with_settings(&[
        ("webhooks.allow_private_targets", json!(true)),
        ("webhooks.initial_backoff_ms", json!(20)),
        ("webhooks.max_backoff_ms", json!(100)),
        ("webhooks.log_flush_ms", json!(20)),
        ("webhooks.failing_probe_secs", json!(1)),
    ])
    .await
}

/// Polls `condition` every 20 ms for at most 20 s (delivery runs in the background: the lease,
/// the subscription, the retries); returns whether it held.
async fn within(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Polls an HTTP read until `condition` holds on its answer; returns the last answer.
async fn until(
    server: &TestServer,
    path: &str,
    mut condition: impl FnMut(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..1000 {
        let answer = server.get(ADMIN, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {:?}", answer.body);
        if condition(&answer.body) {
            return answer.body;
        }
        last = answer.body;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never met the condition: {last}");
}

const ENDPOINTS: &str = "/v1/webhooks/endpoints";

async fn create(server: &TestServer, body: Value) -> support::Answer {
    server.post(ADMIN, ENDPOINTS, &body).await
}

/// Creates an endpoint for purchases only and returns its secret.
async fn purchases_endpoint(server: &TestServer, id: &str, receiver: &Receiver) -> String {
    let created = create(
        server,
        json!({"endpoint_id": id, "url": receiver.url, "event_types": ["purchase.recorded"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.body["secret"]
        .as_str()
        .expect("the answer holds the secret")
        .to_owned()
}

async fn buy(server: &TestServer, member: &str, transaction: &str) -> String {
    let answer = server.purchase(member, transaction, "12.50").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.position()
}

fn position(text: &str) -> (u64, u64) {
    let (commit, prepare) = text.split_once('/').expect("commit/prepare");
    (
        commit.parse().expect("a commit"),
        prepare.parse().expect("a prepare"),
    )
}

/// How many events the registry stream holds.
async fn registry_events(server: &TestServer) -> usize {
    server
        .server
        .engine
        .store()
        .read_stream(
            loyalty_webhooks::REGISTRY_STREAM,
            StreamFrom::Start,
            Direction::Forwards,
            1000,
        )
        .await
        .map(|events| events.len())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_reach_the_endpoint_signed_in_order_and_the_delivery_log_records_them() {
    // Given a server, a receiver and an endpoint for purchases
    let server = server().await;
    let receiver = Receiver::start().await;
    let secret = purchases_endpoint(&server, "crm", &receiver).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    server.enroll("alice").await;

    // When alice buys three times
    let mut positions = Vec::new();
    for t in ["t1", "t2", "t3"] {
        positions.push(buy(&server, "alice", t).await);
    }

    // Then the receiver gets the three purchases, in order, signed with the endpoint's secret
    assert!(
        within(|| receiver.purchases().len() >= 3).await,
        "received {:?}",
        receiver.purchases()
    );
    let received = receiver.received();
    assert_eq!(receiver.purchases(), ["t1", "t2", "t3"]);
    assert_eq!(received.len(), 3, "only the types asked for are sent");
    for (r, at) in received.iter().zip(&positions) {
        assert!(r.signed_by(&secret), "{:?}", r.headers);
        assert!(r.webhook_id().starts_with("msg_"), "{}", r.webhook_id());
        assert_eq!(
            r.json["id"],
            r.webhook_id(),
            "the payload names its webhook-id"
        );
        assert_eq!(r.json["type"], "purchase.recorded");
        assert_eq!(r.json["version"], 1);
        assert_eq!(r.json["member_id"], "alice");
        assert_eq!(r.json["position"], at.as_str());
        assert_eq!(r.json["data"]["amount"], "12.50");
        assert!(r.json["data"]["points"].is_i64(), "{}", r.json);
        assert!(!r.signed_by("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    }

    // And the delivery log says so, newest first; the endpoint's checkpoint passed them
    let path = format!("{ENDPOINTS}/crm/deliveries");
    let log = until(&server, &path, |b| {
        b["attempts"].as_array().is_some_and(|a| a.len() >= 3)
    })
    .await;
    let attempts = log["attempts"].as_array().unwrap();
    let ids: Vec<&str> = attempts
        .iter()
        .map(|a| a["message_id"].as_str().unwrap())
        .collect();
    let sent: Vec<&str> = received.iter().rev().map(Received::webhook_id).collect();
    assert_eq!(ids, sent, "newest first");
    for a in attempts {
        assert_eq!(a["outcome"], "delivered", "{a}");
        assert_eq!(a["status"], 200);
        assert_eq!(a["attempt"], 1);
        assert_eq!(a["redelivery"], false);
        assert_eq!(a["event_type"], "purchase.recorded");
    }
    let last = position(positions.last().unwrap());
    let endpoint = until(&server, &format!("{ENDPOINTS}/crm"), |b| {
        b["delivery"]["checkpoint"]
            .as_str()
            .is_some_and(|c| position(c) >= last)
    })
    .await;
    assert!(endpoint["delivery"]["last_delivered_at"].is_string());
    assert_eq!(endpoint["status"], "enabled");
    assert!(
        endpoint.get("secret").is_none(),
        "a read never shows the secret"
    );

    // And a page of one has a cursor to the older attempts
    let first = server.get(ADMIN, &format!("{path}?limit=1")).await;
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = server
        .get(ADMIN, &format!("{path}?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second.body["attempts"][0]["message_id"], ids[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_sign_and_after_the_overlap_only_the_new_one() {
    // Given an endpoint with a secret of the admin's choosing
    let server = server().await;
    let receiver = Receiver::start().await;
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let created = create(
        &server,
        json!({"endpoint_id": "crm", "url": receiver.url, "secret": old,
               "event_types": ["purchase.recorded"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["secret"], old);
    server.enroll("alice").await;

    // When the secret is rotated with an hour of overlap
    let rotated = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/rotate-secret"),
            &json!({"overlap_secs": 3600}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated.body["previous_secret_until"].is_string());
    buy(&server, "alice", "t1").await;

    // Then the message verifies with either secret
    assert!(within(|| !receiver.purchases().is_empty()).await);
    let during = &receiver.received()[0];
    assert!(during.signed_by(old), "{:?}", during.headers);
    assert!(during.signed_by(&new), "{:?}", during.headers);

    // When it is rotated again without overlap
    let newest = "whsec_dGhlIHRoaXJkIHNlY3JldCBvZiB0aGlzIHRlc3QhIQ==";
    let again = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/rotate-secret"),
            &json!({"secret": newest, "overlap_secs": 0}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert!(again.body["previous_secret_until"].is_null());
    buy(&server, "alice", "t2").await;

    // Then only the newest secret signs
    assert!(within(|| receiver.purchases().len() >= 2).await);
    let after = &receiver.of_type("purchase.recorded")[1];
    assert_eq!(after.transaction(), "t2");
    assert!(after.signed_by(newest), "{:?}", after.headers);
    assert!(!after.signed_by(&new));
    assert!(!after.signed_by(old));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_endpoint_receives_nothing_and_resuming_drains_its_backlog_in_order() {
    // Given a paused endpoint
    let server = server().await;
    let receiver = Receiver::start().await;
    purchases_endpoint(&server, "crm", &receiver).await;
    let paused = server
        .post(ADMIN, &format!("{ENDPOINTS}/crm/pause"), &json!({}))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    assert_eq!(paused.body["status"], "paused");
    server.enroll("alice").await;

    // When purchases are recorded while it is paused
    for t in ["t1", "t2", "t3"] {
        buy(&server, "alice", t).await;
    }

    // Then nothing arrives
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 0);

    // When it is resumed, the backlog arrives, in order
    let resumed = server
        .post(ADMIN, &format!("{ENDPOINTS}/crm/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
    assert_eq!(resumed.body["status"], "enabled");
    assert!(within(|| receiver.purchases().len() >= 3).await);
    assert_eq!(receiver.purchases(), ["t1", "t2", "t3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_until_it_answers_and_the_log_records_every_attempt() {
    // Given a receiver that answers 503
    let server = server().await;
    let receiver = Receiver::start().await;
    receiver.answer_with(503);
    purchases_endpoint(&server, "crm", &receiver).await;
    server.enroll("alice").await;

    // When a purchase is recorded
    buy(&server, "alice", "t1").await;

    // Then it is tried again and again, each attempt logged with the answer's status
    assert!(within(|| receiver.purchases().len() >= 3).await);
    let path = format!("{ENDPOINTS}/crm");
    let failing = until(&server, &path, |b| {
        b["delivery"]["last_failure"].is_object()
    })
    .await;
    assert!(
        failing["delivery"]["last_failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("503")),
        "{failing}"
    );

    // When the receiver recovers, the message is delivered, with the same id every time
    receiver.answer_with(200);
    until(&server, &format!("{path}/deliveries"), |b| {
        b["attempts"][0]["outcome"] == "delivered"
    })
    .await;
    let ids: std::collections::BTreeSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.webhook_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let log = server.get(ADMIN, &format!("{path}/deliveries")).await;
    let attempts = log.body["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 3, "{}", log.body);
    assert_eq!(attempts[0]["status"], 200);
    assert!(attempts[0]["attempt"].as_u64().unwrap() >= 3);
    assert!(
        attempts[1..]
            .iter()
            .all(|a| a["outcome"] == "retrying" && a["status"] == 503),
        "{}",
        log.body
    );

    // And the server's metrics count the delivery and the failed attempts
    let metrics = server.get(ADMIN, "/metrics").await;
    let text = metrics.body.as_str().expect("metrics are text").to_owned();
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in the metrics"))
    };
    assert_eq!(gauge("loyalty_webhooks_delivered"), 1);
    assert!(gauge("loyalty_webhooks_failed_attempts") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_and_a_replay_send_messages_again_with_their_original_ids() {
    // Given two purchases delivered
    let server = server().await;
    let receiver = Receiver::start().await;
    purchases_endpoint(&server, "crm", &receiver).await;
    let created = server.get(ADMIN, &format!("{ENDPOINTS}/crm")).await;
    let start = created.body["start_after"].as_str().unwrap().to_owned();
    server.enroll("alice").await;
    buy(&server, "alice", "t1").await;
    buy(&server, "alice", "t2").await;
    assert!(within(|| receiver.purchases().len() >= 2).await);
    let first = receiver.received()[0].webhook_id().to_owned();
    let second = receiver.received()[1].webhook_id().to_owned();
    until(&server, &format!("{ENDPOINTS}/crm/deliveries"), |b| {
        b["attempts"].as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;

    // When the first one is redelivered
    let redeliver = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/messages/{first}/redeliver"),
            &json!({}),
        )
        .await;
    assert_eq!(
        redeliver.status,
        StatusCode::ACCEPTED,
        "{:?}",
        redeliver.body
    );
    assert_eq!(redeliver.body["message_id"], first.as_str());

    // Then it arrives again with its id, and the log marks it as a redelivery
    assert!(within(|| receiver.received().len() >= 3).await);
    assert_eq!(receiver.received()[2].webhook_id(), first);
    let path = format!("{ENDPOINTS}/crm/deliveries?message_id={first}");
    let log = until(&server, &path, |b| {
        b["attempts"].as_array().is_some_and(|a| a.len() >= 2)
    })
    .await;
    assert_eq!(log["attempts"][0]["redelivery"], true, "{log}");
    assert_eq!(log["attempts"][1]["redelivery"], false, "{log}");

    // When the endpoint is replayed from where it started
    let replay = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/replay"),
            &json!({"after": start}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{:?}", replay.body);
    assert_eq!(replay.body["generation"], 1);

    // Then both purchases arrive again, in order, with their original ids
    assert!(within(|| receiver.received().len() >= 5).await);
    let again: Vec<String> = receiver.received()[3..5]
        .iter()
        .map(|r| r.webhook_id().to_owned())
        .collect();
    assert_eq!(again, [first.clone(), second]);

    // And redelivering a message the log does not hold, or replaying past the head, is refused
    let unknown = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/messages/msg_00000000000000000000000000000000/redeliver"),
            &json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:?}", unknown.body);
    assert_eq!(unknown.problem(), "webhook-message-not-found");
    let ahead = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/replay"),
            &json!({"after": "999999999/999999999"}),
        )
        .await;
    assert_eq!(ahead.status, StatusCode::CONFLICT, "{:?}", ahead.body);
    assert_eq!(ahead.problem(), "position-ahead-of-log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_is_created_once_changed_listed_and_deleted_for_good() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let body = json!({"endpoint_id": "crm", "url": receiver.url,
                      "description": "The CRM", "timeout_ms": 2000});

    // Given an endpoint created, then the same request again
    let first = create(&server, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert!(!first.replayed_header);
    let again = create(&server, body.clone()).await;

    // Then the retry answers the same endpoint, 200, marked as replayed
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert!(again.replayed_header);
    assert_eq!(again.body["secret"], first.body["secret"]);
    assert_eq!(again.body["created_at"], first.body["created_at"]);
    assert_eq!(first.body["event_types"], json!([]), "absent: every type");
    assert_eq!(first.body["timeout_ms"], 2000);

    // And the same id with other settings is a conflict
    let mut other = body.clone();
    other["timeout_ms"] = json!(3000);
    let conflict = create(&server, other).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{:?}", conflict.body);
    assert_eq!(conflict.problem(), "webhook-endpoint-exists");

    // When it is changed
    let changed = server
        .send(
            Method::PATCH,
            ADMIN,
            &format!("{ENDPOINTS}/crm"),
            Some(
                &json!({"event_types": ["tier.changed", "purchase.recorded"],
                         "max_in_flight": 2}),
            ),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        changed.body["event_types"],
        json!(["purchase.recorded", "tier.changed"])
    );
    assert_eq!(changed.body["max_in_flight"], 2);
    assert_eq!(
        changed.body["description"], "The CRM",
        "what is not named stays"
    );

    // Then the list shows it, without its secret
    let list = server.get(ADMIN, ENDPOINTS).await;
    assert_eq!(list.status, StatusCode::OK);
    let endpoints = list.body["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["endpoint_id"], "crm");
    assert!(endpoints[0].get("secret").is_none());

    // When it is deleted
    let deleted = server
        .send(Method::DELETE, ADMIN, &format!("{ENDPOINTS}/crm"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);

    // Then it is gone, and its id is never given out again
    let gone = server.get(ADMIN, &format!("{ENDPOINTS}/crm")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.problem(), "webhook-endpoint-not-found");
    let recreated = create(&server, body).await;
    assert_eq!(
        recreated.status,
        StatusCode::CONFLICT,
        "{:?}",
        recreated.body
    );
    assert_eq!(
        server.get(ADMIN, ENDPOINTS).await.body["endpoints"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_survives_a_restart_and_delivers_what_followed() {
    // Given an endpoint and a first purchase delivered
    let server = server().await;
    let receiver = Receiver::start().await;
    let secret = purchases_endpoint(&server, "crm", &receiver).await;
    server.enroll("alice").await;
    buy(&server, "alice", "t1").await;
    assert!(within(|| !receiver.purchases().is_empty()).await);

    // When the server restarts and another purchase is recorded
    let server = server.restart().await;
    buy(&server, "alice", "t2").await;

    // Then it is delivered, signed with the same secret, and the first one is not sent again
    assert!(within(|| receiver.purchases().contains(&"t2".to_owned())).await);
    assert!(receiver.received().iter().all(|r| r.signed_by(&secret)));
    let purchases = receiver.purchases();
    assert_eq!(
        purchases.iter().filter(|t| *t == "t1").count(),
        1,
        "{purchases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_types_are_listed_with_what_they_tell() {
    let server = server().await;
    let answer = server.get(ADMIN, "/v1/webhooks/event-types").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["version"], 1);
    let types: Vec<&str> = answer.body["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "member.enrolled",
            "purchase.recorded",
            "refund.recorded",
            "reward.redeemed",
            "redemption.cancelled",
            "tier.changed",
            "points.expired",
            "points.expiring"
        ]
    );
    assert!(
        answer.body["event_types"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["description"].as_str().is_some_and(|d| !d.is_empty()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_problems_and_append_nothing() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let url = receiver.url.clone();
    let refused: Vec<(Value, u16, &str)> = vec![
        (
            json!({"endpoint_id": "a", "url": "ftp://example.com/"}),
            422,
            "invalid-webhook-url",
        ),
        (
            json!({"endpoint_id": "a", "url": "https://user:pw@example.com/"}),
            422,
            "invalid-webhook-url",
        ),
        (json!({"endpoint_id": "a b", "url": url}), 422, "invalid-id"),
        (
            json!({"endpoint_id": "a", "url": url, "secret": "whsec_short"}),
            422,
            "invalid-webhook-secret",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "timeout_ms": 30_001}),
            422,
            "invalid-webhook-setting",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "max_in_flight": 0}),
            422,
            "invalid-webhook-setting",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "description": "two\nlines"}),
            422,
            "invalid-webhook-setting",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "event_types": ["purchase.made"]}),
            422,
            "invalid-request",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "event_types": null}),
            422,
            "invalid-request",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "start": "later"}),
            422,
            "invalid-request",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "start": "999999999/999999999"}),
            409,
            "position-ahead-of-log",
        ),
        (
            json!({"endpoint_id": "a", "url": url, "colour": "red"}),
            422,
            "invalid-request",
        ),
    ];
    for (body, status, problem) in refused {
        let answer = create(&server, body.clone()).await;
        assert_eq!(answer.status.as_u16(), status, "{body}: {:?}", answer.body);
        assert_eq!(answer.problem(), problem, "{body}: {:?}", answer.body);
        assert_eq!(answer.content_type, "application/problem+json");
    }

    // Unknown endpoints, a change naming nothing, other roles
    let missing = format!("{ENDPOINTS}/nobody");
    for answer in [
        server.get(ADMIN, &missing).await,
        server.get(ADMIN, &format!("{missing}/deliveries")).await,
        server
            .post(ADMIN, &format!("{missing}/pause"), &json!({}))
            .await,
        server
            .send(
                Method::PATCH,
                ADMIN,
                &missing,
                Some(&json!({"max_in_flight": 2})),
            )
            .await,
        server.send(Method::DELETE, ADMIN, &missing, None).await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{:?}", answer.body);
        assert_eq!(answer.problem(), "webhook-endpoint-not-found");
    }
    purchases_endpoint(&server, "crm", &receiver).await;
    let events = registry_events(&server).await;
    let nothing = server
        .send(
            Method::PATCH,
            ADMIN,
            &format!("{ENDPOINTS}/crm"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let cursor = server
        .get(ADMIN, &format!("{ENDPOINTS}/crm/deliveries?cursor=x"))
        .await;
    assert_eq!(cursor.problem(), "invalid-cursor", "{:?}", cursor.body);
    let overlap = server
        .post(
            ADMIN,
            &format!("{ENDPOINTS}/crm/rotate-secret"),
            &json!({"overlap_secs": 40 * 24 * 3600}),
        )
        .await;
    assert_eq!(overlap.status, StatusCode::UNPROCESSABLE_ENTITY);
    let terminal = server.post(TERMINAL, ENDPOINTS, &json!({})).await;
    assert_eq!(terminal.status, StatusCode::FORBIDDEN);
    let terminal = server.get(TERMINAL, ENDPOINTS).await;
    assert_eq!(terminal.status, StatusCode::FORBIDDEN);

    // Then the registry holds the one endpoint created, and nothing else was appended
    assert_eq!(registry_events(&server).await, events);
    assert_eq!(events, 1);
    let list = server.get(ADMIN, ENDPOINTS).await;
    assert_eq!(list.body["endpoints"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_shipped_the_server_refuses_endpoints_on_private_addresses() {
    // Given the shipped settings (private targets not allowed)
    let server = TestServer::start().await;
    for url in [
        "http://127.0.0.1:9/hooks",
        "http://localhost/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data",
    ] {
        // When an endpoint names one
        let answer = create(&server, json!({"endpoint_id": "inside", "url": url})).await;

        // Then it is refused
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {:?}",
            answer.body
        );
        assert_eq!(answer.problem(), "webhook-target-not-allowed", "{url}");
    }
    assert_eq!(registry_events(&server).await, 0);
}
