//! A member's data rights over HTTP: the export shows their support notes while the stored
//! events hold only ciphertext; an erasure destroys the key, after which the notes read
//! `erased` and the balance is what it was; who may do which; what is refused.
use super::*;

const AT: &str = "2026-03-02T10:00:00Z";
/// A note with personal data in it, as support staff write them.
const NOTE: &str = "Ms Dupont called from 06 12 34 56 78: card lost on the metro";

async fn member_with_a_note(h: &Harness, member: &str) {
    let enrolled = h.enroll(member).await;
    assert_eq!(enrolled.status, StatusCode::OK, "{}", enrolled.body);
    let adjusted = h
        .post(
            &format!("/v1/members/{member}/adjustments"),
            SUPPORT,
            json!({
                "adjustment_id": "adj-1", "points": 250, "reason_code": "lost-card",
                "note": NOTE, "occurred_at": AT,
            }),
        )
        .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.body);
    h.engine.wait_for(h.head().await).await.unwrap();
}

/// The stored bytes (data and metadata) of every event of `stream`, as one text.
async fn stored_text(h: &Harness, stream: &str) -> String {
    let events = h
        .engine
        .store()
        .read_stream(
            stream,
            loyalty_store::StreamFrom::Start,
            loyalty_store::Direction::Forwards,
            1000,
        )
        .await
        .unwrap();
    assert!(!events.is_empty(), "{stream} holds no event");
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                String::from_utf8_lossy(&e.data),
                String::from_utf8_lossy(&e.metadata)
            )
        })
        .collect()
}

/// The export's event of type `event_type`.
fn exported(export: &Value, event_type: &str) -> Value {
    export["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event_type"] == event_type)
        .cloned()
        .unwrap_or_else(|| panic!("no {event_type} in {export}"))
}

async fn balance(h: &Harness, member: &str) -> Value {
    h.engine.wait_for(h.head().await).await.unwrap();
    let profile = h.get(&format!("/v1/members/{member}"), SUPPORT).await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    profile.body["balance"]["balance"].clone()
}

async fn erase(h: &Harness, member: &str, key: &str, body: Value) -> Answer {
    h.post(&format!("/v1/members/{member}/erasure"), key, body)
        .await
}

#[tokio::test]
async fn the_export_shows_a_notes_text_while_the_stored_event_holds_only_ciphertext() {
    let h = harness().await;
    member_with_a_note(&h, "m1").await;

    let export = h.get("/v1/members/m1/export", AUDITOR).await;

    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    assert_eq!(export.content_type, "application/json");
    assert_eq!(export.body["member_id"], "m1");
    assert_eq!(export.body["member"]["balance"]["balance"], 250 + 50);
    let adjusted = exported(&export.body, "PointsAdjusted");
    assert_eq!(adjusted["note"], json!({"status": "present", "text": NOTE}));
    assert!(adjusted["data"]["note"]["sealed"].is_object(), "{adjusted}");
    assert!(
        !adjusted["data"].to_string().contains("Dupont"),
        "{adjusted}"
    );
    assert_eq!(exported(&export.body, "Enrolled")["note"], Value::Null);
    assert_eq!(export.body["erasures"], json!([]));
    assert!(
        export.body["personal_data"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // Nothing the store holds has the text: not the event, not its metadata.
    assert!(!stored_text(&h, "member-m1").await.contains("Dupont"));
    // The statement shows the note to who may read it.
    let history = h.get("/v1/members/m1/history", SUPPORT).await;
    let lines = history.body["lines"].as_array().unwrap();
    let line = lines
        .iter()
        .find(|l| l["event_type"] == "PointsAdjusted")
        .expect("a PointsAdjusted line");
    assert_eq!(line["note"], json!({"status": "present", "text": NOTE}));
    assert!(
        lines
            .iter()
            .filter(|l| l["event_type"] != "PointsAdjusted")
            .all(|l| l["note"].is_null()),
        "{}",
        history.body
    );
}

#[tokio::test]
async fn an_erasure_destroys_the_key_and_the_note_reads_erased_with_the_balance_unchanged() {
    let h = harness().await;
    member_with_a_note(&h, "m1").await;
    let before = balance(&h, "m1").await;

    // When support erases the member's personal data, with a request id
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/members/m1/erasure")
        .header(header::AUTHORIZATION, format!("Bearer {SUPPORT}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req-erase-1")
        .body(Body::from(
            json!({"reason_code": "member-request"}).to_string(),
        ))
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let report: Value = serde_json::from_slice(&bytes).unwrap();

    // Then one key is destroyed and the one sealed note is unreadable
    assert_eq!(report["member_id"], "m1");
    assert_eq!(report["keys_destroyed"], 1, "{report}");
    assert_eq!(report["sealed_notes"], 1, "{report}");
    assert!(report["position"].as_str().is_some_and(|p| p.contains('/')));
    // And the erasure is recorded with who asked and the request's correlation id
    let record = stored_text(&h, "privacy-m1").await;
    assert!(record.contains("member-request"), "{record}");
    assert!(record.contains("support:support"), "{record}");
    assert!(record.contains("req-erase-1"), "{record}");

    // And the export shows the note erased, the erasure, and the same balance
    let export = h.get("/v1/members/m1/export", ADMIN).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let adjusted = exported(&export.body, "PointsAdjusted");
    assert_eq!(adjusted["note"], json!({"status": "erased"}));
    assert_eq!(adjusted["data"]["points"], 250, "{adjusted}");
    let erasures = export.body["erasures"].as_array().unwrap();
    assert_eq!(erasures.len(), 1, "{}", export.body);
    assert_eq!(erasures[0]["reason_code"], "member-request");
    assert_eq!(erasures[0]["operator"], "support");
    assert_eq!(erasures[0]["position"], report["position"]);
    assert_eq!(balance(&h, "m1").await, before);
    // So does the statement
    let history = h.get("/v1/members/m1/history", SUPPORT).await;
    let line = history.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["event_type"] == "PointsAdjusted")
        .cloned()
        .expect("a PointsAdjusted line");
    assert_eq!(line["note"], json!({"status": "erased"}));

    // Erasing again destroys nothing more, and says so
    let again = erase(
        &h,
        "m1",
        ADMIN,
        json!({"reason_code": "member-request", "operator": "dpo-1"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["keys_destroyed"], 0, "{}", again.body);
    assert_eq!(again.body["sealed_notes"], 1, "{}", again.body);
}

#[tokio::test]
async fn only_support_and_admins_may_erase_and_only_auditors_and_admins_may_export() {
    let h = harness().await;
    member_with_a_note(&h, "m1").await;
    let head = h.head().await;
    for key in [AUDITOR, APP, TERMINAL, ANALYST] {
        let answer = erase(&h, "m1", key, json!({"reason_code": "member-request"})).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{key}: {}",
            answer.body
        );
        assert_eq!(answer.content_type, crate::error::PROBLEM_JSON);
    }
    for key in [SUPPORT, APP, TERMINAL, ANALYST] {
        let answer = h.get("/v1/members/m1/export", key).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{key}: {}",
            answer.body
        );
    }
    let anonymous = h
        .send(Method::GET, "/v1/members/m1/export", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // Nothing was erased.
    assert_eq!(h.head().await, head);
    assert_the_note_is_still_readable(&h, "m1").await;
}

#[tokio::test]
async fn an_unknown_member_is_404_for_the_export_and_the_erasure() {
    let h = harness().await;
    member_with_a_note(&h, "m1").await;
    let head = h.head().await;
    let export = h.get("/v1/members/nobody/export", AUDITOR).await;
    assert_eq!(export.status, StatusCode::NOT_FOUND, "{}", export.body);
    assert_eq!(export.content_type, crate::error::PROBLEM_JSON);
    assert_eq!(problem_slug(&export), "unknown-member");
    let erased = erase(
        &h,
        "nobody",
        SUPPORT,
        json!({"reason_code": "member-request"}),
    )
    .await;
    assert_eq!(erased.status, StatusCode::NOT_FOUND, "{}", erased.body);
    assert_eq!(problem_slug(&erased), "unknown-member");
    assert_eq!(h.head().await, head);
}

#[tokio::test]
async fn a_bad_erasure_request_is_a_problem_and_erases_nothing() {
    let h = harness().await;
    member_with_a_note(&h, "m1").await;
    let head = h.head().await;
    let cases = [
        (
            json!({"reason_code": "not a code!"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-id",
        ),
        (
            json!({"reason_code": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-id",
        ),
        (
            json!({"reason_code": "member-request", "operator": "a b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-id",
        ),
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"reason_code": "member-request", "occurred_at": AT}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        (
            json!({"reason_code": "member-request", "operator": null}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
    ];
    for (body, status, slug) in cases {
        let answer = erase(&h, "m1", SUPPORT, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(answer.content_type, crate::error::PROBLEM_JSON, "{body}");
        assert_eq!(problem_slug(&answer), slug, "{body}: {}", answer.body);
    }
    let malformed = h
        .send(
            Method::POST,
            "/v1/members/m1/erasure",
            Some(SUPPORT),
            Some("{\"reason_code\":".into()),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_slug(&malformed), "malformed-json");
    assert_eq!(h.head().await, head);
    assert_the_note_is_still_readable(&h, "m1").await;
}

#[tokio::test]
async fn both_operations_are_in_the_document_with_their_bodies_and_problems() {
    let h = harness().await;
    let document = h.get("/v1/openapi.json", ADMIN).await;
    assert_eq!(document.status, StatusCode::OK);
    let paths = &document.body["paths"];
    let export = &paths["/v1/members/{member_id}/export"]["get"];
    assert_eq!(
        export["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MemberExport"
    );
    assert_eq!(export["security"], json!([{"apiKey": ["auditor"]}]));
    let erasure = &paths["/v1/members/{member_id}/erasure"]["post"];
    assert_eq!(
        erasure["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErasureRequest"
    );
    assert_eq!(
        erasure["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErasureReport"
    );
    assert_eq!(erasure["security"], json!([{"apiKey": ["support"]}]));
    for (operation, statuses) in [
        (export, &["401", "403", "404", "409", "422", "503"][..]),
        (
            erasure,
            &["400", "401", "403", "404", "413", "415", "422", "503"][..],
        ),
    ] {
        for status in statuses {
            assert!(
                operation["responses"][status]["content"][crate::error::PROBLEM_JSON].is_object(),
                "{status} in {operation}"
            );
        }
    }
    let schemas = &document.body["components"]["schemas"];
    assert!(
        schemas["StatementLine"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("note")),
        "{}",
        schemas["StatementLine"]
    );
    assert!(
        schemas["Problem"]["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("https://loyalty.dev/problems/no-key-vault"))
    );
}

#[tokio::test]
async fn a_member_with_more_events_than_an_export_holds_is_422_limit_exceeded() {
    // Given a server that exports at most 2 events of a member
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap(),
    ));
    let engine = Engine::start(
        Arc::new(InMemoryStore::new()),
        Arc::new(demo_program()),
        clock,
        Arc::new(SequentialIds::default()),
        EngineOptions {
            max_export_events: 2,
            ..EngineOptions::default()
        },
    )
    .await
    .unwrap();
    let state = AppState::new(engine.clone(), keys(), LimitSettings::default());
    let h = Harness {
        router: crate::app(state, Duration::from_secs(10)),
        engine,
    };
    // And a member with 3 events
    member_with_a_note(&h, "m1").await;
    for id in ["adj-2", "adj-3"] {
        let answer = h
            .post(
                "/v1/members/m1/adjustments",
                SUPPORT,
                json!({
                    "adjustment_id": id, "points": 5, "reason_code": "correction",
                    "note": "a second look", "occurred_at": AT,
                }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    // When it is exported, then it is refused, saying why
    let export = h.get("/v1/members/m1/export", AUDITOR).await;
    assert_eq!(
        export.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        export.body
    );
    assert_eq!(problem_slug(&export), "limit-exceeded");
    assert_eq!(export.body["limit"], 2, "{}", export.body);
}

#[tokio::test]
async fn without_a_key_vault_a_note_is_refused_with_503_and_nothing_is_appended() {
    // Given a store that keeps no keys
    let h = harness_on(Arc::new(TestStore::default())).await;
    for _ in 0..500 {
        if h.engine.is_caught_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.enroll("m1").await;
    let head = h.head().await;
    // When support adjusts with a note, then it is refused: the note cannot be sealed
    let answer = h
        .post(
            "/v1/members/m1/adjustments",
            SUPPORT,
            json!({
                "adjustment_id": "adj-1", "points": 5, "reason_code": "correction",
                "note": NOTE, "occurred_at": AT,
            }),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(problem_slug(&answer), "no-key-vault");
    assert_eq!(h.head().await, head);
}

/// The member's note still opens: nothing was erased.
async fn assert_the_note_is_still_readable(h: &Harness, member: &str) {
    let export = h
        .get(&format!("/v1/members/{member}/export"), AUDITOR)
        .await;
    assert_eq!(
        exported(&export.body, "PointsAdjusted")["note"]["status"],
        "present"
    );
}
