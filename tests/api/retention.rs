//! Retention, purge with proof and legal hold (DESIGN §12), over HTTP on both backends. Time
//! moves on the vault's manual clock; requests stay within their signing window (the clock
//! moves at most a couple of minutes).

use crate::helpers::*;
use crate::on_both_backends;
use data_vault::time::Clock;
use serde_json::{json, Value};

pub const ROOT: &str = "root";

/// A server on a manual clock with `root` as platform admin, small purge batches, and the
/// policies a test names in the configuration.
pub async fn governed_app(backend: Backend, batch_size: u32) -> TestApp {
    TestApp::spawn_on_manual_clock(backend, |config| {
        config.auth.platform_admins = vec![ROOT.into()];
        config.retention.batch_size = batch_size;
        // The configuration's own policy, besides `standard`.
        config.retention.policies.insert(
            "records".into(),
            data_vault::retention::PolicySettings {
                max_retention_days: Some(3650),
                default_ttl_days: None,
                purge_method: "crypto-shred".into(),
                description: Some("business records".into()),
            },
        );
    })
    .await
}

/// RFC 3339 of the vault clock plus `secs`.
pub fn in_secs(app: &TestApp, secs: i64) -> String {
    data_vault::time::to_rfc3339(app.clock().now_secs() + secs)
}

/// Uploads a small envelope and returns its metadata.
pub async fn upload(api: &Api, query: &UploadQuery<'_>) -> Value {
    let response = api.upload_raw(&age_envelope_of_size(700), query).await;
    json_with_status(response, 201).await["metadata"].clone()
}

/// Every chain of the database verifies.
pub async fn assert_all_chains_verify(app: &TestApp) {
    let store = data_vault::store::connect(&app.config.storage.database_url, 2)
        .await
        .unwrap();
    let chains = store.audit_chains().await.unwrap();
    assert!(!chains.is_empty());
    for chain in chains {
        let result = data_vault::service::verify_chain(store.as_ref(), &chain)
            .await
            .unwrap();
        assert!(result.valid, "{chain} does not verify: {result:?}");
    }
}

/// The `blob.purged` events of a blob, as its owner sees them.
pub async fn purge_events(owner: &Api, id: &str) -> Vec<Value> {
    owner
        .audit_events(&AuditQuery::default().blob_id(id))
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "blob.purged")
        .collect()
}

async fn policies_default_the_ttl_and_refuse_more_than_their_maximum(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let short = json!({"max_retention_days": 30, "default_ttl_days": 7,
                       "purge_method": "crypto-shred", "description": "tickets"});
    assert_eq!(root.put_policy("short", &short).await.status(), 201);
    assert_eq!(root.put_policy("short", &short).await.status(), 200);
    let (status, code) = error_of(alice.put_policy("mine", &short).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    for bad in [
        json!({"max_retention_days": -1, "purge_method": "crypto-shred"}),
        json!({"default_ttl_days": 0, "purge_method": "crypto-shred"}),
        json!({"max_retention_days": 1_000_000, "purge_method": "crypto-shred"}),
        json!({"max_retention_days": 5, "default_ttl_days": 6, "purge_method": "crypto-shred"}),
        json!({"max_retention_days": 1.5, "purge_method": "crypto-shred"}),
        json!({"purge_method": "shred"}),
        json!({"purge_method": "crypto-shred", "surprise": true}),
    ] {
        let (status, code) = error_of(root.put_policy("bad", &bad).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{bad}");
    }
    let listed = json_with_status(alice.list_policies().await, 200).await;
    let names: Vec<&str> = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["records", "short", "standard"]);
    assert_eq!(listed["policies"][2]["purge_method"], "physical-delete");
    assert_eq!(listed["policies"][2]["max_retention_days"], Value::Null);

    // The default TTL fills a missing expiry.
    let now = app.clock().now_secs();
    let meta = upload(
        &alice,
        &UploadQuery::in_scope("veid").retention_policy("short"),
    )
    .await;
    let expires = data_vault::time::parse_rfc3339(meta["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires, now + 7 * 86_400);
    assert_eq!(meta["legal_hold"], false);
    assert_eq!(meta["purged_at"], Value::Null);
    // Within the maximum is fine; past it is 422 and nothing is stored.
    let at_max = in_secs(&app, 30 * 86_400);
    upload(
        &alice,
        &UploadQuery::in_scope("veid")
            .retention_policy("short")
            .expires_at(&at_max),
    )
    .await;
    let before = alice.list_blobs_json(&ListQuery::default()).await["blobs"]
        .as_array()
        .unwrap()
        .len();
    let past_max = in_secs(&app, 30 * 86_400 + 1);
    let response = alice
        .upload_raw(
            &age_envelope_of_size(700),
            &UploadQuery::in_scope("veid")
                .retention_policy("short")
                .expires_at(&past_max),
        )
        .await;
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (422, "retention_exceeded"));
    let after = alice.list_blobs_json(&ListQuery::default()).await["blobs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused upload stores nothing");
    // An unknown policy is a bad request.
    let response = alice
        .upload_raw(
            &age_envelope_of_size(700),
            &UploadQuery::in_scope("veid").retention_policy("nope"),
        )
        .await;
    assert_eq!(error_of(response).await, (400, "bad_request".into()));
    assert_all_chains_verify(&app).await;
}

async fn expired_blobs_answer_410_and_a_dry_run_changes_nothing(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let soon = in_secs(&app, 60);
    let id = upload(&alice, &UploadQuery::in_scope("veid").expires_at(&soon)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.clock().advance_secs(61);
    let (status, code) = error_of(alice.get_blob(&id, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (410, "expired"));

    let rows = app.count_rows("blobs").await;
    let report = root.sweep_json(true).await;
    assert_eq!(
        report,
        json!({"dry_run": true, "candidates": 1, "purged": 0, "held": 0})
    );
    assert_eq!(
        app.count_rows("blobs").await,
        rows,
        "a dry run deletes nothing"
    );
    assert_eq!(
        app.count_rows("blobs WHERE purged_at IS NOT NULL").await,
        0,
        "a dry run shreds nothing"
    );
    assert!(purge_events(&alice, &id).await.is_empty());
    let (status, code) = error_of(alice.get_blob(&id, &ReadQuery::default()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (410, "expired"),
        "still expired, not purged"
    );
    // Sweeps on demand are for platform admins, and a refusal is audited.
    let (status, _) = error_of(alice.sweep(false).await).await;
    assert_eq!(status, 403);
    let denied = alice.audit_events(&AuditQuery::default()).await;
    assert!(denied
        .iter()
        .any(|e| e["event_type"] == "retention.sweep" && e["outcome"] == "denied"));
    assert_all_chains_verify(&app).await;
}

async fn a_sweep_purges_by_each_method_with_one_proof_per_blob(backend: Backend) {
    let app = governed_app(backend, 2).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let soon = in_secs(&app, 60);
    let mut deleted = Vec::new();
    let mut shredded = Vec::new();
    for _ in 0..3 {
        deleted.push(upload(&alice, &UploadQuery::in_scope("veid").expires_at(&soon)).await);
        shredded.push(
            upload(
                &alice,
                &UploadQuery::in_scope("market")
                    .retention_policy("records")
                    .expires_at(&soon),
            )
            .await,
        );
    }
    let kept = upload(&alice, &UploadQuery::in_scope("veid")).await;
    app.clock().advance_secs(61);

    let report = root.sweep_json(false).await;
    assert_eq!(
        report,
        json!({"dry_run": false, "candidates": 6, "purged": 6, "held": 0})
    );
    for meta in &deleted {
        let id = meta["id"].as_str().unwrap();
        let (status, code) = error_of(alice.get_blob(id, &ReadQuery::default()).await).await;
        assert_eq!((status, code.as_str()), (404, "not_found"));
        assert_eq!(alice.get_metadata(id).await.status(), 404);
        let proofs = purge_events(&alice, id).await;
        assert_eq!(proofs.len(), 1, "one proof per blob: {proofs:?}");
        let proof = &proofs[0];
        assert_eq!(proof["requester"], "system:retention");
        assert_eq!(proof["auth_method"], "system");
        assert_eq!(proof["chain"], "owner:alice");
        assert_eq!(
            proof["details"],
            json!({"content_hash": meta["content_hash"], "purge_method": "physical-delete",
                   "retention_policy": "standard", "expires_at": meta["expires_at"]})
        );
    }
    for meta in &shredded {
        let id = meta["id"].as_str().unwrap();
        let (status, code) = error_of(alice.get_blob(id, &ReadQuery::default()).await).await;
        assert_eq!((status, code.as_str()), (410, "purged"));
        let tombstone = json_with_status(alice.get_metadata(id).await, 200).await;
        assert!(tombstone["purged_at"].is_string(), "{tombstone}");
        assert_eq!(tombstone["content_hash"], meta["content_hash"]);
        let proofs = purge_events(&alice, id).await;
        assert_eq!(proofs.len(), 1);
        assert_eq!(proofs[0]["details"]["purge_method"], "crypto-shred");
        assert_eq!(proofs[0]["details"]["content_hash"], meta["content_hash"]);
        assert_eq!(proofs[0]["details"]["retention_policy"], "records");
    }
    // The key material and ciphertext of the tombstones are gone from the database.
    assert_eq!(
        app.count_rows("blobs WHERE purged_at IS NOT NULL AND (length(wrapped_key) > 0 OR length(ciphertext) > 0)")
            .await,
        0
    );
    assert_eq!(app.count_rows("blobs WHERE purged_at IS NOT NULL").await, 3);
    // The blob without an expiry is untouched; a second sweep finds nothing.
    let id = kept["id"].as_str().unwrap();
    assert_eq!(
        alice.get_blob(id, &ReadQuery::default()).await.status(),
        200
    );
    assert_eq!(
        root.sweep_json(false).await,
        json!({"dry_run": false, "candidates": 0, "purged": 0, "held": 0})
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("virtengine_data_vault_blobs_purged_total{method=\"crypto-shred\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("virtengine_data_vault_blobs_purged_total{method=\"physical-delete\"} 3")
    );
    assert!(metrics.contains("virtengine_data_vault_blobs_expired_pending_purge 0"));
    assert_all_chains_verify(&app).await;
}

async fn held_blobs_survive_sweeps_and_erasure_and_cannot_be_deleted(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let boss = app.client(&app.create_client("boss").await);
    let alice = app.client(&app.create_client("alice").await);
    app.create_org(
        "acme",
        &[("boss", "administrator"), ("alice", "service_provider")],
    )
    .await;
    let soon = in_secs(&app, 60);
    let org_blob = upload(
        &alice,
        &UploadQuery::in_scope("market")
            .org_id("acme")
            .expires_at(&soon),
    )
    .await;
    let org_id = org_blob["id"].as_str().unwrap();
    let personal = upload(&alice, &UploadQuery::in_scope("veid")).await;
    let personal_id = personal["id"].as_str().unwrap();

    // A reason is required; only an org administrator (or a platform admin) may hold.
    for bad in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "  "}),
        json!({"reason": "x", "why": 1}),
    ] {
        let (status, code) = error_of(boss.put_hold(org_id, &bad).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{bad}");
    }
    let (status, _) = error_of(alice.put_hold(org_id, &json!({"reason": "mine"})).await).await;
    assert_eq!(status, 403, "the owner is no administrator of the org");
    let held = json_with_status(
        boss.put_hold(org_id, &json!({"reason": "litigation 42"}))
            .await,
        200,
    )
    .await;
    assert_eq!(held["legal_hold"], true);
    let (status, _) = error_of(boss.put_hold(personal_id, &json!({"reason": "x"})).await).await;
    assert_eq!(status, 403, "personal blobs: platform admins only");
    let held = json_with_status(
        root.put_hold(personal_id, &json!({"reason": "subpoena"}))
            .await,
        200,
    )
    .await;
    assert_eq!(held["legal_hold"], true);
    // The denied attempt is on the org's chain, the hold with its reason too.
    let org_events = boss
        .audit_events(&AuditQuery::default().org_id("acme"))
        .await;
    assert!(org_events.iter().any(|e| e["event_type"] == "blob.hold_set"
        && e["outcome"] == "denied"
        && e["requester"] == "alice"));
    assert!(org_events.iter().any(|e| e["event_type"] == "blob.hold_set"
        && e["outcome"] == "granted"
        && e["reason"] == "litigation 42"));

    // Held: no delete, not by its owner either.
    let (status, code) = error_of(alice.delete_blob(org_id).await).await;
    assert_eq!((status, code.as_str()), (409, "legal_hold"));
    let (status, code) = error_of(alice.delete_blob(personal_id).await).await;
    assert_eq!((status, code.as_str()), (409, "legal_hold"));

    // Expired but held: the sweep counts it as held and leaves it.
    app.clock().advance_secs(61);
    assert_eq!(
        root.sweep_json(false).await,
        json!({"dry_run": false, "candidates": 0, "purged": 0, "held": 1})
    );
    assert!(purge_events(&alice, org_id).await.is_empty());
    assert_eq!(
        json_with_status(alice.get_metadata(org_id).await, 410).await["code"],
        "expired"
    );

    // Erasure skips both held blobs and keeps the personal key they need.
    let erased = json_with_status(alice.erase_subject("me").await, 200).await;
    assert_eq!(erased, json!({"erased": 0, "held": 2}));
    assert_eq!(
        alice
            .get_blob(personal_id, &ReadQuery::default())
            .await
            .status(),
        200
    );
    assert_eq!(
        app.count_rows("tenant_keys WHERE destroyed_at IS NOT NULL")
            .await,
        0
    );

    // Released, the personal blob goes at the next erasure, and with it the personal key.
    let released = json_with_status(root.delete_hold(personal_id).await, 200).await;
    assert_eq!(released["legal_hold"], false);
    assert_eq!(
        json_with_status(alice.erase_subject("alice").await, 200).await,
        json!({"erased": 1, "held": 1})
    );
    let (status, code) = error_of(alice.get_blob(personal_id, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (410, "purged"));
    assert_eq!(
        app.count_rows("tenant_keys WHERE tenant = 'owner:alice' AND destroyed_at IS NOT NULL")
            .await,
        1
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("virtengine_data_vault_blobs_held 1"),
        "{metrics}"
    );
    assert_all_chains_verify(&app).await;
}

async fn two_replicas_sweeping_at_once_purge_each_blob_exactly_once(backend: Backend) {
    let app = governed_app(backend, 5).await;
    let root_creds = app.create_client(ROOT).await;
    let alice = app.client(&app.create_client("alice").await);
    app.create_org("acme", &[("alice", "service_provider")])
        .await;
    // Many uploads take longer than the signing window allows a frozen clock to lag the
    // requests' own time: keep the vault clock at the wall clock while uploading.
    let wall = || data_vault::time::SystemClock.now_millis();
    let mut ids = Vec::new();
    for i in 0..60 {
        app.clock().set_millis(wall());
        let soon = in_secs(&app, 60);
        let query = UploadQuery::in_scope("market").expires_at(&soon);
        let query = if i % 2 == 0 {
            query.org_id("acme")
        } else {
            query.retention_policy("records")
        };
        ids.push(
            upload(&alice, &query).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A second replica: another server on the same database and clock.
    let clock = app.clock.clone().unwrap();
    let mut config = data_vault::config::Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.metrics_listen = "127.0.0.1:0".into();
    config.storage.database_url = app.config.storage.database_url.clone();
    config.keys.master_key_file = app.config.keys.master_key_file.clone();
    // The test's own log key: the default path (./data/log.key) is shared by every test
    // process and would be generated by several at once.
    config.audit.log_key_file = app.config.audit.log_key_file.clone();
    config.auth.platform_admins = vec![ROOT.into()];
    config.retention.batch_size = 5;
    let second = data_vault::startup::Application::build_with_clock(&config, clock)
        .await
        .unwrap();
    let second_url = format!("http://{}", second.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    app.clock().set_millis(wall() + 61_000);

    let first = app.client(&root_creds);
    let other = Api::from(
        data_vault::cli::VaultClient::new(
            &second_url,
            data_vault::cli::ClientAuth::Hmac {
                principal: ROOT.into(),
                secret: root_creds.secret.clone(),
            },
        )
        .unwrap(),
    );
    let (a, b) = tokio::join!(first.sweep_json(false), other.sweep_json(false));
    let purged = a["purged"].as_u64().unwrap() + b["purged"].as_u64().unwrap();
    assert_eq!(purged, 60, "{a} {b}");
    assert_eq!(
        app.count_rows("audit_events WHERE event_type = 'blob.purged'")
            .await,
        60,
        "one proof per blob"
    );
    for id in &ids {
        assert_eq!(
            app.count_rows(&format!(
                "audit_events WHERE event_type = 'blob.purged' AND blob_id = '{id}'"
            ))
            .await,
            1,
            "{id}"
        );
    }
    assert_eq!(app.count_rows("blobs WHERE purged_at IS NULL").await, 0);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert_all_chains_verify(&app).await;
}

on_both_backends!(
    policies_default_the_ttl_and_refuse_more_than_their_maximum,
    expired_blobs_answer_410_and_a_dry_run_changes_nothing,
    a_sweep_purges_by_each_method_with_one_proof_per_blob,
    held_blobs_survive_sweeps_and_erasure_and_cannot_be_deleted,
    two_replicas_sweeping_at_once_purge_each_blob_exactly_once,
);
