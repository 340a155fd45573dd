//! Catch-up subscriptions to `$all`, resumed after a disconnect from the last position seen.

use std::sync::Arc;

use eventstore::{StreamPosition, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter};
use loyalty_store::{
    Position, StoreError, StreamFilter, Subscription, SubscriptionMessage, SubscriptionSender,
};

use crate::connection::Connection;
use crate::convert::{event_from_es, position_from_es, position_to_es};

/// The server-side filter: the engine's stream prefixes, or every stream whose name does not
/// start with `$` when no prefix is given. The adapter filters again on its side, so that a
/// server ignoring the filter, or a `$`-prefix, still never yields a system event.
pub(crate) fn server_filter(filter: &StreamFilter) -> SubscriptionFilter {
    if filter.stream_prefixes.is_empty() {
        SubscriptionFilter::on_stream_name().regex("^[^$]")
    } else {
        filter
            .stream_prefixes
            .iter()
            .fold(SubscriptionFilter::on_stream_name(), |f, p| f.add_prefix(p))
    }
}

pub(crate) fn spawn(
    connection: Arc<Connection>,
    after: Position,
    filter: StreamFilter,
) -> Subscription {
    let (tx, subscription) = Subscription::channel();
    tokio::spawn(drive(connection, after, filter, tx));
    subscription
}

/// Where a (re)subscription starts: strictly after `cursor`.
fn start(cursor: Position) -> StreamPosition<eventstore::Position> {
    if cursor == Position::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(position_to_es(cursor))
    }
}

async fn drive(
    connection: Arc<Connection>,
    after: Position,
    filter: StreamFilter,
    tx: SubscriptionSender,
) {
    // Every matching event at or before `cursor` has been delivered: a resubscription starts
    // strictly after it, so a disconnect causes neither a gap nor a duplicate.
    let mut cursor = after;
    let mut caught_up = false;
    let mut failures = 0u32;
    loop {
        let slot = connection.slot();
        let options = SubscribeToAllOptions::default()
            .position(start(cursor))
            .filter(server_filter(&filter));
        let mut subscription = slot.client.subscribe_to_all(&options).await;
        let error = loop {
            let received = tokio::select! {
                received = subscription.next_subscription_event() => received,
                () = tx.closed() => return,
            };
            let message = match received {
                Ok(SubscriptionEvent::Confirmed(_)) => {
                    connection.mark_ready();
                    failures = 0;
                    continue;
                }
                Ok(SubscriptionEvent::EventAppeared(resolved)) => {
                    let recorded = resolved.get_original_event();
                    let position = position_from_es(recorded.position);
                    if position <= cursor {
                        continue;
                    }
                    cursor = position;
                    // Before decoding: an event the filter does not want is never looked at.
                    if !filter.matches(&recorded.stream_id) {
                        continue;
                    }
                    SubscriptionMessage::Event(event_from_es(recorded))
                }
                // The server scanned up to here without a match: resume after it.
                Ok(SubscriptionEvent::Checkpoint(position)) => {
                    cursor = cursor.max(position_from_es(position));
                    continue;
                }
                Ok(SubscriptionEvent::CaughtUp) if !caught_up => {
                    caught_up = true;
                    SubscriptionMessage::CaughtUp { position: cursor }
                }
                Ok(_) => continue,
                Err(error) => break error,
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        };

        if !connection.after_failure(slot.generation, &error) {
            let _ = tx
                .send(Err(StoreError::Backend(format!(
                    "subscription to $all: {error}"
                ))))
                .await;
            return;
        }
        failures += 1;
        if failures > connection.options.subscription_max_reconnects {
            let _ = tx
                .send(Err(StoreError::Unavailable(format!(
                    "subscription to $all lost after {failures} reconnections: {error}"
                ))))
                .await;
            return;
        }
        tracing::warn!(error = %error, %cursor, "subscription to $all dropped, resubscribing");
        tokio::select! {
            () = connection.wait_before_retry(failures) => {}
            () = tx.closed() => return,
        }
    }
}
