//! Input with one accepted spelling: blob ids only in canonical form, tags without hidden
//! characters. Every other spelling is a 400 that changes nothing.

use crate::helpers::*;
use crate::on_both_backends;
use serde_json::json;

const BLOBS: &str = "/api/v1/vault/blobs";

async fn blob_ids_are_accepted_only_in_canonical_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let id = client.create_blob("veid", None).await;
    assert!(
        id.bytes().any(|b| b.is_ascii_lowercase()),
        "the id needs a letter for its case to matter: {id}"
    );
    let simple = id.replace('-', "");
    let mut mixed = id.clone();
    let letter = id.find(|c: char| c.is_ascii_lowercase()).unwrap();
    mixed.replace_range(letter..=letter, &id[letter..=letter].to_uppercase());
    let spellings = [
        id.to_uppercase(),
        mixed,
        format!("{{{id}}}"),
        simple.clone(),
        simple.to_uppercase(),
        format!("urn:uuid:{id}"),
    ];
    let none = ReadQuery::default();
    for spelling in &spellings {
        let answers = [
            (
                format!("GET {BLOBS}/{spelling}"),
                client.get_blob(spelling, &none).await,
            ),
            (
                format!("GET {BLOBS}/{spelling}/metadata"),
                client.get_metadata(spelling).await,
            ),
            (
                format!("DELETE {BLOBS}/{spelling}"),
                client.delete_blob(spelling).await,
            ),
            (
                format!("{BLOBS}?cursor={spelling}"),
                client
                    .list_blobs(&ListQuery::default().cursor(spelling))
                    .await,
            ),
            (
                format!("/api/v1/vault/audit?blob_id={spelling}"),
                client.audit(&AuditQuery::default().blob_id(spelling)).await,
            ),
        ];
        for (request, response) in answers {
            let (status, code) = error_of(response).await;
            assert_eq!((status, code.as_str()), (400, "bad_request"), "{request}");
        }
    }

    // Untouched: still there, and only its creation was recorded.
    let response = client.get_blob(&id, &none).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.count_rows("blobs").await, 1);
    let events = client
        .audit_events(&AuditQuery::default().blob_id(&id))
        .await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(!types.contains(&"blob.delete"), "{types:?}");
}

async fn tags_with_hidden_characters_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        age_envelope_of_size(512),
    );
    for tags in [
        json!({"ticket": "T-42\u{202E}txt.exe"}),
        json!({"tick\u{200B}et": "T-42"}),
        json!({"ticket": "\u{2066}T-42\u{2069}"}),
        json!({"ticket": "\u{FEFF}T-42"}),
        json!({"ticket": "T-42\u{2028}forged: line"}),
    ] {
        let body = json!({"scope": "veid", "payload_base64": payload, "tags": tags});
        let response = client.upload_json(&body).await;
        assert_eq!(response.status(), 400, "{tags}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["code"], "bad_request");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains("invisible characters"), "{message}");
    }
    assert_eq!(app.count_rows("blobs").await, 0);
}

on_both_backends!(
    blob_ids_are_accepted_only_in_canonical_form,
    tags_with_hidden_characters_are_refused,
);
