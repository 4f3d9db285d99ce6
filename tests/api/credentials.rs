//! Credentials (DESIGN §15): retiring and revoking HMAC client secrets and listing them with
//! the admin CLI, and blocking wallet principals. Revocations and blocks are made by the CLI,
//! another process, and must reach every replica (separate server processes on one database)
//! within 5 s: tests poll for that, they never sleep a fixed time.

use crate::cli::{data_vault, ok};
use crate::helpers::*;
use crate::on_both_backends;
use data_vault::cli::{ClientAuth, VaultClient};
use data_vault::domain::ClientName;
use data_vault::service::Caller;
use data_vault::startup::open_vault_at;
use data_vault::time::{Clock, ManualClock, SystemClock};
use serde_json::Value;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "1f0c3b0d8ec5d2b6a4f1e8c7b9a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0";
const OTHER_KEY: &str = "2a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
/// What DESIGN §15 allows a revocation or block to take on every replica.
const PROPAGATION: Duration = Duration::from_secs(5);

fn address(key: &str) -> String {
    data_vault_auth::WalletSigner::from_private_key_hex(key, "virtengine")
        .unwrap()
        .address()
        .to_owned()
}

fn wallet_at(base: &str, key: &str) -> Api {
    Api::from(VaultClient::new(base, ClientAuth::wallet(key, "virtengine").unwrap()).unwrap())
}

/// Runs `data-vault admin ARGS...` against the app's database.
fn admin(app: &TestApp, args: &[&str]) -> Output {
    data_vault(app).arg("admin").args(args).output().unwrap()
}

/// The command failed, and its stderr says `needle`.
fn refused(output: Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected a failure; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}

/// Status and JSON body of a listing by `api`.
async fn list_status(api: &Api) -> (u16, Value) {
    let response = api.list_blobs(&ListQuery::default()).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `api` until a listing answers `status`, failing after `PROPAGATION` from `since`;
/// returns the last body.
async fn until_status(api: &Api, status: u16, since: Instant) -> Value {
    loop {
        let (got, body) = list_status(api).await;
        if got == status {
            return body;
        }
        assert!(
            since.elapsed() < PROPAGATION,
            "still {got} after {:?}, expected {status}: {body}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events of one type on the `system` chain.
async fn system_events(app: &TestApp, event_type: &str) -> i64 {
    app.count_rows(&format!(
        "audit_events WHERE chain = 'system' AND event_type = '{event_type}'"
    ))
    .await
}

fn creds_of(created: &str) -> Credentials {
    let created: Value = serde_json::from_str(created).unwrap();
    Credentials {
        principal: created["principal"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned().into(),
    }
}

async fn retire_keeps_only_the_newest_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let replica = ServerProcess::start(&app);
    let old = creds_of(&ok(admin(&app, &["client", "create", "svc", "--json"])));
    let new = creds_of(&ok(admin(&app, &["client", "rotate", "svc", "--json"])));
    for creds in [&old, &new] {
        assert_eq!(list_status(&replica.client(creds)).await.0, 200);
    }

    let since = Instant::now();
    let said = ok(admin(&app, &["client", "retire", "svc"]));
    assert!(said.contains("retired 1 old secret(s) of svc"), "{said}");
    let refused_body = until_status(&replica.client(&old), 401, since).await;
    assert_eq!(refused_body["code"], "unauthenticated");
    assert_eq!(list_status(&replica.client(&new)).await.0, 200);
    assert_eq!(list_status(&app.client(&new)).await.0, 200);
    assert_eq!(system_events(&app, "client.retire").await, 1);

    // With one secret left there is nothing to retire: said plainly, nothing recorded.
    refused(
        admin(&app, &["client", "retire", "svc"]),
        "has only one secret",
    );
    refused(
        admin(&app, &["client", "retire", "ghost"]),
        "does not exist",
    );
    assert_eq!(system_events(&app, "client.retire").await, 1);
    assert_eq!(list_status(&replica.client(&new)).await.0, 200);
}

async fn a_revoked_client_is_refused_by_every_replica_within_five_seconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let first = ServerProcess::start(&app);
    let second = ServerProcess::start(&app);
    // Both replicas have the client's secrets cached.
    for replica in [&first, &second] {
        assert_eq!(list_status(&replica.client(&creds)).await.0, 200);
    }
    let unknown = Credentials {
        principal: "never-registered".into(),
        secret: creds.secret.clone(),
    };
    let (_, unknown_body) = list_status(&first.client(&unknown)).await;

    let since = Instant::now();
    let said = ok(admin(&app, &["client", "revoke", "svc"]));
    assert!(said.contains("revoked client svc"), "{said}");
    for replica in [&first, &second] {
        let body = until_status(&replica.client(&creds), 401, since).await;
        // Exactly the answer an unknown name gets.
        assert_eq!(
            (&body["code"], &body["error"]),
            (&unknown_body["code"], &unknown_body["error"])
        );
    }
    assert_eq!(list_status(&app.client(&creds)).await.0, 401);
    assert_eq!(
        app.count_rows("client_secrets WHERE client = 'svc'").await,
        0
    );
    assert_eq!(system_events(&app, "client.revoke").await, 1);

    // Final: no new secret under the name, and a second revoke changes nothing.
    refused(admin(&app, &["client", "rotate", "svc"]), "is revoked");
    refused(admin(&app, &["client", "create", "svc"]), "is revoked");
    refused(admin(&app, &["client", "revoke", "svc"]), "is revoked");
    refused(admin(&app, &["client", "retire", "svc"]), "is revoked");
    refused(
        admin(&app, &["client", "revoke", "ghost"]),
        "does not exist",
    );
    assert_eq!(system_events(&app, "client.revoke").await, 1);
    assert_eq!(app.count_rows("client_secrets").await, 0);

    // New credentials are a deliberate delete and create; the old secret stays dead.
    ok(admin(&app, &["client", "delete", "svc"]));
    let fresh = creds_of(&ok(admin(&app, &["client", "create", "svc", "--json"])));
    assert_eq!(list_status(&first.client(&fresh)).await.0, 200);
    assert_eq!(list_status(&first.client(&creds)).await.0, 401);
}

async fn client_list_shows_secret_ages_from_the_vault_clock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = SystemClock.now_secs();
    let day = 86_400;
    let clock = Arc::new(ManualClock::at_millis((now - 100 * day) * 1000));
    let vault = open_vault_at(&app.config, clock.clone()).await.unwrap();
    let admin_caller = Caller::local_admin().unwrap();
    let name = |n: &str| ClientName::parse(n).unwrap();
    vault
        .create_client(&admin_caller, &name("old-svc"))
        .await
        .unwrap();
    clock.set_millis((now - 10 * day) * 1000);
    vault
        .rotate_client(&admin_caller, &name("old-svc"))
        .await
        .unwrap();
    vault
        .create_client(&admin_caller, &name("gone"))
        .await
        .unwrap();
    vault
        .revoke_client(&admin_caller, &name("gone"))
        .await
        .unwrap();
    clock.set_millis(now * 1000);
    vault
        .create_client(&admin_caller, &name("new-svc"))
        .await
        .unwrap();

    let listed: Value =
        serde_json::from_str(&ok(admin(&app, &["client", "list", "--json"]))).unwrap();
    let rfc3339 = |secs: i64| data_vault::time::to_rfc3339(secs);
    assert_eq!(
        listed,
        serde_json::json!([
            {"principal": "gone", "secrets": [], "revoked": true},
            {"principal": "new-svc", "secrets": [
                {"created_at": rfc3339(now), "age_days": 0}], "revoked": false},
            {"principal": "old-svc", "secrets": [
                {"created_at": rfc3339(now - 10 * day), "age_days": 10},
                {"created_at": rfc3339(now - 100 * day), "age_days": 100}], "revoked": false},
        ])
    );
    // Ages are the vault clock's: a vault whose clock is 5 days on sees them 5 days older.
    clock.set_millis((now + 5 * day) * 1000);
    let later = vault.list_clients(&admin_caller).await.unwrap();
    let ages: Vec<i64> = later[2].secrets.iter().map(|s| s.age_days).collect();
    assert_eq!(ages, [15, 105]);

    let table = ok(admin(&app, &["client", "list"]));
    assert!(
        table.lines().any(|l| l.starts_with("gone\trevoked")),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with("old-svc\tactive")),
        "{table}"
    );
    assert_eq!(system_events(&app, "client.list").await, 3);
}

async fn a_blocked_wallet_is_refused_like_a_bad_signature_until_unblocked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = ServerProcess::start(&app);
    let second = ServerProcess::start(&app);
    let base = |p: &ServerProcess| format!("http://{}", p.addr);
    let blocked = address(KEY);
    for replica in [&first, &second] {
        assert_eq!(list_status(&wallet_at(&base(replica), KEY)).await.0, 200);
    }

    let since = Instant::now();
    let said = ok(admin(
        &app,
        &[
            "principal",
            "block",
            &blocked,
            "--reason",
            "stolen laptop, ticket 77",
        ],
    ));
    assert!(said.contains(&format!("blocked {blocked}")), "{said}");
    for replica in [&first, &second] {
        let body = until_status(&wallet_at(&base(replica), KEY), 401, since).await;
        // The answer of a bad signature: nothing tells the caller it is blocked.
        assert_eq!(body["code"], "unauthenticated");
        assert_eq!(body["error"], "signature does not verify");
        // Another wallet is not affected.
        assert_eq!(
            list_status(&wallet_at(&base(replica), OTHER_KEY)).await.0,
            200
        );
    }
    // The operator's log says why, and names the address.
    assert!(
        first
            .log_lines_with("wallet principal is blocked")
            .iter()
            .any(|l| l.contains(&blocked)),
        "no log line names the block"
    );
    let events = app
        .count_rows(&format!(
            "audit_events WHERE chain = 'system' AND event_type = 'principal.block' \
             AND owner = '{blocked}' AND reason = 'stolen laptop, ticket 77'"
        ))
        .await;
    assert_eq!(events, 1);
    refused(
        admin(&app, &["principal", "block", &blocked]),
        "already blocked",
    );

    let since = Instant::now();
    ok(admin(&app, &["principal", "unblock", &blocked]));
    for replica in [&first, &second] {
        until_status(&wallet_at(&base(replica), KEY), 200, since).await;
    }
    assert_eq!(system_events(&app, "principal.unblock").await, 1);
    refused(
        admin(&app, &["principal", "unblock", &blocked]),
        "is not blocked",
    );
    assert_eq!(system_events(&app, "principal.block").await, 1);
    assert_eq!(system_events(&app, "principal.unblock").await, 1);
}

async fn bad_principal_input_is_refused_with_nothing_changed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other_prefix = data_vault_auth::WalletSigner::from_private_key_hex(KEY, "cosmos")
        .unwrap()
        .address()
        .to_owned();
    refused(
        admin(&app, &["principal", "block", &other_prefix]),
        "configured prefix \"virtengine\"",
    );
    refused(
        admin(&app, &["principal", "block", "svc"]),
        "not a wallet address",
    );
    refused(
        admin(&app, &["principal", "block", &address(KEY).to_uppercase()]),
        "not a wallet address",
    );
    refused(
        admin(
            &app,
            &["principal", "block", &address(KEY), "--reason", "a\nb"],
        ),
        "--reason must be",
    );
    refused(
        admin(&app, &["principal", "unblock", "nope"]),
        "not a wallet address",
    );
    assert_eq!(app.count_rows("blocked_principals").await, 0);
    assert_eq!(
        app.count_rows("audit_events WHERE event_type LIKE 'principal.%'")
            .await,
        0
    );
}

on_both_backends!(
    retire_keeps_only_the_newest_secret,
    a_revoked_client_is_refused_by_every_replica_within_five_seconds,
    client_list_shows_secret_ages_from_the_vault_clock,
    a_blocked_wallet_is_refused_like_a_bad_signature_until_unblocked,
    bad_principal_input_is_refused_with_nothing_changed,
);
