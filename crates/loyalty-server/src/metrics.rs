//! Prometheus metrics, rendered as text at `/metrics`: integer counters and gauges, and latency
//! histograms in whole microseconds (prometheus-client keeps a histogram's sum as a float; the
//! project's code only hands it integers).
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/v1/members/{member}`), never the raw path: bounded cardinality.
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    /// The route template, as in [`RequestLabels`].
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CommandNameLabels {
    /// The command's name (`record_purchase`), as in [`CommandLabels`].
    command: String,
}

/// Latency buckets in microseconds: 50 µs doubling up to 13.1 s (19 buckets, and +Inf).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(50.0, 2.0, 19))
}

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A duration in whole microseconds, as the histograms take it.
fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Observes an integer count of microseconds (exact below 2^53, i.e. for 285 years).
#[allow(clippy::cast_precision_loss)]
fn observe_micros(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(micros(elapsed) as f64);
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
    request_latency: LatencyFamily<RouteLabels>,
    commands: Family<CommandLabels, Counter>,
    command_latency: LatencyFamily<CommandNameLabels>,
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
    projection_handoffs: Gauge,
    webhooks_delivered: Gauge,
    webhooks_failed_attempts: Gauge,
    webhooks_in_flight: Gauge,
    webhooks_halted_endpoints: Gauge,
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
    pub projection_handoffs: u64,
    /// The webhook dispatcher's counters on this server (zero where it does not hold the lease).
    pub webhooks: loyalty_webhooks::dispatcher::DispatcherStats,
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
        let request_latency: LatencyFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_microseconds",
            "Time from a request's arrival to its answer's head, by method and route template, in microseconds",
            request_latency.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands",
            "Commands handled, by command and result",
            commands.clone(),
        );
        let command_latency: LatencyFamily<CommandNameLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "command_duration_microseconds",
            "Time the engine took to decide and durably record a command (or refuse it), by command, in microseconds",
            command_latency.clone(),
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
        let projection_handoffs = gauge_of(
            "projection_handoffs",
            "Events the read models took decoded from this server's own appends instead of decoding them from the store",
        );
        let webhooks_delivered = gauge_of(
            "webhooks_delivered",
            "Webhook messages delivered (a 2xx) by this server since it started",
        );
        let webhooks_failed_attempts = gauge_of(
            "webhooks_failed_attempts",
            "Webhook attempts that got no 2xx (each is retried, or the endpoint is failing)",
        );
        let webhooks_in_flight = gauge_of(
            "webhooks_in_flight",
            "Webhook requests in flight from this server now",
        );
        let webhooks_halted_endpoints = gauge_of(
            "webhooks_halted_endpoints",
            "Webhook endpoints whose deliveries stopped before an event of a newer release (upgrade this server)",
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                request_latency,
                commands,
                command_latency,
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
                projection_handoffs,
                webhooks_delivered,
                webhooks_failed_attempts,
                webhooks_in_flight,
                webhooks_halted_endpoints,
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

    /// Records how long the engine took over a command (`elapsed`, whatever its result).
    pub fn observe_command(&self, command: &str, elapsed: Duration) {
        let histogram = self
            .inner
            .command_latency
            .get_or_create(&CommandNameLabels {
                command: command.to_owned(),
            });
        observe_micros(&histogram, elapsed);
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
        i.projection_handoffs.set(gauge(g.projection_handoffs));
        i.webhooks_delivered.set(gauge(g.webhooks.delivered));
        i.webhooks_failed_attempts
            .set(gauge(g.webhooks.failed_attempts));
        i.webhooks_in_flight.set(gauge(g.webhooks.in_flight));
        i.webhooks_halted_endpoints
            .set(gauge(g.webhooks.halted_endpoints));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

/// Middleware counting every answered request by route template and status, and timing it by
/// route template.
pub async fn count_requests(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let mut labels = RouteLabels { method, route };
    observe_micros(
        &metrics.inner.request_latency.get_or_create(&labels),
        elapsed,
    );
    metrics
        .inner
        .requests
        .get_or_create(&RequestLabels {
            method: std::mem::take(&mut labels.method),
            route: std::mem::take(&mut labels.route),
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The text exposition with the engine's gauges read now: what `/metrics` answers, on the main
/// listener (to admin keys) or on `server.metrics_listen` (to anyone who can reach it).
pub fn exposition(state: &AppState) -> Response {
    let engine = &state.engine;
    let totals = engine.totals();
    let (cached_members, cached_bytes) = engine.cache_usage();
    state.metrics.set_engine_gauges(EngineGauges {
        projection_commit: engine.projection_position().commit,
        caught_up: engine.is_caught_up(),
        members: totals.members,
        points_outstanding: totals.points_outstanding.value(),
        points_expired: totals.breakage_points.value(),
        cached_members,
        cached_bytes,
        full_history_loads: engine.full_history_loads(),
        unreadable_events: engine.unreadable_events(),
        scheduled_runs: engine.scheduled_runs(),
        member_snapshot_loads: engine.member_snapshots().0,
        projection_handoffs: engine.projection_handoffs(),
        webhooks: state.webhooks.dispatcher_stats(),
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `/metrics` on the metrics listener: no key asked (the listener's address is the guard).
pub async fn open_exposition(State(state): State<AppState>) -> Response {
    exposition(&state)
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

    #[test]
    fn command_latencies_fall_in_microsecond_buckets() {
        let metrics = Metrics::new();
        metrics.observe_command("enroll", Duration::from_micros(70));
        metrics.observe_command("enroll", Duration::from_millis(3));
        let text = metrics.render();
        let line = |l: &str| text.lines().any(|x| x == l);
        assert!(
            line("loyalty_command_duration_microseconds_count{command=\"enroll\"} 2"),
            "{text}"
        );
        assert!(
            line("loyalty_command_duration_microseconds_sum{command=\"enroll\"} 3070.0"),
            "{text}"
        );
        // 70 µs is above the first bound (50) and within the second (100).
        assert!(
            line("loyalty_command_duration_microseconds_bucket{le=\"50.0\",command=\"enroll\"} 0"),
            "{text}"
        );
        assert!(
            line("loyalty_command_duration_microseconds_bucket{le=\"100.0\",command=\"enroll\"} 1"),
            "{text}"
        );
    }
}
