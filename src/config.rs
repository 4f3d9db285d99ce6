//! Typed configuration: defaults, then a TOML file (`--config` or `DATA_VAULT_CONFIG`), then
//! `DATA_VAULT_<SECTION>__<KEY>` environment variables. Unknown keys are errors, and the whole
//! configuration is validated before anything starts.

use crate::limits::Rate;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/vault.db";
pub const DEFAULT_MASTER_KEY_FILE: &str = "./data/master.key";
/// Three quarters of the common soft file-descriptor limit of 1024, leaving room for the
/// metrics listener, the database pool, Redis and files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 768;
/// Upper bound of the time settings: a day is more than any request or idle wait needs.
const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Upper bound of `server.max_connections`.
const MAX_MAX_CONNECTIONS: usize = 1_000_000;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub object_store: ObjectStoreConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub denial_spike: DenialSpikeConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Replaces the default scope table (`scopes/default.toml`) when present.
    #[serde(default)]
    pub scopes: Option<BTreeMap<String, data_vault_scopes::RawRule>>,
    #[serde(default)]
    pub log: LogConfig,
}

/// The log's shape (`[log]`); its level is `DATA_VAULT_LOG` (a tracing filter).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `text` (default: one readable line per event) or `json` (one JSON object per line, for log
/// pipelines).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    /// Largest accepted envelope, in bytes, of a raw upload (a JSON body carries at most
    /// `service::JSON_MAX_BYTES`, 10 MiB, whatever this says).
    pub max_payload_bytes: usize,
    /// A request that takes longer, counted from its first byte, is answered 503; a client
    /// that has not sent its whole request head by then is disconnected.
    pub request_timeout_secs: u64,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout_secs: u64,
    /// Open API connections at most; further clients wait in the listen backlog until one
    /// closes. Keep it below the file-descriptor limit, with room for the database pool.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Behind a load balancer: the header whose last value is the client address the balancer
    /// saw (e.g. `x-forwarded-for`). Unset: the TCP peer address.
    pub client_ip_header: Option<String>,
    /// PEM certificate chain; with `tls_key_file`, the API listener speaks only TLS.
    /// SIGHUP reloads both files.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub tls_key_file: Option<PathBuf>,
    /// Browser origins (`https://portal.example.com`) that may call the API (CORS).
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9090".into(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            request_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace_secs: 30,
            client_ip_header: None,
            tls_cert_file: None,
            tls_key_file: None,
            cors_allowed_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// What the server connects as; on PostgreSQL, ideally a role limited to DML.
    pub database_url: String,
    pub max_connections: u32,
    /// PostgreSQL only: the owner role's URL for the same database. When set, the server
    /// migrates over it and grants the `database_url` role its privileges at start-up, and
    /// refuses a `database_url` role that could alter the tables (runbooks/postgresql.md).
    pub migrations_database_url: Option<String>,
    /// Envelopes up to this size live in the database; larger ones in the object store.
    pub inline_max_bytes: usize,
    /// Large uploads one replica streams at once; another waits up to
    /// `server.request_timeout_secs` for a place, then gets 503. Each holds up to a sealing
    /// batch (file store) or an 8 MiB part (S3) in memory.
    pub max_large_uploads: u32,
}

/// Default of `server.max_payload_bytes`: 5 GiB for a raw upload, which streams to the object
/// store (JSON bodies stay bounded at `service::JSON_MAX_BYTES` whatever this says).
const DEFAULT_MAX_PAYLOAD_BYTES: usize = 5 << 30;
/// The largest `server.max_payload_bytes` accepted: 1 TiB.
const MAX_PAYLOAD_BYTES_LIMIT: usize = 1 << 40;

/// Default of `storage.inline_max_bytes`: 1 MiB.
const DEFAULT_INLINE_MAX_BYTES: usize = 1024 * 1024;
/// Bounds of `storage.inline_max_bytes`: below 64 KiB the object store would hold many small
/// envelopes it is not made for; above 10 MiB rows would outgrow the JSON body limit.
const INLINE_MAX_BYTES_RANGE: std::ops::RangeInclusive<usize> = 65_536..=10_485_760;

/// Default of `storage.max_large_uploads`: at most about 160 MiB of S3 parts in memory.
const DEFAULT_MAX_LARGE_UPLOADS: u32 = 16;
/// Bounds of `storage.max_large_uploads`.
const MAX_LARGE_UPLOADS_RANGE: std::ops::RangeInclusive<u32> = 1..=1024;

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            max_connections: 16,
            migrations_database_url: None,
            inline_max_bytes: DEFAULT_INLINE_MAX_BYTES,
            max_large_uploads: DEFAULT_MAX_LARGE_UPLOADS,
        }
    }
}

/// Where envelopes above `storage.inline_max_bytes` go (DESIGN §18); parsed and checked by
/// [`crate::objects::Location`]. S3 credentials come from the usual AWS variables only.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreConfig {
    /// `file:///absolute/path` or `s3://bucket[/prefix]`; unset: `objects/` beside the
    /// SQLite database, or `./data/objects` on PostgreSQL.
    pub url: Option<String>,
    /// `http(s)://host[:port]` of an S3-compatible service (MinIO, Ceph...); unset: AWS.
    pub endpoint: Option<String>,
    /// The bucket's region; unset: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// A file holding the master key as 64 hex characters.
    pub master_key_file: PathBuf,
    /// The master key itself; meant for `DATA_VAULT_KEYS__MASTER_KEY`, and wins over the file.
    pub master_key: Option<SecretString>,
    /// Earlier master keys (files of 64 hex characters each): they open tenant keys and
    /// client secrets wrapped before the active key took over, until `admin keys
    /// rewrap-master` has moved everything under the active one (DESIGN §15).
    pub previous_master_key_files: Vec<PathBuf>,
    /// Cryptoperiod of tenant keys, the master key and client secrets (DESIGN §15): past it,
    /// `/readyz` says `"keys": "expired"` and the compliance report lists the tenant.
    pub max_age_days: u32,
    /// Past this age a key is due for rotation: a log warning and `"keys": "rotation_due"`.
    pub warn_age_days: u32,
    /// Data keys rewrapped per transaction by a tenant key rotation.
    pub rewrap_batch_size: u32,
    /// Pause between two rewrap batches, bounding the load a rotation adds (0: none).
    pub rewrap_pause_ms: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            master_key_file: DEFAULT_MASTER_KEY_FILE.into(),
            master_key: None,
            previous_master_key_files: Vec::new(),
            max_age_days: 90,
            warn_age_days: 80,
            rewrap_batch_size: 500,
            rewrap_pause_ms: 0,
        }
    }
}

/// Retention and purge (DESIGN §12).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Every replica sweeps expired blobs this often; 0 disables the background sweep.
    pub sweep_interval_secs: u64,
    /// Blobs purged per transaction: short transactions, bounded work per batch.
    pub batch_size: u32,
    /// `[retention.policies.NAME]`; `standard` exists unless redefined here.
    pub policies: BTreeMap<String, crate::retention::PolicySettings>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sweep_interval_secs: 3600,
            batch_size: 500,
            policies: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Bech32 prefix of wallet addresses.
    pub wallet_prefix: String,
    /// A chain id also accepted in wallet sign docs, besides the empty one.
    pub chain_id: String,
    /// Principals who may manage any org.
    pub platform_admins: Vec<String>,
    /// Capacity of the in-process nonce store.
    pub nonce_capacity: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            wallet_prefix: "virtengine".into(),
            chain_id: String::new(),
            platform_admins: Vec::new(),
            nonce_capacity: 1_000_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`; unset means in-process state only (one replica).
    pub url: Option<String>,
    /// Namespace of this deployment's keys.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "data-vault:".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub principal_per_second: f64,
    pub principal_burst: u32,
    pub org_per_second: f64,
    pub org_burst: u32,
    pub ip_per_second: f64,
    pub ip_burst: u32,
    /// Tighter per-principal limits in some scopes (e.g. identity documents), on top of the
    /// general ones: `[rate_limit.scopes.veid] per_second = 5.0, burst = 20`.
    pub scopes: BTreeMap<String, ScopeRate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRate {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimitConfig {
    /// Every configured limit as a valid [`Rate`], by limiter name; a bad value is refused
    /// with a message naming its key.
    pub fn rates(&self) -> Result<Vec<(String, Rate)>, ConfigError> {
        use crate::limits::{InvalidRate, Limit};
        let parse = |key: &str, per_second: f64, burst: u32| {
            Rate::new(per_second, burst).map_err(|e| {
                let (field, value) = match e {
                    InvalidRate::PerSecond => ("per_second", per_second.to_string()),
                    InvalidRate::Burst => ("burst", burst.to_string()),
                };
                ConfigError::Invalid(format!("{key}{field} {e}, not {value}"))
            })
        };
        let mut rates = Vec::with_capacity(3 + self.scopes.len());
        for (limit, per_second, burst) in [
            (Limit::Ip, self.ip_per_second, self.ip_burst),
            (
                Limit::Principal,
                self.principal_per_second,
                self.principal_burst,
            ),
            (Limit::Org, self.org_per_second, self.org_burst),
        ] {
            let key = format!("rate_limit.{}_", limit.name());
            rates.push((limit.name().into_owned(), parse(&key, per_second, burst)?));
        }
        for (scope, rate) in &self.scopes {
            let key = format!("rate_limit.scopes.{scope}.");
            rates.push((
                Limit::Scope(scope).name().into_owned(),
                parse(&key, rate.per_second, rate.burst)?,
            ));
        }
        Ok(rates)
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            principal_per_second: 200.0,
            principal_burst: 400,
            org_per_second: 1000.0,
            org_burst: 2000,
            ip_per_second: 1000.0,
            ip_burst: 2000,
            scopes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenialSpikeConfig {
    pub enabled: bool,
    /// Denials by one principal, or against one org, that make a spike...
    pub threshold: u32,
    /// ...within this many seconds.
    pub window_secs: u64,
    /// Also block the principal for `block_secs` (answered 429) when it spikes.
    pub block_principal: bool,
    pub block_secs: u64,
}

impl Default for DenialSpikeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 20,
            window_secs: 60,
            block_principal: false,
            block_secs: 300,
        }
    }
}

pub const DEFAULT_LOG_KEY_FILE: &str = "./data/log.key";

/// The verifiable audit log (DESIGN §16).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The Ed25519 log key's 32-byte seed as 64 hex characters; generated on the embedded
    /// default, required in production.
    pub log_key_file: PathBuf,
    /// The log's name: the signing key's name and the prefix of every checkpoint's origin.
    pub log_name: String,
    /// How often a replica verifies the chains that changed since its last pass.
    pub verify_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            log_key_file: DEFAULT_LOG_KEY_FILE.into(),
            log_name: "data-vault".into(),
            verify_interval_secs: 300,
        }
    }
}

/// Whether `origin` is exactly a serialised web origin (`scheme://host[:port]`), the form a
/// browser sends in `Origin` and CORS compares byte for byte.
fn is_origin(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https") && url.origin().ascii_serialization() == origin
}

/// `name`'s `value` within `range`, or the error that says so.
fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    range: &std::ops::RangeInclusive<T>,
    value: T,
) -> Result<(), ConfigError> {
    match range.contains(&value) {
        true => Ok(()),
        false => Err(ConfigError::Invalid(format!(
            "{name} must be between {} and {}, not {value}",
            range.start(),
            range.end()
        ))),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Figment(#[from] Box<figment::Error>),
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            // Toml::file quietly skips a missing file; a named file that is missing is a
            // mistake the operator must hear about.
            if !file.is_file() {
                return Err(ConfigError::MissingFile(file.to_owned()));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only `SECTION__KEY` variables are configuration; others such as DATA_VAULT_CONFIG
        // or the client's DATA_VAULT_URL are not.
        let env = Env::prefixed("DATA_VAULT_")
            .split("__")
            .filter(|key| key.as_str().contains('.'));
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for (name, addr) in [
            ("server.listen", &self.server.listen),
            ("server.metrics_listen", &self.server.metrics_listen),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                return invalid(format!(
                    "{name} must be an address such as 127.0.0.1:8080, not {addr:?}"
                ));
            }
        }
        within(
            "server.max_payload_bytes",
            &(1..=MAX_PAYLOAD_BYTES_LIMIT),
            self.server.max_payload_bytes,
        )?;
        for (name, secs) in [
            (
                "server.request_timeout_secs",
                self.server.request_timeout_secs,
            ),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
        ] {
            within(name, &(1..=MAX_TIMEOUT_SECS), secs)?;
        }
        within(
            "server.max_connections",
            &(1..=MAX_MAX_CONNECTIONS),
            self.server.max_connections,
        )?;
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            return invalid(
                "server.tls_cert_file and server.tls_key_file must be set together".into(),
            );
        }
        for origin in &self.server.cors_allowed_origins {
            if !is_origin(origin) {
                return invalid(format!(
                    "server.cors_allowed_origins holds {origin:?}, which is not an origin \
                     such as https://portal.example.com (scheme, host and optional port; no \
                     path, no trailing slash, no wildcard)"
                ));
            }
        }
        let url = &self.storage.database_url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return invalid(
                "storage.database_url must start with sqlite:, postgres:// or postgresql://".into(),
            );
        }
        if self.storage.max_connections == 0 {
            return invalid("storage.max_connections must be at least 1".into());
        }
        if let Some(owner) = &self.storage.migrations_database_url {
            crate::store::check_migrations_url(url, owner).map_err(ConfigError::Invalid)?;
        }
        within(
            "storage.inline_max_bytes",
            &INLINE_MAX_BYTES_RANGE,
            self.storage.inline_max_bytes,
        )?;
        within(
            "storage.max_large_uploads",
            &MAX_LARGE_UPLOADS_RANGE,
            self.storage.max_large_uploads,
        )?;
        crate::objects::Location::parse(&self.object_store).map_err(ConfigError::Invalid)?;
        if self.auth.wallet_prefix.is_empty()
            || !self
                .auth
                .wallet_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return invalid("auth.wallet_prefix must be lowercase letters and digits".into());
        }
        for admin in &self.auth.platform_admins {
            if crate::domain::Principal::parse(admin).is_err() {
                return invalid(format!(
                    "auth.platform_admins holds an invalid principal {admin:?}"
                ));
            }
        }
        if let Some(url) = &self.redis.url {
            if !url.starts_with("redis://") {
                return invalid("redis.url must start with redis://".into());
            }
        }
        self.rate_limit.rates()?;
        let spike = &self.denial_spike;
        if spike.threshold < 2 || spike.window_secs == 0 || spike.block_secs == 0 {
            return invalid(
                "denial_spike.threshold must be at least 2, window_secs and block_secs at least 1"
                    .into(),
            );
        }
        let name = &self.audit.log_name;
        if name.is_empty()
            || name.len() > 128
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return invalid("audit.log_name must be 1-128 characters without spaces or '+'".into());
        }
        within(
            "audit.verify_interval_secs",
            &(1..=MAX_TIMEOUT_SECS),
            self.audit.verify_interval_secs,
        )?;
        if self.auth.nonce_capacity < 1000 {
            return invalid("auth.nonce_capacity must be at least 1000".into());
        }
        self.scope_table()?;
        within(
            "retention.batch_size",
            &(1..=10_000),
            self.retention.batch_size,
        )?;
        if self.retention.sweep_interval_secs > 30 * 86_400 {
            return invalid(
                "retention.sweep_interval_secs must be at most 2592000 (30 days); 0 disables"
                    .into(),
            );
        }
        within("keys.max_age_days", &(1..=3650), self.keys.max_age_days)?;
        if self.keys.warn_age_days == 0 || self.keys.warn_age_days > self.keys.max_age_days {
            return invalid("keys.warn_age_days must be between 1 and keys.max_age_days".into());
        }
        within(
            "keys.rewrap_batch_size",
            &(1..=10_000),
            self.keys.rewrap_batch_size,
        )?;
        if self.keys.rewrap_pause_ms > 60_000 {
            return invalid("keys.rewrap_pause_ms must be at most 60000".into());
        }
        if self.keys.previous_master_key_files.len() > 16 {
            return invalid("keys.previous_master_key_files holds at most 16 files".into());
        }
        crate::retention::configured(&self.retention.policies).map_err(ConfigError::Invalid)?;
        Ok(())
    }

    pub fn is_embedded(&self) -> bool {
        self.storage.database_url.starts_with("sqlite:")
    }

    pub fn scope_table(&self) -> Result<data_vault_scopes::ScopeTable, ConfigError> {
        let table = match &self.scopes {
            Some(raw) => data_vault_scopes::ScopeTable::from_raw(raw.clone()),
            None => data_vault_scopes::ScopeTable::default_table(),
        };
        table.map_err(|e| ConfigError::Invalid(format!("scopes: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the validation error for the default configuration changed by `change`.
    fn refusal(change: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        change(&mut config);
        match config.validate() {
            Err(ConfigError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_bound_connections() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.server.idle_timeout_secs, 60);
        assert_eq!(config.server.max_connections, DEFAULT_MAX_CONNECTIONS);
        // Below the common soft limit of 1024 descriptors, with room for everything else.
        assert!(config.server.max_connections < 1024);
    }

    #[test]
    fn tls_files_must_come_as_a_pair() {
        let message = refusal(|c| c.server.tls_cert_file = Some("cert.pem".into()));
        assert!(message.contains("server.tls_key_file"), "{message}");
        let message = refusal(|c| c.server.tls_key_file = Some("key.pem".into()));
        assert!(message.contains("server.tls_cert_file"), "{message}");
    }

    #[test]
    fn cors_origins_must_be_exact_origins() {
        for bad in [
            "*",
            "portal.example.com",
            "https://portal.example.com/",
            "https://portal.example.com/app",
            "https://Portal.example.com",
            "https://portal.example.com:443",
            "ftp://portal.example.com",
            "null",
        ] {
            let message = refusal(|c| c.server.cors_allowed_origins = vec![bad.into()]);
            assert!(
                message.contains("server.cors_allowed_origins"),
                "{bad}: {message}"
            );
        }
        let mut config = Config::default();
        config.server.cors_allowed_origins = vec![
            "https://portal.example.com".into(),
            "http://127.0.0.1:5173".into(),
        ];
        config.validate().unwrap();
    }

    #[test]
    fn zero_or_huge_connection_bounds_are_refused_naming_the_key() {
        let message = refusal(|c| c.server.idle_timeout_secs = 0);
        assert!(message.contains("server.idle_timeout_secs"), "{message}");
        let message = refusal(|c| c.server.idle_timeout_secs = MAX_TIMEOUT_SECS + 1);
        assert!(message.contains("server.idle_timeout_secs"), "{message}");
        let message = refusal(|c| c.server.request_timeout_secs = 0);
        assert!(message.contains("server.request_timeout_secs"), "{message}");
        let message = refusal(|c| c.server.request_timeout_secs = u64::MAX);
        assert!(message.contains("server.request_timeout_secs"), "{message}");
        let message = refusal(|c| c.server.max_connections = 0);
        assert!(message.contains("server.max_connections"), "{message}");
        let message = refusal(|c| c.server.max_connections = MAX_MAX_CONNECTIONS + 1);
        assert!(message.contains("server.max_connections"), "{message}");
    }

    #[test]
    fn max_large_uploads_defaults_to_sixteen_and_is_bounded() {
        assert_eq!(Config::default().storage.max_large_uploads, 16);
        for bad in [0, 1025] {
            let message = refusal(|c| c.storage.max_large_uploads = bad);
            assert!(message.contains("storage.max_large_uploads"), "{message}");
        }
    }

    #[test]
    fn inline_max_bytes_defaults_to_a_mebibyte_and_is_bounded() {
        assert_eq!(Config::default().storage.inline_max_bytes, 1_048_576);
        for bad in [0, 65_535, 10_485_761, usize::MAX] {
            let message = refusal(|c| c.storage.inline_max_bytes = bad);
            assert!(message.contains("storage.inline_max_bytes"), "{message}");
        }
        for good in [65_536, 10_485_760] {
            let mut config = Config::default();
            config.storage.inline_max_bytes = good;
            config.validate().unwrap();
        }
    }

    #[test]
    fn object_store_urls_are_checked_naming_the_key() {
        let message = refusal(|c| c.object_store.url = Some("s3://".into()));
        assert!(message.contains("object_store.url"), "{message}");
        let message = refusal(|c| c.object_store.url = Some("file://relative".into()));
        assert!(message.contains("object_store.url"), "{message}");
        let message = refusal(|c| {
            c.object_store.url = Some("s3://vault-objects".into());
            c.object_store.endpoint = Some("minio:9000".into());
        });
        assert!(message.contains("object_store.endpoint"), "{message}");
        let mut config = Config::default();
        config.object_store.url = Some("s3://vault-objects/prod".into());
        config.object_store.endpoint = Some("http://127.0.0.1:9000".into());
        config.object_store.region = Some("us-east-1".into());
        config.validate().unwrap();
    }

    #[test]
    fn the_object_store_section_loads_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vault.toml");
        std::fs::write(
            &file,
            "[storage]\ninline_max_bytes = 262144\n\n[object_store]\n\
             url = \"s3://vault-objects\"\nendpoint = \"https://s3.example.com\"\n\
             region = \"eu-west-1\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.storage.inline_max_bytes, 262_144);
        assert_eq!(
            config.object_store.url.as_deref(),
            Some("s3://vault-objects")
        );
        assert_eq!(config.object_store.region.as_deref(), Some("eu-west-1"));
        std::fs::write(&file, "[object_store]\nbucket = \"x\"\n").unwrap();
        assert!(
            Config::load(Some(&file)).is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn small_connection_bounds_are_accepted() {
        let mut config = Config::default();
        config.server.idle_timeout_secs = 1;
        config.server.request_timeout_secs = 1;
        config.server.max_connections = 1;
        config.validate().unwrap();
    }
}
