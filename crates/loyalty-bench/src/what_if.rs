//! `--only what-if`: the what-if (`loyalty what-if`) over a generated history, decided again
//! with take-home beans earning triple instead of double. Its rate in events read per second,
//! and what that rate makes of a year of a million-member program on this machine.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::Duration as ChronoDuration;
use loyalty_core::Program;
use loyalty_core::what_if::Period;
use loyalty_store::EventStore;

use crate::report::Report;
use crate::{caught_up_to, open, start_engine, workload, write_dataset};

/// Members in the generated history: the what-if reads each member's stream, so its rate
/// settles with far fewer members than the replay needs.
const MEMBERS: u64 = 100_000;
const QUICK_MEMBERS: u64 = 2_000;

/// A member of a real program in a year: about two purchases a month, their tier changes, a
/// refund, a few redemptions, expiries and their notices. The generated members have fewer
/// (their history spans weeks), so their events carry more of the per-stream cost than a
/// real year's would: the extrapolation errs on the slow side.
const EVENTS_PER_MEMBER_YEAR: f64 = 30.0;
const PROGRAM_MEMBERS: f64 = 1_000_000.0;

/// The demo program with take-home beans earning triple: the rules tried.
fn beans_tripled() -> anyhow::Result<Program> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/program.toml");
    let text = std::fs::read_to_string(&path)?;
    let from = "category = \"coffee-beans\"                 # take-home beans earn double\nmultiplier = \"2\"";
    anyhow::ensure!(
        text.contains(from),
        "config/program.toml no longer has the beans multiplier the what-if bench changes"
    );
    let changed = text.replacen(from, "category = \"coffee-beans\"\nmultiplier = \"3\"", 1);
    Ok(Program::from_toml_str(&changed)?)
}

pub async fn figures(report: &mut Report, dir: &Path, quick: bool) -> anyhow::Result<()> {
    let members = if quick { QUICK_MEMBERS } else { MEMBERS };
    let store: Arc<dyn EventStore> = open(&dir.join("what-if.db")).await?;
    let written = write_dataset(store.clone(), members, "what-if data set").await?;
    let engine = start_engine(store.clone()).await?;
    caught_up_to(&engine, store.head_position().await?).await;
    // Every decision of the generated history is in the period (it starts at the epoch and
    // spans less than two years).
    let period = Period::new(
        workload::epoch() - ChronoDuration::days(1),
        workload::epoch() + ChronoDuration::days(730),
    )
    .ok_or_else(|| anyhow::anyhow!("the what-if period is empty"))?;
    let started = Instant::now();
    let what_if = engine
        .what_if(Arc::new(beans_tripled()?), period, &|_| {})
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    engine.shutdown().await;
    anyhow::ensure!(
        what_if.summary.members == members && what_if.summary.commands_decided > 0,
        "the what-if saw {} members and decided {} commands",
        what_if.summary.members,
        what_if.summary.commands_decided
    );
    let rate = what_if.events_read as f64 / elapsed.max(f64::EPSILON);
    let year = PROGRAM_MEMBERS * EVENTS_PER_MEMBER_YEAR / rate.max(f64::EPSILON);
    println!(
        "what-if: {} members, {} events ({} written) decided again in {elapsed:.2} s: \
         {rate:.0} events/s; a year of a million-member program ({EVENTS_PER_MEMBER_YEAR} \
         events a member): {year:.0} s",
        what_if.summary.members, what_if.events_read, written.events
    );
    report.parameter("what_if_members", members);
    report.parameter("what_if_events", what_if.events_read);
    report.parameter("what_if_events_per_member_year", EVENTS_PER_MEMBER_YEAR);
    report.figure(
        "what_if_events_per_s",
        "what-if, events decided again",
        rate,
        "events/s",
    );
    report.figure(
        "what_if_year_1m_members_seconds",
        "what-if, a year of 1M members (extrapolated)",
        year,
        "s",
    );
    Ok(())
}
