//! `loyalty liability --as-of T`: the liability report (IFRS 15 style) replayed from the log:
//! points outstanding by expiry bucket, their redemption value, and the breakage estimate
//! from the program's own history (see `loyalty_engine::liability` for the formula). A
//! readable table by default, CSV with `--csv`, the HTTP API's JSON with `--json`.
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use loyalty_engine::{
    DEFAULT_BREAKAGE_LOOKBACK_DAYS, ExpiryBucketKind, LiabilityStatement,
    MAX_BREAKAGE_LOOKBACK_DAYS, SystemClock,
};
use rust_decimal::Decimal;

use crate::runtime::start_read_only_engine;
use crate::settings::Settings;

#[derive(Debug, Clone, Args)]
pub struct LiabilityArgs {
    /// RFC 3339 instant, e.g. 2026-12-31T23:59:59Z.
    #[arg(long)]
    pub as_of: DateTime<Utc>,
    /// Days before --as-of over which the breakage rate is measured.
    #[arg(long, default_value_t = DEFAULT_BREAKAGE_LOOKBACK_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BREAKAGE_LOOKBACK_DAYS)))]
    pub lookback_days: u32,
    /// Print CSV (one row per expiry bucket, then the totals) instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print the HTTP API's JSON (`GET /v1/liability`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(settings: &Settings, args: &LiabilityArgs) -> anyhow::Result<()> {
    // The report replays the log itself: the read models need not catch up first.
    let engine = start_read_only_engine(settings, Arc::new(SystemClock)).await?;
    let report = engine
        .liability_statement(args.as_of, args.lookback_days)
        .await
        .context("computing the liability");
    engine.shutdown().await;
    let report = report?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let wire = loyalty_server::wire::LiabilityReport::from(&report);
        writeln!(out, "{}", serde_json::to_string_pretty(&wire)?)?;
    } else if args.csv {
        write_csv(&report, &mut out)?;
    } else {
        write!(out, "{}", table(&report))?;
    }
    Ok(())
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Money as the table shows it: two decimals.
fn money(amount: Decimal) -> String {
    let mut shown = amount.round_dp(2);
    shown.rescale(2);
    shown.to_string()
}

fn percent(rate: Decimal) -> String {
    format!("{}%", (rate * Decimal::ONE_HUNDRED).round_dp(2).normalize())
}

fn label(kind: ExpiryBucketKind) -> &'static str {
    match kind {
        ExpiryBucketKind::ExpiredNotSwept => "expired, not yet swept *",
        ExpiryBucketKind::Within30Days => "within 30 days",
        ExpiryBucketKind::Within90Days => "within 90 days",
        ExpiryBucketKind::Within180Days => "within 180 days",
        ExpiryBucketKind::Within365Days => "within 365 days",
        ExpiryBucketKind::Later => "later",
        ExpiryBucketKind::NoExpiry => "no expiry date",
    }
}

/// Whether the breakage rate applies to the bucket (dated and owed).
fn rated(kind: ExpiryBucketKind) -> bool {
    !matches!(
        kind,
        ExpiryBucketKind::ExpiredNotSwept | ExpiryBucketKind::NoExpiry
    )
}

/// The report as a readable table and the lines under it.
pub fn table(r: &LiabilityStatement) -> String {
    let t = &r.totals;
    let b = &r.breakage;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "expiry",
        "expires by",
        "lots",
        "points",
        "value",
        "expected breakage",
        "breakage value",
    ]);
    // Numbers read best right-aligned; the first column names the row.
    for i in 2..7 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let (mut lots, mut points) = (0u64, 0i64);
    for bucket in &r.buckets {
        if bucket.owed {
            lots += bucket.lots;
            points = points.saturating_add(bucket.points.value());
        }
        table.add_row(vec![
            label(bucket.bucket).to_owned(),
            bucket.expires_by.map_or_else(|| "-".into(), instant),
            bucket.lots.to_string(),
            bucket.points.to_string(),
            money(bucket.value),
            // No breakage is expected of what cannot expire or expired already.
            if rated(bucket.bucket) {
                bucket.expected_breakage_points.to_string()
            } else {
                "-".into()
            },
            if rated(bucket.bucket) {
                money(bucket.expected_breakage_value)
            } else {
                "-".into()
            },
        ]);
    }
    table.add_row(vec![
        "outstanding (owed)".to_owned(),
        String::new(),
        lots.to_string(),
        points.to_string(),
        money(t.liability),
        b.expected_points.to_string(),
        money(b.expected_value),
    ]);
    let currency = &t.currency;
    format!(
        "Points liability as of {as_of} ({currency}, one point = {value}), {events} events \
         replayed\n{table}\n\
         * past their expiry, not yet recorded by the expiry sweep: not owed.\n\n\
         Breakage rate: {rate} of the points settled over the {days} days to {as_of} expired \
         rather than were redeemed ({expired} expired, {redeemed} redeemed).\n\
         Liability:                  {liability} {currency}\n\
         Expected breakage:          {breakage} {currency} ({breakage_points} points)\n\
         Liability net of breakage:  {net} {currency}\n",
        as_of = instant(r.as_of),
        value = t.point_value,
        events = r.events_replayed,
        rate = percent(b.rate),
        days = b.lookback_days,
        expired = b.points_expired,
        redeemed = b.points_redeemed,
        liability = money(t.liability),
        breakage = money(b.expected_value),
        breakage_points = b.expected_points,
        net = money(r.liability_net_of_breakage),
    )
}

/// The report as CSV: a row per bucket, `total_owed` (the liability and the expected breakage)
/// and `net_of_breakage` (its `value` is the liability net of breakage). Amounts are exact
/// decimals, instants RFC 3339; the breakage rate is on the rows it applies to.
pub fn write_csv(r: &LiabilityStatement, out: impl Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "as_of",
        "bucket",
        "expires_after",
        "expires_by",
        "owed",
        "lots",
        "points",
        "value",
        "breakage_rate",
        "expected_breakage_points",
        "expected_breakage_value",
        "currency",
    ])?;
    let as_of = instant(r.as_of);
    let currency = r.totals.currency.to_string();
    let rate = r.breakage.rate.to_string();
    let (mut lots, mut points) = (0u64, 0i64);
    for b in &r.buckets {
        if b.owed {
            lots += b.lots;
            points = points.saturating_add(b.points.value());
        }
        w.write_record([
            as_of.as_str(),
            b.bucket.as_str(),
            &b.expires_after.map(instant).unwrap_or_default(),
            &b.expires_by.map(instant).unwrap_or_default(),
            if b.owed { "true" } else { "false" },
            &b.lots.to_string(),
            &b.points.to_string(),
            &b.value.to_string(),
            if rated(b.bucket) { rate.as_str() } else { "" },
            &b.expected_breakage_points.to_string(),
            &b.expected_breakage_value.to_string(),
            &currency,
        ])?;
    }
    w.write_record([
        as_of.as_str(),
        "total_owed",
        "",
        "",
        "true",
        &lots.to_string(),
        &points.to_string(),
        &r.totals.liability.to_string(),
        &rate,
        &r.breakage.expected_points.to_string(),
        &r.breakage.expected_value.to_string(),
        &currency,
    ])?;
    w.write_record([
        as_of.as_str(),
        "net_of_breakage",
        "",
        "",
        "true",
        "",
        "",
        &r.liability_net_of_breakage.to_string(),
        "",
        "",
        "",
        &currency,
    ])?;
    w.flush()?;
    Ok(())
}
