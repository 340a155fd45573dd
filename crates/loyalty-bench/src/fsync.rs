//! This disk's fsync rate: the floor that group commit must beat. An engine that fsyncs once per
//! append can never ingest faster than this; one that groups appends can.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

pub use loyalty_bench::per_second;

/// Writes 4 KiB and calls `fsync` (File::sync_all) in a loop for about `budget`; returns fsyncs
/// per second.
pub fn fsync_rate(dir: &Path, budget: Duration) -> std::io::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget || count < 10 {
        file.write_all(&block)?;
        file.sync_all()?;
        count += 1;
    }
    let rate = per_second(count, start.elapsed());
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
