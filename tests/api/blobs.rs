//! Storing and fetching envelopes end to end.

use crate::helpers::*;
use crate::on_both_backends;
use base64::Engine;
use data_vault::cli::VaultClient;
use reqwest::Method;
use serde_json::{json, Value};

const TEN_MIB: usize = 10 * 1024 * 1024;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn put_json(client: &VaultClient, body: &Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let body = data_vault::cli::Body {
        bytes: &bytes,
        content_type: "application/json",
    };
    client
        .send(Method::POST, "/api/v1/vault/blobs", &[], Some(body), None)
        .await
        .unwrap()
}

async fn get_raw(client: &VaultClient, id: &str) -> reqwest::Response {
    let path = format!("/api/v1/vault/blobs/{id}");
    client
        .send(
            Method::GET,
            &path,
            &[],
            None,
            Some("application/octet-stream"),
        )
        .await
        .unwrap()
}

async fn get_json(client: &VaultClient, id: &str, query: &[(&str, &str)]) -> reqwest::Response {
    let path = format!("/api/v1/vault/blobs/{id}");
    client
        .send(Method::GET, &path, query, None, None)
        .await
        .unwrap()
}

async fn created_id(response: reqwest::Response) -> (String, Value) {
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let body: Value = response.json().await.unwrap();
    (
        body["metadata"]["id"].as_str().unwrap().to_owned(),
        body["metadata"].clone(),
    )
}

async fn listed_count(client: &VaultClient) -> usize {
    let response = client
        .send(Method::GET, "/api/v1/vault/blobs", &[], None, None)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["blobs"].as_array().unwrap().len()
}

async fn four_kib_envelope_round_trips_byte_for_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let envelope = age_envelope_of_size(4096);

    let (raw_id, meta) = created_id(put_raw(&client, &envelope, &[("scope", "veid")]).await).await;
    assert_eq!(meta["size"], 4096);
    assert_eq!(meta["owner"], "svc");
    assert_eq!(meta["scope"], "veid");
    assert_eq!(meta["content_hash"], data_vault_auth::sha256_hex(&envelope));
    assert_eq!(meta["key_version"], 1);
    let fetched = get_raw(&client, &raw_id).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), envelope.as_slice());

    let (json_id, _) = created_id(
        put_json(
            &client,
            &json!({
                "scope": "support",
                "payload_base64": B64.encode(&envelope),
                "tags": {"ticket": "T-42"},
                "retention_policy": "short",
                "expires_at": "2099-01-01T00:00:00Z",
            }),
        )
        .await,
    )
    .await;
    let fetched = get_json(&client, &json_id, &[]).await;
    assert_eq!(fetched.status(), 200);
    let body: Value = fetched.json().await.unwrap();
    assert_eq!(
        B64.decode(body["data_base64"].as_str().unwrap()).unwrap(),
        envelope
    );
    assert_eq!(body["metadata"]["tags"]["ticket"], "T-42");
    assert_eq!(body["metadata"]["retention_policy"], "short");
    assert_eq!(body["metadata"]["expires_at"], "2099-01-01T00:00:00Z");

    let meta_path = format!("/api/v1/vault/blobs/{json_id}/metadata");
    let meta = client
        .send(Method::GET, &meta_path, &[], None, None)
        .await
        .unwrap();
    assert_eq!(meta.status(), 200);
    let meta: Value = meta.json().await.unwrap();
    assert_eq!(meta["id"], json_id.as_str());
    assert!(meta.get("data_base64").is_none());
}

async fn ten_mib_envelope_round_trips_and_one_byte_more_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);

    let envelope = age_envelope_of_size(TEN_MIB);
    let (id, _) = created_id(put_raw(&client, &envelope, &[("scope", "market")]).await).await;
    let fetched = get_raw(&client, &id).await.bytes().await.unwrap();
    assert!(
        fetched.as_ref() == envelope.as_slice(),
        "10 MiB envelope differs after the round trip"
    );
    let (json_id, _) = created_id(
        put_json(
            &client,
            &json!({"scope": "market", "content_base64": B64.encode(&envelope)}),
        )
        .await,
    )
    .await;
    let body: Value = get_json(&client, &json_id, &[]).await.json().await.unwrap();
    assert!(B64.decode(body["data_base64"].as_str().unwrap()).unwrap() == envelope);

    let too_big = age_envelope_of_size(TEN_MIB + 1);
    let before = app.count_rows("blobs").await;
    let (status, code) = error_of(put_raw(&client, &too_big, &[("scope", "market")]).await).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    let (status, code) = error_of(
        put_json(
            &client,
            &json!({"scope": "market", "payload_base64": B64.encode(&too_big)}),
        )
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

async fn plaintext_upload_is_refused_as_invalid_envelope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let (status, code) =
        error_of(put_raw(&client, b"passport scan, unencrypted", &[("scope", "veid")]).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));
    let armored = b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCg==\n-----END AGE ENCRYPTED FILE-----\n";
    let (status, code) = error_of(put_raw(&client, armored, &[("scope", "veid")]).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_envelope"));
    let (status, code) = error_of(
        put_json(
            &client,
            &json!({"scope": "veid", "payload_base64": B64.encode(b"{\"ssn\": 1}")}),
        )
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
    let (status, code) = error_of(get_raw(&client, &id).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let path = format!("/api/v1/vault/blobs/{id}/metadata");
    let (status, code) = error_of(
        client
            .send(Method::GET, &path, &[], None, None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let path = format!("/api/v1/vault/blobs/{id}");
    let (status, code) = error_of(
        client
            .send(Method::DELETE, &path, &[], None, None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code) = error_of(get_raw(&client, "not-a-uuid").await).await;
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
        let (status, code) = error_of(put_json(&client, &case).await).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{case}");
    }
    let (status, code) =
        error_of(put_raw(&client, &envelope, &[("scope", "veid"), ("owner", "x")]).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, code) = error_of(
        put_raw(
            &client,
            &envelope,
            &[("scope", "veid"), ("scope", "market")],
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let body = data_vault::cli::Body {
        bytes: &envelope,
        content_type: "text/plain",
    };
    let response = client
        .send(
            Method::POST,
            "/api/v1/vault/blobs",
            &[("scope", "veid")],
            Some(body),
            None,
        )
        .await
        .unwrap();
    let (status, code) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert_eq!(app.count_rows("blobs").await, 0);
}

async fn deleted_blob_is_gone_and_others_blobs_are_invisible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.client(&app.create_client("alice").await);
    let bob = app.client(&app.create_client("bob").await);
    let (id, _) =
        created_id(put_raw(&alice, &age_envelope_of_size(512), &[("scope", "veid")]).await).await;

    let (status, code) = error_of(get_raw(&bob, &id).await).await;
    assert_eq!(
        (status, code.as_str()),
        (403, "forbidden"),
        "a personal blob is its owner's alone"
    );
    let path = format!("/api/v1/vault/blobs/{id}");
    let (status, code) = error_of(
        bob.send(Method::DELETE, &path, &[], None, None)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert_eq!(listed_count(&bob).await, 0);

    let response = alice
        .send(Method::DELETE, &path, &[], None, None)
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = error_of(get_raw(&alice, &id).await).await;
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
            created_id(put_raw(&client, &envelope, &[("scope", scope)]).await)
                .await
                .0,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut query = vec![("limit", "2")];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let page: Value = client
            .send(Method::GET, "/api/v1/vault/blobs", &query, None, None)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
        .send(
            Method::GET,
            "/api/v1/vault/blobs",
            &[("scope", "veid")],
            None,
            None,
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(veid["blobs"].as_array().unwrap().len(), 3);
    for bad in [
        [("limit", "0")],
        [("limit", "many")],
        [("cursor", "zzz")],
        [("unknown", "1")],
    ] {
        let response = client
            .send(Method::GET, "/api/v1/vault/blobs", &bad, None, None)
            .await
            .unwrap();
        assert_eq!(error_of(response).await.0, 400, "{bad:?}");
    }
}

async fn expired_blob_answers_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let (id, _) = created_id(
        put_raw(
            &client,
            &age_envelope_of_size(300),
            &[("scope", "veid"), ("expires_at", "2099-01-01T00:00:00Z")],
        )
        .await,
    )
    .await;
    app.sql(&format!(
        "UPDATE blobs SET expires_at = 1000 WHERE id = '{id}'"
    ))
    .await;
    let (status, code) = error_of(get_raw(&client, &id).await).await;
    assert_eq!((status, code.as_str()), (410, "expired"));
}

async fn org_blobs_need_membership_to_create(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let client = app.client(&creds);
    let envelope = age_envelope_of_size(300);
    let (status, code) = error_of(
        put_raw(
            &client,
            &envelope,
            &[("scope", "market"), ("org_id", "acme")],
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));

    app.create_org("acme", &[("svc", "")]).await;

    let (_, meta) = created_id(
        put_raw(
            &client,
            &envelope,
            &[("scope", "market"), ("org_id", "acme")],
        )
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
            created_id(put_raw(&app.client(&creds), &envelope, &[("scope", scope)]).await)
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
        let fetched = get_raw(&client, &id).await;
        assert_eq!(fetched.status(), 200);
        assert_eq!(fetched.bytes().await.unwrap().as_ref(), envelope.as_slice());
    }
}

async fn health_and_readiness_answer_without_auth(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["database"], "ok");
    assert!(ready["timestamp"].as_str().is_some());
    let (status, code) = error_of(
        app.http
            .get(app.url("/api/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
}

on_both_backends!(
    four_kib_envelope_round_trips_byte_for_byte,
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
