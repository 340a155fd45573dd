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
/// The writer thread's buffer: lines taken off the queue together go out in one write.
const LOG_BUFFER_BYTES: usize = 64 * 1024;

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
    let (writer, guard) = writer_thread(writer);
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

/// The thread that writes the lines to `writer`, and the queue's sending end.
///
/// It writes every line it takes off the queue, then flushes once the queue is empty: behind a
/// buffer, a burst of lines is one write system call instead of one per line, and no line waits
/// longer than before. Under balance queries the unbuffered writes were 4% of the server's CPU
/// (`perf`, with the bench's access log going to a file).
fn writer_thread(
    writer: impl Write + Send + 'static,
) -> (tracing_appender::non_blocking::NonBlocking, WorkerGuard) {
    let buffered = FlushSoftly(std::io::BufWriter::with_capacity(LOG_BUFFER_BYTES, writer));
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(MAX_QUEUED_LINES)
        .thread_name("loyalty-log")
        .finish(buffered)
}

/// A buffered output whose flush never fails. tracing-appender's writer thread flushes with `?`
/// after taking the shutdown message off the queue: a failed flush (a closed stderr, a full disk)
/// would lose that message, and the program's exit would wait a second for the writer. A line
/// that cannot be written is lost either way.
struct FlushSoftly<W: Write>(std::io::BufWriter<W>);

impl<W: Write> Write for FlushSoftly<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // The buffer keeps what did not go out, and the next flush tries again.
        let _ = self.0.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The buffer never holds a line back: once the queue is empty, what was written is out,
    /// while the writer thread still runs (a server's log is read while it serves).
    #[test]
    fn a_line_reaches_the_output_while_the_writer_runs_and_nothing_follows_it() {
        let out = Shared::default();
        let (mut writer, guard) = writer_thread(out.clone());
        writer.write_all(b"the only line\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().as_slice() != b"the only line\n" {
            assert!(Instant::now() < deadline, "the line was held back");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(guard);
    }
}
