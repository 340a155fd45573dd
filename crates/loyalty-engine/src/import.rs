//! Historical imports from a legacy program: members with their enrollment dates, purchases
//! and refunds with their real dates, opening balances. The one path that may record times far
//! in the past (the live commands keep their time window).
//!
//! An import is all or nothing as far as its rows go: every row is first decided, member by
//! member in file order, against the member's stream as it is (`decide_imported`), and the
//! sales it records are checked against every other member's (in the batch and in the store).
//! Any refusal reports its line and reason, and nothing is appended. Only a batch without one
//! is appended, a group of members per multi-stream append, each member's stream expected at
//! the revision it was decided on. Rows are idempotent on their ids (the same client ids as the
//! live commands), so a run interrupted while appending is completed by running it again, and a
//! re-run imports nothing twice.
//!
//! Imported events say so in their metadata: actor `import`, correlation id
//! `import:<batch id>`, causation id `line:<line>`.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
use loyalty_core::{
    Command, ImportedAward, MemberId, PurchaseKey, ServerTime, TimeWindow, decide_imported, evolve,
};
use loyalty_store::{EventData, EventStore, ExpectedRevision, StreamAppend};
use serde::Serialize;
use tokio_util::task::AbortOnDropHandle;

use crate::codec::{self, member_stream};
use crate::engine::{CachedMember, Engine};
use crate::error::EngineError;
use crate::metadata::{CommandContext, EventMetadata};
use crate::reservation;

/// Most rows one import takes: its rows and decisions are held in memory until the append.
pub const MAX_IMPORT_ROWS: usize = 2_000_000;
/// Most refusals an import report lists (the count goes on).
const MAX_ERRORS_LISTED: usize = 1000;
/// How far back an import may date its history.
const IMPORT_WINDOW: TimeDelta = TimeDelta::days(365 * 100);
/// Members read, and groups appended, at once.
const CONCURRENCY: usize = 16;
/// Chunks decided at once (at most one per core).
const MAX_DECIDING_CHUNKS: usize = 4;
/// Members decided by one blocking task: enough to make the hop to its thread negligible, few
/// enough that every core gets chunks and the progress bar moves.
const DECIDE_CHUNK: usize = 512;
/// Streams looked up in one batch.
const EXISTS_CHUNK: usize = 4096;

/// Where an import is, for a progress bar: rows decided, then rows appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportPhase {
    Deciding,
    Appending,
}

/// One row: the command it stands for, how a purchase earns, and where it came from.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// The row's line in its file (1-based, the header being line 1 of a CSV file).
    pub line: u64,
    pub command: Command,
    pub award: ImportedAward,
}

/// A refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportRowError {
    pub line: u64,
    pub member_id: String,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub batch_id: String,
    pub rows: u64,
    pub members: u64,
    /// Rows recorded now.
    pub imported: u64,
    /// Rows an earlier run (or a live command with the same id) had already recorded.
    pub already_imported: u64,
    pub events_appended: u64,
    /// Refused rows (at most 1,000 listed; `errors_total` counts them all). With any, nothing
    /// was appended.
    pub errors: Vec<ImportRowError>,
    pub errors_total: u64,
}

impl ImportReport {
    pub fn applied(&self) -> bool {
        self.errors_total == 0
    }

    fn refuse(&mut self, error: ImportRowError) {
        self.errors_total += 1;
        if self.errors.len() < MAX_ERRORS_LISTED {
            self.errors.push(error);
        }
    }
}

/// One member's decided rows, ready to append.
struct Decided {
    member: MemberId,
    expected: ExpectedRevision,
    events: Vec<EventData>,
    reservations: Vec<StreamAppend>,
    imported: u64,
    already: u64,
}

/// The sales a member's rows record, for the check across members.
type Sales = Vec<(u64, PurchaseKey)>;

/// A member's rows decided: what to append (none if a row was refused), its sales, the
/// refusals.
type MemberDecisions = (MemberId, Option<Decided>, Sales, Vec<ImportRowError>);

/// One multi-stream append: its members, its parts and the rows it records.
type Group = (Vec<MemberId>, Vec<StreamAppend>, u64);

impl Engine {
    /// Imports `rows` as batch `batch_id` (see the module's documentation); `progress` is told
    /// how many rows were decided, then appended, as it goes.
    pub async fn import(
        &self,
        batch_id: &str,
        rows: Vec<ImportRow>,
        progress: impl Fn(ImportPhase, u64) + Send + Sync,
    ) -> Result<ImportReport, EngineError> {
        if rows.len() > MAX_IMPORT_ROWS {
            return Err(EngineError::LimitExceeded {
                what: "import rows",
                requested: rows.len(),
                limit: MAX_IMPORT_ROWS,
            });
        }
        let mut report = ImportReport {
            batch_id: batch_id.to_owned(),
            rows: rows.len() as u64,
            ..ImportReport::default()
        };
        // Members in order of first appearance, each with its rows in file order.
        let mut order: Vec<MemberId> = Vec::new();
        let mut by_member: HashMap<MemberId, Vec<ImportRow>> = HashMap::new();
        for row in rows {
            let member = row.command.member_id().clone();
            by_member
                .entry(member.clone())
                .or_insert_with(|| {
                    order.push(member);
                    Vec::new()
                })
                .push(row);
        }
        report.members = order.len() as u64;
        // Which members exist already: one batched lookup instead of a read per member (most
        // of an import's members are new).
        let names: Vec<String> = order.iter().map(member_stream).collect();
        let existing_members = existing(self.inner.store.as_ref(), &names).await?;
        let existing_members: std::collections::HashSet<&MemberId> = order
            .iter()
            .zip(existing_members)
            .filter_map(|(m, exists)| exists.then_some(m))
            .collect();
        let now = self.inner.clock.now();
        let started = std::time::Instant::now();
        let context = CommandContext::new()
            .with_actor("import")
            .with_correlation_id(format!("import:{batch_id}"));

        // Which of the batch's sales are reserved in the store already (scoped, or from before
        // stores scoped ids): looked up by a task of its own while the rows are decided, since
        // the sales are known from the rows alone. Only those the decisions keep are read
        // afterwards. (Whether a sale is free is settled by the append, which expects each
        // reservation stream not to exist: the lookup only finds refusals early.)
        let batch_sales: Vec<PurchaseKey> = {
            let mut seen = std::collections::HashSet::new();
            work_sales(&order, &by_member)
                .filter(|sale| seen.insert(sale.clone()))
                .collect()
        };
        let mut lookup = {
            let store = self.inner.store.clone();
            // Aborted when dropped: an import that returns early (a refusal, an error) or is
            // itself dropped (a client gone) leaves no lookup running behind it.
            AbortOnDropHandle::new(tokio::spawn(async move {
                let scoped: Vec<String> = batch_sales.iter().map(codec::txn_stream).collect();
                let legacy: Vec<String> = batch_sales
                    .iter()
                    .map(|s| codec::legacy_txn_stream(&s.transaction_id))
                    .collect();
                let scoped = existing(store.as_ref(), &scoped).await?;
                let legacy = existing(store.as_ref(), &legacy).await?;
                Ok::<_, EngineError>(
                    batch_sales
                        .into_iter()
                        .zip(scoped.into_iter().zip(legacy))
                        .filter_map(|(sale, (a, b))| (a || b).then_some(sale))
                        .collect::<std::collections::HashSet<PurchaseKey>>(),
                )
            }))
        };

        // Phase 1: decide every row. Existing members' streams are read concurrently; the
        // decisions themselves are pure, and run on blocking threads, a chunk of members each,
        // as many chunks at once as there are cores. Chunks come back in order, so the checks
        // across members below see the rows in file order.
        let done = std::sync::atomic::AtomicU64::new(0);
        let progress = &progress;
        let done = &done;
        let mut decided = Vec::with_capacity(order.len());
        let mut sales: HashMap<PurchaseKey, (MemberId, u64)> = HashMap::new();
        let chunks: Vec<Vec<(MemberId, bool, Vec<ImportRow>)>> = order
            .chunks(DECIDE_CHUNK)
            .map(|members| {
                members
                    .iter()
                    .map(|m| {
                        let rows = by_member.remove(m).unwrap_or_default();
                        (m.clone(), existing_members.contains(m), rows)
                    })
                    .collect()
            })
            .collect();
        drop(existing_members);
        // Each chunk in flight holds its members' loaded histories: at most a few at once,
        // whatever the core count.
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_DECIDING_CHUNKS);
        let mut results = futures::stream::iter(chunks)
            .map(|chunk| {
                let context = context.clone();
                async move {
                    let count: u64 = chunk.iter().map(|(_, _, rows)| rows.len() as u64).sum();
                    let loaded: Vec<(MemberId, CachedMember, Vec<ImportRow>)> =
                        futures::stream::iter(chunk)
                            .map(|(member, exists, rows)| async move {
                                let loaded = if exists {
                                    self.load_full(&member).await?
                                } else {
                                    CachedMember::default()
                                };
                                Ok::<_, EngineError>((member, loaded, rows))
                            })
                            .buffered(CONCURRENCY)
                            .try_collect()
                            .await?;
                    let engine = self.clone();
                    let decided = blocking(move || {
                        loaded
                            .into_iter()
                            .map(|(member, loaded, rows)| {
                                engine.decide_member(&member, loaded, rows, now, &context)
                            })
                            .collect::<Result<Vec<_>, EngineError>>()
                    })
                    .await?;
                    progress(
                        ImportPhase::Deciding,
                        done.fetch_add(count, std::sync::atomic::Ordering::Relaxed) + count,
                    );
                    Ok::<_, EngineError>(decided)
                }
            })
            .buffered(threads);
        while let Some(chunk) = results.next().await {
            for (member, member_decided, member_sales, errors) in chunk? {
                for (line, sale) in member_sales {
                    match sales.get(&sale) {
                        Some((owner, first)) if owner != &member => {
                            report.refuse(ImportRowError {
                                line,
                                member_id: member.to_string(),
                                reason: format!(
                                    "transaction {} of store {} is also member {owner}'s (line {first})",
                                    sale.transaction_id, sale.store
                                ),
                            });
                        }
                        _ => {
                            sales.insert(sale, (member.clone(), line));
                        }
                    }
                }
                for e in errors {
                    report.refuse(e);
                }
                decided.extend(member_decided);
            }
        }
        drop(results);
        tracing::debug!(
            batch = batch_id,
            rows = report.rows,
            millis = started.elapsed().as_millis() as u64,
            "import: rows decided"
        );
        // Refusals are reported without waiting for the lookup (dropped, it is aborted).
        if !report.applied() {
            return Ok(report);
        }
        let reserved_in_store = match (&mut lookup).await {
            Ok(found) => found?,
            Err(e) => return Err(join_error(e)),
        };
        // Sales already reserved in the store for another member: only the reservations the
        // lookup found are read.
        let reserved = sales
            .into_iter()
            .filter(|(sale, _)| reserved_in_store.contains(sale));
        let store = self.inner.store.clone();
        let mut owners = futures::stream::iter(reserved)
            .map(|(sale, (member, line))| {
                let store = store.clone();
                async move {
                    let owner = reservation::owner(store.as_ref(), &sale).await?;
                    Ok::<_, EngineError>((sale, member, line, owner))
                }
            })
            .buffer_unordered(CONCURRENCY);
        while let Some(found) = owners.next().await {
            let (sale, member, line, owner) = found?;
            if owner.is_some_and(|o| o != member) {
                // The owner is not named: it would leak who bought what.
                report.refuse(ImportRowError {
                    line,
                    member_id: member.to_string(),
                    reason: format!(
                        "transaction {} of store {} belongs to another member",
                        sale.transaction_id, sale.store
                    ),
                });
            }
        }
        drop(owners);
        if !report.applied() {
            return Ok(report);
        }

        tracing::debug!(
            batch = batch_id,
            millis = started.elapsed().as_millis() as u64,
            "import: sales checked"
        );
        // Phase 2: append, a group of members at a time.
        for d in &decided {
            report.imported += d.imported;
            report.already_imported += d.already;
            report.events_appended += d.events.len() as u64;
        }
        let (groups, oversized) = self.append_groups(decided);
        let appended = std::sync::atomic::AtomicU64::new(0);
        let appended = &appended;
        let append = |(members, parts, rows): Group| async move {
            let result = self.inner.store.append_many(parts).await;
            for m in &members {
                self.forget_cached(m);
            }
            progress(
                ImportPhase::Appending,
                appended.fetch_add(rows, std::sync::atomic::Ordering::Relaxed) + rows,
            );
            result
        };
        let mut results = futures::stream::iter(groups)
            .map(append)
            .buffer_unordered(CONCURRENCY);
        while let Some(result) = results.next().await {
            result?;
        }
        drop(results);
        // A member too big for one append: its parts one after the other, in order.
        for parts in oversized {
            for group in parts {
                append(group).await?;
            }
        }
        tracing::info!(
            batch = batch_id,
            rows = report.rows,
            events = report.events_appended,
            millis = started.elapsed().as_millis() as u64,
            "import: appended"
        );
        Ok(report)
    }

    /// Decides one member's rows in order, on its stream as `loaded` (empty for a new member);
    /// what to append comes back only if no row was refused. Pure: no IO.
    fn decide_member(
        &self,
        member: &MemberId,
        mut loaded: CachedMember,
        rows: Vec<ImportRow>,
        now: DateTime<Utc>,
        context: &CommandContext,
    ) -> Result<MemberDecisions, EngineError> {
        let expected = match loaded.revision {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        };
        let time = ServerTime::at(now).with_window(TimeWindow {
            max_ahead: self.inner.options.time_window.max_ahead,
            max_behind: IMPORT_WINDOW,
        });
        let program = &self.inner.program;
        let mut out = Decided {
            member: member.clone(),
            expected,
            events: Vec::new(),
            reservations: Vec::new(),
            imported: 0,
            already: 0,
        };
        let mut sales = Vec::new();
        let mut errors = Vec::new();
        for row in rows {
            let refused = |reason: String| ImportRowError {
                line: row.line,
                member_id: member.to_string(),
                reason,
            };
            let decision =
                match decide_imported(&loaded.state, &row.command, program, time, row.award) {
                    Ok(d) => d,
                    Err(e) => {
                        errors.push(refused(e.to_string()));
                        continue;
                    }
                };
            if decision.replayed || decision.events.is_empty() {
                out.already += 1;
                continue;
            }
            out.imported += 1;
            if let Command::RecordPurchase(p) = &row.command {
                sales.push((row.line, p.key()));
                out.reservations.push(reservation::reservation_append(
                    self.inner.ids.as_ref(),
                    &p.key(),
                    member,
                    now,
                )?);
            }
            let context = context
                .clone()
                .with_causation_id(format!("line:{}", row.line));
            let metadata = EventMetadata::new(
                row.command.client_id().unwrap_or_default(),
                row.command.name().to_owned(),
                &context,
                row.command.occurred_at(),
                now,
                program.rules_version().to_owned(),
            );
            for event in &decision.events {
                evolve(&mut loaded.state, event);
                out.events
                    .push(codec::encode(event, &metadata, self.inner.ids.as_ref())?);
            }
        }
        let decided = errors.is_empty().then_some(out);
        Ok((member.clone(), decided, sales, errors))
    }

    /// Cuts the decided members into multi-stream appends within the store's limits (a member
    /// whose events alone pass them is appended in several parts, each expecting the last).
    fn append_groups(&self, decided: Vec<Decided>) -> (Vec<Group>, Vec<Vec<Group>>) {
        let limits = self.inner.store.limits();
        // Half the limits: the parts' names and framing count too.
        let max_events = (limits.max_append_events / 2).max(1);
        let max_bytes = (limits.max_append_bytes / 2).max(1);
        let size = |e: &EventData| e.event_type.len() + e.data.len() + e.metadata.len();
        let mut groups = Vec::new();
        let mut oversized = Vec::new();
        let mut current: Group = (Vec::new(), Vec::new(), 0);
        let (mut events, mut bytes) = (0usize, 0usize);
        for d in decided {
            if d.events.is_empty() {
                continue;
            }
            let rows = d.imported;
            let mut parts: Vec<StreamAppend> = d.reservations;
            let mut expected = d.expected;
            let mut chunk: Vec<EventData> = Vec::new();
            let mut chunk_bytes = 0usize;
            let mut member_parts = Vec::new();
            for e in d.events {
                let n = size(&e);
                if !chunk.is_empty()
                    && (chunk.len() + 1 > max_events || chunk_bytes + n > max_bytes)
                {
                    let len = chunk.len() as u64;
                    member_parts.push(StreamAppend {
                        stream: member_stream(&d.member),
                        expected,
                        events: std::mem::take(&mut chunk),
                    });
                    expected = ExpectedRevision::Exact(match expected {
                        ExpectedRevision::Exact(r) => r + len,
                        _ => len - 1,
                    });
                    chunk_bytes = 0;
                }
                chunk_bytes += n;
                chunk.push(e);
            }
            member_parts.push(StreamAppend {
                stream: member_stream(&d.member),
                expected,
                events: chunk,
            });
            if member_parts.len() > 1 {
                // Too big for one append: alone, part after part.
                let first = member_parts.remove(0);
                parts.push(first);
                let mut sequence = vec![(vec![d.member.clone()], parts, rows)];
                for part in member_parts {
                    sequence.push((vec![d.member.clone()], vec![part], 0));
                }
                oversized.push(sequence);
                continue;
            }
            parts.extend(member_parts);
            let n_events: usize = parts.iter().map(|p| p.events.len()).sum();
            let n_bytes: usize = parts.iter().flat_map(|p| p.events.iter()).map(size).sum();
            if !current.1.is_empty()
                && (events + n_events > max_events || bytes + n_bytes > max_bytes)
            {
                groups.push(std::mem::take(&mut current));
                events = 0;
                bytes = 0;
            }
            events += n_events;
            bytes += n_bytes;
            current.0.push(d.member);
            current.1.extend(parts);
            current.2 += rows;
        }
        if !current.1.is_empty() {
            groups.push(current);
        }
        (groups, oversized)
    }
}

/// Whether each stream exists, asked in chunks of [`EXISTS_CHUNK`].
async fn existing(store: &dyn EventStore, streams: &[String]) -> Result<Vec<bool>, EngineError> {
    let mut out = Vec::with_capacity(streams.len());
    for chunk in streams.chunks(EXISTS_CHUNK) {
        let revisions = store.stream_revisions(chunk).await?;
        out.extend(
            revisions
                .into_iter()
                .map(|r| r != loyalty_store::CurrentRevision::NoStream),
        );
    }
    Ok(out)
}

/// The sales the rows record, in file order (duplicates included).
fn work_sales<'a>(
    order: &'a [MemberId],
    by_member: &'a HashMap<MemberId, Vec<ImportRow>>,
) -> impl Iterator<Item = PurchaseKey> + 'a {
    order
        .iter()
        .filter_map(|m| by_member.get(m))
        .flatten()
        .filter_map(|row| match &row.command {
            Command::RecordPurchase(p) => Some(p.key()),
            _ => None,
        })
}

/// Runs `f` on a blocking thread; a panic there is resumed here, where it would have
/// surfaced had `f` run inline.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(join_error(e)),
    }
}

/// A task that did not finish: its panic goes on here; a cancelled task means the runtime is
/// shutting down.
fn join_error(e: tokio::task::JoinError) -> EngineError {
    match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => EngineError::ShutDown,
    }
}
