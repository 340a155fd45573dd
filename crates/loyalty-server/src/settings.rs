//! The HTTP server's settings: its listener, limits, API keys and member tokens
//! ([`ApiSettings`]). The binary that wires the process reads them from `config/loyalty.toml` and
//! the `LOYALTY_` environment together with the process-wide settings (which store and its URL,
//! snapshots, the scheduler, the cache), which are none of the HTTP crate's business; it calls
//! [`ApiSettings::validate`] before the server listens.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::ServerError;

/// What the HTTP crate is configured with (sections of the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApiSettings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    /// API keys, stored as SHA-256 hashes; the plaintext never appears in configuration.
    #[serde(default)]
    pub api_keys: Vec<ApiKeySettings>,
    /// Member tokens (`POST /v1/tokens`): their signing keys, audience and lifetime.
    #[serde(default)]
    pub tokens: TokenSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Longest time one request may take before it is answered 408/503.
    pub request_timeout_ms: u64,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_ms: u64,
    /// When set, `/metrics` is served on this address only, without a key (for a Prometheus
    /// on a private network), and the main listener does not serve it. When unset, `/metrics`
    /// is on the main listener and needs an admin key.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_ms: 10_000,
            shutdown_grace_ms: 30_000,
            metrics_listen: None,
        }
    }
}

impl ServerSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Limits on everything a client can make the server do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Largest page of a member's history.
    pub history_page_max: usize,
    /// Largest page of the event log.
    pub log_page_max: usize,
    /// Longest a read waits for `?min_position=` to be reached.
    pub read_wait_ms: u64,
    /// Largest amount of money one purchase or refund may carry (a typo guard: "absurd amounts").
    pub max_amount: Decimal,
    /// Largest number of points one adjustment or goodwill grant may move.
    pub max_adjust_points: i64,
    /// Most lines in one purchase.
    pub max_lines: usize,
    /// Most requests served at once; the rest wait (back-pressure, not unbounded queues).
    pub max_concurrent_requests: usize,
    /// Requests per second each API key may make, sustained (requests without a valid key:
    /// each peer IP address); beyond it 429 `rate-limited` with `Retry-After`. 0 turns rate
    /// limiting off.
    pub rate_per_sec: u32,
    /// Requests a key (or peer address) may make at once above the sustained rate.
    pub rate_burst: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            history_page_max: 100,
            log_page_max: 500,
            read_wait_ms: 5_000,
            max_amount: Decimal::new(10_000_000, 2),
            max_adjust_points: 1_000_000,
            max_lines: 200,
            max_concurrent_requests: 512,
            rate_per_sec: 1_000,
            rate_burst: 2_000,
        }
    }
}

/// The highest sustained rate a key may be given (one request per microsecond).
const MAX_RATE_PER_SEC: u32 = 1_000_000;

impl LimitSettings {
    pub fn read_wait(&self) -> Duration {
        Duration::from_millis(self.read_wait_ms)
    }

    /// The sustained rate and burst per key, or `None` when rate limiting is off.
    pub fn rate_limit(&self) -> Option<(std::num::NonZeroU32, std::num::NonZeroU32)> {
        Some((
            std::num::NonZeroU32::new(self.rate_per_sec)?,
            std::num::NonZeroU32::new(self.rate_burst)?,
        ))
    }
}

/// One API key: who holds it, what it may do and, for terminals, which stores it may post for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the key, lowercase hex (64 characters): `printf %s KEY | sha256sum`.
    pub sha256: String,
    /// The stores a terminal key is bound to (required, and only allowed, for terminals).
    #[serde(default)]
    pub stores: Vec<String>,
}

/// Member tokens: short-lived signed tokens (JWT, HS256) that an `issuer` key (a retailer's
/// back-end) obtains for one member (`POST /v1/tokens`), so that the member's app acts for that
/// member only. Off while no key is listed.
///
/// ```toml
/// [tokens]
/// audience = "loyalty-app"
/// issuer = "loyalty"
/// max_ttl_secs = 900
///
/// [[tokens.keys]]
/// id = "2026-03"                  # the token's `kid`
/// secret_env = "TOKEN_KEY_2026_03"  # or secret = "..." (at least 32 bytes)
/// ```
///
/// The current key (the one marked `current = true`, or else the first) signs; every listed
/// key verifies. To rotate: list the new key first (or mark it current) and keep the old one
/// until the tokens it signed have expired (`max_ttl_secs`), then remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// The `aud` claim tokens are issued for and must carry.
    pub audience: String,
    /// The `iss` claim tokens are issued with and must carry.
    pub issuer: String,
    /// Longest lifetime of a token, and the lifetime of one requested without `ttl_secs`.
    pub max_ttl_secs: u64,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The signing and verifying keys.
    pub keys: Vec<TokenKeySettings>,
}

/// The longest lifetime a member token may be given: a day (they are meant to be short-lived).
pub const MAX_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// The largest clock-skew leeway for member tokens: five minutes.
pub const MAX_TOKEN_LEEWAY_SECS: u64 = 300;

/// The shortest HS256 secret: 256 bits, the size of the hash.
pub const MIN_TOKEN_SECRET_BYTES: usize = 32;

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            audience: "loyalty-app".to_owned(),
            issuer: "loyalty".to_owned(),
            max_ttl_secs: 900,
            leeway_secs: 30,
            keys: Vec::new(),
        }
    }
}

impl TokenSettings {
    /// Whether member tokens are on: at least one key is listed.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The key that signs new tokens: the one marked current, or else the first.
    pub fn signing_key(&self) -> Option<&TokenKeySettings> {
        self.keys
            .iter()
            .find(|k| k.current)
            .or_else(|| self.keys.first())
    }
}

/// One key of `[[tokens.keys]]`: its id (the tokens' `kid` header) and its secret, given inline
/// (`secret`) or in an environment variable (`secret_env`, read at load).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKeySettings {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`, unique.
    pub id: String,
    /// The HMAC secret itself (at least 32 bytes). Prefer `secret_env` outside demos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The name of an environment variable holding the secret. Not a `LOYALTY_` one: those
    /// are read as settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// This key signs new tokens (at most one key is current; default: the first listed).
    #[serde(default)]
    pub current: bool,
}

/// Secrets are never printed.
impl std::fmt::Debug for TokenKeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeySettings")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .field("current", &self.current)
            .finish()
    }
}

impl TokenKeySettings {
    /// The secret's bytes, from the setting or its environment variable.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, String> {
        let id = &self.id;
        let secret = match (&self.secret, &self.secret_env) {
            (Some(secret), None) => secret.clone(),
            (None, Some(var)) => {
                if var.to_ascii_uppercase().starts_with("LOYALTY_") {
                    return Err(format!(
                        "tokens.keys {id:?}: secret_env = {var:?} starts with LOYALTY_, which \
                         is read as a setting; use another variable name"
                    ));
                }
                std::env::var(var).map_err(|_| {
                    format!("tokens.keys {id:?}: the environment variable {var} is not set")
                })?
            }
            _ => {
                return Err(format!(
                    "tokens.keys {id:?}: give exactly one of secret and secret_env"
                ));
            }
        };
        if secret.trim().is_empty() {
            return Err(format!("tokens.keys {id:?}: the secret is empty"));
        }
        if secret.len() < MIN_TOKEN_SECRET_BYTES {
            return Err(format!(
                "tokens.keys {id:?}: the secret has {} bytes, fewer than the \
                 {MIN_TOKEN_SECRET_BYTES} HS256 needs",
                secret.len()
            ));
        }
        Ok(secret.into_bytes())
    }
}

impl ApiSettings {
    /// Checks what types alone cannot (the binary calls it with its own checks, at load).
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        let l = &self.limits;
        if l.body_bytes < 1024 || l.body_bytes > 16 * 1024 * 1024 {
            return bad(format!(
                "limits.body_bytes = {} is not between 1 KiB and 16 MiB",
                l.body_bytes
            ));
        }
        if l.history_page_max == 0 || l.history_page_max > 1_000 {
            return bad("limits.history_page_max must be between 1 and 1000".into());
        }
        if l.log_page_max == 0 || l.log_page_max > 4_096 {
            return bad("limits.log_page_max must be between 1 and 4096".into());
        }
        if l.read_wait_ms > 60_000 {
            return bad("limits.read_wait_ms must be at most 60000".into());
        }
        if l.max_amount <= Decimal::ZERO {
            return bad("limits.max_amount must be positive".into());
        }
        if l.max_adjust_points <= 0 {
            return bad("limits.max_adjust_points must be positive".into());
        }
        if l.max_lines == 0 || l.max_lines > 10_000 {
            return bad("limits.max_lines must be between 1 and 10000".into());
        }
        if l.max_concurrent_requests == 0 {
            return bad("limits.max_concurrent_requests must be positive".into());
        }
        if l.rate_per_sec > MAX_RATE_PER_SEC || (l.rate_per_sec > 0 && l.rate_burst == 0) {
            return bad(format!(
                "limits.rate_per_sec = {} must be at most {MAX_RATE_PER_SEC} (0 = no rate limit) \
                 and limits.rate_burst at least 1 when it is on",
                l.rate_per_sec
            ));
        }
        if self.server.metrics_listen == Some(self.server.listen) && self.server.listen.port() != 0
        {
            return bad(format!(
                "server.metrics_listen = {} is the main listener's address: give it its own port",
                self.server.listen
            ));
        }
        if self.server.request_timeout_ms == 0 {
            return bad("server.request_timeout_ms must be positive".into());
        }
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for key in &self.api_keys {
            if key.name.trim().is_empty() {
                return bad("api_keys: every key needs a name".into());
            }
            if !names.insert(key.name.as_str()) {
                return bad(format!("api_keys: the name {:?} is used twice", key.name));
            }
            let hash_ok = key.sha256.len() == 64
                && key
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hash_ok {
                return bad(format!(
                    "api_keys {:?}: sha256 must be 64 lowercase hex characters",
                    key.name
                ));
            }
            if !hashes.insert(key.sha256.as_str()) {
                return bad(format!(
                    "api_keys {:?}: the same key hash is configured twice",
                    key.name
                ));
            }
            match (key.role, key.stores.is_empty()) {
                (Role::Terminal, true) => {
                    return bad(format!(
                        "api_keys {:?}: a terminal key must be bound to at least one store",
                        key.name
                    ));
                }
                (role, false) if role != Role::Terminal => {
                    return bad(format!(
                        "api_keys {:?}: only terminal keys are bound to stores",
                        key.name
                    ));
                }
                _ => {}
            }
        }
        self.validate_tokens()
    }

    /// Checks `[tokens]` and the keys' roles that depend on it.
    fn validate_tokens(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        let t = &self.tokens;
        for key in &self.api_keys {
            if key.role == Role::Member {
                return bad(format!(
                    "api_keys {:?}: the role member belongs to member tokens, not to API keys",
                    key.name
                ));
            }
            if key.role == Role::Issuer && !t.enabled() {
                return bad(format!(
                    "api_keys {:?}: an issuer key obtains member tokens, which need at least \
                     one [[tokens.keys]]",
                    key.name
                ));
            }
        }
        if t.audience.trim().is_empty() || t.issuer.trim().is_empty() {
            return bad("tokens.audience and tokens.issuer must not be empty".into());
        }
        if t.max_ttl_secs == 0 || t.max_ttl_secs > MAX_TOKEN_TTL_SECS {
            return bad(format!(
                "tokens.max_ttl_secs = {} is not between 1 and {MAX_TOKEN_TTL_SECS} (a day)",
                t.max_ttl_secs
            ));
        }
        if t.leeway_secs > MAX_TOKEN_LEEWAY_SECS {
            return bad(format!(
                "tokens.leeway_secs must be at most {MAX_TOKEN_LEEWAY_SECS}"
            ));
        }
        let mut ids = HashSet::new();
        for key in &t.keys {
            let id_ok = !key.id.is_empty()
                && key.id.len() <= 64
                && key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !id_ok {
                return bad(format!(
                    "tokens.keys: the id {:?} is not 1 to 64 of A-Z a-z 0-9 . _ -",
                    key.id
                ));
            }
            if !ids.insert(key.id.as_str()) {
                return bad(format!("tokens.keys: the id {:?} is used twice", key.id));
            }
            key.secret_bytes().map_err(ServerError::Config)?;
        }
        if t.keys.iter().filter(|k| k.current).count() > 1 {
            return bad("tokens.keys: at most one key may be current".into());
        }
        Ok(())
    }
}
