//! Operating the vault (DESIGN §20): commands that never create a database or a key behind
//! the operator's back, the look-ups that triage a 401 or 403 without SQL, and the log lines
//! that say who failed and why.

use crate::cli::{data_vault, ok, with_database, BIN};
use crate::helpers::*;
use crate::on_both_backends;
use serde_json::Value;
use std::process::{Command, Output};

fn failed_saying(output: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "the command must fail; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains(needle),
        "stderr must say {needle:?}: {stderr}"
    );
    stderr
}

#[test]
fn commands_refuse_a_missing_sqlite_database_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("vault.db");
    let key = dir.path().join("data").join("master.key");
    let url = format!("sqlite://{}", db.display());
    for args in [
        vec!["audit", "verify"],
        vec!["admin", "client", "create", "svc", "--json"],
        vec!["admin", "org", "list"],
        vec!["admin", "client", "list"],
    ] {
        let output = with_database(&url, &key).args(&args).output().unwrap();
        failed_saying(&output, &db.display().to_string());
        assert!(!db.exists(), "{args:?} created a database");
        assert!(!key.exists(), "{args:?} generated a master key");
    }
    // Run from a directory without a vault, the default `./data/vault.db` is refused too.
    let output = Command::new(BIN)
        .env_clear()
        .current_dir(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    failed_saying(&output, "no vault database at ./data/vault.db");
    assert!(!dir.path().join("data").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_refuse_a_postgres_database_without_a_vault() {
    if postgres_url().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    let (url, name) = fresh_postgres_database().await;
    let output = with_database(&url, &key)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    failed_saying(&output, "holds no vault schema");
    let output = with_database(&url, &key)
        .args(["admin", "client", "create", "svc"])
        .output()
        .unwrap();
    failed_saying(&output, "holds no vault schema");
    let mut missing = url::Url::parse(&url).unwrap();
    missing.set_path(&format!("/{name}_gone"));
    let output = with_database(missing.as_str(), &key)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    failed_saying(&output, "cannot open the vault database");
    drop_postgres_database(name);
}

async fn admin_commands_never_generate_a_master_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let elsewhere = app.dir.path().join("not-the-server").join("master.key");
    let output = data_vault(&app)
        .env("DATA_VAULT_KEYS__MASTER_KEY_FILE", &elsewhere)
        .args(["admin", "client", "create", "svc", "--json"])
        .output()
        .unwrap();
    failed_saying(&output, "no master key file at");
    assert!(!elsewhere.exists(), "a new master key was written");
    assert!(output.stdout.is_empty(), "no secret may be printed");
    // With the server's key, the same command works.
    ok(data_vault(&app)
        .args(["admin", "client", "create", "svc", "--json"])
        .output()
        .unwrap());
}

async fn audit_verify_of_an_org_without_a_chain_fails(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_org("acme", &[("svc", "administrator")]).await;
    let verified = ok(data_vault(&app)
        .args(["audit", "verify", "--org", "acme"])
        .output()
        .unwrap());
    assert!(verified.contains("org:acme: valid"), "{verified}");
    let output = data_vault(&app)
        .args(["audit", "verify", "--org", "nosuch"])
        .output()
        .unwrap();
    failed_saying(&output, "org nosuch has no audit chain");
}

async fn look_ups_show_orgs_and_a_principals_standing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let svc = app.create_client("svc").await;
    app.create_org(
        "acme",
        &[("svc", "administrator,support_agent"), ("bob", "")],
    )
    .await;
    app.create_org("globex", &[("svc", "")]).await;
    let (_, recipient) = age_identity();
    let recipient = recipient.to_string();
    app.client(&svc).publish_recipients(&[&recipient]).await;

    let orgs: Value = serde_json::from_str(&ok(data_vault(&app)
        .args(["admin", "org", "list", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    let listed: Vec<(&str, i64)> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["org"].as_str().unwrap(), o["members"].as_i64().unwrap()))
        .collect();
    assert_eq!(listed, [("acme", 2), ("globex", 1)]);

    let shown: Value = serde_json::from_str(&ok(data_vault(&app)
        .args(["admin", "principal", "show", "svc", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(shown["principal"], "svc");
    assert_eq!(
        shown["orgs"],
        serde_json::json!([
            {"org": "acme", "roles": ["administrator", "support_agent"]},
            {"org": "globex", "roles": []},
        ])
    );
    assert_eq!(shown["client"]["revoked"], false);
    assert_eq!(shown["client"]["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(shown["recipients"], serde_json::json!([recipient]));
    assert_eq!(shown["blocked"], false);

    // A name no client has: no client, no orgs, which is the finding for a 401.
    let ghost: Value = serde_json::from_str(&ok(data_vault(&app)
        .args(["admin", "principal", "show", "ghost", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(ghost["client"], Value::Null);
    assert_eq!(ghost["orgs"], serde_json::json!([]));
    let text = ok(data_vault(&app)
        .args(["admin", "principal", "show", "svc"])
        .output()
        .unwrap());
    assert!(
        text.contains("acme\t[administrator,support_agent]"),
        "{text}"
    );
}

/// A request signed with the wrong secret, claiming `principal`.
async fn send_badly_signed(addr: std::net::SocketAddr, principal: &str) -> reqwest::Response {
    let wrong = Credentials {
        principal: principal.to_owned(),
        secret: zeroize::Zeroizing::new("00".repeat(32)),
    };
    let server = ServerProcessAddr(addr);
    server
        .client(&wrong)
        .list_blobs(&ListQuery::default())
        .await
}

/// Just enough of a server to sign requests to it.
struct ServerProcessAddr(std::net::SocketAddr);

impl ServerProcessAddr {
    fn client(&self, creds: &Credentials) -> Api {
        Api::from(
            data_vault::cli::VaultClient::new(
                &format!("http://{}", self.0),
                data_vault::cli::ClientAuth::Hmac {
                    principal: creds.principal.clone(),
                    secret: creds.secret.clone(),
                },
            )
            .unwrap(),
        )
    }
}

async fn a_401_is_logged_with_the_claimed_principal_and_the_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client("svc").await;
    let server = ServerProcess::start(&app);
    let response = send_badly_signed(server.addr, "svc").await;
    assert_eq!(response.status(), 401);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let lines = server.wait_for_log("authentication failed", 1).await;
    let line = &lines[0];
    for needle in [
        "claimed_principal=svc",
        "reason=\"bad_signature\"",
        &request_id,
    ] {
        assert!(line.contains(needle), "{needle} missing from: {line}");
    }
    let request_line = server.wait_for_log("outcome=\"unauthenticated\"", 1).await;
    assert!(
        request_line
            .iter()
            .any(|l| l.contains("principal=\"svc\"") && l.contains(&request_id)),
        "{request_line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_log_has_one_request_line_with_id_principal_route_and_outcome() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("svc").await;
    let server = ServerProcess::start_with(&app, &[("DATA_VAULT_LOG__FORMAT", "json")]);
    let response = server
        .client(&creds)
        .list_blobs(&ListQuery::default())
        .await;
    assert_eq!(response.status(), 200);
    let ok_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let refused = send_badly_signed(server.addr, "ghost").await;
    let refused_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let request_line = |id: &str| -> Value {
        for _ in 0..50 {
            for line in server.log_lines_with(id) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if value["message"] == "request" {
                    return value;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no request line for {id}");
    };
    let line = request_line(&ok_id);
    assert_eq!(line["route"], "/api/v1/vault/blobs");
    assert_eq!(line["principal"], "svc");
    assert_eq!(line["outcome"], "ok");
    assert_eq!(line["status"], 200);
    assert_eq!(line["spans"][0]["request_id"], ok_id.as_str());
    let line = request_line(&refused_id);
    assert_eq!(line["principal"], "ghost");
    assert_eq!(line["outcome"], "unauthenticated");
    assert_eq!(line["status"], 401);
    // Every line the server wrote is one JSON object.
    for line in server.log_lines_with("") {
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

async fn a_timed_out_request_is_logged_at_info_with_its_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let server =
        ServerProcess::start_with(&app, &[("DATA_VAULT_SERVER__REQUEST_TIMEOUT_SECS", "1")]);
    let client = server.client(&creds);
    let id = client.create_blob("veid", None).await;
    // The read's audit append waits on the locked database longer than the time limit.
    let lock = crate::commit_queue::LockedDatabase::take(&app).await;
    let response = client.get_blob(&id, &ReadQuery::default()).await;
    lock.release().await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(error_of(response).await, (503, "unavailable".to_owned()));
    let lines = server.wait_for_log(&request_id, 2).await;
    let line = lines
        .iter()
        .find(|l| l.contains("latency_ms="))
        .unwrap_or_else(|| panic!("no request line: {lines:?}"));
    for needle in [
        " INFO ",
        "route=\"/api/v1/vault/blobs/{id}\"",
        "status=503",
        "outcome=\"unavailable\"",
        // Authentication never answered for it: the principal it claimed.
        "principal=\"svc\"",
    ] {
        assert!(line.contains(needle), "{needle} missing from: {line}");
    }
}

/// The probes are logged at debug, so a server at `info` writes no line for them, while a
/// path no route takes is an API request like any other and is logged at info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_health_probes_are_left_out_of_the_info_log() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let server = ServerProcess::start(&app);
    let anonymous = server.anonymous();
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(anonymous.get(probe).await.status(), 200, "{probe}");
    }
    assert_eq!(anonymous.get("/no/such/route").await.status(), 404);
    // Lines are written in the order the answers left, so once the 404's line is there the
    // probes' would be too.
    let lines = server.wait_for_log("route=\"unmatched\"", 1).await;
    assert!(
        lines[0].contains(" INFO ") && lines[0].contains("outcome=\"not_found\""),
        "{lines:?}"
    );
    assert_eq!(server.log_lines_with("route=\"/healthz\"").len(), 0);
    assert_eq!(server.log_lines_with("route=\"/readyz\"").len(), 0);
}

on_both_backends!(a_timed_out_request_is_logged_at_info_with_its_route);

/// DESIGN §20: PostgreSQL refusing connections (`ALLOW_CONNECTIONS false`, existing sessions
/// ended) answers 503 `unavailable` within the request time limit, never 500, and service
/// comes back by itself once it accepts connections again. On the test's own database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_connections_is_503_then_recovers_by_itself() {
    if postgres_url().is_none() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Postgres, |c| c.server.request_timeout_secs = 10).await;
    let creds = app.create_client("svc").await;
    let client = app.client(&creds);
    assert_eq!(client.list_blobs(&ListQuery::default()).await.status(), 200);
    let name = url::Url::parse(&app.config.storage.database_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = |statement: String| async move {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&postgres_url().unwrap())
            .await
            .unwrap();
        sqlx::query(&statement).execute(&mut conn).await.unwrap();
    };
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .await;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let (status, code) = error_of(client.list_blobs(&ListQuery::default()).await).await;
        assert_eq!((status, code.as_str()), (503, "unavailable"));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
    let upload = client
        .upload_raw(&age_envelope_of_size(600), &UploadQuery::in_scope("veid"))
        .await;
    assert_eq!(error_of(upload).await, (503, "unavailable".to_owned()));

    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let mut recovered = false;
    for _ in 0..50 {
        if client.list_blobs(&ListQuery::default()).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "service returns by itself once the database accepts connections"
    );
}

/// `blob` commands reach the server of the configuration they are given (`server.listen`),
/// like the admin commands do, when neither `--url` nor `DATA_VAULT_URL` says otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_reach_the_configured_server_listen_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let creds = app.create_client("svc").await;
    let config = app.dir.path().join("client.toml");
    std::fs::write(&config, format!("[server]\nlisten = \"{}\"\n", app.addr)).unwrap();
    let run = |config: &std::path::Path| {
        Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_VAULT_PRINCIPAL", &creds.principal)
            .env("DATA_VAULT_SECRET", creds.secret.as_str())
            .arg("--config")
            .arg(config)
            .args(["blob", "ls"])
            .output()
            .unwrap()
    };
    ok(run(&config));
    // A configuration naming another address is followed too (and nothing listens there).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere = closed.local_addr().unwrap();
    drop(closed);
    let other = app.dir.path().join("other.toml");
    std::fs::write(&other, format!("[server]\nlisten = \"{elsewhere}\"\n")).unwrap();
    let output = run(&other);
    failed_saying(&output, &elsewhere.port().to_string());
}

on_both_backends!(
    admin_commands_never_generate_a_master_key,
    audit_verify_of_an_org_without_a_chain_fails,
    look_ups_show_orgs_and_a_principals_standing,
    a_401_is_logged_with_the_claimed_principal_and_the_reason,
);
