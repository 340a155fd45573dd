//! Read-your-writes: the projections publish the last position they applied through a `watch`
//! channel, and a read that names a `min_position` waits (bounded) until they reached it.

use std::time::Duration;

use loyalty_store::Position;
use tokio::sync::watch;

/// What the projections have done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Progress {
    /// Last position of `$all` applied (or covered by the caught-up marker).
    pub(crate) position: Position,
    /// The history read at start is over: reads reflect the store as of a moment ago.
    pub(crate) caught_up: bool,
}

#[derive(Debug)]
pub(crate) struct ProgressTracker {
    tx: watch::Sender<Progress>,
}

/// Why a wait ended without the position being reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitError {
    TimedOut { reached: Position },
}

impl ProgressTracker {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::channel(Progress::default()).0,
        }
    }

    pub(crate) fn get(&self) -> Progress {
        *self.tx.borrow()
    }

    pub(crate) fn advance(&self, position: Position) {
        self.tx.send_if_modified(|p| {
            if position > p.position {
                p.position = position;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn caught_up(&self, position: Position) {
        self.tx.send_modify(|p| {
            p.caught_up = true;
            if position > p.position {
                p.position = position;
            }
        });
    }

    /// Waits until `position` was applied, at most `limit`.
    pub(crate) async fn wait_for(
        &self,
        position: Position,
        limit: Duration,
    ) -> Result<(), WaitError> {
        let mut rx = self.tx.subscribe();
        let waited = tokio::time::timeout(limit, rx.wait_for(|p| p.position >= position)).await;
        let now = self.get();
        if now.position >= position {
            return Ok(());
        }
        // Timed out (or the tracker is gone, which cannot happen while `self` lives).
        let _ = waited;
        Err(WaitError::TimedOut {
            reached: now.position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_reader_waiting_for_a_position_wakes_once_the_projection_reaches_it() {
        // Given a tracker at the start and a reader waiting for position 3
        let tracker = Arc::new(ProgressTracker::new());
        let waiter = {
            let tracker = tracker.clone();
            tokio::spawn(async move {
                tracker
                    .wait_for(Position::new(3, 3), Duration::from_secs(30))
                    .await
            })
        };
        // When the projection applies positions 1 to 3
        for i in 1..=3 {
            tokio::task::yield_now().await;
            tracker.advance(Position::new(i, i));
        }
        // Then the reader is released
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_waiting_for_a_position_never_reached_gives_up_at_the_limit() {
        let tracker = ProgressTracker::new();
        tracker.advance(Position::new(1, 1));
        let result = tracker
            .wait_for(Position::new(9, 9), Duration::from_millis(50))
            .await;
        assert_eq!(
            result,
            Err(WaitError::TimedOut {
                reached: Position::new(1, 1)
            })
        );
    }

    #[tokio::test]
    async fn positions_never_go_backwards() {
        let tracker = ProgressTracker::new();
        tracker.advance(Position::new(5, 5));
        tracker.advance(Position::new(2, 2));
        assert_eq!(tracker.get().position, Position::new(5, 5));
    }
}
