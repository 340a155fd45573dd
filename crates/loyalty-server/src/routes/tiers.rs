//! Auditors and analysts: the tier distribution now and the months members reached their tier
//! in, from the read models (each member's row: status, enrolment, tier and since when), never
//! a scan of the log.
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use loyalty_core::MemberStatus;
use loyalty_engine::ProfileView;

use super::ApiQuery;
use crate::auth::{Allowed, Role, Roles};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::{Period, TierCount, TierMonth, TierReport};

/// The most months `?months=` may ask for.
pub const MAX_TIER_MONTHS: u32 = 36;

/// Auditors (the program's state) and analysts (its customers) both read the tiers.
#[derive(Debug, Clone, Copy)]
pub struct AuditorsAndAnalysts;

impl Roles for AuditorsAndAnalysts {
    const ALLOWED: &'static [Role] = &[Role::Auditor, Role::Analyst];
}

/// `?months=N`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TiersQuery {
    /// How many calendar months of tier changes, ending with the current one (default 12).
    #[param(minimum = 1, maximum = 36)]
    pub months: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/analytics/tiers",
    tag = "analytics",
    summary = "Members per tier now, and the months they reached their tier in",
    description = "From the read models: every tier of the program with the members (enrolled, \
        not closed) who hold it now, and for each of the last `months` calendar months (in the \
        program's timezone) the members who reached the tier they hold by a change in that \
        month. Only each member's latest change is kept, so a member who changed twice counts \
        once.",
    params(TiersQuery),
    responses((status = 200, description = "OK", body = crate::wire::TierReport)),
    security(("apiKey" = ["auditor", "analyst"])),
)]
pub async fn tiers(
    State(state): State<AppState>,
    _: Allowed<AuditorsAndAnalysts>,
    ApiQuery(query): ApiQuery<TiersQuery>,
) -> Result<Json<TierReport>, ApiError> {
    let months = query.months.unwrap_or(12);
    if !(1..=MAX_TIER_MONTHS).contains(&months) {
        return Err(ApiError::invalid(format!(
            "months={months} is not between 1 and {MAX_TIER_MONTHS}"
        ))
        .with("max", MAX_TIER_MONTHS));
    }
    let engine = state.engine.clone();
    // Every member's row is read: on a blocking thread, as the analytics' reports are.
    let report = tokio::task::spawn_blocking(move || {
        let program = engine.program();
        let levels: Vec<String> = program.tiers().iter().map(|l| l.name.clone()).collect();
        let tz = program.timezone();
        let today = engine.today();
        let now = engine.clock().now();
        tier_report(
            &levels,
            tz,
            now,
            today,
            months,
            engine.member_profiles().into_iter(),
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("the tier report's task failed: {e}")))?;
    Ok(Json(report))
}

/// The report over `profiles`, with the program's tiers `levels` (lowest first).
fn tier_report(
    levels: &[String],
    tz: Tz,
    now: DateTime<Utc>,
    today: NaiveDate,
    months: u32,
    profiles: impl Iterator<Item = ProfileView>,
) -> TierReport {
    let first_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
        .and_then(|d| d.checked_sub_months(Months::new(months.saturating_sub(1))))
        .unwrap_or(today);
    let periods: Vec<Period> = (0..months)
        .filter_map(|i| {
            let start = first_month.checked_add_months(Months::new(i))?;
            let end = start.checked_add_months(Months::new(1))?;
            Some(Period { start, end })
        })
        .collect();
    // Tiers by (index, name): the program's first, then any a member holds that it no longer
    // lists (the view names such a tier by the name recorded).
    let mut now_counts: BTreeMap<(u32, String), u64> = levels
        .iter()
        .enumerate()
        .map(|(i, name)| ((u32::try_from(i).unwrap_or(u32::MAX), name.clone()), 0))
        .collect();
    let mut reached: Vec<BTreeMap<(u32, String), u64>> = vec![BTreeMap::new(); periods.len()];
    let mut members = 0;
    for profile in profiles {
        if matches!(
            profile.status,
            MemberStatus::Closed | MemberStatus::NotEnrolled
        ) {
            continue;
        }
        members += 1;
        let tier = (
            profile.tier.current.index,
            profile.tier.current.name.clone(),
        );
        *now_counts.entry(tier.clone()).or_default() += 1;
        // A change, not the tier given at enrolment: enrolment gives the lowest tier, so a
        // higher one was reached by a change (possibly at the enrolment's instant, by a
        // purchase recorded with the same time), and the lowest one by a change only if it
        // dates from later.
        let Some(since) = profile
            .tier
            .since
            .filter(|s| tier.0 > 0 || Some(*s) != profile.enrolled_at)
        else {
            continue;
        };
        let day = loyalty_core::calendar::local_date(since, tz);
        if let Some(at) = periods.iter().position(|p| p.start <= day && day < p.end) {
            *reached[at].entry(tier).or_default() += 1;
        }
    }
    let count = |counts: &BTreeMap<(u32, String), u64>| -> Vec<TierCount> {
        now_counts
            .keys()
            .map(|(index, name)| TierCount {
                index: *index,
                name: name.clone(),
                members: counts
                    .get(&(*index, name.clone()))
                    .copied()
                    .unwrap_or_default(),
            })
            .collect()
    };
    TierReport {
        as_of: now,
        members,
        tiers: count(&now_counts),
        months: periods
            .iter()
            .zip(&reached)
            .map(|(period, counts)| TierMonth {
                period: *period,
                reached: count(counts),
            })
            .collect(),
    }
}
