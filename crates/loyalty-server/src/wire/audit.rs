//! What auditors read: the log itself, a member's events, a member and the liability as of an
//! instant (replayed from the log), the program's totals (from the read models).
use chrono::{DateTime, Utc};
use loyalty_engine::{
    BreakageEstimate as EngineBreakage, ExpiryBucket as EngineBucket, ExpiryBucketKind,
    LiabilityStatement, LogEntry as EngineLogEntry, LogPage as EngineLogPage, MemberSnapshot,
    ProgramTotals as EngineProgramTotals,
};
use loyalty_store::Position;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::members::{MemberBalance, MemberStatus, MemberTier};
use crate::dto::PositionText;

/// A page of the event log, all streams in position order (`GET /v1/log`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    /// Pass it as `?after=` for the next page; null when this page was short (the end of the
    /// log for now).
    #[schema(value_type = Option<crate::dto::PositionText>, required = true, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub next_after: Option<PositionText>,
    #[schema(schema_with = super::always_null, required = true)]
    pub next_revision: Option<u64>,
}

impl From<&EngineLogPage> for LogPage {
    fn from(p: &EngineLogPage) -> Self {
        Self {
            entries: p.entries.iter().map(LogEntry::from).collect(),
            next_after: p.next_after.map(PositionText),
            next_revision: p.next_revision,
        }
    }
}

/// A page of one member's events, oldest first (`GET /v1/members/{member_id}/events`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberEventsPage {
    pub entries: Vec<LogEntry>,
    #[schema(schema_with = super::always_null, required = true)]
    pub next_after: Option<PositionText>,
    /// Pass it as `?from_revision=` for the next page; null when this page was short.
    #[schema(required = true, minimum = 1)]
    pub next_revision: Option<u64>,
}

impl From<&EngineLogPage> for MemberEventsPage {
    fn from(p: &EngineLogPage) -> Self {
        Self {
            entries: p.entries.iter().map(LogEntry::from).collect(),
            next_after: p.next_after.map(PositionText),
            next_revision: p.next_revision,
        }
    }
}

/// One stored event, as the log holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogEntry {
    /// The stream (`member-<id>`, `txn-<id>`...).
    pub stream: String,
    /// The event's revision in its stream (from 0).
    pub revision: u64,
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    /// The version of the stored document's schema; 0 for an event that another application
    /// wrote.
    pub schema_version: u32,
    /// The stored event document: JSON as stored (an object for the engine's events), or the
    /// stored bytes as a string when they are not JSON.
    pub data: serde_json::Value,
    /// The event's metadata (`recorded_at`, actor, correlation id...), the same way.
    pub metadata: serde_json::Value,
}

impl From<&EngineLogEntry> for LogEntry {
    fn from(e: &EngineLogEntry) -> Self {
        Self {
            stream: e.stream.clone(),
            revision: e.revision,
            position: PositionText(e.position),
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            data: e.data.clone(),
            metadata: e.metadata.clone(),
        }
    }
}

/// A member as the log recorded them at an instant: every event recorded at or before it,
/// with balances and tier evaluated at it (`GET /v1/members/{member_id}/as-of`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberAsOf {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub as_of: DateTime<Utc>,
    pub status: MemberStatus,
    pub balance: MemberBalance,
    pub tier: MemberTier,
    /// Events of the member's stream recorded at or before `as_of`.
    pub events_applied: u64,
}

impl From<&MemberSnapshot> for MemberAsOf {
    fn from(s: &MemberSnapshot) -> Self {
        Self {
            member_id: s.member_id.to_string(),
            as_of: s.as_of,
            status: MemberStatus::from(s.status),
            balance: MemberBalance::from(&s.balance),
            tier: MemberTier::from(&s.tier),
            events_applied: s.events_applied,
        }
    }
}

/// The points liability now or as of an instant (`GET /v1/liability`; now from the read
/// models, a past instant replayed from the log): the program's totals, the points outstanding
/// by expiry bucket with their value, and a breakage estimate from the program's own history of
/// expiries (IFRS 15 style).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiabilityReport {
    pub as_of: DateTime<Utc>,
    /// Events of the log read for the report.
    pub events_replayed: u64,
    /// Member events that could not be read (skipped, as an as-of replay skips them).
    pub unreadable_events: u64,
    pub totals: ProgramTotals,
    /// Every bucket, in this order: `expired_not_swept`, `within_30_days`, `within_90_days`,
    /// `within_180_days`, `within_365_days`, `later`, `no_expiry` (empty ones included).
    pub buckets: Vec<LiabilityBucket>,
    pub breakage: BreakageEstimate,
    /// `totals.liability - breakage.expected_value` (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("2.72"))]
    pub liability_net_of_breakage: Decimal,
}

impl From<&LiabilityStatement> for LiabilityReport {
    fn from(r: &LiabilityStatement) -> Self {
        Self {
            as_of: r.as_of,
            events_replayed: r.events_replayed,
            unreadable_events: r.unreadable_events,
            totals: ProgramTotals::from(&r.totals),
            buckets: r.buckets.iter().map(LiabilityBucket::from).collect(),
            breakage: BreakageEstimate::from(&r.breakage),
            liability_net_of_breakage: r.liability_net_of_breakage,
        }
    }
}

/// The points of the lots that expire within one bucket (calendar days in the program's
/// timezone after `as_of`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiabilityBucket {
    pub bucket: BucketName,
    /// Lots expiring after this instant (null: no lower bound)...
    #[schema(required = true)]
    pub expires_after: Option<DateTime<Utc>>,
    /// ...and at or before this one (null: no upper bound).
    #[schema(required = true)]
    pub expires_by: Option<DateTime<Utc>>,
    /// Whether these points are owed: every bucket but `expired_not_swept` (past their expiry,
    /// which the next sweep records).
    pub owed: bool,
    /// Lots holding points.
    pub lots: u64,
    pub points: i64,
    /// `points x point_value` (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("1.30"))]
    pub value: Decimal,
    /// `points x breakage.rate`, rounded half to even, for the dated owed buckets; 0 for the
    /// others.
    pub expected_breakage_points: i64,
    /// Their value (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("0.32"))]
    pub expected_breakage_value: Decimal,
}

/// Which bucket: by when its lots expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum BucketName {
    #[serde(rename = "expired_not_swept")]
    ExpiredNotSwept,
    #[serde(rename = "within_30_days")]
    Within30Days,
    #[serde(rename = "within_90_days")]
    Within90Days,
    #[serde(rename = "within_180_days")]
    Within180Days,
    #[serde(rename = "within_365_days")]
    Within365Days,
    #[serde(rename = "later")]
    Later,
    #[serde(rename = "no_expiry")]
    NoExpiry,
}

impl From<ExpiryBucketKind> for BucketName {
    fn from(kind: ExpiryBucketKind) -> Self {
        match kind {
            ExpiryBucketKind::ExpiredNotSwept => Self::ExpiredNotSwept,
            ExpiryBucketKind::Within30Days => Self::Within30Days,
            ExpiryBucketKind::Within90Days => Self::Within90Days,
            ExpiryBucketKind::Within180Days => Self::Within180Days,
            ExpiryBucketKind::Within365Days => Self::Within365Days,
            ExpiryBucketKind::Later => Self::Later,
            ExpiryBucketKind::NoExpiry => Self::NoExpiry,
        }
    }
}

impl From<&EngineBucket> for LiabilityBucket {
    fn from(b: &EngineBucket) -> Self {
        Self {
            bucket: BucketName::from(b.bucket),
            expires_after: b.expires_after,
            expires_by: b.expires_by,
            owed: b.owed,
            lots: b.lots,
            points: b.points.value(),
            value: b.value,
            expected_breakage_points: b.expected_breakage_points.value(),
            expected_breakage_value: b.expected_breakage_value,
        }
    }
}

/// The breakage estimate: `rate = points_expired / (points_expired + points_redeemed)` over
/// the events recorded after `from` and at or before `to` (0 without history), applied to the
/// owed points that have an expiry date.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreakageEstimate {
    #[schema(minimum = 1, maximum = 3650)]
    pub lookback_days: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Points whose expiry was recorded in the lookback.
    pub points_expired: i64,
    /// Points redeemed in the lookback, net of cancellations.
    pub points_redeemed: i64,
    /// A decimal string between 0 and 1, 4 decimals at most.
    #[schema(value_type = crate::schema::Amount, examples("0.25"))]
    pub rate: Decimal,
    /// The expected breakage of the points outstanding (the buckets' sum).
    pub expected_points: i64,
    /// Its value (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("0.88"))]
    pub expected_value: Decimal,
}

impl From<&EngineBreakage> for BreakageEstimate {
    fn from(b: &EngineBreakage) -> Self {
        Self {
            lookback_days: b.lookback_days,
            from: b.from,
            to: b.to,
            points_expired: b.points_expired.value(),
            points_redeemed: b.points_redeemed.value(),
            rate: b.rate,
            expected_points: b.expected_points.value(),
            expected_value: b.expected_value,
        }
    }
}

/// The program's totals from the read models, and the log position they reflect (`GET
/// /v1/totals`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotalsReport {
    /// The position the read models had reached.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    pub totals: ProgramTotals,
}

impl TotalsReport {
    /// The answer from the engine's `totals()` and `projection_position()`.
    pub fn new(position: Position, totals: &EngineProgramTotals) -> Self {
        Self {
            position: PositionText(position),
            totals: ProgramTotals::from(totals),
        }
    }
}

/// The whole program as of an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramTotals {
    pub as_of: DateTime<Utc>,
    /// The log position the totals reflect.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    /// Enrolled members (closed ones included).
    pub members: u64,
    pub active_members: u64,
    pub suspended_members: u64,
    pub closed_members: u64,
    /// Points the retailer owes: available plus pending.
    pub points_outstanding: i64,
    pub points_available: i64,
    pub points_pending: i64,
    pub debt: i64,
    /// What one point is worth (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("0.01"))]
    pub point_value: Decimal,
    /// `points_outstanding x point_value` (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("1234.56"))]
    pub liability: Decimal,
    /// The currency of `point_value`, `liability` and `breakage_value` (ISO 4217).
    #[schema(pattern = "^[A-Z]{3}$", examples("EUR"))]
    pub currency: String,
    /// Points that expired (breakage), recorded or due.
    pub breakage_points: i64,
    /// `breakage_points x point_value` (money, a decimal string).
    #[schema(value_type = crate::schema::Amount, examples("12.34"))]
    pub breakage_value: Decimal,
    pub lifetime_earned: i64,
    pub redeemed: i64,
    pub clawed_back: i64,
    pub forfeited: i64,
}

impl From<&EngineProgramTotals> for ProgramTotals {
    fn from(t: &EngineProgramTotals) -> Self {
        Self {
            as_of: t.as_of,
            position: PositionText(t.position),
            members: t.members,
            active_members: t.active_members,
            suspended_members: t.suspended_members,
            closed_members: t.closed_members,
            points_outstanding: t.points_outstanding.value(),
            points_available: t.points_available.value(),
            points_pending: t.points_pending.value(),
            debt: t.debt.value(),
            point_value: t.point_value,
            liability: t.liability,
            currency: t.currency.to_string(),
            breakage_points: t.breakage_points.value(),
            breakage_value: t.breakage_value,
            lifetime_earned: t.lifetime_earned.value(),
            redeemed: t.redeemed.value(),
            clawed_back: t.clawed_back.value(),
            forfeited: t.forfeited.value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use loyalty_store::Position;
    use serde_json::json;

    use super::*;
    use crate::wire::testkit::{self, assert_same_json, assert_same_json_value, assert_valid};

    #[tokio::test]
    async fn log_pages_serialise_as_the_engine_pages_did() {
        let world = testkit::world().await;
        let first = world.engine.log(Position::START, 4).await.unwrap();
        assert!(first.next_after.is_some());
        let rest = world
            .engine
            .log(first.next_after.unwrap(), 1000)
            .await
            .unwrap();
        assert!(rest.next_after.is_none());
        for page in [&first, &rest] {
            let wire = LogPage::from(page);
            assert_same_json(&wire, page);
            assert_valid::<LogPage>(&wire);
        }
    }

    #[tokio::test]
    async fn member_event_pages_serialise_as_the_engine_pages_did() {
        let world = testkit::world().await;
        let first = world
            .engine
            .member_events(&world.member, 0, 2)
            .await
            .unwrap();
        assert!(first.next_revision.is_some());
        let rest = world
            .engine
            .member_events(&world.member, first.next_revision.unwrap(), 1000)
            .await
            .unwrap();
        assert!(rest.next_revision.is_none());
        for page in [&first, &rest] {
            let wire = MemberEventsPage::from(page);
            assert_same_json(&wire, page);
            assert_valid::<MemberEventsPage>(&wire);
        }
    }

    #[tokio::test]
    async fn foreign_events_keep_their_raw_data() {
        // An entry whose bytes were not JSON: its data and metadata are strings.
        let world = testkit::world().await;
        let mut page = world.engine.log(Position::START, 1).await.unwrap();
        page.entries[0].data = json!("not json");
        page.entries[0].metadata = json!("");
        page.entries[0].schema_version = 0;
        let wire = LogPage::from(&page);
        assert_same_json(&wire, &page);
        assert_valid::<LogPage>(&wire);
    }

    #[tokio::test]
    async fn as_of_snapshots_serialise_as_the_engine_snapshots_did() {
        let world = testkit::world().await;
        for as_of in [world.now, world.now + TimeDelta::days(400)] {
            let snapshot = world
                .engine
                .member_as_of(&world.member, as_of)
                .await
                .unwrap()
                .unwrap();
            let wire = MemberAsOf::from(&snapshot);
            assert_same_json(&wire, &snapshot);
            assert_valid::<MemberAsOf>(&wire);
        }
    }

    #[tokio::test]
    async fn liability_reports_serialise_as_the_engine_reports_did() {
        let world = testkit::world().await;
        // In the past, now and ahead.
        for as_of in [
            world.now - TimeDelta::hours(1),
            world.now,
            world.now + TimeDelta::days(400),
        ] {
            let report = world.engine.liability_statement(as_of, 365).await.unwrap();
            assert_eq!(report.buckets.len(), 7);
            let wire = LiabilityReport::from(&report);
            assert_same_json(&wire, &report);
            assert_valid::<LiabilityReport>(&wire);
        }
    }

    #[tokio::test]
    async fn the_totals_serialise_as_the_handler_did() {
        let world = testkit::world().await;
        let totals = world.engine.totals();
        assert!(totals.members >= 3 && totals.points_outstanding.value() > 0);
        let position = world.engine.projection_position();
        let wire = TotalsReport::new(position, &totals);
        assert_same_json_value(
            &wire,
            &json!({"position": PositionText(position), "totals": totals}),
        );
        assert_valid::<TotalsReport>(&wire);
    }
}
