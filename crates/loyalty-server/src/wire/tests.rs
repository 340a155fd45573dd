//! Checks over every answer's schema at once.
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use utoipa::PartialSchema;

use super::testkit::{components_of, schema_errors};
use super::*;

/// Every top-level answer and the schemas it refers to, by name.
fn every_component() -> BTreeMap<String, Value> {
    let parts: Vec<Map<String, Value>> = vec![
        components_of::<CommandResponse>(),
        components_of::<MemberProfile>(),
        components_of::<HistoryPage>(),
        components_of::<RewardsList>(),
        components_of::<LogPage>(),
        components_of::<MemberEventsPage>(),
        components_of::<MemberAsOf>(),
        components_of::<privacy::MemberExport>(),
        components_of::<privacy::ErasureReport>(),
        components_of::<LiabilityReport>(),
        components_of::<TotalsReport>(),
        components_of::<RetentionReport>(),
        components_of::<CohortReport>(),
        components_of::<ConcentrationReport>(),
        components_of::<RfmPage>(),
        components_of::<ModelReport>(),
        components_of::<BacktestReport>(),
        components_of::<AtRiskReport>(),
        components_of::<MemberValue>(),
        components_of::<Health>(),
        components_of::<Readiness>(),
        components_of::<SchedulerRun>(),
        components_of::<ImportReport>(),
        components_of::<webhooks::WebhookEndpointWithSecret>(),
        components_of::<webhooks::WebhookEndpointList>(),
        components_of::<webhooks::WebhookEndpointDetail>(),
        components_of::<webhooks::WebhookDeliveryPage>(),
        components_of::<webhooks::WebhookRedelivery>(),
        components_of::<webhooks::WebhookEventTypes>(),
        components_of::<webhooks::WebhookPayload>(),
    ];
    let mut all = BTreeMap::new();
    for part in parts {
        for (name, schema) in part {
            if let Some(other) = all.insert(name.clone(), schema.clone()) {
                assert_eq!(other, schema, "two schemas are named {name}");
            }
        }
    }
    all
}

/// Calls `f` on every schema object nested in `schema` (itself included).
fn walk(schema: &Value, f: &mut impl FnMut(&Map<String, Value>)) {
    match schema {
        Value::Object(map) => {
            f(map);
            map.values().for_each(|v| walk(v, f));
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

#[test]
fn every_property_is_required_since_none_is_ever_left_out() {
    // No wire type skips a field: an `Option` is written as null. So every property must be
    // listed as required (a missing `required = true` on an `Option` field shows here).
    for (name, schema) in every_component() {
        walk(&schema, &mut |object| {
            let Some(Value::Object(properties)) = object.get("properties") else {
                return;
            };
            let required: Vec<&str> = object
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for property in properties.keys() {
                assert!(
                    required.contains(&property.as_str()),
                    "{name}.{property} is not required"
                );
            }
        });
    }
}

#[test]
fn the_patterns_are_the_documented_ones() {
    assert_eq!(DECIMAL_PATTERN, crate::dto::MONEY_PATTERN);
    let known = [
        DECIMAL_PATTERN,
        POSITION_PATTERN,
        ID_PATTERN,
        CURRENCY_PATTERN,
        crate::dto::DELIVERIES_CURSOR_PATTERN,
        webhooks::MESSAGE_ID_PATTERN,
        crate::dto::WEBHOOK_SECRET_PATTERN,
        crate::dto::WEBHOOK_URL_PATTERN,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, schema) in every_component() {
        walk(&schema, &mut |object| {
            if let Some(pattern) = object.get("pattern").and_then(Value::as_str) {
                assert!(
                    known.contains(&pattern),
                    "{name}: unknown pattern {pattern}"
                );
                seen.insert(pattern.to_owned());
            }
        });
    }
    assert_eq!(seen.len(), known.len(), "{seen:?}");
}

#[test]
fn the_command_outcome_is_a_one_of_with_a_discriminator_mapping_every_variant() {
    let schema = serde_json::to_value(CommandOutcome::schema()).unwrap();
    let variants: Vec<&str> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["$ref"].as_str().unwrap())
        .collect();
    assert_eq!(schema["discriminator"]["propertyName"], "outcome");
    let mapping = schema["discriminator"]["mapping"].as_object().unwrap();
    assert_eq!(mapping.len(), variants.len());
    let components = every_component();
    for (value, reference) in mapping {
        let reference = reference.as_str().unwrap();
        assert!(variants.contains(&reference), "{reference}");
        let name = reference.trim_start_matches("#/components/schemas/");
        let tag = &components[name]["properties"]["outcome"];
        assert_eq!(tag["enum"], serde_json::json!([value]), "{name}: {tag}");
    }
}

#[test]
fn no_answer_is_named_as_a_request_or_a_hand_written_schema() {
    // The request bodies and queries (dto.rs), the shared scalars (schema.rs) and the schemas
    // the hand-written document defines keep their names.
    let taken = [
        "Id",
        "Money",
        "OccurredAt",
        "Position",
        "PositionText",
        "Problem",
        "CommandResult",
        "ImportRow",
        "ImportRowDto",
        "PointsMode",
        "Amount",
        "Quantity",
        "Currency",
    ];
    // An answer may use a shared scalar of schema.rs by reference: then the component is that
    // very schema, not another of the same name.
    use utoipa::PartialSchema;
    let shared = [
        ("Id", crate::schema::Id::schema()),
        ("Amount", crate::schema::Amount::schema()),
        ("Position", crate::dto::PositionText::schema()),
    ];
    for (name, schema) in every_component() {
        if let Some((_, own)) = shared.iter().find(|(n, _)| *n == name) {
            let own = serde_json::to_value(own).unwrap();
            assert_eq!(schema, own, "{name} is the shared one");
            continue;
        }
        assert!(
            !taken.contains(&name.as_str())
                && !name.ends_with("Request")
                && !name.ends_with("Query"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_schema_check_refuses_what_the_schemas_do_not_allow() {
    // The validation the other tests rely on does bite: each change below breaks the schema.
    let world = super::testkit::world().await;
    let purchase = world
        .results
        .iter()
        .find(|r| matches!(r.outcome, loyalty_core::Outcome::PurchaseRecorded { .. }))
        .unwrap();
    let valid = serde_json::to_value(CommandResponse::from(purchase)).unwrap();
    assert!(schema_errors::<CommandResponse>(&valid).is_empty());
    type Change = fn(&mut Value);
    let broken: [(&str, Change); 8] = [
        ("points as a string", |v| {
            v["outcome"]["points"] = json!("12")
        }),
        ("an unknown outcome", |v| {
            v["outcome"]["outcome"] = json!("refunded")
        }),
        ("a missing field", |v| {
            v["outcome"].as_object_mut().unwrap().remove("debt_repaid");
        }),
        ("an undocumented field", |v| {
            v["outcome"]["bonus"] = json!(1)
        }),
        ("a null that is not nullable", |v| {
            v["position"] = Value::Null
        }),
        ("a bad position", |v| v["position"] = json!("42")),
        ("a bad instant", |v| {
            v["outcome"]["lot"]["spendable_from"] = json!("2026-13-01T00:00:00Z")
        }),
        ("a bad expiry kind", |v| {
            v["outcome"]["lot"]["expiry"] = json!({"kind": "soon"})
        }),
    ];
    for (what, change) in broken {
        let mut value = valid.clone();
        change(&mut value);
        assert!(
            !schema_errors::<CommandResponse>(&value).is_empty(),
            "{what} passed: {value}"
        );
    }
    let page = world.engine.history(&world.member, None, 2).await.unwrap();
    let mut value = serde_json::to_value(HistoryPage::from(&page)).unwrap();
    value["lines"][0]["points"] = json!(1.5);
    assert!(!schema_errors::<HistoryPage>(&value).is_empty());
    let totals = TotalsReport::new(world.engine.projection_position(), &world.engine.totals());
    let mut value = serde_json::to_value(&totals).unwrap();
    value["totals"]["liability"] = json!(12.5);
    assert!(!schema_errors::<TotalsReport>(&value).is_empty());
}
