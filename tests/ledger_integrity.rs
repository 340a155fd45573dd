//! Ledger integrity over HTTP, as tills and apps would try it: business times outside the
//! window are refused with their own problem type and append nothing; nothing happens before
//! an account exists; clawbacks are exact; sales are scoped by store; the role is checked
//! before the body is read.

mod support;

use chrono::{Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

fn points(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not points: {value}"))
}

/// Refused with `problem`, and the log did not grow.
async fn refused_appending_nothing(
    server: &TestServer,
    answer: &Answer,
    problem: &str,
    before: usize,
) {
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        answer.body
    );
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.problem(), problem, "{:?}", answer.body);
    assert_eq!(server.log_len().await, before, "something was appended");
}

fn activity_body(member: &str, id: &str, at: chrono::DateTime<Utc>) -> Value {
    json!({"member_id": member, "activity_id": id, "kind": "store_check_in", "occurred_at": at})
}

#[tokio::test]
async fn a_till_dated_a_year_ahead_can_neither_earn_refund_redeem_nor_expire_anything() {
    // Given alice with her welcome points and a purchase
    let server = TestServer::start().await;
    server.enroll("alice").await;
    let bought = server.purchase("alice", "t-1", "30.00").await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let before = server.log_len().await;
    let ahead = server.now() + Duration::days(365);
    // When a till and an app dated a year ahead post an activity, a purchase, a refund and a
    // redemption
    let attempts = [
        (
            "/v1/activities",
            TERMINAL,
            activity_body("alice", "a-1", ahead),
        ),
        (
            "/v1/purchases",
            TERMINAL,
            purchase_body("alice", "t-2", "10.00", ahead),
        ),
        (
            "/v1/refunds",
            TERMINAL,
            json!({"refund_id": "r-1", "transaction_id": "t-1", "store": STORE,
                   "occurred_at": ahead, "currency": "EUR", "amount": "30.00"}),
        ),
        (
            "/v1/members/alice/redemptions",
            APP,
            json!({"redemption_id": "d-1", "occurred_at": ahead, "points": 50}),
        ),
    ];
    for (path, key, body) in attempts {
        let answer = server.post(key, path, &body).await;
        // Then each is refused, naming the window, and nothing is appended
        refused_appending_nothing(&server, &answer, "occurred-at-outside-window", before).await;
        assert_eq!(
            answer.body["latest"],
            json!(server.now() + Duration::minutes(5))
        );
        assert_eq!(
            answer.body["earliest"],
            json!(server.now() - Duration::days(7))
        );
    }
    // And alice's welcome points are untouched (nothing expired, nothing spent)
    let profile = server.profile_after("alice", &bought.position()).await;
    assert_eq!(points(&profile.body["balance"]["available"]), 50);
    assert_eq!(points(&profile.body["balance"]["expired"]), 0);
}

#[tokio::test]
async fn the_skew_and_the_backdating_window_are_accepted_to_their_edges_and_no_further() {
    let server = TestServer::start().await;
    let now = server.now();
    // Enrolled exactly seven days back (the edge is inside).
    let enrolled = server
        .post(
            APP,
            "/v1/members",
            &json!({"member_id": "bea", "occurred_at": now - Duration::days(7)}),
        )
        .await;
    assert_eq!(enrolled.status, StatusCode::OK, "{:?}", enrolled.body);
    for (transaction, at, accepted) in [
        ("t-behind-edge", now - Duration::days(7), true),
        (
            "t-behind-past",
            now - Duration::days(7) - Duration::seconds(1),
            false,
        ),
        ("t-ahead-edge", now + Duration::minutes(5), true),
        (
            "t-ahead-past",
            now + Duration::minutes(5) + Duration::seconds(1),
            false,
        ),
    ] {
        let before = server.log_len().await;
        let answer = server
            .post(
                TERMINAL,
                "/v1/purchases",
                &purchase_body("bea", transaction, "5.00", at),
            )
            .await;
        if accepted {
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{transaction}: {:?}",
                answer.body
            );
        } else {
            refused_appending_nothing(&server, &answer, "occurred-at-outside-window", before).await;
        }
    }
}

#[tokio::test]
async fn a_backdated_activity_before_the_enrollment_is_refused() {
    // Given carol enrolled yesterday
    let server = TestServer::start().await;
    server.enroll("carol").await;
    server.advance(Duration::days(1));
    let before = server.log_len().await;
    // When an app posts a check-in dated two days ago (inside the backdating window)
    let answer = server
        .post(
            APP,
            "/v1/activities",
            &activity_body("carol", "a-1", server.now() - Duration::days(2)),
        )
        .await;
    // Then it is refused: nothing happens to an account before it exists
    refused_appending_nothing(&server, &answer, "occurred-before-enrollment", before).await;
    assert_eq!(
        answer.body["enrolled_at"],
        json!(server.now() - Duration::days(1))
    );
}

#[tokio::test]
async fn scheduled_work_cannot_be_run_ahead_of_the_servers_clock() {
    let server = TestServer::start().await;
    server.enroll("dan").await;
    let before = server.log_len().await;
    let answer = server
        .post(
            ADMIN,
            "/v1/admin/scheduler/run",
            &json!({"now": server.now() + Duration::days(400)}),
        )
        .await;
    refused_appending_nothing(&server, &answer, "scheduled-time-ahead", before).await;
}

#[tokio::test]
async fn refunding_only_the_gift_card_takes_none_of_the_stores_opening_bonus_back() {
    // Given the Opera store's opening month (50 bonus points on 10.00 of eligible spend)
    let server = TestServer::start().await;
    server
        .clock
        .set(Utc.with_ymd_and_hms(2026, 10, 5, 10, 0, 0).unwrap());
    server.enroll("erin").await;
    let body = json!({
        "member_id": "erin", "transaction_id": "t-1", "store": "paris-opera",
        "terminal": "till-1", "occurred_at": server.now(), "currency": "EUR",
        "lines": [
            {"sku": "LATTE", "category": "coffee", "amount": "12.00"},
            {"sku": "GIFT-CARD-25", "category": "gift-card", "amount": "25.00"}
        ],
    });
    let bought = server.post(TERMINAL, "/v1/purchases", &body).await;
    assert_eq!(points(&bought.body["outcome"]["points"]), 12 + 50);
    let refund = |id: &str, line: u32, amount: &str| {
        json!({"refund_id": id, "transaction_id": "t-1", "store": "paris-opera",
               "occurred_at": server.now(), "currency": "EUR",
               "lines": [{"line": line, "amount": amount}]})
    };
    // When the gift card alone is returned
    let gift = server
        .post(TERMINAL, "/v1/refunds", &refund("r-1", 1, "25.00"))
        .await;
    // Then nothing is taken back; returning the coffee takes the bonus back with it
    assert_eq!(gift.status, StatusCode::OK, "{:?}", gift.body);
    assert_eq!(points(&gift.body["outcome"]["points_clawed_back"]), 0);
    let coffee = server
        .post(TERMINAL, "/v1/refunds", &refund("r-2", 0, "12.00"))
        .await;
    assert_eq!(points(&coffee.body["outcome"]["points_clawed_back"]), 62);
}

#[tokio::test]
async fn buy_refer_refund_leaves_neither_member_with_the_referral_bonus() {
    // Given rita referred nina, whose first purchase (20.00) qualified the referral
    let server = TestServer::start().await;
    server.enroll("rita").await;
    let body = json!({"member_id": "nina", "referrer": "rita", "occurred_at": server.now()});
    assert_eq!(
        server.post(APP, "/v1/members", &body).await.status,
        StatusCode::OK
    );
    let bought = server.purchase("nina", "t-1", "20.00").await;
    assert_eq!(bought.status, StatusCode::OK);
    let rita_earned = async || {
        let profile = server.get(SUPPORT, "/v1/members/rita").await;
        (
            points(&profile.body["balance"]["lifetime_earned"]),
            points(&profile.body["balance"]["clawed_back"]),
        )
    };
    assert!(
        eventually(async || rita_earned().await.0 == 250).await,
        "rita's referral bonus never arrived"
    );
    // When nina returns the whole purchase
    let refunded = server.refund("t-1", "r-1", "20.00").await;
    assert_eq!(refunded.status, StatusCode::OK, "{:?}", refunded.body);
    // Then nina keeps only her welcome points, and rita's bonus is taken back too
    let nina = server.profile_after("nina", &refunded.position()).await;
    assert_eq!(points(&nina.body["balance"]["balance"]), 50);
    assert!(
        eventually(async || rita_earned().await.1 == 200).await,
        "rita's referral bonus was never taken back"
    );
    let rita = server.get(SUPPORT, "/v1/members/rita").await;
    assert_eq!(points(&rita.body["balance"]["balance"]), 50);
    // And the events say why
    let events = server.get(AUDITOR, "/v1/members/rita/events").await;
    let revocation = events.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "ReferralBonusRevoked")
        .expect("the referrer's stream records the revocation");
    assert_eq!(revocation["data"]["reason"], "purchase_refunded");
    assert!(server.stop_and_verify().await);
}

#[tokio::test]
async fn sale_1001_at_two_stores_is_two_sales_and_a_refund_names_its_store() {
    let server = TestServer::start().await;
    server.enroll("alice").await;
    server.enroll("bob").await;
    let sale = |member: &str, store: &str| {
        let mut body = purchase_body(member, "1001", "10.00", server.now());
        body["store"] = json!(store);
        body
    };
    let at_marais = server
        .post(TERMINAL, "/v1/purchases", &sale("alice", "paris-marais"))
        .await;
    let at_opera = server
        .post(TERMINAL, "/v1/purchases", &sale("bob", "paris-opera"))
        .await;
    assert_eq!(at_marais.status, StatusCode::OK, "{:?}", at_marais.body);
    assert_eq!(at_opera.status, StatusCode::OK, "{:?}", at_opera.body);
    // The Marais's 1001 is alice's: bob cannot claim it.
    let again = server
        .post(TERMINAL, "/v1/purchases", &sale("bob", "paris-marais"))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem(), "transaction-of-another-member");
    // A return of the Opera's 1001 taken in the Marais finds bob's purchase.
    let refund = |store: &str| {
        json!({"refund_id": "r-1", "transaction_id": "1001", "store": store,
               "purchase_store": "paris-opera", "occurred_at": server.now(),
               "currency": "EUR", "amount": "4.00"})
    };
    let refunded = server
        .post(TERMINAL, "/v1/refunds", &refund("paris-marais"))
        .await;
    assert_eq!(refunded.status, StatusCode::OK, "{:?}", refunded.body);
    assert_eq!(refunded.body["member_id"], "bob");
    assert_eq!(points(&refunded.body["outcome"]["points_clawed_back"]), 4);
    // The same refund id retried from another store is another request, not a replay.
    let from_lyon = server
        .post(TERMINAL, "/v1/refunds", &refund("lyon-bellecour"))
        .await;
    assert_eq!(
        from_lyon.status,
        StatusCode::CONFLICT,
        "{:?}",
        from_lyon.body
    );
    assert_eq!(from_lyon.problem(), "idempotency-conflict");
    let retried = server
        .post(TERMINAL, "/v1/refunds", &refund("paris-marais"))
        .await;
    assert!(retried.replayed_header);
}

#[tokio::test]
async fn a_key_without_the_role_is_refused_before_its_body_is_read() {
    let server = TestServer::start().await;
    let nonsense = "{\"not\": \"an adjustment\"}".to_owned();
    for (key, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(TERMINAL), StatusCode::FORBIDDEN),
        (Some(APP), StatusCode::FORBIDDEN),
    ] {
        let answer = server
            .post_raw(key, "/v1/members/alice/adjustments", nonsense.clone())
            .await;
        assert_eq!(answer.status, status, "{key:?}: {:?}", answer.body);
    }
    let answer = server
        .post_raw(Some(APP), "/v1/purchases", "{\"lines\": 7}".to_owned())
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
    // With the right role, the same body is described.
    let answer = server
        .post_raw(Some(SUPPORT), "/v1/members/alice/adjustments", nonsense)
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn money_strings_follow_the_documented_pattern() {
    let server = TestServer::start().await;
    server.enroll("gus").await;
    let document = server.get_public("/v1/openapi.json").await;
    let pattern = document.body["components"]["schemas"]["Money"]["pattern"]
        .as_str()
        .expect("Money has a pattern")
        .to_owned();
    let pattern = regex::Regex::new(&pattern).expect("the pattern is a regular expression");
    // The demo program takes at most 5000.00 per line, in cents: the document says so, and the
    // server draws the line at the same place.
    let cases = [
        "4.50", "4", "0.01", "5000", "5000.00", "007.10", "4.500", "4.", ".5", "4.5.0", "1e1", "0",
        "0.00", "-4.50", "5000.01", "4.505", "+4",
    ];
    for (n, amount) in cases.into_iter().enumerate() {
        let documented = pattern.is_match(amount);
        let answer = server.purchase("gus", &format!("t-{n}"), amount).await;
        assert_eq!(
            answer.status == StatusCode::OK,
            documented,
            "{amount}: the document says {documented}, the server {} {:?}",
            answer.status,
            answer.body
        );
        if !documented {
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{amount}");
        }
    }
}
