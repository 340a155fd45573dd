//! One HTTP request: a signed message to an endpoint, with its timeout.
//!
//! The request is a `POST` of the message's payload, signed by the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`). A 2xx answer is a
//! delivery; anything else (another status, a redirect, a timeout, a refused connection) is a
//! failure the dispatcher retries. Redirects are never followed: an endpoint that moved is
//! updated by its admin, and following one would let a receiver point us anywhere.
//!
//! Unless `allow_private_targets`, a request never reaches a loopback, private, link-local,
//! unspecified or multicast address (SSRF: a webhook URL must not become a way into the
//! retailer's own network): a literal address of those kinds is refused before sending, and
//! host names are resolved by [`PublicResolver`], which refuses a name if any of its addresses is
//! of those kinds (so a name that resolves to both cannot be used to slip through).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::endpoint::Endpoint;
use crate::message::Message;
use crate::{WebhookError, WebhookSettings};

/// Longest error text recorded for one attempt.
pub const MAX_ERROR_CHARS: usize = 200;
/// Most bytes of an answer's body read (then the body is dropped): enough to let a small
/// answer's connection be reused, never enough for a receiver to make us buffer much.
const MAX_BODY_READ: usize = 1024;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status, when an answer came back.
    pub status: Option<u16>,
    /// Why it failed without a status (timeout, connection refused, target not allowed...),
    /// at most [`MAX_ERROR_CHARS`] characters.
    pub error: Option<String>,
    pub latency_ms: u64,
}

impl Outcome {
    /// A 2xx answer.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Why it failed, for logs and the endpoint's failing reason.
    pub fn failure(&self) -> Option<String> {
        if self.delivered() {
            return None;
        }
        Some(match (&self.error, self.status) {
            (Some(error), _) => error.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "failed".to_owned(),
        })
    }
}

/// The HTTP client every delivery of one dispatcher shares (one connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    allow_private: bool,
}

impl Client {
    pub fn new(settings: &WebhookSettings) -> Result<Client, WebhookError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve the target itself, past the checks
            // below: deliveries go direct.
            .no_proxy()
            .user_agent(settings.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(60));
        if !settings.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(PublicResolver));
        }
        let http = builder
            .build()
            .map_err(|e| WebhookError::InvalidSetting(format!("http client: {e}")))?;
        Ok(Client {
            http,
            allow_private: settings.allow_private_targets,
        })
    }

    /// Sends `message` to `endpoint` once, signed with the endpoint's secrets at `now` (the
    /// server's clock). Never fails: every failure is an [`Outcome`].
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        message: &Message,
        now: DateTime<Utc>,
    ) -> Outcome {
        let started = Instant::now();
        let finish = |status: Option<u16>, error: Option<String>| Outcome {
            status,
            error: error.map(|e| bounded(&e)),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        if let Err(why) = self.check_url(&endpoint.url) {
            return finish(None, Some(why));
        }
        let timestamp = now.timestamp();
        let signature = crate::signing::signature_header(
            &endpoint.signing_secrets(now),
            &message.id,
            timestamp,
            &message.payload,
        );
        let timeout = Duration::from_millis(endpoint.timeout_ms.max(1));
        let request = self
            .http
            .post(&endpoint.url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", message.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.payload.clone());
        match request.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                // Read a little of the body so a small answer's connection can be reused; the
                // request's timeout covers this too.
                let mut read = 0;
                while read < MAX_BODY_READ {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        Ok(None) | Err(_) => break,
                    }
                }
                finish(Some(status), None)
            }
            Err(e) => finish(None, Some(describe(&e, timeout))),
        }
    }

    /// Refuses a URL we would not send to: not http(s), or a literal address we must not reach.
    fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid url: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("unsupported scheme {}", parsed.scheme()));
        }
        if self.allow_private {
            return Ok(());
        }
        let Some(host) = parsed.host_str() else {
            return Err("url without a host".to_owned());
        };
        // A literal address is connected to as is, without the resolver's check.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return Ok(());
        };
        if is_public(ip) {
            Ok(())
        } else {
            Err(format!("target address not allowed: {ip}"))
        }
    }
}

/// A short text for a failed request: what kind of failure, and its innermost cause (the
/// URL is left out: it may carry a token).
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timeout after {} ms", timeout.as_millis());
    }
    let kind = if error.is_connect() {
        "connect error"
    } else if error.is_request() || error.is_body() {
        "request error"
    } else {
        "error"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("{kind}: {cause}")
}

/// `text`, cut at [`MAX_ERROR_CHARS`] characters.
pub(crate) fn bounded(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// Whether a delivery may reach this address when private targets are not allowed: not
/// loopback, private, shared (CGNAT), link-local, unspecified, broadcast, multicast or
/// reserved, also when an IPv4 address hides in an IPv6 one (mapped, or NAT64).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = v6.segments();
            // 64:ff9b::/96, the NAT64 well-known prefix: the last 32 bits are an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = v6.octets();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7, unique local.
                || (segments[0] & 0xfe00) == 0xfc00
                // fe80::/10, link-local, and fec0::/10, the deprecated site-local.
                || (segments[0] & 0xffc0) == 0xfe80
                || (segments[0] & 0xffc0) == 0xfec0
                || is_ipv4_compatible(v6))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        // 0.0.0.0/8 ("this network"), 100.64.0.0/10 (shared, CGNAT), 240.0.0.0/4 (reserved).
        || a == 0
        || (a == 100 && (b & 0xc0) == 64)
        || a >= 240)
}

/// `::a.b.c.d`, the deprecated IPv4-compatible form (`::` and `::1` are handled apart).
fn is_ipv4_compatible(ip: Ipv6Addr) -> bool {
    ip.segments()[..6] == [0, 0, 0, 0, 0, 0]
}

/// Resolves host names with the system resolver and refuses those with an address a delivery
/// must not reach.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(format!("{host} has no address"))) as _);
            }
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(Refused(format!(
                    "target address not allowed: {host} resolves to {}",
                    bad.ip()
                ))) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn public_addresses_are_allowed_and_internal_ones_are_not() {
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public} should be public");
        }
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(internal)), "{internal} should be refused");
        }
    }

    fn endpoint(url: &str) -> Endpoint {
        let at: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().expect("a time");
        Endpoint {
            id: crate::endpoint::EndpointId::parse("crm").expect("id"),
            url: url.to_owned(),
            event_types: vec![],
            description: None,
            timeout_ms: 1_000,
            max_in_flight: 1,
            status: crate::endpoint::EndpointStatus::Enabled,
            failing: None,
            secret: crate::signing::Secret::generate(),
            previous_secret: None,
            created_at: at,
            updated_at: at,
            start_after: loyalty_store::Position::START,
            generation: 0,
            redeliveries: vec![],
        }
    }

    fn message() -> Message {
        Message {
            id: "msg_0".to_owned(),
            event_type: crate::endpoint::EventType::PurchaseRecorded,
            member_id: "alice".to_owned(),
            position: loyalty_store::Position::new(1, 1),
            recorded_at: Utc::now(),
            payload: loyalty_store::Bytes::from_static(b"{}"),
        }
    }

    fn strict() -> Client {
        Client::new(&WebhookSettings::default()).expect("a client")
    }

    #[tokio::test]
    async fn a_literal_internal_address_is_refused_before_anything_is_sent() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://169.254.169.254/",
        ] {
            let outcome = strict().send(&endpoint(url), &message(), Utc::now()).await;
            assert_eq!(outcome.status, None);
            assert!(
                outcome
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("not allowed")),
                "{url}: {outcome:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_by_the_resolver() {
        let refused = PublicResolver
            .resolve("localhost".parse().expect("a name"))
            .await;
        let Err(error) = refused else {
            panic!("localhost resolved");
        };
        assert!(error.to_string().contains("not allowed"), "{error}");
        let outcome = strict()
            .send(&endpoint("http://localhost:9/hook"), &message(), Utc::now())
            .await;
        assert!(
            outcome
                .error
                .as_deref()
                .is_some_and(|e| e.contains("not allowed")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn only_http_and_https_urls_are_sent_to() {
        let outcome = strict()
            .send(&endpoint("ftp://example.com/hook"), &message(), Utc::now())
            .await;
        assert!(
            outcome
                .error
                .as_deref()
                .is_some_and(|e| e.contains("unsupported scheme")),
            "{outcome:?}"
        );
    }

    #[test]
    fn an_error_text_is_cut_at_its_limit() {
        let long = "é".repeat(MAX_ERROR_CHARS + 50);
        assert_eq!(bounded(&long).chars().count(), MAX_ERROR_CHARS);
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn a_failure_is_described_by_its_error_or_its_status() {
        let timeout = Outcome {
            status: None,
            error: Some("timeout after 5 ms".into()),
            latency_ms: 5,
        };
        assert_eq!(timeout.failure().as_deref(), Some("timeout after 5 ms"));
        let refused = Outcome {
            status: Some(503),
            error: None,
            latency_ms: 1,
        };
        assert!(!refused.delivered());
        assert_eq!(refused.failure().as_deref(), Some("HTTP 503"));
        let ok = Outcome {
            status: Some(204),
            error: None,
            latency_ms: 1,
        };
        assert!(ok.delivered());
        assert_eq!(ok.failure(), None);
    }
}
