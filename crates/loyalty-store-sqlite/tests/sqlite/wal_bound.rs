//! The write-ahead log file does not stay at its high-water mark: once it has grown past
//! `wal_max_bytes` (here because a reader held an old snapshot while appends went on), it is
//! cut back to at most the bound plus one batch as soon as a checkpoint can run. Both ways
//! are checked: the log restarting after the writer's own checkpoint (`journal_size_limit`
//! cuts the file at the restart), and the checkpointer's TRUNCATE checkpoint.
use std::path::{Path, PathBuf};
use std::time::Duration;

use loyalty_store::conformance::sample_event;
use loyalty_store::{Bytes, EventStore, ExpectedRevision, Position};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};
use rusqlite::Connection;
use tempfile::TempDir;

/// A guard against the test hanging; never a speed assertion.
const LIVENESS: Duration = Duration::from_secs(120);

/// A log frame: a page of 4 KiB and its 24-byte header.
const FRAME: u64 = 4096 + 24;

/// The bound under test: 64 frames, 263,680 bytes.
const BOUND: u64 = 64 * FRAME;

/// One batch of these tests (one append of one ~3 KiB event) writes its table page, its index
/// page and at most a few interior pages: 8 frames is a generous ceiling.
const ONE_BATCH: u64 = 8 * FRAME;

/// A store that checkpoints in the background every 40 pages and checkpoints itself at 160
/// (four times that), with a log bound of 64 pages in between.
struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    wal: PathBuf,
    store: SqliteStore,
    appended: u64,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let wal = dir.path().join("events.db-wal");
        let options = SqliteOptions {
            wal_checkpoint_pages: 40,
            wal_max_bytes: BOUND,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(&path, options).await.unwrap();
        let mut fixture = Self {
            _dir: dir,
            path,
            wal,
            store,
            appended: 0,
        };
        fixture.append().await;
        fixture
    }

    async fn append(&mut self) {
        self.appended += 1;
        let n = self.appended;
        let mut event = sample_event(n);
        let padding = "x".repeat(3 * 1024);
        event.data = Bytes::from(format!(r#"{{"n":{n},"padding":"{padding}"}}"#));
        self.store
            .append(&format!("s-{}", n % 50), ExpectedRevision::Any, vec![event])
            .await
            .unwrap();
    }

    fn wal_len(&self) -> u64 {
        file_len(&self.wal)
    }

    /// A connection holding a read snapshot: no checkpoint copies past it, so the log cannot
    /// restart while it is open.
    fn pin_a_snapshot(&self) -> Connection {
        let reader = Connection::open(&self.path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert!(seen > 0);
        reader
    }

    /// After the cut, under sustained appends writing twelve times the bound: the file keeps
    /// being emptied each time it passes the bound, and once the appends stop, the last cut
    /// leaves it within the bound plus one batch.
    async fn keeps_being_cut_back(mut self) {
        let before = self.store.stats().wal_truncations;
        let mut peak = 0;
        for _ in 0..200 {
            self.append().await;
            peak = peak.max(self.wal_len());
        }
        let cuts = self.store.stats().wal_truncations - before;
        assert!(cuts >= 2, "the log was emptied {cuts} times in 200 appends");
        // The checkpointer cuts the log while the writer goes on: give the last cut a moment.
        let mut waited = Duration::ZERO;
        while self.wal_len() > BOUND + ONE_BATCH {
            assert!(
                waited < Duration::from_secs(10),
                "the log file stayed at {} bytes, over its bound of {BOUND} plus one batch",
                self.wal_len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        println!(
            "sustained appends: {cuts} cuts, peak {peak} bytes (bound {BOUND}), {} at rest",
            self.wal_len()
        );
        let events = self.store.read_all(Position::START, 1_000).await.unwrap();
        assert_eq!(events.len() as u64, self.appended, "nothing was lost");
        self.store.close().await.unwrap();
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_far_past_its_bound_is_cut_back_when_it_restarts() {
    tokio::time::timeout(LIVENESS, cut_back_at_restart())
        .await
        .expect("the test hung");
}

async fn cut_back_at_restart() {
    let mut fixture = Fixture::new().await;
    // Given a reader on an old snapshot while 600 appends go on: the log grows far past its
    // bound and past the writer's own checkpoint limit...
    let reader = fixture.pin_a_snapshot();
    for _ in 0..600 {
        fixture.append().await;
    }
    let high_water = fixture.wal_len();
    assert!(
        high_water > 8 * BOUND,
        "the log should be far past its bound of {BOUND} bytes, it is {high_water}"
    );

    // ...when the reader lets go, the writer's own checkpoint copies everything at the next
    // commit and the log restarts at the one after: the file is cut back then.
    drop(reader);
    let mut appends_until_cut = 0;
    while fixture.wal_len() > BOUND + ONE_BATCH {
        assert!(
            appends_until_cut < 20,
            "the log file is still {} bytes after {appends_until_cut} appends",
            fixture.wal_len()
        );
        fixture.append().await;
        appends_until_cut += 1;
    }
    println!(
        "log file: high water {high_water} bytes, cut back to {} (bound {BOUND}) after \
         {appends_until_cut} appends",
        fixture.wal_len()
    );
    fixture.keeps_being_cut_back().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_past_its_bound_is_emptied_by_a_checkpoint_once_readers_allow() {
    tokio::time::timeout(LIVENESS, emptied_by_truncate_checkpoint())
        .await
        .expect("the test hung");
}

async fn emptied_by_truncate_checkpoint() {
    let mut fixture = Fixture::new().await;
    // Given a reader on an old snapshot while the log grows just past its bound (but not to
    // the writer's own checkpoint limit, 160 pages)...
    let reader = fixture.pin_a_snapshot();
    while fixture.wal_len() <= BOUND + FRAME {
        fixture.append().await;
    }
    let high_water = fixture.wal_len();
    assert!(high_water < 100 * FRAME, "{high_water} bytes");

    // ...when the reader lets go and appends go on, the next background checkpoint copies
    // everything and, the file being past its bound, empties it (a TRUNCATE checkpoint).
    drop(reader);
    let before = fixture.store.stats().wal_truncations;
    let mut appends = 0;
    while fixture.store.stats().wal_truncations == before {
        assert!(
            appends < 200,
            "no checkpoint truncated the log after {appends} appends (file {} bytes)",
            fixture.wal_len()
        );
        fixture.append().await;
        appends += 1;
    }
    let after = fixture.wal_len();
    println!("log file: {high_water} bytes, {after} after the truncating checkpoint");
    assert!(after <= BOUND + ONE_BATCH, "{after} bytes after the cut");
    fixture.keeps_being_cut_back().await;
}
