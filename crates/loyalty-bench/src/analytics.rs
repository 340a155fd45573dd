//! The retention analytics at scale: a million members simulated from the models' generative
//! processes (BG/NBD purchase days, Gamma-Gamma spends, by day over two and a half years), the
//! reports and model fits timed on them; and the historical import's rate into SQLite.

use std::path::Path;
use std::time::Instant;

use chrono::{NaiveDate, TimeZone, Utc};
use loyalty_analytics::model::sim;
use loyalty_analytics::{
    AtRiskQuery, BgNbdParams, GammaGammaParams, Period, PeriodKind, RepeatSummary, RetentionPolicy,
    TimeUnit,
};
use loyalty_core::{
    AdjustmentId, CategoryId, Command, Currency, Enroll, ImportedAward, MemberId, OpenBalance,
    Points, PurchaseLine, RecordPurchase, Sku, StoreId, TerminalId, TransactionId,
};
use loyalty_engine::ImportRow;
use rand::SeedableRng;
use rust_decimal::Decimal;

use crate::report::Report;

fn day(s: &str) -> anyhow::Result<NaiveDate> {
    Ok(s.parse()?)
}

/// Times the analytics over `members` simulated members.
pub fn figures(report: &mut Report, members: usize) -> anyhow::Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED_0A11);
    // Rates per day: a purchase every 28 days on average among the active, a quarter of them
    // heavy; dropouts after ~25% of purchases; spends around 20 in the currency.
    let bg = BgNbdParams {
        r: 0.5,
        alpha: 14.0,
        a: 0.8,
        b: 2.5,
    };
    let gg = GammaGammaParams {
        p: 6.0,
        q: 4.0,
        gamma: 10.0,
    };
    let end = day("2026-06-30")?;
    let started = Instant::now();
    let summaries = sim::members(&bg, &gg, members, day("2024-01-01")?, 365, end, &mut rng);
    println!(
        "analytics: {members} members simulated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    report.parameter("analytics_members", members as u64);

    let started = Instant::now();
    let policy = RetentionPolicy::default();
    for period in Period::range(PeriodKind::Month, day("2025-07-01")?, end) {
        loyalty_analytics::retention(&summaries, period, policy)?;
    }
    report.figure(
        "analytics_retention_12_months_seconds",
        "retention, 12 monthly periods",
        started.elapsed().as_secs_f64(),
        "s",
    );
    let started = Instant::now();
    let curve = loyalty_analytics::concentration_curve(&summaries);
    anyhow::ensure!(curve.len() == 5, "the concentration curve has 5 points");
    report.figure(
        "analytics_concentration_seconds",
        "concentration curve",
        started.elapsed().as_secs_f64(),
        "s",
    );

    let started = Instant::now();
    let repeat: Vec<RepeatSummary> = summaries
        .iter()
        .filter_map(|m| RepeatSummary::of(m, end, TimeUnit::Weeks))
        .collect();
    let fit = loyalty_analytics::fit_bg_nbd(&repeat)?;
    let spend = loyalty_analytics::fit_gamma_gamma(&repeat)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    println!(
        "analytics: BG/NBD r {:.3} alpha {:.3} a {:.3} b {:.3} ({} groups), Gamma-Gamma p {:.2} q {:.2} gamma {:.2}, in {fit_seconds:.2} s",
        fit.params.r,
        fit.params.alpha,
        fit.params.a,
        fit.params.b,
        fit.groups,
        spend.params.p,
        spend.params.q,
        spend.params.gamma
    );
    report.parameter("analytics_bg_nbd_groups", fit.groups);
    report.figure(
        "analytics_model_fit_seconds",
        "BG/NBD + Gamma-Gamma fit (weeks)",
        fit_seconds,
        "s",
    );
    let started = Instant::now();
    let at_risk = loyalty_analytics::at_risk(
        &summaries,
        &fit.params,
        &spend.params,
        &AtRiskQuery {
            now: end,
            unit: TimeUnit::Weeks,
            horizon: 52,
            discount_rate_yearly: Decimal::new(10, 2),
            p_alive_below: Decimal::new(5, 1),
            limit: 100,
        },
    )?;
    anyhow::ensure!(!at_risk.is_empty(), "some simulated members are at risk");
    report.figure(
        "analytics_at_risk_seconds",
        "members at risk, ranked by value",
        started.elapsed().as_secs_f64(),
        "s",
    );
    Ok(())
}

/// `members` members' history as import rows: an enrolment, four purchases a year apart in
/// months, an opening balance.
fn import_rows(members: u64, currency: &Currency) -> anyhow::Result<Vec<ImportRow>> {
    let mut rows = Vec::new();
    let at = |y, m, d| {
        Utc.with_ymd_and_hms(y, m, d, 11, 0, 0)
            .single()
            .ok_or_else(|| anyhow::anyhow!("bad date"))
    };
    let award = ImportedAward::Nothing;
    for i in 0..members {
        let member_id = MemberId::parse(format!("legacy-{i:07}"))?;
        let line = rows.len() as u64 + 2;
        rows.push(ImportRow {
            line,
            command: Command::Enroll(Enroll {
                member_id: member_id.clone(),
                referrer: None,
                occurred_at: at(2024, 1, 1 + (i % 28) as u32)?,
            }),
            award,
        });
        for p in 0..4u32 {
            let line = rows.len() as u64 + 2;
            rows.push(ImportRow {
                line,
                command: Command::RecordPurchase(RecordPurchase {
                    member_id: member_id.clone(),
                    transaction_id: TransactionId::parse(format!("L{i}-{p}"))?,
                    store: StoreId::parse("paris-opera")?,
                    terminal: TerminalId::parse("import")?,
                    occurred_at: at(2024, 2 + p * 2, 1 + ((i + u64::from(p)) % 28) as u32)?,
                    currency: currency.clone(),
                    lines: vec![PurchaseLine {
                        sku: Sku::parse("IMPORTED")?,
                        category: CategoryId::parse("pastry")?,
                        quantity: Decimal::ONE,
                        amount: Decimal::new(1250 + (i % 500) as i64, 2),
                    }],
                }),
                award,
            });
        }
        let line = rows.len() as u64 + 2;
        rows.push(ImportRow {
            line,
            command: Command::OpenBalance(OpenBalance {
                member_id,
                balance_id: AdjustmentId::parse(format!("opening-{i}"))?,
                points: Points::new(100 + (i % 900) as i64),
                expires_at: None,
                occurred_at: at(2025, 12, 31)?,
            }),
            award,
        });
    }
    Ok(rows)
}

/// Imports `members` members' history (6 rows each) into a fresh SQLite store.
pub async fn import_figures(report: &mut Report, dir: &Path, members: u64) -> anyhow::Result<()> {
    let store = crate::open(&dir.join("import.db")).await?;
    let engine = crate::start_engine(store).await?;
    let rows = import_rows(members, engine.program().currency())?;
    let count = rows.len() as u64;
    let started = Instant::now();
    let imported = engine.import("bench", rows, |_, _| {}).await?;
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs_f64();
    anyhow::ensure!(
        imported.applied() && imported.imported == count,
        "the import refused rows: {:?}",
        imported.errors.first()
    );
    engine.shutdown().await;
    let rate = crate::fsync::per_second(count, elapsed);
    println!("import: {count} rows in {seconds:.2} s");
    report.parameter("import_rows", count);
    report.figure(
        "import_rows_per_s",
        "historical import into SQLite (loyalty import)",
        rate,
        "rows/s",
    );
    Ok(())
}
