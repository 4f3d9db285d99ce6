//! What a PostgreSQL connection's role may do to the schema, and whether the schema is at this
//! build's version: the checks that let the server run as a role that cannot migrate.

use super::{StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::PgPool;

/// Where the operator learns how to set up the two roles.
pub(super) const RUNBOOK: &str = "runbooks/postgresql.md";

/// The role a connection runs as, and its power over the vault's schema.
#[derive(Debug)]
pub(super) struct RoleInfo {
    pub name: String,
    pub superuser: bool,
    /// Owns (or may become, by membership) the owner of a table in the current schema: it
    /// could then alter the tables and disable the audit log's triggers.
    pub owns_tables: bool,
    /// `None` when the database has never been migrated; otherwise whether this role owns the
    /// migrations table, i.e. is the role that migrates.
    pub owns_migrations: Option<bool>,
}

impl RoleInfo {
    pub async fn of(pool: &PgPool) -> StoreResult<Self> {
        let (name, superuser, owns_tables, owns_migrations) = sqlx::query_as(
            "SELECT current_user::text, r.rolsuper, \
             EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
                     AND pg_has_role(current_user, c.relowner, 'MEMBER')), \
             (SELECT pg_has_role(current_user, c.relowner, 'MEMBER') FROM pg_class c \
              WHERE c.oid = to_regclass('_sqlx_migrations')) \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self {
            name,
            superuser,
            owns_tables,
            owns_migrations,
        })
    }

    /// Whether this role could alter the tables or their triggers.
    pub fn can_alter_tables(&self) -> bool {
        self.superuser || self.owns_tables
    }

    /// Why [`can_alter_tables`](Self::can_alter_tables) holds, for messages.
    pub fn power(&self) -> &'static str {
        if self.superuser {
            "is a superuser"
        } else {
            "owns the vault's tables"
        }
    }

    /// A fresh database is migrated by whoever connects first; after that, by its owner.
    pub fn may_migrate(&self) -> bool {
        self.owns_migrations.unwrap_or(true)
    }
}

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(super) struct Applied {
    pub version: i64,
    pub checksum: Vec<u8>,
    pub success: bool,
}

/// The migrations recorded in the database; none when it was never migrated.
pub(super) async fn applied(pool: &PgPool, role: &str) -> StoreResult<Vec<Applied>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(|e| {
            if is_permission_denied(&e) {
                StoreError::Schema(format!(
                    "role {role:?} may not read _sqlx_migrations, so the schema version cannot be \
                     checked: run `data-vault admin migrate` as the owner role, which grants the \
                     service role what it needs ({RUNBOOK})"
                ))
            } else {
                e.into()
            }
        })
}

/// The versions of `migrator` not yet applied, or why the database cannot be used by this build.
pub(super) fn pending(migrator: &Migrator, applied: &[Applied]) -> Result<Vec<i64>, String> {
    let known = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, &*m.checksum))
        .collect::<Vec<_>>();
    compare(&known, applied)
}

fn compare(known: &[(i64, &[u8])], applied: &[Applied]) -> Result<Vec<i64>, String> {
    if let Some(dirty) = applied.iter().find(|a| !a.success) {
        return Err(format!(
            "migration {} failed part-way; repair it as the owner role ({RUNBOOK})",
            dirty.version
        ));
    }
    if let Some(unknown) = applied
        .iter()
        .find(|a| !known.iter().any(|(v, _)| *v == a.version))
    {
        return Err(format!(
            "the database has migration {}, which this data-vault does not know: a newer \
             version migrated it",
            unknown.version
        ));
    }
    let mut pending = Vec::new();
    for (version, checksum) in known {
        match applied.iter().find(|a| a.version == *version) {
            Some(a) if a.checksum != *checksum => {
                return Err(format!(
                    "migration {version} was changed after it was applied"
                ))
            }
            Some(_) => {}
            None => pending.push(*version),
        }
    }
    Ok(pending)
}

/// Refuses to go on when the schema is not exactly this build's and `role` cannot fix it.
pub(super) async fn require_current(
    pool: &PgPool,
    migrator: &Migrator,
    role: &str,
) -> StoreResult<()> {
    let applied = applied(pool, role).await?;
    let pending = pending(migrator, &applied).map_err(StoreError::Schema)?;
    if pending.is_empty() {
        return Ok(());
    }
    let list = pending
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(StoreError::Schema(format!(
        "the database schema is behind this data-vault (migration(s) {list} not applied) and \
         role {role:?}, which storage.database_url connects as, does not own the schema, so it \
         cannot apply them. Apply them as the owner role with `data-vault admin migrate` \
         (storage.migrations_database_url set to the owner's URL), or set \
         storage.migrations_database_url for the server ({RUNBOOK})"
    )))
}

/// PostgreSQL's `insufficient_privilege`: "permission denied" and "must be owner".
pub(super) fn is_permission_denied(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(version: i64, checksum: &[u8]) -> Applied {
        Applied {
            version,
            checksum: checksum.to_vec(),
            success: true,
        }
    }

    const KNOWN: &[(i64, &[u8])] = &[(1, b"a"), (2, b"b")];

    #[test]
    fn a_fresh_database_has_every_migration_pending() {
        assert_eq!(compare(KNOWN, &[]), Ok(vec![1, 2]));
    }

    #[test]
    fn a_database_one_migration_behind_has_that_one_pending() {
        assert_eq!(compare(KNOWN, &[applied(1, b"a")]), Ok(vec![2]));
    }

    #[test]
    fn a_current_database_has_nothing_pending() {
        assert_eq!(
            compare(KNOWN, &[applied(1, b"a"), applied(2, b"b")]),
            Ok(vec![])
        );
    }

    #[test]
    fn a_changed_migration_is_refused() {
        let err = compare(KNOWN, &[applied(1, b"x")]).unwrap_err();
        assert!(err.contains("migration 1 was changed"), "{err}");
    }

    #[test]
    fn a_migration_from_a_newer_version_is_refused() {
        let err = compare(
            KNOWN,
            &[applied(1, b"a"), applied(2, b"b"), applied(3, b"c")],
        )
        .unwrap_err();
        assert!(
            err.contains("migration 3") && err.contains("newer"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_migration_is_refused() {
        let mut dirty = applied(2, b"b");
        dirty.success = false;
        let err = compare(KNOWN, &[applied(1, b"a"), dirty]).unwrap_err();
        assert!(err.contains("migration 2 failed"), "{err}");
    }
}
