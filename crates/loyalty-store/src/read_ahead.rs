//! Reading `$all` from start to end with the next page already on its way.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::{EventStore, Position, RecordedEvent, StoreError};

type PendingPage = JoinHandle<Result<Vec<RecordedEvent>, StoreError>>;

/// Pages of `$all`, each asked of the store as soon as the one before it arrives, so that the
/// store reads the next page while the caller works through this one. At most one page is
/// read ahead. Replay and verification use it: on two cores, reading SQLite and decoding
/// events then overlap instead of taking turns.
pub struct ReadAhead {
    store: Arc<dyn EventStore>,
    page_size: usize,
    next: Option<PendingPage>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("page_size", &self.page_size)
            .field("reading", &self.next.is_some())
            .finish_non_exhaustive()
    }
}

impl ReadAhead {
    /// Starts reading the events after `after`, `page_size` at a time (within the store's
    /// limits, or the first read fails with the store's own error).
    pub fn new(store: Arc<dyn EventStore>, after: Position, page_size: usize) -> Self {
        let next = Some(read(Arc::clone(&store), after, page_size));
        Self {
            store,
            page_size,
            next,
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let Some(pending) = self.next.take() else {
            return Ok(None);
        };
        let page = pending
            .await
            .map_err(|e| StoreError::Backend(format!("read-ahead task failed: {e}")))??;
        // A short page is the last one.
        if page.len() >= self.page_size
            && let Some(last) = page.last()
        {
            self.next = Some(read(Arc::clone(&self.store), last.position, self.page_size));
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // A reader that stops early does not leave a read running for nobody.
        if let Some(pending) = self.next.take() {
            pending.abort();
        }
    }
}

fn read(store: Arc<dyn EventStore>, after: Position, page_size: usize) -> PendingPage {
    tokio::spawn(async move { store.read_all(after, page_size).await })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventData, ExpectedRevision, InMemoryStore};

    fn event(n: u64) -> EventData {
        EventData {
            id: uuid::Uuid::new_v4(),
            event_type: "Counted".to_owned(),
            schema_version: 1,
            data: bytes::Bytes::from(format!("{{\"n\":{n}}}")),
            metadata: bytes::Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn read_ahead_yields_every_event_once_in_order_whatever_the_page_size() {
        let store: Arc<dyn EventStore> = Arc::new(InMemoryStore::new());
        for n in 0..25 {
            store
                .append(
                    &format!("s-{}", n % 3),
                    ExpectedRevision::Any,
                    vec![event(n)],
                )
                .await
                .unwrap();
        }
        let everything = store.read_all(Position::START, 100).await.unwrap();
        assert_eq!(everything.len(), 25);
        for page_size in [1, 4, 5, 24, 25, 26, 100] {
            let mut pages = ReadAhead::new(Arc::clone(&store), Position::START, page_size);
            let mut seen = Vec::new();
            while let Some(page) = pages.next_page().await.unwrap() {
                assert!(page.len() <= page_size);
                seen.extend(page);
            }
            assert_eq!(seen, everything, "page size {page_size}");
            assert!(pages.next_page().await.unwrap().is_none());
        }
        // From the middle: strictly after the position given.
        let middle = everything[9].position;
        let mut pages = ReadAhead::new(Arc::clone(&store), middle, 7);
        let mut seen = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            seen.extend(page);
        }
        assert_eq!(seen, everything[10..]);
    }
}
