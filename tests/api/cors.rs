//! Browsers (DESIGN §17): CORS for the configured origins only, preflights answered without a
//! signature, the headers a page may read exposed, and the security headers on every answer.

use crate::helpers::*;
use crate::on_both_backends;
use reqwest::header::HeaderMap;
use reqwest::Method;

const PORTAL: &str = "https://portal.example.com";
const OTHER_PORTAL: &str = "http://127.0.0.1:5173";
const STRANGER: &str = "https://evil.example.com";

const VE_HEADERS: [&str; 7] = [
    "x-ve-principal",
    "x-ve-timestamp",
    "x-ve-nonce",
    "x-ve-content-sha256",
    "x-ve-signature",
    "x-ve-address",
    "x-ve-pubkey",
];

const EXPOSED: [&str; 6] = [
    "x-request-id",
    "x-ve-audit-event",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

async fn spawn_for_portals(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.server.cors_allowed_origins = vec![PORTAL.into(), OTHER_PORTAL.into()];
    })
    .await
}

/// A browser's preflight for `method` on `path` with the wallet scheme's headers.
async fn preflight(app: &TestApp, origin: &str, method: &str, path: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "content-type,x-ve-address,x-ve-nonce,x-ve-pubkey,x-ve-signature,x-ve-timestamp",
        )
        .send()
        .await
        .unwrap()
}

/// The comma-separated values of `name`, lower-cased.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

on_both_backends!(
    preflight_from_a_listed_origin_is_allowed_without_a_signature,
    unlisted_origins_get_no_cors_headers,
    responses_to_a_listed_origin_carry_it_and_expose_the_vault_headers,
    every_response_carries_the_security_headers,
);

async fn preflight_from_a_listed_origin_is_allowed_without_a_signature(backend: Backend) {
    let app = spawn_for_portals(backend).await;
    for (origin, method, path) in [
        (PORTAL, "POST", "/api/v1/vault/blobs"),
        (
            PORTAL,
            "DELETE",
            "/api/v1/vault/blobs/0b8e6a4c-3f7e-4c1a-9d7e-2a1f0c9b8e7d",
        ),
        (OTHER_PORTAL, "GET", "/api/v1/vault/audit"),
        (PORTAL, "PUT", "/api/v1/vault/recipients/me"),
    ] {
        let response = preflight(&app, origin, method, path).await;
        assert_eq!(response.status(), 204, "{method} {path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], origin);
        let methods = list(headers, "access-control-allow-methods");
        for m in ["get", "post", "put", "delete"] {
            assert!(methods.contains(&m.to_owned()), "{m} in {methods:?}");
        }
        let allowed = list(headers, "access-control-allow-headers");
        for h in VE_HEADERS.iter().chain(&["content-type"]) {
            assert!(allowed.contains(&h.to_string()), "{h} in {allowed:?}");
        }
        assert!(headers.contains_key("access-control-max-age"));
        assert!(
            !headers.contains_key("access-control-allow-credentials"),
            "signatures, not cookies: no credentials mode"
        );
    }
}

async fn unlisted_origins_get_no_cors_headers(backend: Backend) {
    let app = spawn_for_portals(backend).await;
    let response = preflight(&app, STRANGER, "POST", "/api/v1/vault/blobs").await;
    // Not a preflight the vault answers: an unsigned request like any other.
    assert_eq!(response.status(), 401);
    assert_eq!(cors_headers(response.headers()), Vec::<String>::new());
    // A listed origin with another scheme or port is another origin.
    for origin in [
        "http://portal.example.com",
        "https://portal.example.com:8443",
    ] {
        let response = preflight(&app, origin, "GET", "/api/v1/vault/blobs").await;
        assert_eq!(cors_headers(response.headers()), Vec::<String>::new());
    }
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("origin", STRANGER)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(cors_headers(response.headers()), Vec::<String>::new());

    // Without configured origins nothing is CORS-enabled at all.
    let closed = TestApp::spawn(backend).await;
    let response = preflight(&closed, PORTAL, "POST", "/api/v1/vault/blobs").await;
    assert_eq!(cors_headers(response.headers()), Vec::<String>::new());
}

async fn responses_to_a_listed_origin_carry_it_and_expose_the_vault_headers(backend: Backend) {
    let app = spawn_for_portals(backend).await;
    let creds = app.create_client("portal-backend").await;
    let api = app.client(&creds);
    let id = api.create_blob("market", None).await;

    // A signed read sent the way a page sends it, with its Origin.
    let signer = api.signer();
    let url = signer
        .url(&format!("/api/v1/vault/blobs/{id}"), &[])
        .unwrap();
    let mut request = app.http.get(url.clone()).header("origin", PORTAL);
    for (name, value) in signer.sign(&Method::GET, &url, b"").unwrap() {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], PORTAL);
    let exposed = list(headers, "access-control-expose-headers");
    for h in EXPOSED {
        assert!(exposed.contains(&h.to_owned()), "{h} in {exposed:?}");
    }
    assert!(headers.contains_key("x-ve-audit-event"));

    // Refusals carry it too, so the page can read the error and its request id.
    let response = app
        .http
        .get(app.url(&format!("/api/v1/vault/blobs/{id}")))
        .header("origin", PORTAL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["access-control-allow-origin"], PORTAL);
    let (_, code) = error_of(response).await;
    assert_eq!(code, "unauthenticated");
}

async fn every_response_carries_the_security_headers(backend: Backend) {
    let app = spawn_for_portals(backend).await;
    for path in ["/healthz", "/api/v1/vault/blobs", "/no/such/route"] {
        let response = app.anonymous().get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(
            headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
        assert!(
            !headers.contains_key("strict-transport-security"),
            "HSTS only over TLS ({path})"
        );
    }
}
