//! The OpenAPI 3.1 document served at `/v1/openapi.json`, derived from the code: each handler's
//! `#[utoipa::path]` (collected where the route is registered, `routes::routes`), the wire
//! types' `ToSchema` derives, and the server's settings and program (limits, the currency, the
//! activity kinds and rewards), applied when the document is served so that it states exactly
//! what this server accepts.
use std::borrow::Cow;
use std::sync::OnceLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AllOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::error::PROBLEM_JSON;
use crate::state::AppState;

/// The name of the API-key security scheme; operations list the roles they are open to as its
/// scopes (admin is always allowed).
pub const API_KEY_SCHEME: &str = "apiKey";

/// The name of the member-token security scheme.
pub const MEMBER_TOKEN_SCHEME: &str = "memberToken";

#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "loyalty",
        description = "A loyalty points engine on event sourcing. Money is a JSON string \
            (\"4.50\"), points are integers, times are RFC 3339. Every error is \
            application/problem+json (RFC 9457) with a stable `type`. Writes return the log \
            position they reached; reads accept ?min_position= to see them.\n\n\
            `occurred_at` is business time (when it happened at the till or in the app): it \
            picks the rules, campaigns and periods. It is accepted from `time.max_behind_secs` \
            behind to `time.max_ahead_secs` ahead of the server's clock (7 days and 5 minutes \
            by default); outside, 422 `occurred-at-outside-window` and nothing is recorded. \
            Never before the member's enrollment (422 `occurred-before-enrollment`). What is \
            pending, spendable or expired is decided by the server's clock alone.\n\n\
            Each operation's security requirement lists the API key roles it is open to; \
            admin keys may call every operation."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(
        Problem,
        crate::dto::PositionText,
        crate::dto::PeriodKindName,
        crate::wire::webhooks::WebhookPayload,
        crate::wire::programs::ProgramRef
    ))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Authorization: Bearer <key> (or X-Api-Key: <key>). Keys have a role: \
                         terminal, app, support, auditor, analyst, issuer, admin; the scopes of \
                         an operation's requirement are the roles it is open to.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            MEMBER_TOKEN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A member token (Authorization: Bearer <token>): a short-lived signed \
                         token for one member, obtained by the retailer's back-end with an \
                         issuer key (POST /v1/tokens) and presented by that member's app. It \
                         opens only the operations that list it, and only for its own member \
                         (another member's id is 403).",
                    ))
                    .build(),
            ),
        );
    }
}

/// An error, as every error is answered (RFC 9457). Problems carry more members where a
/// client can act on them (`available`, `retryable`, `max`...).
#[derive(Debug)]
pub struct Problem;

impl PartialSchema for Problem {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A problem document (RFC 9457). `type` is stable: \
                 https://loyalty.dev/problems/<slug>, such as insufficient-points.",
            ))
            .property(
                "type",
                string()
                    .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
                    .enum_values(Some(
                        crate::problems::PROBLEM_TYPES
                            .iter()
                            .map(|(_, slug)| format!("{}{slug}", crate::error::PROBLEM_BASE)),
                    ))
                    .examples(["https://loyalty.dev/problems/insufficient-points"]),
            )
            .required("type")
            .property("title", string())
            .required("title")
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599)),
            )
            .required("status")
            .property("detail", string())
            .required("detail")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
            ))
            .into()
    }
}

impl ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Problem")
    }
}

/// The statuses of problems an operation may answer, with what they mean here.
const PROBLEMS: &[(u16, &str)] = &[
    (400, "Malformed JSON or query string"),
    (401, "Missing or invalid API key"),
    (
        403,
        "The key's role may not do this (or a terminal is not bound to the store)",
    ),
    (
        404,
        "Unknown member, transaction, reward, redemption, webhook endpoint or message, or \
         program version",
    ),
    (
        408,
        "The request took longer than server.request_timeout_ms",
    ),
    (
        409,
        "Refused by the state of the account (insufficient points, an id reused with different \
         content, a suspended or closed member...)",
    ),
    (413, "Body larger than limits.body_bytes"),
    (415, "Not JSON"),
    (
        422,
        "Invalid request (unknown fields, bad ids, amounts outside the limits, occurred_at \
         outside the accepted window or before the enrollment...)",
    ),
    (
        429,
        "Too many requests for this key: retry after Retry-After seconds",
    ),
    (
        503,
        "Not ready, the store cannot take writes, or the read models did not reach \
         min_position in time (Retry-After when retrying may help)",
    ),
];

/// Which problem statuses an operation documents: all of them for writes (bodies), all but
/// the body's for reads, and only overload for the public probes.
fn problem_statuses(op: &Operation, has_body: bool) -> Vec<u16> {
    let public = op.security.as_ref().is_some_and(|s| s.is_empty());
    PROBLEMS
        .iter()
        .map(|(status, _)| *status)
        .filter(|status| match status {
            413 | 415 => has_body,
            400 | 401 | 403 | 404 | 409 | 422 => !public,
            _ => true,
        })
        .collect()
}

fn add_problem_responses(op: &mut Operation) {
    let has_body = op.request_body.is_some();
    for status in problem_statuses(op, has_body) {
        let what = PROBLEMS
            .iter()
            .find(|(s, _)| *s == status)
            .map_or("Error", |(_, d)| d);
        let types: Vec<String> = crate::problems::types_of(status)
            .map(|slug| format!("`{slug}`"))
            .collect();
        let description = format!("{what}. Problem types: {}.", types.join(", "));
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build(),
            )
            .build();
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert(RefOr::T(response));
    }
}

/// The document as derived from the code, before the server's settings are applied.
fn derived() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, mut api) = crate::routes::api().split_for_parts();
        api.info.version = env!("CARGO_PKG_VERSION").to_owned();
        for item in api.paths.paths.values_mut() {
            for op in operations(item) {
                add_problem_responses(op);
            }
        }
        api
    })
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The schema named `name` in the document's components, as an object to amend.
fn component<'a>(api: &'a mut OpenApi, name: &str) -> Option<&'a mut Object> {
    match api.components.as_mut()?.schemas.get_mut(name)? {
        RefOr::T(Schema::Object(object)) => Some(object),
        _ => None,
    }
}

fn integer(min: i64, max: i64) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(min))
        .maximum(Some(max))
        .build()
}

/// Makes the component `name` require exactly one of the properties `a` and `b`.
fn one_of_required(api: &mut OpenApi, name: &str, a: &str, b: &str) {
    let Some(schemas) = api.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(RefOr::T(schema)) = schemas.get(name).cloned() else {
        return;
    };
    let required = |field: &str| ObjectBuilder::new().required(field).build();
    let either = OneOfBuilder::new()
        .item(required(a))
        .item(required(b))
        .build();
    let combined = AllOfBuilder::new()
        .item(schema)
        .item(Schema::OneOf(either))
        .build();
    schemas.insert(name.to_owned(), RefOr::T(Schema::AllOf(combined)));
}

/// The query parameter `name` of every operation under `path_prefix`.
fn query_params<'a>(
    api: &'a mut OpenApi,
    name: &'a str,
) -> impl Iterator<Item = (&'a String, &'a mut Object)> + 'a {
    api.paths.paths.iter_mut().flat_map(move |(path, item)| {
        operations(item)
            .flat_map(|op| op.parameters.iter_mut().flatten())
            .filter_map(|p| match p {
                RefOr::T(p) => Some(p),
                RefOr::Ref(_) => None,
            })
            .filter(move |p| p.name == name)
            .filter_map(|p| match p.schema.as_mut() {
                Some(RefOr::T(Schema::Object(object))) => Some(object),
                _ => None,
            })
            .map(move |object| (path, object))
    })
}

/// The document this server serves: the derived one with its limits, currency, activity kinds
/// and rewards.
pub fn document(state: &AppState) -> OpenApi {
    let mut api = derived().clone();
    let limits = &state.limits;
    let program = state.engine.program();
    // What a request may carry is the tighter of the server's typo guards (settings `limits`)
    // and the program's own limits (`[limits]` of the program).
    let rules = &program.limits;
    let whole = |d: rust_decimal::Decimal| u64::try_from(d.trunc()).unwrap_or(0);
    let minor_units = program.program.minor_units;
    let line_max = whole(limits.max_amount.min(rules.max_amount_per_line));
    let max_lines = limits.max_lines.min(rules.max_lines_per_purchase as usize);
    let refund_max = whole(
        limits.max_amount.min(
            rules
                .max_amount_per_line
                .saturating_mul(rust_decimal::Decimal::from(rules.max_lines_per_purchase)),
        ),
    );
    if let Some(money) = component(&mut api, "Money") {
        money.pattern = Some(crate::schema::amount_pattern(line_max, minor_units));
    }
    if let Some(quantity) = component(&mut api, "Quantity") {
        let max = whole(
            rules
                .max_quantity_per_line
                .min(rust_decimal::Decimal::from(crate::schema::MAX_QUANTITY)),
        );
        quantity.pattern = Some(crate::schema::amount_pattern(
            max,
            crate::schema::QUANTITY_DECIMALS,
        ));
    }
    if let Some(currency) = component(&mut api, "Currency") {
        currency.enum_values = Some(vec![program.program.currency.as_str().into()]);
    }
    if let Some(request) = component(&mut api, "PurchaseRequest")
        && let Some(RefOr::T(Schema::Array(lines))) = request.properties.get_mut("lines")
    {
        lines.max_items = Some(max_lines);
    }
    if let Some(request) = component(&mut api, "RefundRequest") {
        request.properties.insert(
            "amount".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(crate::schema::amount_pattern(refund_max, minor_units)))
                .max_length(Some(crate::dto::MONEY_MAX_LENGTH))
                .description(Some(
                    "Refund this much, spread over the purchase's lines: a positive amount \
                     within the limits (lines are refunded with the line amounts' own limit)",
                ))
                .into(),
        );
        if let Some(RefOr::T(Schema::Array(lines))) = request.properties.get_mut("lines") {
            lines.min_items = Some(1);
            lines.max_items = Some(max_lines);
        }
    }
    let max_points = limits
        .max_adjust_points
        .min(rules.max_points_per_adjustment.value());
    if let Some(request) = component(&mut api, "AdjustRequest") {
        request.properties.insert(
            "points".into(),
            OneOfBuilder::new()
                .description(Some(
                    "Positive to credit, negative to debit; never 0, at most the adjustment \
                     limit either way.",
                ))
                .item(integer(-max_points, -1))
                .item(integer(1, max_points))
                .into(),
        );
    }
    if let Some(request) = component(&mut api, "GoodwillRequest") {
        request
            .properties
            .insert("points".into(), integer(1, max_points).into());
    }
    for name in ["AdjustRequest", "GoodwillRequest"] {
        if let Some(request) = component(&mut api, name)
            && let Some(RefOr::T(Schema::Object(note))) = request.properties.get_mut("note")
        {
            note.max_length = Some(rules.max_text_length as usize);
        }
    }
    if let Some(request) = component(&mut api, "RedeemRequest")
        && let Some(RefOr::T(Schema::Object(points))) = request.properties.get_mut("points")
    {
        points.maximum = Some(rules.max_points_per_redemption.value().into());
    }
    if let Some(request) = component(&mut api, "ActivityRequest") {
        let kinds = program
            .bonuses
            .activities
            .iter()
            .map(|a| a.kind.as_str().into())
            .collect();
        request.properties.insert(
            "kind".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some::<Vec<serde_json::Value>>(kinds))
                .description(Some("One of the program's activity kinds"))
                .into(),
        );
    }
    if let Some(tokens) = state.keys.tokens()
        && let Some(request) = component(&mut api, "TokenRequest")
        && let Some(RefOr::T(Schema::Object(ttl))) = request.properties.get_mut("ttl_secs")
    {
        ttl.maximum = Some(tokens.max_ttl_secs().into());
    }
    // Exactly one of two fields: JSON Schema says it with a oneOf of two `required`s next to
    // the object's own schema.
    one_of_required(&mut api, "RefundRequest", "amount", "lines");
    one_of_required(&mut api, "RedeemRequest", "reward_id", "points");
    webhook_limits(&mut api, state.webhooks.settings());
    for (path, limit) in query_params(&mut api, "limit") {
        if path.starts_with("/v1/members/{member_id}/history") {
            limit.maximum = Some(limits.history_page_max.into());
        } else if path == "/v1/log" || path.ends_with("/events") {
            limit.maximum = Some(limits.log_page_max.into());
        }
    }
    // How the program writes money and dates, for clients that show them as the program does
    // (the dashboard, whatever the caller's role): public, like the currency above.
    api.info
        .extensions
        .get_or_insert_with(Default::default)
        .insert(
            PROGRAM_EXTENSION.to_owned(),
            serde_json::json!({
                "currency": program.program.currency.as_str(),
                "minor_units": minor_units,
                "timezone": program.timezone().name(),
            }),
        );
    api
}

/// The `info` extension that states the program's currency, minor units and IANA timezone.
pub const PROGRAM_EXTENSION: &str = "x-loyalty-program";

/// The `[webhooks]` limits on what an endpoint may name, and the rule that a change names
/// something.
fn webhook_limits(api: &mut OpenApi, settings: &loyalty_webhooks::WebhookSettings) {
    for name in [
        "CreateWebhookEndpointRequest",
        "UpdateWebhookEndpointRequest",
    ] {
        let Some(request) = component(api, name) else {
            continue;
        };
        if let Some(RefOr::T(Schema::Object(timeout))) = request.properties.get_mut("timeout_ms") {
            timeout.maximum = Some(settings.max_timeout_ms.into());
        }
        if let Some(RefOr::T(Schema::Object(in_flight))) =
            request.properties.get_mut("max_in_flight")
        {
            in_flight.maximum = Some(settings.max_in_flight.into());
        }
    }
    if let Some(request) = component(api, "UpdateWebhookEndpointRequest") {
        request.min_properties = Some(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_problems_as_problem_json() {
        let api = derived();
        for (path, item) in &api.paths.paths {
            let mut item = item.clone();
            for op in operations(&mut item) {
                let problem = op
                    .responses
                    .responses
                    .get("503")
                    .unwrap_or_else(|| panic!("{path}: no 503"));
                let RefOr::T(response) = problem else {
                    panic!("{path}: a reference")
                };
                assert!(response.content.contains_key(PROBLEM_JSON), "{path}");
            }
        }
    }

    #[tokio::test]
    async fn the_served_document_states_this_servers_webhook_limits() {
        // Given a server whose endpoints may wait at most 1.5 s and have 3 messages in flight
        let world = crate::wire::testkit::world().await;
        let settings = loyalty_webhooks::WebhookSettings {
            default_timeout_ms: 1_000,
            max_timeout_ms: 1_500,
            default_max_in_flight: 2,
            max_in_flight: 3,
            ..loyalty_webhooks::WebhookSettings::default()
        };
        let webhooks = loyalty_webhooks::Webhooks::new(world.engine.clone(), settings);
        let state = AppState::new(
            world.engine.clone(),
            crate::auth::KeyRing::default(),
            crate::settings::LimitSettings::default(),
        )
        .with_webhooks(webhooks);

        // When its document is served
        let document = serde_json::to_value(document(&state)).unwrap();

        // Then creations and changes state those limits, and a change must name something
        let schemas = &document["components"]["schemas"];
        for name in [
            "CreateWebhookEndpointRequest",
            "UpdateWebhookEndpointRequest",
        ] {
            let properties = &schemas[name]["properties"];
            assert_eq!(properties["timeout_ms"]["maximum"], 1_500, "{name}");
            assert_eq!(properties["max_in_flight"]["maximum"], 3, "{name}");
        }
        assert_eq!(schemas["UpdateWebhookEndpointRequest"]["minProperties"], 1);
        assert!(schemas["WebhookPayload"]["oneOf"].is_array());
    }
}
