//! The verifiable audit log (DESIGN §16): checkpoints and proofs checked by an independent
//! implementation (Node's crypto, `tlog/verify.js`), `X-VE-Audit-Event` on audited
//! responses, the witness against an attacker with database access, the periodic verifier,
//! and two replicas appending to one tree.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault::audit::note::{Checkpoint, NoteVerifier};
use data_vault::audit::{chain, tree, NewEvent};
use data_vault::store::BatchJob;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_data-vault");

/// Appends events to `chain` through the store's group-commit path, one batch per size.
async fn append_batches(app: &TestApp, chain: &str, batches: &[usize]) {
    let store = data_vault::store::connect(&app.config.storage.database_url, 2)
        .await
        .unwrap();
    for (b, &n) in batches.iter().enumerate() {
        let events = (0..n)
            .map(|i| {
                NewEvent::new(
                    chain.to_owned(),
                    "test.event",
                    "alice",
                    "hmac",
                    &format!("req-{b}-{i}"),
                    1_700_000_000_000,
                )
            })
            .collect();
        let job = BatchJob {
            events,
            ..BatchJob::default()
        };
        store.commit_batch(&[job], 1_700_000_000_000).await.unwrap();
    }
}

/// The stored events of a chain, in order.
async fn events_of(app: &TestApp, chain: &str) -> Vec<data_vault::audit::AuditEvent> {
    let store = data_vault::store::connect(&app.config.storage.database_url, 2)
        .await
        .unwrap();
    store.audit_chain_page(chain, 0, 100_000).await.unwrap()
}

/// Runs the independent verifier on `input`; returns its report.
fn node_verify(input: &Value) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/tlog/verify.js");
    let mut child = Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is required for the independent verifier");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "independent verifier: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

async fn log_key(api: &Api) -> String {
    json_with_status(api.log_key().await, 200).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn size_of(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

async fn proofs_and_checkpoints_verify_with_an_independent_implementation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let chain = "owner:alice";
    let key = log_key(&alice).await;
    let mut checkpoints = Vec::new();
    // Batches of many sizes, so that the trees seen cross powers of two in every way.
    for batch in [1, 1, 2, 3, 5, 8, 13, 1, 30, 64, 1, 100] {
        append_batches(&app, chain, &[batch]).await;
        checkpoints.push(alice.checkpoint_text(chain).await);
    }
    let sizes: Vec<u64> = checkpoints.iter().map(|c| size_of(c)).collect();
    let last = *sizes.last().unwrap();
    let mut consistency = Vec::new();
    for (i, from) in sizes.iter().enumerate() {
        for to in &sizes[i..] {
            let (f, t) = (from.to_string(), to.to_string());
            let query = [("chain", chain), ("from", f.as_str()), ("to", t.as_str())];
            consistency.push(json_with_status(alice.consistency_proof(&query).await, 200).await);
        }
    }
    let mut inclusion = Vec::new();
    for size in [sizes[3], sizes[8], last] {
        for seq in 1..=size {
            let (s, n) = (seq.to_string(), size.to_string());
            let query = [
                ("chain", chain),
                ("seq", s.as_str()),
                ("tree_size", n.as_str()),
            ];
            inclusion.push(json_with_status(alice.inclusion_proof(&query).await, 200).await);
        }
    }
    let leaves: Vec<String> = events_of(&app, chain)
        .await
        .into_iter()
        .map(|e| e.hash)
        .collect();
    assert_eq!(leaves.len() as u64, last);
    // Every event hash the proofs name is the stored one.
    for proof in &inclusion {
        let index = usize::try_from(proof["leaf_index"].as_u64().unwrap()).unwrap();
        assert_eq!(proof["event_hash"], leaves[index]);
    }
    let report = node_verify(&json!({
        "key": key,
        "leaves": leaves,
        "checkpoints": checkpoints,
        "inclusion": inclusion,
        "consistency": consistency,
    }));
    assert!(report.starts_with("ok 12 checkpoints"), "{report}");
}

async fn bad_proof_requests_are_refused_and_visibility_is_that_of_verify(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.auth.platform_admins = vec!["root".into()];
    })
    .await;
    let alice = app.client(&app.create_client("alice").await);
    let bob = app.client(&app.create_client("bob").await);
    let root = app.client(&app.create_client("root").await);
    let moderator = app.client(&app.create_client("moderator").await);
    app.create_org("acme", &[("alice", ""), ("moderator", "moderator")])
        .await;
    append_batches(&app, "owner:alice", &[5]).await;
    let size = size_of(&alice.checkpoint_text("owner:alice").await);

    let bad: &[&[(&str, &str)]] = &[
        &[("chain", "nonsense"), ("seq", "1")],
        &[("chain", "org:ACME"), ("seq", "1")],
        &[("seq", "1")],
        &[("chain", "owner:alice")],
        &[("chain", "owner:alice"), ("seq", "0")],
        &[("chain", "owner:alice"), ("seq", "-1")],
        &[("chain", "owner:alice"), ("seq", "99")],
        &[("chain", "owner:alice"), ("seq", "1"), ("tree_size", "99")],
        &[("chain", "owner:alice"), ("seq", "5"), ("tree_size", "4")],
        &[("chain", "owner:alice"), ("seq", "1"), ("extra", "1")],
    ];
    for query in bad {
        let response = alice.inclusion_proof(query).await;
        let body = json_with_status(response, 400).await;
        assert_eq!(body["code"], "bad_request", "{query:?}: {body}");
    }
    let bad: &[&[(&str, &str)]] = &[
        &[("chain", "owner:alice"), ("from", "3"), ("to", "2")],
        &[("chain", "owner:alice"), ("from", "0"), ("to", "2")],
        &[("chain", "owner:alice"), ("from", "1"), ("to", "99")],
        &[("chain", "owner:alice"), ("from", "99")],
        &[("chain", "owner:alice")],
        &[("chain", "system:x"), ("from", "1")],
    ];
    for query in bad {
        let body = json_with_status(alice.consistency_proof(query).await, 400).await;
        assert_eq!(body["code"], "bad_request", "{query:?}: {body}");
    }
    let body = json_with_status(alice.checkpoint("owner:Alice").await, 400).await;
    assert_eq!(body["code"], "bad_request");
    assert!(size >= 5);

    // As for verify: a principal's own chain, an org's for its auditors, system for admins.
    let response = bob.checkpoint("owner:alice").await;
    let header = response.headers()["x-ve-audit-event"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(header.starts_with("owner:bob/"), "{header}");
    json_with_status(response, 403).await;
    let query = [("chain", "owner:alice"), ("from", "1")];
    json_with_status(bob.consistency_proof(&query).await, 403).await;
    json_with_status(alice.checkpoint("org:acme").await, 403).await;
    assert_eq!(
        moderator.checkpoint("org:acme").await.status().as_u16(),
        200
    );
    json_with_status(alice.checkpoint("system").await, 403).await;
    assert_eq!(root.checkpoint("system").await.status().as_u16(), 200);
    assert_eq!(root.checkpoint("org:acme").await.status().as_u16(), 200);
    let body = json_with_status(root.checkpoint("org:ghost").await, 404).await;
    assert_eq!(body["code"], "not_found");
    // The denial was audited, on bob's own chain.
    let verify = bob.audit_verify_json(None).await;
    assert_eq!(verify["valid"], true, "{verify}");
}

/// The `chain/seq` of `X-VE-Audit-Event`.
fn audit_event(response: &reqwest::Response) -> (String, u64) {
    let value = response
        .headers()
        .get("x-ve-audit-event")
        .unwrap_or_else(|| panic!("no X-VE-Audit-Event on {}", response.url()))
        .to_str()
        .unwrap();
    let (chain, seq) = value.rsplit_once('/').unwrap();
    (chain.to_owned(), seq.parse().unwrap())
}

async fn every_audited_response_names_its_event_and_it_can_be_proved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let bob = app.client(&app.create_client("bob").await);
    let admin = app.client(&app.create_client("admin").await);
    app.create_org("acme", &[("alice", ""), ("admin", "administrator")])
        .await;
    let id = alice.create_blob("market", Some("acme")).await;

    let read = alice.get_blob(&id, &ReadQuery::default()).await;
    assert_eq!(read.status().as_u16(), 200);
    let (chain, seq) = audit_event(&read);
    assert_eq!(chain, "org:acme");
    // A denial names the requester's own record, never the blob's tenant chain.
    let denied = bob.get_blob(&id, &ReadQuery::default()).await;
    assert_eq!(denied.status().as_u16(), 403);
    assert_eq!(audit_event(&denied).0, "owner:bob");
    let missing = bob
        .get_blob(
            "00000000-0000-4000-8000-000000000000",
            &ReadQuery::default(),
        )
        .await;
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(audit_event(&missing).0, "owner:bob");
    // An org change, committed outside the group-commit queue, names its event too.
    let member = admin.put_member("acme", "bob", &["moderator"]).await;
    assert_eq!(member.status().as_u16(), 200);
    assert_eq!(audit_event(&member).0, "org:acme");
    let gone = admin.delete_member("acme", "bob").await;
    let (org_chain, org_seq) = audit_event(&gone);
    assert_eq!(org_chain, "org:acme");
    assert!(org_seq > seq);
    // Requests that record nothing carry no header.
    let listing = alice.list_blobs(&ListQuery::default()).await;
    assert!(listing.headers().get("x-ve-audit-event").is_none());

    // The header is enough to prove the access was logged, in the signed tree.
    let verifier = NoteVerifier::parse(&log_key(&admin).await).unwrap();
    let note = admin.checkpoint_text("org:acme").await;
    let checkpoint = Checkpoint::parse(verifier.open(&note).unwrap()).unwrap();
    let (s, n) = (seq.to_string(), checkpoint.size.to_string());
    let query = [
        ("chain", "org:acme"),
        ("seq", s.as_str()),
        ("tree_size", n.as_str()),
    ];
    let proof = json_with_status(admin.inclusion_proof(&query).await, 200).await;
    let event = events_of(&app, "org:acme").await[usize::try_from(seq - 1).unwrap()].clone();
    assert_eq!(event.event_type, "blob.read");
    assert_eq!(proof["event_hash"], event.hash);
    let mut input = [0u8; 32];
    hex::decode_to_slice(&event.hash, &mut input).unwrap();
    let path = hashes_of(&proof);
    tree::verify_inclusion(
        seq - 1,
        checkpoint.size,
        &tree::leaf_hash(&input),
        &path,
        &checkpoint.root,
    )
    .unwrap();
}

/// `data-vault audit witness` as alice, against `app`.
fn witness(app: &TestApp, creds: &Credentials, chain: &str, state: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(["audit", "witness", "--chain", chain, "--state"])
        .arg(state)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_VAULT_URL", app.url(""))
        .env("DATA_VAULT_PRINCIPAL", &creds.principal)
        .env("DATA_VAULT_SECRET", creds.secret.as_str())
        .output()
        .unwrap()
}

fn witness_ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    stdout
}

fn witness_refuses(output: Output, why: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "witness passed: {stdout}");
    assert!(stderr.contains(why), "expected {why:?}: {stderr}");
}

/// An app where alice's chain has been witnessed twice, and the witness's state file.
async fn witnessed(backend: Backend) -> (TestApp, Credentials, std::path::PathBuf) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("alice").await;
    let alice = app.client(&creds);
    for _ in 0..3 {
        alice.create_blob("market", None).await;
    }
    let state = app.dir.path().join("alice.witness");
    let first = witness_ok(witness(&app, &creds, "owner:alice", &state));
    assert!(first.contains("first checkpoint stored"), "{first}");
    for _ in 0..3 {
        alice.create_blob("market", None).await;
    }
    let again = witness_ok(witness(&app, &creds, "owner:alice", &state));
    assert!(
        again.contains("owner:alice: consistent, 3 -> 6 events"),
        "{again}"
    );
    (app, creds, state)
}

impl TestApp {
    /// Lets a test rewrite the audit tree too, as an attacker with the owner role could.
    async fn disable_tree_triggers(&self) {
        self.disable_audit_triggers().await;
        match self.backend {
            Backend::Sqlite => {
                self.sql("DROP TRIGGER audit_tree_no_update").await;
                self.sql("DROP TRIGGER audit_tree_no_delete").await;
            }
            Backend::Postgres => {
                self.sql("ALTER TABLE audit_tree DISABLE TRIGGER audit_tree_no_update_delete")
                    .await;
            }
        }
    }
}

async fn the_witness_catches_a_truncated_tail(backend: Backend) {
    let (app, creds, state) = witnessed(backend).await;
    app.disable_tree_triggers().await;
    app.sql("DELETE FROM audit_events WHERE chain = 'owner:alice' AND seq > 4")
        .await;
    app.sql(
        "UPDATE audit_heads SET seq = 4, tree_frontier = NULL, hash = (SELECT hash FROM \
         audit_events WHERE chain = 'owner:alice' AND seq = 4) WHERE chain = 'owner:alice'",
    )
    .await;
    witness_refuses(witness(&app, &creds, "owner:alice", &state), "truncated");
}

async fn the_witness_catches_a_deleted_chain(backend: Backend) {
    let (app, creds, state) = witnessed(backend).await;
    app.disable_tree_triggers().await;
    for table in ["audit_events", "audit_tree", "audit_heads"] {
        app.sql(&format!("DELETE FROM {table} WHERE chain = 'owner:alice'"))
            .await;
    }
    // `audit verify` has nothing left to complain about ...
    let alice = app.client(&creds);
    assert_eq!(alice.audit_verify_json(None).await["valid"], true);
    // ... but the witness remembers the chain.
    witness_refuses(witness(&app, &creds, "owner:alice", &state), "vanished");
}

async fn the_witness_catches_a_rewrite_with_recomputed_hashes_and_tree(backend: Backend) {
    let (app, creds, state) = witnessed(backend).await;
    app.disable_tree_triggers().await;
    // Rewrite event 2 and re-chain everything after it, as a careful forger would.
    let mut previous = String::new();
    for mut event in events_of(&app, "owner:alice").await {
        if event.seq >= 2 {
            if event.seq == 2 {
                event.reason = Some("nothing to see".into());
            }
            event.previous_hash = previous.clone();
            event.hash = chain::event_hash(&event).unwrap();
            let reason = event.reason.as_deref().unwrap_or("");
            app.sql(&format!(
                "UPDATE audit_events SET reason = {}, previous_hash = '{}', hash = '{}' \
                 WHERE chain = 'owner:alice' AND seq = {}",
                if event.reason.is_some() {
                    format!("'{reason}'")
                } else {
                    "NULL".into()
                },
                event.previous_hash,
                event.hash,
                event.seq
            ))
            .await;
        }
        previous = event.hash;
    }
    // The head and the tree follow: the tree is dropped, so the server rebuilds it from the
    // rewritten events on the next append, exactly as it would have computed it.
    app.sql("DELETE FROM audit_tree WHERE chain = 'owner:alice'")
        .await;
    app.sql(&format!(
        "UPDATE audit_heads SET hash = '{previous}', tree_frontier = NULL \
         WHERE chain = 'owner:alice'"
    ))
    .await;
    let alice = app.client(&creds);
    alice.create_blob("market", None).await;
    let verify = alice.audit_verify_json(None).await;
    assert_eq!(
        verify["valid"], true,
        "self-consistent after the rewrite: {verify}"
    );
    witness_refuses(witness(&app, &creds, "owner:alice", &state), "rewritten");
}

/// Appends a correctly chained event to alice's chain straight into the tables (with the
/// append-only triggers on: they allow INSERT), moving the head, but not the tree.
async fn forge_append(app: &TestApp) {
    let events = events_of(app, "owner:alice").await;
    let last = events.last().unwrap();
    let mut forged = NewEvent::new(
        "owner:alice".into(),
        "blob.read",
        "alice",
        "hmac",
        "forged",
        1_700_000_000_000,
    );
    forged.reason = Some("forged".into());
    let event = chain::link(&forged, last.seq + 1, &last.hash).unwrap();
    app.sql(&format!(
        "INSERT INTO audit_events (chain, seq, id, ts_ms, event_type, requester, auth_method, \
         outcome, request_id, reason, previous_hash, hash) VALUES ('owner:alice', {}, '{}', \
         1700000000000, 'blob.read', 'alice', 'hmac', 'granted', 'forged', 'forged', '{}', '{}')",
        event.seq, event.id, event.previous_hash, event.hash
    ))
    .await;
    app.sql(&format!(
        "UPDATE audit_heads SET seq = {}, hash = '{}' WHERE chain = 'owner:alice'",
        event.seq, event.hash
    ))
    .await;
}

async fn the_witness_and_the_verifier_catch_a_forged_append(backend: Backend) {
    let (app, creds, state) = witnessed(backend).await;
    forge_append(&app).await;
    // The server refuses to sign a tree that does not end in the head's event ...
    witness_refuses(
        witness(&app, &creds, "owner:alice", &state),
        "500 Internal Server Error",
    );
    // ... and verification finds the event the tree does not hold.
    let verify = app.client(&creds).audit_verify_json(None).await;
    assert_eq!(verify["valid"], false, "{verify}");
    assert_eq!(verify["first_invalid_seq"], 7, "{verify}");
}

async fn periodic_verification_reports_an_invalid_chain(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.audit.verify_interval_secs = 1).await;
    let creds = app.create_client("alice").await;
    app.client(&creds).create_blob("market", None).await;
    let gauge = |text: &str, name: &str| -> Option<i64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    };
    let mut seen_valid = false;
    for _ in 0..100 {
        let text = app.metrics_text().await;
        if gauge(
            &text,
            "virtengine_data_vault_audit_last_verified_timestamp_seconds",
        )
        .is_some_and(|t| t > 0)
        {
            assert_eq!(
                gauge(&text, "virtengine_data_vault_audit_invalid_chains"),
                Some(0)
            );
            seen_valid = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen_valid, "a first pass ran");
    forge_append(&app).await;
    for _ in 0..100 {
        let text = app.metrics_text().await;
        if gauge(&text, "virtengine_data_vault_audit_invalid_chains") == Some(1) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the forged append was not reported");
}

async fn two_replicas_appending_concurrently_keep_one_consistent_tree(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("reader").await;
    app.create_org("acme", &[("reader", "administrator")]).await;
    let api = app.client(&creds);
    let id = api.create_blob("market", Some("acme")).await;
    let before = api.checkpoint_text("org:acme").await;

    let servers = [ServerProcess::start(&app), ServerProcess::start(&app)];
    read_concurrently(&servers, &creds, &id, 200).await;
    let after = api.checkpoint_text("org:acme").await;
    let (from, to) = (size_of(&before), size_of(&after));
    assert_eq!(to, from + 200);
    let (f, t) = (from.to_string(), to.to_string());
    let query = [
        ("chain", "org:acme"),
        ("from", f.as_str()),
        ("to", t.as_str()),
    ];
    let consistency = json_with_status(api.consistency_proof(&query).await, 200).await;
    let leaves: Vec<String> = events_of(&app, "org:acme")
        .await
        .into_iter()
        .map(|e| e.hash)
        .collect();
    node_verify(&json!({
        "key": log_key(&api).await,
        "leaves": leaves,
        "checkpoints": [before, after],
        "inclusion": [],
        "consistency": [consistency],
    }));
    assert_eq!(api.audit_verify_json(Some("acme")).await["valid"], true);
    for server in servers {
        assert!(server.terminate(), "SIGTERM exits cleanly");
    }
}

async fn chains_written_before_the_tree_get_one_at_start_up(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let creds = app.create_client("alice").await;
    let alice = app.client(&creds);
    for _ in 0..5 {
        alice.create_blob("market", None).await;
    }
    let before = alice.checkpoint_text("owner:alice").await;
    // What a database migrated from before the tree looks like: events and heads, no tree.
    app.disable_tree_triggers().await;
    app.sql("DELETE FROM audit_tree").await;
    app.sql("UPDATE audit_heads SET tree_frontier = NULL").await;
    app.restart().await;
    assert_eq!(
        app.count_rows("audit_heads WHERE tree_frontier IS NULL")
            .await,
        0
    );
    let alice = app.client(&creds);
    let after = alice.checkpoint_text("owner:alice").await;
    // The same tree as before: built from the same events.
    assert_eq!(after, before);
    assert_eq!(alice.audit_verify_json(None).await["valid"], true);
}

/// Applies the migrations up to `last` alone, as a version that knew no later ones did.
async fn migrate_up_to(app: &TestApp, last: i64) {
    use sqlx::Connection;
    use std::str::FromStr;
    let folder = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let mut migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    let older: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    migrator.migrations = older.into();
    let url = &app.config.storage.database_url;
    match app.backend {
        Backend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            migrator.run(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            migrator.run(&mut conn).await.unwrap();
        }
    }
}

/// Writes `n` events of `chain` with its tree exactly as versions before migration 0009 kept
/// it: every perfect subtree from level 0 up, and the frontier beside the head. Returns the
/// event hashes and the root those versions signed.
async fn write_chain_as_before_0009(
    app: &TestApp,
    chain: &str,
    n: i64,
) -> (Vec<String>, tree::Hash) {
    let bytes = |h: &[u8]| match app.backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(h)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(h)),
    };
    let mut frontier = tree::Frontier::default();
    let mut nodes = Vec::new();
    let mut hashes = Vec::new();
    let mut previous = chain::GENESIS_HASH.to_owned();
    for seq in 1..=n {
        let event = NewEvent::new(
            chain.to_owned(),
            "blob.read",
            "alice",
            "hmac",
            &format!("old-{seq}"),
            1_700_000_000_000,
        );
        let event = chain::link(&event, seq, &previous).unwrap();
        app.sql(&format!(
            "INSERT INTO audit_events (chain, seq, id, ts_ms, event_type, requester, \
             auth_method, outcome, request_id, previous_hash, hash) VALUES ('{chain}', {seq}, \
             '{}', 1700000000000, 'blob.read', 'alice', 'hmac', 'granted', 'old-{seq}', '{}', \
             '{}')",
            event.id, event.previous_hash, event.hash
        ))
        .await;
        let mut leaf = [0u8; 32];
        hex::decode_to_slice(&event.hash, &mut leaf).unwrap();
        frontier.push(&leaf, &mut nodes);
        previous.clone_from(&event.hash);
        hashes.push(event.hash);
    }
    let rows: Vec<String> = nodes
        .iter()
        .map(|(id, h)| format!("('{chain}', {}, {}, {})", id.level, id.index, bytes(h)))
        .collect();
    app.sql(&format!(
        "INSERT INTO audit_tree (chain, level, idx, hash) VALUES {}",
        rows.join(", ")
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO audit_heads (chain, seq, hash, tree_frontier) VALUES ('{chain}', {n}, \
         '{previous}', {})",
        bytes(&frontier.to_bytes())
    ))
    .await;
    (hashes, frontier.root())
}

fn hashes_of(proof: &Value) -> Vec<tree::Hash> {
    proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

async fn a_tree_written_before_migration_0009_still_verifies_and_proves(backend: Backend) {
    let mut app = TestApp::unstarted(backend).await;
    migrate_up_to(&app, 7).await;
    let chain = "owner:alice";
    let (old_leaves, old_root) = write_chain_as_before_0009(&app, chain, 100).await;
    // Levels 0-3 of 100 leaves: 100 + 50 + 25 + 12 rows; levels 4-6: 6 + 3 + 1.
    assert_eq!(app.count_rows("audit_tree WHERE level < 4").await, 187);
    app.start().await;
    assert_eq!(app.count_rows("audit_tree WHERE level < 4").await, 0);
    assert_eq!(app.count_rows("audit_tree").await, 10);

    let creds = app.create_client("alice").await;
    let alice = app.client(&creds);
    let verifier = NoteVerifier::parse(&log_key(&alice).await).unwrap();
    let note = alice.checkpoint_text(chain).await;
    let checkpoint = Checkpoint::parse(verifier.open(&note).unwrap()).unwrap();
    assert!(checkpoint.size >= 100);
    // The tree the old version signed at 100 is a prefix of the one signed now ...
    let to = checkpoint.size.to_string();
    let query = [("chain", chain), ("from", "100"), ("to", to.as_str())];
    let proof = json_with_status(alice.consistency_proof(&query).await, 200).await;
    tree::verify_consistency(
        100,
        checkpoint.size,
        &old_root,
        &checkpoint.root,
        &hashes_of(&proof),
    )
    .unwrap();
    // ... and every old event is proved in it, from the rows the migration left.
    for seq in 1..=100u64 {
        let s = seq.to_string();
        let query = [("chain", chain), ("seq", s.as_str()), ("tree_size", "100")];
        let proof = json_with_status(alice.inclusion_proof(&query).await, 200).await;
        let index = usize::try_from(seq - 1).unwrap();
        assert_eq!(proof["event_hash"], old_leaves[index]);
        let mut input = [0u8; 32];
        hex::decode_to_slice(&old_leaves[index], &mut input).unwrap();
        tree::verify_inclusion(
            seq - 1,
            100,
            &tree::leaf_hash(&input),
            &hashes_of(&proof),
            &old_root,
        )
        .unwrap();
    }
    // Appends after the upgrade extend the same tree; the independent verifier agrees.
    for _ in 0..20 {
        alice.create_blob("market", None).await;
    }
    let after = alice.checkpoint_text(chain).await;
    let (from, to) = (checkpoint.size.to_string(), size_of(&after).to_string());
    let query = [
        ("chain", chain),
        ("from", from.as_str()),
        ("to", to.as_str()),
    ];
    let consistency = json_with_status(alice.consistency_proof(&query).await, 200).await;
    let leaves: Vec<String> = events_of(&app, chain)
        .await
        .into_iter()
        .map(|e| e.hash)
        .collect();
    assert_eq!(leaves[..100], old_leaves[..]);
    let report = node_verify(&json!({
        "key": log_key(&alice).await,
        "leaves": leaves,
        "checkpoints": [note, after],
        "inclusion": [],
        "consistency": [consistency],
    }));
    assert!(report.starts_with("ok 2 checkpoints"), "{report}");
    let verify = alice.audit_verify_json(None).await;
    assert_eq!(verify["valid"], true, "{verify}");
}

/// A stored subtree that no checkpoint root uses, changed in place: proofs through it would
/// not verify, and verification names its first event.
async fn verification_compares_every_stored_subtree_with_its_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let chain = "owner:alice";
    append_batches(&app, chain, &[40 - events_of(&app, chain).await.len()]).await;
    let note = alice.checkpoint_text(chain).await;
    assert_eq!(size_of(&note), 40);
    assert_eq!(alice.audit_verify_json(None).await["valid"], true);
    app.disable_tree_triggers().await;
    let zeros = match backend {
        Backend::Sqlite => format!("X'{}'", "00".repeat(32)),
        Backend::Postgres => format!("'\\x{}'::bytea", "00".repeat(32)),
    };
    // Leaves 16..32: inside the subtree (5, 0) that the root of 40 leaves folds.
    app.sql(&format!(
        "UPDATE audit_tree SET hash = {zeros} WHERE chain = '{chain}' AND level = 4 AND idx = 1"
    ))
    .await;
    assert_eq!(
        alice.checkpoint_text(chain).await,
        note,
        "the root does not read it"
    );
    let verify = alice.audit_verify_json(None).await;
    assert_eq!(verify["valid"], false, "{verify}");
    assert_eq!(verify["first_invalid_seq"], 17, "{verify}");
}

on_both_backends!(
    verification_compares_every_stored_subtree_with_its_events,
    a_tree_written_before_migration_0009_still_verifies_and_proves,
    chains_written_before_the_tree_get_one_at_start_up,
    proofs_and_checkpoints_verify_with_an_independent_implementation,
    bad_proof_requests_are_refused_and_visibility_is_that_of_verify,
    every_audited_response_names_its_event_and_it_can_be_proved,
    the_witness_catches_a_truncated_tail,
    the_witness_catches_a_deleted_chain,
    the_witness_catches_a_rewrite_with_recomputed_hashes_and_tree,
    the_witness_and_the_verifier_catch_a_forged_append,
    periodic_verification_reports_an_invalid_chain,
    two_replicas_appending_concurrently_keep_one_consistent_tree,
);
