//! Typed settings of the `loyalty` process: `config/loyalty.toml` first, then `LOYALTY_`
//! environment variables on top (`LOYALTY_SERVER__LISTEN=127.0.0.1:0`: a double underscore
//! separates nesting levels).
//!
//! The process-wide sections (which store and its URL, the scheduler, the time window,
//! snapshots, the cache) are the binary's: it wires the store, the engine and the HTTP server
//! together. The HTTP server's own sections (`server`, `limits`, `api_keys`, `tokens`) are
//! `loyalty_server`'s types, checked by it ([`ApiSettings::validate`]); `webhooks` is
//! `loyalty_webhooks`' ([`WebhookSettings::validate`]).
//!
//! Everything is checked once at start ([`Settings::validate`]), so that a typo fails the
//! process before it listens instead of surfacing as a confusing 401 or 500 later.
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use loyalty_server::settings::{
    ApiKeySettings, ApiSettings, LimitSettings, ServerSettings, TokenSettings,
};
use loyalty_webhooks::WebhookSettings;
use serde::{Deserialize, Serialize};

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(pub String);

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
    /// Webhooks: how the dispatcher delivers, and which targets endpoints may name.
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// The auditors' tools: the key `loyalty anchor` signs with.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Personal data: where members' data keys are kept when the store keeps none.
    #[serde(default)]
    pub privacy: PrivacySettings,
}

/// `[privacy]`: the key vault that seals support notes (see ARCHITECTURE.md, "Personal data").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// A SQLite file of members' data keys. Unset (the default): the store's own vault, in the
    /// same database (SQLite, PostgreSQL). EventStoreDB keeps no side tables, so with it this
    /// must be set, or commands carrying a note are refused; every server writing to the
    /// cluster must then reach the same file, which suits one writing server.
    pub key_file: Option<PathBuf>,
}

/// `[audit]`: anchors of the log's hash chain (`loyalty anchor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The Ed25519 key anchors are signed with: a PKCS#8 PEM file, as `loyalty audit keygen
    /// FILE` (or `openssl genpkey -algorithm ed25519`) writes it. Unset (the default): no
    /// anchors are signed; the rest of the process does not need it.
    pub signing_key_file: Option<PathBuf>,
}

impl Settings {
    /// The HTTP server's sections.
    pub fn api(&self) -> ApiSettings {
        ApiSettings {
            server: self.server.clone(),
            limits: self.limits.clone(),
            api_keys: self.api_keys.clone(),
            tokens: self.tokens.clone(),
        }
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
            max_members: 1_000_000,
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
    pub fn load(file: &Path) -> Result<Settings, SettingsError> {
        if !file.is_file() {
            return Err(SettingsError(format!(
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
    pub fn check_files(&self) -> Result<(), SettingsError> {
        if !self.program.is_file() {
            return Err(SettingsError(format!(
                "program: the rules file {} does not exist (paths are relative to the \
                 directory the server is started from)",
                self.program.display()
            )));
        }
        Ok(())
    }

    /// Settings from any figment (tests layer their own values on top of a file).
    pub fn from_figment(figment: Figment) -> Result<Settings, SettingsError> {
        let settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// A figment holding these settings, to layer overrides on (tests).
    pub fn figment(&self) -> Figment {
        Figment::from(Serialized::defaults(self))
    }

    /// Checks what types alone cannot: the process-wide sections here, the HTTP ones by
    /// [`ApiSettings::validate`].
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: String| Err(SettingsError(m));
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
        if self.time.max_ahead_secs > MAX_WINDOW_SECS || self.time.max_behind_secs > MAX_WINDOW_SECS
        {
            return bad(format!(
                "time.max_ahead_secs and time.max_behind_secs must be at most {MAX_WINDOW_SECS} \
                 (a year); migrate older history with an import"
            ));
        }
        self.api()
            .validate()
            .map_err(|e| SettingsError(e.to_string()))?;
        self.webhooks.validate().map_err(SettingsError)?;
        if self
            .audit
            .signing_key_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return bad("audit.signing_key_file: a path, or no setting for no anchors".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loyalty_server::Role;
    use std::net::SocketAddr;

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
                sha256: loyalty_server::sha256_hex("k"),
                stores: vec!["s1".into()],
            }],
            tokens: TokenSettings::default(),
            webhooks: WebhookSettings::default(),
            audit: AuditSettings::default(),
            privacy: PrivacySettings::default(),
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
    fn the_webhooks_section_is_read_checked_and_safe_as_shipped() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/loyalty.toml");
        let shipped = Settings::from_figment(Figment::new().merge(Toml::file(&file))).unwrap();
        assert!(
            !shipped.webhooks.allow_private_targets,
            "the shipped file must not let endpoints reach private addresses"
        );
        let figment = sample()
            .figment()
            .merge(("webhooks.allow_private_targets", true))
            .merge(("webhooks.initial_backoff_ms", 50));
        let settings = Settings::from_figment(figment).unwrap();
        assert!(settings.webhooks.allow_private_targets);
        assert_eq!(settings.webhooks.initial_backoff_ms, 50);
        let nonsense = sample()
            .figment()
            .merge(("webhooks.default_timeout_ms", 60_000))
            .merge(("webhooks.max_timeout_ms", 30_000));
        let error = Settings::from_figment(nonsense).unwrap_err().to_string();
        assert!(error.contains("default_timeout_ms"), "{error}");
        let typo = sample().figment().merge(("webhooks.max_endpoint", 3));
        assert!(Settings::from_figment(typo).is_err());
    }

    #[test]
    fn eventstoredb_without_a_url_is_rejected() {
        let mut s = sample();
        s.store.kind = StoreKind::Eventstoredb;
        assert!(s.validate().is_err());
    }

    #[test]
    fn the_anchor_signing_key_is_absent_by_default_and_read_when_set() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/loyalty.toml");
        let shipped = Settings::from_figment(Figment::new().merge(Toml::file(&file))).unwrap();
        assert_eq!(shipped.audit.signing_key_file, None);
        let figment = sample()
            .figment()
            .merge(("audit.signing_key_file", "/etc/loyalty/anchor.pem"));
        let settings = Settings::from_figment(figment).unwrap();
        assert_eq!(
            settings.audit.signing_key_file,
            Some(PathBuf::from("/etc/loyalty/anchor.pem"))
        );
        let empty = sample().figment().merge(("audit.signing_key_file", ""));
        assert!(Settings::from_figment(empty).is_err());
    }
}
