//! Prometheus metrics, rendered as text at `/metrics`. Integer counters and gauges only (the
//! project has no floats; latency belongs to the benchmarks).
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/v1/members/{member}`), never the raw path: bounded cardinality.
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    /// `applied`, `replayed` or the problem slug of a refusal.
    result: String,
}

/// The server's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    commands: Family<CommandLabels, Counter>,
    projection_commit: Gauge,
    caught_up: Gauge,
    members: Gauge,
    points_outstanding: Gauge,
    points_expired: Gauge,
    cached_members: Gauge,
    cached_bytes: Gauge,
    full_history_loads: Gauge,
    unreadable_events: Gauge,
    scheduled_runs: Gauge,
    member_snapshot_loads: Gauge,
}

/// What the engine reports, read right before rendering.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineGauges {
    pub projection_commit: u64,
    pub caught_up: bool,
    pub members: u64,
    pub points_outstanding: i64,
    pub points_expired: i64,
    pub cached_members: usize,
    pub cached_bytes: usize,
    pub full_history_loads: u64,
    pub unreadable_events: u64,
    pub scheduled_runs: u64,
    pub member_snapshot_loads: u64,
}

fn gauge(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("loyalty");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands handled, by command and result",
            commands.clone(),
        );
        let projection_commit = Gauge::default();
        registry.register(
            "projection_position",
            "Commit position of $all the read models have reached",
            projection_commit.clone(),
        );
        let caught_up = Gauge::default();
        registry.register(
            "projections_caught_up",
            "1 when the read models have caught up with the log",
            caught_up.clone(),
        );
        let members = Gauge::default();
        registry.register("members", "Enrolled members", members.clone());
        let points_outstanding = Gauge::default();
        registry.register(
            "points_outstanding",
            "Points members hold (available and pending, less debt)",
            points_outstanding.clone(),
        );
        let points_expired = Gauge::default();
        registry.register(
            "points_expired",
            "Points that expired (breakage)",
            points_expired.clone(),
        );
        let mut gauge_of = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let cached_members = gauge_of(
            "cached_members",
            "Member states in the command cache (bounded in members and in bytes)",
        );
        let cached_bytes = gauge_of(
            "cached_bytes",
            "Rough weight of the member states in the command cache",
        );
        let full_history_loads = gauge_of(
            "full_history_loads",
            "Times a member's full history was read because the cached state had retired what a command needed",
        );
        let unreadable_events = gauge_of(
            "unreadable_events",
            "Events of member streams the read models could not decode and skipped",
        );
        let scheduled_runs = gauge_of(
            "scheduled_runs",
            "Background scheduler runs on this server (it runs only while this server holds the scheduler's lease)",
        );
        let member_snapshot_loads = gauge_of(
            "member_snapshot_loads",
            "Member states loaded from their snapshot and the events after it (instead of all their events)",
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                commands,
                projection_commit,
                caught_up,
                members,
                points_outstanding,
                points_expired,
                cached_members,
                cached_bytes,
                full_history_loads,
                unreadable_events,
                scheduled_runs,
                member_snapshot_loads,
            }),
        }
    }

    pub fn record_command(&self, command: &str, result: &str) {
        self.inner
            .commands
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Sets the gauges that come from the engine; called right before rendering.
    pub fn set_engine_gauges(&self, g: EngineGauges) {
        let i = &self.inner;
        i.projection_commit.set(gauge(g.projection_commit));
        i.caught_up.set(i64::from(g.caught_up));
        i.members.set(gauge(g.members));
        i.points_outstanding.set(g.points_outstanding);
        i.points_expired.set(g.points_expired);
        i.cached_members.set(gauge(g.cached_members));
        i.cached_bytes.set(gauge(g.cached_bytes));
        i.full_history_loads.set(gauge(g.full_history_loads));
        i.unreadable_events.set(gauge(g.unreadable_events));
        i.scheduled_runs.set(gauge(g.scheduled_runs));
        i.member_snapshot_loads.set(gauge(g.member_snapshot_loads));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

/// Middleware counting every answered request by route template and status.
pub async fn count_requests(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    metrics
        .inner
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_commands_appear_in_the_text_exposition() {
        let metrics = Metrics::new();
        metrics.record_command("record_purchase", "applied");
        metrics.record_command("record_purchase", "applied");
        let text = metrics.render();
        assert!(
            text.contains(
                "loyalty_commands_total{command=\"record_purchase\",result=\"applied\"} 2"
            ),
            "{text}"
        );
    }
}
