//! PostgreSQL least privilege, set up with `runbooks/postgresql.md`'s own SQL: an owner role
//! migrates, the server serves as a service role, and that role can neither switch off the
//! audit log's triggers nor rewrite it.

use crate::helpers::*;
use data_vault::config::Config;
use data_vault::startup::Application;
use sqlx::{Connection, PgConnection};
use std::process::Command;

const RUNBOOK: &str = include_str!("../../runbooks/postgresql.md");
const BIN: &str = env!("CARGO_BIN_EXE_data-vault");

/// The bodies of the runbook's fenced blocks of `kind` (`sql`, `sh`), in order.
fn runbook_blocks(kind: &str) -> Vec<String> {
    let fence = format!("```{kind}");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in RUNBOOK.lines() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == fence => current = Some(Vec::new()),
            Some(lines) if trimmed == "```" => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(line),
            None => {}
        }
    }
    blocks
}

/// The statements of a block of SQL (each ends with `;` at the end of a line).
fn statements(sql: &str) -> Vec<String> {
    format!("{sql}\n")
        .split(";\n")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A fresh owner role, service role and database made by the runbook's step 1, with random
/// names; the database, then the roles, are dropped when this goes out of scope.
struct Roles {
    admin_url: String,
    owner: String,
    service: String,
    database: String,
    /// Production never generates a log key: the test provides one, as an operator would.
    keys: tempfile::TempDir,
}

impl Roles {
    async fn create() -> Option<Self> {
        let admin_url = postgres_url()?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let roles = Self {
            admin_url,
            owner: format!("dv_owner_{id}"),
            service: format!("dv_service_{id}"),
            database: format!("dv_roles_{id}"),
            keys: tempfile::tempdir().unwrap(),
        };
        let sql = runbook_blocks("sql");
        assert_eq!(sql.len(), 2, "the runbook's step 1 has two SQL blocks");
        let mut cluster = PgConnection::connect(&roles.admin_url).await.unwrap();
        for statement in statements(&roles.localise(&sql[0])) {
            sqlx::query(&statement)
                .execute(&mut cluster)
                .await
                .unwrap_or_else(|e| panic!("runbook step 1: {statement}: {e}"));
        }
        let mut database = roles.superuser_on_database().await;
        for statement in statements(&roles.localise(&sql[1])) {
            sqlx::query(&statement)
                .execute(&mut database)
                .await
                .unwrap_or_else(|e| panic!("runbook step 1: {statement}: {e}"));
        }
        Some(roles)
    }

    /// The runbook's names replaced by this test's.
    fn localise(&self, text: &str) -> String {
        text.replace("data_vault_owner", &self.owner)
            .replace("data_vault_service", &self.service)
            .replace("DATABASE vault", &format!("DATABASE {}", self.database))
    }

    /// A URL for `user` on the test database (the local server trusts local connections).
    fn url(&self, user: &str) -> String {
        let mut url = url::Url::parse(&self.admin_url).unwrap();
        url.set_username(user).unwrap();
        url.set_password(None).unwrap();
        url.set_path(&format!("/{}", self.database));
        url.to_string()
    }

    fn owner_url(&self) -> String {
        self.url(&self.owner)
    }

    fn service_url(&self) -> String {
        self.url(&self.service)
    }

    async fn superuser_on_database(&self) -> PgConnection {
        let mut url = url::Url::parse(&self.admin_url).unwrap();
        url.set_path(&format!("/{}", self.database));
        PgConnection::connect(url.as_str()).await.unwrap()
    }

    /// `data-vault admin migrate` with the owner's and the service role's URLs.
    fn admin_migrate(&self) -> std::process::Output {
        Command::new(BIN)
            .args(["admin", "migrate"])
            .env_clear()
            .env(
                "DATA_VAULT_STORAGE__MIGRATIONS_DATABASE_URL",
                self.owner_url(),
            )
            .env("DATA_VAULT_STORAGE__DATABASE_URL", self.service_url())
            .output()
            .unwrap()
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        let statements = [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
            format!("DROP ROLE IF EXISTS {}", self.service),
            format!("DROP ROLE IF EXISTS {}", self.owner),
        ];
        let url = self.admin_url.clone();
        // Drop runs outside any runtime guarantee: a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                for statement in statements {
                    if let Err(e) = sqlx::query(&statement).execute(&mut conn).await {
                        eprintln!("cleanup: {statement}: {e}");
                    }
                }
            });
        })
        .join();
    }
}

/// Runs `statement` and expects PostgreSQL's `insufficient_privilege` (42501); returns the
/// message.
async fn refused(conn: &mut PgConnection, statement: &str) -> String {
    match sqlx::query(statement).execute(&mut *conn).await {
        Ok(_) => panic!("the service role was allowed: {statement}"),
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(
                e.code().as_deref(),
                Some("42501"),
                "{statement}: {}",
                e.message()
            );
            e.message().to_owned()
        }
        Err(e) => panic!("{statement}: {e}"),
    }
}

/// A configuration that serves as the service role only, like a server without the owner's
/// password.
fn service_only_config(roles: &Roles) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.metrics_listen = "127.0.0.1:0".into();
    config.storage.database_url = roles.service_url();
    let key = data_vault::crypto::MasterKey::generate_hex();
    config.keys.master_key = Some(key.as_str().into());
    config.audit.log_key_file = roles.keys.path().join("log.key");
    if !config.audit.log_key_file.exists() {
        let log_key = data_vault::audit::note::LogKey::generate_hex();
        std::fs::write(&config.audit.log_key_file, log_key.as_bytes()).unwrap();
    }
    config
}

async fn build_error(config: &Config) -> String {
    match Application::build(config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_role_serves_but_cannot_touch_the_audit_triggers() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    // TestApp also makes (and drops) a database of its own, unused here: the runbook's
    // database, owned by the owner role, is the one under test.
    let app = TestApp::spawn_with(Backend::Postgres, |config| {
        config.storage.database_url = roles.service_url();
        config.storage.migrations_database_url = Some(roles.owner_url());
    })
    .await;

    // The round trip, as the service role: every kind of statement the server runs.
    let creds = app.create_client("admin").await;
    let admin = app.client(&creds);
    app.create_org("acme", &[("admin", "administrator"), ("bob", "")])
        .await;
    let envelope = age_envelope_of_size(600);
    let response = admin
        .upload_raw(&envelope, &UploadQuery::in_scope("market").org_id("acme"))
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["metadata"]["id"].as_str().unwrap().to_owned();
    let read = admin.get_blob_raw(&id, &ReadQuery::default()).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), envelope.as_slice());
    let listed = admin.list_blobs(&ListQuery::default()).await;
    assert_eq!(listed.status(), 200);
    let deleted = admin.delete_blob(&id).await;
    assert_eq!(deleted.status(), 204);
    let events = admin.audit(&AuditQuery::default().org_id("acme")).await;
    assert_eq!(events.status(), 200);
    let verify = admin.audit_verify_json(Some("acme")).await;
    // Two memberships, the upload, the read, the delete and the audit query.
    assert_eq!(
        (verify["valid"].as_bool(), verify["length"].as_i64()),
        (Some(true), Some(6)),
        "{verify}"
    );

    // The admin CLI and the offline verifier, given only the service role's URL.
    let blocked =
        data_vault_auth::WalletSigner::from_private_key_hex(&"11".repeat(32), "virtengine")
            .unwrap()
            .address()
            .to_owned();
    for args in [
        &["admin", "client", "rotate", "admin"][..],
        &["admin", "client", "retire", "admin"],
        &["admin", "client", "list", "--json"],
        &["admin", "org", "member", "remove", "acme", "bob"],
        &["admin", "client", "create", "spare"],
        &["admin", "client", "revoke", "spare"],
        &["admin", "client", "delete", "spare"],
        &[
            "admin",
            "principal",
            "block",
            blocked.as_str(),
            "--reason",
            "drill",
        ],
        &["admin", "principal", "unblock", blocked.as_str()],
        &["audit", "verify", "--org", "acme"],
    ] {
        let output = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("DATA_VAULT_STORAGE__DATABASE_URL", roles.service_url())
            .env(
                "DATA_VAULT_KEYS__MASTER_KEY_FILE",
                &app.config.keys.master_key_file,
            )
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }

    // The runbook's verification, statement by statement, as the service role.
    let sh = runbook_blocks("sh");
    let check = sh
        .iter()
        .find(|b| b.contains("DISABLE TRIGGER"))
        .expect("the runbook's verification block");
    let sql = check
        .lines()
        .skip_while(|l| !l.contains("<<'SQL'"))
        .skip(1)
        .take_while(|l| l.trim() != "SQL")
        .collect::<Vec<_>>()
        .join("\n");
    let mut checks = statements(&sql);
    let last = checks.pop().expect("the privilege query");
    assert!(checks.iter().any(|s| s.contains("DISABLE TRIGGER ALL")));
    assert!(checks
        .iter()
        .any(|s| s.contains("session_replication_role")));
    assert!(checks.iter().any(|s| s.starts_with("DROP TRIGGER")));
    assert!(checks.iter().any(|s| s.starts_with("UPDATE audit_events")));
    let mut service = PgConnection::connect(&roles.service_url()).await.unwrap();
    for statement in &checks {
        let message = refused(&mut service, statement).await;
        eprintln!("refused as expected: {statement}\n    {message}");
    }
    let (superuser, can_tamper): (bool, bool) =
        sqlx::query_as(&last).fetch_one(&mut service).await.unwrap();
    assert_eq!((superuser, can_tamper), (false, false));
    // More ways in, each refused.
    for statement in [
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events ENABLE REPLICA TRIGGER audit_events_no_update_delete",
        "CREATE TRIGGER sneak BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
        "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS \
         $$ BEGIN RETURN OLD; END; $$ LANGUAGE plpgsql",
        "CREATE TABLE sneak (a int)",
        &format!("SET ROLE {}", roles.owner),
        "UPDATE audit_events SET reason = 'x'",
    ] {
        refused(&mut service, statement).await;
    }
    // The service role reads every table of the schema (none was left out of the grants)...
    let tables: Vec<(String, bool)> = sqlx::query_as(
        "SELECT tablename::text, has_table_privilege(quote_ident(tablename), 'SELECT') \
         FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(&mut service)
    .await
    .unwrap();
    assert!(tables.len() >= 10, "{tables:?}");
    assert!(tables.iter().all(|(_, select)| *select), "{tables:?}");
    // ...and the log is intact.
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE chain = 'org:acme'")
            .fetch_one(&mut service)
            .await
            .unwrap();
    assert_eq!(rows, 7, "six events over HTTP and the CLI's member removal");

    // The refusals are about the role: the owner may do what the service role may not.
    let mut owner = PgConnection::connect(&roles.owner_url()).await.unwrap();
    let mut tx = owner.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER ALL")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_role_alone_cannot_migrate_and_the_server_says_how() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    let config = service_only_config(&roles);

    // A new database the service role may not create tables in.
    let error = build_error(&config).await;
    assert!(
        error.contains("cannot apply the migrations") && error.contains("admin migrate"),
        "{error}"
    );

    let output = roles.admin_migrate();
    assert!(output.status.success(), "{}", text(&output));
    let out = text(&output);
    assert!(out.contains("applied migration(s) 1, 2, 3"), "{out}");
    assert!(
        out.contains(&format!(
            "granted the service privileges to role {}",
            roles.service
        )),
        "{out}"
    );
    let again = roles.admin_migrate();
    assert!(
        text(&again).contains("schema already current"),
        "{}",
        text(&again)
    );

    // The service role cannot stand in for the owner.
    let output = Command::new(BIN)
        .args(["admin", "migrate"])
        .env_clear()
        .env("DATA_VAULT_STORAGE__DATABASE_URL", roles.service_url())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("does not own the schema"),
        "{}",
        text(&output)
    );

    // Now current: the service role serves without migrating.
    drop(Application::build(&config).await.unwrap());

    // With the owner's URL set, the served role must not be able to alter the tables.
    let mut as_owner = service_only_config(&roles);
    as_owner.storage.database_url = roles.owner_url();
    as_owner.storage.migrations_database_url = Some(roles.owner_url());
    let error = build_error(&as_owner).await;
    assert!(
        error.contains("owns the vault's tables") && error.contains("least-privilege"),
        "{error}"
    );

    // A schema one migration behind (as after an upgrade nobody migrated for).
    let mut owner = PgConnection::connect(&roles.owner_url()).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 2")
        .execute(&mut owner)
        .await
        .unwrap();
    let error = build_error(&config).await;
    assert!(
        error.contains("behind") && error.contains("migration(s) 2 not applied"),
        "{error}"
    );
    assert!(error.contains("admin migrate"), "{error}");
}

#[test]
fn owner_url_keys_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{env:?} {args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let typo = run(
        &[(
            "DATA_VAULT_STORAGE__MIGRATION_DATABASE_URL",
            "postgres://o@db/vault",
        )],
        &["serve"],
    );
    assert!(typo.contains("migration_database_url"), "{typo}");
    let on_sqlite = run(
        &[(
            "DATA_VAULT_STORAGE__MIGRATIONS_DATABASE_URL",
            "postgres://o@db/vault",
        )],
        &["serve"],
    );
    assert!(on_sqlite.contains("SQLite"), "{on_sqlite}");
    let elsewhere = run(
        &[
            ("DATA_VAULT_STORAGE__DATABASE_URL", "postgres://s@db/vault"),
            (
                "DATA_VAULT_STORAGE__MIGRATIONS_DATABASE_URL",
                "postgres://o@db/other",
            ),
        ],
        &["admin", "migrate"],
    );
    assert!(elsewhere.contains("same database"), "{elsewhere}");
    let embedded = run(&[], &["admin", "migrate"]);
    assert!(embedded.contains("for PostgreSQL"), "{embedded}");
    assert!(
        !dir.path().join("data").exists(),
        "admin migrate on SQLite creates nothing"
    );
}
