//! End to end: the real server (the `loyalty` binary's library) on port 0 with a temporary
//! SQLite file and a manual clock, driven over HTTP with reqwest.
mod support;

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ADMIN, APP, AUDITOR, STORE, SUPPORT, TERMINAL, TestServer, purchase_body};

fn points(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{value} is not an integer number of points"))
}

/// The member's available balance as the app sees it after `position`.
async fn available(server: &TestServer, member: &str, position: &str) -> i64 {
    let profile = server.profile_after(member, position).await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    points(&profile.body["balance"]["available"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_through_enroll_purchase_balance_redeem_refund_then_verify() {
    walk_through(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walk_through_runs_the_same_on_eventstoredb() {
    // Given the engine on the EventStoreDB adapter, talking gRPC to the wire-compatible test
    // server (a real cluster when EVENTSTORE_URL is set runs the store's conformance suite)
    let esdb = loyalty_esdb_testserver::TestServer::start()
        .await
        .expect("the EventStoreDB test server starts");
    let server = TestServer::start_with_settings(&[
        ("store.kind", json!("eventstoredb")),
        ("store.url", json!(esdb.url())),
    ])
    .await;
    // Then the whole walk-through, down to a clean verify, behaves as on SQLite
    walk_through(server).await;
}

async fn walk_through(server: TestServer) {
    // Given a server and an enrolled member
    let enrolled = server.enroll("alice").await;
    assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);

    // When a terminal records a purchase
    let bought = server.purchase("alice", "till-1-0001", "42.00").await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let earned = points(&bought.body["outcome"]["points"]);
    assert!(
        earned > 0,
        "a 42.00 purchase earns points: {:?}",
        bought.body
    );

    // Then the app sees the points, spendable once the return window has passed
    server.advance(Duration::days(31));
    let profile = server.profile_after("alice", &bought.position()).await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    let welcome = points(&enrolled.body["outcome"]["welcome_points"]);
    assert_eq!(
        points(&profile.body["balance"]["lifetime_earned"]),
        welcome + earned
    );
    let before = points(&profile.body["balance"]["available"]);
    assert_eq!(before, welcome + earned);

    // When the member redeems a reward
    let redeemed = server
        .post(
            APP,
            "/v1/members/alice/redemptions",
            &json!({"redemption_id": "app-r-1", "occurred_at": server.now(), "reward_id": "free-espresso"}),
        )
        .await;
    assert_eq!(redeemed.status, StatusCode::OK, "{:?}", redeemed.body);
    let spent = points(&redeemed.body["outcome"]["points"]);
    assert!(spent > 0);

    // And the purchase is partly refunded
    let refunded = server
        .refund("till-1-0001", "till-1-0001-r1", "21.00")
        .await;
    assert_eq!(refunded.status, StatusCode::OK, "{:?}", refunded.body);
    let clawed = points(&refunded.body["outcome"]["points_clawed_back"]);
    assert!(clawed > 0);

    // Then the balance is what the events say, and the history lists every line
    let balance = available(&server, "alice", &refunded.position()).await;
    assert_eq!(balance, before - spent - clawed);
    let history = server
        .get(
            APP,
            &format!(
                "/v1/members/alice/history?min_position={}",
                refunded.position()
            ),
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{:?}", history.body);
    let lines = history.body["lines"].as_array().expect("history lines");
    assert!(lines.len() >= 3, "{lines:?}");

    // And a fresh replay of the log equals the live read models
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_retried_answers_its_original_outcome_and_changes_nothing() {
    let server = TestServer::start().await;
    let now = server.now();
    // Credits become spendable after the program's 14-day pending period: spend 15 days later.
    let later = now + Duration::days(15);
    let writes: Vec<(&str, &str, Value)> = vec![
        (
            APP,
            "/v1/members",
            json!({"member_id": "bob", "occurred_at": now}),
        ),
        (
            TERMINAL,
            "/v1/purchases",
            purchase_body("bob", "t-1", "30.00", now),
        ),
        (
            TERMINAL,
            "/v1/activities",
            json!({"member_id": "bob", "activity_id": "act-1", "kind": "survey_answered", "occurred_at": now}),
        ),
        (
            SUPPORT,
            "/v1/members/bob/adjustments",
            json!({"adjustment_id": "adj-1", "points": 25, "reason_code": "correction", "note": "till was offline", "occurred_at": now}),
        ),
        (
            SUPPORT,
            "/v1/members/bob/goodwill",
            json!({"complaint_id": "c-1", "points": 50, "reason_code": "complaint", "note": "cold coffee", "occurred_at": now}),
        ),
        (
            APP,
            "/v1/members/bob/redemptions",
            json!({"redemption_id": "r-1", "occurred_at": later, "points": 30}),
        ),
        (
            APP,
            "/v1/members/bob/redemptions/r-1/cancel",
            json!({"occurred_at": later}),
        ),
        (
            TERMINAL,
            "/v1/refunds",
            json!({"refund_id": "rf-1", "transaction_id": "t-1", "store": STORE, "occurred_at": later, "currency": "EUR", "amount": "10.00"}),
        ),
    ];
    for (key, path, body) in &writes {
        if body["occurred_at"] == json!(later) && server.now() < later {
            server.advance(Duration::days(15));
        }
        // When a write is sent
        let first = server.post(key, path, body).await;
        assert_eq!(first.status, StatusCode::OK, "{path}: {:?}", first.body);
        assert_eq!(first.body["replayed"], false, "{path}");
        let log = server.log_len().await;
        // And sent again, unchanged (a retry after a time-out)
        let again = server.post(key, path, body).await;
        // Then the answer is the original outcome, flagged as a replay, and nothing is added
        assert_eq!(again.status, StatusCode::OK, "{path}: {:?}", again.body);
        assert!(again.replayed_header, "{path}");
        assert_eq!(again.body["replayed"], true, "{path}");
        assert_eq!(again.body["outcome"], first.body["outcome"], "{path}");
        assert_eq!(server.log_len().await, log, "{path}");
    }
    // And the same id with different content is a conflict
    let changed = server
        .post(
            TERMINAL,
            "/v1/purchases",
            &purchase_body("bob", "t-1", "31.00", now),
        )
        .await;
    assert_eq!(changed.status, StatusCode::CONFLICT, "{:?}", changed.body);
    assert_eq!(changed.problem(), "idempotency-conflict");
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_that_would_overdraw_let_exactly_the_affordable_ones_through() {
    // Given a member with a known number of spendable points
    let server = TestServer::start().await;
    server.enroll("carol").await;
    let granted = server
        .post(
            SUPPORT,
            "/v1/members/carol/goodwill",
            &json!({"complaint_id": "c-1", "points": 1000, "reason_code": "complaint", "note": "late order", "occurred_at": server.now()}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    server.advance(Duration::days(15));
    let balance = available(&server, "carol", &granted.position()).await;
    assert!(balance >= 1000, "{balance}");
    let affordable = usize::try_from(balance / 300).unwrap();

    // When twelve redemptions of 300 points race
    let redemptions = (0..12).map(|i| {
        let server = &server;
        async move {
            server
                .redeem_points("carol", &format!("race-{i}"), 300)
                .await
        }
    });
    let answers = futures::future::join_all(redemptions).await;

    // Then exactly three succeed and the others are told there are not enough points
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let refused = answers
        .iter()
        .filter(|a| a.status == StatusCode::CONFLICT && a.problem() == "insufficient-points")
        .count();
    assert_eq!(ok, affordable, "{answers:?}");
    assert_eq!(refused, 12 - affordable, "{answers:?}");
    let last = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .map(|a| a.position())
        .max_by_key(|p| p.split('/').next().and_then(|c| c.parse::<u64>().ok()))
        .unwrap();
    assert_eq!(available(&server, "carol", &last).await, balance % 300);
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunding_a_purchase_whose_points_were_spent_takes_back_no_more_than_it_awarded() {
    // Given a purchase whose points were all spent
    let server = TestServer::start().await;
    server.enroll("dave").await;
    let bought = server.purchase("dave", "t-9", "50.00").await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let earned = points(&bought.body["outcome"]["points"]);
    server.advance(Duration::days(31));
    let all = available(&server, "dave", &bought.position()).await;
    assert!(all >= earned);
    let spent = server.redeem_points("dave", "r-all", all).await;
    assert_eq!(spent.status, StatusCode::OK, "{:?}", spent.body);

    // When the whole purchase is refunded
    let refunded = server.refund("t-9", "t-9-r", "50.00").await;
    assert_eq!(refunded.status, StatusCode::OK, "{:?}", refunded.body);
    let outcome = &refunded.body["outcome"];

    // Then exactly what the purchase awarded is clawed back, all of it as a debt (the demo
    // program's policy is `allow`), since nothing was left to take
    assert_eq!(points(&outcome["points_clawed_back"]), earned, "{outcome}");
    assert_eq!(points(&outcome["debt_added"]), earned, "{outcome}");
    assert_eq!(points(&outcome["shortfall"]), 0, "{outcome}");

    // And a second refund of the same purchase is refused: nothing is left to refund (the
    // purchase's state refuses it: a conflict)
    let again = server.refund("t-9", "t-9-r2", "1.00").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert_eq!(again.problem(), "refund-exceeds-remaining");
    let profile = server.profile_after("dave", &refunded.position()).await;
    assert_eq!(points(&profile.body["balance"]["available"]), 0);
    assert_eq!(points(&profile.body["balance"]["debt"]), earned);
    assert_eq!(points(&profile.body["balance"]["balance"]), -earned);
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_expire_and_tiers_are_reviewed_when_the_scheduler_runs() {
    // Given a member who earned points and reached a tier above the first
    let server = TestServer::start().await;
    let enrolled = server.enroll("erin").await;
    let welcome = points(&enrolled.body["outcome"]["welcome_points"]);
    let bought = server.purchase("erin", "t-big", "900.00").await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let earned = points(&bought.body["outcome"]["points"]);
    let profile = server.profile_after("erin", &bought.position()).await;
    let tier_before = profile.body["tier"]["current"]["name"].clone();
    assert_eq!(
        tier_before, "Gold",
        "900.00 of spend crosses Gold's threshold: {:?}",
        profile.body
    );

    // When two years pass and the scheduled work runs
    server.advance(Duration::days(2 * 366));
    let run = server.run_scheduler().await;
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
    let position = run.body["position"]
        .as_str()
        .expect("the run's position")
        .to_owned();
    let after = server.profile_after("erin", &position).await;

    // Then the points are expired and the tier went down
    assert_eq!(
        points(&after.body["balance"]["available"]),
        0,
        "{:?}",
        after.body
    );
    assert_eq!(
        points(&after.body["balance"]["expired"]),
        welcome + earned,
        "{:?}",
        after.body
    );
    // One level down per review, and no spend in the last year
    assert_eq!(
        after.body["tier"]["current"]["name"], "Silver",
        "{:?}",
        after.body
    );
    assert!(
        points(&run.body["report"]["tier_changes"]) >= 1,
        "{:?}",
        run.body
    );

    // And running it again changes nothing
    let log = server.log_len().await;
    let again = server.run_scheduler().await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(server.log_len().await, log);
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_can_do_only_what_its_role_allows() {
    let server = TestServer::start().await;
    let enrolled = server.enroll("fay").await;
    // The reads below name no position: wait until the read models hold fay.
    let seen = server.profile_after("fay", &enrolled.position()).await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.body);
    let now = server.now();
    // No key, a wrong key
    let none = server
        .post_raw(
            None,
            "/v1/members",
            json!({"member_id": "x", "occurred_at": now}).to_string(),
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.content_type, "application/problem+json");
    let wrong = server.get("demo-terminal-kez", "/v1/members/fay").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // A role that may not
    let cases: Vec<(&str, &str, bool)> = vec![
        (APP, "/v1/log", false),
        (TERMINAL, "/v1/members/fay", false),
        (SUPPORT, "/v1/liability?as_of=2026-03-02T10:00:00Z", false),
        (AUDITOR, "/v1/log", true),
        (AUDITOR, "/v1/members/fay", true),
        (ADMIN, "/v1/log", true),
    ];
    for (key, path, allowed) in cases {
        let answer = server.get(key, path).await;
        let expected = if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(
            answer.status, expected,
            "{key} GET {path}: {:?}",
            answer.body
        );
    }
    let as_app = server
        .post(
            APP,
            "/v1/purchases",
            &purchase_body("fay", "t-1", "5.00", now),
        )
        .await;
    assert_eq!(as_app.status, StatusCode::FORBIDDEN);
    let mut other_store = purchase_body("fay", "t-1", "5.00", now);
    other_store["store"] = json!("store-99");
    let foreign = server.post(TERMINAL, "/v1/purchases", &other_store).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(foreign.problem(), "forbidden");
    let goodwill_by_app = server
        .post(
            APP,
            "/v1/members/fay/goodwill",
            &json!({"complaint_id": "c", "points": 10, "reason_code": "complaint", "note": "n", "occurred_at": now}),
        )
        .await;
    assert_eq!(goodwill_by_app.status, StatusCode::FORBIDDEN);
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_with_problems_and_append_nothing() {
    let server = TestServer::start().await;
    server.enroll("gus").await;
    let now = server.now();
    let log = server.log_len().await;

    let malformed = server
        .post_raw(
            Some(TERMINAL),
            "/v1/purchases",
            "{\"member_id\": \"gus\",".into(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.problem(), "malformed-json");

    let mut unknown_field = purchase_body("gus", "t-1", "5.00", now);
    unknown_field["discount"] = json!("1.00");
    let mut negative = purchase_body("gus", "t-1", "5.00", now);
    negative["lines"][0]["amount"] = json!("-5.00");
    let mut absurd = purchase_body("gus", "t-1", "5.00", now);
    absurd["lines"][0]["amount"] = json!("1000000000.00");
    let mut float = purchase_body("gus", "t-1", "5.00", now);
    float["lines"][0]["amount"] = json!(5.0);
    let mut bad_id = purchase_body("gus", "t 1", "5.00", now);
    bad_id["transaction_id"] = json!("t 1/../x");
    for (what, body) in [
        ("unknown field", unknown_field),
        ("negative amount", negative),
        ("absurd amount", absurd),
        ("float amount", float),
        ("bad id", bad_id),
    ] {
        let answer = server.post(TERMINAL, "/v1/purchases", &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {:?}",
            answer.body
        );
        assert_eq!(answer.content_type, "application/problem+json", "{what}");
        assert!(answer.body["detail"].is_string(), "{what}");
    }

    let unknown_member = server.purchase("nobody", "t-2", "5.00").await;
    assert_eq!(
        unknown_member.status,
        StatusCode::NOT_FOUND,
        "{:?}",
        unknown_member.body
    );

    let oversize = format!(
        "{{\"member_id\":\"gus\",\"occurred_at\":\"{}\",\"referrer\":\"{}\"}}",
        now.to_rfc3339(),
        "x".repeat(200_000)
    );
    let too_big = server.post_raw(Some(APP), "/v1/members", oversize).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.content_type, "application/problem+json");

    let huge_page = server.get(AUDITOR, "/v1/log?limit=1000000").await;
    assert_eq!(huge_page.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Then nothing was appended by any of them
    assert_eq!(server.log_len().await, log);
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_file_serves_identical_balances() {
    // Given members with some history
    let server = TestServer::start().await;
    let mut last = String::new();
    for (i, member) in ["hal", "ivy", "jon"].iter().enumerate() {
        server.enroll(member).await;
        let bought = server
            .purchase(
                member,
                &format!("t-{member}"),
                &format!("{}.50", 10 + i * 7),
            )
            .await;
        assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
        last = bought.position();
    }
    let mut before = Vec::new();
    for member in ["hal", "ivy", "jon"] {
        before.push(server.profile_after(member, &last).await.body["balance"].clone());
    }

    // When the server stops and starts again on the same file
    let server = server.restart().await;

    // Then every balance is identical
    for (member, balance) in ["hal", "ivy", "jon"].iter().zip(before) {
        let after = server.profile_after(member, &last).await;
        assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
        assert_eq!(after.body["balance"], balance, "{member}");
    }
    assert!(server.stop_and_verify().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_asking_for_a_position_past_the_log_is_refused_and_a_bad_position_is_a_client_error()
{
    // Given a server whose reads wait at most 200 ms for a position
    let server = TestServer::start_with_settings(&[("limits.read_wait_ms", json!(200))]).await;
    let enrolled = server.enroll("kim").await;

    // When a read asks for its own write's position, it sees it
    let profile = server.profile_after("kim", &enrolled.position()).await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);

    // And when it asks for a position past the head of the log, which no write reached, it
    // is told so at once (a position of a write the read models have not applied yet would be
    // 503 not-caught-up, retryable)
    let future = server.profile_after("kim", "1000000/1000000").await;
    assert_eq!(future.status, StatusCode::CONFLICT, "{:?}", future.body);
    assert_eq!(future.problem(), "position-ahead-of-log");

    // And a position that is not one is a client error
    let garbage = server.profile_after("kim", "yesterday").await;
    assert_eq!(
        garbage.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        garbage.body
    );
    assert!(server.stop_and_verify().await);
}
