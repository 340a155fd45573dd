//! Crash safety: a child process appends in a loop and is killed with SIGKILL at random
//! moments, many times. After each kill the store must reopen with every acknowledged append
//! present, in order, nothing half-written, and appends must go on from the right revision.
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use loyalty_store::{
    CurrentRevision, Direction, EventStore, ExpectedRevision, Position, RecordedEvent, StreamFrom,
    Uuid,
};
use loyalty_store_sqlite::{SqliteOptions, SqliteStore};

const KILLS: u32 = 25;
const EVENTS_PER_APPEND: u64 = 3;
const STREAMS: usize = 4;

/// xorshift64*: a seeded PRNG is enough to spread the kill moments, and keeps runs comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

/// An acknowledged append: the stream, its first revision and its event ids.
type Ack = (String, u64, Vec<Uuid>);

/// Runs the child for a random short time, kills it, and returns what it acknowledged.
fn run_child_and_kill(path: &Path, rng: &mut Rng) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-child"))
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn crash-child");
    let mut stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).expect("read child stdout");
        out
    });
    std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let out = reader.join().expect("reader thread");
    // Only whole lines are acknowledgements; a line cut by the kill is not.
    let whole = out.rsplit_once('\n').map_or("", |(whole, _cut)| whole);
    whole
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let stream = parts.next().expect("stream").to_owned();
            let first = parts.next().expect("revision").parse().expect("revision");
            let ids = parts
                .next()
                .expect("ids")
                .split(',')
                .map(|id| id.parse().expect("event id"))
                .collect();
            (stream, first, ids)
        })
        .collect()
}

async fn whole_stream(store: &SqliteStore, stream: &str) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    loop {
        let page = store
            .read_stream(
                stream,
                StreamFrom::Revision(events.len() as u64),
                Direction::Forwards,
                1000,
            )
            .await
            .expect("read stream");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// Every invariant the store must keep after a crash.
async fn check_store(store: &SqliteStore, acks: &[Ack]) -> u64 {
    let mut lengths = HashMap::new();
    for i in 0..STREAMS {
        let stream = format!("member-crash-{i}");
        let events = whole_stream(store, &stream).await;
        assert_eq!(
            events.len() as u64 % EVENTS_PER_APPEND,
            0,
            "{stream}: a half-written append is visible"
        );
        for (i, event) in events.iter().enumerate() {
            let revision = i as u64;
            assert_eq!(event.revision, revision, "{stream}: revisions have a gap");
            assert_eq!(
                event.data,
                format!(r#"{{"revision":{revision}}}"#).as_bytes(),
                "{stream}: event data at revision {revision}"
            );
            let starts_at = revision - revision % EVENTS_PER_APPEND;
            assert_eq!(
                event.metadata,
                format!(r#"{{"append_starts_at":{starts_at}}}"#).as_bytes(),
                "{stream}: appends are interleaved or torn"
            );
        }
        lengths.insert(stream, events);
    }
    for (stream, first, ids) in acks {
        let events = &lengths[stream];
        for (offset, id) in (0..).zip(ids) {
            let event = events
                .get((first + offset) as usize)
                .unwrap_or_else(|| panic!("{stream}: acknowledged revision {first} was lost"));
            assert_eq!(&event.id, id, "{stream}: acknowledged event replaced");
        }
    }
    // $all holds exactly the streams' events, in strictly growing positions.
    let mut after = Position::START;
    let mut in_all = 0u64;
    loop {
        let page = store.read_all(after, 1000).await.expect("read $all");
        let Some(last) = page.last() else { break };
        assert!(page.first().expect("non-empty").position > after);
        assert!(page.windows(2).all(|w| w[0].position < w[1].position));
        after = last.position;
        in_all += page.len() as u64;
    }
    let total: u64 = lengths.values().map(|e| e.len() as u64).sum();
    assert_eq!(in_all, total, "$all and the streams disagree");
    assert_eq!(store.head_position().await.expect("head"), after);
    // The hash chain was written with the events: every one has its link, none is torn.
    let report = loyalty_store::chain::verify(
        store,
        loyalty_store::chain::VerifyOptions {
            up_to: None,
            may_truncate: &|_| false,
        },
    )
    .await
    .expect("verify the chain");
    assert_eq!(report.mismatch, None, "the chain after a crash");
    assert_eq!(report.links, total, "one link per event");
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_sigkill_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let mut rng = Rng(0x5EED_CAFE_F00D_BEEF);
    let mut acks = Vec::new();
    let mut stored_before = 0;
    let mut rounds_that_stored = 0;

    for _ in 0..KILLS {
        // Given a child appending when it is killed...
        acks.extend(run_child_and_kill(&path, &mut rng));
        // ...when the store is reopened, then everything acknowledged is there, whole.
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .expect("reopen after kill");
        let stored = check_store(&store, &acks).await;
        assert!(stored >= stored_before, "events disappeared");
        if stored > stored_before {
            rounds_that_stored += 1;
        }
        stored_before = stored;
        store.close().await.expect("close");
    }
    // The kills must have interrupted real work, or the test proved nothing.
    assert!(
        rounds_that_stored > KILLS / 2,
        "only {rounds_that_stored} of {KILLS} children got to append"
    );
    assert!(!acks.is_empty());

    // And appends continue from the right revision.
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .expect("reopen");
    let stream = "member-crash-0";
    let CurrentRevision::Current(last) = store.stream_revision(stream).await.expect("revision")
    else {
        panic!("the child never appended to {stream}");
    };
    let result = store
        .append(
            stream,
            ExpectedRevision::Exact(last),
            vec![loyalty_store::conformance::sample_event(0)],
        )
        .await
        .expect("append after the crashes");
    assert_eq!(result.next_expected_revision, last + 1);
}
