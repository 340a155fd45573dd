//! CPU time a process has used (user + system), from `/proc/<pid>/stat`.
//!
//! Not `/proc/<pid>/schedstat`, though its nanoseconds are finer: it is the one thread's (the
//! main thread's, for `/proc/self`), and the server runs on the runtime's worker threads.
//! `stat`'s utime and stime add up every thread of the process, those that have exited too
//! (a blocking-pool thread may end during a run), in clock ticks of `USER_HZ`: 10 ms, over runs
//! that use seconds of CPU.

use std::time::Duration;

use crate::Error;

/// The unit of utime and stime: `USER_HZ`, 100 on Linux whatever the kernel's own tick (it is
/// part of the user-space ABI; `sysconf(_SC_CLK_TCK)` answers it, and would need libc).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time this process has used so far, all its threads.
pub fn process() -> Result<Duration, Error> {
    read("/proc/self/stat")
}

/// CPU time the calling thread has used so far.
pub fn thread() -> Result<Duration, Error> {
    read("/proc/thread-self/stat")
}

fn read(path: &'static str) -> Result<Duration, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Proc { path, source })?;
    parse_stat(&text).ok_or(Error::ProcFormat { path, text })
}

/// utime + stime of a `stat` line: its 14th and 15th fields. The 2nd, the command name in
/// parentheses, may itself hold spaces and parentheses: the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Duration> {
    let (_, after_name) = text.rsplit_once(')')?;
    // The first field after the name is the 3rd (the state).
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = user.checked_add(system)?;
    Some(Duration::from_millis(
        ticks.checked_mul(1000 / TICKS_PER_SECOND)?,
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A real line: a Python process named `load) 1 (x 2` (through `/proc/self/comm`) that
    /// spun in two threads, one since exited; utime 48 and stime 1 ticks, its children's 7 and 1.
    const REAL: &str = "12671 (load) 1 (x 2) R 12669 12669 6226 0 -1 4194304 2855 6559 1 0 48 1 \
                        7 1 20 0 1 0 39836 92467200 3369 18446744073709551615 93937042202624 \
                        93937042202965 140732758281008 0 0 0 0 16781312 2 0 0 0 17 0 0 0 0 0 0 \
                        93937042214320 93937042214936 93937373184000 140732758288358 \
                        140732758288680 140732758288680 140732758290383 0\n";

    #[test]
    fn reads_utime_and_stime_after_a_name_with_parentheses_and_spaces() {
        assert_eq!(parse_stat(REAL), Some(Duration::from_millis(490)));
    }

    #[test]
    fn refuses_a_truncated_line() {
        let cut = &REAL[..REAL.find(" 48 1 ").expect("the utime field") + 4];
        assert_eq!(parse_stat(cut), None);
        assert_eq!(parse_stat("12671 load R 12669"), None);
    }

    /// What the server's figure rests on: the process's CPU counts a thread's CPU after the
    /// thread has ended.
    #[test]
    fn the_process_counts_the_cpu_of_a_thread_that_has_exited() {
        let before = process().expect("this process's CPU");
        let spent = std::thread::spawn(|| {
            let (start, deadline) = (
                thread().expect("this thread's CPU"),
                Instant::now() + Duration::from_secs(30),
            );
            let mut spins = 0u64;
            // Spin until this thread has used 100 ms of CPU, however busy the machine is.
            while thread().expect("this thread's CPU") - start < Duration::from_millis(100) {
                assert!(Instant::now() < deadline, "no CPU time counted in 30 s");
                spins = std::hint::black_box(spins + 1);
            }
            thread().expect("this thread's CPU") - start
        })
        .join()
        .expect("the spinning thread");
        let after = process().expect("this process's CPU");
        assert!(spent >= Duration::from_millis(100));
        // Each reading is rounded down to a tick, the thread's two and the process's two.
        let rounding = Duration::from_millis(2 * 1000 / TICKS_PER_SECOND);
        assert!(
            after - before + rounding >= spent,
            "the process used {:?}, its ended thread {spent:?}",
            after - before
        );
    }
}
