//! Typed configuration: defaults, then a TOML file (`--config` or `DATA_VAULT_CONFIG`), then
//! `DATA_VAULT_<SECTION>__<KEY>` environment variables. Unknown keys are errors, and the whole
//! configuration is validated before anything starts.

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/vault.db";
pub const DEFAULT_MASTER_KEY_FILE: &str = "./data/master.key";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    /// Replaces the default scope table (`scopes/default.toml`) when present.
    #[serde(default)]
    pub scopes: Option<BTreeMap<String, data_vault_scopes::RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub metrics_listen: String,
    /// Largest accepted envelope, in bytes.
    pub max_payload_bytes: usize,
    /// A request that takes longer is answered 503.
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9090".into(),
            max_payload_bytes: 10 * 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub database_url: String,
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            max_connections: 16,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// A file holding the master key as 64 hex characters.
    pub master_key_file: PathBuf,
    /// The master key itself; meant for `DATA_VAULT_KEYS__MASTER_KEY`, and wins over the file.
    pub master_key: Option<SecretString>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            master_key_file: DEFAULT_MASTER_KEY_FILE.into(),
            master_key: None,
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
        if !(1..=1 << 30).contains(&self.server.max_payload_bytes) {
            return invalid("server.max_payload_bytes must be between 1 and 1073741824".into());
        }
        if self.server.request_timeout_secs == 0 {
            return invalid("server.request_timeout_secs must be at least 1".into());
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
        if self.auth.nonce_capacity < 1000 {
            return invalid("auth.nonce_capacity must be at least 1000".into());
        }
        self.scope_table()?;
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
