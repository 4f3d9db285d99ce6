//! Storage: one interface, a SQLite and a PostgreSQL implementation, chosen by the scheme of
//! the database URL. The SQL is shared (see `sql.rs`); the backends differ only in how they
//! connect and in their migrations folders. On PostgreSQL the server may connect as a
//! least-privilege role while an owner role migrates (`pg_schema.rs`, `pg_grants.rs`).

mod pg_grants;
mod pg_schema;
mod postgres;
mod sql;
mod sqlite;

use crate::audit::{AuditEvent, NewEvent};
use async_trait::async_trait;
use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached: callers see 503.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Writing the audit trail failed: callers see 503 `audit_unavailable`.
    #[error("audit log write failed")]
    Audit(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
    /// The schema is not this build's, or the roles cannot be used as configured.
    #[error("{0}")]
    Schema(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    pub(crate) fn audit(err: sqlx::Error) -> Self {
        StoreError::Audit(err)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A change to the blobs table that commits together with its audit events.
#[derive(Debug, Clone)]
pub enum BlobWrite {
    /// Insert a new blob. Ids are fresh UUIDs: an existing id is an error, never an update.
    Insert {
        meta: Box<BlobRecord>,
        wrapped_key: Vec<u8>,
        ciphertext: Vec<u8>,
    },
    Delete {
        id: String,
    },
}

/// A request's nonce, to be spent durably (DESIGN §6): once inserted it refuses the same
/// `(principal, nonce)` until `expires_ms`, the end of the request's replay window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    pub principal: String,
    pub nonce: String,
    pub expires_ms: i64,
}

/// One request's share of a group commit.
#[derive(Debug, Clone, Default)]
pub struct BatchJob {
    /// Spent first: when it was already spent, nothing else of the job is applied.
    pub nonce: Option<NonceClaim>,
    pub write: Option<BlobWrite>,
    pub events: Vec<NewEvent>,
}

/// What a group commit did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Its write (if any) and its events are durable.
    Applied,
    /// Its write found nothing to change (a delete of a row already gone); no events recorded.
    NotApplied,
    /// Its nonce had already been spent: a replay. Nothing of the job was applied.
    Replayed,
}

/// Which events an audit query may return.
#[derive(Debug, Clone)]
pub enum AuditScope {
    /// One tenant's chain (org-wide queries by its administrators or moderators).
    Chain(String),
    /// Events about the principal: as requester, or as owner of the blob.
    Principal(String),
}

#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub scope: AuditScope,
    pub blob_id: Option<String>,
    pub blob_scope: Option<String>,
    pub requester: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Only events older than this global position (the cursor).
    pub before_gid: Option<i64>,
    pub limit: i64,
}

/// Metadata of a stored blob, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub id: String,
    pub scope: String,
    pub owner: String,
    pub org_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub retention_policy: String,
    pub tags_json: String,
    pub size: i64,
    pub content_hash: String,
    pub key_id: String,
    pub key_version: i64,
}

/// What it takes to open a blob, read only once the access decision allowed it.
#[derive(Debug, Clone)]
pub struct SealedContent {
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// The tenant key version that wraps `wrapped_key` (read with it, so a rewrap between
    /// the metadata and this read cannot pair a key with the wrong version).
    pub key_version: i64,
    /// The tenant key that wraps `wrapped_key`, itself wrapped by the master key.
    pub tenant: String,
    pub tenant_key_wrapped: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct TenantKeyRecord {
    pub id: String,
    pub tenant: String,
    pub version: i64,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ClientSecretRecord {
    pub slot: i64,
    pub sealed: Vec<u8>,
}

/// What a listing may show: the caller's own blobs, and in one org the blobs of the scopes the
/// caller's roles may read.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub owner: String,
    pub org_id: Option<String>,
    /// Scopes of `org_id` in which others' blobs are visible to the caller.
    pub org_scopes: Vec<String>,
    pub scope: Option<String>,
    /// Only ids strictly less than this one (the cursor).
    pub before_id: Option<String>,
    pub limit: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;

    async fn meta_value(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores `value` unless the key already has one; returns whether it was stored.
    async fn insert_meta_value(&self, key: &str, value: &str) -> StoreResult<bool>;

    /// Registers a client with its first secret and records `event`, in one transaction;
    /// `false` (and nothing recorded) if the name is taken.
    async fn create_client(
        &self,
        name: &str,
        sealed: &[u8],
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    async fn client_secrets(&self, name: &str) -> StoreResult<Vec<ClientSecretRecord>>;
    /// Adds the secret in `slot` and keeps only the two newest slots. `false` if the client
    /// does not exist or the slot was taken by a concurrent rotation.
    async fn add_client_secret(
        &self,
        name: &str,
        slot: i64,
        sealed: &[u8],
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// Drops every secret but the newest; returns how many were dropped.
    async fn prune_client_secrets(&self, name: &str, event: &NewEvent) -> StoreResult<u64>;
    /// Removes a client; `false` (and nothing recorded) if it did not exist.
    async fn delete_client(&self, name: &str, event: &NewEvent) -> StoreResult<bool>;

    /// Creates an org; `false` (and nothing recorded) if it exists.
    async fn create_org(&self, id: &str, now: i64, event: &NewEvent) -> StoreResult<bool>;
    async fn org_exists(&self, id: &str) -> StoreResult<bool>;
    /// Sets a member's roles (comma list); `false` (and nothing recorded) if the org does
    /// not exist.
    async fn set_member(
        &self,
        org: &str,
        principal: &str,
        roles: &str,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// Removes a member; `false` (and nothing recorded) if they were not one.
    async fn remove_member(
        &self,
        org: &str,
        principal: &str,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// The member's roles (comma list), or `None` when not a member.
    async fn member_roles(&self, org: &str, principal: &str) -> StoreResult<Option<String>>;
    async fn list_members(&self, org: &str) -> StoreResult<Vec<(String, String)>>;

    async fn current_tenant_key(&self, tenant: &str) -> StoreResult<Option<TenantKeyRecord>>;
    /// Inserts a tenant key; `false` if that tenant version exists (lost a creation race).
    async fn insert_tenant_key(&self, key: &TenantKeyRecord) -> StoreResult<bool>;

    /// The sealed content of a blob; read after the decision, which needs only metadata, so
    /// a caller who will be refused never makes the server read the ciphertext.
    async fn blob_content(&self, id: &str) -> StoreResult<Option<SealedContent>>;
    async fn blob_meta(&self, id: &str) -> StoreResult<Option<BlobRecord>>;
    async fn list_blobs(&self, query: &ListQuery) -> StoreResult<Vec<BlobRecord>>;

    /// Applies a batch of jobs in one transaction: each job's nonce is spent, then its blob
    /// write applied, then its events appended to their chains. A job whose nonce was already
    /// spent (also earlier in the same batch) is skipped whole; a delete that finds nothing
    /// records nothing. Returns each job's outcome, in order.
    async fn commit_batch(&self, jobs: &[BatchJob], now_ms: i64) -> StoreResult<Vec<JobOutcome>>;
    /// Forgets spent nonces whose replay window closed before `now_ms`; how many.
    async fn prune_nonces(&self, now_ms: i64) -> StoreResult<u64>;
    /// Events matching `query`, newest first, each with its global position (the cursor).
    async fn audit_query(&self, query: &AuditQuery) -> StoreResult<Vec<(i64, AuditEvent)>>;
    /// Up to `limit` events of `chain` with `seq > after_seq`, in `seq` order.
    async fn audit_chain_page(
        &self,
        chain: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// The recorded head (`seq`, `hash`) of a chain.
    async fn audit_head(&self, chain: &str) -> StoreResult<Option<(i64, String)>>;
    /// Every chain that has a head.
    async fn audit_chains(&self) -> StoreResult<Vec<String>>;

    /// Creation times (Unix seconds) of the oldest tenant key and the oldest live client
    /// secret, for the key-age metrics.
    async fn oldest_keys(&self) -> StoreResult<(Option<i64>, Option<i64>)>;
}

/// Who brings a PostgreSQL schema up to date. SQLite always migrates itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// The connecting role, when it owns the schema (or the database is new); otherwise the
    /// schema must already be current. One-role setups, and a service role whose owner runs
    /// `data-vault admin migrate`.
    Here,
    /// The owner role, just before (`storage.migrations_database_url`): the connecting role
    /// must be one that cannot alter tables or triggers, and the schema must be current.
    Elsewhere,
}

/// What a migration run as the owner did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run.
    pub applied: Vec<i64>,
    /// The schema version now (the newest migration this build knows).
    pub version: Option<i64>,
    /// The role that migrated.
    pub owner: String,
    /// The service role granted its privileges; `None` when both URLs use the owner role.
    pub granted_to: Option<String>,
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects to the database the URL names and applies its migrations if its role may.
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    connect_with(url, max_connections, Migrations::Here).await
}

/// Connects to the database the URL names; `migrations` says who migrates a PostgreSQL schema.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    migrations: Migrations,
) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else if is_postgres(url) {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections, migrations).await?,
        ))
    } else {
        Err(StoreError::Config(
            "storage.database_url must start with sqlite:, postgres:// or postgresql://".into(),
        ))
    }
}

/// The server's store: with an owner URL, migrate over it and grant the service role first,
/// then connect as the service role, which must not be able to alter the tables.
pub async fn connect_service(
    database_url: &str,
    migrations_url: Option<&str>,
    max_connections: u32,
) -> StoreResult<Arc<dyn Store>> {
    let Some(owner_url) = migrations_url else {
        return connect(database_url, max_connections).await;
    };
    let report = migrate(owner_url, database_url).await?;
    tracing::info!(
        owner = %report.owner,
        service_role = report.granted_to.as_deref().unwrap_or("(the owner)"),
        applied = ?report.applied,
        version = report.version,
        "migrated over storage.migrations_database_url"
    );
    connect_with(database_url, max_connections, Migrations::Elsewhere).await
}

/// Applies the PostgreSQL migrations as the role of `owner_url` and grants the role of
/// `service_url` exactly what the server needs (nothing when both are the same role).
pub async fn migrate(owner_url: &str, service_url: &str) -> StoreResult<MigrationReport> {
    if !is_postgres(owner_url) || !is_postgres(service_url) {
        return Err(StoreError::Config(
            "migrations by an owner role are for PostgreSQL; the embedded SQLite database is \
             migrated by `data-vault serve`"
                .into(),
        ));
    }
    PostgresStore::migrate(owner_url, service_url).await
}

/// Checks `storage.migrations_database_url` against `storage.database_url`: both PostgreSQL,
/// and the same database, so the server never migrates one database and serves another.
pub fn check_migrations_url(database_url: &str, migrations_url: &str) -> Result<(), String> {
    use sqlx::postgres::PgConnectOptions;
    use std::str::FromStr;
    if !is_postgres(migrations_url) {
        return Err(
            "storage.migrations_database_url must start with postgres:// or postgresql://".into(),
        );
    }
    if !is_postgres(database_url) {
        return Err("storage.migrations_database_url is for PostgreSQL only; \
                    storage.database_url names an SQLite database, which has no owner role"
            .into());
    }
    let parse = |url: &str, key: &str| {
        PgConnectOptions::from_str(url)
            .map_err(|e| format!("{key} is not a valid PostgreSQL URL: {e}"))
    };
    let owner = parse(migrations_url, "storage.migrations_database_url")?;
    let service = parse(database_url, "storage.database_url")?;
    let target = |o: &PgConnectOptions| {
        (
            o.get_host().to_owned(),
            o.get_port(),
            o.get_database().map(str::to_owned),
        )
    };
    if target(&owner) != target(&service) {
        return Err(
            "storage.migrations_database_url and storage.database_url must name the \
                    same database (host, port and database name)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_migrations_url;

    #[test]
    fn the_owner_url_must_name_the_served_database() {
        let service = "postgres://svc@db.internal:5432/vault";
        assert_eq!(
            check_migrations_url(service, "postgres://owner:pw@db.internal/vault"),
            Ok(())
        );
        for other in [
            "postgres://owner@db.internal:5432/other",
            "postgres://owner@elsewhere:5432/vault",
            "postgres://owner@db.internal:5433/vault",
        ] {
            let err = check_migrations_url(service, other).unwrap_err();
            assert!(err.contains("same database"), "{other}: {err}");
        }
    }

    #[test]
    fn the_owner_url_is_for_postgresql_only() {
        let err =
            check_migrations_url("sqlite://./data/vault.db", "postgres://o@db/vault").unwrap_err();
        assert!(err.contains("SQLite"), "{err}");
        let err = check_migrations_url("postgres://s@db/vault", "mysql://o@db/vault").unwrap_err();
        assert!(err.contains("must start with postgres://"), "{err}");
    }
}
