//! A signing HTTP client for the vault API, used by the `blob` commands (and usable by any
//! Rust caller). It signs exactly the path and query it sends.

use anyhow::Context;
use data_vault_auth::{headers as h, sha256_hex, HmacRequest};
use rand::RngCore;
use reqwest::{Method, Response};
use url::Url;
use zeroize::Zeroizing;

/// How the client proves who it is.
pub enum ClientAuth {
    Hmac {
        principal: String,
        secret: Zeroizing<String>,
    },
}

pub struct VaultClient {
    base: Url,
    auth: ClientAuth,
    http: reqwest::Client,
}

/// A request body and its content type.
pub struct Body<'a> {
    pub bytes: &'a [u8],
    pub content_type: &'a str,
}

fn random_nonce() -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

impl VaultClient {
    pub fn new(base: &str, auth: ClientAuth) -> anyhow::Result<Self> {
        Self::with_pool(base, auth, 4)
    }

    /// A client that keeps up to `idle` connections open (the load generator's concurrency).
    pub fn with_pool(base: &str, auth: ClientAuth, idle: usize) -> anyhow::Result<Self> {
        let base = Url::parse(base).with_context(|| format!("invalid vault URL {base:?}"))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .pool_max_idle_per_host(idle)
            .build()?;
        Ok(Self { base, auth, http })
    }

    /// The URL for `path` with `query` pairs percent-encoded.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Url> {
        let mut url = self.base.join(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// The authentication headers for a request to `url` with `body`, signed now.
    pub fn sign(&self, method: &Method, url: &Url, body: &[u8]) -> Vec<(&'static str, String)> {
        let timestamp = crate::time::now_secs().to_string();
        let nonce = random_nonce();
        let content_sha256 = sha256_hex(body);
        match &self.auth {
            ClientAuth::Hmac { principal, secret } => {
                let signature = HmacRequest {
                    method: method.as_str(),
                    path: url.path(),
                    raw_query: url.query().unwrap_or(""),
                    principal,
                    timestamp: &timestamp,
                    nonce: &nonce,
                    content_sha256: &content_sha256,
                }
                .sign(secret.as_bytes());
                vec![
                    (h::PRINCIPAL, principal.clone()),
                    (h::TIMESTAMP, timestamp),
                    (h::NONCE, nonce),
                    (h::CONTENT_SHA256, content_sha256),
                    (h::SIGNATURE, signature),
                ]
            }
        }
    }

    /// Sends a signed request and returns the response, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Body<'_>>,
        accept: Option<&str>,
    ) -> anyhow::Result<Response> {
        let url = self.url(path, query)?;
        let bytes = body.as_ref().map_or(&[][..], |b| b.bytes);
        let mut request = self.http.request(method.clone(), url.clone());
        for (name, value) in self.sign(&method, &url, bytes) {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, body.content_type)
                .body(body.bytes.to_vec());
        }
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        request
            .send()
            .await
            .with_context(|| format!("cannot reach the vault at {}", self.base))
    }

    /// Like [`send`](Self::send), but a non-2xx answer becomes an error carrying the server's
    /// message, code and request id.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Body<'_>>,
        accept: Option<&str>,
    ) -> anyhow::Result<Response> {
        let response = self.send(method, path, query, body, accept).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => anyhow::bail!(
                "vault answered {status}: {} (code {}, request id {})",
                v["error"].as_str().unwrap_or("?"),
                v["code"].as_str().unwrap_or("?"),
                v["request_id"].as_str().unwrap_or("?")
            ),
            Err(_) => anyhow::bail!("vault answered {status}"),
        }
    }
}
