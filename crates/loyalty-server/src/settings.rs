//! Typed settings: `config/loyalty.toml` first, then `LOYALTY_` environment variables on top
//! (`LOYALTY_SERVER__LISTEN=127.0.0.1:0`: a double underscore separates nesting levels).
//!
//! Everything is checked once at start ([`Settings::validate`]), so that a typo fails the
//! process before it listens instead of surfacing as a confusing 401 or 500 later.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::ServerError;

/// The whole configuration of a loyalty server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The program rules (tiers, earning, rewards...), a TOML file.
    pub program: PathBuf,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub scheduler: SchedulerSettings,
    #[serde(default)]
    pub time: TimeSettings,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub snapshots: SnapshotSettings,
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

/// Which event store backs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite file (the default).
    Sqlite,
    /// An EventStoreDB (KurrentDB) cluster at `store.url`.
    Eventstoredb,
    /// A PostgreSQL database at `store.url`, in the schema `store.schema`.
    Postgres,
    /// Nothing kept across restarts: demos and tests only.
    Memory,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub kind: StoreKind,
    /// The SQLite file (kind = "sqlite").
    pub path: PathBuf,
    /// The connection string (kind = "eventstoredb" or "postgres"), e.g.
    /// `esdb://localhost:2113?tls=false` or `postgres://loyalty@localhost:5432/loyalty`.
    pub url: Option<String>,
    /// PostgreSQL: the schema holding the store's tables (created if missing).
    pub schema: String,
    /// PostgreSQL: most connections the store opens (plus one that listens for appends).
    pub pool_size: usize,
    /// SQLite: the write-ahead log file is cut back to this many bytes once it has grown past
    /// it (it may overshoot by a batch while readers hold old snapshots).
    pub wal_max_bytes: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            path: PathBuf::from("data/loyalty.sqlite"),
            url: None,
            schema: "loyalty".to_owned(),
            pool_size: 16,
            wal_max_bytes: 64 * 1024 * 1024,
        }
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    /// How often expiry and tier reviews run; 0 turns the background scheduler off (it can
    /// still be run on demand by an admin: `POST /v1/admin/scheduler/run`).
    pub interval_secs: u64,
    /// Servers sharing one store run the scheduler and the referral process manager under a
    /// lease: this long it stays held without renewal (renewed every third of it), so another
    /// server takes over at most this long and a third after the holder dies.
    pub lease_ttl_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            interval_secs: 60,
            lease_ttl_secs: 15,
        }
    }
}

impl SchedulerSettings {
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs.max(1))
    }

    pub fn interval(&self) -> Option<Duration> {
        (self.interval_secs > 0).then(|| Duration::from_secs(self.interval_secs))
    }
}

/// Read-model snapshots: a restart reads them back and replays only the events after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSettings {
    /// Where they are kept. Unset: beside the SQLite file (`<store.path>.snapshots`), or
    /// `data/snapshots` for EventStoreDB; none for the memory store.
    pub dir: Option<PathBuf>,
    /// A snapshot every this many events applied (and one at shutdown); 0 turns them off.
    pub every_events: u64,
    /// A member's state is snapshotted in the store every this many events of hers, so that
    /// loading a long-lived member reads the snapshot and what followed; 0 turns them off.
    pub member_every_events: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            dir: None,
            every_events: 100_000,
            member_every_events: 500,
        }
    }
}

impl Settings {
    /// Where read-model snapshots go, if anywhere.
    pub fn snapshot_dir(&self) -> Option<PathBuf> {
        if self.snapshots.every_events == 0 {
            return None;
        }
        if let Some(dir) = &self.snapshots.dir {
            return Some(dir.clone());
        }
        match self.store.kind {
            StoreKind::Sqlite => {
                let mut name = self.store.path.clone().into_os_string();
                name.push(".snapshots");
                Some(PathBuf::from(name))
            }
            StoreKind::Eventstoredb | StoreKind::Postgres => Some(PathBuf::from("data/snapshots")),
            StoreKind::Memory => None,
        }
    }
}

/// The command side's cache of member states (hot states: bounded however long a member's
/// history grows), bounded both in members and in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    pub max_members: usize,
    /// The states' rough weight in bytes.
    pub max_bytes: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_members: 10_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// How far a caller's `occurred_at` may stray from the server's clock. Outside the window a
/// command is refused (422 `occurred-at-outside-window`) and nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeSettings {
    /// Largest skew ahead of the server's clock, in seconds (clocks drift).
    pub max_ahead_secs: u64,
    /// Longest backdating, in seconds: an offline till syncs its day's sales later. Older
    /// history is migrated with an import, not through the live endpoints.
    pub max_behind_secs: u64,
}

impl Default for TimeSettings {
    fn default() -> Self {
        Self {
            max_ahead_secs: 300,
            max_behind_secs: 7 * 24 * 3600,
        }
    }
}

/// The longest window either way: a year. Beyond it a "window" is no window.
const MAX_WINDOW_SECS: u64 = 366 * 24 * 3600;

impl TimeSettings {
    pub fn window(&self) -> loyalty_core::TimeWindow {
        let secs = |s: u64| chrono::TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        loyalty_core::TimeWindow {
            max_ahead: secs(self.max_ahead_secs.min(MAX_WINDOW_SECS)),
            max_behind: secs(self.max_behind_secs.min(MAX_WINDOW_SECS)),
        }
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

impl Settings {
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

/// The `LOYALTY_` environment variables that are settings: all but `LOYALTY_TEST_...`, which
/// configure the project's own tests (`LOYALTY_TEST_POSTGRES_URL`) and reach the servers those
/// tests start.
fn settings_env() -> Env {
    Env::prefixed("LOYALTY_")
        .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
        .split("__")
}

impl Settings {
    /// Reads `file` (which must exist), then the `LOYALTY_` environment, and validates.
    pub fn load(file: &Path) -> Result<Settings, ServerError> {
        if !file.is_file() {
            return Err(ServerError::Config(format!(
                "configuration file {} not found",
                file.display()
            )));
        }
        let settings =
            Self::from_figment(Figment::new().merge(Toml::file(file)).merge(settings_env()))?;
        settings.check_files()?;
        Ok(settings)
    }

    /// Checks that the files the settings name exist (the program rules).
    pub fn check_files(&self) -> Result<(), ServerError> {
        if !self.program.is_file() {
            return Err(ServerError::Config(format!(
                "program: the rules file {} does not exist (paths are relative to the \
                 directory the server is started from)",
                self.program.display()
            )));
        }
        Ok(())
    }

    /// Settings from any figment (tests layer their own values on top of a file).
    pub fn from_figment(figment: Figment) -> Result<Settings, ServerError> {
        let settings: Settings = figment
            .extract()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// A figment holding these settings, to layer overrides on (tests).
    pub fn figment(&self) -> Figment {
        Figment::from(Serialized::defaults(self))
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        if self.program.as_os_str().is_empty() {
            return bad("program: a path to the program rules is required".into());
        }
        match self.store.kind {
            StoreKind::Sqlite if self.store.path.as_os_str().is_empty() => {
                return bad("store.path is required when store.kind = \"sqlite\"".into());
            }
            StoreKind::Eventstoredb if self.store.url.as_deref().unwrap_or("").is_empty() => {
                return bad("store.url is required when store.kind = \"eventstoredb\"".into());
            }
            StoreKind::Postgres if self.store.url.as_deref().unwrap_or("").is_empty() => {
                return bad("store.url is required when store.kind = \"postgres\"".into());
            }
            StoreKind::Postgres
                if self.store.schema.is_empty()
                    || self.store.pool_size == 0
                    || self.store.pool_size > 1024 =>
            {
                return bad(format!(
                    "store.schema must be set and store.pool_size = {} between 1 and 1024",
                    self.store.pool_size
                ));
            }
            _ => {}
        }
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
        if self.time.max_ahead_secs > MAX_WINDOW_SECS || self.time.max_behind_secs > MAX_WINDOW_SECS
        {
            return bad(format!(
                "time.max_ahead_secs and time.max_behind_secs must be at most {MAX_WINDOW_SECS} \
                 (a year); migrate older history with an import"
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
        self.validate_tokens()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Settings {
        Settings {
            program: PathBuf::from("config/program.toml"),
            server: ServerSettings::default(),
            store: StoreSettings::default(),
            limits: LimitSettings::default(),
            scheduler: SchedulerSettings::default(),
            time: TimeSettings::default(),
            cache: CacheSettings::default(),
            snapshots: SnapshotSettings::default(),
            api_keys: vec![ApiKeySettings {
                name: "till".into(),
                role: Role::Terminal,
                sha256: crate::auth::sha256_hex("k"),
                stores: vec!["s1".into()],
            }],
            tokens: TokenSettings::default(),
        }
    }

    #[test]
    fn the_shipped_configuration_file_loads_and_validates() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/loyalty.toml");
        let settings = Settings::from_figment(Figment::new().merge(Toml::file(&file)))
            .expect("config/loyalty.toml is valid");
        assert_eq!(settings.store.kind, StoreKind::Sqlite);
        assert!(settings.api_keys.iter().any(|k| k.role == Role::Admin));
    }

    #[test]
    fn environment_style_overrides_replace_nested_values() {
        let figment = sample()
            .figment()
            .merge(("server.listen", "127.0.0.1:0"))
            .merge(("store.kind", "eventstoredb"))
            .merge(("store.url", "esdb://localhost:2113?tls=false"));
        let settings = Settings::from_figment(figment).unwrap();
        assert_eq!(settings.server.listen.port(), 0);
        assert_eq!(settings.store.kind, StoreKind::Eventstoredb);
    }

    #[test]
    fn an_unknown_setting_is_rejected_rather_than_ignored() {
        let figment = sample().figment().merge(("server.lisen", "127.0.0.1:0"));
        assert!(Settings::from_figment(figment).is_err());
    }

    #[test]
    fn a_program_file_that_does_not_exist_is_reported() {
        let mut s = sample();
        s.program = PathBuf::from("config/no-such-program.toml");
        let error = s.check_files().unwrap_err().to_string();
        assert!(error.contains("no-such-program.toml"), "{error}");
    }

    #[test]
    fn a_terminal_key_without_stores_is_rejected() {
        let mut s = sample();
        s.api_keys[0].stores.clear();
        assert!(s.validate().is_err());
    }

    #[test]
    fn a_hash_that_is_not_sha256_hex_is_rejected() {
        let mut s = sample();
        s.api_keys[0].sha256 = "demo-terminal-key".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn the_time_window_defaults_to_five_minutes_ahead_and_seven_days_behind() {
        let window = TimeSettings::default().window();
        assert_eq!(window, loyalty_core::TimeWindow::DEFAULT);
        let figment = sample().figment().merge(("time.max_behind_secs", 3600));
        let settings = Settings::from_figment(figment).unwrap();
        assert_eq!(
            settings.time.window().max_behind,
            chrono::TimeDelta::hours(1)
        );
    }

    #[test]
    fn a_time_window_over_a_year_is_rejected() {
        let figment = sample()
            .figment()
            .merge(("time.max_behind_secs", 400 * 24 * 3600));
        assert!(Settings::from_figment(figment).is_err());
    }

    #[test]
    fn postgres_without_a_url_or_with_an_empty_pool_is_rejected() {
        let mut s = sample();
        s.store.kind = StoreKind::Postgres;
        assert!(s.validate().is_err());
        s.store.url = Some("postgres://postgres@127.0.0.1:5432/test".into());
        assert!(s.validate().is_ok());
        s.store.pool_size = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn the_rate_limit_and_the_metrics_listener_are_read_and_checked() {
        let defaults = sample();
        assert_eq!(defaults.server.metrics_listen, None);
        assert!(defaults.limits.rate_limit().is_some());
        let figment = sample()
            .figment()
            .merge(("server.metrics_listen", "127.0.0.1:9090"))
            .merge(("limits.rate_per_sec", 0));
        let settings = Settings::from_figment(figment).unwrap();
        assert_eq!(
            settings.server.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        assert_eq!(settings.limits.rate_limit(), None);
        let no_burst = sample()
            .figment()
            .merge(("limits.rate_per_sec", 10))
            .merge(("limits.rate_burst", 0));
        assert!(Settings::from_figment(no_burst).is_err());
        let same_address = sample()
            .figment()
            .merge(("server.listen", "127.0.0.1:8080"))
            .merge(("server.metrics_listen", "127.0.0.1:8080"));
        assert!(Settings::from_figment(same_address).is_err());
    }

    #[test]
    fn eventstoredb_without_a_url_is_rejected() {
        let mut s = sample();
        s.store.kind = StoreKind::Eventstoredb;
        assert!(s.validate().is_err());
    }
}
