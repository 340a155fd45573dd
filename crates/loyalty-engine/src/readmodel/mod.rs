//! The read models: one compact row per member, folded from the member's events by the core's
//! own accounting rules (`loyalty_core::fold`), and the views computed from it at read time.
//!
//! - `row`: the row and how it stores what the fold changes;
//! - `views`: balance, tier, rewards and due work as of an instant;
//! - `totals`: sums over every member;
//! - `settled`: the points settled (expired, redeemed) program-wide by day, for the breakage
//!   estimate of the liability report;
//! - this module: the sharded table of rows fed by the projection.
//!
//! Why not keep the core's `MemberState` per member: it holds everything idempotency and refunds
//! need (processed client ids, purchases with their lines...), several KiB per member; the
//! rows here keep only what balances, tiers and rewards need.

mod activity;
mod row;
pub(crate) mod settled;
pub(crate) mod snapshot;
mod totals;
mod views;

use std::collections::HashMap;
use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use loyalty_core::{MemberId, MemberStatus, Program};
use loyalty_store::{Position, RecordedEvent};
use parking_lot::RwLock;

pub(crate) use row::{MemberRow, key, nanos};
pub(crate) use totals::TotalsAcc;

use crate::codec;
use crate::decoded;
use crate::views::ProgramTotals;

const SHARDS: usize = 64;

/// Rows boxed, keys as `Box<str>`: a table slot is 24 bytes, so the slack a hash table keeps
/// (up to half of its slots after it grows) costs little; the rows themselves are allocated
/// exactly.
type Shard = HashMap<Box<str>, Box<MemberRow>>;

/// Every member's row, sharded so that readers rarely wait for the single writer.
pub(crate) struct ReadModel {
    shards: Vec<RwLock<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Last position applied, and events that could not be read.
    state: RwLock<ApplyState>,
    /// The program's timezone: the analytics' days are its local dates.
    tz: chrono_tz::Tz,
    /// The points settled by day (`settled`).
    settled: RwLock<settled::Settled>,
    /// The events the engine has just appended, already decoded.
    pub(crate) handoff: decoded::Handoff,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ApplyState {
    pub(crate) position: Position,
    pub(crate) events: u64,
    pub(crate) unreadable: u64,
    pub(crate) errors: Vec<String>,
    /// An event of a newer release stopped the projection there: nothing after it is applied
    /// (read models that skipped it would answer wrong balances), until this build is upgraded.
    pub(crate) halted: Option<crate::error::NewerSchemaEvent>,
}

/// Most unreadable-event messages kept (the count goes on).
const MAX_ERRORS_KEPT: usize = 100;

impl ReadModel {
    pub(crate) fn new(tz: chrono_tz::Tz) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: Default::default(),
            state: RwLock::new(ApplyState::default()),
            tz,
            settled: RwLock::new(settled::Settled::default()),
            handoff: decoded::Handoff::default(),
        }
    }

    pub(crate) fn timezone(&self) -> chrono_tz::Tz {
        self.tz
    }

    fn shard(&self, member: &str) -> &RwLock<Shard> {
        let i = (self.hasher.hash_one(member) as usize) % SHARDS;
        &self.shards[i]
    }

    pub(crate) fn position(&self) -> Position {
        self.state.read().position
    }

    pub(crate) fn apply_state(&self) -> ApplyState {
        self.state.read().clone()
    }

    /// The event of a newer release the projection stopped at, if any.
    pub(crate) fn halted(&self) -> Option<crate::error::NewerSchemaEvent> {
        self.state.read().halted.clone()
    }

    /// Applies one recorded event of `$all` (events of other streams only move the position).
    #[cfg(test)]
    pub(crate) fn apply_recorded(&self, recorded: &RecordedEvent) {
        self.apply_page(std::slice::from_ref(recorded));
    }

    /// Applies a page of `$all`: its member events from the handoff when the engine just
    /// appended them (taken in the page's order), the rest decoded, on every core when they are
    /// many (a catch-up after a start); applied in order either way.
    pub(crate) fn apply_page(&self, page: &[RecordedEvent]) {
        // Live traffic: the engine handed over nearly every member event of the page. Only the
        // others are decoded up front (on every core when they are many); the page is applied
        // as it is walked, without a decoded copy of it. A profile of HTTP purchases showed 2%
        // of the server's CPU zeroing fresh pages for that copy (a few hundred bytes an event).
        let missing = self.handoff.missing(page);
        let mut decoded_missing = decoded::decode_at(page, &missing)
            .into_iter()
            .zip(missing.iter().copied())
            .peekable();
        for (i, recorded) in page.iter().enumerate() {
            let decoded = if !recorded.stream.starts_with(codec::MEMBER_PREFIX) {
                None
            } else if let Some((decoded, _)) = decoded_missing.next_if(|(_, at)| *at == i) {
                Some(decoded)
            } else {
                // Held a moment ago; evicted since only if the handoff overflowed.
                Some(
                    self.handoff
                        .take(recorded)
                        .map_or_else(|| decoded::decode(recorded), Ok),
                )
            };
            self.apply_decoded(recorded, decoded);
        }
    }

    /// Applies one event of `$all` with its member event decoded (`None` for other streams).
    fn apply_decoded(
        &self,
        recorded: &RecordedEvent,
        decoded: Option<Result<decoded::Decoded, crate::error::EngineError>>,
    ) {
        if self.state.read().halted.is_some() {
            return;
        }
        if let (Some(member), Some(decoded)) =
            (recorded.stream.strip_prefix(codec::MEMBER_PREFIX), decoded)
        {
            match decoded {
                Ok(decoded::Decoded { event, recorded_at }) => {
                    let before = self.state.read().position;
                    self.settled
                        .write()
                        .note(recorded.position, before, recorded_at, &event);
                    let mut shard = self.shard(member).write();
                    if !shard.contains_key(member) {
                        shard.insert(member.into(), Box::default());
                    }
                    if let Some(row) = shard.get_mut(member)
                        && !row.holds(recorded.revision)
                    {
                        row.apply(&event, self.tz);
                        row.revision = recorded.revision;
                        row.last_position = recorded.position;
                    }
                }
                Err(crate::error::EngineError::NewerSchema(newer)) => {
                    tracing::error!(%newer, "read models stop at an event of a newer release");
                    self.state.write().halted = Some(newer);
                    return;
                }
                Err(e) => {
                    tracing::warn!(stream = %recorded.stream, revision = recorded.revision,
                        position = %recorded.position, error = %e,
                        "read models skip an unreadable event");
                    let mut state = self.state.write();
                    state.unreadable += 1;
                    if state.errors.len() < MAX_ERRORS_KEPT {
                        state.errors.push(format!(
                            "{} revision {} ({}): {e}",
                            recorded.stream, recorded.revision, recorded.position
                        ));
                    }
                }
            }
        }
        self.settled.write().pass(recorded.position);
        let mut state = self.state.write();
        state.events += 1;
        if recorded.position > state.position {
            state.position = recorded.position;
        }
    }

    /// Replaces every row and the position with what a snapshot held (before the projection
    /// starts).
    pub(crate) fn restore(&self, loaded: snapshot::Loaded) {
        for shard in &self.shards {
            shard.write().clear();
        }
        // On every core: at millions of members the inserts are a good part of a restart.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = loaded.rows.len().div_ceil(threads).max(1);
        let mut rows = loaded.rows;
        let mut parts = Vec::with_capacity(threads);
        while rows.len() > chunk {
            parts.push(rows.split_off(rows.len() - chunk));
        }
        parts.push(rows);
        std::thread::scope(|scope| {
            for part in parts {
                scope.spawn(move || {
                    for (member, row) in part {
                        self.shard(&member).write().insert(member, Box::new(row));
                    }
                });
            }
        });
        // A snapshot without the ledger (an older build's): what is recorded from the snapshot
        // on follows it in the log.
        *self.settled.write() = loaded
            .settled
            .unwrap_or_else(|| settled::Settled::starting_at(loaded.position, loaded.taken_at));
        let mut state = self.state.write();
        state.position = loaded.position;
        state.events = loaded.events;
        state.unreadable = loaded.unreadable;
    }

    /// The points settled by day, as of now.
    pub(crate) fn settled(&self) -> settled::Settled {
        self.settled.read().clone()
    }

    /// Events applied so far (snapshots taken are counted against it).
    pub(crate) fn events_applied(&self) -> u64 {
        self.state.read().events
    }

    pub(crate) fn with_row<T>(
        &self,
        member: &MemberId,
        f: impl FnOnce(&MemberRow) -> T,
    ) -> Option<T> {
        let shard = self.shard(member.as_str()).read();
        shard
            .get(member.as_str())
            .filter(|r| r.status != MemberStatus::NotEnrolled)
            .map(|r| f(r))
    }

    pub(crate) fn totals(&self, program: &Program, as_of: DateTime<Utc>) -> ProgramTotals {
        let mut acc = TotalsAcc::default();
        for shard in &self.shards {
            for row in shard.read().values() {
                acc.add(row, as_of);
            }
        }
        acc.finish(program, as_of, self.position())
    }

    /// Visits every row (one shard locked at a time), with the member id as stored in the
    /// stream name.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &MemberRow)) {
        for shard in &self.shards {
            for (member, row) in shard.read().iter() {
                f(member, row);
            }
        }
    }

    pub(crate) fn note_reviewed(&self, member: &MemberId, through: DateTime<Utc>) {
        if let Some(row) = self.shard(member.as_str()).write().get_mut(member.as_str()) {
            row.reviewed_through = row.reviewed_through.max(nanos(through));
        }
    }

    pub(crate) fn get(&self, member: &str) -> Option<MemberRow> {
        self.shard(member)
            .read()
            .get(member)
            .map(|r| MemberRow::clone(r))
    }
}

impl std::fmt::Debug for ReadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModel")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
