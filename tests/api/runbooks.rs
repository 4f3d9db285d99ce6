//! The runbooks' commands, run as written (DESIGN §20: each step a command that works). Each
//! tested page's ```` ```sh ```` blocks (and those tagged with the backend under test) are
//! run in order, in one `bash -euo pipefail`, against a real vault, with the page's inputs in
//! the environment and the `data-vault` under test first on `PATH`. runbooks/README.md lists
//! which pages are tested.

use crate::helpers::*;
use crate::on_both_backends;
use std::path::Path;
use std::process::Command;

/// The runnable script of a runbook page for `backend`.
fn script(page: &str, backend: Backend) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks")
        .join(page);
    let text = std::fs::read_to_string(&path).unwrap();
    let ours = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let mut script = String::new();
    let mut running: Option<bool> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match (&running, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                let mut words = info.split_whitespace();
                let runs = words.next() == Some("sh") && words.all(|tag| tag == ours);
                running = Some(runs);
            }
            (Some(_), Some("")) => running = None,
            (Some(true), _) => {
                script.push_str(trimmed);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!script.is_empty(), "{page} has no runnable block");
    script
}

/// A vault for the runbooks: `ops` is a platform administrator with an HMAC client.
/// The bench's `server.max_payload_bytes`.
const PAYLOAD_LIMIT: usize = 2 * 1024 * 1024;

struct Bench {
    app: TestApp,
    ops: Credentials,
    work: tempfile::TempDir,
}

impl Bench {
    async fn new(backend: Backend) -> Self {
        // A raw-upload limit the payload page's probe can reach in a test (5 GiB by default).
        let app = TestApp::spawn_with(backend, |c| {
            c.auth.platform_admins = vec!["ops".into()];
            c.server.max_payload_bytes = PAYLOAD_LIMIT;
        })
        .await;
        let ops = app.create_client("ops").await;
        app.create_org("acme", &[("ops", "administrator")]).await;
        app.client(&ops).create_blob("veid", Some("acme")).await;
        Self {
            app,
            ops,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the page with the vault's configuration and `inputs` in the environment.
    fn run(&self, page: &str, inputs: &[(&str, String)]) -> String {
        let bin = Path::new(env!("CARGO_BIN_EXE_data-vault"))
            .parent()
            .unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let config = &self.app.config;
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script(page, self.app.backend)])
            .current_dir(self.work.path())
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.work.path())
            .env("DATA_VAULT_URL", self.app.url(""))
            .env("METRICS_URL", format!("http://{}", self.app.metrics_addr))
            .env(
                "DATA_VAULT_STORAGE__DATABASE_URL",
                &config.storage.database_url,
            )
            .env(
                "DATA_VAULT_KEYS__MASTER_KEY_FILE",
                &config.keys.master_key_file,
            )
            .env("DATA_VAULT_AUDIT__LOG_KEY_FILE", &config.audit.log_key_file)
            .env(
                "DATA_VAULT_SERVER__MAX_PAYLOAD_BYTES",
                config.server.max_payload_bytes.to_string(),
            )
            .envs(
                config
                    .object_store
                    .url
                    .as_deref()
                    .map(|url| ("DATA_VAULT_OBJECT_STORE__URL", url)),
            )
            .env("DATA_VAULT_AUTH__PLATFORM_ADMINS", "[\"ops\"]")
            .env("DATA_VAULT_PRINCIPAL", &self.ops.principal)
            .env("DATA_VAULT_SECRET", self.ops.secret.as_str())
            .envs(inputs.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "runbooks/{page} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn path(&self, name: &str) -> String {
        self.work.path().join(name).display().to_string()
    }
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn backup_and_restore_drill_pages_work(backend: Backend) {
    if backend == Backend::Postgres && !postgresql_client_runs("restore drill runbook") {
        return;
    }
    let bench = Bench::new(backend).await;
    let config = &bench.app.config;
    let mut inputs = vec![
        ("BACKUP_DIR", bench.path("backup")),
        ("KEY_BACKUP_DIR", bench.path("keys")),
        (
            "MASTER_KEY_FILE",
            config.keys.master_key_file.display().to_string(),
        ),
        (
            "LOG_KEY_FILE",
            config.audit.log_key_file.display().to_string(),
        ),
    ];
    bench.run("backup.md", &inputs);
    // Written after the backup: not in it, and not needed by the drill.
    bench
        .app
        .client(&bench.ops)
        .create_blob("veid", Some("acme"))
        .await;

    inputs.push(("RESTORE_DIR", bench.path("restore")));
    inputs.push(("DRILL_LISTEN", free_address()));
    inputs.push(("DRILL_METRICS_LISTEN", free_address()));
    let drill_db = match backend {
        Backend::Postgres => {
            let (url, name) = fresh_postgres_database().await;
            inputs.push(("DRILL_DB", url));
            Some(name)
        }
        Backend::Sqlite => None,
    };
    let said = bench.run("restore-drill.md", &inputs);
    assert!(said.contains("still present"), "{said}");
    assert!(!said.contains("NO LONGER MATCHES"), "{said}");
    if let Some(name) = drill_db {
        drop_postgres_database(name);
    }
}

async fn triage_pages_work(backend: Backend) {
    let bench = Bench::new(backend).await;
    let wallet =
        data_vault_auth::WalletSigner::from_private_key_hex(&"11".repeat(32), "virtengine")
            .unwrap();
    let said = bench.run(
        "unauthorized-errors.md",
        &[
            ("PRINCIPAL", "ops".to_owned()),
            ("ADDRESS", wallet.address().to_owned()),
        ],
    );
    assert!(said.contains("acme\t[administrator]"), "{said}");
    assert!(
        said.contains(&format!("blocked {}", wallet.address())),
        "{said}"
    );
    let said = bench.run("denial-spikes.md", &[("PRINCIPAL", "ops".to_owned())]);
    assert!(said.contains("principal:  ops"), "{said}");
    bench.run("health.md", &[]);
    bench.run("redis-outage.md", &[]);
    let said = bench.run("database-outage.md", &[]);
    assert!(said.contains("\"database\":\"ok\""), "{said}");
    let said = bench.run("object-store.md", &[]);
    assert!(said.contains(r#""objects":"ok""#), "{said}");
    assert!(
        said.contains("virtengine_data_vault_object_gc_pending 0"),
        "{said}"
    );
    let said = bench.run("payload-too-large.md", &[]);
    assert!(said.contains("(code payload_too_large"), "{said}");
    let said = bench.run("nonce-store.md", &[]);
    assert!(
        said.contains("virtengine_data_vault_redis_fallback 0"),
        "{said}"
    );
    // The journal's size: the set-up's signed requests spent nonces.
    let journal: u64 = said.lines().last().unwrap().trim().parse().unwrap();
    assert!(journal > 0, "{said}");
    let said = bench.run("restart-and-upgrade.md", &[]);
    assert!(said.contains("audit chains verify"), "{said}");
}

async fn audit_retention_and_subject_pages_work(backend: Backend) {
    let bench = Bench::new(backend).await;
    let blob = bench
        .app
        .client(&bench.ops)
        .create_blob("veid", Some("acme"))
        .await;
    let log_key = Command::new(env!("CARGO_BIN_EXE_data-vault"))
        .env_clear()
        .env(
            "DATA_VAULT_AUDIT__LOG_KEY_FILE",
            &bench.app.config.audit.log_key_file,
        )
        .args(["audit", "log-key"])
        .output()
        .unwrap();
    assert!(log_key.status.success());
    let log_key = String::from_utf8(log_key.stdout).unwrap().trim().to_owned();
    let said = bench.run(
        "audit-integrity.md",
        &[
            ("LOG_VERIFIER_KEY", log_key),
            ("WITNESS_STATE", bench.path("org-acme.json")),
            ("SEQ", "1".to_owned()),
        ],
    );
    assert!(said.contains("first checkpoint stored"), "{said}");
    let said = bench.run("retention.md", &[("BLOB_ID", blob.clone())]);
    assert!(said.contains("DRY RUN"), "{said}");
    // "Prove a purge" lists the blob's events from the CLI: at least its creation.
    assert!(said.contains(&format!("\"blob_id\":\"{blob}\"")), "{said}");
    let said = bench.run(
        "data-subject-requests.md",
        &[("SUBJECT", "leaver".to_owned())],
    );
    assert!(said.contains("\"erased\""), "{said}");
}

/// The key pages: key-age review, tenant rotation (scheduled, then emergency), the master
/// key's commands (its configuration edits and restarts are `toml`/`text`, not run) and the
/// HMAC credential rotation, revocation and re-registration.
async fn key_pages_work(backend: Backend) {
    let bench = Bench::new(backend).await;
    bench.app.create_client("provider-daemon-7").await;
    let said = bench.run("key-age-review.md", &[]);
    assert!(said.contains("org:acme\t1\tactive"), "{said}");
    assert!(said.contains("\"keys\":\"ok\""), "{said}");
    assert!(said.contains("key_age_seconds{kind=\"master\"}"), "{said}");

    let said = bench.run(
        "key-rotation.md",
        &[
            ("TENANT", "org:acme".to_owned()),
            ("NEW_MASTER_KEY_FILE", bench.path("master-2.key")),
        ],
    );
    assert!(said.contains("version 1 -> 2, complete"), "{said}");
    assert!(said.contains("version 2 -> 3, complete"), "{said}");
    assert!(said.contains("org:acme\t2\tdestroyed"), "{said}");
    assert!(said.contains("org:acme\t3\tactive"), "{said}");
    let new_key = std::fs::read_to_string(bench.path("master-2.key")).unwrap();
    assert_eq!(new_key.trim().len(), 64);

    let said = bench.run(
        "hmac-credential-rotation.md",
        &[("CLIENT", "provider-daemon-7".to_owned())],
    );
    assert!(said.contains("retired 1 old secret(s)"), "{said}");
    assert!(said.contains("provider-daemon-7\trevoked"), "{said}");
    assert!(
        said.contains("\"principal\":\"provider-daemon-7\",\"secret\""),
        "{said}"
    );
}

on_both_backends!(
    key_pages_work,
    backup_and_restore_drill_pages_work,
    triage_pages_work,
    audit_retention_and_subject_pages_work,
);
