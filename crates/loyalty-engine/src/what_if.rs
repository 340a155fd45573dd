//! What-if: the log's commands of a period decided again under another program, in memory, and
//! compared with what was recorded (`loyalty what-if`). The rules live in
//! `loyalty_core::what_if`; this module lists the members, reads each one's stream, groups its
//! events into the decisions that wrote them, and sums the outcomes. Nothing is appended.
//!
//! Memory: one member's history (her two states, recorded and what-if, and one page of events)
//! per member in flight, at most [`MAX_IN_FLIGHT`] members at once over the cores; the ids of
//! at most [`MEMBERS_PER_BATCH`] members at a time; and the totals (a few numbers, the tiers and
//! the ten largest differences each way).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loyalty_core::what_if::{
    CARRIED_OVER_UNCHANGED, MemberOutcome, MemberWhatIf, Next, Period, RecordedDecision,
    WhatIfSummary, WhatIfTotals,
};
use loyalty_core::{Event, MemberId, MemberStatus, Program};
use loyalty_store::{Direction, StreamFrom};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::codec::{self, member_stream};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::metadata::EventMetadata;

/// Members whose ids are listed at once: the what-if walks the read model's members in this
/// many hash buckets, so a million members do not mean a million ids in memory.
pub const MEMBERS_PER_BATCH: usize = 65_536;

/// Most members worked on at once (a bound whatever the number of cores).
pub const MAX_IN_FLIGHT: usize = 64;

/// Imports tag their metadata's correlation id `import:<batch>` (see `import.rs`): their awards
/// are the legacy program's, not a rule's.
const IMPORT_CORRELATION_PREFIX: &str = "import:";

/// A program, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramName {
    pub name: String,
    /// What its decisions record as `rules_version`.
    pub rules_version: String,
}

impl ProgramName {
    fn of(program: &Program) -> ProgramName {
        ProgramName {
            name: program.name().to_owned(),
            rules_version: program.rules_version().to_owned(),
        }
    }
}

/// An event kind carried over unchanged, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnchangedKind {
    pub event_type: &'static str,
    pub note: &'static str,
}

/// `loyalty what-if`'s answer: the period as recorded beside the period decided again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIfReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The program in force (values the recorded side).
    pub recorded_program: ProgramName,
    /// The program tried (decides and values the what-if side).
    pub what_if_program: ProgramName,
    /// Member streams read, and their events read (up to the period's end).
    pub streams_read: u64,
    pub events_read: u64,
    /// Events skipped because they do not decode (damaged, or another application's), as the
    /// read models skip them; an event of a newer schema stops the run instead.
    pub unreadable_events: u64,
    pub elapsed_ms: u64,
    #[serde(flatten)]
    pub summary: WhatIfSummary,
    /// Event kinds whose points no rule decides (kept as their commands state them).
    pub carried_over_unchanged: Vec<UnchangedKind>,
}

/// One member's part: her outcome (none if not enrolled by the period's end) and the events read.
/// A member's outcome, the events read and the events skipped as unreadable.
type MemberPart = (Option<MemberOutcome>, u64, u64);

impl Engine {
    /// Decides the commands the log recorded in `period` again under `program`, member by
    /// member and in memory (nothing is appended), and compares the outcome with the record.
    /// `progress` is told the members done so far. Members are those of the read models once
    /// they caught up with the log's head.
    pub async fn what_if(
        &self,
        program: Arc<Program>,
        period: Period,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<WhatIfReport, EngineError> {
        let started = std::time::Instant::now();
        let head = self.inner.store.head_position().await?;
        self.wait_for(head).await?;
        let mut rows = 0usize;
        self.inner.model.for_each(|_, _| rows += 1);
        let buckets = rows.div_ceil(MEMBERS_PER_BATCH).max(1);
        let in_flight = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_mul(2)
            .clamp(1, MAX_IN_FLIGHT);
        let mut totals = WhatIfTotals::default();
        let (mut streams, mut events, mut unreadable, mut done) = (0u64, 0u64, 0u64, 0u64);
        for bucket in 0..buckets {
            let mut members = Vec::new();
            self.inner.model.for_each(|member, row| {
                if row.status() != MemberStatus::NotEnrolled
                    && bucket_of(member, buckets) == bucket
                    && let Ok(id) = MemberId::parse(member)
                {
                    members.push(id);
                }
            });
            let mut tasks: JoinSet<Result<MemberPart, EngineError>> = JoinSet::new();
            let mut members = members.into_iter();
            loop {
                while tasks.len() < in_flight {
                    let Some(member) = members.next() else { break };
                    let engine = self.clone();
                    let program = program.clone();
                    tasks.spawn(
                        async move { engine.member_what_if(member, &program, period).await },
                    );
                }
                let Some(joined) = tasks.join_next().await else {
                    break;
                };
                let (outcome, read, skipped) = joined
                    .map_err(|e| EngineError::Corrupt(format!("what-if task failed: {e}")))??;
                streams += 1;
                events = events.saturating_add(read);
                unreadable = unreadable.saturating_add(skipped);
                if let Some(outcome) = outcome {
                    totals.add(outcome);
                }
                done += 1;
                if done.is_multiple_of(1_000) {
                    progress(done);
                }
            }
        }
        progress(done);
        Ok(WhatIfReport {
            from: period.from(),
            to: period.to(),
            recorded_program: ProgramName::of(&self.inner.program),
            what_if_program: ProgramName::of(&program),
            streams_read: streams,
            events_read: events,
            unreadable_events: unreadable,
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            summary: totals.finish(&self.inner.program, &program),
            carried_over_unchanged: CARRIED_OVER_UNCHANGED
                .iter()
                .map(|(event_type, note)| UnchangedKind { event_type, note })
                .collect(),
        })
    }

    /// One member: her stream read page by page up to the first decision past the period, each
    /// decision (the events of one append, which share one metadata document) handed to the
    /// core in order.
    async fn member_what_if(
        &self,
        member: MemberId,
        program: &Program,
        period: Period,
    ) -> Result<MemberPart, EngineError> {
        let stream = member_stream(&member);
        let mut run = MemberWhatIf::new(member, program, period);
        let mut decision: Vec<Event> = Vec::new();
        let mut metadata: Option<EventMetadata> = None;
        let mut next = 0u64;
        let mut read = 0u64;
        let mut skipped = 0u64;
        let page_size = self.inner.page_size;
        'pages: loop {
            let page = self
                .inner
                .store
                .read_stream(
                    &stream,
                    StreamFrom::Revision(next),
                    Direction::Forwards,
                    page_size,
                )
                .await?;
            let short = page.len() < page_size;
            for recorded in &page {
                next = recorded.revision.saturating_add(1);
                read += 1;
                let event = match codec::decode(recorded) {
                    Ok(event) => event,
                    Err(e @ EngineError::NewerSchema(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(stream = %recorded.stream, position = %recorded.position,
                            error = %e, "what-if skips an unreadable event");
                        skipped += 1;
                        continue;
                    }
                };
                let meta = codec::metadata(recorded);
                // A new metadata document (or none: an event written without the engine) starts
                // a new decision.
                let same = meta.is_some() && meta == metadata;
                if !same
                    && !decision.is_empty()
                    && apply(&mut run, &decision, metadata.as_ref()) == Next::Done
                {
                    decision.clear();
                    break 'pages;
                }
                if !same {
                    decision.clear();
                    metadata = meta;
                }
                decision.push(event);
            }
            if short {
                break;
            }
        }
        if !decision.is_empty() {
            apply(&mut run, &decision, metadata.as_ref());
        }
        Ok((run.finish(), read, skipped))
    }
}

/// Hands one decision to the core.
fn apply(run: &mut MemberWhatIf<'_>, events: &[Event], metadata: Option<&EventMetadata>) -> Next {
    let recorded_at = match (metadata, events.first()) {
        (Some(m), _) => m.recorded_at,
        (None, Some(e)) => e.occurred_at(),
        (None, None) => return Next::More,
    };
    run.apply(&RecordedDecision {
        events,
        command: metadata.map(|m| m.command.as_str()),
        occurred_at: metadata.map(|m| m.occurred_at),
        recorded_at,
        imported: metadata
            .and_then(|m| m.correlation_id.as_deref())
            .is_some_and(|c| c.starts_with(IMPORT_CORRELATION_PREFIX)),
    })
}

/// Which batch a member falls in: a hash of her id (SipHash with fixed keys, so the same member
/// lands in the same batch on every scan of the run).
fn bucket_of(member: &str, buckets: usize) -> usize {
    let mut h = DefaultHasher::new();
    member.hash(&mut h);
    usize::try_from(h.finish() % u64::try_from(buckets.max(1)).unwrap_or(1)).unwrap_or(0)
}
