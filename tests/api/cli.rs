//! The real `data-vault` binary as a user drives it: admin bootstrap on the database, then
//! `blob put/get/meta/ls/rm` against the running server, and interop with Debian's `age`.

use crate::helpers::*;
use crate::on_both_backends;
use secrecy::ExposeSecret;
use std::process::{Command, Output};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_data-vault");

/// The command an operator runs with only a database URL and a key file in the environment
/// (during a restore, or against a database that may not be there).
pub(crate) fn with_database(url: &str, key_file: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_VAULT_STORAGE__DATABASE_URL", url)
        .env("DATA_VAULT_KEYS__MASTER_KEY_FILE", key_file);
    command
}

/// A command with the server's configuration in the environment, as an operator would set it.
pub(crate) fn data_vault(app: &TestApp) -> Command {
    let mut command = with_database(
        &app.config.storage.database_url,
        &app.config.keys.master_key_file,
    );
    command
        .env("DATA_VAULT_URL", app.url(""))
        .envs(object_store_env(&app.config));
    command
}

/// Writes a new age identity to `path`, as `age-keygen -o` would; returns its recipient.
pub(crate) fn write_age_identity(path: &std::path::Path) -> String {
    let (identity, recipient) = age_identity();
    std::fs::write(path, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    recipient.to_string()
}

pub(crate) fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn cli_round_trip_with_a_real_age_identity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = ok(data_vault(&app)
        .args(["admin", "client", "create", "cli-user", "--json"])
        .output()
        .unwrap());
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["principal"], "cli-user");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);

    let identity_file = app.dir.path().join("identity.txt");
    let recipient = write_age_identity(&identity_file);
    let document = app.dir.path().join("passport.pdf");
    let plaintext: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&document, &plaintext).unwrap();

    let as_user = |app: &TestApp| {
        let mut c = data_vault(app);
        c.env("DATA_VAULT_PRINCIPAL", "cli-user")
            .env("DATA_VAULT_SECRET", &secret);
        c
    };
    let put = ok(as_user(&app)
        .args([
            "blob",
            "put",
            document.to_str().unwrap(),
            "--scope",
            "veid",
            "--recipient",
            &recipient,
            "--tag",
            "case=C-9",
            "--tag",
            "kind=passport",
        ])
        .output()
        .unwrap());
    let meta: serde_json::Value = serde_json::from_str(&put).unwrap();
    let id = meta["id"].as_str().unwrap().to_owned();
    assert_eq!(meta["owner"], "cli-user");
    assert_eq!(
        meta["tags"],
        serde_json::json!({"case": "C-9", "kind": "passport"})
    );
    let untagged = as_user(&app)
        .args(["blob", "put", document.to_str().unwrap(), "--scope", "veid"])
        .args(["--recipient", &recipient, "--tag", "no-equals-sign"])
        .output()
        .unwrap();
    assert!(!untagged.status.success());
    assert!(String::from_utf8_lossy(&untagged.stderr).contains("a tag is KEY=VALUE"));

    let out = app.dir.path().join("out.pdf");
    ok(as_user(&app)
        .args([
            "blob",
            "get",
            &id,
            "--identity",
            identity_file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    assert_eq!(std::fs::read(&out).unwrap(), plaintext);

    let shown: serde_json::Value = serde_json::from_str(&ok(as_user(&app)
        .args(["blob", "meta", &id])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(shown["id"], id.as_str());
    let listed: serde_json::Value =
        serde_json::from_str(&ok(as_user(&app).args(["blob", "ls"]).output().unwrap())).unwrap();
    assert_eq!(listed["blobs"][0]["id"], id.as_str());
    ok(as_user(&app).args(["blob", "rm", &id]).output().unwrap());

    let gone = as_user(&app).args(["blob", "meta", &id]).output().unwrap();
    assert!(!gone.status.success());
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(stderr.contains("not_found"), "{stderr}");

    let wrong = data_vault(&app)
        .env("DATA_VAULT_PRINCIPAL", "cli-user")
        .env("DATA_VAULT_SECRET", "0".repeat(64))
        .args(["blob", "ls"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unauthenticated"));
    assert!(!String::from_utf8_lossy(&wrong.stderr).contains(&secret));
}

async fn admin_cli_manages_clients_and_orgs_and_reports_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ok(data_vault(&app)
        .args(["admin", "client", "create", "svc", "--json"])
        .output()
        .unwrap());
    let again = data_vault(&app)
        .args(["admin", "client", "create", "svc", "--json"])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "creating a client twice never overwrites it"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let rotated: serde_json::Value = serde_json::from_str(&ok(data_vault(&app)
        .args(["admin", "client", "rotate", "svc", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(rotated["principal"], "svc");
    let missing = data_vault(&app)
        .args(["admin", "client", "rotate", "ghost", "--json"])
        .output()
        .unwrap();
    assert!(!missing.status.success());

    ok(data_vault(&app)
        .args(["admin", "org", "create", "acme"])
        .output()
        .unwrap());
    ok(data_vault(&app)
        .args([
            "admin",
            "org",
            "member",
            "set",
            "acme",
            "svc",
            "--roles",
            "support_agent,administrator",
        ])
        .output()
        .unwrap());
    let members = ok(data_vault(&app)
        .args(["admin", "org", "member", "list", "acme"])
        .output()
        .unwrap());
    assert_eq!(members.trim(), "svc\tadministrator,support_agent");
    let bad_role = data_vault(&app)
        .args([
            "admin", "org", "member", "set", "acme", "svc", "--roles", "root",
        ])
        .output()
        .unwrap();
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role"));
    let no_org = data_vault(&app)
        .args(["admin", "org", "member", "set", "nowhere", "svc"])
        .output()
        .unwrap();
    assert!(!no_org.status.success());
    ok(data_vault(&app)
        .args(["admin", "org", "member", "remove", "acme", "svc"])
        .output()
        .unwrap());
    let members = ok(data_vault(&app)
        .args(["admin", "org", "member", "list", "acme"])
        .output()
        .unwrap());
    assert!(members.trim().is_empty());
}

/// The procedures of runbooks/retention.md and runbooks/data-subject-requests.md, run as an
/// operator and a user run them: the admin sweep (dry run, then for real), the compliance
/// report, and the signed subject export and erasure.
async fn retention_and_subject_runbooks_work_from_the_cli(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.create_client("alice").await;
    let api = app.client(&alice);
    let expiring = data_vault::time::to_rfc3339(data_vault::time::now_secs() + 2);
    let response = api
        .upload_raw(
            &age_envelope_of_size(900),
            &UploadQuery::in_scope("veid").expires_at(&expiring),
        )
        .await;
    assert_eq!(response.status(), 201);
    let expired: serde_json::Value =
        response.json::<serde_json::Value>().await.unwrap()["metadata"].clone();
    let kept = api.create_blob("market", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;

    let dry: serde_json::Value = serde_json::from_str(&ok(data_vault(&app)
        .args(["admin", "purge", "sweep", "--dry-run", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(
        dry,
        serde_json::json!({"dry_run": true, "candidates": 1, "purged": 0, "held": 0})
    );
    let human = ok(data_vault(&app)
        .args(["admin", "purge", "sweep", "--dry-run"])
        .output()
        .unwrap());
    assert!(human.starts_with("DRY RUN, nothing changed"), "{human}");
    let real = data_vault(&app)
        .args(["admin", "purge", "sweep", "--json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&real.stderr).contains("purged 1 of 1 candidates so far"));
    let real: serde_json::Value = serde_json::from_str(&ok(real)).unwrap();
    assert_eq!(real["purged"], 1);

    // The owner finds the purge proof after the blob is gone, from the CLI.
    let events = ok(data_vault(&app)
        .env("DATA_VAULT_PRINCIPAL", "alice")
        .env("DATA_VAULT_SECRET", alice.secret.as_str())
        .args([
            "audit",
            "events",
            "--blob-id",
            expired["id"].as_str().unwrap(),
        ])
        .output()
        .unwrap());
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let proofs: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "blob.purged")
        .collect();
    assert_eq!(proofs.len(), 1, "{events:?}");
    assert_eq!(
        proofs[0]["details"]["content_hash"],
        expired["content_hash"]
    );
    assert!(events.iter().any(|e| e["event_type"] == "blob.create"));
    let report: serde_json::Value = serde_json::from_str(&ok(data_vault(&app)
        .args(["admin", "compliance", "report", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(report["summary"]["total_blobs"], 1);
    assert_eq!(report["purge"]["purged_last_sweep"], 1);
    assert_eq!(report["audit"]["invalid_chains"], 0);

    let export = app.dir.path().join("alice.ndjson");
    let as_alice = |command: &mut Command| {
        command
            .env("DATA_VAULT_PRINCIPAL", "alice")
            .env("DATA_VAULT_SECRET", alice.secret.as_str());
    };
    let mut command = data_vault(&app);
    as_alice(&mut command);
    let out = command
        .args(["subject", "export", "-o"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 blob(s)"),
        "{out:?}"
    );
    ok(out);
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains(&kept));
    assert!(text.lines().last().unwrap().contains("\"type\":\"end\""));

    let mut command = data_vault(&app);
    as_alice(&mut command);
    let unconfirmed = command
        .args(["subject", "erase", "alice"])
        .output()
        .unwrap();
    assert!(!unconfirmed.status.success());
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    let mut command = data_vault(&app);
    as_alice(&mut command);
    let erased = ok(command
        .args(["subject", "erase", "alice", "--yes"])
        .output()
        .unwrap());
    assert_eq!(erased.trim(), r#"{"erased":1,"held":0}"#);
    ok(data_vault(&app).args(["audit", "verify"]).output().unwrap());
}

/// Debian's `age` is needed for interop; CI installs it, elsewhere its absence skips loudly.
pub(crate) fn age_cli_available() -> bool {
    tool_runs("age interop", "age", &["--version"])
}

async fn file_encrypted_by_the_age_cli_round_trips(backend: Backend) {
    if !age_cli_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let dir = app.dir.path();
    let key = dir.join("key.txt");
    let keygen = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let recipient = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    let plain = dir.join("ticket-attachment.txt");
    std::fs::write(
        &plain,
        "support ticket 42: screenshot of the error\n".repeat(500),
    )
    .unwrap();
    let sealed = dir.join("ticket-attachment.txt.age");
    let encrypted = Command::new("age")
        .args(["-r", &recipient, "-o"])
        .arg(&sealed)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(encrypted.status.success());

    let envelope = std::fs::read(&sealed).unwrap();
    let response = client
        .upload_raw(&envelope, &UploadQuery::in_scope("support"))
        .await;
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let id = created["metadata"]["id"].as_str().unwrap();
    let fetched = client.get_blob_raw(id, &ReadQuery::default()).await;
    assert_eq!(fetched.status(), 200);
    let fetched = fetched.bytes().await.unwrap();
    let downloaded = dir.join("downloaded.age");
    std::fs::write(&downloaded, &fetched).unwrap();
    let decrypted = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(&downloaded)
        .output()
        .unwrap();
    assert!(
        decrypted.status.success(),
        "{}",
        String::from_utf8_lossy(&decrypted.stderr)
    );
    assert_eq!(decrypted.stdout, std::fs::read(&plain).unwrap());
}

on_both_backends!(
    cli_round_trip_with_a_real_age_identity,
    admin_cli_manages_clients_and_orgs_and_reports_errors,
    file_encrypted_by_the_age_cli_round_trips,
    retention_and_subject_runbooks_work_from_the_cli,
);

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["admin", "client", "create", "--help"],
        vec!["admin", "org", "member", "set", "--help"],
        vec!["blob", "put", "--help"],
        vec!["blob", "get", "--help"],
        vec!["blob", "reshare", "--help"],
        vec!["recipients", "set", "--help"],
        vec!["recipients", "readers", "--help"],
        vec!["blob", "hold", "--help"],
        vec!["admin", "purge", "sweep", "--help"],
        vec!["admin", "compliance", "report", "--help"],
        vec!["subject", "export", "--help"],
        vec!["subject", "erase", "--help"],
        vec!["admin", "org", "list", "--help"],
        vec!["admin", "principal", "show", "--help"],
        vec!["admin", "backup", "--help"],
    ] {
        let output = Command::new(BIN).args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// `data-vault --config FILE serve` in `dir`, run to its exit (the configurations it is given
/// are refused at start-up).
fn serve_with_config_file(dir: &std::path::Path, config: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn unknown_config_keys_and_bad_values_are_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vault.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nlisen = \"typo\"\n",
    )
    .unwrap();
    let output = serve_with_config_file(dir.path(), &config);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("lisen"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = Command::new(BIN)
        .arg("serve")
        .env("DATA_VAULT_SERVER__LISTEN", "not-an-address")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("server.listen"));

    let output = Command::new(BIN)
        .arg("serve")
        .env(
            "DATA_VAULT_STORAGE__DATABASE_URL",
            "postgres://127.0.0.1:1/none",
        )
        .env("DATA_VAULT_KEYS__MASTER_KEY", "abc")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot open the database"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let missing = dir.path().join("absent.toml");
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&missing)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[test]
fn unusable_rate_limits_are_refused_at_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vault.toml");
    // Each once panicked at start-up (a zero or negative rate) or left the scope unlimited
    // in-process while Redis refused everything (a zero burst).
    for (body, key) in [
        (
            "[rate_limit.scopes.veid]\nper_second = 0.0\nburst = 5\n",
            "rate_limit.scopes.veid.per_second",
        ),
        (
            "[rate_limit.scopes.veid]\nper_second = -1.0\nburst = 5\n",
            "rate_limit.scopes.veid.per_second",
        ),
        (
            "[rate_limit.scopes.veid]\nper_second = nan\nburst = 5\n",
            "rate_limit.scopes.veid.per_second",
        ),
        (
            "[rate_limit.scopes.veid]\nper_second = 5.0\nburst = 0\n",
            "rate_limit.scopes.veid.burst",
        ),
        (
            "[rate_limit]\nprincipal_per_second = inf\n",
            "rate_limit.principal_per_second",
        ),
        ("[rate_limit]\nip_burst = 0\n", "rate_limit.ip_burst"),
    ] {
        std::fs::write(&config, body).unwrap();
        let output = serve_with_config_file(dir.path(), &config);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{body}: {stderr}");
        assert!(stderr.contains(key), "{body}: {stderr}");
        assert!(!stderr.contains("panicked"), "{body}: {stderr}");
        assert!(
            !dir.path().join("data").exists(),
            "a refused configuration creates nothing"
        );
    }
}

/// `data-vault ... | head`: once the reader has closed the pipe, the command stops printing
/// and exits 0 without a word (no "failed printing to stdout" panic), both for a command on
/// the database and for a client of the server. The read end is closed before the command
/// starts, so its first line already meets the closed pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_reader_went_away_exits_quietly() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("svc").await;
    app.client(&creds).create_blob("veid", None).await;
    let listing = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        data_vault(&app)
            .env("DATA_VAULT_PRINCIPAL", &creds.principal)
            .env("DATA_VAULT_SECRET", creds.secret.as_str())
            .args(args)
            .stdout(writer)
            .output()
            .unwrap()
    };
    for args in [&["admin", "org", "list"][..], &["blob", "ls"]] {
        let output = listing(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}
