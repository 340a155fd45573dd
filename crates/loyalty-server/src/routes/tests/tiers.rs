//! `GET /v1/analytics/tiers`: members per tier now and the months they reached it in, for
//! auditors and analysts.
use super::*;
use crate::wire::TierReport;
use crate::wire::testkit::assert_valid;

#[tokio::test]
async fn the_tier_distribution_counts_every_member_once_and_dates_the_changes() {
    // Given three members, one of whom spent past Silver's threshold (250.00) today
    let h = harness().await;
    for member in ["m1", "m2", "m3"] {
        assert_eq!(h.enroll(member).await.status, StatusCode::OK);
    }
    let bought = h
        .post(
            "/v1/purchases",
            TERMINAL,
            purchase("m1", "t1", "store-1", "300.00"),
        )
        .await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let head = h.head().await;
    h.engine.wait_for(head).await.unwrap();

    // When an analyst and an auditor ask for the tiers over three months
    for key in [ANALYST, AUDITOR, ADMIN] {
        let answer = h.get("/v1/analytics/tiers?months=3", key).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_valid::<TierReport>(&answer.body);
        // Then every tier of the program is listed, lowest first, with its members now
        assert_eq!(answer.body["members"], 3);
        assert_eq!(answer.body["as_of"], "2026-03-02T10:00:00Z");
        let tiers: Vec<(String, u64)> = answer.body["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_owned(),
                    t["members"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            tiers,
            [
                ("Bronze".to_owned(), 2),
                ("Silver".to_owned(), 1),
                ("Gold".to_owned(), 0),
                ("Platinum".to_owned(), 0)
            ]
        );
        // And the months end with the current one, which holds the one change (an
        // enrolment is not a change)
        let months = answer.body["months"].as_array().unwrap();
        assert_eq!(months.len(), 3);
        assert_eq!(months[0]["period"]["start"], "2026-01-01");
        assert_eq!(months[2]["period"]["start"], "2026-03-01");
        assert_eq!(months[2]["period"]["end"], "2026-04-01");
        assert_eq!(months[2]["reached"][1]["name"], "Silver");
        assert_eq!(months[2]["reached"][1]["members"], 1);
        assert_eq!(months[2]["reached"][0]["members"], 0);
        assert!(
            months[..2]
                .iter()
                .flat_map(|m| m["reached"].as_array().unwrap())
                .all(|t| t["members"] == 0)
        );
    }
    // And twelve months by default
    let answer = h.get("/v1/analytics/tiers", ANALYST).await;
    assert_eq!(answer.body["months"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn only_auditors_and_analysts_read_the_tiers_and_the_months_are_bounded() {
    let h = harness().await;
    for key in [TERMINAL, APP, SUPPORT] {
        let answer = h.get("/v1/analytics/tiers", key).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    for months in ["0", "37", "x"] {
        let answer = h
            .get(&format!("/v1/analytics/tiers?months={months}"), ANALYST)
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{months}");
        assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
    }
    // Without members: every tier, none held
    let answer = h.get("/v1/analytics/tiers?months=36", AUDITOR).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["members"], 0);
    assert_eq!(answer.body["tiers"].as_array().unwrap().len(), 4);
    assert_eq!(answer.body["months"].as_array().unwrap().len(), 36);
}
