//! Structured logs: `RUST_LOG` picks what is shown (default `info`; `info,tower_http=warn` keeps
//! everything but the access log's line per request), `--log-json` prints JSON.
//!
//! Lines are formatted where they happen and written by a thread of their own
//! (`tracing-appender`'s non-blocking writer): a request that logs never waits for a write to
//! stderr, nor for the other requests' writes (under load, the workers queued behind stderr's
//! lock and the write system call, and the latency's tail showed it). The queue is bounded; when a
//! log collector stops reading and it fills, lines are dropped rather than requests held.
use std::io::Write;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Most log lines queued for the writer thread.
const MAX_QUEUED_LINES: usize = 64 * 1024;

/// Keeps the writer thread: dropped when the program ends, it writes out what is queued.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code, reason = "held for its Drop")] Option<WorkerGuard>);

/// Installs the global subscriber, writing to stderr; a second call (tests) is a no-op.
pub fn init(json: bool) -> LogGuard {
    // Colours only for a person at a terminal, not in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    init_to(std::io::stderr(), ansi, json)
}

/// Installs the global subscriber writing to `writer` (the bench logs the server it measures to
/// a file, as deployed); a second call is a no-op.
pub fn init_to(writer: impl Write + Send + 'static, ansi: bool, json: bool) -> LogGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(MAX_QUEUED_LINES)
        .thread_name("loyalty-log")
        .finish(writer);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    LogGuard(installed.is_ok().then_some(guard))
}
