//! Historical imports: all rows or none, idempotent per row, dated far back.

use chrono::{DateTime, Utc};
use loyalty_core::{
    AdjustmentId, Command, Enroll, ImportedAward, OpenBalance, Points, RefundId, RefundScope,
};
use loyalty_engine::{ImportRow, streams};
use loyalty_store::EventStore;
use rust_decimal::Decimal;

use crate::common::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn row(line: u64, command: Command) -> ImportRow {
    ImportRow {
        line,
        command,
        award: ImportedAward::Nothing,
    }
}

/// The streams written after `head`, but for the engine's own housekeeping (leases,
/// checkpoints, health probes), which may append while an import waits: an import that
/// appends nothing leaves none.
async fn written_after(h: &Harness, head: loyalty_store::Position) -> Vec<String> {
    h.store
        .read_all(head, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.stream)
        .filter(|s| {
            ![
                streams::LEASE_PREFIX,
                streams::CHECKPOINT_PREFIX,
                streams::HEALTH_PREFIX,
            ]
            .iter()
            .any(|prefix| s.starts_with(prefix))
        })
        .collect()
}

/// Two members' history from 2024 (the clock stands on 10 January 2026).
fn history() -> Vec<ImportRow> {
    let (ann, bob) = (member("ann"), member("bob"));
    vec![
        row(
            2,
            Command::Enroll(Enroll {
                member_id: ann.clone(),
                referrer: None,
                occurred_at: at("2024-02-01T10:00:00Z"),
            }),
        ),
        row(3, purchase(&ann, "L1", 40, at("2024-03-01T10:00:00Z"))),
        row(
            4,
            Command::Enroll(Enroll {
                member_id: bob.clone(),
                referrer: None,
                occurred_at: at("2024-05-01T10:00:00Z"),
            }),
        ),
        row(5, purchase(&bob, "L2", 25, at("2024-06-01T10:00:00Z"))),
        row(6, purchase(&ann, "L3", 60, at("2025-03-01T10:00:00Z"))),
        row(
            7,
            Command::Refund(loyalty_core::Refund {
                member_id: ann.clone(),
                refund_id: RefundId::parse("R1").unwrap(),
                store: store_id(STORE),
                purchase_store: store_id(STORE),
                transaction_id: txn("L3"),
                occurred_at: at("2025-03-02T10:00:00Z"),
                currency: eur(),
                scope: RefundScope::Amount(Decimal::from(10)),
            }),
        ),
        row(
            8,
            Command::OpenBalance(OpenBalance {
                member_id: ann.clone(),
                balance_id: AdjustmentId::parse("legacy-ann").unwrap(),
                points: Points::new(750),
                expires_at: Some(at("2026-12-31T23:00:00Z")),
                occurred_at: at("2026-01-09T00:00:00Z"),
            }),
        ),
    ]
}

#[tokio::test]
async fn an_import_records_years_of_history_once_however_often_it_runs() {
    let h = Harness::new().await;
    let report = h
        .engine
        .import("legacy-1", history(), |_, _| {})
        .await
        .unwrap();
    assert!(report.applied(), "{:?}", report.errors);
    assert_eq!(
        (report.members, report.imported, report.already_imported),
        (2, 7, 0)
    );
    h.settle().await;
    let profile = h.engine.member_profile(&member("ann")).unwrap();
    assert_eq!(profile.balance.available, Points::new(750));
    let events = read_member(h.store.as_ref(), &member("ann")).await;
    let metadata: serde_json::Value = serde_json::from_slice(&events[1].metadata).unwrap();
    assert_eq!(metadata["actor"], "import");
    assert_eq!(metadata["correlation_id"], "import:legacy-1");
    assert_eq!(metadata["causation_id"], "line:3");
    // The analytics see the real dates.
    let summaries = h.engine.member_summaries();
    let ann = summaries.iter().find(|s| s.member_id == "ann").unwrap();
    assert_eq!(ann.purchase_days.len(), 2);
    assert_eq!(ann.net_spend, Decimal::from(90));

    let head = h.store.head_position().await.unwrap();
    let again = h
        .engine
        .import("legacy-1", history(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (
            again.imported,
            again.already_imported,
            again.events_appended
        ),
        (0, 7, 0)
    );
    assert_eq!(written_after(&h, head).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_batch_with_a_bad_row_appends_nothing_and_names_the_line() {
    let h = Harness::new().await;
    let head = h.store.head_position().await.unwrap();
    let mut rows = history();
    // A refund of more than the purchase, and a sale claimed by two members.
    if let Command::Refund(r) = &mut rows[5].command {
        r.scope = RefundScope::Amount(Decimal::from(500));
    }
    rows.push(row(
        9,
        purchase(&member("bob"), "L1", 5, at("2024-07-01T10:00:00Z")),
    ));
    let report = h.engine.import("legacy-2", rows, |_, _| {}).await.unwrap();
    assert!(!report.applied());
    let lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
    assert!(lines.contains(&7), "{:?}", report.errors);
    assert!(lines.contains(&9), "{:?}", report.errors);
    assert_eq!(written_after(&h, head).await, Vec::<String>::new());
    assert_eq!(
        count_events(h.store.as_ref(), &member("ann"), "Enrolled").await,
        0
    );
}

#[tokio::test]
async fn a_sale_a_live_member_already_holds_is_refused() {
    let h = Harness::new().await;
    let carl = h.enroll("carl").await;
    h.run(purchase(&carl, "L2", 10, h.now())).await;
    let report = h
        .engine
        .import("legacy-3", history(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].line, 5);
    assert!(!report.errors[0].reason.contains("carl"));
}

/// Customers simulated from BG/NBD and Gamma-Gamma with known parameters, imported as a
/// legacy history, fitted by the engine: the import and the projection lose nothing (the
/// engine's fit is the fit of the simulated summaries themselves), and the estimates land near
/// the parameters simulated.
#[tokio::test]
// The fitted parameters are statistics (f64): the comparison is arithmetic on them.
#[allow(clippy::float_arithmetic)]
async fn models_fitted_on_an_imported_simulated_history_recover_its_parameters() {
    use loyalty_analytics::model::sim;
    use loyalty_analytics::{BgNbdParams, GammaGammaParams, RepeatSummary, TimeUnit};
    use rand::SeedableRng;

    // Per day: a purchase every 56 days on average among the active (alpha / r), dropouts
    // after about a quarter of the purchases (a / (a + b)). Rates this low keep two purchases
    // on one day (which count once) rare: faster buyers would bias alpha upwards.
    let truth = BgNbdParams {
        r: 0.5,
        alpha: 28.0,
        a: 0.8,
        b: 2.5,
    };
    let spend = GammaGammaParams {
        p: 6.0,
        q: 4.0,
        gamma: 10.0,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let (start, end) = ("2024-01-01".parse().unwrap(), "2025-12-31".parse().unwrap());
    let members = sim::members(&truth, &spend, 3_000, start, 180, end, &mut rng);
    let mut rows = Vec::new();
    let noon = |day: chrono::NaiveDate| at(&format!("{day}T11:00:00Z"));
    for m in &members {
        let id = member(&m.member_id);
        rows.push(row(
            rows.len() as u64 + 1,
            Command::Enroll(Enroll {
                member_id: id.clone(),
                referrer: None,
                occurred_at: at(&format!("{}T00:00:00Z", m.enrolled_on)),
            }),
        ));
        for (i, (day, amount)) in m.daily_spend.iter().enumerate() {
            let mut command = purchase(&id, &format!("{}-{i}", m.member_id), 1, noon(*day));
            if let Command::RecordPurchase(p) = &mut command {
                p.lines[0].amount = *amount;
            }
            rows.push(row(rows.len() as u64 + 1, command));
        }
    }
    let h = Harness::new().await;
    let report = h.engine.import("simulated", rows, |_, _| {}).await.unwrap();
    assert!(report.applied(), "{:?}", report.errors.first());
    h.settle().await;

    let fitted = h.engine.models(Some(end)).await.unwrap();
    let summaries: Vec<RepeatSummary> = members
        .iter()
        .filter_map(|m| RepeatSummary::of(m, end, TimeUnit::Weeks))
        .collect();
    let direct = loyalty_analytics::fit_bg_nbd(&summaries).unwrap();
    assert_eq!(fitted.bg_nbd.params, direct.params);
    assert_eq!(fitted.bg_nbd.members, 3_000);

    // In weeks, alpha is 4. The tolerances are about three standard errors at this size:
    // those measured at 30,000 members (1-2% for r and alpha, up to 10% for a and b, 6% for
    // p and q) times sqrt(10) for a tenth of the members, times about 1.5 for fewer purchases
    // each (r and alpha move together: their ratio, the mean rate, is tighter).
    let p = fitted.bg_nbd.params;
    let near = |got: f64, want: f64, tolerance: f64| {
        assert!(
            (got / want - 1.0).abs() < tolerance,
            "{got} is not within {tolerance} of {want}: {p:?}"
        )
    };
    near(p.r, 0.5, 0.25);
    near(p.alpha, 4.0, 0.25);
    near(p.r / p.alpha, 0.125, 0.1);
    near(p.a, 0.8, 0.5);
    near(p.b, 2.5, 0.5);
    let gg = fitted.gamma_gamma.as_ref().unwrap().params;
    near(gg.p, 6.0, 0.3);
    near(gg.q, 4.0, 0.3);
}
