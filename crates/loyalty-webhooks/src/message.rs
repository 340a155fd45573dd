//! Integration events: the public, versioned schema of what the webhooks send, kept apart from
//! the stored events (which evolve on their own).
//!
//! A stored member event becomes at most one message. Its body (schema version 1):
//!
//! ```json
//! {"id":"msg_0f6c...","type":"purchase.recorded","version":1,
//!  "timestamp":"2026-03-01T10:00:00Z","member_id":"alice","position":"42/42",
//!  "data":{...}}
//! ```
//!
//! - `id` is `msg_` and the source event's id (32 hex digits): the same on every attempt, every
//!   replay and every server, so a receiver deduplicates on it (it is also the `webhook-id`);
//! - `timestamp` is when the event was recorded (the server's clock), RFC 3339;
//! - `position` is the event's place in the log (`commit/prepare`), which orders one member's
//!   messages and is what a replay starts after;
//! - `data` depends on `type` (the structs below). Points are JSON integers, money amounts
//!   decimal strings (`"12.50"`), instants RFC 3339 strings, ids strings. Optional fields are
//!   present with `null`.
//!
//! Compatibility: within version 1, fields may be added (receivers ignore unknown fields) but
//! never removed or changed in meaning; a change of meaning is a new `version`.
//!
//! Domain → integration type: `Enrolled` → `member.enrolled`, `PurchaseRecorded` →
//! `purchase.recorded`, `RefundRecorded` → `refund.recorded`, `PointsRedeemed` →
//! `reward.redeemed`, `RedemptionCancelled` → `redemption.cancelled`, `TierChanged` →
//! `tier.changed`, `PointsExpired` → `points.expired`, `ExpiryNotified` → `points.expiring`.
//! Other events (adjustments, referrals, suspensions...) send nothing yet.

use chrono::{DateTime, Utc};
use loyalty_core::{Event, LotExpiry, Points, TierRef};
use loyalty_engine::NewerSchemaEvent;
use loyalty_store::{Bytes, Position, RecordedEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::WebhookError;
use crate::endpoint::EventType;

/// The version of the payload schema this server sends.
pub const PAYLOAD_VERSION: u32 = 1;

/// The stored event types that make a message, and the message's type (checked before
/// decoding: most of `$all`, and every type an endpoint does not want, is skipped without
/// parsing a byte).
const MAPPED_TYPES: &[(&str, EventType)] = &[
    ("Enrolled", EventType::MemberEnrolled),
    ("PurchaseRecorded", EventType::PurchaseRecorded),
    ("RefundRecorded", EventType::RefundRecorded),
    ("PointsRedeemed", EventType::RewardRedeemed),
    ("RedemptionCancelled", EventType::RedemptionCancelled),
    ("TierChanged", EventType::TierChanged),
    ("PointsExpired", EventType::PointsExpired),
    ("ExpiryNotified", EventType::PointsExpiring),
];

/// The integration type a stored event type makes, if any.
pub fn integration_type(stored_type: &str) -> Option<EventType> {
    MAPPED_TYPES
        .iter()
        .find(|(stored, _)| *stored == stored_type)
        .map(|(_, t)| *t)
}

/// One integration event, ready to send: its payload is encoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `msg_` and the source event's uuid in simple (32 hex) form: stable.
    pub id: String,
    pub event_type: EventType,
    pub member_id: String,
    /// The source event's position in `$all`.
    pub position: Position,
    /// The source event's `recorded_at` (its metadata).
    pub recorded_at: DateTime<Utc>,
    /// The JSON body.
    pub payload: Bytes,
}

/// The body of every message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D> {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub version: u32,
    pub timestamp: DateTime<Utc>,
    pub member_id: String,
    /// `commit/prepare`.
    pub position: String,
    pub data: D,
}

/// A tier, by its place in the program's list (0 is the lowest) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub index: u32,
    pub name: String,
}

impl From<&TierRef> for Tier {
    fn from(tier: &TierRef) -> Tier {
        Tier {
            index: tier.index,
            name: tier.name.clone(),
        }
    }
}

/// `member.enrolled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEnrolledData {
    pub enrolled_at: DateTime<Utc>,
    pub tier: Tier,
    /// The member who referred this one.
    pub referred_by: Option<String>,
    /// The welcome bonus (0 when the program gives none).
    pub welcome_points: i64,
    /// When the welcome points can be spent.
    pub welcome_spendable_from: Option<DateTime<Utc>>,
}

/// One line of a purchase: what it cost and what it earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseLine {
    pub sku: String,
    pub category: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub points: i64,
}

/// `purchase.recorded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRecordedData {
    pub store: String,
    pub terminal: String,
    pub transaction_id: String,
    /// Business time at the till.
    pub occurred_at: DateTime<Utc>,
    pub currency: String,
    /// Sum of the lines' amounts.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The part that counts as qualifying spend (excluded categories left out).
    #[serde(with = "rust_decimal::serde::str")]
    pub eligible_amount: Decimal,
    /// Points awarded.
    pub points: i64,
    /// Of `points`, those that repaid a debt first (the rest went to the balance).
    pub debt_repaid: i64,
    /// When the points can be spent (`null` when the purchase earned nothing).
    pub spendable_from: Option<DateTime<Utc>>,
    /// When they expire, if on a date.
    pub expires_at: Option<DateTime<Utc>>,
    pub campaigns: Vec<String>,
    pub lines: Vec<PurchaseLine>,
}

/// `refund.recorded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecordedData {
    pub refund_id: String,
    /// The store that took the return (`null` in old events).
    pub store: Option<String>,
    /// The original sale: its store (`null` in old events) and transaction.
    pub purchase_store: Option<String>,
    pub transaction_id: String,
    pub occurred_at: DateTime<Utc>,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub eligible_amount: Decimal,
    /// Points the refund takes back.
    pub points: i64,
    /// Of those, taken from the balance or as a debt.
    pub points_taken: i64,
    /// Of those taken, recorded as a debt (the balance did not hold them).
    pub debt_added: i64,
    /// Not taken at all (the program does not allow a negative balance).
    pub shortfall: i64,
    /// Every point the purchase earned has now been taken back.
    pub completes_purchase: bool,
}

/// `reward.redeemed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRedeemedData {
    pub redemption_id: String,
    pub reward_id: Option<String>,
    pub points: i64,
    pub occurred_at: DateTime<Utc>,
}

/// `redemption.cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionCancelledData {
    pub redemption_id: String,
    /// Points given back (those of lots that expired meanwhile are then expired at once, each
    /// with its own `points.expired`).
    pub points_restored: i64,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierDirection {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierChangeReason {
    /// The qualifying value crossed a higher threshold.
    ThresholdReached,
    /// A periodic review.
    Review,
}

/// `tier.changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChangedData {
    pub from: Tier,
    pub to: Tier,
    pub direction: TierDirection,
    pub reason: TierChangeReason,
    /// The qualifying value (spend or points, as the program counts it) that decided.
    #[serde(with = "rust_decimal::serde::str")]
    pub qualifying_value: Decimal,
    pub occurred_at: DateTime<Utc>,
}

/// `points.expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsExpiredData {
    pub lot_id: String,
    pub points: i64,
    /// When the lot expired (its date, or the inactivity deadline).
    pub expired_at: DateTime<Utc>,
}

/// One lot in a `points.expiring` notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringLot {
    pub lot_id: String,
    /// Points left in the lot at the notice.
    pub points: i64,
    pub expires_at: DateTime<Utc>,
}

/// `points.expiring`: a notice, some days ahead, that points will expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsExpiringData {
    pub lots: Vec<ExpiringLot>,
    /// Sum of the lots' points.
    pub points: i64,
    /// The soonest of the lots' expiries (`null` only for a notice without lots, which the
    /// engine never records).
    pub earliest_expires_at: Option<DateTime<Utc>>,
    /// When the notice was recorded (the server's clock).
    pub notified_at: DateTime<Utc>,
}

/// The `data` of a message, by type (serialised as the struct alone: `type` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MessageData {
    MemberEnrolled(MemberEnrolledData),
    PurchaseRecorded(PurchaseRecordedData),
    RefundRecorded(RefundRecordedData),
    RewardRedeemed(RewardRedeemedData),
    RedemptionCancelled(RedemptionCancelledData),
    TierChanged(TierChangedData),
    PointsExpired(PointsExpiredData),
    PointsExpiring(PointsExpiringData),
}

impl MessageData {
    pub fn event_type(&self) -> EventType {
        match self {
            MessageData::MemberEnrolled(_) => EventType::MemberEnrolled,
            MessageData::PurchaseRecorded(_) => EventType::PurchaseRecorded,
            MessageData::RefundRecorded(_) => EventType::RefundRecorded,
            MessageData::RewardRedeemed(_) => EventType::RewardRedeemed,
            MessageData::RedemptionCancelled(_) => EventType::RedemptionCancelled,
            MessageData::TierChanged(_) => EventType::TierChanged,
            MessageData::PointsExpired(_) => EventType::PointsExpired,
            MessageData::PointsExpiring(_) => EventType::PointsExpiring,
        }
    }
}

fn pts(points: Points) -> i64 {
    points.value()
}

/// Sums points without wrapping (the log's points are bounded far below `i64`, but a corrupt
/// event must not panic the dispatcher).
fn sum(points: impl IntoIterator<Item = Points>) -> i64 {
    points
        .into_iter()
        .fold(Points::ZERO, Points::saturating_add)
        .value()
}

/// The integration data a domain event makes, if any (pure: the mapping, apart from reading
/// the store).
pub fn data_of(event: &Event) -> Option<MessageData> {
    Some(match event {
        Event::Enrolled(e) => MessageData::MemberEnrolled(MemberEnrolledData {
            enrolled_at: e.enrolled_at,
            tier: Tier::from(&e.tier),
            referred_by: e.referrer.as_ref().map(|m| m.as_str().to_owned()),
            welcome_points: e.welcome.as_ref().map_or(0, |c| pts(c.points)),
            welcome_spendable_from: e.welcome.as_ref().map(|c| c.spendable_from),
        }),
        Event::PurchaseRecorded(e) => MessageData::PurchaseRecorded(PurchaseRecordedData {
            store: e.store.as_str().to_owned(),
            terminal: e.terminal.as_str().to_owned(),
            transaction_id: e.transaction_id.as_str().to_owned(),
            occurred_at: e.occurred_at,
            currency: e.currency.as_str().to_owned(),
            amount: e.lines.iter().map(|l| l.amount).sum(),
            eligible_amount: e.eligible_amount,
            points: pts(e.points),
            debt_repaid: e.credit.as_ref().map_or(0, |c| pts(c.debt_repaid)),
            spendable_from: e.credit.as_ref().map(|c| c.spendable_from),
            expires_at: e.credit.as_ref().and_then(|c| match c.expiry {
                LotExpiry::At(at) => Some(at),
                LotExpiry::OnInactivity | LotExpiry::Never => None,
            }),
            campaigns: e
                .campaigns_applied
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            lines: e
                .lines
                .iter()
                .map(|l| PurchaseLine {
                    sku: l.sku.as_str().to_owned(),
                    category: l.category.as_str().to_owned(),
                    quantity: l.quantity,
                    amount: l.amount,
                    points: pts(l.points),
                })
                .collect(),
        }),
        Event::RefundRecorded(e) => MessageData::RefundRecorded(RefundRecordedData {
            refund_id: e.refund_id.as_str().to_owned(),
            store: e.store.as_ref().map(|s| s.as_str().to_owned()),
            purchase_store: e.purchase_store.as_ref().map(|s| s.as_str().to_owned()),
            transaction_id: e.transaction_id.as_str().to_owned(),
            occurred_at: e.occurred_at,
            currency: e.currency.as_str().to_owned(),
            amount: e.amount,
            eligible_amount: e.eligible_amount,
            points: pts(e.points),
            points_taken: pts(e.debit.taken()),
            debt_added: pts(e.debit.debt_added),
            shortfall: pts(e.debit.shortfall),
            completes_purchase: e.completes_purchase,
        }),
        Event::PointsRedeemed(e) => MessageData::RewardRedeemed(RewardRedeemedData {
            redemption_id: e.redemption_id.as_str().to_owned(),
            reward_id: e.reward_id.as_ref().map(|r| r.as_str().to_owned()),
            points: pts(e.points),
            occurred_at: e.occurred_at,
        }),
        Event::RedemptionCancelled(e) => {
            MessageData::RedemptionCancelled(RedemptionCancelledData {
                redemption_id: e.redemption_id.as_str().to_owned(),
                points_restored: sum(e.restored.iter().map(|d| d.points)),
                occurred_at: e.occurred_at,
            })
        }
        Event::TierChanged(e) => MessageData::TierChanged(TierChangedData {
            from: Tier::from(&e.from),
            to: Tier::from(&e.to),
            direction: if e.to.index >= e.from.index {
                TierDirection::Up
            } else {
                TierDirection::Down
            },
            reason: match e.reason {
                loyalty_core::TierChangeReason::ThresholdReached => {
                    TierChangeReason::ThresholdReached
                }
                loyalty_core::TierChangeReason::Review => TierChangeReason::Review,
            },
            qualifying_value: e.qualifying_value,
            occurred_at: e.occurred_at,
        }),
        Event::PointsExpired(e) => MessageData::PointsExpired(PointsExpiredData {
            lot_id: e.lot_id.as_str().to_owned(),
            points: pts(e.points),
            expired_at: e.expired_at,
        }),
        Event::ExpiryNotified(e) => MessageData::PointsExpiring(PointsExpiringData {
            lots: e
                .lots
                .iter()
                .map(|l| ExpiringLot {
                    lot_id: l.lot_id.as_str().to_owned(),
                    points: pts(l.points),
                    expires_at: l.expires_at,
                })
                .collect(),
            points: sum(e.lots.iter().map(|l| l.points)),
            earliest_expires_at: e.lots.iter().map(|l| l.expires_at).min(),
            notified_at: e.occurred_at,
        }),
        _ => return None,
    })
}

/// The part of the engine's metadata a message needs: read on its own, so that metadata
/// gaining or losing other fields never stops deliveries.
#[derive(Deserialize)]
struct RecordedAt {
    recorded_at: DateTime<Utc>,
}

/// The member a stream belongs to, for `member-<id>` streams.
pub fn member_of(stream: &str) -> Option<&str> {
    stream
        .strip_prefix(loyalty_engine::streams::MEMBER_PREFIX)
        .filter(|id| !id.is_empty())
}

/// The message a stored event makes, if any: only `member-<id>` streams, only event types with
/// an integration event; `Ok(None)` for everything else (also for foreign events with schema
/// version 0). Errors for an undecodable member event, and [`WebhookError::NewerSchema`] for
/// one a newer release wrote (an older server in a rolling upgrade cannot read it, and a
/// message left out would never be sent: the caller stops there, as the read models do).
pub fn from_recorded(event: &RecordedEvent) -> Result<Option<Message>, WebhookError> {
    let Some(member_id) = member_of(&event.stream) else {
        return Ok(None);
    };
    if integration_type(&event.event_type).is_none() || event.schema_version == 0 {
        return Ok(None);
    }
    if let Some(newest_known) = loyalty_core::schema::newest_version(&event.event_type)
        .filter(|newest| event.schema_version > *newest)
    {
        return Err(WebhookError::NewerSchema(NewerSchemaEvent {
            stream: event.stream.clone(),
            revision: event.revision,
            position: event.position,
            event_type: event.event_type.clone(),
            version: event.schema_version,
            newest_known,
        }));
    }
    let domain = loyalty_core::schema::decode(&event.event_type, event.schema_version, &event.data)
        .map_err(|e| corrupt(event, &e.to_string()))?;
    let Some(data) = data_of(&domain) else {
        return Ok(None);
    };
    let recorded_at = serde_json::from_slice::<RecordedAt>(&event.metadata)
        .map_err(|e| corrupt(event, &format!("metadata: {e}")))?
        .recorded_at;
    let id = message_id(event.id);
    let event_type = data.event_type();
    let envelope = Envelope {
        id: id.clone(),
        event_type,
        version: PAYLOAD_VERSION,
        timestamp: recorded_at,
        member_id: member_id.to_owned(),
        position: event.position.to_string(),
        data,
    };
    let payload = serde_json::to_vec(&envelope)
        .map_err(|e| corrupt(event, &format!("encoding the payload: {e}")))?;
    Ok(Some(Message {
        id,
        event_type,
        member_id: member_id.to_owned(),
        position: event.position,
        recorded_at,
        payload: Bytes::from(payload),
    }))
}

/// The message id of a stored event.
pub fn message_id(event_id: uuid::Uuid) -> String {
    format!("msg_{}", event_id.simple())
}

fn corrupt(event: &RecordedEvent, why: &str) -> WebhookError {
    WebhookError::Corrupt(format!(
        "{} event {} at {}: {why}",
        event.event_type, event.id, event.position
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use loyalty_core::{
        CategoryId, Credit, Currency, Debit, Enrolled, ExpiryNotified, LineAward, LotDraw, LotId,
        MemberId, NotifiedLot, PointsExpired, PointsRedeemed, PurchaseRecorded,
        RedemptionCancelled, RedemptionId, RefundId, RefundRecorded, RewardId, Sku, StoreId,
        TerminalId, TierChanged, TransactionId,
    };
    use loyalty_engine::EventMetadata;
    use rust_decimal::Decimal;
    use serde_json::{Value, json};

    use super::*;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 10, 0, 0).unwrap()
    }

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn lot(id: &str) -> LotId {
        LotId::parse(id).unwrap()
    }

    fn tier(index: u32, name: &str) -> TierRef {
        TierRef {
            index,
            name: name.into(),
        }
    }

    fn credit(points: i64, debt_repaid: i64, expiry: LotExpiry) -> Credit {
        Credit {
            lot_id: lot("lot-1"),
            points: Points::new(points),
            debt_repaid: Points::new(debt_repaid),
            earned_at: t(1),
            spendable_from: t(15),
            expiry,
            activity_deadline: None,
        }
    }

    /// The event as the engine stores it, on `stream`, recorded on day 2.
    fn recorded_on(stream: &str, event: &Event) -> RecordedEvent {
        let stored = loyalty_core::schema::encode(event);
        let metadata = EventMetadata {
            client_id: "c-1".into(),
            command: "Test".into(),
            correlation_id: None,
            causation_id: None,
            occurred_at: event.occurred_at(),
            recorded_at: t(2),
            rules_version: "test-1".into(),
            actor: None,
        };
        RecordedEvent {
            stream: stream.into(),
            revision: 3,
            position: Position::new(42, 41),
            id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            event_type: stored.event_type.into(),
            schema_version: stored.schema_version,
            data: Bytes::from(stored.data),
            metadata: Bytes::from(serde_json::to_vec(&metadata).unwrap()),
        }
    }

    fn recorded(event: &Event) -> RecordedEvent {
        recorded_on("member-alice", event)
    }

    /// The message of a member event, and its body as JSON.
    fn message_of(event: &Event) -> (Message, Value) {
        let stored = recorded(event);
        let message = from_recorded(&stored)
            .expect("decodes")
            .expect("makes a message");
        // The type the dispatcher filters on before decoding is the one the message has.
        assert_eq!(
            integration_type(&stored.event_type),
            Some(message.event_type)
        );
        let body: Value = serde_json::from_slice(&message.payload).unwrap();
        (message, body)
    }

    #[test]
    fn the_envelope_carries_a_stable_id_the_type_version_time_member_and_position() {
        let event = Event::PointsExpired(PointsExpired {
            lot_id: lot("lot-9"),
            points: Points::new(120),
            expired_at: t(1),
            occurred_at: t(2),
        });
        let (message, body) = message_of(&event);
        let id = "msg_0123456789abcdef0123456789abcdef";
        assert_eq!(message.id, id);
        assert_eq!(message.event_type, EventType::PointsExpired);
        assert_eq!(message.member_id, "alice");
        assert_eq!(message.position, Position::new(42, 41));
        assert_eq!(message.recorded_at, t(2));
        assert_eq!(
            body,
            json!({
                "id": id,
                "type": "points.expired",
                "version": 1,
                "timestamp": "2026-03-02T10:00:00Z",
                "member_id": "alice",
                "position": "42/41",
                "data": {"lot_id": "lot-9", "points": 120, "expired_at": "2026-03-01T10:00:00Z"},
            })
        );
        // The same stored event makes the same bytes (a redelivery sends what was signed).
        let again = from_recorded(&recorded(&event)).unwrap().unwrap();
        assert_eq!(again.payload, message.payload);
    }

    #[test]
    fn an_enrolment_is_a_member_enrolled_with_the_tier_referrer_and_welcome_bonus() {
        let event = Event::Enrolled(Enrolled {
            member_id: MemberId::parse("alice").unwrap(),
            referrer: Some(MemberId::parse("rita").unwrap()),
            enrolled_at: t(1),
            tier: tier(0, "Bronze"),
            welcome: Some(credit(10, 0, LotExpiry::Never)),
            rules_version: "test-1".into(),
            fingerprint: "f".into(),
        });
        let (message, body) = message_of(&event);
        assert_eq!(message.event_type, EventType::MemberEnrolled);
        assert_eq!(body["type"], "member.enrolled");
        assert_eq!(
            body["data"],
            json!({
                "enrolled_at": "2026-03-01T10:00:00Z",
                "tier": {"index": 0, "name": "Bronze"},
                "referred_by": "rita",
                "welcome_points": 10,
                "welcome_spendable_from": "2026-03-15T10:00:00Z",
            })
        );
    }

    fn purchase(credit: Option<Credit>) -> Event {
        Event::PurchaseRecorded(PurchaseRecorded {
            transaction_id: TransactionId::parse("T-1").unwrap(),
            store: StoreId::parse("store-1").unwrap(),
            terminal: TerminalId::parse("till-2").unwrap(),
            occurred_at: t(1),
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![
                LineAward {
                    sku: Sku::parse("beans").unwrap(),
                    category: CategoryId::parse("coffee").unwrap(),
                    quantity: dec("2"),
                    amount: dec("12.50"),
                    eligible_amount: dec("12.50"),
                    rules: vec![],
                    points: Points::new(12),
                },
                LineAward {
                    sku: Sku::parse("card").unwrap(),
                    category: CategoryId::parse("gift-card").unwrap(),
                    quantity: dec("1"),
                    amount: dec("20.00"),
                    eligible_amount: dec("0"),
                    rules: vec![],
                    points: Points::ZERO,
                },
            ],
            transaction_rules: vec![],
            points: Points::new(12),
            eligible_amount: dec("12.50"),
            campaigns_applied: vec![loyalty_core::CampaignId::parse("easter").unwrap()],
            credit,
            activity_deadline: None,
            rules_version: "test-1".into(),
            fingerprint: "f".into(),
        })
    }

    #[test]
    fn a_purchase_is_a_purchase_recorded_with_amounts_as_strings_and_points_as_integers() {
        let event = purchase(Some(credit(12, 2, LotExpiry::At(t(28)))));
        let (message, body) = message_of(&event);
        assert_eq!(message.event_type, EventType::PurchaseRecorded);
        assert_eq!(
            body["data"],
            json!({
                "store": "store-1",
                "terminal": "till-2",
                "transaction_id": "T-1",
                "occurred_at": "2026-03-01T10:00:00Z",
                "currency": "EUR",
                "amount": "32.50",
                "eligible_amount": "12.50",
                "points": 12,
                "debt_repaid": 2,
                "spendable_from": "2026-03-15T10:00:00Z",
                "expires_at": "2026-03-28T10:00:00Z",
                "campaigns": ["easter"],
                "lines": [
                    {"sku": "beans", "category": "coffee", "quantity": "2", "amount": "12.50", "points": 12},
                    {"sku": "card", "category": "gift-card", "quantity": "1", "amount": "20.00", "points": 0},
                ],
            })
        );
    }

    #[test]
    fn a_purchase_that_earned_nothing_has_no_spendable_date() {
        let (_, body) = message_of(&purchase(None));
        assert_eq!(body["data"]["spendable_from"], Value::Null);
        assert_eq!(body["data"]["expires_at"], Value::Null);
        assert_eq!(body["data"]["debt_repaid"], 0);
    }

    #[test]
    fn a_refund_is_a_refund_recorded_with_the_points_taken_back() {
        let event = Event::RefundRecorded(RefundRecorded {
            refund_id: RefundId::parse("R-1").unwrap(),
            store: Some(StoreId::parse("store-2").unwrap()),
            purchase_store: Some(StoreId::parse("store-1").unwrap()),
            transaction_id: TransactionId::parse("T-1").unwrap(),
            occurred_at: t(3),
            currency: Currency::parse("EUR").unwrap(),
            lines: vec![],
            transaction_points: Points::ZERO,
            points: Points::new(12),
            amount: dec("12.50"),
            eligible_amount: dec("12.50"),
            debit: Debit {
                draws: vec![LotDraw {
                    lot_id: lot("lot-1"),
                    points: Points::new(7),
                }],
                debt_added: Points::new(3),
                shortfall: Points::new(2),
            },
            completes_purchase: true,
            fingerprint: "f".into(),
        });
        let (message, body) = message_of(&event);
        assert_eq!(message.event_type, EventType::RefundRecorded);
        assert_eq!(
            body["data"],
            json!({
                "refund_id": "R-1",
                "store": "store-2",
                "purchase_store": "store-1",
                "transaction_id": "T-1",
                "occurred_at": "2026-03-03T10:00:00Z",
                "currency": "EUR",
                "amount": "12.50",
                "eligible_amount": "12.50",
                "points": 12,
                "points_taken": 10,
                "debt_added": 3,
                "shortfall": 2,
                "completes_purchase": true,
            })
        );
    }

    #[test]
    fn a_redemption_and_its_cancellation_are_reward_redeemed_and_redemption_cancelled() {
        let redeemed = Event::PointsRedeemed(PointsRedeemed {
            redemption_id: RedemptionId::parse("X-1").unwrap(),
            reward_id: Some(RewardId::parse("coffee").unwrap()),
            points: Points::new(30),
            draws: vec![],
            occurred_at: t(4),
            activity_deadline: None,
            fingerprint: "f".into(),
        });
        let (message, body) = message_of(&redeemed);
        assert_eq!(message.event_type, EventType::RewardRedeemed);
        assert_eq!(
            body["data"],
            json!({"redemption_id": "X-1", "reward_id": "coffee", "points": 30,
                   "occurred_at": "2026-03-04T10:00:00Z"})
        );
        let cancelled = Event::RedemptionCancelled(RedemptionCancelled {
            redemption_id: RedemptionId::parse("X-1").unwrap(),
            restored: vec![
                LotDraw {
                    lot_id: lot("lot-1"),
                    points: Points::new(20),
                },
                LotDraw {
                    lot_id: lot("lot-2"),
                    points: Points::new(10),
                },
            ],
            occurred_at: t(5),
            fingerprint: "f".into(),
        });
        let (message, body) = message_of(&cancelled);
        assert_eq!(message.event_type, EventType::RedemptionCancelled);
        assert_eq!(
            body["data"],
            json!({"redemption_id": "X-1", "points_restored": 30,
                   "occurred_at": "2026-03-05T10:00:00Z"})
        );
    }

    #[test]
    fn a_tier_change_says_its_direction_and_reason() {
        let change = |from: TierRef, to: TierRef, reason| {
            Event::TierChanged(TierChanged {
                from,
                to,
                reason,
                qualifying_value: dec("150.00"),
                occurred_at: t(6),
                review_at: None,
                rules_version: "test-1".into(),
            })
        };
        let up = change(
            tier(0, "Bronze"),
            tier(1, "Silver"),
            loyalty_core::TierChangeReason::ThresholdReached,
        );
        let (message, body) = message_of(&up);
        assert_eq!(message.event_type, EventType::TierChanged);
        assert_eq!(
            body["data"],
            json!({
                "from": {"index": 0, "name": "Bronze"},
                "to": {"index": 1, "name": "Silver"},
                "direction": "up",
                "reason": "threshold_reached",
                "qualifying_value": "150.00",
                "occurred_at": "2026-03-06T10:00:00Z",
            })
        );
        let down = change(
            tier(1, "Silver"),
            tier(0, "Bronze"),
            loyalty_core::TierChangeReason::Review,
        );
        let (_, body) = message_of(&down);
        assert_eq!(body["data"]["direction"], "down");
        assert_eq!(body["data"]["reason"], "review");
    }

    #[test]
    fn an_expiry_notice_is_points_expiring_with_its_lots_total_and_earliest_expiry() {
        let event = Event::ExpiryNotified(ExpiryNotified {
            occurred_at: t(7),
            lots: vec![
                NotifiedLot {
                    lot_id: lot("lot-1"),
                    points: Points::new(40),
                    expires_at: t(20),
                },
                NotifiedLot {
                    lot_id: lot("lot-2"),
                    points: Points::new(5),
                    expires_at: t(21),
                },
            ],
        });
        let (message, body) = message_of(&event);
        assert_eq!(message.event_type, EventType::PointsExpiring);
        assert_eq!(
            body["data"],
            json!({
                "lots": [
                    {"lot_id": "lot-1", "points": 40, "expires_at": "2026-03-20T10:00:00Z"},
                    {"lot_id": "lot-2", "points": 5, "expires_at": "2026-03-21T10:00:00Z"},
                ],
                "points": 45,
                "earliest_expires_at": "2026-03-20T10:00:00Z",
                "notified_at": "2026-03-07T10:00:00Z",
            })
        );
    }

    #[test]
    fn each_integration_type_has_exactly_one_stored_source_type() {
        // The tests above map one event of each stored type listed; this keeps the list and
        // the public types in step when either grows.
        let made: std::collections::BTreeSet<&str> =
            MAPPED_TYPES.iter().map(|(stored, _)| *stored).collect();
        assert_eq!(
            made.len(),
            MAPPED_TYPES.len(),
            "a stored type is listed twice"
        );
        assert_eq!(MAPPED_TYPES.len(), EventType::ALL.len());
        let types: std::collections::BTreeSet<EventType> =
            MAPPED_TYPES.iter().map(|(_, t)| *t).collect();
        assert_eq!(types.len(), EventType::ALL.len(), "each public type once");
    }

    #[test]
    fn unmapped_events_and_other_streams_make_no_message() {
        let suspended = Event::MemberSuspended(loyalty_core::MemberSuspended {
            reason_code: loyalty_core::ReasonCode::parse("fraud").unwrap(),
            operator: loyalty_core::OperatorId::parse("op-1").unwrap(),
            occurred_at: t(1),
        });
        assert_eq!(from_recorded(&recorded(&suspended)).unwrap(), None);
        let expired = Event::PointsExpired(PointsExpired {
            lot_id: lot("lot-9"),
            points: Points::new(1),
            expired_at: t(1),
            occurred_at: t(2),
        });
        for stream in ["txn-T-1", "checkpoint-referrals", "webhooks", "member-"] {
            assert_eq!(
                from_recorded(&recorded_on(stream, &expired)).unwrap(),
                None,
                "{stream}"
            );
        }
    }

    #[test]
    fn foreign_events_are_skipped_but_a_newer_or_corrupt_member_event_is_an_error() {
        let expired = Event::PointsExpired(PointsExpired {
            lot_id: lot("lot-9"),
            points: Points::new(1),
            expired_at: t(1),
            occurred_at: t(2),
        });
        let mut foreign = recorded(&expired);
        foreign.schema_version = 0;
        assert_eq!(from_recorded(&foreign).unwrap(), None);
        // A newer release's event is named, so that deliveries stop before it
        let mut newer = recorded(&expired);
        newer.schema_version = loyalty_core::schema::CURRENT_SCHEMA_VERSION + 1;
        match from_recorded(&newer) {
            Err(WebhookError::NewerSchema(named)) => {
                assert_eq!(named.stream, newer.stream);
                assert_eq!(named.revision, newer.revision);
                assert_eq!(named.event_type, "PointsExpired");
                assert_eq!(named.version, newer.schema_version);
                assert_eq!(
                    Some(named.newest_known),
                    loyalty_core::schema::newest_version("PointsExpired")
                );
            }
            other => panic!("not refused as newer: {other:?}"),
        }
        let mut corrupt = recorded(&expired);
        corrupt.data = Bytes::from_static(b"{\"lot_id\":");
        assert!(matches!(
            from_recorded(&corrupt),
            Err(WebhookError::Corrupt(_))
        ));
        let mut no_metadata = recorded(&expired);
        no_metadata.metadata = Bytes::from_static(b"{}");
        assert!(matches!(
            from_recorded(&no_metadata),
            Err(WebhookError::Corrupt(_))
        ));
    }
}
