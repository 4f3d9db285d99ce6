//! Storing and fetching envelopes end to end.

use crate::helpers::*;
use crate::on_both_backends;
use base64::Engine;
use serde_json::{json, Value};

const TEN_MIB: usize = 10 * 1024 * 1024;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn created_id(response: reqwest::Response) -> (String, Value) {
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let body: Value = response.json().await.unwrap();
    (
        body["metadata"]["id"].as_str().unwrap().to_owned(),
        body["metadata"].clone(),
    )
}

async fn listed_count(client: &Api) -> usize {
    let body = client.list_blobs_json(&ListQuery::default()).await;
    body["blobs"].as_array().unwrap().len()
}

async fn four_kib_envelope_round_trips_byte_for_byte(backend: Backend) {
    // A blob's retention policy must exist (DESIGN §12): this one comes from the configuration.
    let app = TestApp::spawn_with(backend, |config| {
        config.retention.policies.insert(
            "short".into(),
            data_vault::retention::PolicySettings {
                max_retention_days: None,
                default_ttl_days: None,
                purge_method: "crypto-shred".into(),
                description: None,
            },
        );
    })
    .await;
    let client = app.client(&app.create_client("svc").await);
    let envelope = age_envelope_of_size(4096);

    let (raw_id, meta) = created_id(
        client
            .upload_raw(&envelope, &UploadQuery::in_scope("veid"))
            .await,
    )
    .await;
    assert_eq!(meta["size"], 4096);
    assert_eq!(meta["owner"], "svc");
    assert_eq!(meta["scope"], "veid");
    assert_eq!(meta["content_hash"], data_vault_auth::sha256_hex(&envelope));
    assert_eq!(meta["key_version"], 1);
    let fetched = client.get_blob_raw(&raw_id, &ReadQuery::default()).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), envelope.as_slice());

    let (json_id, _) = created_id(
        client
            .upload_json(&json!({
                "scope": "support",
                "payload_base64": B64.encode(&envelope),
                "tags": {"ticket": "T-42"},
                "retention_policy": "short",
                "expires_at": "2099-01-01T00:00:00Z",
            }))
            .await,
    )
    .await;
    let fetched = client.get_blob(&json_id, &ReadQuery::default()).await;
    assert_eq!(fetched.status(), 200);
    let body: Value = fetched.json().await.unwrap();
    assert_eq!(
        B64.decode(body["data_base64"].as_str().unwrap()).unwrap(),
        envelope
    );
    assert_eq!(body["metadata"]["tags"]["ticket"], "T-42");
    assert_eq!(body["metadata"]["retention_policy"], "short");
    assert_eq!(body["metadata"]["expires_at"], "2099-01-01T00:00:00Z");

    let meta = client.get_metadata(&json_id).await;
    assert_eq!(meta.status(), 200);
    let meta: Value = meta.json().await.unwrap();
    assert_eq!(meta["id"], json_id.as_str());
    assert!(meta.get("data_base64").is_none());
}

/// At a configured limit of 10 MiB (raw uploads allow 5 GiB by default; JSON carries 10 MiB
/// whatever the limit), both forms round-trip 10 MiB and refuse one byte more.
async fn ten_mib_envelope_round_trips_and_one_byte_more_is_refused(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.server.max_payload_bytes = TEN_MIB).await;
    let client = app.client(&app.create_client("svc").await);

    let envelope = age_envelope_of_size(TEN_MIB);
    let (id, _) = created_id(
        client
            .upload_raw(&envelope, &UploadQuery::in_scope("market"))
            .await,
    )
    .await;
    let fetched = client
        .get_blob_raw(&id, &ReadQuery::default())
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        fetched.as_ref() == envelope.as_slice(),
        "10 MiB envelope differs after the round trip"
    );
    let (json_id, _) = created_id(
        client
            .upload_json(&json!({"scope": "market", "content_base64": B64.encode(&envelope)}))
            .await,
    )
    .await;
    let body: Value = client
        .get_blob(&json_id, &ReadQuery::default())
        .await
        .json()
        .await
        .unwrap();
    assert!(B64.decode(body["data_base64"].as_str().unwrap()).unwrap() == envelope);

    let too_big = age_envelope_of_size(TEN_MIB + 1);
    let before = app.count_rows("blobs").await;
    let (status, code) = error_of(
        client
            .upload_raw(&too_big, &UploadQuery::in_scope("market"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    let (status, code) = error_of(
        client
            .upload_json(&json!({"scope": "market", "payload_base64": B64.encode(&too_big)}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    assert_eq!(
        app.count_rows("blobs").await,
        before,
        "nothing stored for refused uploads"
    );
}

async fn a_raw_upload_carries_tags_in_its_query(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let envelope = age_envelope_of_size(300);
    let tags = r#"{"ticket":"T-42","kind":"log bundle"}"#;
    let (_, created) = created_id(
        client
            .upload_raw(&envelope, &UploadQuery::in_scope("support").tags(tags))
            .await,
    )
    .await;
    assert_eq!(
        created["tags"],
        json!({"ticket": "T-42", "kind": "log bundle"})
    );

    let too_many = serde_json::to_string(
        &(0..33)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    // Legal tags, but more than a query string carries: said so (JSON uploads carry them).
    let long = serde_json::to_string(
        &(0..20)
            .map(|i| (format!("k{i}"), "v".repeat(250)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    for (bad, said) in [
        (long.as_str(), "query string longer than 4096 bytes"),
        ("ticket=T-42", "JSON object"),
        (r#"{"ticket": 42}"#, "JSON object"),
        (too_many.as_str(), "at most 32 tags"),
    ] {
        let response = client
            .upload_raw(&envelope, &UploadQuery::in_scope("support").tags(bad))
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
        assert!(
            body["error"].as_str().unwrap_or_default().contains(said),
            "{bad}: {body}"
        );
    }
    assert_eq!(
        app.count_rows("blobs").await,
        1,
        "nothing stored for refused uploads"
    );
}

async fn plaintext_upload_is_refused_as_invalid_envelope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let (status, code) = error_of(
        client
            .upload_raw(
                b"passport scan, unencrypted",
                &UploadQuery::in_scope("veid"),
            )
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));
    let armored = b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCg==\n-----END AGE ENCRYPTED FILE-----\n";
    let (status, code) = error_of(
        client
            .upload_raw(armored, &UploadQuery::in_scope("veid"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));
    let (status, code) = error_of(
        client
            .upload_json(&json!({"scope": "veid", "payload_base64": B64.encode(b"{\"ssn\": 1}")}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));
    assert_eq!(app.count_rows("blobs").await, 0);
    assert_eq!(listed_count(&client).await, 0);
}

async fn unknown_id_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let id = uuid::Uuid::now_v7().to_string();
    let (status, code) = error_of(client.get_blob_raw(&id, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code) = error_of(client.get_metadata(&id).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code) = error_of(client.delete_blob(&id).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code) = error_of(
        client
            .get_blob_raw("not-a-uuid", &ReadQuery::default())
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
}

async fn bad_uploads_get_clear_errors_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let envelope = age_envelope_of_size(1024);
    let payload = B64.encode(&envelope);
    let cases: Vec<Value> = vec![
        json!({"scope": "nope", "payload_base64": payload}),
        json!({"scope": "veid"}),
        json!({"scope": "veid", "payload_base64": payload, "content_base64": payload}),
        json!({"scope": "veid", "payload_base64": "%%%"}),
        json!({"scope": "veid", "payload_base64": payload, "owner": "someone-else"}),
        json!({"scope": "veid", "payload_base64": payload, "expires_at": "yesterday"}),
        json!({"scope": "veid", "payload_base64": payload, "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"scope": "veid", "payload_base64": payload, "org_id": "Not Valid"}),
        json!({"scope": "veid", "payload_base64": payload, "tags": {"k": "v\u{0007}"}}),
    ];
    for case in cases {
        let (status, code) = error_of(client.upload_json(&case).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{case}");
    }
    let unknown = UploadQuery::in_scope("veid").param("owner", "x");
    let (status, code) = error_of(client.upload_raw(&envelope, &unknown).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let repeated = UploadQuery::in_scope("veid").param("scope", "market");
    let (status, code) = error_of(client.upload_raw(&envelope, &repeated).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let response = client
        .upload_bytes(&envelope, "text/plain", &UploadQuery::in_scope("veid"))
        .await;
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert_eq!(app.count_rows("blobs").await, 0);
}

async fn deleted_blob_is_gone_and_others_blobs_are_invisible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let bob = app.client(&app.create_client("bob").await);
    let (id, _) = created_id(
        alice
            .upload_raw(&age_envelope_of_size(512), &UploadQuery::in_scope("veid"))
            .await,
    )
    .await;

    let (status, code) = error_of(bob.get_blob_raw(&id, &ReadQuery::default()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (403, "forbidden"),
        "a personal blob is its owner's alone"
    );
    let (status, code) = error_of(bob.delete_blob(&id).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert_eq!(listed_count(&bob).await, 0);

    let response = alice.delete_blob(&id).await;
    assert_eq!(response.status(), 204);
    let (status, _) = error_of(alice.get_blob_raw(&id, &ReadQuery::default()).await).await;
    assert_eq!(status, 404);
    assert_eq!(app.count_rows("blobs").await, 0);
}

async fn listing_pages_through_every_blob_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let envelope = age_envelope_of_size(256);
    let mut created = Vec::new();
    for scope in ["veid", "veid", "market", "veid", "support"] {
        created.push(
            created_id(
                client
                    .upload_raw(&envelope, &UploadQuery::in_scope(scope))
                    .await,
            )
            .await
            .0,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut query = ListQuery::default().limit("2");
        if let Some(c) = &cursor {
            query = query.cursor(c);
        }
        let page: Value = client.list_blobs(&query).await.json().await.unwrap();
        let ids: Vec<String> = page["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 2);
        seen.extend(ids);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each blob exactly once");

    let veid: Value = client
        .list_blobs(&ListQuery::default().scope("veid"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(veid["blobs"].as_array().unwrap().len(), 3);
    for bad in [
        ListQuery::default().limit("0"),
        ListQuery::default().limit("many"),
        ListQuery::default().cursor("zzz"),
        ListQuery::default().param("unknown", "1"),
    ] {
        let response = client.list_blobs(&bad).await;
        assert_eq!(error_of(response).await.0, 400, "{bad:?}");
    }
}

async fn expired_blob_answers_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let (id, _) = created_id(
        client
            .upload_raw(
                &age_envelope_of_size(300),
                &UploadQuery::in_scope("veid").expires_at("2099-01-01T00:00:00Z"),
            )
            .await,
    )
    .await;
    app.sql(&format!(
        "UPDATE blobs SET expires_at = 1000 WHERE id = '{id}'"
    ))
    .await;
    let (status, code) = error_of(client.get_blob_raw(&id, &ReadQuery::default()).await).await;
    assert_eq!((status, code.as_str()), (410, "expired"));
}

async fn org_blobs_need_membership_to_create(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let client = app.client(&creds);
    let envelope = age_envelope_of_size(300);
    let (status, code) = error_of(
        client
            .upload_raw(&envelope, &UploadQuery::in_scope("market").org_id("acme"))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));

    app.create_org("acme", &[("svc", "")]).await;

    let (_, meta) = created_id(
        client
            .upload_raw(&envelope, &UploadQuery::in_scope("market").org_id("acme"))
            .await,
    )
    .await;
    assert_eq!(meta["org_id"], "acme");
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"virtengine_data_vault_access_denied_total{action="create",scope="market"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"virtengine_data_vault_access_total{action="create",scope="market",success="true"} 1"#
        ),
        "{metrics}"
    );
}

async fn blobs_survive_a_restart(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let envelope = age_envelope_of_size(4096);
    let mut ids = Vec::new();
    for scope in ["veid", "support", "market", "audit"] {
        ids.push(
            created_id(
                app.client(&creds)
                    .upload_raw(&envelope, &UploadQuery::in_scope(scope))
                    .await,
            )
            .await
            .0,
        );
    }
    let key_before = std::fs::read(&app.config.keys.master_key_file).unwrap();
    app.restart().await;
    assert_eq!(
        std::fs::read(&app.config.keys.master_key_file).unwrap(),
        key_before,
        "master key reused, not regenerated"
    );
    let client = app.client(&creds);
    for id in ids {
        let fetched = client.get_blob_raw(&id, &ReadQuery::default()).await;
        assert_eq!(fetched.status(), 200);
        assert_eq!(fetched.bytes().await.unwrap().as_ref(), envelope.as_slice());
    }
}

async fn health_and_readiness_answer_without_auth(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = app.anonymous();
    let health = anonymous.healthz().await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: Value = anonymous.readyz().await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], "ok");
    assert!(ready["timestamp"].as_str().is_some());
    let (status, code) = error_of(anonymous.get("/api/v1/nothing-here").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
}

on_both_backends!(
    four_kib_envelope_round_trips_byte_for_byte,
    a_raw_upload_carries_tags_in_its_query,
    ten_mib_envelope_round_trips_and_one_byte_more_is_refused,
    plaintext_upload_is_refused_as_invalid_envelope,
    unknown_id_is_not_found,
    bad_uploads_get_clear_errors_and_store_nothing,
    deleted_blob_is_gone_and_others_blobs_are_invisible,
    listing_pages_through_every_blob_once,
    expired_blob_answers_gone,
    org_blobs_need_membership_to_create,
    blobs_survive_a_restart,
    health_and_readiness_answer_without_auth,
);
