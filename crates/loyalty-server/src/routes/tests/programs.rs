//! `GET /v1/audit/programs[/{version}]` over the whole router: the program the server started
//! with is listed, its text is served by version, unique prefix and label, and a decision's
//! `rules_version` leads to it.
use super::*;
use crate::wire::programs::{ProgramHistory, ProgramText};
use crate::wire::testkit::assert_valid;

const PROGRAMS: &str = "/v1/audit/programs";

#[tokio::test]
async fn an_auditor_sees_the_program_the_server_started_with() {
    // Given a server started with the demo program
    let h = harness().await;
    // When an auditor lists the recorded programs
    let answer = h.get(PROGRAMS, AUDITOR).await;
    // Then there is one version: the engine's, with the demo's label
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_valid::<ProgramHistory>(&answer.body);
    let versions = answer.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["version"], h.engine.program().version());
    assert_eq!(versions[0]["label"], "2026.11.2");
    assert_eq!(answer.body["more"], false);
}

#[tokio::test]
async fn the_text_is_served_by_version_by_a_unique_prefix_and_by_label() {
    let h = harness().await;
    let version = h.engine.program().version().to_owned();
    for reference in [version.as_str(), &version[..8], "2026.11.2"] {
        // When an auditor asks for the program by this reference
        let answer = h.get(&format!("{PROGRAMS}/{reference}"), AUDITOR).await;
        // Then the answer is the normalised text the version is the hash of
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{reference}: {:?}",
            answer.body
        );
        assert_valid::<ProgramText>(&answer.body);
        assert_eq!(answer.body["version"], version.as_str());
        let text = answer.body["text"].as_str().unwrap();
        assert_eq!(text, h.engine.program().normalized_text());
        assert_eq!(
            loyalty_core::program::version::version_of(text),
            version,
            "{reference}"
        );
    }
}

#[tokio::test]
async fn a_decisions_rules_version_leads_to_the_rules_that_made_it() {
    // Given a member enrolled (a decision of the program)
    let h = harness().await;
    assert_eq!(h.enroll("m1").await.status, StatusCode::OK);
    let events = h.get("/v1/members/m1/events", AUDITOR).await;
    assert_eq!(events.status, StatusCode::OK, "{:?}", events.body);
    let rules_version = events.body["entries"][0]["data"]["rules_version"]
        .as_str()
        .expect("an enrollment records its rules_version")
        .to_owned();
    // When an auditor asks for that version
    let answer = h.get(&format!("{PROGRAMS}/{rules_version}"), AUDITOR).await;
    // Then it is the program the server decided with
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["version"], rules_version.as_str());
    assert_eq!(answer.body["name"], h.engine.program().name());
}

#[tokio::test]
async fn an_unknown_version_is_404_and_a_malformed_one_422() {
    let h = harness().await;
    let unknown = h
        .get(&format!("{PROGRAMS}/{}", "0".repeat(64)), AUDITOR)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(problem_slug(&unknown), "unknown-program");
    assert_eq!(unknown.content_type, "application/problem+json");
    // A prefix shorter than 8 digits is read as a label, and no program has that label
    let short = h
        .get(
            &format!("{PROGRAMS}/{}", &h.engine.program().version()[..7]),
            AUDITOR,
        )
        .await;
    assert_eq!(short.status, StatusCode::NOT_FOUND);
    let long = h
        .get(&format!("{PROGRAMS}/{}", "a".repeat(65)), AUDITOR)
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_slug(&long), "invalid-request");
    let odd = h.get(&format!("{PROGRAMS}/a%20b"), AUDITOR).await;
    assert_eq!(odd.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn only_auditors_read_the_programs() {
    let h = harness().await;
    for key in [APP, TERMINAL, SUPPORT, ANALYST] {
        assert_eq!(
            h.get(PROGRAMS, key).await.status,
            StatusCode::FORBIDDEN,
            "{key}"
        );
    }
    // Admin keys may call every operation.
    assert_eq!(h.get(PROGRAMS, ADMIN).await.status, StatusCode::OK);
}

/// Every `$ref` inside `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_states_both_operations_and_every_schema_they_name() {
    let h = harness().await;
    let answer = h.get("/v1/openapi.json", AUDITOR).await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = &answer.body;
    for path in [PROGRAMS, "/v1/audit/programs/{version}"] {
        let operation = &document["paths"][path]["get"];
        assert_eq!(
            operation["security"][0]["apiKey"],
            json!(["auditor"]),
            "{path}"
        );
        let mut named = Vec::new();
        refs(operation, &mut named);
        for r in named {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "{path} names {r}, which the document lacks"
            );
        }
    }
    let parameter = &document["paths"]["/v1/audit/programs/{version}"]["get"]["parameters"][0];
    assert_eq!(parameter["in"], "path");
    assert_eq!(
        parameter["schema"]["$ref"],
        "#/components/schemas/ProgramRef"
    );
}
