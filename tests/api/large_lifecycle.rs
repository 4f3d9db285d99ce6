//! Large blobs across their life (DESIGN §18, issue 17): a crash mid-upload, delete, purge,
//! erasure and legal hold, damaged objects, key rotation, export and a stalled upload. Each
//! test checks the object store's files as well as what the API answers.

use crate::helpers::*;
use crate::keys::until_complete;
use crate::large::{download_hashed, objects_in, on_s3, until_objects, Synthetic};
use crate::on_both_backends;
use crate::retention::{governed_app, in_secs, ROOT};
use crate::subjects::export_lines;
use base64::Engine;
use bytes::Bytes;
use data_vault::crypto::chunks::CHUNK_SEALED;
use data_vault::startup::OBJECT_LEASE_SECS;
use data_vault::time::{Clock, SystemClock};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: usize = 1024 * 1024;
const BLOBS: &str = "/api/v1/vault/blobs";

/// Streams `envelope` as a raw upload with the query `query`; the new blob's metadata.
async fn upload_large(api: &Api, envelope: &Synthetic, query: &[(&str, &str)]) -> Value {
    let response = api
        .signer()
        .send_streamed(
            BLOBS,
            query,
            reqwest::Body::wrap_stream(envelope.stream()),
            &envelope.sha256_hex(),
        )
        .await
        .unwrap();
    json_with_status(response, 201).await["metadata"].clone()
}

/// The first `mib` MiB of `envelope`, then silence on a connection that stays open.
fn stalling_body(envelope: &Synthetic, mib: usize) -> reqwest::Body {
    let silence = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
    reqwest::Body::wrap_stream(envelope.stream().take(mib).chain(silence))
}

/// An upload of an envelope of about `size` to `server` that sends 3 MiB and then nothing,
/// for a test to kill the server under.
fn stalled_upload(
    server: &ServerProcess,
    creds: &Credentials,
    size: usize,
) -> tokio::task::JoinHandle<anyhow::Result<reqwest::Response>> {
    let api = server.client(creds);
    let envelope = Synthetic::of_about(size);
    let hash = envelope.sha256_hex();
    let body = stalling_body(&envelope, 3);
    tokio::spawn(async move {
        api.signer()
            .send_streamed(BLOBS, &[("scope", "veid")], body, &hash)
            .await
    })
}

/// The object file of blob `id` (objects are named `v1/<blob id>/<random>`).
fn object_of(app: &TestApp, id: &str) -> Option<PathBuf> {
    let dir = format!(
        "{}{id}{}",
        std::path::MAIN_SEPARATOR,
        std::path::MAIN_SEPARATOR
    );
    objects_in(&app.objects_dir())
        .into_iter()
        .find(|path| path.to_string_lossy().contains(&dir))
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Rewrites blob `id`'s object file as `change` makes it, as someone with access to the
/// object store could.
fn tamper(app: &TestApp, id: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let path = object_of(app, id).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    change(&mut bytes);
    std::fs::write(&path, bytes).unwrap();
}

/// Waits until blob `id`'s object is deleted and the journal has forgotten every object.
async fn until_collected(app: &TestApp, id: &str) {
    until(&format!("the object of {id} is deleted"), async || {
        object_of(app, id).is_none()
    })
    .await;
    until_journal_empty(app).await;
}

/// Waits until the `object_gc` journal holds nothing: no object is left to collect.
async fn until_journal_empty(app: &TestApp) {
    until("the object_gc journal is empty", async || {
        app.count_rows("object_gc").await == 0
    })
    .await;
}

/// Blob `id` is answered 500 `internal`, and the read is recorded as an integrity failure.
async fn refused_for_integrity(api: &Api, id: &str) {
    let (status, code) = error_of(api.get_blob_raw(id, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (500, "internal"), "blob {id}");
    let events = api.audit_events(&AuditQuery::default().blob_id(id)).await;
    assert!(
        events.iter().any(|e| e["event_type"] == "blob.read"
            && e["outcome"] == "error"
            && e["denial_reason"] == "integrity"),
        "no integrity failure recorded for {id}: {events:?}"
    );
}

fn listed(page: &Value) -> usize {
    page["blobs"].as_array().unwrap().len()
}

async fn a_server_killed_mid_upload_leaves_no_blob_and_its_object_is_collected(backend: Backend) {
    let mut app = TestApp::spawn_on_manual_clock(backend, |_| {}).await;
    let creds = app.create_client("alice").await;
    app.stop().await;
    let server = ServerProcess::start(&app);
    let upload = stalled_upload(&server, &creds, 8 * MIB);
    // Mid-upload: a sealed batch is in the object, the rest has not come.
    until("the upload wrote a sealed batch", async || {
        objects_in(&app.objects_dir())
            .first()
            .is_some_and(|path| std::fs::metadata(path).unwrap().len() >= MIB as u64)
    })
    .await;
    server.kill9();
    let answer = upload.await.unwrap();
    assert!(answer.is_err(), "the killed server answered: {answer:?}");

    // The crash left the object and its journal entry, and no row.
    let objects = objects_in(&app.objects_dir());
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(app.count_rows("blobs").await, 0);
    assert_eq!(app.count_rows("object_gc").await, 1);

    // Restarted within the upload's lease: nothing is listed, and the object waits through
    // the sweep the server runs at start (which sets the backlog gauge when it is done).
    app.clock().set_millis(SystemClock.now_millis());
    app.start().await;
    until("the first sweep has run", async || {
        app.metric("virtengine_data_vault_object_gc_pending").await == 1.0
    })
    .await;
    let alice = app.client(&creds);
    assert_eq!(
        listed(&alice.list_blobs_json(&ListQuery::default()).await),
        0
    );
    assert_eq!(objects_in(&app.objects_dir()), objects);
    app.stop().await;

    // Restarted once the lease is over: its sweep (which runs at start) deletes the orphan.
    app.clock().advance_secs(OBJECT_LEASE_SECS + 1);
    app.start().await;
    until_objects(&app.objects_dir(), 0).await;
    let collected = "virtengine_data_vault_objects_collected_total";
    until("the collection is counted", async || {
        app.metric(collected).await == 1.0
    })
    .await;
    until_journal_empty(&app).await;
    // (Signed requests would be refused now: the vault's clock is ahead of the client's.)
    assert_eq!(app.count_rows("blobs").await, 0);
}

/// On S3, a server killed mid-upload leaves an unfinished multipart upload, whose id its
/// journal entry holds: once the lease is over (here: made due), the next server's sweep
/// aborts it, so no part stays billed, and no blob ever appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_server_killed_mid_upload_leaves_its_multipart_upload_to_the_sweep() {
    let Some((moto, app, creds, server)) = on_s3().await else {
        return;
    };
    let upload = stalled_upload(&server, &creds, 20 * MIB);
    until("the upload's multipart id is journalled", async || {
        app.count_rows("object_gc WHERE upload_id IS NOT NULL")
            .await
            == 1
    })
    .await;
    assert!(moto.open_uploads().await.contains("<UploadId>"));
    server.kill9();
    assert!(upload.await.unwrap().is_err());
    assert_eq!(app.count_rows("blobs").await, 0);

    app.sql("UPDATE object_gc SET due_at = 0").await;
    let env = moto.process_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let restarted = ServerProcess::start_with(&app, &env);
    until("the sweep aborted the multipart upload", async || {
        !moto.open_uploads().await.contains("<UploadId>")
    })
    .await;
    until_journal_empty(&app).await;
    assert!(moto.object_keys().await.is_empty());
    assert_eq!(app.count_rows("blobs").await, 0);
    drop(restarted);
}

/// `admin objects reconcile` deletes what no blob names (here: an object left behind, as a
/// restore from an older backup leaves them) and nothing else; a dry run only counts.
async fn reconcile_deletes_the_objects_no_blob_names_and_nothing_else(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let creds = app.create_client("alice").await;
    let alice = app.client(&creds);
    let envelope = Synthetic::of_about(3 * MIB);
    let kept = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let kept = kept["id"].as_str().unwrap().to_owned();
    let orphan = app
        .objects_dir()
        .join("v1")
        .join("01a25000-0000-7000-8000-000000000000")
        .join("00112233aabbccdd");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(
        &orphan,
        b"sealed chunks of a blob the database does not know",
    )
    .unwrap();
    // The server's own sweep would race the command's: stop it, as for any admin work on
    // the store.
    app.stop().await;
    let reconcile = |extra: &[&str]| {
        let output = crate::cli::data_vault(&app)
            .args(["admin", "objects", "reconcile", "--json"])
            .args(extra)
            .output()
            .unwrap();
        serde_json::from_str::<Value>(&crate::cli::ok(output)).unwrap()
    };

    let dry = reconcile(&["--dry-run"]);
    assert_eq!(
        dry,
        json!({"dry_run": true, "listed": 2, "orphans": 1, "collected": 0})
    );
    assert!(orphan.exists(), "a dry run deletes nothing");
    assert_eq!(app.count_rows("object_gc").await, 0);

    let done = reconcile(&[]);
    assert_eq!(
        done,
        json!({"dry_run": false, "listed": 2, "orphans": 1, "collected": 1})
    );
    assert!(!orphan.exists());
    assert_eq!(objects_in(&app.objects_dir()).len(), 1);
    assert_eq!(app.count_rows("object_gc").await, 0);
    assert_eq!(
        app.count_rows("audit_events WHERE chain = 'system' AND event_type = 'objects.reconciled'")
            .await,
        2
    );

    app.start().await;
    assert_eq!(
        download_hashed(&app.client(&creds), &kept).await.1,
        envelope.sha256_hex()
    );
}

async fn deleting_a_large_blob_removes_its_object_unless_it_is_held(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(3 * MIB);
    let deleted = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let held = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let (deleted, held) = (
        deleted["id"].as_str().unwrap(),
        held["id"].as_str().unwrap(),
    );
    assert!(object_of(&app, deleted).is_some() && object_of(&app, held).is_some());
    let hold = json!({"reason": "litigation 17"});
    json_with_status(root.put_hold(held, &hold).await, 200).await;

    assert_eq!(alice.delete_blob(deleted).await.status(), 204);
    until_collected(&app, deleted).await;
    let (status, code) = error_of(alice.delete_blob(held).await).await;
    assert_eq!((status, code.as_str()), (409, "legal_hold"));
    // The sweep that took the deleted blob's object had nothing else to take: the held
    // blob's object is not in the journal, and reads back whole.
    assert_eq!(app.count_rows("object_gc").await, 0);
    assert!(object_of(&app, held).is_some());
    assert_eq!(
        download_hashed(&alice, held).await,
        (envelope.len(), envelope.sha256_hex())
    );
}

async fn a_retention_purge_removes_the_object_by_either_method_unless_held(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(3 * MIB);
    let soon = in_secs(&app, 60);
    // `standard` deletes the row, `records` crypto-shreds it (the configuration's policies).
    let deleted = upload_large(
        &alice,
        &envelope,
        &[("scope", "veid"), ("expires_at", &soon)],
    )
    .await;
    let shredded = upload_large(
        &alice,
        &envelope,
        &[
            ("scope", "market"),
            ("retention_policy", "records"),
            ("expires_at", &soon),
        ],
    )
    .await;
    let held = upload_large(
        &alice,
        &envelope,
        &[("scope", "veid"), ("expires_at", &soon)],
    )
    .await;
    let [deleted, shredded, held] = [&deleted, &shredded, &held].map(|m| m["id"].as_str().unwrap());
    json_with_status(root.put_hold(held, &json!({"reason": "audit"})).await, 200).await;
    let held_object = object_of(&app, held).unwrap();
    let held_hash = sha256_of(&held_object);
    assert_eq!(objects_in(&app.objects_dir()).len(), 3);

    app.clock().advance_secs(61);
    let report = root.sweep_json(false).await;
    assert_eq!(
        (report["purged"].as_i64(), report["held"].as_i64()),
        (Some(2), Some(1)),
        "{report}"
    );
    until_collected(&app, deleted).await;
    until_collected(&app, shredded).await;
    let (status, code) = error_of(alice.get_blob(deleted, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    // The crypto-shredded blob leaves its tombstone, which names no object any more.
    let tombstone = json_with_status(alice.get_metadata(shredded).await, 200).await;
    assert!(tombstone["purged_at"].is_string(), "{tombstone}");
    let bare = format!("blobs WHERE id = '{shredded}' AND object_key IS NULL");
    assert_eq!(app.count_rows(&bare).await, 1);
    // The held blob keeps its object, unchanged.
    assert_eq!(objects_in(&app.objects_dir()), vec![held_object.clone()]);
    assert_eq!(sha256_of(&held_object), held_hash);
}

async fn erasure_removes_the_subjects_objects_but_not_a_held_ones(backend: Backend) {
    let app = governed_app(backend, 500).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let bob = app.client(&app.create_client("bob").await);
    let envelope = Synthetic::of_about(3 * MIB);
    let erased = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let held = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let bobs = upload_large(&bob, &envelope, &[("scope", "veid")]).await;
    let [erased, held, bobs] = [&erased, &held, &bobs].map(|m| m["id"].as_str().unwrap());
    json_with_status(
        root.put_hold(held, &json!({"reason": "subpoena"})).await,
        200,
    )
    .await;

    let report = json_with_status(root.erase_subject("alice").await, 200).await;
    assert_eq!(report, json!({"erased": 1, "held": 1}));
    until_collected(&app, erased).await;
    let (status, code) = error_of(alice.get_blob(erased, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (410, "purged"));
    // Alice's held blob (and the key it needs) and Bob's blob stay whole.
    assert_eq!(objects_in(&app.objects_dir()).len(), 2);
    for (api, id) in [(&alice, held), (&bob, bobs)] {
        assert!(object_of(&app, id).is_some(), "{id}");
        assert_eq!(
            download_hashed(api, id).await,
            (envelope.len(), envelope.sha256_hex())
        );
    }
}

async fn a_moved_swapped_or_cut_object_does_not_open(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    // Two batches of sixteen chunks and a few more.
    let envelope = Synthetic::of_about(2 * MIB + 3 * CHUNK_SEALED);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let meta = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
        ids.push(meta["id"].as_str().unwrap().to_owned());
    }
    let [swapped, source, target, cut, late] = [0, 1, 2, 3, 4].map(|i| ids[i].as_str());

    // Two chunks of the first batch change places.
    tamper(&app, swapped, |bytes| {
        let (first, second) = bytes[CHUNK_SEALED..3 * CHUNK_SEALED].split_at_mut(CHUNK_SEALED);
        first.swap_with_slice(second);
    });
    refused_for_integrity(&alice, swapped).await;

    // One blob's object copied over another's (same owner, same size, same store).
    std::fs::copy(
        object_of(&app, source).unwrap(),
        object_of(&app, target).unwrap(),
    )
    .unwrap();
    refused_for_integrity(&alice, target).await;
    assert_eq!(
        download_hashed(&alice, source).await,
        (envelope.len(), envelope.sha256_hex())
    );

    // Cut at a chunk boundary: the new last chunk was not sealed as the last.
    tamper(&app, cut, |bytes| bytes.truncate(8 * CHUNK_SEALED));
    refused_for_integrity(&alice, cut).await;

    // A damage past the first batch (1 MiB) shows only once the answer has begun: it is cut
    // short of its Content-Length, and the failure is counted.
    tamper(&app, late, |bytes| bytes[20 * CHUNK_SEALED + 100] ^= 1);
    let failures = "virtengine_data_vault_object_read_failures_total";
    assert_eq!(app.metric(failures).await, 0.0);
    let response = alice.get_blob_raw(late, &ReadQuery::default()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(envelope.len() as u64));
    let mut body = response.bytes_stream();
    let (mut received, mut broken) = (0, false);
    while let Some(piece) = body.next().await {
        match piece {
            Ok(piece) => received += piece.len(),
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    assert!(
        received < envelope.len(),
        "a damaged object was sent whole ({received} bytes; body error: {broken})"
    );
    until("the failed read is counted", async || {
        app.metric(failures).await == 1.0
    })
    .await;
    // Recorded as granted when the answer began, the read is recorded again as cut short,
    // with how far it got (one 1 MiB batch: the damage is in the second).
    let events = alice
        .audit_events(&AuditQuery::default().blob_id(late))
        .await;
    let reads: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "blob.read")
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(reads.iter().any(|e| e["outcome"] == "granted"), "{reads:?}");
    let cut = reads
        .iter()
        .find(|e| e["outcome"] == "error")
        .unwrap_or_else(|| panic!("the cut read is not recorded: {reads:?}"));
    assert_eq!(cut["denial_reason"], "integrity", "{cut}");
    assert_eq!(cut["details"]["cut_after_bytes"], "1048576", "{cut}");
}

async fn a_key_rotation_rewraps_the_data_key_and_leaves_the_object_alone(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.auth.platform_admins = vec![ROOT.into()]).await;
    let root = app.client(&app.create_client(ROOT).await);
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(3 * MIB);
    let meta = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let id = meta["id"].as_str().unwrap();
    assert_eq!(meta["key_version"], 1);
    let object = object_of(&app, id).unwrap();
    let before = sha256_of(&object);

    let body = json!({"tenant": "owner:alice", "reason": "scheduled", "emergency": false});
    let started = json_with_status(root.rotate_keys(&body).await, 202).await;
    let rotation = started["rotation"]["id"].as_str().unwrap();
    let done = until_complete(&root, rotation, Duration::from_secs(60)).await;
    assert_eq!(done["rewrapped"], 1, "{done}");

    let meta = json_with_status(alice.get_metadata(id).await, 200).await;
    assert_eq!(meta["key_version"], 2, "{meta}");
    assert_eq!(objects_in(&app.objects_dir()), vec![object.clone()]);
    assert_eq!(
        sha256_of(&object),
        before,
        "the rotation rewrote the object"
    );
    assert_eq!(
        download_hashed(&alice, id).await,
        (envelope.len(), envelope.sha256_hex())
    );
}

async fn an_export_carries_a_large_blob_byte_for_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    // Not a multiple of three: base64 quanta straddle the pieces the object is read in.
    let envelope = Synthetic::of_about(3 * MIB + 7);
    let large = upload_large(&alice, &envelope, &[("scope", "veid")]).await;
    let small = alice.create_blob("veid", None).await;

    let lines = export_lines(alice.export_subject("me").await).await;
    let blobs: Vec<&Value> = lines.iter().filter(|l| l["type"] == "blob").collect();
    assert_eq!(blobs.len(), 2);
    let line = blobs
        .iter()
        .find(|l| l["metadata"]["id"] == large["id"])
        .unwrap();
    assert_eq!(line["metadata"], large);
    let data = base64::engine::general_purpose::STANDARD
        .decode(line["data_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(data.len(), envelope.len());
    assert!(data == envelope.bytes(), "the exported blob differs");
    assert!(blobs.iter().any(|l| l["metadata"]["id"] == small.as_str()));
    assert_eq!(lines.last().unwrap()["blobs"], 2);

    // Damaged past its first batch, the large blob cuts the next export short: it lacks its
    // end line, and the trail records the export again as interrupted.
    tamper(&app, large["id"].as_str().unwrap(), |bytes| {
        bytes[20 * CHUNK_SEALED + 100] ^= 1
    });
    let response = alice.export_subject("me").await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    while let Some(Ok(piece)) = body.next().await {
        received.extend_from_slice(&piece);
    }
    assert!(
        !String::from_utf8_lossy(&received).contains(r#""type":"end""#),
        "a cut export must not end as if whole"
    );
    let exports: Vec<Value> = alice
        .audit_events(&AuditQuery::default())
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "subject.export")
        .collect();
    let cut = exports
        .iter()
        .find(|e| e["outcome"] == "error")
        .unwrap_or_else(|| panic!("the cut export is not recorded: {exports:?}"));
    assert_eq!(cut["denial_reason"], "interrupted", "{cut}");
    let sent: usize = cut["details"]["cut_after_bytes"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // At least the subject line and the first MiB of the blob's line went out.
    assert!(sent > 1024 * 1024, "{sent}");
}

async fn a_stalled_upload_is_refused_and_leaves_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.server.request_timeout_secs = 2).await;
    let alice = app.client(&app.create_client("alice").await);
    let envelope = Synthetic::of_about(8 * MIB);
    let response = alice
        .signer()
        .send_streamed(
            BLOBS,
            &[("scope", "veid")],
            stalling_body(&envelope, 2),
            &envelope.sha256_hex(),
        )
        .await
        .unwrap();
    let refused = json_with_status(response, 400).await;
    assert_eq!(refused["code"], "bad_request", "{refused}");
    assert_eq!(
        refused["error"], "the upload stalled: no data for 2 s",
        "{refused}"
    );
    assert_eq!(
        listed(&alice.list_blobs_json(&ListQuery::default()).await),
        0
    );
    until_objects(&app.objects_dir(), 0).await;
    until_journal_empty(&app).await;
    assert_eq!(app.count_rows("blobs").await, 0);
}

on_both_backends!(
    a_server_killed_mid_upload_leaves_no_blob_and_its_object_is_collected,
    reconcile_deletes_the_objects_no_blob_names_and_nothing_else,
    deleting_a_large_blob_removes_its_object_unless_it_is_held,
    a_retention_purge_removes_the_object_by_either_method_unless_held,
    erasure_removes_the_subjects_objects_but_not_a_held_ones,
    a_moved_swapped_or_cut_object_does_not_open,
    a_key_rotation_rewraps_the_data_key_and_leaves_the_object_alone,
    an_export_carries_a_large_blob_byte_for_byte,
    a_stalled_upload_is_refused_and_leaves_nothing,
);
