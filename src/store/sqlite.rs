//! The embedded backend: one SQLite file in WAL mode.

use super::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

/// The file a SQLite URL names, by sqlx's own parser; `None` for an in-memory database.
pub fn database_file(url: &str) -> StoreResult<Option<std::path::PathBuf>> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?;
    let path = options.get_filename();
    Ok((path.as_os_str() != ":memory:").then(|| path.to_path_buf()))
}

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// A write transaction takes the one writer's lock at its start (purge batches).
    pub(super) const WRITE_BEGIN: &'static str = "BEGIN IMMEDIATE";
    /// With one writer there is nothing to claim rows from.
    pub(super) const CLAIM_SKIP_LOCKED: &'static str = "";
    pub(super) const CLAIM_WAIT: &'static str = "";
    pub(super) const SHARE_LOCK: &'static str = "";
    pub(super) const REWRAP_CLAIM: &'static str = "";

    /// Refuses a URL whose database file does not exist: only `serve` creates one.
    pub(super) fn require_existing(url: &str) -> StoreResult<()> {
        let path = match database_file(url)? {
            Some(path) => path,
            // An in-memory database is new by definition; it is a test's, never an operator's.
            None => return Ok(()),
        };
        if path.is_file() {
            return Ok(());
        }
        Err(StoreError::Config(format!(
            "no vault database at {} (storage.database_url = {url}): only `data-vault serve` \
             creates one. Run this command with the server's configuration (--config or \
             DATA_VAULT_CONFIG) or from the directory the server runs in",
            path.display()
        )))
    }

    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL is durable against application crashes; FULL also survives
            // power loss, which is what a vault promises for its audit trail.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Purged key material and ciphertext must not linger in free pages of the file.
            .pragma("secure_delete", "ON");
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Config(format!(
                        "cannot create database directory {}: {e}",
                        parent.display()
                    ))
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}
