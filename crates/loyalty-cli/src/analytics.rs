//! `loyalty analytics ...`: the retention reports of the HTTP API's `/v1/analytics`, computed
//! by an engine on the configured store, printed as readable tables (or as JSON).
use crate::settings::Settings;
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use loyalty_analytics::PeriodKind;
use rust_decimal::Decimal;

use crate::cli::{AnalyticsArgs, AnalyticsReport, PeriodArgs};
use crate::offline::{caught_up_engine, print_json};

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

fn percent(rate: Option<Decimal>) -> String {
    rate.map_or_else(
        || "-".into(),
        |r| format!("{}%", (r * Decimal::ONE_HUNDRED).round_dp(1)),
    )
}

fn money(amount: Decimal) -> String {
    amount.round_dp(2).to_string()
}

pub async fn run(settings: &Settings, args: &AnalyticsArgs) -> anyhow::Result<()> {
    let engine = caught_up_engine(settings).await?;
    let result = report(&engine, args).await;
    engine.shutdown().await;
    result
}

fn periods(
    engine: &loyalty_engine::Engine,
    p: &PeriodArgs,
) -> (PeriodKind, chrono::NaiveDate, chrono::NaiveDate) {
    let (from, to) = engine.period_span(p.period, p.from, p.to);
    (p.period, from, to)
}

async fn report(engine: &loyalty_engine::Engine, args: &AnalyticsArgs) -> anyhow::Result<()> {
    match &args.report {
        AnalyticsReport::Retention(p) => {
            let (kind, from, to) = periods(engine, p);
            let r = engine.retention_report(kind, from, to).await?;
            if args.json {
                return print_json(&r);
            }
            let mut t = table(&[
                "period",
                "at start",
                "at end",
                "new",
                "retained",
                "churned",
                "retention",
                "churn",
                "avg yearly spend",
                "revenue at risk",
            ]);
            for p in &r.periods {
                t.add_row(vec![
                    format!(
                        "{} .. {}",
                        p.period.start,
                        p.period.end.pred_opt().unwrap_or(p.period.end)
                    ),
                    p.customers_at_start.to_string(),
                    p.customers_at_end.to_string(),
                    p.new_customers.to_string(),
                    p.retained.to_string(),
                    p.churned.to_string(),
                    percent(p.retention_rate),
                    percent(p.churn_rate),
                    p.average_yearly_spend.map_or_else(|| "-".into(), money),
                    money(p.revenue_at_risk),
                ]);
            }
            println!("{t}");
            println!(
                "A customer bought in the {} days before a day; retention = (end - new) / start.",
                r.active_days
            );
        }
        AnalyticsReport::Cohorts(p) => {
            let (kind, from, to) = periods(engine, p);
            let r = engine.cohort_report(kind, from, to).await?;
            if args.json {
                return print_json(&r);
            }
            let width = r.cohorts.first().map_or(0, |c| c.active.len());
            let mut header = vec!["cohort".to_owned(), "members".to_owned()];
            header.extend((0..width).map(|k| format!("+{k}")));
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            let mut t = table(&header);
            for c in &r.cohorts {
                let mut row = vec![c.cohort.start.to_string(), c.members.to_string()];
                row.extend(c.rates.iter().map(|r| percent(Some(*r))));
                t.add_row(row);
            }
            println!("{t}");
            println!(
                "The share of each cohort that bought in its period (+0) and each one after it."
            );
        }
        AnalyticsReport::Concentration => {
            let r = engine.concentration_report().await?;
            if args.json {
                return print_json(&r);
            }
            let mut t = table(&["top members", "members", "net spend", "share"]);
            for p in &r.curve {
                t.add_row(vec![
                    format!("{}%", p.percent),
                    p.members.to_string(),
                    money(p.spend),
                    percent(p.share),
                ]);
            }
            println!("{t}");
            println!("{} members, net spend {}.", r.members, money(r.net_spend));
        }
        AnalyticsReport::Rfm { limit, after } => {
            let r = engine.rfm_page(after.clone(), *limit as usize).await?;
            if args.json {
                return print_json(&r);
            }
            let mut t = table(&[
                "member",
                "recency (days)",
                "frequency",
                "monetary",
                "R",
                "F",
                "M",
            ]);
            for s in &r.members {
                t.add_row(vec![
                    s.member_id.clone(),
                    s.recency_days.to_string(),
                    s.frequency.to_string(),
                    money(s.monetary),
                    s.r.to_string(),
                    s.f.to_string(),
                    s.m.to_string(),
                ]);
            }
            println!("{t}");
            println!("{} members scored as of {}.", r.scored, r.as_of);
            if let Some(next) = &r.next_after {
                println!("More: --after {next}");
            }
        }
        AnalyticsReport::Model { calibration_end } => {
            let r = engine.model_report(*calibration_end).await?;
            if args.json {
                return print_json(&r);
            }
            let mut t = table(&["model", "parameters", "log-likelihood", "members"]);
            let b = &r.bg_nbd;
            t.add_row(vec![
                "BG/NBD (purchase days)".to_owned(),
                format!("r {} alpha {} a {} b {}", b.r, b.alpha, b.a, b.b),
                b.log_likelihood.to_string(),
                b.members.to_string(),
            ]);
            match &r.gamma_gamma {
                Some(g) => t.add_row(vec![
                    "Gamma-Gamma (spend)".to_owned(),
                    format!("p {} q {} gamma {}", g.p, g.q, g.gamma),
                    g.log_likelihood.to_string(),
                    g.members.to_string(),
                ]),
                None => t.add_row(vec![
                    "Gamma-Gamma (spend)",
                    "not enough repeat buyers",
                    "-",
                    "-",
                ]),
            };
            println!("{t}");
            println!(
                "Fitted on the history up to {} in {}, {} ms ({}). A new customer makes {} repeat purchase days over {} {}.",
                r.calibration_end,
                unit(r.time_unit),
                r.fit_millis,
                r.version,
                r.expected_purchases_new,
                r.horizon,
                unit(r.time_unit)
            );
        }
        AnalyticsReport::Backtest {
            calibration_end,
            holdout_end,
        } => {
            let r = engine
                .backtest_report(*calibration_end, *holdout_end)
                .await?;
            if args.json {
                return print_json(&r);
            }
            let mut t = table(&[
                "repeat days before",
                "members",
                "predicted (mean)",
                "actual (mean)",
            ]);
            for b in &r.bins {
                t.add_row(vec![
                    b.label.clone(),
                    b.members.to_string(),
                    b.mean_predicted.to_string(),
                    b.mean_actual.to_string(),
                ]);
            }
            println!("{t}");
            println!(
                "Fitted up to {}; {} members predicted {} purchase days up to {}, and made {}.",
                r.calibration_end, r.members, r.predicted_total, r.holdout_end, r.actual_total
            );
        }
        AnalyticsReport::AtRisk { limit } => {
            let r = engine.at_risk_report(*limit as usize).await?;
            if args.json {
                return print_json(&r);
            }
            let mut t = table(&["member", "P(alive)", "expected value", "value at risk"]);
            for m in &r.members {
                t.add_row(vec![
                    m.member_id.clone(),
                    m.p_alive.to_string(),
                    money(m.expected_value),
                    money(m.value_at_risk),
                ]);
            }
            println!("{t}");
            println!(
                "Members with P(alive) below {} as of {}, value over {} {} ({}).",
                r.p_alive_below,
                r.as_of,
                r.horizon,
                unit(r.time_unit),
                r.version
            );
        }
        AnalyticsReport::Member { member } => {
            let id = loyalty_core::MemberId::parse(member)?;
            let value = engine.member_value(&id).await?.ok_or_else(|| {
                anyhow::anyhow!("member {member} is unknown or has not bought yet")
            })?;
            if args.json {
                return print_json(&value);
            }
            let mut t = table(&["", "value"]);
            t.add_row(vec![
                "repeat purchase days".to_owned(),
                value.frequency.to_string(),
            ]);
            t.add_row(vec!["P(alive)".to_owned(), value.p_alive.to_string()]);
            t.add_row(vec![
                format!(
                    "expected purchase days ({} {})",
                    value.horizon,
                    unit(value.time_unit)
                ),
                value.expected_purchases.to_string(),
            ]);
            t.add_row(vec![
                "expected spend per purchase day".to_owned(),
                value
                    .expected_average_spend
                    .map_or_else(|| "-".into(), money),
            ]);
            t.add_row(vec![
                "lifetime value".to_owned(),
                value.lifetime_value.map_or_else(|| "-".into(), money),
            ]);
            println!("{t}");
        }
    }
    Ok(())
}

fn unit(unit: loyalty_analytics::TimeUnit) -> &'static str {
    match unit {
        loyalty_analytics::TimeUnit::Days => "days",
        loyalty_analytics::TimeUnit::Weeks => "weeks",
    }
}
