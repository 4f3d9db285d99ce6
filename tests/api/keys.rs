//! Keys (DESIGN §15): tenant key versions and their rotation while blobs are read, a rewrap
//! that survives `kill -9`, emergency rotation, the master keyring and `rewrap-master`, and
//! the cryptoperiod signals (`/readyz` and the key-age metric).

use crate::cli::{data_vault, ok};
use crate::helpers::*;
use crate::on_both_backends;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "keys-admin";
const OWNER: &str = "keys-owner";
const DAY: i64 = 86_400;

/// An app whose platform admin is `ADMIN`, with small, paced rewrap batches so a rotation
/// of a few hundred blobs lasts long enough to be read through.
async fn spawn(backend: Backend, batch: u32, pause_ms: u64) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.auth.platform_admins = vec![ADMIN.into()];
        c.keys.rewrap_batch_size = batch;
        c.keys.rewrap_pause_ms = pause_ms;
        // The reader loops as fast as it can: the per-principal limit is not what is tested.
        c.rate_limit.enabled = false;
    })
    .await
}

/// Stores `count` distinct envelopes as `api`, 32 at a time; returns id → envelope.
async fn store_blobs(api: &Arc<Api>, count: usize, org: Option<&str>) -> HashMap<String, Vec<u8>> {
    let mut stored = HashMap::with_capacity(count);
    // One real envelope, made distinct per blob in its payload (the server checks the header
    // only): making a thousand age envelopes would cost the test far more than storing them.
    let base = age_envelope_of_size(600);
    let envelopes: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut envelope = base.clone();
            envelope.extend_from_slice(format!("blob {i} of {count}").as_bytes());
            envelope
        })
        .collect();
    for chunk in envelopes.chunks(32) {
        let mut tasks = Vec::new();
        for envelope in chunk {
            let (api, envelope) = (api.clone(), envelope.clone());
            let org = org.map(str::to_owned);
            tasks.push(tokio::spawn(async move {
                let mut query = UploadQuery::in_scope("veid");
                query.org_id = org.as_deref();
                let body = json_with_status(api.upload_raw(&envelope, &query).await, 201).await;
                (
                    body["metadata"]["id"].as_str().unwrap().to_owned(),
                    envelope,
                )
            }));
        }
        for task in tasks {
            let (id, envelope) = task.await.unwrap();
            stored.insert(id, envelope);
        }
    }
    stored
}

/// Every blob opens byte for byte, under `version`.
async fn all_open_under(api: &Api, blobs: &HashMap<String, Vec<u8>>, version: i64) {
    for (id, envelope) in blobs {
        let response = api.get_blob_raw(id, &ReadQuery::default()).await;
        assert_eq!(response.status(), 200, "blob {id}");
        assert_eq!(
            &response.bytes().await.unwrap()[..],
            &envelope[..],
            "blob {id}"
        );
        let meta = json_with_status(api.get_metadata(id).await, 200).await;
        assert_eq!(meta["key_version"], version, "blob {id}: {meta}");
    }
}

/// Polls a rotation through the API until it is complete (within `limit`).
pub async fn until_complete(api: &Api, id: &str, limit: Duration) -> Value {
    let since = Instant::now();
    loop {
        let rotation = json_with_status(api.get_rotation(id).await, 200).await;
        if rotation["status"] == "complete" {
            return rotation;
        }
        assert_eq!(rotation["status"], "running", "{rotation}");
        assert!(since.elapsed() < limit, "rotation not complete: {rotation}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The key versions of `tenant` as `GET /vault/keys?tenant=` lists them: version → (status,
/// blobs).
async fn versions(api: &Api, tenant: &str) -> HashMap<i64, (String, i64)> {
    let listing = json_with_status(api.list_keys(Some(tenant)).await, 200).await;
    assert_eq!(listing["master"]["key_id"].as_str().unwrap().len(), 16);
    listing["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["tenant"], tenant);
            (
                k["version"].as_i64().unwrap(),
                (
                    k["status"].as_str().unwrap().to_owned(),
                    k["blobs"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Starts a rotation of `OWNER`'s key with the CLI, without waiting; the rotation it prints.
fn start_owner_rotation_from_the_cli(app: &TestApp) -> Value {
    let started = ok(data_vault(app)
        .args([
            "admin",
            "keys",
            "rotate",
            &format!("owner:{OWNER}"),
            "--no-wait",
            "--json",
        ])
        .output()
        .unwrap());
    serde_json::from_str(&started).unwrap()
}

async fn events_of(app: &TestApp, chain: &str, event_type: &str) -> i64 {
    app.count_rows(&format!(
        "audit_events WHERE chain = '{chain}' AND event_type = '{event_type}' \
         AND outcome = 'granted'"
    ))
    .await
}

async fn rotating_with_a_thousand_blobs_fails_no_read(backend: Backend) {
    let app = spawn(backend, 100, 30).await;
    let admin = app.client(&app.create_client(ADMIN).await);
    let owner = Arc::new(app.client(&app.create_client(OWNER).await));
    let blobs = Arc::new(store_blobs(&owner, 1000, None).await);
    let tenant = format!("owner:{OWNER}");

    // A reader loops over every blob for as long as the rotation runs.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (owner, blobs) = (owner.clone(), blobs.clone());
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        tokio::spawn(async move {
            let ids: Vec<&String> = blobs.keys().collect();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = ids[i % ids.len()];
                let response = owner.get_blob_raw(id, &ReadQuery::default()).await;
                let ok = response.status() == 200
                    && response.bytes().await.is_ok_and(|b| b[..] == blobs[id][..]);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                reads.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };

    // The reader is under way before the rotation starts.
    while reads.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reads_before = reads.load(Ordering::Relaxed);
    let body = json!({"tenant": tenant, "reason": "scheduled", "emergency": false});
    let rotation = json_with_status(admin.rotate_keys(&body).await, 202).await["rotation"].clone();
    assert_eq!(rotation["tenant"], tenant);
    assert_eq!(
        (
            rotation["from_version"].as_i64(),
            rotation["to_version"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(rotation["total"], 1000);
    assert_eq!(rotation["status"], "running");
    // A second rotation of the same tenant while this one runs: 409.
    let (status, code) = error_of(admin.rotate_keys(&body).await).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));
    // New blobs go under the new version at once.
    let fresh = store_blobs(&owner, 5, None).await;

    let done = until_complete(
        &admin,
        rotation["id"].as_str().unwrap(),
        Duration::from_secs(120),
    )
    .await;
    let reads_during = reads.load(Ordering::Relaxed) - reads_before;
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert_eq!(done["rewrapped"], 1000, "{done}");
    assert!(done["completed_at"].is_string());
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed reads during the rotation"
    );
    assert!(
        reads_during > 10,
        "the reader hardly ran during the rotation: {reads_during}"
    );

    all_open_under(&owner, &blobs, 2).await;
    all_open_under(&owner, &fresh, 2).await;
    let keys = versions(&admin, &tenant).await;
    assert_eq!(keys[&1], ("retired".to_owned(), 0));
    assert_eq!(keys[&2], ("active".to_owned(), 1005));
    for chain in ["system", tenant.as_str()] {
        assert_eq!(
            events_of(&app, chain, "key.rotation_started").await,
            1,
            "{chain}"
        );
        assert_eq!(
            events_of(&app, chain, "key.rotation_completed").await,
            1,
            "{chain}"
        );
    }
    // The chains with those events still verify.
    let verified = admin.audit_verify_json(None).await;
    assert_eq!(verified["valid"], true, "{verified}");
}

/// The platform administrator of [`spawn`], for a `data-vault serve` process (which takes
/// its configuration from the environment).
const ADMIN_ENV: (&str, &str) = ("DATA_VAULT_AUTH__PLATFORM_ADMINS", "[\"keys-admin\"]");

async fn a_rewrap_killed_with_sigkill_completes_after_a_restart(backend: Backend) {
    let mut app = spawn(backend, 100, 0).await;
    let owner_creds = app.create_client(OWNER).await;
    let admin_creds = app.create_client(ADMIN).await;
    let blobs = store_blobs(&Arc::new(app.client(&owner_creds)), 300, None).await;
    app.stop().await;
    let slow = [
        ("DATA_VAULT_KEYS__REWRAP_BATCH_SIZE", "10"),
        ("DATA_VAULT_KEYS__REWRAP_PAUSE_MS", "100"),
    ];
    let server = ServerProcess::start_with(&app, &slow);
    let rotation = start_owner_rotation_from_the_cli(&app);
    assert_eq!(rotation["total"], 300);
    let id = rotation["id"].as_str().unwrap().to_owned();

    // Kill -9 once the server has rewrapped some, but not all.
    let progress = format!("SELECT rewrapped FROM key_rotations WHERE id = '{id}'");
    let since = Instant::now();
    loop {
        let done = app.db().await.fetch_i64(&progress).await.unwrap();
        if done > 0 {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the rewrap never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server); // SIGKILL
    let done = app.db().await.fetch_i64(&progress).await.unwrap();
    assert!((1..300).contains(&done), "killed after {done} of 300");
    let running = format!("key_rotations WHERE id = '{id}' AND status = 'running'");
    assert_eq!(app.count_rows(&running).await, 1);

    // A restarted server resumes the rotation and completes it.
    let server = ServerProcess::start_with(&app, &[ADMIN_ENV]);
    let admin = server.client(&admin_creds);
    let done = until_complete(&admin, &id, Duration::from_secs(60)).await;
    assert_eq!(
        done["rewrapped"], 300,
        "every data key rewrapped exactly once"
    );
    all_open_under(&server.client(&owner_creds), &blobs, 2).await;
}

async fn two_replicas_rewrap_one_rotation_together(backend: Backend) {
    let mut app = spawn(backend, 100, 0).await;
    let owner_creds = app.create_client(OWNER).await;
    let admin_creds = app.create_client(ADMIN).await;
    let blobs = store_blobs(&Arc::new(app.client(&owner_creds)), 400, None).await;
    app.stop().await;
    // Twenty batches 200 ms apart: longer than a replica takes (2 s) to find a rotation
    // started elsewhere, so both are at work before it ends. Each logs its batches.
    let paced = [
        ("DATA_VAULT_KEYS__REWRAP_BATCH_SIZE", "20"),
        ("DATA_VAULT_KEYS__REWRAP_PAUSE_MS", "200"),
        ("DATA_VAULT_LOG", "info,data_vault::service::rotation=debug"),
        ADMIN_ENV,
    ];
    let replicas = [
        ServerProcess::start_with(&app, &paced),
        ServerProcess::start_with(&app, &paced),
    ];
    let id = start_owner_rotation_from_the_cli(&app)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = until_complete(
        &replicas[0].client(&admin_creds),
        &id,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        done["rewrapped"], 400,
        "each data key rewrapped once, by one replica or the other"
    );
    for (i, replica) in replicas.iter().enumerate() {
        let batches = replica.log_lines_with("rewrapped a batch of data keys");
        assert!(!batches.is_empty(), "replica {i} rewrapped nothing");
    }
    // Whichever replicas took batches, exactly one completed the rotation.
    let completions = replicas
        .iter()
        .map(|r| r.log_lines_with("tenant key rotation complete").len())
        .sum::<usize>();
    assert_eq!(completions, 1);
    assert_eq!(events_of(&app, "system", "key.rotation_completed").await, 1);
    for replica in &replicas {
        all_open_under(&replica.client(&owner_creds), &blobs, 2).await;
    }
}

async fn emergency_rotation_destroys_the_old_version(backend: Backend) {
    let app = spawn(backend, 500, 0).await;
    let admin = app.client(&app.create_client(ADMIN).await);
    let ops = Arc::new(app.client(&app.create_client("acme-ops").await));
    let member = app.client(&app.create_client("acme-member").await);
    app.create_org(
        "acme",
        &[
            ("acme-ops", "administrator"),
            ("acme-member", "support_agent"),
        ],
    )
    .await;
    app.create_org("other", &[]).await;
    let blobs = store_blobs(&ops, 20, Some("acme")).await;

    // Who may rotate: not a plain member (403, audited on its chain), not another org's
    // tenant, nobody a tenant without a key (404).
    let body = |tenant: &str| json!({"tenant": tenant, "reason": "key leaked", "emergency": true});
    let (status, code) = error_of(member.rotate_keys(&body("org:acme")).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let denied = "audit_events WHERE chain = 'owner:acme-member' \
                  AND event_type = 'key.rotation_started' AND outcome = 'denied'";
    assert_eq!(app.count_rows(denied).await, 1);
    let (status, _) = error_of(ops.rotate_keys(&body("org:other")).await).await;
    assert_eq!(status, 403);
    let (status, code) = error_of(admin.rotate_keys(&body("owner:nobody")).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code) = error_of(admin.rotate_keys(&body("system")).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, _) = error_of(member.list_keys(Some("org:acme")).await).await;
    assert_eq!(status, 403);
    let (status, _) = error_of(ops.list_keys(None).await).await;
    assert_eq!(status, 403, "the whole listing is for platform admins");

    // The org's administrator rotates its own tenant, in an emergency.
    let started = json_with_status(ops.rotate_keys(&body("org:acme")).await, 202).await;
    let id = started["rotation"]["id"].as_str().unwrap();
    let done = until_complete(&ops, id, Duration::from_secs(60)).await;
    assert_eq!(done["emergency"], true);
    let keys = versions(&ops, "org:acme").await;
    assert_eq!(keys[&1], ("destroyed".to_owned(), 0));
    assert_eq!(keys[&2], ("active".to_owned(), 20));
    let material = "tenant_keys WHERE tenant = 'org:acme' AND version = 1 \
                    AND destroyed_at IS NOT NULL";
    assert_eq!(app.count_rows(material).await, 1);
    let mut db = app.db().await;
    let len = db
        .fetch_i64("SELECT CAST(LENGTH(wrapped) AS BIGINT) FROM tenant_keys WHERE tenant = 'org:acme' AND version = 1")
        .await
        .unwrap();
    assert_eq!(len, 0, "the old version's material is gone");
    all_open_under(&ops, &blobs, 2).await;

    // The CLI lists the keys, and rotates with a progress bar until done.
    let listed = ok(data_vault(&app)
        .args(["admin", "keys", "list", "--tenant", "org:acme", "--json"])
        .output()
        .unwrap());
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    let output = data_vault(&app)
        .args([
            "admin",
            "keys",
            "rotate",
            "org:acme",
            "--reason",
            "scheduled",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let stdout = ok(output);
    assert!(stdout.contains("complete"), "{stdout}");
    assert!(stderr.contains("rewrapping ["), "no progress bar: {stderr}");
    let keys = versions(&ops, "org:acme").await;
    assert_eq!(keys[&2], ("retired".to_owned(), 0));
    assert_eq!(keys[&3], ("active".to_owned(), 20));
    all_open_under(&ops, &blobs, 3).await;
}

/// Writes a fresh master key file named `name` in the app's directory.
fn new_key_file(app: &TestApp, name: &str) -> std::path::PathBuf {
    let path = app.dir.path().join(name);
    std::fs::write(
        &path,
        data_vault::crypto::MasterKey::generate_hex().as_bytes(),
    )
    .unwrap();
    path
}

fn key_id_of(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    data_vault::crypto::MasterKey::from_hex(&text)
        .unwrap()
        .key_id()
        .to_owned()
}

/// Building the server with the app's configuration fails; the error text.
async fn refused_to_start(app: &TestApp) -> String {
    match data_vault::startup::Application::build(&app.config).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

async fn master_rewrap_then_start_with_only_the_new_key(backend: Backend) {
    let mut app = spawn(backend, 500, 0).await;
    let creds = app.create_client(OWNER).await;
    let before = store_blobs(&Arc::new(app.client(&creds)), 30, None).await;
    let old = app.config.keys.master_key_file.clone();
    let new = new_key_file(&app, "master-2.key");

    // The new key becomes active, the old one stays in the ring: everything still opens,
    // and what is new is wrapped by the new key.
    app.config.keys.master_key_file = new.clone();
    app.config.keys.previous_master_key_files = vec![old.clone()];
    app.restart().await;
    let owner = Arc::new(app.client(&creds));
    all_open_under(&owner, &before, 1).await;
    app.create_org("fresh", &[(OWNER, "administrator")]).await;
    let after = store_blobs(&owner, 3, Some("fresh")).await;
    let under_new = format!("tenant_keys WHERE master_key_id = '{}'", key_id_of(&new));
    assert_eq!(app.count_rows(&under_new).await, 1);
    app.stop().await;

    // `admin keys rewrap-master`, with a progress bar, configured as the server is.
    let config = app.dir.path().join("keyring.toml");
    std::fs::write(
        &config,
        format!(
            "[keys]\nprevious_master_key_files = [{:?}]\n",
            old.display().to_string()
        ),
    )
    .unwrap();
    let output = data_vault(&app)
        .env("DATA_VAULT_KEYS__MASTER_KEY_FILE", &new)
        .args([
            "--config",
            config.to_str().unwrap(),
            "admin",
            "keys",
            "rewrap-master",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let stdout = ok(output);
    assert!(
        stdout.contains("resealed 1 tenant key(s) and 1 client secret(s)"),
        "{stdout}"
    );
    assert!(stderr.contains("] 2/2"), "no progress bar: {stderr}");
    assert_eq!(
        app.count_rows("tenant_keys").await,
        app.count_rows(&under_new).await
    );

    // Only the new key: everything opens, the client still signs in.
    app.config.keys.previous_master_key_files = Vec::new();
    app.restart().await;
    let owner = app.client(&creds);
    all_open_under(&owner, &before, 1).await;
    all_open_under(&owner, &after, 1).await;
    app.stop().await;

    // Only the old key: refused, naming the key it lacks.
    app.config.keys.master_key_file = old.clone();
    let error = refused_to_start(&app).await;
    assert!(error.contains(&key_id_of(&new)), "{error}");
    assert!(error.contains("not in the keyring"), "{error}");

    // A keyring entry that is not 64 hex characters: refused, naming the file.
    let bad = app.dir.path().join("bad.key");
    std::fs::write(&bad, "not-a-key\n").unwrap();
    app.config.keys.master_key_file = new.clone();
    app.config.keys.previous_master_key_files = vec![bad.clone()];
    let error = refused_to_start(&app).await;
    assert!(error.contains(bad.to_str().unwrap()), "{error}");
    assert!(error.contains("64 hexadecimal characters"), "{error}");
}

async fn a_database_sealed_under_one_key_refuses_another_alone(backend: Backend) {
    let mut app = spawn(backend, 500, 0).await;
    let creds = app.create_client(OWNER).await;
    store_blobs(&Arc::new(app.client(&creds)), 2, None).await;
    let old = key_id_of(&app.config.keys.master_key_file);
    app.stop().await;
    app.config.keys.master_key_file = new_key_file(&app, "unrelated.key");
    let error = refused_to_start(&app).await;
    assert!(error.contains(&old), "{error}");
}

/// The value of `virtengine_data_vault_key_age_seconds{kind}` in a metrics page.
fn key_age(metrics: &str, kind: &str) -> i64 {
    let prefix = format!("virtengine_data_vault_key_age_seconds{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no key age of kind {kind}:\n{metrics}"))
        .parse()
        .unwrap()
}

async fn readiness_and_the_key_age_metric_follow_the_cryptoperiod(backend: Backend) {
    let app = TestApp::spawn_on_manual_clock(backend, |c| {
        c.auth.platform_admins = vec![ADMIN.into()];
    })
    .await;
    let admin = app.client(&app.create_client(ADMIN).await);
    admin.create_blob("veid", None).await;
    let ready = |app: &TestApp| {
        let anonymous = app.anonymous();
        async move { json_with_status(anonymous.readyz().await, 200).await }
    };
    let body = ready(&app).await;
    assert_eq!(
        (body["status"].as_str(), body["keys"].as_str()),
        (Some("ready"), Some("ok"))
    );
    let metrics = app.metrics_text().await;
    for kind in ["tenant", "master", "client_secret"] {
        assert!(key_age(&metrics, kind) < DAY, "{kind}");
    }

    app.clock().advance_secs(81 * DAY);
    let body = ready(&app).await;
    assert_eq!(body["keys"], "rotation_due", "{body}");
    assert_eq!(
        body["status"], "ready",
        "a key due for rotation does not change status"
    );
    let metrics = app.metrics_text().await;
    for kind in ["tenant", "master", "client_secret"] {
        // The client secret was made on the wall clock, a moment after the server's start.
        let age = key_age(&metrics, kind);
        assert!((81 * DAY - 60..=81 * DAY).contains(&age), "{kind}: {age}");
    }

    app.clock().advance_secs(10 * DAY);
    assert_eq!(ready(&app).await["keys"], "expired");
    // Signed requests would be 91 days off the server's clock: list as the admin CLI does,
    // on the same clock.
    let clock = app.clock.clone().unwrap();
    let vault = data_vault::startup::open_vault_at(&app.config, clock)
        .await
        .unwrap();
    let admin_cli = data_vault::service::Caller::local_admin().unwrap();
    let listing = vault.list_keys(&admin_cli, None).await.unwrap();
    assert_eq!(listing.master.age_days, Some(91));
    assert_eq!(listing.keys.len(), 1);
    assert_eq!(listing.keys[0].age_days, 91);
    assert_eq!(listing.keys[0].status, "active");
}

/// An erasure of the subject while its personal key rotates: the rewrap moves the held blob
/// to the new version after the erasure purged everything else, so the erasure must not
/// destroy that (still empty) new version; repeated after the rotation it destroys the old.
async fn an_erasure_during_a_rotation_keeps_the_held_blob_readable(backend: Backend) {
    let app = spawn(backend, 1, 150).await;
    let admin = app.client(&app.create_client(ADMIN).await);
    let owner = Arc::new(app.client(&app.create_client(OWNER).await));
    let blobs = store_blobs(&owner, 6, None).await;
    // The blob rewrapped last (batches go in id order) is the one under legal hold.
    let held = blobs.keys().max().unwrap().clone();
    json_with_status(
        admin.put_hold(&held, &json!({"reason": "case 7"})).await,
        200,
    )
    .await;

    let tenant = format!("owner:{OWNER}");
    let started = json_with_status(
        admin
            .rotate_keys(&json!({"tenant": tenant, "reason": "scheduled"}))
            .await,
        202,
    )
    .await;
    let id = started["rotation"]["id"].as_str().unwrap().to_owned();
    let erased = json_with_status(owner.erase_subject(OWNER).await, 200).await;
    assert_eq!(erased, json!({"erased": 5, "held": 1}));
    let rotation = json_with_status(admin.get_rotation(&id).await, 200).await;
    assert_eq!(
        rotation["status"], "running",
        "the test needs the erasure mid-rotation"
    );

    until_complete(&admin, &id, Duration::from_secs(60)).await;
    let response = owner.get_blob_raw(&held, &ReadQuery::default()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], &blobs[&held][..]);
    let keys = versions(&admin, &tenant).await;
    assert_eq!(keys[&2], ("active".to_owned(), 1));
    assert_eq!(keys[&1].0, "retired");

    // Once the rotation is over, erasing again destroys what nothing needs any more.
    let again = json_with_status(owner.erase_subject(OWNER).await, 200).await;
    assert_eq!(again, json!({"erased": 0, "held": 1}));
    let keys = versions(&admin, &tenant).await;
    assert_eq!(keys[&1].0, "destroyed");
    assert_eq!(keys[&2], ("active".to_owned(), 1));
    let response = owner.get_blob_raw(&held, &ReadQuery::default()).await;
    assert_eq!(response.status(), 200);
}

/// Two rotations of one tenant asked for at the same moment: one starts, the other is told
/// 409, whichever way the race between them goes (on PostgreSQL the loser used to find the
/// active version retired under it and answer 404). Several tenants, to run the race often.
async fn two_rotations_at_once_start_one_and_refuse_the_other(backend: Backend) {
    // One blob per batch and a long pause: the winner is still running when the loser asks.
    let app = spawn(backend, 1, 10_000).await;
    let admin = Arc::new(app.client(&app.create_client(ADMIN).await));
    for i in 0..6 {
        let owner = format!("racing-owner-{i}");
        let api = Arc::new(app.client(&app.create_client(&owner).await));
        store_blobs(&api, 1, None).await;
        let body =
            json!({"tenant": format!("owner:{owner}"), "reason": "race", "emergency": false});
        let (first, second) = tokio::join!(admin.rotate_keys(&body), admin.rotate_keys(&body));
        let mut statuses = [first.status().as_u16(), second.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 409], "tenant {owner}");
    }
}

/// A data key that does not open (its row tampered with) holds its rotation up: every other
/// blob is rewrapped, the old version is neither retired nor destroyed past it, the metric and
/// the CLI say so (the CLI stops waiting instead of waiting forever), and once the row is
/// restored the rotation completes by itself.
async fn a_data_key_that_does_not_open_blocks_its_rotation_loudly(backend: Backend) {
    let app = spawn(backend, 2, 0).await;
    let admin = app.client(&app.create_client(ADMIN).await);
    let owner = Arc::new(app.client(&app.create_client(OWNER).await));
    let blobs = store_blobs(&owner, 5, None).await;
    let tenant = format!("owner:{OWNER}");
    let broken = blobs.keys().min().unwrap().clone();
    app.sql(&format!(
        "UPDATE blobs SET owner = 'mallory' WHERE id = '{broken}'"
    ))
    .await;

    let mut child = data_vault(&app)
        .args(["admin", "keys", "rotate", &tenant, "--reason", "scheduled"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let since = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if since.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("admin keys rotate still waits on a rotation that cannot complete");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot complete: 1 data key(s) do not open"),
        "{stderr}"
    );
    assert!(stderr.contains(&broken), "the blob is named: {stderr}");

    // Everything else moved; the old version keeps the one blob and stays retired.
    let keys = versions(&admin, &tenant).await;
    assert_eq!(keys[&1], ("retired".to_owned(), 1));
    assert_eq!(keys[&2], ("active".to_owned(), 4));
    let blocked = "virtengine_data_vault_key_rotations_blocked";
    until("the blocked rotation is counted", async || {
        app.metric(blocked).await == 1.0
    })
    .await;

    // Restored (as from a backup), the row opens, and the server's worker completes it.
    app.sql(&format!(
        "UPDATE blobs SET owner = '{OWNER}' WHERE id = '{broken}'"
    ))
    .await;
    // "error: rotation <id> of <tenant> cannot complete: ..."
    let id = stderr
        .split("error: rotation ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no rotation id: {stderr}"))
        .to_owned();
    until_complete(&admin, &id, Duration::from_secs(60)).await;
    all_open_under(&owner, &blobs, 2).await;
    until("the rotation is no longer counted as blocked", async || {
        app.metric(blocked).await == 0.0
    })
    .await;
}

/// Rows recorded before master key ids existed (`master_key_id` NULL) were wrapped by the key
/// the database was set up with. Once another key is active, with the original kept in the
/// ring, they still open: the original is found by the database's check value, not assumed
/// to be the active key (which failed every read of them with an unclear crypto error).
async fn rows_without_a_master_key_id_open_under_the_original_key(backend: Backend) {
    let mut app = spawn(backend, 500, 0).await;
    let creds = app.create_client(OWNER).await;
    let before = store_blobs(&Arc::new(app.client(&creds)), 3, None).await;
    app.stop().await;
    app.sql("UPDATE tenant_keys SET master_key_id = NULL").await;
    app.sql("UPDATE client_secrets SET master_key_id = NULL")
        .await;

    let original = app.config.keys.master_key_file.clone();
    app.config.keys.master_key_file = new_key_file(&app, "master-2.key");
    app.config.keys.previous_master_key_files = vec![original];
    app.restart().await;
    all_open_under(&Arc::new(app.client(&creds)), &before, 1).await;
}

on_both_backends!(
    an_erasure_during_a_rotation_keeps_the_held_blob_readable,
    rows_without_a_master_key_id_open_under_the_original_key,
    a_data_key_that_does_not_open_blocks_its_rotation_loudly,
    two_rotations_at_once_start_one_and_refuse_the_other,
    rotating_with_a_thousand_blobs_fails_no_read,
    a_rewrap_killed_with_sigkill_completes_after_a_restart,
    two_replicas_rewrap_one_rotation_together,
    emergency_rotation_destroys_the_old_version,
    master_rewrap_then_start_with_only_the_new_key,
    a_database_sealed_under_one_key_refuses_another_alone,
    readiness_and_the_key_age_metric_follow_the_cryptoperiod,
);
