//! Commands that work on the store directly, without the HTTP server: `replay`, `verify`,
//! `statement` (`liability` has a module of its own). Each starts an engine on the configured
//! store, lets its read models catch up with the head of the log, and asks it.
use std::sync::Arc;
use std::time::Duration;

use crate::settings::Settings;
use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use loyalty_core::MemberId;
use loyalty_engine::{Engine, SystemClock};

use crate::runtime::start_read_only_engine;

/// Starts an engine that writes nothing to the log (every caller only reads) and waits until
/// its read models reached the head of the log.
pub(crate) async fn caught_up_engine(settings: &Settings) -> anyhow::Result<Engine> {
    let engine = start_read_only_engine(settings, Arc::new(SystemClock)).await?;
    let head = engine
        .store()
        .head_position()
        .await
        .context("reading the head of the log")?;
    // Large logs take longer than one read wait: keep waiting while progress is made.
    loop {
        match engine.wait_for(head).await {
            Ok(()) => return Ok(engine),
            Err(loyalty_engine::EngineError::NotCaughtUp { .. }) => {
                tracing::info!(position = %engine.projection_position(), "still catching up");
            }
            Err(e) => return Err(e).context("catching up with the log"),
        }
    }
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `loyalty replay`: rebuilds every projection from the log, with a progress bar, and prints
/// the totals.
pub async fn replay(settings: &Settings) -> anyhow::Result<()> {
    let engine = start_read_only_engine(settings, Arc::new(SystemClock)).await?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {human_pos} events replayed")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let progress = bar.clone();
    let report = engine
        .replay(move |events| progress.set_position(events))
        .await
        .context("replaying the log")?;
    bar.finish_and_clear();
    print_json(&report)?;
    engine.shutdown().await;
    Ok(())
}

/// `loyalty verify`: replays into fresh projections and compares them with the live ones.
/// Returns whether they are identical.
pub async fn verify(settings: &Settings) -> anyhow::Result<bool> {
    let engine = caught_up_engine(settings).await?;
    let report = engine.verify().await.context("verifying the read models")?;
    print_json(&report)?;
    let clean = report.is_clean();
    if clean {
        eprintln!("verify: clean ({} events replayed)", report.events_replayed);
    } else {
        eprintln!("verify: {} difference(s)", report.differences.len());
    }
    engine.shutdown().await;
    Ok(clean)
}

/// `loyalty statement <member> [--as-of]`.
pub async fn statement(
    settings: &Settings,
    member: &str,
    as_of: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let member = MemberId::parse(member).context("member id")?;
    let engine = caught_up_engine(settings).await?;
    match as_of {
        Some(at) => {
            let snapshot = engine
                .member_as_of(&member, at)
                .await?
                .with_context(|| format!("member {member} did not exist at {at}"))?;
            print_json(&snapshot)?;
        }
        None => {
            let profile = engine
                .member_profile(&member)
                .with_context(|| format!("no member {member}"))?;
            print_json(&profile)?;
            let mut cursor = None;
            loop {
                let page = engine.history(&member, cursor, 100).await?;
                print_json(&page.lines)?;
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    engine.shutdown().await;
    Ok(())
}
