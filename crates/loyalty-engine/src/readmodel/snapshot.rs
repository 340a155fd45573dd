//! Read-model snapshots on disk: every row and the log position they reflect, so that a restart
//! reads them back and subscribes from there instead of replaying the whole log.
//!
//! A snapshot is taken while the projection goes on applying events (shard by shard, without
//! stopping it): each row reflects at least the recorded position, some a little more. On
//! restore, the projection resumes at the recorded position and skips, per member, the events
//! whose stream revision the row already holds, so every event is applied exactly once.
//!
//! The file is written beside its final name, synced, then renamed over it: a crash leaves the
//! old snapshot or the new one, never half of one. A file of another schema version (the row's
//! shape changed) or one that does not read back is ignored, and the log is replayed instead.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use loyalty_store::Position;
use serde::{Deserialize, Serialize};

use super::ReadModel;
use super::row::MemberRow;
use super::settled::{Settled, SettledDay};

/// The version of the rows' stored shape: bump it when `StoredRow` changes (older snapshots are
/// then rebuilt from the log). 2: the analytics' days (`activity`) and the header's timezone.
/// 3: the lots' expiry-notice flag. 4: the points settled by day (`settled`), after the rows.
pub(crate) const SNAPSHOT_SCHEMA: u32 = 4;
/// The schema before the settled points: still read (the ledger then starts at the snapshot).
const SNAPSHOT_SCHEMA_WITHOUT_SETTLED: u32 = 3;
const MAGIC: &[u8; 8] = b"LOYRMSNP";
/// The file the latest snapshot lives in, inside the snapshot directory.
pub(crate) const LATEST: &str = "readmodel-latest.snap";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    schema: u32,
    commit: u64,
    prepare: u64,
    /// The engine's clock when the snapshot ended: every event in it was recorded before.
    taken_at_nanos: i64,
    members: u64,
    events: u64,
    unreadable: u64,
    /// The program's timezone the rows' days are dated in: a snapshot taken under another
    /// one is rebuilt from the log.
    timezone: String,
}

/// One row as stored. Instants are nanoseconds, money its 16-byte decimal representation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredRow {
    pub(super) member: String,
    pub(super) status: u8,
    pub(super) tier_index: u32,
    pub(super) tier_name: String,
    pub(super) enrolled_at: i64,
    pub(super) tier_since: i64,
    pub(super) last_review_at: i64,
    pub(super) inactivity_deadline: i64,
    pub(super) referrer: Option<String>,
    pub(super) rewards: Vec<(u64, u32)>,
    pub(super) reward_redemptions: Vec<(u64, u64)>,
    pub(super) debt: i64,
    /// earned, redeemed, expired, clawed back, adjusted, forfeited, shortfall.
    pub(super) totals: [i64; 7],
    /// (key, remaining, spendable from, expires at, notified).
    pub(super) lots: Vec<(u64, i64, i64, i64, bool)>,
    /// (sale, transaction, at, spend, points).
    pub(super) qualifying: Vec<(u64, u64, i64, [u8; 16], i64)>,
    /// (local day, purchases, spend).
    pub(super) activity: Vec<(i32, u32, [u8; 16])>,
    pub(super) last_win_back_at: i64,
    pub(super) revision: u64,
    pub(super) commit: u64,
    pub(super) prepare: u64,
}

/// The points settled by day as stored (schema 4), after the rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSettled {
    complete_from: i64,
    latest_recorded: i64,
    commit: u64,
    prepare: u64,
    /// (day, before: commit, before: prepare, expired, redeemed).
    days: Vec<(i64, u64, u64, i64, i64)>,
}

impl StoredSettled {
    fn of(settled: &Settled) -> Self {
        StoredSettled {
            complete_from: settled.complete_from,
            latest_recorded: settled.latest_recorded,
            commit: settled.position.commit,
            prepare: settled.position.prepare,
            days: settled
                .days
                .iter()
                .map(|(day, d)| {
                    (
                        *day,
                        d.before.commit,
                        d.before.prepare,
                        d.expired,
                        d.redeemed,
                    )
                })
                .collect(),
        }
    }

    fn into_settled(self) -> Settled {
        Settled {
            complete_from: self.complete_from,
            latest_recorded: self.latest_recorded,
            position: Position::new(self.commit, self.prepare),
            days: self
                .days
                .into_iter()
                .map(|(day, commit, prepare, expired, redeemed)| {
                    let before = Position::new(commit, prepare);
                    (
                        day,
                        SettledDay {
                            before,
                            expired,
                            redeemed,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// A member's row, by member id.
type Row = (Box<str>, MemberRow);

/// What a snapshot file held.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) rows: Vec<(Box<str>, MemberRow)>,
    pub(crate) position: Position,
    pub(crate) taken_at: DateTime<Utc>,
    pub(crate) events: u64,
    pub(crate) unreadable: u64,
    /// The points settled by day; `None` in a snapshot of schema 3.
    pub(crate) settled: Option<Settled>,
}

/// What was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) position: Position,
    pub(crate) members: u64,
    pub(crate) bytes: u64,
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

fn write_item<T: Serialize>(out: &mut impl Write, item: &T) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(item).map_err(invalid)?;
    let len = u32::try_from(bytes.len()).map_err(invalid)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&bytes)
}

/// Writes a snapshot of `model` to `path` (atomically, durably). Blocking: run it off the
/// async threads.
pub(crate) fn write(
    path: &Path,
    model: &ReadModel,
    taken_at: DateTime<Utc>,
) -> std::io::Result<Written> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("snap.tmp");
    // The position first: every row holds at least what it says.
    let state = model.apply_state();
    let mut rows = Vec::new();
    model.for_each(|member, row| rows.push(row.to_stored(member)));
    // After the rows: the ledger's position is then at least the snapshot's, so that a restore
    // re-reads no settlement it does not hold (`settled`).
    let settled = StoredSettled::of(&model.settled());
    let header = Header {
        schema: SNAPSHOT_SCHEMA,
        commit: state.position.commit,
        prepare: state.position.prepare,
        taken_at_nanos: super::nanos(taken_at),
        members: rows.len() as u64,
        events: state.events,
        unreadable: state.unreadable,
        timezone: model.timezone().name().to_owned(),
    };
    let file = File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC)?;
    write_item(&mut out, &header)?;
    for row in &rows {
        write_item(&mut out, row)?;
    }
    write_item(&mut out, &settled)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself is durable once the directory is synced.
        File::open(dir)?.sync_all()?;
    }
    Ok(Written {
        position: state.position,
        members: header.members,
        bytes,
    })
}

/// Reads a snapshot back; `Err` says why it cannot be used (the log is replayed then).
pub(crate) fn read(path: &Path, timezone: chrono_tz::Tz) -> Result<Loaded, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::with_capacity(file.metadata().map_or(0, |m| m.len() as usize));
    BufReader::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a read-model snapshot")?;
    let (header, mut rest): (Header, &[u8]) = take(rest)?;
    if header.schema != SNAPSHOT_SCHEMA && header.schema != SNAPSHOT_SCHEMA_WITHOUT_SETTLED {
        return Err(format!(
            "snapshot schema {} (this build reads {SNAPSHOT_SCHEMA})",
            header.schema
        ));
    }
    if header.timezone != timezone.name() {
        return Err(format!(
            "snapshot dated days in {} (the program's timezone is now {})",
            header.timezone,
            timezone.name()
        ));
    }
    // The rows' bytes first (a walk over their lengths), then their decoding on every core:
    // decoding is most of a restart's time at millions of members.
    let mut items = Vec::with_capacity(usize::try_from(header.members).unwrap_or(0));
    for _ in 0..header.members {
        let (item, next) = split_item(rest)?;
        items.push(item);
        rest = next;
    }
    let settled = if header.schema == SNAPSHOT_SCHEMA {
        let (stored, next): (StoredSettled, &[u8]) = take(rest)?;
        rest = next;
        Some(stored.into_settled())
    } else {
        None
    };
    if !rest.is_empty() {
        return Err("bytes after the last row".into());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let decoded: Vec<Result<Vec<Row>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|item| {
                            let row: StoredRow =
                                postcard::from_bytes(item).map_err(|e| e.to_string())?;
                            MemberRow::from_stored(row)
                                .ok_or_else(|| "a row does not read back".into())
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a decoding thread panicked".into()))
            })
            .collect()
    });
    let mut rows = Vec::with_capacity(items.len());
    for part in decoded {
        rows.extend(part?);
    }
    Ok(Loaded {
        rows,
        position: Position::new(header.commit, header.prepare),
        taken_at: DateTime::from_timestamp_nanos(header.taken_at_nanos),
        events: header.events,
        unreadable: header.unreadable,
        settled,
    })
}

fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), String> {
    let (item, rest) = split_item(bytes)?;
    let value = postcard::from_bytes(item).map_err(|e| e.to_string())?;
    Ok((value, rest))
}

/// The next length-prefixed item's bytes, and what follows them.
fn split_item(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("the file ends inside an item")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("the file ends inside an item".into());
    }
    Ok(rest.split_at(len))
}

/// The latest snapshot's path in `dir`.
pub(crate) fn latest(dir: &Path) -> PathBuf {
    dir.join(LATEST)
}

/// Archived snapshots (for as-of queries about past instants) live in this subdirectory, one
/// a day at most, the newest [`ARCHIVE_KEEP`] of them: two months of days, bounded on disk.
const ARCHIVE_DIR: &str = "archive";
pub(crate) const ARCHIVE_KEEP: usize = 62;
const ARCHIVE_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Keeps the latest snapshot (just written, taken at `taken_at`) as an archive too, unless the
/// newest archive is less than a day older; drops the oldest beyond [`ARCHIVE_KEEP`]. The
/// archive is a hard link (the latest file is later replaced by a rename, which leaves the
/// link's content alone), or a copy where links are not supported.
pub(crate) fn archive(dir: &Path, taken_at: DateTime<Utc>) -> std::io::Result<bool> {
    let mut archived = archives(dir);
    if archived
        .last()
        .is_some_and(|(newest, _)| taken_at - *newest < ARCHIVE_EVERY)
    {
        return Ok(false);
    }
    let archive_dir = dir.join(ARCHIVE_DIR);
    std::fs::create_dir_all(&archive_dir)?;
    let name = archive_dir.join(format!("readmodel-{:020}.snap", super::nanos(taken_at)));
    if std::fs::hard_link(latest(dir), &name).is_err() {
        std::fs::copy(latest(dir), &name)?;
    }
    File::open(&archive_dir)?.sync_all()?;
    archived.push((taken_at, name));
    while archived.len() > ARCHIVE_KEEP {
        let (_, oldest) = archived.remove(0);
        std::fs::remove_file(oldest)?;
    }
    Ok(true)
}

/// The archived snapshots in `dir`, oldest first, with the instant each was taken at.
pub(crate) fn archives(dir: &Path) -> Vec<(DateTime<Utc>, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir.join(ARCHIVE_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<(DateTime<Utc>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let nanos = name
                .strip_prefix("readmodel-")?
                .strip_suffix(".snap")?
                .parse::<i64>()
                .ok()?;
            Some((DateTime::from_timestamp_nanos(nanos), e.path()))
        })
        .collect();
    found.sort();
    found
}
