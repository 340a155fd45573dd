//! The OpenAPI 3.1 document served at `/v1/openapi.json`, maintained by hand next to the routes.
//! A test checks that every route registered in `routes/mod.rs` is documented here and that
//! every documented operation is routed.
use serde_json::{Value, json};

fn problem_responses(codes: &[u16]) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    for code in codes {
        let description = match code {
            400 => "Malformed JSON",
            401 => "Missing or invalid API key",
            403 => "The key's role may not do this (or a terminal is not bound to the store)",
            404 => "Unknown member, transaction, reward or redemption",
            409 => {
                "Refused by the state of the account (insufficient points, id reused with different content...)"
            }
            413 => "Body larger than the configured limit",
            415 => "Not JSON",
            422 => {
                "Invalid request (unknown fields, bad ids, negative or absurd amounts, occurred_at outside the accepted window or before the enrollment...)"
            }
            503 => "Not ready, or the read models did not reach min_position in time",
            _ => "Error",
        };
        map.insert(
            code.to_string(),
            json!({
                "description": description,
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            }),
        );
    }
    map
}

const WRITE_ERRORS: &[u16] = &[400, 401, 403, 404, 409, 413, 415, 422, 503];
const READ_ERRORS: &[u16] = &[401, 403, 404, 422, 503];

fn write_op(summary: &str, roles: &str, request: &str, params: Value) -> Value {
    let mut responses = problem_responses(WRITE_ERRORS);
    responses.insert(
        "200".into(),
        json!({
            "description": "Applied, or the original outcome of a replayed request (`replayed: true`, header `Idempotent-Replayed: true`)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandResult"}}}
        }),
    );
    json!({
        "summary": summary,
        "description": format!("Roles: {roles}."),
        "parameters": params,
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}}}},
        "responses": responses,
    })
}

fn read_op(summary: &str, roles: &str, params: Value) -> Value {
    let mut responses = problem_responses(READ_ERRORS);
    responses.insert(
        "200".into(),
        json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}),
    );
    json!({
        "summary": summary,
        "description": format!("Roles: {roles}."),
        "parameters": params,
        "responses": responses,
    })
}

fn public_op(summary: &str, media: &str) -> Value {
    json!({
        "summary": summary,
        "security": [],
        "responses": {"200": {"description": "OK", "content": {media: {}}}, "503": {"description": "Not ready"}}
    })
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Id"}})
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn min_position() -> Value {
    query_param(
        "min_position",
        json!({"$ref": "#/components/schemas/Position"}),
        "Wait (bounded) until the read models reached this position (read-your-writes)",
    )
}

/// The document.
pub fn document() -> Value {
    let member = path_param("member_id");
    let as_of = json!({"name": "as_of", "in": "query", "required": true, "schema": {"type": "string", "format": "date-time"}});
    let date = json!({"type": "string", "format": "date"});
    let periods = vec![
        query_param(
            "period",
            json!({"type": "string", "enum": ["month", "quarter", "year"]}),
            "Period length (month by default)",
        ),
        query_param(
            "from",
            date.clone(),
            "A day of the first period (by default a year before `to`)",
        ),
        query_param(
            "to",
            date.clone(),
            "A day of the last period (today by default); at most 120 periods",
        ),
    ];
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "loyalty",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A loyalty points engine on event sourcing. Money is a JSON string (\"4.50\"), points are integers, times are RFC 3339. Every error is application/problem+json (RFC 9457). Writes return the log position they reached; reads accept ?min_position= to see them."
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/purchases": {"post": write_op("Record a purchase", "terminal (bound to the store), admin", "PurchaseRequest", json!([]))},
            "/v1/refunds": {"post": write_op("Refund (part of) a purchase, by store and transaction id", "terminal (bound to the store), admin", "RefundRequest", json!([]))},
            "/v1/activities": {"post": write_op("Record a non-purchase activity", "terminal, app, admin", "ActivityRequest", json!([]))},
            "/v1/members": {"post": write_op("Enroll a member", "app, admin", "EnrollRequest", json!([]))},
            "/v1/members/{member_id}": {"get": read_op("Profile with balance and tier progress", "app, support, auditor, admin", json!([member, min_position()]))},
            "/v1/members/{member_id}/history": {"get": read_op("Statement lines, newest first, with cursor pagination", "app, support, auditor, admin", json!([
                path_param("member_id"),
                query_param("cursor", json!({"type": "string"}), "The next_cursor of the previous page"),
                query_param("limit", json!({"type": "integer", "minimum": 1}), "Page size (bounded by limits.history_page_max)"),
                min_position()
            ]))},
            "/v1/members/{member_id}/rewards": {"get": read_op("Rewards the member can redeem now", "app, support, admin", json!([path_param("member_id"), min_position()]))},
            "/v1/members/{member_id}/redemptions": {"post": write_op("Redeem a reward or points", "app, admin", "RedeemRequest", json!([path_param("member_id")]))},
            "/v1/members/{member_id}/redemptions/{redemption_id}/cancel": {"post": write_op("Cancel a redemption (the points come back)", "app, support, admin", "CancelRedemptionRequest", json!([path_param("member_id"), path_param("redemption_id")]))},
            "/v1/members/{member_id}/adjustments": {"post": write_op("Adjust points (positive or negative) with a reason code", "support, admin", "AdjustRequest", json!([path_param("member_id")]))},
            "/v1/members/{member_id}/goodwill": {"post": write_op("Grant goodwill points for an upheld complaint", "support, admin", "GoodwillRequest", json!([path_param("member_id")]))},
            "/v1/members/{member_id}/events": {"get": read_op("One member's events from the log", "auditor, admin", json!([
                path_param("member_id"),
                query_param("from_revision", json!({"type": "integer", "minimum": 0}), "First stream revision"),
                query_param("limit", json!({"type": "integer", "minimum": 1}), "Page size (bounded by limits.log_page_max)")
            ]))},
            "/v1/members/{member_id}/as-of": {"get": read_op("Balance and tier as of an instant, replayed from the log", "auditor, support, admin", json!([path_param("member_id"), as_of.clone()]))},
            "/v1/log": {"get": read_op("The event log from a position, paged", "auditor, admin", json!([
                query_param("after", json!({"$ref": "#/components/schemas/Position"}), "Events strictly after this position (the next_after of the previous page)"),
                query_param("limit", json!({"type": "integer", "minimum": 1}), "Page size (bounded by limits.log_page_max)")
            ]))},
            "/v1/liability": {"get": read_op("Points liability as of an instant, replayed from the log", "auditor, admin", json!([as_of]))},
            "/v1/totals": {"get": read_op("Program totals from the read models: members, points outstanding, liability, breakage", "auditor, admin", json!([min_position()]))},
            "/v1/analytics/retention": {"get": read_op("Retention, churn and revenue at risk per period: customers at the start (S) and end (E), new customers (N), retention (E - N) / S, churn, S x average yearly spend x churn", "analyst, admin", json!(periods.clone()))},
            "/v1/analytics/cohorts": {"get": read_op("Enrollment cohorts and the share of each that bought in every period after it", "analyst, admin", json!(periods))},
            "/v1/analytics/concentration": {"get": read_op("Share of net spend (refunds deducted) from the top 1, 5, 10, 20 and 50% of members", "analyst, admin", json!([]))},
            "/v1/analytics/rfm": {"get": read_op("Recency, frequency and monetary quintile scores (1 to 5) per member, by member id", "analyst, admin", json!([
                query_param("after", json!({"type": "string"}), "Members after this id (the next_after of the previous page)"),
                query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Page size")
            ]))},
            "/v1/analytics/model": {"get": read_op("The BG/NBD and Gamma-Gamma models fitted by maximum likelihood on every member's purchase days up to calibration_end (yesterday by default), in the program's time unit", "analyst, admin", json!([
                query_param("calibration_end", date.clone(), "The last day of history the models are fitted on")
            ]))},
            "/v1/analytics/backtest": {"get": read_op("Fit on the history up to calibration_end, predict each member's purchase days up to holdout_end (today by default), and compare with what happened, in total and by calibration frequency", "analyst, admin", json!([
                {"name": "calibration_end", "in": "query", "required": true, "schema": date.clone()},
                query_param("holdout_end", date.clone(), "The last day of the holdout period")
            ]))},
            "/v1/analytics/at-risk": {"get": read_op("Members whose probability of being alive is below the program's at_risk_below, ranked by value at risk ((1 - P(alive)) x their value over the horizon if alive)", "analyst, admin", json!([
                query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Members listed")
            ]))},
            "/v1/analytics/members/{member_id}": {"get": read_op("One member's outlook: P(alive), expected purchase days and lifetime value over the program's horizon", "analyst, admin", json!([path_param("member_id")]))},
            "/v1/admin/import": {"post": write_op("Import a batch of a legacy program's history (members, purchases, refunds, opening balances, with their real dates): all rows or none (422 import-refused lists each refused row), idempotent per row; at most 10,000 rows and limits.body_bytes", "admin", "ImportRequest", json!([]))},
            "/v1/admin/scheduler/run": {"post": write_op("Run expiry and tier reviews now (as of the server's clock, or an earlier `now`; a later one is 422 scheduled-time-ahead)", "admin", "SchedulerRunRequest", json!([]))},
            "/v1/openapi.json": {"get": public_op("This document", "application/json")},
            "/healthz": {"get": public_op("The process is up", "application/json")},
            "/readyz": {"get": public_op("The store is ready and the read models caught up", "application/json")},
            "/metrics": {"get": public_op("Prometheus metrics", "text/plain")}
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key> (or X-Api-Key: <key>). Keys have a role: terminal, app, support, auditor, admin."}
            },
            "schemas": {
                "Id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
                "Money": {"type": "string", "pattern": crate::dto::MONEY_PATTERN, "maxLength": crate::dto::MONEY_MAX_LENGTH, "examples": ["4.50"]},
                "OccurredAt": {"type": "string", "format": "date-time", "description": "Business time (when it happened at the till or in the app): it picks the rules, campaigns and periods. Accepted from 7 days behind to 5 minutes ahead of the server's clock (settings `time.max_behind_secs`, `time.max_ahead_secs`); outside, 422 `occurred-at-outside-window` and nothing is recorded. Never before the member's enrollment (422 `occurred-before-enrollment`). What is pending, spendable or expired is decided by the server's clock alone."},
                "Position": {"type": "string", "pattern": "^[0-9]+/[0-9]+$", "description": "commit/prepare", "examples": ["42/42"]},
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string", "format": "uri", "examples": ["https://loyalty.dev/problems/insufficient-points"]},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"}
                    },
                    "additionalProperties": true
                },
                "CommandResult": {
                    "type": "object",
                    "required": ["member_id", "replayed", "position", "outcome"],
                    "properties": {
                        "member_id": {"$ref": "#/components/schemas/Id"},
                        "replayed": {"type": "boolean"},
                        "position": {"$ref": "#/components/schemas/Position"},
                        "stream_revision": {"type": "integer"},
                        "outcome": {"type": "object"}
                    }
                },
                "EnrollRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["member_id", "occurred_at"],
                    "properties": {
                        "member_id": {"$ref": "#/components/schemas/Id"},
                        "referrer": {"$ref": "#/components/schemas/Id"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"}
                    }
                },
                "PurchaseRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["member_id", "transaction_id", "store", "terminal", "occurred_at", "currency", "lines"],
                    "properties": {
                        "member_id": {"$ref": "#/components/schemas/Id"},
                        "transaction_id": {"$ref": "#/components/schemas/Id"},
                        "store": {"$ref": "#/components/schemas/Id"},
                        "terminal": {"$ref": "#/components/schemas/Id"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"},
                        "currency": {"type": "string", "examples": ["EUR"]},
                        "lines": {"type": "array", "items": {
                            "type": "object", "additionalProperties": false,
                            "required": ["sku", "category", "amount"],
                            "properties": {
                                "sku": {"$ref": "#/components/schemas/Id"},
                                "category": {"$ref": "#/components/schemas/Id"},
                                "quantity": {"$ref": "#/components/schemas/Money"},
                                "amount": {"$ref": "#/components/schemas/Money"}
                            }
                        }}
                    }
                },
                "RefundRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["refund_id", "transaction_id", "store", "occurred_at", "currency"],
                    "description": "Give either amount (spread over the purchase) or lines.",
                    "properties": {
                        "refund_id": {"$ref": "#/components/schemas/Id"},
                        "transaction_id": {"$ref": "#/components/schemas/Id"},
                        "store": {"$ref": "#/components/schemas/Id", "description": "The store taking the return (a terminal key must be bound to it)"},
                        "purchase_store": {"$ref": "#/components/schemas/Id", "description": "The store of the original sale, when it is not `store`: transaction ids are unique per store"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"},
                        "currency": {"type": "string"},
                        "amount": {"$ref": "#/components/schemas/Money"},
                        "lines": {"type": "array", "items": {
                            "type": "object", "additionalProperties": false,
                            "required": ["line", "amount"],
                            "properties": {"line": {"type": "integer", "minimum": 0}, "amount": {"$ref": "#/components/schemas/Money"}}
                        }}
                    }
                },
                "ActivityRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["member_id", "activity_id", "kind", "occurred_at"],
                    "properties": {
                        "member_id": {"$ref": "#/components/schemas/Id"},
                        "activity_id": {"$ref": "#/components/schemas/Id"},
                        "kind": {"$ref": "#/components/schemas/Id"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"}
                    }
                },
                "RedeemRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["redemption_id", "occurred_at"],
                    "description": "Give either reward_id or points.",
                    "properties": {
                        "redemption_id": {"$ref": "#/components/schemas/Id"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"},
                        "reward_id": {"$ref": "#/components/schemas/Id"},
                        "points": {"type": "integer", "minimum": 1}
                    }
                },
                "CancelRedemptionRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["occurred_at"],
                    "properties": {"occurred_at": {"$ref": "#/components/schemas/OccurredAt"}}
                },
                "AdjustRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["adjustment_id", "points", "reason_code", "note", "occurred_at"],
                    "properties": {
                        "adjustment_id": {"$ref": "#/components/schemas/Id"},
                        "points": {"type": "integer"},
                        "reason_code": {"$ref": "#/components/schemas/Id"},
                        "note": {"type": "string"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"},
                        "operator": {"$ref": "#/components/schemas/Id"}
                    }
                },
                "GoodwillRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["complaint_id", "points", "reason_code", "note", "occurred_at"],
                    "properties": {
                        "complaint_id": {"$ref": "#/components/schemas/Id"},
                        "points": {"type": "integer", "minimum": 1},
                        "reason_code": {"$ref": "#/components/schemas/Id"},
                        "note": {"type": "string"},
                        "occurred_at": {"$ref": "#/components/schemas/OccurredAt"},
                        "operator": {"$ref": "#/components/schemas/Id"}
                    }
                },
                "SchedulerRunRequest": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"now": {"type": "string", "format": "date-time"}}
                }
            }
        }
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.extend(import_schemas());
    }
    doc
}

/// The import's request schemas (kept out of the document's `json!`, whose macro recursion
/// has a limit).
fn import_schemas() -> serde_json::Map<String, Value> {
    let schemas = json!({
                "ImportRequest": {
                    "type": "object", "additionalProperties": false,
                    "required": ["batch_id", "points", "rows"],
                    "properties": {
                        "batch_id": {"$ref": "#/components/schemas/Id"},
                        "points": {"type": "string", "enum": ["rules", "none", "explicit"]},
                        "rows": {"type": "array", "minItems": 1, "maxItems": 10000, "items": {"$ref": "#/components/schemas/ImportRow"}}
                    }
                },
                "ImportRow": {
                    "type": "object", "additionalProperties": false,
                    "required": ["type", "member_id", "occurred_at"],
                    "properties": {
                        "type": {"type": "string", "enum": ["member", "purchase", "refund", "balance"]},
                        "member_id": {"$ref": "#/components/schemas/Id"},
                        "occurred_at": {"type": "string", "description": "RFC 3339 instant, or a local date (members at 00:00, other rows at 12:00 in the program's timezone)"},
                        "store": {"$ref": "#/components/schemas/Id"},
                        "transaction_id": {"$ref": "#/components/schemas/Id"},
                        "amount": {"$ref": "#/components/schemas/Money"},
                        "category": {"$ref": "#/components/schemas/Id"},
                        "sku": {"$ref": "#/components/schemas/Id"},
                        "refund_id": {"$ref": "#/components/schemas/Id"},
                        "points": {"type": "integer"},
                        "balance_id": {"$ref": "#/components/schemas/Id"},
                        "expires_at": {"type": "string", "description": "RFC 3339 instant, or a local date (the end of that day)"}
                    }
                }
    });
    match schemas {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}
