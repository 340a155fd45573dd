//! A small server that speaks EventStoreDB's gRPC protocol (the `Streams` service and
//! `ServerFeatures`), for testing the EventStoreDB adapter through the real `eventstore` client
//! on machines where no EventStoreDB can run.
//!
//! It keeps what the adapter relies on the way the real server does: stream revisions from 0,
//! wrong-expected-version replies carrying the current revision, deduplication by event id
//! (an idempotent retry is answered without a position), append replies whose position is
//! (commit, commit) rather than the last event's (commit, prepare), `$all` positions that are byte offsets
//! (commit = the append's first record, prepare = the event's own record), system events in
//! `$all` (two `$`-streams are written at start), `$all` reads that do not filter, and
//! catch-up subscriptions to `$all` (confirmation, history, caught-up, live events,
//! stream-name or event-type filters by prefix or regex, checkpoints), and stream metadata's
//! `$tb` (truncate before), honoured by reads of the stream (the events stay in `$all`).
//!
//! Gossip is not served: the `eventstore` client (4.0) gossips only for `esdb+discover://` or
//! several hosts; for a single `esdb://host:port` it calls `ServerFeatures` and then `Streams`.
//!
//! Test hooks: [`TestServer::drop_subscriptions`] cuts every running subscription,
//! [`TestServer::reject_appends_as_not_leader`] answers appends the way a follower does.
//! Everything lives in memory; the server stops when the [`TestServer`] is dropped.
#![forbid(unsafe_code)]
// `tonic::Status` is the error type of every gRPC handler; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod features;
mod filter;
mod log;
mod proto;
mod streams;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::TcpListenerStream;

pub use streams::MAX_APPEND_SIZE;

use crate::log::{Expected, Log, Proposed};
use crate::proto::event_store::client::server_features::server_features_server::ServerFeaturesServer;
use crate::proto::event_store::client::streams::streams_server::StreamsServer;

/// What the server's handlers share.
#[derive(Debug)]
pub(crate) struct State {
    log: Mutex<Log>,
    /// The log's length, bumped after each write: live subscriptions wait on it.
    appended: watch::Sender<usize>,
    /// Bumped to cut every running subscription.
    kill_subscriptions: watch::Sender<u64>,
    not_leader_rejections: AtomicUsize,
    append_calls: AtomicUsize,
    /// Events sent to subscriptions, after the server-side filter.
    subscription_events: AtomicUsize,
    port: u16,
}

/// A running test server on a loopback port.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server on `127.0.0.1`, on a port the OS picks.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a server on the given address (to bring a server up where a client already
    /// waits for one).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            log: Mutex::new(Log::default()),
            appended: watch::Sender::new(0),
            kill_subscriptions: watch::Sender::new(0),
            not_leader_rejections: AtomicUsize::new(0),
            append_calls: AtomicUsize::new(0),
            subscription_events: AtomicUsize::new(0),
            port: addr.port(),
        });
        let mut server = Self {
            addr,
            state: Arc::clone(&state),
            shutdown: None,
        };
        // The real server writes system events of its own from the start: `$all` is never
        // empty of them, and clients must filter them out.
        server.append_system_event("$settings", "$settings");
        server.append_system_event("$stats-127.0.0.1:2113", "$statsCollected");

        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .add_service(StreamsServer::new(streams::StreamsService {
                state: Arc::clone(&state),
            }))
            .add_service(ServerFeaturesServer::new(features::FeaturesService));
        tokio::spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            let stopped = async {
                let _ = shutdown_rx.await;
            };
            let _ = router.serve_with_incoming_shutdown(incoming, stopped).await;
        });
        server.shutdown = Some(shutdown_tx);
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connection string for the `eventstore` client: single node, no TLS.
    pub fn url(&self) -> String {
        format!("esdb://{}?tls=false", self.addr)
    }

    /// Writes an event to a system stream (`$`-prefixed), as the real server does on its own.
    pub fn append_system_event(&self, stream: &str, event_type: &str) {
        let mut log = self.state.log.lock().unwrap_or_else(|p| p.into_inner());
        log.append(
            stream,
            Expected::Any,
            vec![Proposed {
                id: uuid::Uuid::new_v4(),
                event_type: event_type.to_owned(),
                is_json: true,
                custom_metadata: bytes::Bytes::new(),
                data: bytes::Bytes::from_static(b"{}"),
            }],
            log::now_ticks(),
        );
        self.state.appended.send_replace(log.len());
    }

    /// Ends every running subscription with an `Unavailable` error, as a lost connection or a
    /// server restart would.
    pub fn drop_subscriptions(&self) {
        self.state.kill_subscriptions.send_modify(|n| *n += 1);
    }

    /// Answers the next `count` appends with the not-leader error a follower sends (pointing
    /// at this same server as the leader), without writing anything.
    pub fn reject_appends_as_not_leader(&self, count: usize) {
        self.state
            .not_leader_rejections
            .store(count, Ordering::SeqCst);
    }

    /// How many append calls reached the server (rejected ones included).
    pub fn append_calls(&self) -> usize {
        self.state.append_calls.load(Ordering::SeqCst)
    }

    /// How many events the server has sent to subscriptions, all of them together: what its
    /// filters let through (checkpoints and confirmations not counted).
    pub fn subscription_events_sent(&self) -> usize {
        self.state.subscription_events.load(Ordering::SeqCst)
    }

    /// How many events `$all` holds, system events included.
    pub fn event_count(&self) -> usize {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.drop_subscriptions();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
