//! The HMAC scheme over the wire: every missing, malformed, stale, replayed or tampered
//! request is a 401 with the documented code, and nothing it asked for happens.

use crate::helpers::*;
use crate::on_both_backends;
use data_vault_auth::{headers as h, sha256_hex, HmacRequest};
use reqwest::Method;

/// Builds a signed request whose fields a test may then spoil.
struct Signed {
    method: Method,
    path: String,
    query: String,
    principal: String,
    timestamp: String,
    nonce: String,
    body: Vec<u8>,
    content_sha256: String,
}

impl Signed {
    fn get(principal: &str, path: &str) -> Self {
        Self {
            method: Method::GET,
            path: path.to_owned(),
            query: String::new(),
            principal: principal.to_owned(),
            timestamp: data_vault::time::now_secs().to_string(),
            nonce: hex_nonce(),
            body: Vec::new(),
            content_sha256: sha256_hex(b""),
        }
    }

    fn signature(&self, secret: &str) -> String {
        HmacRequest {
            method: self.method.as_str(),
            path: &self.path,
            raw_query: &self.query,
            principal: &self.principal,
            timestamp: &self.timestamp,
            nonce: &self.nonce,
            content_sha256: &self.content_sha256,
        }
        .sign(secret.as_bytes())
    }

    fn headers(&self, secret: &str) -> Vec<(&'static str, String)> {
        vec![
            (h::PRINCIPAL, self.principal.clone()),
            (h::TIMESTAMP, self.timestamp.clone()),
            (h::NONCE, self.nonce.clone()),
            (h::CONTENT_SHA256, self.content_sha256.clone()),
            (h::SIGNATURE, self.signature(secret)),
        ]
    }

    async fn send(&self, app: &TestApp, headers: Vec<(&'static str, String)>) -> reqwest::Response {
        let mut url = app.url(&self.path);
        if !self.query.is_empty() {
            url = format!("{url}?{}", self.query);
        }
        let mut request = app
            .http
            .request(self.method.clone(), url)
            .body(self.body.clone());
        if !self.body.is_empty() {
            request = request.header("content-type", "application/octet-stream");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }
}

fn hex_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

const LIST: &str = "/api/v1/vault/blobs";

async fn well_signed_request_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let request = Signed::get("svc", LIST);
    let response = request.send(&app, request.headers(&creds.secret)).await;
    assert_eq!(response.status(), 200);
}

async fn missing_or_malformed_headers_are_unauthenticated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let request = Signed::get("svc", LIST);
    for missing in [
        h::PRINCIPAL,
        h::TIMESTAMP,
        h::NONCE,
        h::CONTENT_SHA256,
        h::SIGNATURE,
    ] {
        let headers = request
            .headers(&creds.secret)
            .into_iter()
            .filter(|(n, _)| *n != missing)
            .collect();
        let (status, code) = error_of(request.send(&app, headers).await).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "unauthenticated"),
            "without {missing}"
        );
    }
    for (name, bad) in [
        (h::TIMESTAMP, "17e8"),
        (h::TIMESTAMP, "-5"),
        (h::NONCE, "short"),
        (h::NONCE, "not-hex-not-hex-not-hex"),
        (h::CONTENT_SHA256, "abc"),
        (h::SIGNATURE, "zz"),
        (h::PRINCIPAL, "Bad Name"),
    ] {
        let headers = request
            .headers(&creds.secret)
            .into_iter()
            .map(|(n, v)| {
                if n == name {
                    (n, bad.to_owned())
                } else {
                    (n, v)
                }
            })
            .collect();
        let (status, code) = error_of(request.send(&app, headers).await).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "unauthenticated"),
            "{name}={bad}"
        );
    }
    let (status, code) = error_of(app.anonymous().get(LIST).await).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "unauthenticated"),
        "no anonymous access"
    );
}

async fn wrong_secret_and_unknown_principal_look_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client("svc").await;
    let request = Signed::get("svc", LIST);
    let (status, code) = error_of(request.send(&app, request.headers(&"0".repeat(64))).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    let stranger = Signed::get("nobody", LIST);
    let (status, code) =
        error_of(stranger.send(&app, stranger.headers(&"0".repeat(64))).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"virtengine_data_vault_auth_failures_total{reason="bad_signature",scheme="hmac"} 2"#
        ),
        "{metrics}"
    );
}

async fn stale_and_future_timestamps_are_clock_skew(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let now = data_vault::time::now_secs();
    for (offset, accepted) in [(-301, false), (61 + 1, false), (-290, true), (50, true)] {
        let mut request = Signed::get("svc", LIST);
        request.timestamp = (now + offset).to_string();
        let response = request.send(&app, request.headers(&creds.secret)).await;
        if accepted {
            assert_eq!(response.status(), 200, "offset {offset}");
        } else {
            let (status, code) = error_of(response).await;
            assert_eq!(
                (status, code.as_str()),
                (401, "clock_skew"),
                "offset {offset}"
            );
        }
    }
}

async fn replayed_nonce_is_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let request = Signed::get("svc", LIST);
    let headers = request.headers(&creds.secret);
    assert_eq!(request.send(&app, headers.clone()).await.status(), 200);
    let (status, code) = error_of(request.send(&app, headers).await).await;
    assert_eq!((status, code.as_str()), (401, "replayed"));
}

async fn tampered_body_with_a_valid_signature_is_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let envelope = age_envelope_of_size(2048);
    let mut request = Signed::get("svc", LIST);
    request.method = Method::POST;
    request.query = "scope=veid".into();
    request.content_sha256 = sha256_hex(&envelope);
    let headers = request.headers(&creds.secret);
    // Same signed headers, one byte of the body changed in flight.
    let mut tampered = envelope.clone();
    tampered[1000] ^= 1;
    request.body = tampered;
    let (status, code) = error_of(request.send(&app, headers).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    assert_eq!(app.count_rows("blobs").await, 0);
}

async fn changed_path_or_query_breaks_the_signature(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;
    let mut request = Signed::get("svc", LIST);
    request.query = "scope=veid".into();
    let headers = request.headers(&creds.secret);
    request.query = "scope=market".into();
    let (status, code) = error_of(request.send(&app, headers).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
}

async fn both_secrets_work_during_rotation_and_retire_ends_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let old = app.create_client("svc").await;
    let vault = data_vault::startup::open_vault(&app.config).await.unwrap();
    let name = data_vault::domain::ClientName::parse("svc").unwrap();
    let admin = data_vault::service::Caller::local_admin().unwrap();
    let new = vault.rotate_client(&admin, &name).await.unwrap();
    for secret in [old.secret.as_str(), new.as_str()] {
        let request = Signed::get("svc", LIST);
        assert_eq!(
            request.send(&app, request.headers(secret)).await.status(),
            200
        );
    }
    assert_eq!(vault.retire_client(&admin, &name).await.unwrap(), 1);
    // Another process retired it: the server's secret cache lets it go within two seconds.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let request = Signed::get("svc", LIST);
    assert_eq!(
        request
            .send(&app, request.headers(&old.secret))
            .await
            .status(),
        401
    );
    let request = Signed::get("svc", LIST);
    assert_eq!(
        request.send(&app, request.headers(&new)).await.status(),
        200
    );
}

on_both_backends!(
    well_signed_request_is_accepted,
    missing_or_malformed_headers_are_unauthenticated,
    wrong_secret_and_unknown_principal_look_alike,
    stale_and_future_timestamps_are_clock_skew,
    replayed_nonce_is_rejected,
    tampered_body_with_a_valid_signature_is_rejected,
    changed_path_or_query_breaks_the_signature,
    both_secrets_work_during_rotation_and_retire_ends_it,
);

/// The error message of a response, with its status and code.
async fn message_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["code"].as_str().unwrap().to_owned(),
        body["error"].as_str().unwrap().to_owned(),
    )
}

async fn upper_case_hex_in_signature_or_body_hash_is_malformed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let creds = app.create_client("svc").await;

    // A valid signature, spelled in upper case: refused before any nonce is spent.
    let request = Signed::get("svc", LIST);
    let headers = request.headers(&creds.secret);
    let shouted = headers
        .iter()
        .map(|(n, v)| {
            if *n == h::SIGNATURE {
                (*n, v.to_uppercase())
            } else {
                (*n, v.clone())
            }
        })
        .collect();
    let (status, code, message) = message_of(request.send(&app, shouted).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    assert!(
        message.contains("X-VE-Signature") && message.contains("lower-case"),
        "{message}"
    );
    assert_eq!(
        request.send(&app, headers).await.status(),
        200,
        "nonce unspent"
    );

    // A body hash in upper case, even when the signature covers that spelling.
    let mut request = Signed::get("svc", LIST);
    request.content_sha256 = sha256_hex(b"").to_uppercase();
    let (status, code, message) =
        message_of(request.send(&app, request.headers(&creds.secret)).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    assert!(
        message.contains("X-VE-Content-SHA256") && message.contains("lower-case"),
        "{message}"
    );

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"virtengine_data_vault_auth_failures_total{reason="malformed",scheme="hmac"} 2"#
        ),
        "{metrics}"
    );
}

on_both_backends!(upper_case_hex_in_signature_or_body_hash_is_malformed);
