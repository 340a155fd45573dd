//! `GET /v1/liability` over the whole router: now (no `as_of`) from the read models, as of a
//! past instant replayed from the log, the same report either way.
use super::*;
use crate::wire::LiabilityReport;
use crate::wire::testkit::assert_valid;

#[tokio::test]
async fn the_liability_now_comes_from_the_read_models_and_says_what_the_replay_says() {
    // Given two members, one of whom bought something
    let h = harness().await;
    h.enroll("m1").await;
    h.enroll("m2").await;
    let bought = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-1", "24.00"),
        )
        .await;
    assert!(bought.status.is_success(), "{:?}", bought.body);
    let head = h.head().await;
    h.engine.wait_for(head).await.unwrap();
    // When an auditor asks for the liability without an instant
    let answer = h.get("/v1/liability", AUDITOR).await;
    // Then it is the report as of now, answered without replaying the log
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_valid::<LiabilityReport>(&answer.body);
    assert_eq!(answer.body["as_of"], "2026-03-02T10:00:00Z");
    assert_eq!(answer.body["events_replayed"], 0);
    // And it says what the replay of the log to the same instant says
    let now = h.engine.clock().now();
    let replayed = h.engine.liability_statement(now, 365).await.unwrap();
    assert!(replayed.events_replayed > 0);
    let mut expected = serde_json::to_value(LiabilityReport::from(&replayed)).unwrap();
    expected["events_replayed"] = json!(0);
    assert_eq!(answer.body, expected);
    assert!(answer.body["totals"]["points_outstanding"].as_i64() > Some(0));
    // And asked as of that instant, the answer is the same
    let at = h
        .get("/v1/liability?as_of=2026-03-02T10:00:00Z", AUDITOR)
        .await;
    assert_eq!(at.status, StatusCode::OK, "{:?}", at.body);
    assert_eq!(at.body, answer.body);
}

#[tokio::test]
async fn the_liability_as_of_an_earlier_instant_is_replayed_from_the_log() {
    // Given a member enrolled
    let h = harness().await;
    h.enroll("m1").await;
    // When an auditor asks for the liability as of an hour before
    let answer = h
        .get("/v1/liability?as_of=2026-03-02T09:00:00Z", AUDITOR)
        .await;
    // Then it is replayed from the log, and nobody existed yet
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert!(answer.body["events_replayed"].as_u64() > Some(0));
    assert_eq!(answer.body["totals"]["members"], 0);
}
