//! Set-up work spread over tasks: the bench fills stores and seeds members this way (it is not
//! what is measured, it only has to be quick).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Calls `work(first, end)` for consecutive ranges of `step` items covering `0..count`, on
/// `workers` tasks at once; the first error ends the run.
pub async fn for_each_range<F, Fut>(
    count: u64,
    workers: u64,
    step: u64,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (next, work) = (next.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(step, Ordering::Relaxed);
                if first >= count {
                    return anyhow::Ok(());
                }
                work(first, count.min(first + step)).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
