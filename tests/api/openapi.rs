//! The OpenAPI document (DESIGN §17): served without authentication, equal to the committed
//! `docs/openapi.json`, and describing routes that exist and demand a signature.
//!
//! Regenerate the committed file after changing an annotation:
//! `DATA_VAULT_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::`.

use crate::helpers::*;
use crate::on_both_backends;
use reqwest::Method;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

async fn served(app: &TestApp) -> String {
    let response = app.anonymous().get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200, "served without a signature");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.text().await.unwrap()
}

/// Every path the routers register (`.route("...")` in `src/http`), read from the source so
/// that a route added without an annotation fails here instead of going undocumented.
fn routed_paths() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let literal = rest.trim_start();
            if let Some(literal) = literal.strip_prefix('"') {
                let end = literal.find('"').unwrap();
                paths.push(literal[..end].to_owned());
            }
        }
    }
    paths
}

#[tokio::test]
async fn every_routed_path_is_documented() {
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap()).unwrap();
    let paths = routed_paths();
    assert!(paths.len() >= 20, "{paths:?}");
    for path in paths {
        // Test-only routers inside src/http (e.g. `/whoami`) are not part of the API.
        if path.starts_with("/api/v1/") || path == "/healthz" || path == "/readyz" {
            assert!(
                document["paths"][&path].is_object(),
                "{path} is routed but not in the OpenAPI document: annotate its handler with \
                 #[utoipa::path] and list it in src/http/openapi.rs"
            );
        }
    }
}

on_both_backends!(
    the_served_document_equals_docs_openapi_json,
    every_documented_signed_operation_exists_and_demands_a_signature,
);

async fn the_served_document_equals_docs_openapi_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let document = served(&app).await;
    if std::env::var("DATA_VAULT_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &document).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == document,
        "docs/openapi.json differs from the document the server generates; regenerate it with \
         DATA_VAULT_UPDATE_OPENAPI=1 cargo nextest run --test api openapi::"
    );
    let json: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert!(json["openapi"].as_str().unwrap().starts_with("3."));
}

/// A value that fits the path parameter `name` (the route matches; the request is refused
/// before anything looks it up).
fn sample(name: &str) -> &'static str {
    match name {
        "id" => "0b8e6a4c-3f7e-4c1a-9d7e-2a1f0c9b8e7d",
        "org" => "acme",
        "principal" => "provider-daemon-7",
        "name" => "standard",
        other => panic!("no sample for path parameter {other}"),
    }
}

async fn every_documented_signed_operation_exists_and_demands_a_signature(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let json: serde_json::Value = serde_json::from_str(&served(&app).await).unwrap();
    let mut checked = 0;
    for (path, item) in json["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(name) => sample(name.trim_end_matches('}')).to_owned(),
                None => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .http
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let signed = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if signed {
                assert_eq!(response.status(), 401, "{method} {path}");
                assert!(operation["responses"]["401"].is_object(), "{method} {path}");
            } else {
                assert!(
                    response.status().is_success() || response.status() == 503,
                    "{method} {path} needs no signature: {}",
                    response.status()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
}
