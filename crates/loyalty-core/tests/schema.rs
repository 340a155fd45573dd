//! The stored schema: every event round-trips, and documents written by v1 stay readable.

mod support;

use loyalty_core::schema;
use loyalty_core::*;
use support::*;

/// A history touching every event type.
fn full_history() -> Vec<Event> {
    given([
        enroll_referred_by("R9"),
        purchase("T1", "2026-01-10T10:00:00Z", "250"),
        refund_lines("F1", "T1", "2026-01-11T10:00:00Z", &[(0, "10")]),
        // Takes T1 below the referral's minimum: the referral is revoked.
        refund_lines("F2", "T1", "2026-01-12T10:00:00Z", &[(0, "235")]),
        redeem("R1", "2026-02-01T10:00:00Z", 40),
        cancel("R1", "2026-02-02T10:00:00Z"),
        activity("A1", "survey", "2026-02-03T10:00:00Z"),
        activity("A2", "survey", "2026-02-04T10:00:00Z"),
        adjust("J1", "2026-02-05T10:00:00Z", 40),
        adjust("J2", "2026-02-05T11:00:00Z", -30),
        goodwill("C1", "2026-02-06T10:00:00Z", 15),
        win_back("2026-06-06T10:00:00Z", None, 120),
        credit_referral("N1", "2026-02-07T10:00:00Z"),
        revoke_referral("N1", "2026-02-07T11:00:00Z"),
        suspend("2026-02-08T10:00:00Z"),
        reinstate("2026-02-09T10:00:00Z"),
        notify_expiry("2027-01-17T23:00:00Z"),
        expire("2027-03-01T00:00:00Z"),
        open_balance("B1", 100, Some("2027-08-01T00:00:00Z")),
        review("2028-01-10T10:00:00Z"),
        close("2028-02-01T10:00:00Z"),
    ])
    .history()
    .to_vec()
}

#[test]
fn every_event_type_round_trips_through_the_stored_schema() {
    let history = full_history();
    let mut seen: Vec<&str> = history.iter().map(Event::event_type).collect();
    seen.sort();
    seen.dedup();
    let mut all = schema::EVENT_TYPES.to_vec();
    all.sort();
    assert_eq!(seen, all, "the history must cover every event type");
    for event in &history {
        let stored = schema::encode(event);
        assert_eq!(stored.event_type, event.event_type());
        assert_eq!(stored.schema_version, schema::CURRENT_SCHEMA_VERSION);
        let back = schema::decode(stored.event_type, stored.schema_version, &stored.data)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", stored.event_type));
        assert_eq!(&back, event);
    }
}

#[test]
fn a_state_rebuilt_from_stored_events_equals_the_original() {
    let history = full_history();
    let decoded: Vec<Event> = history
        .iter()
        .map(|e| {
            let s = schema::encode(e);
            schema::decode(s.event_type, s.schema_version, &s.data).unwrap()
        })
        .collect();
    assert_eq!(
        MemberState::from_events(&decoded),
        MemberState::from_events(&history)
    );
}

#[test]
fn money_is_stored_as_strings_never_as_floats() {
    let history = full_history();
    let purchase = history
        .iter()
        .find(|e| matches!(e, Event::PurchaseRecorded(_)))
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&schema::encode(purchase).data).unwrap();
    assert_eq!(json["lines"][0]["amount"], "250");
    assert_eq!(json["eligible_amount"], "250");
    assert_eq!(json["points"], 250);
}

/// Written by hand as v1 stored it: this must stay readable for as long as history exists.
const PURCHASE_V1: &str = r#"{
  "transaction_id": "T-2026-0001",
  "store": "paris-opera",
  "terminal": "till-3",
  "occurred_at": "2026-03-28T09:15:00Z",
  "currency": "EUR",
  "lines": [
    {"sku": "CROISSANT", "category": "pastry", "quantity": "2", "amount": "3.40",
     "eligible_amount": "3.40",
     "rules": [{"rule": "base", "points": 3}, {"rule": "campaign:pastry-x2", "points": 3}],
     "points": 6}
  ],
  "transaction_rules": [],
  "points": 6,
  "eligible_amount": "3.40",
  "campaigns_applied": ["pastry-x2"],
  "credit": {
    "lot_id": "purchase:T-2026-0001", "points": 6, "debt_repaid": 0,
    "earned_at": "2026-03-28T09:15:00Z", "spendable_from": "2026-04-11T08:15:00Z",
    "expiry": {"kind": "at", "at": "2027-04-30T22:00:00Z"}
  },
  "rules_version": "2026.03.1",
  "fingerprint": "00000000000000aa"
}"#;

#[test]
fn a_hand_written_v1_purchase_decodes() {
    let event = schema::decode("PurchaseRecorded", 1, PURCHASE_V1.as_bytes()).unwrap();
    let Event::PurchaseRecorded(p) = event else {
        panic!("wrong variant");
    };
    assert_eq!(p.transaction_id.as_str(), "T-2026-0001");
    assert_eq!(p.lines[0].amount, d("3.40"));
    assert_eq!(p.lines[0].rules[1].rule, "campaign:pastry-x2");
    assert_eq!(p.points, Points::new(6));
    let credit = p.credit.unwrap();
    assert_eq!(credit.expiry, LotExpiry::At(t("2027-04-30T22:00:00Z")));
    // A field added after v1 was first written (activity_deadline) defaults when absent.
    assert_eq!(credit.activity_deadline, None);
}

#[test]
fn a_hand_written_v1_redemption_decodes() {
    let doc = r#"{"redemption_id": "R-77", "reward_id": "free-latte", "points": 120,
        "draws": [{"lot_id": "welcome:M1", "points": 50}, {"lot_id": "purchase:T1", "points": 70}],
        "occurred_at": "2026-05-01T12:00:00Z", "fingerprint": "abc"}"#;
    let Event::PointsRedeemed(r) = schema::decode("PointsRedeemed", 1, doc.as_bytes()).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(r.draws.len(), 2);
    assert_eq!(r.reward_id.unwrap().as_str(), "free-latte");
}

#[test]
fn a_reinstatement_recorded_before_reinstatements_had_reasons_still_decodes() {
    let old = r#"{"operator": "alice", "occurred_at": "2026-05-01T12:00:00Z"}"#;
    let Event::MemberReinstated(r) = schema::decode("MemberReinstated", 1, old.as_bytes()).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(r.reason_code, None);
    let new = r#"{"reason_code": "appeal-upheld", "operator": "alice",
        "occurred_at": "2026-05-01T12:00:00Z"}"#;
    let Event::MemberReinstated(r) = schema::decode("MemberReinstated", 1, new.as_bytes()).unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(r.reason_code.unwrap().as_str(), "appeal-upheld");
}

/// An expiry notice as v1 stores it: this must stay readable for as long as history exists
/// (the webhooks read it to send `points.expiring`).
const EXPIRY_NOTIFIED_V1: &str = r#"{
  "occurred_at": "2027-01-17T23:00:00.250Z",
  "lots": [
    {"lot_id": "welcome:M1", "points": 50, "expires_at": "2027-01-31T23:00:00Z"},
    {"lot_id": "purchase:S1:T1", "points": 70, "expires_at": "2027-01-31T23:00:00Z"}
  ]
}"#;

#[test]
fn a_hand_written_v1_expiry_notice_decodes_and_encodes_back_to_the_same_document() {
    let event = schema::decode("ExpiryNotified", 1, EXPIRY_NOTIFIED_V1.as_bytes()).unwrap();
    let Event::ExpiryNotified(notice) = &event else {
        panic!("wrong variant");
    };
    assert_eq!(notice.occurred_at, t("2027-01-17T23:00:00.250Z"));
    assert_eq!(
        notice.lots,
        vec![
            NotifiedLot {
                lot_id: lot("welcome:M1"),
                points: p(50),
                expires_at: t("2027-01-31T23:00:00Z"),
            },
            NotifiedLot {
                lot_id: lot("purchase:S1:T1"),
                points: p(70),
                expires_at: t("2027-01-31T23:00:00Z"),
            },
        ]
    );
    let stored = schema::encode(&event);
    assert_eq!(stored.event_type, "ExpiryNotified");
    let written: serde_json::Value = serde_json::from_slice(&stored.data).unwrap();
    let expected: serde_json::Value = serde_json::from_str(EXPIRY_NOTIFIED_V1).unwrap();
    assert_eq!(written, expected);
}

#[test]
fn an_unknown_type_or_version_is_its_own_error() {
    assert!(matches!(
        schema::decode("PointsTeleported", 1, b"{}"),
        Err(SchemaError::UnknownEventType { .. })
    ));
    assert!(matches!(
        schema::decode("PointsRedeemed", 2, b"{}"),
        Err(SchemaError::UnknownVersion { version: 2, .. })
    ));
}

#[test]
fn a_malformed_document_is_refused_with_the_reason() {
    let bad_id = PURCHASE_V1.replace("T-2026-0001\"", "T 2026 0001\"");
    let err = schema::decode("PurchaseRecorded", 1, bad_id.as_bytes()).unwrap_err();
    assert!(matches!(err, SchemaError::Malformed { .. }), "{err:?}");
    let float = PURCHASE_V1.replace(
        "\"points\": 6,\n  \"eligible",
        "\"points\": 6.5,\n  \"eligible",
    );
    assert!(schema::decode("PurchaseRecorded", 1, float.as_bytes()).is_err());
}
