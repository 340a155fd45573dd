//! The auditors' side: the log itself (pages of `$all`, a member's stream, statements), replays
//! as of an instant, and `verify` (a fresh rebuild compared with the live read models).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loyalty_core::{Event, MemberId, MemberStatus, Points};
use loyalty_store::{Direction, Position, RecordedEvent, StreamFrom};

use crate::codec::{self, member_stream};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::readmodel::{MemberRow, ReadModel, TotalsAcc, snapshot};
use crate::views::{
    HistoryCursor, HistoryPage, LiabilityReport, LogEntry, LogPage, MemberSnapshot, ReplayReport,
    StatementLine, VerifyReport,
};

const MAX_DIFFERENCES_LISTED: usize = 100;

pub(crate) fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn log_entry(e: RecordedEvent) -> LogEntry {
    LogEntry {
        data: json(&e.data),
        metadata: json(&e.metadata),
        stream: e.stream,
        revision: e.revision,
        position: e.position,
        event_id: e.id,
        event_type: e.event_type,
        schema_version: e.schema_version,
    }
}

/// When the ledger learnt of an event: the engine's `recorded_at`, else the business time.
pub(crate) use crate::decoded::recorded_at;

/// The signed change of the balance an event made, and a line of text for a statement.
fn statement(event: &Event) -> (Points, String) {
    let sum = |draws: &[loyalty_core::LotDraw]| {
        loyalty_core::Points::new(
            draws
                .iter()
                .fold(0i64, |a, d| a.saturating_add(d.points.value())),
        )
    };
    let neg = |p: Points| p.checked_neg().unwrap_or(Points::ZERO);
    match event {
        Event::Enrolled(e) => (
            e.welcome.as_ref().map_or(Points::ZERO, |c| c.points),
            format!("Enrolled in tier {}", e.tier.name),
        ),
        Event::PurchaseRecorded(e) => (
            e.points,
            format!(
                "Purchase {} ({} {})",
                e.transaction_id, e.eligible_amount, e.currency
            ),
        ),
        Event::ReferralQualified(e) => (
            e.newcomer_credit
                .as_ref()
                .map_or(Points::ZERO, |c| c.points),
            format!("Referral by {} qualified", e.referrer),
        ),
        Event::TierChanged(e) => (
            Points::ZERO,
            format!("Tier changed from {} to {}", e.from.name, e.to.name),
        ),
        Event::RefundRecorded(e) => (
            neg(e.debit.taken()),
            format!("Refund {} of purchase {}", e.refund_id, e.transaction_id),
        ),
        Event::PointsRedeemed(e) => (
            neg(e.points),
            match &e.reward_id {
                Some(r) => format!("Redemption {} (reward {r})", e.redemption_id),
                None => format!("Redemption {}", e.redemption_id),
            },
        ),
        Event::RedemptionCancelled(e) => (
            sum(&e.restored),
            format!("Redemption {} cancelled", e.redemption_id),
        ),
        Event::PointsExpired(e) => (neg(e.points), format!("Points of lot {} expired", e.lot_id)),
        Event::ActivityRewarded(e) => (e.credit.points, format!("Activity {}", e.kind)),
        Event::ActivityRefused(e) => (Points::ZERO, format!("Activity {} past its limit", e.kind)),
        Event::PointsAdjusted(e) => {
            let applied = match (&e.credit, &e.debit) {
                (Some(c), _) => c.points,
                (None, Some(d)) => neg(d.taken()),
                (None, None) => Points::ZERO,
            };
            (
                applied,
                format!("Adjustment {} ({})", e.adjustment_id, e.reason_code),
            )
        }
        Event::GoodwillGranted(e) => (
            e.credit.points,
            format!("Goodwill for complaint {}", e.complaint_id),
        ),
        Event::ReferralBonusCredited(e) => (
            e.credit.points,
            format!("Referral bonus for {}", e.newcomer),
        ),
        Event::BalanceOpened(e) => (
            e.credit.points,
            format!("Opening balance {} carried over", e.balance_id),
        ),
        Event::WinBackAwarded(e) => (
            e.credit.points,
            format!(
                "Win-back bonus after {} days without a purchase",
                e.inactive_days
            ),
        ),
        Event::ReferralRevoked(e) => (
            neg(e.debit.taken()),
            format!(
                "Referral by {} revoked: purchase {} refunded ({})",
                e.referrer,
                e.transaction_id,
                e.reason.as_str()
            ),
        ),
        Event::ReferralBonusRevoked(e) => (
            neg(e.debit.taken()),
            format!(
                "Referral bonus for {} revoked ({})",
                e.newcomer,
                e.reason.as_str()
            ),
        ),
        // A notice moves no point; the line says what it announced.
        Event::ExpiryNotified(e) => {
            let points = e
                .lots
                .iter()
                .fold(0i64, |a, l| a.saturating_add(l.points.value()));
            let by = e
                .lots
                .iter()
                .map(|l| l.expires_at)
                .max()
                .map_or_else(String::new, |t| {
                    format!(
                        " by {}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    )
                });
            (
                Points::ZERO,
                format!(
                    "Expiry notice: {points} points of {} lot(s) expire{by}",
                    e.lots.len()
                ),
            )
        }
        Event::MemberSuspended(e) => (Points::ZERO, format!("Suspended ({})", e.reason_code)),
        Event::MemberReinstated(_) => (Points::ZERO, "Reinstated".to_owned()),
        Event::AccountClosed(e) => (
            neg(sum(&e.forfeited)),
            format!("Account closed ({})", e.reason_code),
        ),
    }
}

/// A model rebuilt from the log (not shared with the live one).
/// How far apart the time an event was recorded at and the moment it was appended may be:
/// a command's duration plus the clock skew between servers sharing the store, with room to
/// spare. As-of replays rely on it to start from a snapshot and to stop early.
pub(crate) const RECORDED_ORDER_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

pub(crate) struct Rebuilt {
    pub(crate) rows: HashMap<Box<str>, MemberRow>,
    pub(crate) events: u64,
    pub(crate) unreadable: Vec<String>,
    pub(crate) position: Position,
}

impl Engine {
    fn check_page(&self, what: &'static str, limit: usize) -> Result<(), EngineError> {
        let max = self
            .inner
            .options
            .max_page_size
            .min(self.inner.store.limits().max_page_size);
        if limit == 0 || limit > max {
            return Err(EngineError::LimitExceeded {
                what,
                requested: limit,
                limit: max,
            });
        }
        Ok(())
    }

    /// A page of the event log after `after` (all streams, position order).
    pub async fn log(&self, after: Position, limit: usize) -> Result<LogPage, EngineError> {
        self.check_page("log page", limit)?;
        let page = self.inner.store.read_all(after, limit).await?;
        let next_after = (page.len() == limit)
            .then(|| page.last().map(|e| e.position))
            .flatten();
        Ok(LogPage {
            entries: page.into_iter().map(log_entry).collect(),
            next_after,
            next_revision: None,
        })
    }

    /// A page of one member's events from `from_revision` (inclusive), oldest first.
    pub async fn member_events(
        &self,
        member: &MemberId,
        from_revision: u64,
        limit: usize,
    ) -> Result<LogPage, EngineError> {
        self.check_page("member events page", limit)?;
        let page = self
            .inner
            .store
            .read_stream(
                &member_stream(member),
                StreamFrom::Revision(from_revision),
                Direction::Forwards,
                limit,
            )
            .await?;
        let next_revision = (page.len() == limit)
            .then(|| page.last().map(|e| e.revision.saturating_add(1)))
            .flatten();
        Ok(LogPage {
            entries: page.into_iter().map(log_entry).collect(),
            next_after: None,
            next_revision,
        })
    }

    /// A member's statement, newest first, paged over the member's stream (exact, and nothing
    /// kept in memory per line).
    pub async fn history(
        &self,
        member: &MemberId,
        cursor: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        self.check_page("history page", limit)?;
        let from = match cursor {
            None => StreamFrom::End,
            Some(HistoryCursor(0)) => {
                return Ok(HistoryPage {
                    member_id: member.clone(),
                    lines: Vec::new(),
                    next_cursor: None,
                });
            }
            Some(HistoryCursor(r)) => StreamFrom::Revision(r - 1),
        };
        let page = self
            .inner
            .store
            .read_stream(&member_stream(member), from, Direction::Backwards, limit)
            .await?;
        if page.is_empty() && cursor.is_none() {
            return Err(EngineError::UnknownMember(member.clone()));
        }
        let next_cursor = match page.last() {
            Some(last) if page.len() == limit && last.revision > 0 => {
                Some(HistoryCursor(last.revision))
            }
            _ => None,
        };
        let mut lines = Vec::with_capacity(page.len());
        let mut keys = self.key_ring();
        for recorded in page {
            let event = codec::decode(&recorded)?;
            let note = keys.reveal_event(member, &event).await?;
            let (points, description) = statement(&event);
            let metadata = codec::metadata(&recorded);
            lines.push(StatementLine {
                revision: recorded.revision,
                position: recorded.position,
                event_type: recorded.event_type.clone(),
                occurred_at: Some(event.occurred_at()),
                recorded_at: metadata.map(|m| m.recorded_at),
                points,
                description,
                data: json(&recorded.data),
                note,
            });
        }
        Ok(HistoryPage {
            member_id: member.clone(),
            lines,
            next_cursor,
        })
    }

    /// The member as the log knew them at `as_of`: every event recorded at or before it,
    /// with balances and tier evaluated at `as_of`. `None` if not enrolled by then.
    pub async fn member_as_of(
        &self,
        member: &MemberId,
        as_of: DateTime<Utc>,
    ) -> Result<Option<MemberSnapshot>, EngineError> {
        let stream = member_stream(member);
        let mut row = MemberRow::default();
        let mut applied = 0u64;
        let mut next = 0u64;
        loop {
            let page = self
                .inner
                .store
                .read_stream(
                    &stream,
                    StreamFrom::Revision(next),
                    Direction::Forwards,
                    self.inner.page_size,
                )
                .await?;
            let short = page.len() < self.inner.page_size;
            if let Some(last) = page.last() {
                next = last.revision.saturating_add(1);
            }
            applied += self.fold_as_of(&mut row, &page, as_of)?;
            if short {
                break;
            }
        }
        Ok(self.snapshot_of(member, &row, applied, as_of))
    }

    /// Folds the events of `page` recorded at or before `as_of` into `row`; returns how many.
    pub(crate) fn fold_as_of(
        &self,
        row: &mut MemberRow,
        page: &[RecordedEvent],
        as_of: DateTime<Utc>,
    ) -> Result<u64, EngineError> {
        let mut applied = 0;
        for recorded in page {
            let event = codec::decode(recorded)?;
            if recorded_at(recorded, &event) <= as_of {
                row.apply(&event, self.inner.program.timezone());
                row.revision = recorded.revision;
                row.last_position = recorded.position;
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// The member `row` folded, as of `as_of`; `None` if not enrolled by then.
    pub(crate) fn snapshot_of(
        &self,
        member: &MemberId,
        row: &MemberRow,
        events_applied: u64,
        as_of: DateTime<Utc>,
    ) -> Option<MemberSnapshot> {
        if row.status() == MemberStatus::NotEnrolled {
            return None;
        }
        Some(MemberSnapshot {
            member_id: member.clone(),
            as_of,
            status: row.status(),
            balance: row.balance_view(member, as_of),
            tier: row.tier_view(member, &self.inner.program, as_of),
            events_applied,
        })
    }

    /// The points liability as of `as_of`: for now or later, the read models (everything
    /// recorded is recorded before now, so nothing is left out), evaluated at `as_of`; for a
    /// past instant, a replay of `$all` keeping the events recorded at or before it.
    pub async fn liability_as_of(
        &self,
        as_of: DateTime<Utc>,
    ) -> Result<LiabilityReport, EngineError> {
        let head = self.inner.store.head_position().await?;
        if as_of >= self.inner.clock.now() {
            self.wait_for(head).await?;
            let totals = self.inner.model.totals(&self.inner.program, as_of);
            return Ok(LiabilityReport {
                as_of,
                events_replayed: 0,
                totals,
            });
        }
        let start = self.archived_before(as_of).await;
        let rebuilt = self.rebuild_from(start, head, Some(as_of), &|_| {}).await?;
        let mut acc = TotalsAcc::default();
        for row in rebuilt.rows.values() {
            acc.add(row, as_of);
        }
        Ok(LiabilityReport {
            as_of,
            events_replayed: rebuilt.events,
            totals: acc.finish(&self.inner.program, as_of, rebuilt.position),
        })
    }

    /// The newest archived read-model snapshot that holds only events recorded well before
    /// `as_of` (its taken-at plus [`RECORDED_ORDER_MARGIN`]), read back: where an as-of replay
    /// starts instead of the beginning of the log. `None` when there is none to use.
    pub(crate) async fn archived_before(&self, as_of: DateTime<Utc>) -> Option<snapshot::Loaded> {
        let dir = self.inner.options.snapshot_dir.clone()?;
        let path = snapshot::archives(&dir)
            .into_iter()
            .rev()
            .find(|(taken_at, _)| *taken_at + RECORDED_ORDER_MARGIN <= as_of)
            .map(|(_, path)| path)?;
        let tz = self.inner.program.timezone();
        match tokio::task::spawn_blocking(move || snapshot::read(&path, tz)).await {
            Ok(Ok(loaded)) => Some(loaded),
            Ok(Err(why)) => {
                tracing::warn!(%why, "archived read-model snapshot not usable: replaying the log");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading an archived read-model snapshot failed");
                None
            }
        }
    }

    /// Folds `$all` up to `until` into fresh rows.
    pub(crate) async fn rebuild(
        &self,
        until: Position,
        recorded_until: Option<DateTime<Utc>>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Rebuilt, EngineError> {
        self.rebuild_from(None, until, recorded_until, progress)
            .await
    }

    /// Folds `$all` up to `until` into the rows of `start` (a snapshot; fresh rows from the
    /// beginning of the log when `None`). With `recorded_until`, only the events recorded by
    /// then are folded, and the replay stops at the first member event recorded
    /// [`RECORDED_ORDER_MARGIN`] after it: the log is in append order, and an event is appended
    /// within that margin of the time it was recorded at.
    pub(crate) async fn rebuild_from(
        &self,
        start: Option<snapshot::Loaded>,
        until: Position,
        recorded_until: Option<DateTime<Utc>>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Rebuilt, EngineError> {
        let (rows, from) = match start {
            Some(loaded) => (
                loaded.rows.into_iter().collect::<HashMap<_, _>>(),
                loaded.position,
            ),
            None => (HashMap::new(), Position::START),
        };
        // The position reached: with `recorded_until`, the last member event folded in (a
        // snapshot's own position may be that of a lease or checkpoint event after it).
        let position = match recorded_until {
            Some(_) => rows
                .values()
                .map(|r| r.last_position)
                .max()
                .unwrap_or(Position::START),
            None => from,
        };
        let mut rebuilt = Rebuilt {
            rows,
            events: 0,
            unreadable: Vec::new(),
            position,
        };
        let stop_after = recorded_until.map(|t| t + RECORDED_ORDER_MARGIN);
        // The next page is decoded (on every core) and the one after it read while this one is
        // folded, in order.
        let mut pages = crate::decoded::DecodedPages::new(
            Arc::clone(&self.inner.store),
            from,
            self.inner.page_size,
        );
        'pages: while let Some((page, decoded)) = pages.next().await? {
            for (recorded, decoded) in page.iter().zip(decoded) {
                if recorded.position > until {
                    break 'pages;
                }
                rebuilt.events += 1;
                if let (Some(member), Some(decoded)) =
                    (recorded.stream.strip_prefix(codec::MEMBER_PREFIX), decoded)
                {
                    match decoded {
                        Ok(crate::decoded::Decoded {
                            event,
                            recorded_at: at,
                        }) => {
                            if stop_after.is_some_and(|stop| at > stop) {
                                break 'pages;
                            }
                            if recorded_until.is_some_and(|t| at > t) {
                                continue;
                            }
                            let row = rebuilt.rows.entry(member.into()).or_default();
                            // A snapshot's row may hold a few events past its position.
                            if row.holds(recorded.revision) {
                                continue;
                            }
                            row.apply(&event, self.inner.program.timezone());
                            row.revision = recorded.revision;
                            row.last_position = recorded.position;
                            rebuilt.position = recorded.position;
                        }
                        Err(e) => rebuilt.unreadable.push(format!(
                            "{} revision {} ({}): {e}",
                            recorded.stream, recorded.revision, recorded.position
                        )),
                    }
                } else if recorded_until.is_none() {
                    rebuilt.position = recorded.position;
                }
            }
            progress(rebuilt.events);
        }
        Ok(rebuilt)
    }

    /// Rebuilds every read model from the log and compares it with the live one. Members
    /// written after the rebuild's position are skipped (they moved on meanwhile).
    pub async fn verify(&self) -> Result<VerifyReport, EngineError> {
        let head = self.inner.store.head_position().await?;
        self.wait_for(head).await?;
        let rebuilt = self.rebuild(head, None, &|_| {}).await?;
        let mut report = VerifyReport {
            events_replayed: rebuilt.events,
            position: head,
            members_checked: 0,
            members_skipped: 0,
            differences: Vec::new(),
            differences_total: 0,
            unreadable_events: rebuilt.unreadable.len() as u64,
        };
        let differ = |text: String, report: &mut VerifyReport| {
            report.differences_total += 1;
            if report.differences.len() < MAX_DIFFERENCES_LISTED {
                report.differences.push(text);
            }
        };
        for error in &rebuilt.unreadable {
            differ(format!("unreadable event: {error}"), &mut report);
        }
        let live_state = self.inner.model.apply_state();
        for error in &live_state.errors {
            differ(
                format!("live projection could not read: {error}"),
                &mut report,
            );
        }
        let model: &ReadModel = &self.inner.model;
        for (member, fresh) in &rebuilt.rows {
            match model.get(member) {
                Some(live) if live.last_position > head => report.members_skipped += 1,
                Some(live) => {
                    report.members_checked += 1;
                    if !live.same_as(fresh) {
                        differ(
                            format!("member {member}: live {live:?} rebuilt {fresh:?}"),
                            &mut report,
                        );
                    }
                }
                None => differ(
                    format!("member {member}: in the log, missing from the live read model"),
                    &mut report,
                ),
            }
        }
        let mut extra = Vec::new();
        model.for_each(|member, live| {
            if !rebuilt.rows.contains_key(member) && live.last_position <= head {
                extra.push(member.to_owned());
            }
        });
        for member in extra {
            differ(
                format!("member {member}: in the live read model, not in the log"),
                &mut report,
            );
        }
        Ok(report)
    }

    /// Replays the whole log into fresh read models (calling `progress` with the number of
    /// events read after each page) and reports what they hold. The live models are untouched.
    pub async fn replay(
        &self,
        progress: impl Fn(u64) + Send + Sync,
    ) -> Result<ReplayReport, EngineError> {
        let head = self.inner.store.head_position().await?;
        let rebuilt = self.rebuild(head, None, &progress).await?;
        let now = self.inner.clock.now();
        let mut acc = TotalsAcc::default();
        for row in rebuilt.rows.values() {
            acc.add(row, now);
        }
        Ok(ReplayReport {
            events_replayed: rebuilt.events,
            position: head,
            members: rebuilt
                .rows
                .values()
                .filter(|r| r.status() != MemberStatus::NotEnrolled)
                .count() as u64,
            unreadable_events: rebuilt.unreadable.len() as u64,
            totals: acc.finish(&self.inner.program, now, head),
        })
    }
}
