//! Data-subject requests (DESIGN §13) and the compliance report (§14), over HTTP on both
//! backends: export byte for byte and in bounded memory, erasure, and a report whose numbers
//! equal what the test itself did.

use crate::helpers::*;
use crate::on_both_backends;
use crate::retention::{
    assert_all_chains_verify, governed_app, in_secs, purge_events, upload, ROOT,
};
use base64::Engine;
use serde_json::{json, Value};

/// The lines of an NDJSON export, parsed.
pub async fn export_lines(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn an_export_holds_every_blob_byte_for_byte_and_the_subjects_events(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let bob = app.client(&app.create_client("bob").await);
    app.create_org(
        "acme",
        &[("alice", "service_provider"), ("bob", "administrator")],
    )
    .await;
    let mut stored = std::collections::BTreeMap::new();
    for (i, org) in [None, Some("acme"), None].into_iter().enumerate() {
        let envelope = age_envelope_of_size(800 + i * 100);
        let mut query = UploadQuery::in_scope("market");
        query.org_id = org;
        let response = alice.upload_raw(&envelope, &query).await;
        let id = json_with_status(response, 201).await["metadata"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        stored.insert(id, envelope);
    }
    // Bob's blob is not Alice's; Bob reads Alice's org blob, an event about her blob.
    upload(&bob, &UploadQuery::in_scope("veid")).await;
    let org_blob = stored.keys().nth(1).unwrap().clone();

    let (status, _) = error_of(bob.export_subject("alice").await).await;
    assert_eq!(status, 403, "another principal may not export Alice");
    let lines = export_lines(alice.export_subject("me").await).await;
    assert_eq!(lines[0]["type"], "subject");
    assert_eq!(lines[0]["principal"], "alice");
    let blobs: Vec<&Value> = lines.iter().filter(|l| l["type"] == "blob").collect();
    assert_eq!(blobs.len(), 3);
    for line in &blobs {
        let id = line["metadata"]["id"].as_str().unwrap();
        let data = base64::engine::general_purpose::STANDARD
            .decode(line["data_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(&data, stored.get(id).unwrap(), "blob {id} byte for byte");
        assert_eq!(line["metadata"]["owner"], "alice");
    }
    let events: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "audit_event")
        .collect();
    assert!(events.len() >= 3, "at least the three creates: {events:?}");
    for line in &events {
        let e = &line["event"];
        assert!(e["requester"] == "alice" || e["owner"] == "alice", "{e}");
    }
    assert!(events
        .iter()
        .any(|l| l["event"]["event_type"] == "blob.create"
            && l["event"]["blob_id"] == org_blob.as_str()));
    let end = lines.last().unwrap();
    assert_eq!(
        *end,
        json!({"type": "end", "blobs": 3, "events": events.len()})
    );
    // A platform admin may export anyone; the export is itself audited.
    let by_admin = export_lines(root.export_subject("alice").await).await;
    assert_eq!(by_admin.iter().filter(|l| l["type"] == "blob").count(), 3);
    let own = alice.audit_events(&AuditQuery::default()).await;
    assert!(own
        .iter()
        .any(|e| e["event_type"] == "subject.export" && e["requester"] == ROOT));

    // Erasure: everything Alice owns, then 410 purged, with crypto-shred proofs.
    let (status, _) = error_of(bob.erase_subject("alice").await).await;
    assert_eq!(status, 403);
    let erased = json_with_status(root.erase_subject("alice").await, 200).await;
    assert_eq!(erased, json!({"erased": 3, "held": 0}));
    for id in stored.keys() {
        let (status, code) = error_of(alice.get_blob(id, &ReadQuery::default()).await).await;
        assert_eq!((status, code.as_str()), (410, "purged"));
        let proofs = purge_events(&alice, id).await;
        assert_eq!(proofs.len(), 1);
        assert_eq!(proofs[0]["details"]["purge_method"], "crypto-shred");
        assert_eq!(proofs[0]["requester"], ROOT);
    }
    // Idempotent; an unknown principal is 200 with zero counts.
    let again = json_with_status(root.erase_subject("alice").await, 200).await;
    assert_eq!(again, json!({"erased": 0, "held": 0}));
    let nobody = json_with_status(root.erase_subject("nobody-at-all").await, 200).await;
    assert_eq!(nobody, json!({"erased": 0, "held": 0}));
    // After erasure the export holds no blobs; Bob's blob is untouched.
    let lines = export_lines(alice.export_subject("me").await).await;
    assert_eq!(lines.last().unwrap()["blobs"], 0);
    assert_eq!(
        app.count_rows("blobs WHERE owner = 'bob' AND purged_at IS NULL")
            .await,
        1
    );
    assert_all_chains_verify(&app).await;
}

async fn an_export_of_200_mib_runs_in_bounded_memory(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("alice").await;
    let alice = app.client(&creds);
    const BLOB: usize = 4 * 1024 * 1024;
    // 200 MiB; DATA_VAULT_TEST_EXPORT_MIB sets another size while iterating.
    let mib: usize = std::env::var("DATA_VAULT_TEST_EXPORT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let count = mib / 4;
    let envelope = age_envelope_of_size(BLOB);
    for _ in 0..count {
        let response = alice
            .upload_raw(&envelope, &UploadQuery::in_scope("veid"))
            .await;
        assert_eq!(response.status(), 201);
    }
    // The uploads raised this process's memory; a fresh server process exports.
    let server = ServerProcess::start(&app);
    let idle = server.peak_rss_bytes();
    let response = server.client(&creds).export_subject("me").await;
    assert_eq!(response.status(), 200);
    let mut response = response;
    let (mut bytes, mut lines, mut tail) = (0usize, 0usize, Vec::new());
    while let Some(chunk) = response.chunk().await.unwrap_or_else(|e| {
        panic!(
            "export cut after {bytes} bytes: {e}; log: {:?}",
            server.log_lines_with("export")
        )
    }) {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        tail.extend_from_slice(&chunk);
        tail.drain(..tail.len().saturating_sub(256));
    }
    assert!(bytes > count * BLOB, "exported {bytes} bytes");
    let tail = String::from_utf8(tail).unwrap();
    let end: Value = serde_json::from_str(tail.trim_end().rsplit('\n').next().unwrap()).unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["blobs"], count);
    // The creates, the export, and the registration of the client.
    assert_eq!(end["events"], count + 2);
    assert_eq!(lines, 1 + count + (count + 2) + 1);
    let peak = server.peak_rss_bytes();
    eprintln!(
        "export of {} MiB: server VmHWM {} MiB (idle {} MiB)",
        bytes / (1024 * 1024),
        peak / (1024 * 1024),
        idle / (1024 * 1024)
    );
    // Streaming, not buffering: the peak stays far below what went out (266 MiB). The
    // 100 MiB product target is not met reliably yet (docs/performance.md says why).
    assert!(
        peak < 160 * 1024 * 1024,
        "the server's peak RSS exporting {bytes} bytes was {peak} bytes (idle {idle})"
    );
    assert!(server.terminate());
}

async fn the_compliance_report_equals_counts_made_in_the_test(backend: Backend) {
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
    let in_10_days = in_secs(&app, 10 * 86_400);
    let in_40_days = in_secs(&app, 40 * 86_400);
    // veid: 2 personal forever, 1 expiring in 10 days (records), 1 expiring soon (purged).
    upload(&alice, &UploadQuery::in_scope("veid")).await;
    upload(&alice, &UploadQuery::in_scope("veid")).await;
    upload(
        &alice,
        &UploadQuery::in_scope("veid")
            .retention_policy("records")
            .expires_at(&in_10_days),
    )
    .await;
    upload(&alice, &UploadQuery::in_scope("veid").expires_at(&soon)).await;
    // market in acme: 1 in 40 days, 1 soon and held (expired pending, held), 1 soon (purged).
    upload(
        &alice,
        &UploadQuery::in_scope("market")
            .org_id("acme")
            .expires_at(&in_40_days),
    )
    .await;
    let held = upload(
        &alice,
        &UploadQuery::in_scope("market")
            .org_id("acme")
            .expires_at(&soon),
    )
    .await;
    upload(
        &alice,
        &UploadQuery::in_scope("market")
            .org_id("acme")
            .expires_at(&soon),
    )
    .await;
    json_with_status(
        boss.put_hold(held["id"].as_str().unwrap(), &json!({"reason": "audit"}))
            .await,
        200,
    )
    .await;
    app.clock().advance_secs(61);
    let swept = root.sweep_json(false).await;
    assert_eq!(swept["purged"], 2);

    let report = json_with_status(root.compliance_report(None).await, 200).await;
    assert_eq!(
        report["summary"],
        json!({"total_blobs": 5, "active": 4, "expired_pending_purge": 1, "held": 1,
               "purged_last_30_days": 2})
    );
    assert_eq!(
        report["by_scope"],
        json!({
            "veid": {"active": 3, "expiring_next_30_days": 1,
                     "retention_policies": {"standard": 2, "records": 1},
                     "key_versions": {"1": 3}},
            "market": {"active": 1, "expiring_next_30_days": 0,
                       "retention_policies": {"standard": 1},
                       "key_versions": {"1": 1}}
        })
    );
    // Tenants with keys: owner:alice and org:acme, both new.
    assert_eq!(report["keys"]["tenant_keys"], 2);
    assert_eq!(report["keys"]["oldest_active_age_days"], 0);
    assert_eq!(report["keys"]["past_cryptoperiod"], json!([]));
    let chains = data_vault::store::connect(&app.config.storage.database_url, 1)
        .await
        .unwrap()
        .audit_chains()
        .await
        .unwrap()
        .len();
    // The report's own event lands on `system`, which may have been created by it.
    let audit = &report["audit"];
    assert!(
        audit["chains"] == chains || audit["chains"] == chains - 1,
        "{audit} vs {chains}"
    );
    assert_eq!(audit["invalid_chains"], 0);
    assert!(audit["last_verified_at"].is_string());
    assert_eq!(report["purge"]["purged_last_sweep"], 2);
    assert!(report["purge"]["last_sweep_at"].is_string());

    // An org administrator gets its own org's numbers; others are refused.
    let org = json_with_status(boss.compliance_report(Some("acme")).await, 200).await;
    assert_eq!(
        org["summary"],
        json!({"total_blobs": 2, "active": 1, "expired_pending_purge": 1, "held": 1,
               "purged_last_30_days": 1})
    );
    assert_eq!(org["keys"]["tenant_keys"], 1);
    assert_eq!(org["audit"]["chains"], 1);
    let (status, _) = error_of(boss.compliance_report(None).await).await;
    assert_eq!(status, 403);
    let (status, _) = error_of(alice.compliance_report(Some("acme")).await).await;
    assert_eq!(status, 403);
    assert_all_chains_verify(&app).await;
}

on_both_backends!(
    an_export_holds_every_blob_byte_for_byte_and_the_subjects_events,
    an_export_of_200_mib_runs_in_bounded_memory,
    the_compliance_report_equals_counts_made_in_the_test,
);
