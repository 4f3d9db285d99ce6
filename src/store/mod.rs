//! Storage: one interface per aggregate, a SQLite and a PostgreSQL implementation, chosen by
//! the scheme of the database URL. Each aggregate's file (`blobs.rs`, `audit.rs`, `orgs.rs`,
//! `clients.rs`, `keys.rs`, `nonces.rs`, `batch.rs`, `meta.rs`, `recipients.rs`, `principals.rs`, `retention.rs`,
//! `report.rs`, `rotations.rs`, `objects.rs`) holds its trait and the one SQL
//! text both backends run, expanded for each pool type by `for_each_backend!`; `tx.rs` holds
//! the helpers they share (appending events inside a change's transaction), and
//! `commit_queue.rs` the group commit of blob writes, events and nonces. The backends
//! differ only in how they connect and in their migrations folders. On PostgreSQL the server
//! may connect as a least-privilege role while an owner role migrates (`pg_schema.rs`,
//! `pg_grants.rs`).

/// Expands an aggregate's `macro_rules!` implementation for both pool types, so each
/// statement is written once (SQLite and PostgreSQL accept the same `$n` placeholders,
/// `ON CONFLICT` and `RETURNING`). The expansion sees the invoking file's imports.
macro_rules! for_each_backend {
    ($impl:ident) => {
        $impl!($crate::store::SqliteStore, sqlx::Sqlite);
        $impl!($crate::store::PostgresStore, sqlx::Postgres);
    };
}

mod audit;
mod batch;
mod blobs;
mod clients;
mod commit_queue;
mod keys;
mod meta;
mod nonces;
mod objects;
mod orgs;
mod pg_grants;
mod pg_schema;
mod postgres;
mod principals;
mod recipients;
mod report;
mod retention;
mod rotations;
mod sqlite;
pub use sqlite::database_file as sqlite_database_file;
mod tx;
mod typed;

use std::sync::Arc;

pub use audit::{AuditQuery, AuditScope, AuditStore, TreeHead};
pub use batch::{BatchJob, BatchStore, Committed, EventPosition, JobOutcome};
pub use blobs::{BlobRecord, BlobStore, BlobWrite, ListQuery, SealedContent};
pub use clients::{ClientSecretRecord, ClientStore, ClientSummary};
pub use commit_queue::{CommitError, CommitQueue, EventSink, MAX_BATCH_EVENTS, QUEUE_CAPACITY};
pub use keys::{
    KeyStore, OldestKeys, SealedSecretRecord, TenantKeyListing, TenantKeyRecord, KEY_ACTIVE,
};
pub use meta::MetaStore;
pub use nonces::{NonceClaim, NonceJournal};
pub use objects::{DueObject, ObjectGcStore};
pub use orgs::OrgStore;
pub use postgres::PostgresStore;
pub use principals::{BlockRecord, PrincipalStore};
pub use recipients::RecipientStore;
pub use report::{BlobSummary, ReportStore, ScopeCounts, TenantKeyAge};
pub use retention::{
    Backlog, PolicyRecord, PurgeCounts, PurgeMethod, PurgePlan, PurgeSelection, RetentionStore,
    LAST_SWEEP_AT, PURGED_LAST_SWEEP,
};
pub use rotations::{
    RewrapBatch, RewrapPlan, RewrapRow, RotationRecord, RotationStart, RotationStore,
    ROTATION_COMPLETE, ROTATION_RUNNING,
};
pub use sqlite::SqliteStore;

/// The whole store: every aggregate, as the service holds it (`Arc<dyn Store>`). Methods of
/// the aggregates are callable on a `dyn Store` without importing their traits.
pub trait Store:
    MetaStore
    + ClientStore
    + OrgStore
    + KeyStore
    + BlobStore
    + AuditStore
    + NonceJournal
    + BatchStore
    + RecipientStore
    + PrincipalStore
    + RetentionStore
    + ReportStore
    + RotationStore
    + ObjectGcStore
{
}

impl<T> Store for T where
    T: MetaStore
        + ClientStore
        + OrgStore
        + KeyStore
        + BlobStore
        + AuditStore
        + NonceJournal
        + BatchStore
        + RecipientStore
        + PrincipalStore
        + RetentionStore
        + ReportStore
        + RotationStore
        + ObjectGcStore
{
}

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
            sqlx::Error::Database(ref db) if refuses_connections(db.as_ref()) => {
                StoreError::Unavailable(err)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Whether the database answered that it takes no connections now (DESIGN §20: 503, never
/// 500): PostgreSQL's connection-exception class (08), operator intervention (57P01-57P03:
/// shutting down, starting up), too many connections (53300), a database that is gone
/// (3D000), or one whose `ALLOW_CONNECTIONS` is false (55000 with that message: the code alone
/// also covers unrelated states). SQLite's busy and cannot-open (5, 14) likewise, with their
/// extended codes (the primary code is the low byte: `SQLITE_BUSY_SNAPSHOT` is 517).
fn refuses_connections(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    let code = code.as_ref();
    // PostgreSQL's SQLSTATEs are always five characters (and some are all digits, such as
    // 42501): only shorter codes are SQLite's.
    let sqlite_primary = (code.len() < 5)
        .then(|| code.parse::<u32>().ok())
        .flatten()
        .map(|c| c & 0xff);
    code.starts_with("08")
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "3D000")
        || matches!(sqlite_primary, Some(5 | 14))
        || (code == "55000" && db.message().contains("accepting connections"))
}

impl StoreError {
    /// A failed audit write; a database that is unreachable is reported as that (503
    /// `unavailable`), not as a broken audit store.
    pub(crate) fn audit(err: sqlx::Error) -> Self {
        match StoreError::from(err) {
            StoreError::Unavailable(e) => StoreError::Unavailable(e),
            StoreError::Database(e) => StoreError::Audit(e),
            other => other,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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

/// The store of a vault that must already exist, for every command but `serve` (DESIGN §20:
/// no silent new databases). A missing SQLite file, or a PostgreSQL database without the
/// vault's schema, is refused with an error naming what was looked for; an existing one is
/// opened like [`connect_service`] does.
pub async fn connect_existing(
    database_url: &str,
    migrations_url: Option<&str>,
    max_connections: u32,
) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        SqliteStore::require_existing(database_url)?;
    } else if is_postgres(database_url) {
        PostgresStore::require_schema(database_url).await?;
    }
    connect_service(database_url, migrations_url, max_connections).await
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
