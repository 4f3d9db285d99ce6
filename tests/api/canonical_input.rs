//! Input with one accepted spelling: blob ids only in canonical form, tags without hidden
//! characters. Every other spelling is a 400 that changes nothing.

use crate::helpers::*;
use crate::on_both_backends;
use reqwest::Method;
use serde_json::{json, Value};

const BLOBS: &str = "/api/v1/vault/blobs";

async fn blob_ids_are_accepted_only_in_canonical_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client(&app.create_client("svc").await);
    let id = upload(&client, "veid", None).await;
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
    for spelling in &spellings {
        for (method, suffix) in [
            (Method::GET, ""),
            (Method::GET, "/metadata"),
            (Method::DELETE, ""),
        ] {
            let path = format!("{BLOBS}/{spelling}{suffix}");
            let response = client
                .send(method.clone(), &path, &[], None, None)
                .await
                .unwrap();
            let (status, code) = error_of(response).await;
            assert_eq!(
                (status, code.as_str()),
                (400, "bad_request"),
                "{method} {path}"
            );
        }
        for (path, parameter) in [(BLOBS, "cursor"), ("/api/v1/vault/audit", "blob_id")] {
            let response = client
                .send(Method::GET, path, &[(parameter, spelling)], None, None)
                .await
                .unwrap();
            let (status, code) = error_of(response).await;
            assert_eq!(
                (status, code.as_str()),
                (400, "bad_request"),
                "{path}?{parameter}={spelling}"
            );
        }
    }

    // Untouched: still there, and only its creation was recorded.
    let response = client
        .send(Method::GET, &format!("{BLOBS}/{id}"), &[], None, None)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.count_rows("blobs").await, 1);
    let response = client
        .send(
            Method::GET,
            "/api/v1/vault/audit",
            &[("blob_id", &id)],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events: Value = response.json().await.unwrap();
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
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
        let bytes = serde_json::to_vec(&body).unwrap();
        let response = client
            .send(
                Method::POST,
                BLOBS,
                &[],
                Some(data_vault::cli::Body {
                    bytes: &bytes,
                    content_type: "application/json",
                }),
                None,
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{tags}");
        let error: Value = response.json().await.unwrap();
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
