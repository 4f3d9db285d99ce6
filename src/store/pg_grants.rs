//! The PostgreSQL service role's privileges: exactly the DML the server's statements need,
//! granted by the owner role after every migration run, so they follow the schema.

use super::pg_schema::RUNBOOK;
use super::{StoreError, StoreResult};
use sqlx::{Connection, PgConnection};

/// What the statements of the store's aggregate files (`blobs.rs`, `audit.rs`, `tx.rs`, ...)
/// do to each table, and nothing more. The audit log is INSERT and SELECT only: with neither
/// UPDATE, DELETE, TRUNCATE nor TRIGGER, and not owning the table, the service role can
/// neither rewrite it nor switch off its triggers.
///
/// A table missing here is unreadable by the server, which the PostgreSQL tests notice; the
/// unit test below reads the statements and fails on any privilege missing or unused.
const SERVICE_PRIVILEGES: &[(&str, &str)] = &[
    // The last sweep's time and count are upserted.
    ("vault_meta", "SELECT, INSERT, UPDATE"),
    // Revocation marks a client in place.
    ("clients", "SELECT, INSERT, UPDATE, DELETE"),
    // `admin keys rewrap-master` reseals secrets under the active master key in place.
    ("client_secrets", "SELECT, INSERT, UPDATE, DELETE"),
    ("orgs", "SELECT, INSERT"),
    // Roles change in place (upsert).
    ("memberships", "SELECT, INSERT, UPDATE, DELETE"),
    // Erasure overwrites a destroyed key's material; rotation changes a version's status.
    ("tenant_keys", "SELECT, INSERT, UPDATE"),
    // Rotations record their progress in place.
    ("key_rotations", "SELECT, INSERT, UPDATE"),
    // Holds and crypto-shredding change rows in place.
    ("blobs", "SELECT, INSERT, UPDATE, DELETE"),
    ("retention_policies", "SELECT, INSERT, UPDATE"),
    // Uploads register, renew and remove their objects; the sweep claims and forgets them
    // (the triggers of `blobs` insert and update as the service role too).
    ("object_gc", "SELECT, INSERT, UPDATE, DELETE"),
    ("audit_events", "SELECT, INSERT"),
    // Each chain's Merkle tree: appended with the events, never changed.
    ("audit_tree", "SELECT, INSERT"),
    // Appends lock and advance each chain's head (upsert, then update).
    ("audit_heads", "SELECT, INSERT, UPDATE"),
    // Nonces are spent by an upsert that may re-spend an expired one, and pruned.
    ("used_nonces", "SELECT, INSERT, UPDATE, DELETE"),
    // A principal's published age recipients are replaced in place (upsert).
    ("principal_recipients", "SELECT, INSERT, UPDATE"),
    // Wallet principals an operator blocked; unblocking deletes the row.
    ("blocked_principals", "SELECT, INSERT, DELETE"),
    // Read at start-up to check that the schema is this build's.
    ("_sqlx_migrations", "SELECT"),
];

/// Serialises grant runs of replicas starting together: concurrent GRANTs on one object fail
/// with "tuple concurrently updated".
const GRANT_LOCK: i64 = 0x6476_6772_616e_7473; // "dvgrants"

/// Double-quotes an identifier for SQL text (GRANT takes no bind parameters).
fn quote_ident(name: &str) -> StoreResult<String> {
    if name.is_empty() || name.contains('\0') {
        return Err(StoreError::Schema(format!("invalid role name {name:?}")));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// Replaces `role`'s privileges on the objects the connected (owner) role owns in the current
/// schema with [`SERVICE_PRIVILEGES`], in one transaction. Refuses a role that is missing, a
/// superuser, or a member of the owner role, since least privilege would then be a fiction.
pub(super) async fn grant_service_role(conn: &mut PgConnection, role: &str) -> StoreResult<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(GRANT_LOCK)
        .execute(&mut *tx)
        .await?;
    let found: Option<(bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, pg_has_role(rolname, current_user, 'MEMBER') \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *tx)
    .await?;
    match found {
        None => {
            return Err(StoreError::Schema(format!(
                "role {role:?}, the user of storage.database_url, does not exist; create it \
                 as {RUNBOOK} shows"
            )))
        }
        Some((true, _)) => {
            return Err(StoreError::Schema(format!(
                "role {role:?}, the user of storage.database_url, is a superuser: it could \
                 alter the tables and their triggers; use a NOSUPERUSER role ({RUNBOOK})"
            )))
        }
        Some((false, true)) => {
            return Err(StoreError::Schema(format!(
                "role {role:?}, the user of storage.database_url, is a member of the owner \
                 role, so it could alter the tables and their triggers; revoke that \
                 membership ({RUNBOOK})"
            )))
        }
        Some((false, false)) => {}
    }
    let grantee = quote_ident(role)?;
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&mut *tx)
        .await?;
    let schema = quote_ident(&schema)?;
    // Start from nothing, so that a privilege an older version needed does not linger.
    let owned: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
         AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) \
         ORDER BY c.relname",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut statements = Vec::with_capacity(owned.len() * 2 + SERVICE_PRIVILEGES.len() + 1);
    for (name, kind) in &owned {
        statements.push(format!(
            "REVOKE ALL ON {kind} {schema}.{} FROM {grantee}",
            quote_ident(name)?
        ));
    }
    statements.push(format!("GRANT USAGE ON SCHEMA {schema} TO {grantee}"));
    for (table, privileges) in SERVICE_PRIVILEGES {
        statements.push(format!(
            "GRANT {privileges} ON TABLE {schema}.{} TO {grantee}",
            quote_ident(table)?
        ));
    }
    // Identity columns need no sequence privilege; a future serial column would.
    for (name, _) in owned.iter().filter(|(_, kind)| kind == "SEQUENCE") {
        statements.push(format!(
            "GRANT USAGE ON SEQUENCE {schema}.{} TO {grantee}",
            quote_ident(name)?
        ));
    }
    for statement in &statements {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("vault").unwrap(), "\"vault\"");
        assert_eq!(quote_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
    }

    /// What the store's statements need, read from their SQL text in the files that hold
    /// them: a table named by FROM or JOIN, or written at all, needs SELECT (every statement
    /// here filters or returns rows); INSERT INTO, UPDATE, DELETE FROM and an upsert's
    /// DO UPDATE need theirs. Catalog tables (`pg_*`) are everyone's to read.
    fn needed_privileges() -> BTreeSet<(String, String)> {
        const SOURCES: &[&str] = &[
            include_str!("audit.rs"),
            include_str!("batch.rs"),
            include_str!("blobs.rs"),
            include_str!("clients.rs"),
            include_str!("keys.rs"),
            include_str!("meta.rs"),
            include_str!("nonces.rs"),
            include_str!("objects.rs"),
            include_str!("orgs.rs"),
            include_str!("principals.rs"),
            include_str!("recipients.rs"),
            include_str!("retention.rs"),
            include_str!("report.rs"),
            include_str!("rotations.rs"),
            include_str!("tx.rs"),
            include_str!("pg_schema.rs"),
        ];
        let is_table = |word: &str| {
            !word.starts_with("pg_")
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let mut needed = BTreeSet::new();
        for source in SOURCES {
            let words: Vec<&str> = source
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            let mut inserting: Option<&str> = None;
            for (i, pair) in words.windows(2).enumerate() {
                let (verb, next) = (pair[0], pair[1]);
                let before = i.checked_sub(1).and_then(|j| words.get(j)).copied();
                let (table, privilege) = match (before, verb) {
                    (Some("DO"), "UPDATE") => match inserting {
                        Some(table) => (table, "UPDATE"),
                        None => panic!("an upsert with no INSERT INTO before it"),
                    },
                    (_, "UPDATE") => (next, "UPDATE"),
                    (_, "INTO") => {
                        inserting = Some(next);
                        (next, "INSERT")
                    }
                    (Some("DELETE"), "FROM") => (next, "DELETE"),
                    (_, "FROM" | "JOIN") => (next, "SELECT"),
                    _ => continue,
                };
                if is_table(table) {
                    needed.insert((table.to_owned(), privilege.to_owned()));
                    needed.insert((table.to_owned(), "SELECT".to_owned()));
                }
            }
        }
        needed
    }

    #[test]
    fn the_grants_are_exactly_what_the_statements_need() {
        let granted: BTreeSet<(String, String)> = SERVICE_PRIVILEGES
            .iter()
            .flat_map(|(table, privileges)| {
                privileges
                    .split(", ")
                    .map(|p| ((*table).to_owned(), p.to_owned()))
            })
            .collect();
        let needed = needed_privileges();
        // The parse found the statements at all (a guard against a test that cannot fail).
        assert!(needed.contains(&("audit_events".to_owned(), "INSERT".to_owned())));
        assert!(needed.contains(&("memberships".to_owned(), "UPDATE".to_owned())));
        let missing: Vec<_> = needed.difference(&granted).collect();
        assert!(missing.is_empty(), "not granted: {missing:?}");
        let unused: Vec<_> = granted.difference(&needed).collect();
        assert!(
            unused.is_empty(),
            "granted but no statement needs it: {unused:?}"
        );
    }

    #[test]
    fn the_audit_log_is_append_only_for_the_service_role() {
        let (_, audit) = SERVICE_PRIVILEGES
            .iter()
            .find(|(table, _)| *table == "audit_events")
            .unwrap();
        assert_eq!(*audit, "SELECT, INSERT");
    }
}
