//! The backup and restore drill of DESIGN §20 and runbooks/restore-drill.md, on both
//! backends: record the audit heads and witness a checkpoint, back up while the server
//! serves writes (`admin backup` on SQLite, `pg_dump` on PostgreSQL), restore beside it with
//! the keys kept apart, and prove the restore with `audit verify --expect-heads`, a witness
//! check against the restored server, and reading a blob back.

use crate::cli::{ok, with_database, BIN};
use crate::helpers::*;
use crate::on_both_backends;
use data_vault::config::Config;
use data_vault::startup::Application;
use std::path::Path;
use std::process::Command;

fn witness(base: &str, creds: &Credentials, state: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["audit", "witness", "--chain", "org:acme", "--state"])
        .arg(state)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_VAULT_URL", base)
        .env("DATA_VAULT_PRINCIPAL", &creds.principal)
        .env("DATA_VAULT_SECRET", creds.secret.as_str())
        .output()
        .unwrap()
}

async fn a_backup_taken_while_serving_restores_and_verifies(backend: Backend) {
    if backend == Backend::Postgres && !postgresql_client_runs("restore drill") {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    app.create_org("acme", &[("svc", "administrator")]).await;
    let client = app.client(&creds);
    let kept = client.create_blob("veid", Some("acme")).await;
    client.create_blob("veid", None).await;

    // 1. Before the backup: the heads every chain must still hold, and a witnessed checkpoint.
    let work = tempfile::tempdir().unwrap();
    let url = &app.config.storage.database_url;
    let heads = ok(with_database(url, &app.config.keys.master_key_file)
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap());
    let heads_file = work.path().join("heads.jsonl");
    std::fs::write(&heads_file, &heads).unwrap();
    let state = work.path().join("witness.json");
    let first = witness(&app.url(""), &creds, &state);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // 2. The backup, while writes go on.
    let writer = {
        let client = app.client(&creds);
        tokio::spawn(async move {
            for _ in 0..10 {
                client.create_blob("veid", Some("acme")).await;
            }
        })
    };
    let restored_dir = tempfile::tempdir().unwrap();
    let (restored_url, restored_pg) = match backend {
        Backend::Sqlite => {
            let out = work.path().join("vault-backup.db");
            let said = ok(with_database(url, &app.config.keys.master_key_file)
                .args(["admin", "backup", "--out"])
                .arg(&out)
                .output()
                .unwrap());
            assert!(said.contains("backup written"), "{said}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&out).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "the backup is private to its owner");
            }
            // A second backup never overwrites the first.
            let again = with_database(url, &app.config.keys.master_key_file)
                .args(["admin", "backup", "--out"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(!again.status.success());
            // 3. Restore: the file into place.
            let db = restored_dir.path().join("vault.db");
            std::fs::copy(&out, &db).unwrap();
            (format!("sqlite://{}", db.display()), None)
        }
        Backend::Postgres => {
            let dump = work.path().join("vault.dump");
            let status = Command::new("pg_dump")
                .args(["--format=custom", "--file"])
                .arg(&dump)
                .arg(url)
                .status()
                .unwrap();
            assert!(status.success(), "pg_dump failed");
            // 3. Restore: into a new, empty database.
            let (restored_url, name) = fresh_postgres_database().await;
            let status = Command::new("pg_restore")
                .args(["--no-owner", "--exit-on-error", "--dbname"])
                .arg(&restored_url)
                .arg(&dump)
                .status()
                .unwrap();
            assert!(status.success(), "pg_restore failed");
            (restored_url, Some(name))
        }
    };
    writer.await.unwrap();
    // The keys come from their own backup, never from the database's.
    let master_key = restored_dir.path().join("master.key");
    let log_key = restored_dir.path().join("log.key");
    std::fs::copy(&app.config.keys.master_key_file, &master_key).unwrap();
    std::fs::copy(&app.config.audit.log_key_file, &log_key).unwrap();

    // 4. The drill's proof: every recorded head is still in the restored chains ...
    let verified = ok(with_database(&restored_url, &master_key)
        .args(["audit", "verify", "--expect-heads"])
        .arg(&heads_file)
        .output()
        .unwrap());
    assert!(verified.contains("still present"), "{verified}");
    assert!(!verified.contains("NO LONGER MATCHES"), "{verified}");

    // ... the restored server serves what was stored, and a witness accepts its checkpoint.
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.metrics_listen = "127.0.0.1:0".into();
    config.storage.database_url = restored_url.clone();
    config.keys.master_key_file = master_key.clone();
    config.audit.log_key_file = log_key;
    let restored = Application::build(&config).await.unwrap();
    let base = format!("http://{}", restored.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(restored.run_until(async {
        let _ = stopped.await;
    }));
    let restored_client = Api::from(
        data_vault::cli::VaultClient::new(
            &base,
            data_vault::cli::ClientAuth::Hmac {
                principal: creds.principal.clone(),
                secret: creds.secret.clone(),
            },
        )
        .unwrap(),
    );
    let read = restored_client.get_blob(&kept, &ReadQuery::default()).await;
    assert_eq!(
        read.status(),
        200,
        "a blob stored before the backup reads back"
    );
    let checked = witness(&base, &creds, &state);
    assert!(
        checked.status.success(),
        "the witness accepts the restored log: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    if let Some(name) = restored_pg {
        drop_postgres_database(name);
    }
}

/// A restore from a backup that lost events fails the drill: the recorded heads are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_missing_recorded_events_fails_the_drill() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("svc").await;
    let work = tempfile::tempdir().unwrap();
    let url = &app.config.storage.database_url;
    let key = &app.config.keys.master_key_file;
    let out = work.path().join("old.db");
    ok(with_database(url, key)
        .args(["admin", "backup", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    app.client(&creds).create_blob("veid", None).await;
    let heads = ok(with_database(url, key)
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap());
    let heads_file = work.path().join("heads.jsonl");
    std::fs::write(&heads_file, heads).unwrap();
    // The backup predates the recorded heads: restoring it loses events.
    let output = with_database(&format!("sqlite://{}", out.display()), key)
        .args(["audit", "verify", "--expect-heads"])
        .arg(&heads_file)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a stale backup must fail the drill"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("NO LONGER MATCHES"));
}

#[test]
fn admin_backup_refuses_postgresql_and_points_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let output = with_database("postgres://nobody@127.0.0.1:1/none", &dir.path().join("k"))
        .args(["admin", "backup", "--out"])
        .arg(dir.path().join("b.db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
}

on_both_backends!(a_backup_taken_while_serving_restores_and_verifies);
