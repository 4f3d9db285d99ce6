//! The production backend: PostgreSQL, shared by any number of stateless replicas.

use super::pg_schema::{self, RoleInfo, RUNBOOK};
use super::{pg_grants, MigrationReport, Migrations, StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pub(super) pool: PgPool,
}

fn options(url: &str, key: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("{key} is not a valid PostgreSQL URL: {e}")))
}

async fn pool(options: PgConnectOptions, max_connections: u32) -> StoreResult<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?)
}

/// Applies the pending migrations as `role`; a role without the privileges is told how to
/// get the schema migrated instead of only hearing PostgreSQL's "permission denied".
async fn run_migrations(pool: &PgPool, role: &str) -> StoreResult<()> {
    match MIGRATOR.run(pool).await {
        Ok(()) => Ok(()),
        Err(
            sqlx::migrate::MigrateError::Execute(e)
            | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
        ) if pg_schema::is_permission_denied(&e) => Err(StoreError::Schema(format!(
            "role {role:?} cannot apply the migrations ({e}): apply them as the owner role \
             with `data-vault admin migrate` (storage.migrations_database_url set to the \
             owner's URL), or set storage.migrations_database_url for the server ({RUNBOOK})"
        ))),
        Err(e) => Err(e.into()),
    }
}

impl PostgresStore {
    pub(super) const WRITE_BEGIN: &'static str = "BEGIN";
    /// Replicas sweeping at once claim disjoint rows and never wait on each other.
    pub(super) const CLAIM_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// Erasure waits for a row another transaction holds rather than miss it.
    pub(super) const CLAIM_WAIT: &'static str = " FOR UPDATE";
    /// A blob insert holds its tenant key row against a rotation retiring it meanwhile.
    pub(super) const SHARE_LOCK: &'static str = " FOR SHARE";
    /// Replicas rewrapping one tenant at once claim disjoint blobs (not the key rows).
    pub(super) const REWRAP_CLAIM: &'static str = " FOR UPDATE OF b SKIP LOCKED";

    pub async fn connect(
        url: &str,
        max_connections: u32,
        migrations: Migrations,
    ) -> StoreResult<Self> {
        let pool = pool(options(url, "storage.database_url")?, max_connections).await?;
        let role = RoleInfo::of(&pool).await?;
        match migrations {
            Migrations::Here if role.may_migrate() => {
                run_migrations(&pool, &role.name).await?;
                if role.can_alter_tables() {
                    tracing::warn!(
                        role = %role.name,
                        "storage.database_url connects as a role that {}: a compromised \
                         server could switch off the audit log's append-only triggers; \
                         serve as a least-privilege role instead (see {RUNBOOK})",
                        role.power()
                    );
                }
            }
            Migrations::Here => {
                pg_schema::require_current(&pool, &MIGRATOR, &role.name).await?;
            }
            Migrations::Elsewhere => {
                if role.can_alter_tables() {
                    return Err(StoreError::Schema(format!(
                        "storage.database_url connects as role {:?}, which {}; with \
                         storage.migrations_database_url set, the server must connect as a \
                         least-privilege service role that cannot alter tables or triggers \
                         ({RUNBOOK})",
                        role.name,
                        role.power()
                    )));
                }
                pg_schema::require_current(&pool, &MIGRATOR, &role.name).await?;
            }
        }
        Ok(Self { pool })
    }

    /// Refuses a database that cannot be reached or holds no vault schema: only `serve` (or
    /// `admin migrate`) creates one. The URL in the message has its password removed.
    pub(super) async fn require_schema(url: &str) -> StoreResult<()> {
        let shown = crate::cli::redact_url(url);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options(url, "storage.database_url")?)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "cannot open the vault database {shown} (storage.database_url): {e}"
                ))
            })?;
        let present: StoreResult<bool> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() AND tablename = 'vault_meta')",
        )
        .fetch_one(&pool)
        .await
        .map_err(StoreError::from);
        pool.close().await;
        if present? {
            Ok(())
        } else {
            Err(StoreError::Config(format!(
                "no vault in the database {shown} (storage.database_url): it holds no vault \
                 schema. Only `data-vault serve` or `data-vault admin migrate` creates one; \
                 check the URL"
            )))
        }
    }

    /// Migrates over `owner_url` and grants the role `service_url` connects as what the server
    /// needs. The owner's connection is closed before this returns.
    pub async fn migrate(owner_url: &str, service_url: &str) -> StoreResult<MigrationReport> {
        let service_role = options(service_url, "storage.database_url")?
            .get_username()
            .to_owned();
        let pool = pool(options(owner_url, "storage.migrations_database_url")?, 1).await?;
        let result = Self::migrate_on(&pool, &service_role).await;
        pool.close().await;
        result
    }

    async fn migrate_on(pool: &PgPool, service_role: &str) -> StoreResult<MigrationReport> {
        let owner = RoleInfo::of(pool).await?;
        if !owner.may_migrate() {
            return Err(StoreError::Schema(format!(
                "the migrations connect as role {:?} (storage.migrations_database_url, else \
                 storage.database_url), which does not own the schema; use the URL of the role \
                 that created the tables ({RUNBOOK})",
                owner.name
            )));
        }
        let before = pg_schema::applied(pool, &owner.name).await?;
        let applied = pg_schema::pending(&MIGRATOR, &before).map_err(StoreError::Schema)?;
        run_migrations(pool, &owner.name).await?;
        let granted_to = if service_role == owner.name {
            None
        } else {
            let mut conn = pool.acquire().await?;
            pg_grants::grant_service_role(&mut conn, service_role).await?;
            Some(service_role.to_owned())
        };
        Ok(MigrationReport {
            applied,
            version: MIGRATOR.iter().map(|m| m.version).max(),
            owner: owner.name,
            granted_to,
        })
    }
}
