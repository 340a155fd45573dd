//! A member's account status over HTTP: who may change it, and what a suspended or closed
//! member may and may not do (the README's table, checked).
use super::*;

const AT: &str = "2026-03-02T10:00:00Z";

fn status_change(reason: &str) -> Value {
    json!({"reason_code": reason, "occurred_at": AT})
}

async fn member_with_points(h: &Harness, member: &str) {
    h.enroll(member).await;
    let answer = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase(member, &format!("T-{member}"), "store-1", "40.00"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

async fn status_of(h: &Harness, member: &str) -> Value {
    h.engine.wait_for(h.head().await).await.unwrap();
    h.get(&format!("/v1/members/{member}"), SUPPORT).await.body["status"].clone()
}

#[tokio::test]
async fn support_suspends_and_reinstates_a_member_with_reasons_and_the_profile_says_so() {
    let h = harness().await;
    member_with_points(&h, "m1").await;
    let suspended = h
        .post(
            "/v1/members/m1/suspend",
            SUPPORT,
            status_change("fraud-check"),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.body);
    assert_eq!(suspended.body["outcome"]["outcome"], "suspended");
    assert_eq!(status_of(&h, "m1").await, "suspended");
    // Suspending again changes nothing.
    let again = h
        .post(
            "/v1/members/m1/suspend",
            SUPPORT,
            status_change("fraud-check"),
        )
        .await;
    assert_eq!(again.body["outcome"]["outcome"], "unchanged");
    let reinstated = h
        .post(
            "/v1/members/m1/reinstate",
            ADMIN,
            status_change("appeal-upheld"),
        )
        .await;
    assert_eq!(reinstated.status, StatusCode::OK, "{}", reinstated.body);
    assert_eq!(reinstated.body["outcome"]["outcome"], "reinstated");
    assert_eq!(status_of(&h, "m1").await, "active");
    // The reason is in the log, for auditors.
    let events = h.get("/v1/members/m1/events", AUDITOR).await;
    let reinstated_event = events.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "MemberReinstated")
        .cloned()
        .expect("a MemberReinstated event");
    assert_eq!(reinstated_event["data"]["reason_code"], "appeal-upheld");
}

#[tokio::test]
async fn a_suspended_member_earns_and_spends_nothing_but_refunds_and_corrections_still_apply() {
    let h = harness().await;
    member_with_points(&h, "m1").await;
    h.post(
        "/v1/members/m1/suspend",
        SUPPORT,
        status_change("fraud-check"),
    )
    .await;
    let before = h.head().await;
    for (path, key, body) in [
        (
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "T-2", "store-1", "10.00"),
        ),
        (
            "/v1/members/m1/redemptions",
            APP,
            json!({"redemption_id": "r1", "points": 10, "occurred_at": AT}),
        ),
        (
            "/v1/activities",
            APP,
            json!({"member_id": "m1", "activity_id": "a1", "kind": "review", "occurred_at": AT}),
        ),
    ] {
        let answer = h.post(path, key, body).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{path}: {}",
            answer.body
        );
        assert_eq!(problem_slug(&answer), "member-suspended", "{path}");
    }
    assert_eq!(
        h.head().await,
        before,
        "a refused command appended something"
    );
    // The ledger stays right: a refund of an earlier purchase and a correction still apply.
    let refund = h
        .post(
            "/v1/refunds",
            TERMINAL,
            json!({"refund_id": "R1", "transaction_id": "T-m1", "store": "store-1",
                   "occurred_at": AT, "currency": "EUR", "amount": "10.00"}),
        )
        .await;
    assert_eq!(refund.status, StatusCode::OK, "{}", refund.body);
    let adjustment = h
        .post(
            "/v1/members/m1/adjustments",
            SUPPORT,
            json!({"adjustment_id": "adj-1", "points": -5, "reason_code": "correction",
                   "note": "double scan", "occurred_at": AT}),
        )
        .await;
    assert_eq!(adjustment.status, StatusCode::OK, "{}", adjustment.body);
    // And the member is still read.
    assert_eq!(status_of(&h, "m1").await, "suspended");
}

#[tokio::test]
async fn a_closed_account_forfeits_its_balance_and_takes_nothing_more() {
    let h = harness().await;
    member_with_points(&h, "m1").await;
    h.engine.wait_for(h.head().await).await.unwrap();
    let balance = h.get("/v1/members/m1", APP).await.body["balance"]["available"]
        .as_i64()
        .unwrap();
    let closed = h
        .post(
            "/v1/members/m1/close",
            SUPPORT,
            status_change("member-request"),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert_eq!(closed.body["outcome"]["outcome"], "closed");
    assert!(closed.body["outcome"]["forfeited"].as_i64().unwrap() >= balance);
    assert_eq!(status_of(&h, "m1").await, "closed");
    let before = h.head().await;
    for (path, key, body) in [
        (
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "T-2", "store-1", "10.00"),
        ),
        (
            "/v1/members/m1/adjustments",
            SUPPORT,
            json!({"adjustment_id": "adj-1", "points": 5, "reason_code": "goodwill",
                   "note": "sorry", "occurred_at": AT}),
        ),
        (
            "/v1/members/m1/reinstate",
            SUPPORT,
            status_change("appeal-upheld"),
        ),
        (
            "/v1/members/m1/suspend",
            SUPPORT,
            status_change("fraud-check"),
        ),
    ] {
        let answer = h.post(path, key, body).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{path}: {}",
            answer.body
        );
        assert_eq!(problem_slug(&answer), "member-closed", "{path}");
    }
    assert_eq!(
        h.head().await,
        before,
        "a refused command appended something"
    );
    assert_eq!(
        h.get("/v1/members/m1/history", APP).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_support_and_admin_change_an_account_status_and_a_reason_is_required() {
    let h = harness().await;
    member_with_points(&h, "m1").await;
    for action in ["suspend", "reinstate", "close"] {
        let path = format!("/v1/members/m1/{action}");
        for key in [TERMINAL, APP, AUDITOR, ANALYST] {
            let answer = h.post(&path, key, status_change("fraud-check")).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        }
        let unreasoned = h.post(&path, SUPPORT, json!({"occurred_at": AT})).await;
        assert_eq!(
            unreasoned.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}"
        );
        let unknown = h
            .post(
                &format!("/v1/members/nobody/{action}"),
                SUPPORT,
                status_change("x"),
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{path}");
    }
}
