//! Operations: health, readiness, scheduled work run on demand, imports of history.
use chrono::{DateTime, Utc};
use loyalty_engine::{
    ImportReport as EngineImportReport, ImportRowError as EngineImportRowError,
    ScheduledFailure as EngineScheduledFailure, ScheduledReport as EngineScheduledReport,
};
use loyalty_store::Position;
use serde::Serialize;
use utoipa::ToSchema;

use crate::dto::PositionText;

/// The process is up and answering (`GET /healthz`).
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Health {
    #[schema(inline)]
    pub status: HealthStatus,
}

impl Health {
    /// The only answer: `{"status": "ok"}`.
    pub const OK: Health = Health {
        status: HealthStatus::Ok,
    };
}

/// Always `"ok"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    #[default]
    Ok,
}

/// Ready to serve: the store answers and takes writes, and the read models caught up with the
/// log (`GET /readyz`; otherwise a `503` problem).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(inline)]
    pub status: ReadinessStatus,
    /// The position the read models reached.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
}

impl Readiness {
    /// The answer once ready, with the engine's `projection_position()`.
    pub fn ready(position: Position) -> Self {
        Self {
            status: ReadinessStatus::Ready,
            position: PositionText(position),
        }
    }
}

/// Always `"ready"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    #[default]
    Ready,
}

/// What a run of the scheduled work did (`POST /v1/admin/scheduler/run`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchedulerRun {
    /// The instant the run was made as of (the server's clock, or the earlier `now` asked
    /// for).
    pub now: DateTime<Utc>,
    /// The head of the log after the run: pass it as `?min_position=` to read what the run
    /// changed.
    #[schema(value_type = crate::dto::PositionText, pattern = "^[0-9]{1, 19}/[0-9]{1, 19}$")]
    pub position: PositionText,
    pub report: ScheduledReport,
}

impl SchedulerRun {
    /// The answer from the engine's `run_scheduled(now)` and the store's head after it.
    pub fn new(now: DateTime<Utc>, position: Position, report: &EngineScheduledReport) -> Self {
        Self {
            now,
            position: PositionText(position),
            report: ScheduledReport::from(report),
        }
    }
}

/// Expiries, tier reviews and win-backs run for the members due.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduledReport {
    /// Members with work due.
    pub members_due: u64,
    pub expiry_runs: u64,
    pub points_expired: i64,
    pub lots_expired: u64,
    /// `points.expiring` notices recorded (one per member notified, naming its lots).
    pub expiry_notices: u64,
    pub tier_reviews: u64,
    pub tier_changes: u64,
    /// At most 100 failures are listed; `failures_total` counts them all.
    pub failures: Vec<ScheduledFailure>,
    pub failures_total: u64,
    /// Members left for the next run (over the batch limit).
    pub deferred: u64,
    /// Win-back bonuses granted (the rule runs once a day).
    pub win_backs: u64,
}

impl From<&EngineScheduledReport> for ScheduledReport {
    fn from(r: &EngineScheduledReport) -> Self {
        Self {
            members_due: r.members_due,
            expiry_runs: r.expiry_runs,
            points_expired: r.points_expired.value(),
            lots_expired: r.lots_expired,
            expiry_notices: r.expiry_notices,
            tier_reviews: r.tier_reviews,
            tier_changes: r.tier_changes,
            failures: r.failures.iter().map(ScheduledFailure::from).collect(),
            failures_total: r.failures_total,
            deferred: r.deferred,
            win_backs: r.win_backs,
        }
    }
}

/// Scheduled work that failed for one member (it is retried by the next run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduledFailure {
    #[schema(value_type = crate::schema::Id)]
    pub member_id: String,
    pub error: String,
}

impl From<&EngineScheduledFailure> for ScheduledFailure {
    fn from(f: &EngineScheduledFailure) -> Self {
        Self {
            member_id: f.member_id.to_string(),
            error: f.error.clone(),
        }
    }
}

/// What an import of history did (`POST /v1/admin/import`). A batch is imported whole or not
/// at all: a refused batch is a `422 import-refused` problem listing the refused rows, so in
/// this answer `errors` is empty and `errors_total` is 0.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    pub batch_id: String,
    /// Rows in the batch.
    pub rows: u64,
    /// Members the rows are about.
    pub members: u64,
    /// Rows recorded now.
    pub imported: u64,
    /// Rows an earlier run (or a live command with the same id) had already recorded.
    pub already_imported: u64,
    pub events_appended: u64,
    /// Refused rows (at most 1,000 listed; `errors_total` counts them all).
    pub errors: Vec<ImportRowError>,
    pub errors_total: u64,
}

impl From<&EngineImportReport> for ImportReport {
    fn from(r: &EngineImportReport) -> Self {
        Self {
            batch_id: r.batch_id.clone(),
            rows: r.rows,
            members: r.members,
            imported: r.imported,
            already_imported: r.already_imported,
            events_appended: r.events_appended,
            errors: r.errors.iter().map(ImportRowError::from).collect(),
            errors_total: r.errors_total,
        }
    }
}

/// A refused row of an import (also the items of the `rows` of a `422 import-refused`
/// problem).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportRowError {
    /// The row's number in the batch, from 1.
    #[schema(minimum = 1)]
    pub line: u64,
    /// The member id as the row gave it (maybe not a valid id: that can be why it was
    /// refused).
    pub member_id: String,
    pub reason: String,
}

impl From<&EngineImportRowError> for ImportRowError {
    fn from(e: &EngineImportRowError) -> Self {
        Self {
            line: e.line,
            member_id: e.member_id.clone(),
            reason: e.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;
    use crate::wire::testkit::{self, assert_same_json, assert_same_json_value, assert_valid};

    #[test]
    fn health_serialises_as_the_handler_did() {
        assert_same_json_value(&Health::OK, &json!({"status": "ok"}));
        assert_valid::<Health>(&Health::OK);
    }

    #[tokio::test]
    async fn readiness_serialises_as_the_handler_did() {
        let world = testkit::world().await;
        let position = PositionText(world.engine.projection_position());
        let wire = Readiness::ready(position.0);
        assert_same_json_value(&wire, &json!({"status": "ready", "position": position}));
        assert_valid::<Readiness>(&wire);
    }

    #[tokio::test]
    async fn a_scheduler_run_serialises_as_the_handler_did() {
        let world = testkit::world().await;
        // Fourteen months on: the purchase's points expired and tier reviews are due.
        world.clock.advance(TimeDelta::days(430));
        let now = world.engine.clock().now();
        let report = world.engine.run_scheduled(now).await.unwrap();
        assert!(report.points_expired.value() > 0, "{report:?}");
        let position = world.engine.store().head_position().await.unwrap();
        let wire = SchedulerRun::new(now, position, &report);
        assert_same_json_value(
            &wire,
            &json!({"now": now, "position": PositionText(position), "report": report}),
        );
        assert_valid::<SchedulerRun>(&wire);

        let failed = EngineScheduledReport {
            failures: vec![EngineScheduledFailure {
                member_id: world.member.clone(),
                error: "the event store is unavailable".into(),
            }],
            failures_total: 3,
            deferred: 12,
            ..report
        };
        let wire = SchedulerRun::new(now, position, &failed);
        assert_same_json_value(
            &wire,
            &json!({"now": now, "position": PositionText(position), "report": failed}),
        );
        assert_valid::<SchedulerRun>(&wire);
    }

    #[test]
    fn import_reports_serialise_as_the_engine_reports_did() {
        let applied = EngineImportReport {
            batch_id: "legacy-1".into(),
            rows: 3,
            members: 1,
            imported: 2,
            already_imported: 1,
            events_appended: 2,
            errors: Vec::new(),
            errors_total: 0,
        };
        let refused = EngineImportReport {
            errors: vec![EngineImportRowError {
                line: 2,
                member_id: "bad id!".into(),
                reason: "invalid member id".into(),
            }],
            errors_total: 1,
            imported: 0,
            events_appended: 0,
            ..applied.clone()
        };
        for report in [&applied, &refused] {
            let wire = ImportReport::from(report);
            assert_same_json(&wire, report);
            assert_valid::<ImportReport>(&wire);
        }
    }
}
