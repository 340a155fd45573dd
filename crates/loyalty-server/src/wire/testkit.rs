//! What the wire tests share: a small in-memory engine with some history, the JSON the
//! handlers wrote before the wire types, and validation against a type's own schema.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use loyalty_core::{
    ActivityId, ActivityKind, Adjust, AdjustmentId, CancelRedemption, CategoryId, Close, Command,
    ComplaintId, Currency, Enroll, Goodwill, MemberId, OperatorId, Outcome, Points, Program,
    PurchaseLine, ReasonCode, RecordActivity, RecordPurchase, Redeem, RedeemTarget, RedemptionId,
    RefundId, RefundScope, Reinstate, RewardId, Sku, StoreId, Suspend, TerminalId, TransactionId,
};
use loyalty_engine::{
    CommandResult, Engine, EngineOptions, ManualClock, RefundRequest, SequentialIds,
};
use loyalty_store::InMemoryStore;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::dto::PositionText;

/// An engine over the demo program with three members and a bit of everything.
pub(crate) struct World {
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
    /// When the commands were sent (the clock's time).
    pub now: DateTime<Utc>,
    /// Referred by `referrer`; bought, was refunded, earned, redeemed, was adjusted.
    pub member: MemberId,
    pub referrer: MemberId,
    /// Suspended, reinstated, then closed.
    pub newcomer: MemberId,
    /// The answers to every command sent.
    pub results: Vec<CommandResult>,
}

fn demo_program() -> Program {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/program.toml");
    let text = std::fs::read_to_string(&path).expect("config/program.toml is readable");
    Program::from_toml_str(&text).expect("the demo program is valid")
}

fn id<T>(parse: fn(String) -> Result<T, loyalty_core::DomainError>, value: &str) -> T {
    parse(value.to_owned()).expect("a valid id")
}

fn dec(value: &str) -> Decimal {
    value.parse().expect("a decimal")
}

/// The world, its read models caught up with every command.
pub(crate) async fn world() -> World {
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::start(
        Arc::new(InMemoryStore::new()),
        Arc::new(demo_program()),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        EngineOptions::default(),
    )
    .await
    .expect("the engine starts");
    let member = id(MemberId::parse, "m-1");
    let referrer = id(MemberId::parse, "m-ref");
    let newcomer = id(MemberId::parse, "m-3");
    let operator = || id(OperatorId::parse, "support-1");
    let reason = |r: &str| id(ReasonCode::parse, r);
    let purchase = |m: &MemberId, txn: &str, category: &str, amount: &str| {
        Command::RecordPurchase(RecordPurchase {
            member_id: m.clone(),
            transaction_id: id(TransactionId::parse, txn),
            store: id(StoreId::parse, "store-1"),
            terminal: id(TerminalId::parse, "till-1"),
            occurred_at: now,
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![PurchaseLine {
                sku: id(Sku::parse, "sku-1"),
                category: id(CategoryId::parse, category),
                quantity: Decimal::ONE,
                amount: dec(amount),
            }],
        })
    };
    let activity = |activity: &str| {
        Command::RecordActivity(RecordActivity {
            member_id: member.clone(),
            activity_id: id(ActivityId::parse, activity),
            kind: id(ActivityKind::parse, "survey_answered"),
            occurred_at: now,
        })
    };
    let redeem = |redemption: &str, target| {
        Command::Redeem(Redeem {
            member_id: member.clone(),
            redemption_id: id(RedemptionId::parse, redemption),
            occurred_at: now,
            target,
        })
    };
    let commands = vec![
        Command::Enroll(Enroll {
            member_id: referrer.clone(),
            referrer: None,
            occurred_at: now,
        }),
        Command::Enroll(Enroll {
            member_id: member.clone(),
            referrer: Some(referrer.clone()),
            occurred_at: now,
        }),
        Command::Enroll(Enroll {
            member_id: newcomer.clone(),
            referrer: None,
            occurred_at: now,
        }),
        purchase(&member, "T1", "coffee-beans", "40.00"),
        purchase(&referrer, "T2", "pastry", "12.50"),
        activity("a-1"),
        activity("a-2"),
        redeem(
            "rd-1",
            RedeemTarget::Reward(id(RewardId::parse, "free-espresso")),
        ),
        redeem("rd-2", RedeemTarget::Points(Points::new(5))),
        Command::CancelRedemption(CancelRedemption {
            member_id: member.clone(),
            redemption_id: id(RedemptionId::parse, "rd-2"),
            occurred_at: now,
        }),
        Command::Adjust(Adjust {
            member_id: member.clone(),
            adjustment_id: id(AdjustmentId::parse, "adj-1"),
            points: Points::new(400),
            reason_code: reason("correction"),
            note: "points of a lost card".into(),
            operator: operator(),
            occurred_at: now,
        }),
        Command::Goodwill(Goodwill {
            member_id: member.clone(),
            complaint_id: id(ComplaintId::parse, "c-1"),
            points: Points::new(20),
            reason_code: reason("complaint"),
            note: "cold latte".into(),
            operator: operator(),
            occurred_at: now,
        }),
        Command::Suspend(Suspend {
            member_id: newcomer.clone(),
            reason_code: reason("fraud-check"),
            operator: operator(),
            occurred_at: now,
        }),
        Command::Reinstate(Reinstate {
            member_id: newcomer.clone(),
            reason_code: reason("appeal-upheld"),
            operator: operator(),
            occurred_at: now,
        }),
        Command::Close(Close {
            member_id: newcomer.clone(),
            reason_code: reason("member-request"),
            operator: operator(),
            occurred_at: now,
        }),
    ];
    let mut results = Vec::new();
    for command in commands {
        let name = command.name();
        results.push(
            engine
                .execute(command)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        );
    }
    let refund = RefundRequest {
        refund_id: id(RefundId::parse, "R1"),
        store: id(StoreId::parse, "store-1"),
        purchase_store: id(StoreId::parse, "store-1"),
        transaction_id: id(TransactionId::parse, "T1"),
        occurred_at: now,
        currency: Currency::parse("EUR").unwrap(),
        scope: RefundScope::Amount(dec("10.00")),
    };
    results.push(engine.refund_by_transaction(refund).await.unwrap());
    // A retry: the original outcome, replayed.
    results.push(
        engine
            .execute(purchase(&member, "T1", "coffee-beans", "40.00"))
            .await
            .unwrap(),
    );
    assert!(results.last().is_some_and(|r| r.replayed));
    let head = engine.store().head_position().await.unwrap();
    // The referral process manager answers the qualifying purchase on its own.
    for _ in 0..500 {
        engine.wait_for(head).await.unwrap();
        let credited = engine
            .member_profile(&referrer)
            .is_some_and(|p| p.balance.lifetime_earned.value() > 50 + 12);
        if credited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let head = engine.store().head_position().await.unwrap();
    engine.wait_for(head).await.unwrap();
    World {
        engine,
        clock,
        now,
        member,
        referrer,
        newcomer,
        results,
    }
}

/// `routes::CommandResponse` as it was before the wire types: the core's outcome as is.
#[derive(Serialize)]
struct LegacyCommandResponse<'a> {
    member_id: String,
    replayed: bool,
    position: PositionText,
    stream_revision: u64,
    outcome: &'a Outcome,
}

/// The JSON text of a command's answer before the wire types.
pub(crate) fn legacy_command_response(r: &CommandResult) -> String {
    serde_json::to_string(&LegacyCommandResponse {
        member_id: r.member.to_string(),
        replayed: r.replayed,
        position: PositionText(r.position),
        stream_revision: r.stream_revision,
        outcome: &r.outcome,
    })
    .unwrap()
}

/// Both serialise to the same JSON text, byte for byte (the engine's value was serialised as
/// is: the wire type keeps its fields in the same order).
#[track_caller]
pub(crate) fn assert_same_json(wire: &impl Serialize, before: &impl Serialize) {
    let wire = serde_json::to_string(wire).unwrap();
    let before = serde_json::to_string(before).unwrap();
    assert_eq!(wire, before, "\nwire:   {wire}\nbefore: {before}");
}

/// Both serialise to the same JSON value: for the bodies a handler built with `json!`, whose
/// keys came out sorted (a `serde_json::Map`), the wire type's keys are in declaration order.
#[track_caller]
pub(crate) fn assert_same_json_value(wire: &impl Serialize, before: &impl Serialize) {
    let wire = serde_json::to_value(wire).unwrap();
    let before = serde_json::to_value(before).unwrap();
    assert_eq!(
        wire,
        before,
        "\nwire:   {}\nbefore: {}",
        serde_json::to_string(&wire).unwrap(),
        serde_json::to_string(&before).unwrap()
    );
}

/// `T`'s schema and every schema it refers to, by name (as `components.schemas` holds them).
pub(crate) fn components_of<T: ToSchema>() -> Map<String, Value> {
    let mut schemas = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut schemas);
    schemas
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap()))
        .collect()
}

/// Makes every object schema that lists its properties refuse any other: a field the JSON has
/// and the schema does not is then an error, not a silent pass.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// What is wrong with `instance` by `T`'s schema (formats checked, no undocumented field).
pub(crate) fn schema_errors<T: ToSchema>(instance: &Value) -> Vec<String> {
    let mut components = Value::Object(components_of::<T>());
    close_objects(&mut components);
    let document = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{}", T::name()),
        "components": {"schemas": components},
    });
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&document)
        .unwrap_or_else(|e| panic!("the schema of {} compiles: {e}", T::name()));
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The JSON of `value` is valid against `T`'s schema (formats checked, no undocumented
/// field).
#[track_caller]
pub(crate) fn assert_valid<T: ToSchema>(value: &impl Serialize) {
    let instance = serde_json::to_value(value).unwrap();
    let errors = schema_errors::<T>(&instance);
    assert!(
        errors.is_empty(),
        "{} does not match its schema: {errors:#?}\njson: {instance}",
        T::name()
    );
}
