//! Schema version 1 of every event type.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::command::RevocationReason;
use crate::event::{self as ev, Event};
use crate::ids::{
    ActivityId, ActivityKind, AdjustmentId, CampaignId, CategoryId, LotId, MemberId, OperatorId,
    ReasonCode, RedemptionId, RefundId, RewardId, Sku, StoreId, TerminalId, TransactionId,
};
use crate::money::Currency;
use crate::points::Points;

type Instant = DateTime<Utc>;

/// Reading stored timestamps. chrono writes them as RFC 3339, and its fixed-format RFC 3339
/// parser reads them several times faster than the general parser its serde support uses,
/// which was a tenth of the time replay spent decoding. Anything the fixed-format parser
/// refuses goes to the general parser, so every stored document reads as it did before.
pub(super) mod instant {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    pub(super) fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Ok(t.with_timezone(&Utc)),
            Err(_) => text.parse::<DateTime<Utc>>(),
        }
    }

    struct Rfc3339;

    impl Visitor<'_> for Rfc3339 {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse(text).map_err(E::custom)
        }
    }

    pub(in crate::schema) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(Rfc3339)
    }

    pub(in crate::schema) fn deserialize_opt<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Present(#[serde(deserialize_with = "deserialize")] DateTime<Utc>);
        Ok(Option::<Present>::deserialize(d)?.map(|p| p.0))
    }

    #[cfg(test)]
    mod tests {
        use chrono::{DateTime, Utc};

        #[test]
        fn the_fast_parser_reads_every_timestamp_as_the_general_one_did() {
            for text in [
                "2026-11-23T15:00:00Z",
                "2026-03-29T01:59:59.999999999Z",
                "2026-10-25T02:30:00+02:00",
                "2026-01-31T23:00:00.5-05:30",
                "2024-02-29T00:00:00+00:00",
                "2026-11-23t15:00:00z",
                "2026-11-23 15:00:00Z",
                "2026-11-23T15:00:00",
                "2026-02-30T00:00:00Z",
                "not a time",
            ] {
                assert_eq!(
                    super::parse(text).ok(),
                    text.parse::<DateTime<Utc>>().ok(),
                    "{text}"
                );
            }
        }
    }
}

// ---- shared parts ----

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum LotExpiryV1 {
    At {
        #[serde(deserialize_with = "instant::deserialize")]
        at: Instant,
    },
    OnInactivity,
    Never,
}

#[derive(Serialize, Deserialize)]
pub(super) struct CreditV1 {
    lot_id: LotId,
    points: Points,
    #[serde(default)]
    debt_repaid: Points,
    #[serde(deserialize_with = "instant::deserialize")]
    earned_at: Instant,
    #[serde(deserialize_with = "instant::deserialize")]
    spendable_from: Instant,
    expiry: LotExpiryV1,
    #[serde(default, deserialize_with = "instant::deserialize_opt")]
    activity_deadline: Option<Instant>,
}

#[derive(Serialize, Deserialize)]
struct LotDrawV1 {
    lot_id: LotId,
    points: Points,
}

#[derive(Serialize, Deserialize)]
pub(super) struct DebitV1 {
    draws: Vec<LotDrawV1>,
    #[serde(default)]
    debt_added: Points,
    #[serde(default)]
    shortfall: Points,
}

#[derive(Serialize, Deserialize)]
struct TierRefV1 {
    index: u32,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct RuleAwardV1 {
    rule: String,
    points: Points,
}

#[derive(Serialize, Deserialize)]
struct LineAwardV1 {
    sku: Sku,
    category: CategoryId,
    quantity: Decimal,
    amount: Decimal,
    eligible_amount: Decimal,
    rules: Vec<RuleAwardV1>,
    points: Points,
}

#[derive(Serialize, Deserialize)]
struct RefundedLineV1 {
    line: u32,
    amount: Decimal,
    eligible_amount: Decimal,
    points: Points,
}

impl From<&ev::LotExpiry> for LotExpiryV1 {
    fn from(e: &ev::LotExpiry) -> Self {
        match e {
            ev::LotExpiry::At(at) => LotExpiryV1::At { at: *at },
            ev::LotExpiry::OnInactivity => LotExpiryV1::OnInactivity,
            ev::LotExpiry::Never => LotExpiryV1::Never,
        }
    }
}

impl From<LotExpiryV1> for ev::LotExpiry {
    fn from(e: LotExpiryV1) -> Self {
        match e {
            LotExpiryV1::At { at } => ev::LotExpiry::At(at),
            LotExpiryV1::OnInactivity => ev::LotExpiry::OnInactivity,
            LotExpiryV1::Never => ev::LotExpiry::Never,
        }
    }
}

impl From<&ev::Credit> for CreditV1 {
    fn from(c: &ev::Credit) -> Self {
        CreditV1 {
            lot_id: c.lot_id.clone(),
            points: c.points,
            debt_repaid: c.debt_repaid,
            earned_at: c.earned_at,
            spendable_from: c.spendable_from,
            expiry: (&c.expiry).into(),
            activity_deadline: c.activity_deadline,
        }
    }
}

impl From<CreditV1> for ev::Credit {
    fn from(c: CreditV1) -> Self {
        ev::Credit {
            lot_id: c.lot_id,
            points: c.points,
            debt_repaid: c.debt_repaid,
            earned_at: c.earned_at,
            spendable_from: c.spendable_from,
            expiry: c.expiry.into(),
            activity_deadline: c.activity_deadline,
        }
    }
}

fn draws_v1(d: &[ev::LotDraw]) -> Vec<LotDrawV1> {
    d.iter()
        .map(|d| LotDrawV1 {
            lot_id: d.lot_id.clone(),
            points: d.points,
        })
        .collect()
}

fn draws(d: Vec<LotDrawV1>) -> Vec<ev::LotDraw> {
    d.into_iter()
        .map(|d| ev::LotDraw {
            lot_id: d.lot_id,
            points: d.points,
        })
        .collect()
}

impl From<&ev::Debit> for DebitV1 {
    fn from(d: &ev::Debit) -> Self {
        DebitV1 {
            draws: draws_v1(&d.draws),
            debt_added: d.debt_added,
            shortfall: d.shortfall,
        }
    }
}

impl From<DebitV1> for ev::Debit {
    fn from(d: DebitV1) -> Self {
        ev::Debit {
            draws: draws(d.draws),
            debt_added: d.debt_added,
            shortfall: d.shortfall,
        }
    }
}

impl From<&ev::TierRef> for TierRefV1 {
    fn from(t: &ev::TierRef) -> Self {
        TierRefV1 {
            index: t.index,
            name: t.name.clone(),
        }
    }
}

impl From<TierRefV1> for ev::TierRef {
    fn from(t: TierRefV1) -> Self {
        ev::TierRef {
            index: t.index,
            name: t.name,
        }
    }
}

fn rules_v1(r: &[ev::RuleAward]) -> Vec<RuleAwardV1> {
    r.iter()
        .map(|r| RuleAwardV1 {
            rule: r.rule.clone(),
            points: r.points,
        })
        .collect()
}

fn rules(r: Vec<RuleAwardV1>) -> Vec<ev::RuleAward> {
    r.into_iter()
        .map(|r| ev::RuleAward {
            rule: r.rule,
            points: r.points,
        })
        .collect()
}

// ---- events ----

#[derive(Serialize, Deserialize)]
struct EnrolledV1 {
    member_id: MemberId,
    #[serde(default)]
    referrer: Option<MemberId>,
    #[serde(deserialize_with = "instant::deserialize")]
    enrolled_at: Instant,
    tier: TierRefV1,
    #[serde(default)]
    welcome: Option<CreditV1>,
    rules_version: String,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct PurchaseRecordedV1 {
    transaction_id: TransactionId,
    store: StoreId,
    terminal: TerminalId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    currency: Currency,
    lines: Vec<LineAwardV1>,
    #[serde(default)]
    transaction_rules: Vec<RuleAwardV1>,
    points: Points,
    eligible_amount: Decimal,
    #[serde(default)]
    campaigns_applied: Vec<CampaignId>,
    #[serde(default)]
    credit: Option<CreditV1>,
    #[serde(default, deserialize_with = "instant::deserialize_opt")]
    activity_deadline: Option<Instant>,
    rules_version: String,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct ReferralQualifiedV1 {
    referrer: MemberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<StoreId>,
    transaction_id: TransactionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_purchase: Option<Decimal>,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    #[serde(default)]
    newcomer_credit: Option<CreditV1>,
    referrer_points: Points,
    rules_version: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TierChangeReasonV1 {
    ThresholdReached,
    Review,
}

#[derive(Serialize, Deserialize)]
struct TierChangedV1 {
    from: TierRefV1,
    to: TierRefV1,
    reason: TierChangeReasonV1,
    qualifying_value: Decimal,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    #[serde(default, deserialize_with = "instant::deserialize_opt")]
    review_at: Option<Instant>,
    rules_version: String,
}

#[derive(Serialize, Deserialize)]
struct RefundRecordedV1 {
    refund_id: RefundId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<StoreId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    purchase_store: Option<StoreId>,
    transaction_id: TransactionId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    currency: Currency,
    lines: Vec<RefundedLineV1>,
    transaction_points: Points,
    points: Points,
    amount: Decimal,
    eligible_amount: Decimal,
    debit: DebitV1,
    completes_purchase: bool,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct PointsRedeemedV1 {
    redemption_id: RedemptionId,
    #[serde(default)]
    reward_id: Option<RewardId>,
    points: Points,
    draws: Vec<LotDrawV1>,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    #[serde(default, deserialize_with = "instant::deserialize_opt")]
    activity_deadline: Option<Instant>,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct RedemptionCancelledV1 {
    redemption_id: RedemptionId,
    restored: Vec<LotDrawV1>,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct PointsExpiredV1 {
    lot_id: LotId,
    points: Points,
    #[serde(deserialize_with = "instant::deserialize")]
    expired_at: Instant,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
}

#[derive(Serialize, Deserialize)]
struct NotifiedLotV1 {
    lot_id: LotId,
    points: Points,
    #[serde(deserialize_with = "instant::deserialize")]
    expires_at: Instant,
}

#[derive(Serialize, Deserialize)]
struct ExpiryNotifiedV1 {
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    lots: Vec<NotifiedLotV1>,
}

#[derive(Serialize, Deserialize)]
struct ActivityRewardedV1 {
    activity_id: ActivityId,
    kind: ActivityKind,
    period_key: String,
    credit: CreditV1,
    rules_version: String,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct ActivityRefusedV1 {
    activity_id: ActivityId,
    kind: ActivityKind,
    period_key: String,
    limit: u32,
    period: String,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    rules_version: String,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct BalanceOpenedV1 {
    balance_id: AdjustmentId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    credit: CreditV1,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct WinBackAwardedV1 {
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    #[serde(default)]
    p_alive: Option<Decimal>,
    inactive_days: u32,
    purchase_days: u32,
    #[serde(default)]
    model_version: Option<String>,
    credit: CreditV1,
    rules_version: String,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct ReferralBonusCreditedV1 {
    newcomer: MemberId,
    credit: CreditV1,
    rules_version: String,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RevocationReasonV1 {
    PurchaseRefunded,
    BelowMinimum,
}

impl From<RevocationReason> for RevocationReasonV1 {
    fn from(r: RevocationReason) -> Self {
        match r {
            RevocationReason::PurchaseRefunded => RevocationReasonV1::PurchaseRefunded,
            RevocationReason::BelowMinimum => RevocationReasonV1::BelowMinimum,
        }
    }
}

impl From<RevocationReasonV1> for RevocationReason {
    fn from(r: RevocationReasonV1) -> Self {
        match r {
            RevocationReasonV1::PurchaseRefunded => RevocationReason::PurchaseRefunded,
            RevocationReasonV1::BelowMinimum => RevocationReason::BelowMinimum,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ReferralRevokedV1 {
    referrer: MemberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<StoreId>,
    transaction_id: TransactionId,
    refund_id: RefundId,
    reason: RevocationReasonV1,
    remaining_eligible_amount: Decimal,
    points: Points,
    debit: DebitV1,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
}

#[derive(Serialize, Deserialize)]
struct ReferralBonusRevokedV1 {
    newcomer: MemberId,
    reason: RevocationReasonV1,
    points: Points,
    debit: DebitV1,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct MemberSuspendedV1 {
    reason_code: ReasonCode,
    operator: OperatorId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
}

#[derive(Serialize, Deserialize)]
struct MemberReinstatedV1 {
    // Added without a version bump: old events lack it and read as `None`, and an old binary
    // ignores it (the stored JSON tolerates unknown fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason_code: Option<ReasonCode>,
    operator: OperatorId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
}

#[derive(Serialize, Deserialize)]
struct AccountClosedV1 {
    reason_code: ReasonCode,
    operator: OperatorId,
    #[serde(deserialize_with = "instant::deserialize")]
    occurred_at: Instant,
    forfeited: Vec<LotDrawV1>,
}

fn to_json<T: Serialize>(dto: &T) -> Vec<u8> {
    // The DTOs hold only strings, integers, booleans, options and lists: serializing them to
    // JSON cannot fail, so a failure here is a bug in this module, not bad input.
    // A buffer the size of a typical event up front: grown from empty, a purchase's document
    // was copied half a dozen times on its way to its size.
    let mut out = Vec::with_capacity(TYPICAL_DOCUMENT_BYTES);
    serde_json::to_writer(&mut out, dto).expect("v1 DTOs always serialize to JSON");
    // The document is kept (in the store's tail, in an import's batch) at its own size; the
    // allocator shrinks a block in place when it can.
    out.shrink_to_fit();
    out
}

/// About the size of a purchase's document with a few lines.
pub(super) const TYPICAL_DOCUMENT_BYTES: usize = 512;

pub(super) fn encode(event: &Event) -> Vec<u8> {
    match event {
        Event::Enrolled(e) => to_json(&EnrolledV1 {
            member_id: e.member_id.clone(),
            referrer: e.referrer.clone(),
            enrolled_at: e.enrolled_at,
            tier: (&e.tier).into(),
            welcome: e.welcome.as_ref().map(Into::into),
            rules_version: e.rules_version.clone(),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::PurchaseRecorded(e) => to_json(&PurchaseRecordedV1 {
            transaction_id: e.transaction_id.clone(),
            store: e.store.clone(),
            terminal: e.terminal.clone(),
            occurred_at: e.occurred_at,
            currency: e.currency.clone(),
            lines: e
                .lines
                .iter()
                .map(|l| LineAwardV1 {
                    sku: l.sku.clone(),
                    category: l.category.clone(),
                    quantity: l.quantity,
                    amount: l.amount,
                    eligible_amount: l.eligible_amount,
                    rules: rules_v1(&l.rules),
                    points: l.points,
                })
                .collect(),
            transaction_rules: rules_v1(&e.transaction_rules),
            points: e.points,
            eligible_amount: e.eligible_amount,
            campaigns_applied: e.campaigns_applied.clone(),
            credit: e.credit.as_ref().map(Into::into),
            activity_deadline: e.activity_deadline,
            rules_version: e.rules_version.clone(),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::ReferralQualified(e) => to_json(&ReferralQualifiedV1 {
            referrer: e.referrer.clone(),
            store: e.store.clone(),
            transaction_id: e.transaction_id.clone(),
            min_purchase: e.min_purchase,
            occurred_at: e.occurred_at,
            newcomer_credit: e.newcomer_credit.as_ref().map(Into::into),
            referrer_points: e.referrer_points,
            rules_version: e.rules_version.clone(),
        }),
        Event::TierChanged(e) => to_json(&TierChangedV1 {
            from: (&e.from).into(),
            to: (&e.to).into(),
            reason: match e.reason {
                ev::TierChangeReason::ThresholdReached => TierChangeReasonV1::ThresholdReached,
                ev::TierChangeReason::Review => TierChangeReasonV1::Review,
            },
            qualifying_value: e.qualifying_value,
            occurred_at: e.occurred_at,
            review_at: e.review_at,
            rules_version: e.rules_version.clone(),
        }),
        Event::RefundRecorded(e) => to_json(&RefundRecordedV1 {
            refund_id: e.refund_id.clone(),
            store: e.store.clone(),
            purchase_store: e.purchase_store.clone(),
            transaction_id: e.transaction_id.clone(),
            occurred_at: e.occurred_at,
            currency: e.currency.clone(),
            lines: e
                .lines
                .iter()
                .map(|l| RefundedLineV1 {
                    line: l.line,
                    amount: l.amount,
                    eligible_amount: l.eligible_amount,
                    points: l.points,
                })
                .collect(),
            transaction_points: e.transaction_points,
            points: e.points,
            amount: e.amount,
            eligible_amount: e.eligible_amount,
            debit: (&e.debit).into(),
            completes_purchase: e.completes_purchase,
            fingerprint: e.fingerprint.clone(),
        }),
        Event::PointsRedeemed(e) => to_json(&PointsRedeemedV1 {
            redemption_id: e.redemption_id.clone(),
            reward_id: e.reward_id.clone(),
            points: e.points,
            draws: draws_v1(&e.draws),
            occurred_at: e.occurred_at,
            activity_deadline: e.activity_deadline,
            fingerprint: e.fingerprint.clone(),
        }),
        Event::RedemptionCancelled(e) => to_json(&RedemptionCancelledV1 {
            redemption_id: e.redemption_id.clone(),
            restored: draws_v1(&e.restored),
            occurred_at: e.occurred_at,
            fingerprint: e.fingerprint.clone(),
        }),
        Event::PointsExpired(e) => to_json(&PointsExpiredV1 {
            lot_id: e.lot_id.clone(),
            points: e.points,
            expired_at: e.expired_at,
            occurred_at: e.occurred_at,
        }),
        Event::ExpiryNotified(e) => to_json(&ExpiryNotifiedV1 {
            occurred_at: e.occurred_at,
            lots: e
                .lots
                .iter()
                .map(|l| NotifiedLotV1 {
                    lot_id: l.lot_id.clone(),
                    points: l.points,
                    expires_at: l.expires_at,
                })
                .collect(),
        }),
        Event::ActivityRewarded(e) => to_json(&ActivityRewardedV1 {
            activity_id: e.activity_id.clone(),
            kind: e.kind.clone(),
            period_key: e.period_key.clone(),
            credit: (&e.credit).into(),
            rules_version: e.rules_version.clone(),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::ActivityRefused(e) => to_json(&ActivityRefusedV1 {
            activity_id: e.activity_id.clone(),
            kind: e.kind.clone(),
            period_key: e.period_key.clone(),
            limit: e.limit,
            period: e.period.clone(),
            occurred_at: e.occurred_at,
            rules_version: e.rules_version.clone(),
            fingerprint: e.fingerprint.clone(),
        }),
        // Version 2 since notes are sealed: `v2.rs`.
        Event::PointsAdjusted(_) | Event::GoodwillGranted(_) => super::v2::encode(event),
        Event::BalanceOpened(e) => to_json(&BalanceOpenedV1 {
            balance_id: e.balance_id.clone(),
            occurred_at: e.occurred_at,
            credit: (&e.credit).into(),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::WinBackAwarded(e) => to_json(&WinBackAwardedV1 {
            occurred_at: e.occurred_at,
            p_alive: e.p_alive,
            inactive_days: e.inactive_days,
            purchase_days: e.purchase_days,
            model_version: e.model_version.clone(),
            credit: (&e.credit).into(),
            rules_version: e.rules_version.clone(),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::ReferralBonusCredited(e) => to_json(&ReferralBonusCreditedV1 {
            newcomer: e.newcomer.clone(),
            credit: (&e.credit).into(),
            rules_version: e.rules_version.clone(),
            fingerprint: e.fingerprint.clone(),
        }),
        Event::ReferralRevoked(e) => to_json(&ReferralRevokedV1 {
            referrer: e.referrer.clone(),
            store: e.store.clone(),
            transaction_id: e.transaction_id.clone(),
            refund_id: e.refund_id.clone(),
            reason: e.reason.into(),
            remaining_eligible_amount: e.remaining_eligible_amount,
            points: e.points,
            debit: (&e.debit).into(),
            occurred_at: e.occurred_at,
        }),
        Event::ReferralBonusRevoked(e) => to_json(&ReferralBonusRevokedV1 {
            newcomer: e.newcomer.clone(),
            reason: e.reason.into(),
            points: e.points,
            debit: (&e.debit).into(),
            occurred_at: e.occurred_at,
            fingerprint: e.fingerprint.clone(),
        }),
        Event::MemberSuspended(e) => to_json(&MemberSuspendedV1 {
            reason_code: e.reason_code.clone(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::MemberReinstated(e) => to_json(&MemberReinstatedV1 {
            reason_code: e.reason_code.clone(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
        }),
        Event::AccountClosed(e) => to_json(&AccountClosedV1 {
            reason_code: e.reason_code.clone(),
            operator: e.operator.clone(),
            occurred_at: e.occurred_at,
            forfeited: draws_v1(&e.forfeited),
        }),
    }
}

pub(super) fn decode(event_type: &str, data: &[u8]) -> Result<Event, serde_json::Error> {
    // One UTF-8 check of the whole document: parsing from bytes checks every string again,
    // which was a tenth of the time replay spent decoding.
    let text = std::str::from_utf8(data).map_err(serde::de::Error::custom)?;
    let event = match event_type {
        "Enrolled" => {
            let e: EnrolledV1 = serde_json::from_str(text)?;
            Event::Enrolled(ev::Enrolled {
                member_id: e.member_id,
                referrer: e.referrer,
                enrolled_at: e.enrolled_at,
                tier: e.tier.into(),
                welcome: e.welcome.map(Into::into),
                rules_version: e.rules_version,
                fingerprint: e.fingerprint,
            })
        }
        "PurchaseRecorded" => {
            let e: PurchaseRecordedV1 = serde_json::from_str(text)?;
            Event::PurchaseRecorded(ev::PurchaseRecorded {
                transaction_id: e.transaction_id,
                store: e.store,
                terminal: e.terminal,
                occurred_at: e.occurred_at,
                currency: e.currency,
                lines: e
                    .lines
                    .into_iter()
                    .map(|l| ev::LineAward {
                        sku: l.sku,
                        category: l.category,
                        quantity: l.quantity,
                        amount: l.amount,
                        eligible_amount: l.eligible_amount,
                        rules: rules(l.rules),
                        points: l.points,
                    })
                    .collect(),
                transaction_rules: rules(e.transaction_rules),
                points: e.points,
                eligible_amount: e.eligible_amount,
                campaigns_applied: e.campaigns_applied,
                credit: e.credit.map(Into::into),
                activity_deadline: e.activity_deadline,
                rules_version: e.rules_version,
                fingerprint: e.fingerprint,
            })
        }
        "ReferralQualified" => {
            let e: ReferralQualifiedV1 = serde_json::from_str(text)?;
            Event::ReferralQualified(ev::ReferralQualified {
                referrer: e.referrer,
                store: e.store,
                transaction_id: e.transaction_id,
                min_purchase: e.min_purchase,
                occurred_at: e.occurred_at,
                newcomer_credit: e.newcomer_credit.map(Into::into),
                referrer_points: e.referrer_points,
                rules_version: e.rules_version,
            })
        }
        "TierChanged" => {
            let e: TierChangedV1 = serde_json::from_str(text)?;
            Event::TierChanged(ev::TierChanged {
                from: e.from.into(),
                to: e.to.into(),
                reason: match e.reason {
                    TierChangeReasonV1::ThresholdReached => ev::TierChangeReason::ThresholdReached,
                    TierChangeReasonV1::Review => ev::TierChangeReason::Review,
                },
                qualifying_value: e.qualifying_value,
                occurred_at: e.occurred_at,
                review_at: e.review_at,
                rules_version: e.rules_version,
            })
        }
        "RefundRecorded" => {
            let e: RefundRecordedV1 = serde_json::from_str(text)?;
            Event::RefundRecorded(ev::RefundRecorded {
                refund_id: e.refund_id,
                store: e.store,
                purchase_store: e.purchase_store,
                transaction_id: e.transaction_id,
                occurred_at: e.occurred_at,
                currency: e.currency,
                lines: e
                    .lines
                    .into_iter()
                    .map(|l| ev::RefundedLine {
                        line: l.line,
                        amount: l.amount,
                        eligible_amount: l.eligible_amount,
                        points: l.points,
                    })
                    .collect(),
                transaction_points: e.transaction_points,
                points: e.points,
                amount: e.amount,
                eligible_amount: e.eligible_amount,
                debit: e.debit.into(),
                completes_purchase: e.completes_purchase,
                fingerprint: e.fingerprint,
            })
        }
        "PointsRedeemed" => {
            let e: PointsRedeemedV1 = serde_json::from_str(text)?;
            Event::PointsRedeemed(ev::PointsRedeemed {
                redemption_id: e.redemption_id,
                reward_id: e.reward_id,
                points: e.points,
                draws: draws(e.draws),
                occurred_at: e.occurred_at,
                activity_deadline: e.activity_deadline,
                fingerprint: e.fingerprint,
            })
        }
        "RedemptionCancelled" => {
            let e: RedemptionCancelledV1 = serde_json::from_str(text)?;
            Event::RedemptionCancelled(ev::RedemptionCancelled {
                redemption_id: e.redemption_id,
                restored: draws(e.restored),
                occurred_at: e.occurred_at,
                fingerprint: e.fingerprint,
            })
        }
        "PointsExpired" => {
            let e: PointsExpiredV1 = serde_json::from_str(text)?;
            Event::PointsExpired(ev::PointsExpired {
                lot_id: e.lot_id,
                points: e.points,
                expired_at: e.expired_at,
                occurred_at: e.occurred_at,
            })
        }
        "ExpiryNotified" => {
            let e: ExpiryNotifiedV1 = serde_json::from_str(text)?;
            Event::ExpiryNotified(ev::ExpiryNotified {
                occurred_at: e.occurred_at,
                lots: e
                    .lots
                    .into_iter()
                    .map(|l| ev::NotifiedLot {
                        lot_id: l.lot_id,
                        points: l.points,
                        expires_at: l.expires_at,
                    })
                    .collect(),
            })
        }
        "ActivityRewarded" => {
            let e: ActivityRewardedV1 = serde_json::from_str(text)?;
            Event::ActivityRewarded(ev::ActivityRewarded {
                activity_id: e.activity_id,
                kind: e.kind,
                period_key: e.period_key,
                credit: e.credit.into(),
                rules_version: e.rules_version,
                fingerprint: e.fingerprint,
            })
        }
        "ActivityRefused" => {
            let e: ActivityRefusedV1 = serde_json::from_str(text)?;
            Event::ActivityRefused(ev::ActivityRefused {
                activity_id: e.activity_id,
                kind: e.kind,
                period_key: e.period_key,
                limit: e.limit,
                period: e.period,
                occurred_at: e.occurred_at,
                rules_version: e.rules_version,
                fingerprint: e.fingerprint,
            })
        }
        "BalanceOpened" => {
            let e: BalanceOpenedV1 = serde_json::from_str(text)?;
            Event::BalanceOpened(ev::BalanceOpened {
                balance_id: e.balance_id,
                occurred_at: e.occurred_at,
                credit: e.credit.into(),
                fingerprint: e.fingerprint,
            })
        }
        "WinBackAwarded" => {
            let e: WinBackAwardedV1 = serde_json::from_str(text)?;
            Event::WinBackAwarded(ev::WinBackAwarded {
                occurred_at: e.occurred_at,
                p_alive: e.p_alive,
                inactive_days: e.inactive_days,
                purchase_days: e.purchase_days,
                model_version: e.model_version,
                credit: e.credit.into(),
                rules_version: e.rules_version,
                fingerprint: e.fingerprint,
            })
        }
        "ReferralBonusCredited" => {
            let e: ReferralBonusCreditedV1 = serde_json::from_str(text)?;
            Event::ReferralBonusCredited(ev::ReferralBonusCredited {
                newcomer: e.newcomer,
                credit: e.credit.into(),
                rules_version: e.rules_version,
                fingerprint: e.fingerprint,
            })
        }
        "ReferralRevoked" => {
            let e: ReferralRevokedV1 = serde_json::from_str(text)?;
            Event::ReferralRevoked(ev::ReferralRevoked {
                referrer: e.referrer,
                store: e.store,
                transaction_id: e.transaction_id,
                refund_id: e.refund_id,
                reason: e.reason.into(),
                remaining_eligible_amount: e.remaining_eligible_amount,
                points: e.points,
                debit: e.debit.into(),
                occurred_at: e.occurred_at,
            })
        }
        "ReferralBonusRevoked" => {
            let e: ReferralBonusRevokedV1 = serde_json::from_str(text)?;
            Event::ReferralBonusRevoked(ev::ReferralBonusRevoked {
                newcomer: e.newcomer,
                reason: e.reason.into(),
                points: e.points,
                debit: e.debit.into(),
                occurred_at: e.occurred_at,
                fingerprint: e.fingerprint,
            })
        }
        "MemberSuspended" => {
            let e: MemberSuspendedV1 = serde_json::from_str(text)?;
            Event::MemberSuspended(ev::MemberSuspended {
                reason_code: e.reason_code,
                operator: e.operator,
                occurred_at: e.occurred_at,
            })
        }
        "MemberReinstated" => {
            let e: MemberReinstatedV1 = serde_json::from_str(text)?;
            Event::MemberReinstated(ev::MemberReinstated {
                reason_code: e.reason_code,
                operator: e.operator,
                occurred_at: e.occurred_at,
            })
        }
        "AccountClosed" => {
            let e: AccountClosedV1 = serde_json::from_str(text)?;
            Event::AccountClosed(ev::AccountClosed {
                reason_code: e.reason_code,
                operator: e.operator,
                occurred_at: e.occurred_at,
                forfeited: draws(e.forfeited),
            })
        }
        other => {
            return Err(serde::de::Error::custom(format!(
                "unknown event type {other}"
            )));
        }
    };
    Ok(event)
}
