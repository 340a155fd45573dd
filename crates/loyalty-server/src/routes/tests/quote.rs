//! `POST /v1/purchases/quote` over the whole router: a quote answers what the same purchase
//! then records (per line and per rule, balance, tier), appends nothing, and is refused
//! exactly as the purchase would be.
use super::*;
use crate::wire::PurchaseQuote;
use crate::wire::testkit::assert_valid;

const QUOTE: &str = "/v1/purchases/quote";

/// A basket that exercises several rules: lattes (1 point per euro), beans at double points,
/// the reusable mug at triple, a gift card that earns nothing, and the transaction's rounding.
fn basket(member: &str, txn: &str) -> Value {
    json!({
        "member_id": member, "transaction_id": txn, "store": "store-1", "terminal": "till-1",
        "occurred_at": "2026-03-02T10:00:00Z", "currency": "EUR",
        "lines": [
            {"sku": "LATTE", "category": "coffee", "quantity": "2", "amount": "9.30"},
            {"sku": "BEANS-ETHIOPIA-250G", "category": "coffee-beans", "amount": "12.90"},
            {"sku": "MUG-REUSABLE", "category": "merch", "amount": "15.45"},
            {"sku": "GIFT-CARD-25", "category": "gift-card", "amount": "25.00"}
        ],
    })
}

/// The member's profile once the read models reached `position`.
async fn profile_at(h: &Harness, member: &str, position: &Value) -> Value {
    let path = format!(
        "/v1/members/{member}?min_position={}",
        position.as_str().unwrap()
    );
    let answer = h.get(&path, APP).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body
}

#[tokio::test]
async fn a_quote_answers_the_points_per_line_and_rule_the_purchase_then_records() {
    let h = harness().await;
    let enrolled = h.enroll("m1").await;
    let before = profile_at(&h, "m1", &enrolled.body["position"]).await;
    let quote = h.post(QUOTE, TERMINAL, basket("m1", "T1")).await;
    assert_eq!(quote.status, StatusCode::OK, "{:?}", quote.body);
    assert!(!quote.replayed);
    assert_valid::<PurchaseQuote>(&quote.body);
    let q = &quote.body;
    assert_eq!(q["member_id"], "m1");
    assert_eq!(q["outcome"]["outcome"], "purchase_recorded");
    assert_eq!(q["outcome"]["transaction_id"], "T1");
    assert_eq!(q["lines"].as_array().unwrap().len(), 4);
    // Beans earn by two rules (the base and the multiplier), the gift card by none.
    assert!(q["lines"][1]["rules"].as_array().unwrap().len() >= 2);
    assert_eq!(q["lines"][3]["points"], 0);
    assert_eq!(q["balance_before"], before["balance"]);

    // The real purchase, made right after with the same body.
    let recorded = h.post("/v1/purchases", TERMINAL, basket("m1", "T1")).await;
    assert_eq!(recorded.status, StatusCode::OK, "{:?}", recorded.body);
    assert_eq!(q["outcome"], recorded.body["outcome"]);
    // The points per line and per rule it recorded are the quote's.
    let events = h.get("/v1/members/m1/events", AUDITOR).await;
    let stored = events.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "PurchaseRecorded")
        .expect("the purchase is recorded");
    assert_eq!(q["lines"], stored["data"]["lines"]);
    assert_eq!(q["transaction_rules"], stored["data"]["transaction_rules"]);
    assert_eq!(q["eligible_amount"], stored["data"]["eligible_amount"]);
    // And the profile shows the balance and tier the quote announced.
    let after = profile_at(&h, "m1", &recorded.body["position"]).await;
    assert_eq!(q["balance_after"], after["balance"]);
    assert_eq!(q["tier_after"], after["tier"]);
}

#[tokio::test]
async fn a_quote_appends_nothing_and_quoting_twice_answers_the_same() {
    let h = harness().await;
    h.enroll("m1").await;
    let head = h.head().await;
    let first = h.post(QUOTE, TERMINAL, basket("m1", "T1")).await;
    let second = h.post(QUOTE, TERMINAL, basket("m1", "T1")).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(second.body, first.body);
    assert_eq!(h.head().await, head);
    // The log holds what it held: the enrollment only, no purchase, no reservation.
    let log = h.get("/v1/log?limit=500", AUDITOR).await;
    assert_eq!(log.status, StatusCode::OK, "{:?}", log.body);
    assert!(
        log.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["event_type"] != "PurchaseRecorded"
                && !e["stream"].as_str().unwrap().starts_with("txn-")),
        "{:?}",
        log.body
    );
    // An admin may quote too.
    let admin = h.post(QUOTE, ADMIN, basket("m1", "T1")).await;
    assert_eq!(admin.body, first.body);
    assert_eq!(h.head().await, head);
}

#[tokio::test]
async fn a_quote_is_refused_as_the_purchase_would_be_and_appends_nothing() {
    let h = harness().await;
    h.enroll("m1").await;
    let mut late = basket("m1", "T1");
    late["occurred_at"] = json!("2026-02-01T10:00:00Z");
    let mut negative = basket("m1", "T1");
    negative["lines"][0]["amount"] = json!("-4.50");
    let mut unknown_field = basket("m1", "T1");
    unknown_field["points"] = json!(1000);
    let mut no_lines = basket("m1", "T1");
    no_lines["lines"] = json!([]);
    let cases = [
        (
            "unknown member",
            TERMINAL,
            basket("nobody", "T1"),
            404,
            "unknown-member",
        ),
        (
            "unbound store",
            TERMINAL,
            purchase("m1", "T1", "store-2", "4.50"),
            403,
            "forbidden",
        ),
        ("app key", APP, basket("m1", "T1"), 403, "forbidden"),
        ("late", TERMINAL, late, 422, "occurred-at-outside-window"),
        ("negative amount", TERMINAL, negative, 422, "invalid-amount"),
        (
            "unknown field",
            TERMINAL,
            unknown_field,
            422,
            "invalid-request",
        ),
        ("no lines", TERMINAL, no_lines, 422, "no-lines"),
    ];
    for (case, key, body, status, slug) in cases {
        let head = h.head().await;
        let quote = h.post(QUOTE, key, body.clone()).await;
        assert_eq!(quote.status.as_u16(), status, "{case}: {:?}", quote.body);
        assert_eq!(quote.content_type, crate::error::PROBLEM_JSON, "{case}");
        assert_eq!(problem_slug(&quote), slug, "{case}");
        assert_eq!(h.head().await, head, "{case}: a quote appended");
        // The purchase itself is refused the same way.
        let purchase = h.post("/v1/purchases", key, body).await;
        assert_eq!(purchase.status, quote.status, "{case}: {:?}", purchase.body);
        assert_eq!(problem_slug(&purchase), problem_slug(&quote), "{case}");
        assert_eq!(h.head().await, head, "{case}");
    }
}

#[tokio::test]
async fn a_quote_that_would_cross_a_tier_threshold_shows_the_next_tier() {
    // The demo program: Silver from 250.00 of qualifying spend, Gold from 750.00.
    let h = harness().await;
    h.enroll("m1").await;
    let first = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "T1", "store-1", "200.00"),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let profile = profile_at(&h, "m1", &first.body["position"]).await;
    assert_eq!(profile["tier"]["current"]["name"], "Bronze");
    assert_eq!(profile["tier"]["next"]["name"], "Silver");

    let quote = h
        .post(QUOTE, TERMINAL, purchase("m1", "T2", "store-1", "60.00"))
        .await;
    assert_eq!(quote.status, StatusCode::OK, "{:?}", quote.body);
    assert_valid::<PurchaseQuote>(&quote.body);
    let tier = &quote.body["tier_after"];
    assert_eq!(tier["current"]["name"], "Silver");
    assert_eq!(tier["qualifying_value"], "260.00");
    assert_eq!(tier["next"]["name"], "Gold");
    assert_eq!(tier["next"]["remaining"], "490.00");
    // Nothing changed: the member is still Bronze.
    let unchanged = h.get("/v1/members/m1", APP).await;
    assert_eq!(unchanged.body["tier"], profile["tier"]);
}

#[tokio::test]
async fn a_quote_of_a_recorded_transaction_quotes_the_basket_as_new() {
    let h = harness().await;
    h.enroll("m1").await;
    let recorded = h.post("/v1/purchases", TERMINAL, basket("m1", "T1")).await;
    assert_eq!(recorded.status, StatusCode::OK, "{:?}", recorded.body);
    let head = h.head().await;
    let quote = h.post(QUOTE, TERMINAL, basket("m1", "T1")).await;
    assert_eq!(quote.status, StatusCode::OK, "{:?}", quote.body);
    assert!(!quote.replayed);
    assert_eq!(quote.body["outcome"]["transaction_id"], "T1");
    assert_eq!(
        quote.body["outcome"]["points"],
        recorded.body["outcome"]["points"]
    );
    let points = quote.body["outcome"]["points"].as_i64().unwrap();
    let pending = |b: &Value| b["pending"].as_i64().unwrap();
    assert_eq!(
        pending(&quote.body["balance_after"]),
        pending(&quote.body["balance_before"]) + points
    );
    assert_eq!(h.head().await, head);
}
