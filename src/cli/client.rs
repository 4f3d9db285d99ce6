//! A signing HTTP client for the vault API, used by the `blob` commands (and usable by any
//! Rust caller). It signs exactly the path and query it sends.

use anyhow::Context;
use data_vault_auth::{
    body_hash_field, headers as h, sha256_hex, HmacRequest, WalletRequest, WalletSigner,
};
use rand::RngCore;
use reqwest::{Method, Response};
use std::path::Path;
use url::Url;
use zeroize::Zeroizing;

/// How the client proves who it is.
pub enum ClientAuth {
    Hmac {
        principal: String,
        secret: Zeroizing<String>,
    },
    /// A portal user's wallet key (ADR-036 signatures).
    Wallet { signer: Box<WalletSigner> },
}

impl ClientAuth {
    /// A wallet from a hex private key (64 hex characters) or a BIP-39 mnemonic.
    pub fn wallet(key: &str, prefix: &str) -> anyhow::Result<Self> {
        let key = key.trim();
        let signer = if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            WalletSigner::from_private_key_hex(key, prefix)
        } else {
            WalletSigner::from_mnemonic(key, prefix)
        }
        .map_err(|e| anyhow::anyhow!("invalid wallet key: {e}"))?;
        Ok(ClientAuth::Wallet {
            signer: Box::new(signer),
        })
    }
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

/// The HTTP settings of every vault client. No bound on a whole request: a data-subject export
/// streams for as long as it has bytes to send. A vault that stops sending for two minutes
/// fails the call.
fn http_builder(idle: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(120))
        .pool_max_idle_per_host(idle)
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
        let http = http_builder(idle).build()?;
        Self::with_http(base, auth, http)
    }

    /// A client that also trusts the CA certificates in the PEM file `ca_file`: a vault
    /// serving TLS with a certificate from a private CA (`--ca-cert`). `idle` as for
    /// [`with_pool`](Self::with_pool).
    pub fn trusting(
        base: &str,
        auth: ClientAuth,
        ca_file: &Path,
        idle: usize,
    ) -> anyhow::Result<Self> {
        let pem = std::fs::read(ca_file)
            .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("the CA file {} is not PEM", ca_file.display()))?;
        if certificates.is_empty() {
            anyhow::bail!("the CA file {} holds no certificate", ca_file.display());
        }
        let http = certificates
            .into_iter()
            .fold(http_builder(idle), |builder, ca| {
                builder.add_root_certificate(ca)
            })
            .build()?;
        Self::with_http(base, auth, http)
    }

    /// A client of `base` sending through `http` (e.g. one that trusts a private CA).
    pub fn with_http(base: &str, auth: ClientAuth, http: reqwest::Client) -> anyhow::Result<Self> {
        let base = Url::parse(base).with_context(|| format!("invalid vault URL {base:?}"))?;
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

    /// The authentication headers for a request to `url` with `body`, signed now (a client
    /// signs with its own wall clock, which the server checks against its window).
    pub fn sign(
        &self,
        method: &Method,
        url: &Url,
        body: &[u8],
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
        self.sign_hashed(
            method,
            url,
            &sha256_hex(body),
            &body_hash_field(body),
            false,
        )
    }

    /// The headers for a streamed upload whose body hashes to `content_sha256` (lower-case
    /// hex): the hash is signed and sent under both schemes, so the server checks the
    /// signature before the body and the body as it arrives (DESIGN §18).
    pub fn sign_streamed(
        &self,
        method: &Method,
        url: &Url,
        content_sha256: &str,
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
        self.sign_hashed(method, url, content_sha256, content_sha256, true)
    }

    #[allow(clippy::disallowed_methods)]
    fn sign_hashed(
        &self,
        method: &Method,
        url: &Url,
        content_sha256: &str,
        wallet_body_hash: &str,
        wallet_sends_hash: bool,
    ) -> anyhow::Result<Vec<(&'static str, String)>> {
        let nonce = random_nonce();
        match &self.auth {
            ClientAuth::Wallet { signer } => {
                let timestamp_ms = crate::time::now_millis();
                let path_and_query = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                };
                let signed = WalletRequest {
                    method: method.as_str(),
                    path_and_query: &path_and_query,
                    timestamp_ms,
                    nonce: &nonce,
                    body_sha256_hex: wallet_body_hash,
                }
                .signed_data();
                let signature = signer
                    .sign(&signed, "")
                    .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
                let mut headers = vec![
                    (h::ADDRESS, signer.address().to_owned()),
                    (h::TIMESTAMP, timestamp_ms.to_string()),
                    (h::NONCE, nonce),
                    (h::PUBKEY, signer.public_key_b64()),
                    (h::SIGNATURE, signature),
                ];
                if wallet_sends_hash {
                    headers.push((h::CONTENT_SHA256, content_sha256.to_owned()));
                }
                Ok(headers)
            }
            ClientAuth::Hmac { principal, secret } => Ok(Self::sign_hmac(
                principal,
                secret,
                method,
                url,
                content_sha256,
                nonce,
            )),
        }
    }

    /// Sends a signed streamed upload (`application/octet-stream`) of a body whose SHA-256 is
    /// `content_sha256`, known beforehand (e.g. hashed while the file was written).
    pub async fn send_streamed(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: reqwest::Body,
        content_sha256: &str,
    ) -> anyhow::Result<Response> {
        self.post_streamed(path, query, body, None, content_sha256)
            .await
    }

    /// [`send_streamed`](Self::send_streamed), declaring the body's length when it is known:
    /// the vault then refuses a body over its limit before reading any of it.
    async fn post_streamed(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: reqwest::Body,
        len: Option<u64>,
        content_sha256: &str,
    ) -> anyhow::Result<Response> {
        let url = self.url(path, query)?;
        let mut request = self.http.post(url.clone());
        for (name, value) in self.sign_streamed(&Method::POST, &url, content_sha256)? {
            request = request.header(name, value);
        }
        if let Some(len) = len {
            request = request.header(reqwest::header::CONTENT_LENGTH, len);
        }
        request
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the vault at {}", self.base))
    }

    /// The HMAC scheme's headers (DESIGN §6).
    #[allow(clippy::disallowed_methods)]
    fn sign_hmac(
        principal: &str,
        secret: &str,
        method: &Method,
        url: &Url,
        content_sha256: &str,
        nonce: String,
    ) -> Vec<(&'static str, String)> {
        let timestamp = crate::time::now_secs().to_string();
        let signature = HmacRequest {
            method: method.as_str(),
            path: url.path(),
            raw_query: url.query().unwrap_or(""),
            principal,
            timestamp: &timestamp,
            nonce: &nonce,
            content_sha256,
        }
        .sign(secret.as_bytes());
        vec![
            (h::PRINCIPAL, principal.to_owned()),
            (h::TIMESTAMP, timestamp),
            (h::NONCE, nonce),
            (h::CONTENT_SHA256, content_sha256.to_owned()),
            (h::SIGNATURE, signature),
        ]
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
        for (name, value) in self.sign(&method, &url, bytes)? {
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
        Self::success(response).await
    }

    /// Like [`send_streamed`](Self::send_streamed) of a body of `len` bytes, but a non-2xx
    /// answer becomes an error as with [`call`](Self::call).
    pub async fn call_streamed(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: reqwest::Body,
        len: u64,
        content_sha256: &str,
    ) -> anyhow::Result<Response> {
        let response = self
            .post_streamed(path, query, body, Some(len), content_sha256)
            .await?;
        Self::success(response).await
    }

    /// `response` when it is a success, else an error carrying the server's message, code and
    /// request id.
    async fn success(response: Response) -> anyhow::Result<Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => anyhow::bail!(
                "vault answered {status}: {} (code {}, request id {})",
                v.get("error")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?"),
                v.get("code")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?"),
                v.get("request_id")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("?")
            ),
            Err(_) => anyhow::bail!("vault answered {status}"),
        }
    }
}
