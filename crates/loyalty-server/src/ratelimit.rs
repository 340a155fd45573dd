//! Per-key rate limits (`limits.rate_per_sec`, `limits.rate_burst`): a GCRA bucket per API key
//! and per member token's subject (tower_governor over governor), and per peer IP address for
//! requests without a valid credential (health probes, the API document, wrong keys). Beyond
//! it: 429 `rate-limited` with `Retry-After`.
//!
//! A key's bucket is keyed by the key's configured name, so a key is limited however many
//! connections or addresses share it, and one key's traffic never slows another's. A member
//! token's bucket is its member's: every token of one member shares it.
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::auth::Identified;
use crate::error::ApiError;

/// Whose bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A valid API key, by its configured name.
    Key(Arc<str>),
    /// A valid member token, by its subject (the member).
    Member(Arc<str>),
    /// No valid key: the peer's address.
    Peer(IpAddr),
    /// No valid key and no peer address (a router driven in process, without a listener).
    Unknown,
}

/// Finds the caller's bucket from the caller [`crate::auth::identify`] found (run in front of
/// the limiter): a valid credential's key or member, else the peer's address.
#[derive(Debug, Clone, Copy)]
pub struct RateKeyExtractor;

impl KeyExtractor for RateKeyExtractor {
    type Key = RateKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<RateKey, GovernorError> {
        if let Some(Identified(Ok(caller))) = req.extensions().get::<Identified>() {
            return Ok(match caller.member() {
                Some(member) => RateKey::Member(member.as_str().into()),
                None => RateKey::Key(caller.name.as_str().into()),
            });
        }
        Ok(req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(RateKey::Unknown, |ConnectInfo(addr)| {
                RateKey::Peer(addr.ip())
            }))
    }
}

/// How often buckets that filled up again (idle keys and addresses) are dropped.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// `router` with each key limited to `rate` requests per second with bursts of `burst`.
///
/// Buckets of peers that went quiet are forgotten every minute (by a task that ends with the
/// router), so a stream of new addresses does not grow the table for good.
pub fn limit<S>(router: Router<S>, rate: NonZeroU32, burst: NonZeroU32) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let period = Duration::from_nanos((1_000_000_000 / u64::from(rate.get())).max(1));
    let mut builder = GovernorConfigBuilder::default();
    builder.period(period).burst_size(burst.get());
    let config = builder
        .key_extractor(RateKeyExtractor)
        .finish()
        .unwrap_or_else(|| unreachable!("the period and the burst are positive"));
    let limiter = Arc::downgrade(config.limiter());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    break;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
    let layer = GovernorLayer::new(config).error_handler(|error| match error {
        // The wait is rounded down to whole seconds: one more, so that a client that waits
        // as told is let through.
        GovernorError::TooManyRequests { wait_time, .. } => {
            let seconds = u32::try_from(wait_time.saturating_add(1)).unwrap_or(u32::MAX);
            ApiError::rate_limited(seconds).into_response()
        }
        other => ApiError::internal(format!("rate limiter: {other}")).into_response(),
    });
    router.layer(layer)
}
