//! What auditors read: the log itself, a member's events, a member and the liability as of an
//! instant (replayed from the log), the program's totals (from the read models).
use chrono::{DateTime, Utc};
use loyalty_engine::{
    LiabilityReport as EngineLiabilityReport, LogEntry as EngineLogEntry, LogPage as EngineLogPage,
    MemberSnapshot, ProgramTotals as EngineProgramTotals,
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

/// The points liability as of an instant (`GET /v1/liability`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiabilityReport {
    pub as_of: DateTime<Utc>,
    /// Events replayed from the log (0 when the read models answered: `as_of` not in the
    /// past).
    pub events_replayed: u64,
    pub totals: ProgramTotals,
}

impl From<&EngineLiabilityReport> for LiabilityReport {
    fn from(r: &EngineLiabilityReport) -> Self {
        Self {
            as_of: r.as_of,
            events_replayed: r.events_replayed,
            totals: ProgramTotals::from(&r.totals),
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
        // In the past (a replay of the log) and now (the read models).
        for as_of in [world.now - TimeDelta::hours(1), world.now] {
            let report = world.engine.liability_as_of(as_of).await.unwrap();
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
