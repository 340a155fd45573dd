//! `loyalty what-if --program NEW.toml --from DATE --to DATE [--json]`: the commands the log
//! recorded in the period decided again under another program, in memory, beside what was
//! recorded. An engine is started on the configured store (its read models list the members);
//! the what-if itself appends nothing.
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use loyalty_core::calendar;
use loyalty_core::what_if::{MemberDifference, Period, Side};
use loyalty_engine::WhatIfReport;
use rust_decimal::Decimal;

use crate::offline::{caught_up_engine, print_json};
use crate::runtime::load_program;
use crate::settings::Settings;

#[derive(Debug, Clone, Args)]
pub struct WhatIfArgs {
    /// The program to try: a program file like config/program.toml.
    #[arg(long)]
    pub program: PathBuf,
    /// The period's start: an RFC 3339 instant, or a date (its midnight in the timezone of the
    /// program in force). Decisions are placed by the server's clock that recorded them.
    #[arg(long)]
    pub from: When,
    /// The period's end, excluded (same forms as --from).
    #[arg(long)]
    pub to: When,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// An instant, or a local date that stands for its first instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

impl FromStr for When {
    type Err = String;

    fn from_str(s: &str) -> Result<When, String> {
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            return Ok(When::Instant(at.with_timezone(&Utc)));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(When::Date)
            .map_err(|_| format!("{s:?} is neither a date (2026-01-31) nor an RFC 3339 instant"))
    }
}

impl When {
    /// The instant; a date's first instant in the timezone of `program`.
    fn resolve(self, program: &loyalty_core::Program) -> anyhow::Result<DateTime<Utc>> {
        match self {
            When::Instant(at) => Ok(at),
            When::Date(day) => calendar::start_of_day(day, program.timezone())
                .with_context(|| format!("{day} has no start in the program's timezone")),
        }
    }
}

pub async fn run(settings: &Settings, args: &WhatIfArgs) -> anyhow::Result<()> {
    let program = Arc::new(load_program(&args.program)?);
    let engine = caught_up_engine(settings).await?;
    let result = report(&engine, program, args).await;
    engine.shutdown().await;
    let (report, currency) = result?;
    if args.json {
        return print_json(&report);
    }
    print_tables(&report, &currency);
    Ok(())
}

async fn report(
    engine: &loyalty_engine::Engine,
    program: Arc<loyalty_core::Program>,
    args: &WhatIfArgs,
) -> anyhow::Result<(WhatIfReport, String)> {
    let in_force = engine.program();
    let (from, to) = (args.from.resolve(in_force)?, args.to.resolve(in_force)?);
    let period = Period::new(from, to)
        .with_context(|| format!("--from ({from}) must be before --to ({to})"))?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {human_pos} members decided again")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let progress = bar.clone();
    let report = engine
        .what_if(program, period, &move |members| {
            progress.set_position(members)
        })
        .await
        .context("deciding the period again");
    bar.finish_and_clear();
    Ok((report?, engine.program().currency().to_string()))
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    // Numbers read best right-aligned; the first column names the row.
    for i in 1..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// A signed difference, `+` shown.
fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn signed_money(d: Decimal) -> String {
    let d = d.round_dp(2);
    if d > Decimal::ZERO {
        format!("+{d}")
    } else {
        d.to_string()
    }
}

fn print_tables(r: &WhatIfReport, currency: &str) {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    println!(
        "What-if: {} ({}) in place of {} ({})",
        r.what_if_program.name,
        short(&r.what_if_program.rules_version),
        r.recorded_program.name,
        short(&r.recorded_program.rules_version)
    );
    println!(
        "Decisions recorded from {} to {} (excluded): {} members, {} events read in {:.1} s; \
         {} commands decided again, {} refused",
        at(r.from),
        at(r.to),
        r.summary.members,
        r.events_read,
        Duration::from_millis(r.elapsed_ms).as_secs_f64(),
        r.summary.commands_decided,
        r.summary.commands_refused,
    );
    if r.unreadable_events > 0 {
        println!(
            "{} events skipped: they do not decode (damaged, or another application's)",
            r.unreadable_events
        );
    }
    println!();
    let (a, b) = (&r.summary.recorded, &r.summary.what_if);
    let mut t = table(&["", "recorded", "what-if", "difference"]);
    let mut points = |label: &str, f: fn(&Side) -> loyalty_core::Points| {
        let (x, y) = (f(a).value(), f(b).value());
        t.add_row(vec![
            label.to_owned(),
            x.to_string(),
            y.to_string(),
            signed(y.saturating_sub(x)),
        ]);
    };
    points("points issued", |s| s.points_issued);
    points("points redeemed", |s| s.points_redeemed);
    points("points expired", |s| s.points_expired);
    points("points clawed back", |s| s.points_clawed_back);
    points("available at the end", |s| s.points_available);
    points("pending at the end", |s| s.points_pending);
    points("outstanding at the end", |s| s.points_outstanding);
    points("debt at the end", |s| s.debt);
    t.add_row(vec![
        "point value".to_owned(),
        a.point_value.to_string(),
        b.point_value.to_string(),
        signed_money(b.point_value - a.point_value),
    ]);
    t.add_row(vec![
        format!("liability ({currency})"),
        a.liability.round_dp(2).to_string(),
        b.liability.round_dp(2).to_string(),
        signed_money(b.liability - a.liability),
    ]);
    let mut tiers: Vec<&str> = a.tiers.iter().map(|t| t.tier.as_str()).collect();
    for t in &b.tiers {
        if !tiers.contains(&t.tier.as_str()) {
            tiers.push(&t.tier);
        }
    }
    let members_in = |side: &Side, tier: &str| {
        side.tiers
            .iter()
            .find(|t| t.tier == tier)
            .map_or(0, |t| t.members)
    };
    for tier in tiers {
        let (x, y) = (members_in(a, tier), members_in(b, tier));
        t.add_row(vec![
            format!("members in {tier}"),
            x.to_string(),
            y.to_string(),
            signed(i64::try_from(y).unwrap_or(i64::MAX) - i64::try_from(x).unwrap_or(i64::MAX)),
        ]);
    }
    t.add_row(vec![
        "closed members".to_owned(),
        a.closed_members.to_string(),
        b.closed_members.to_string(),
        String::new(),
    ]);
    println!("{t}");
    println!(
        "\nBy available points at the end: {} better off, {} worse off, {} unchanged",
        r.summary.better_off, r.summary.worse_off, r.summary.unchanged
    );
    differences("Largest gains", &r.summary.largest_gains);
    differences("Largest losses", &r.summary.largest_losses);

    let mut t = table(&["command", "decided on", "decided", "refused"]);
    if let Some(c) = t.column_mut(1) {
        c.set_cell_alignment(CellAlignment::Left);
    }
    for c in &r.summary.commands {
        t.add_row(vec![
            c.command.to_owned(),
            match c.basis {
                loyalty_core::what_if::Basis::Rules => "the new rules".to_owned(),
                loyalty_core::what_if::Basis::Stated => "its own points".to_owned(),
            },
            c.decided.to_string(),
            c.refused.to_string(),
        ]);
    }
    println!("\nCommands of the period\n{t}");
    if !r.summary.refusals.is_empty() {
        let mut t = table(&["command", "refused because", "times"]);
        for f in &r.summary.refusals {
            t.add_row(vec![
                f.command.to_owned(),
                f.reason.to_owned(),
                f.count.to_string(),
            ]);
        }
        println!("\nRefused by the new program (counted, not applied)\n{t}");
    }
    println!("\nCarried over unchanged (no rule decides their points):");
    for k in &r.carried_over_unchanged {
        println!("  {}: {}", k.event_type, k.note);
    }
    if !r.summary.carried_over.is_empty() {
        println!("Folded as recorded (the log does not say which command made them):");
        for c in &r.summary.carried_over {
            println!("  {}: {} event(s)", c.event_type, c.events);
        }
    }
}

fn differences(title: &str, list: &[MemberDifference]) {
    if list.is_empty() {
        return;
    }
    let mut t = table(&["member", "recorded", "what-if", "difference"]);
    for d in list {
        t.add_row(vec![
            d.member_id.to_string(),
            d.recorded_available.to_string(),
            d.what_if_available.to_string(),
            signed(d.difference.value()),
        ]);
    }
    println!("\n{title} (available points at the end)\n{t}");
}

/// A version hash shortened for a title (labels and short versions whole).
fn short(version: &str) -> &str {
    if version.len() == 64 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        &version[..12]
    } else {
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_bound_is_a_date_or_an_instant_and_nothing_else() {
        assert_eq!(
            "2026-03-01".parse::<When>(),
            Ok(When::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()))
        );
        assert!(matches!(
            "2026-03-01T10:00:00+01:00".parse::<When>(),
            Ok(When::Instant(at)) if at.to_rfc3339() == "2026-03-01T09:00:00+00:00"
        ));
        let refused = "March".parse::<When>().unwrap_err();
        assert!(refused.contains("neither a date"), "{refused}");
    }
}
