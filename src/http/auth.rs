//! Authentication of every `/api/v1` request (DESIGN §6). There is no anonymous path: a
//! request either proves a principal or is answered 401.
//!
//! Order matters for cost: cheap header checks first, then the signature, which covers the
//! claimed body hash, then the nonce, and only then is the body read (bounded) and hashed. An
//! unauthenticated client can make the server neither buffer a body nor burn a nonce.

use super::request_id::RequestId;
use crate::domain::{ClientName, Principal};
use crate::error::VaultError;
use crate::limits::{Limit, Verdict};
use crate::metrics::Metrics;
use crate::nonce::{NonceError, NonceStore};
use crate::offload;
use crate::service::{AuthMethod, Caller, PendingNonce, Vault};
use crate::store::NonceClaim;
use crate::time;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use data_vault_auth::{
    headers as h, timestamp, HmacRequest, WalletError, WalletRequest, WalletVerifier,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Headers longer than this are refused before any parsing.
const MAX_AUTH_HEADER_LEN: usize = 512;

pub struct Authenticator {
    vault: Arc<Vault>,
    nonces: Arc<dyn NonceStore>,
    wallet: WalletVerifier,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(vault: Arc<Vault>, nonces: Arc<dyn NonceStore>, wallet: WalletVerifier) -> Self {
        let metrics = vault.metrics().clone();
        Self {
            vault,
            nonces,
            wallet,
            metrics,
        }
    }

    fn fail(&self, scheme: &str, reason: &'static str, error: VaultError) -> VaultError {
        self.metrics.auth_failure(scheme, reason);
        tracing::info!(scheme, reason, "authentication failed");
        error
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, &'static str> {
    let value = headers.get(name).ok_or("missing")?;
    if value.len() > MAX_AUTH_HEADER_LEN {
        return Err("malformed");
    }
    value.to_str().map_err(|_| "malformed")
}

/// The most body bytes a request may carry: the envelope limit, grown for JSON's base64 and
/// its other fields.
fn body_limit(headers: &HeaderMap, max_payload: usize) -> usize {
    let is_raw = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/octet-stream"));
    if is_raw {
        max_payload
    } else {
        max_payload.div_ceil(3) * 4 + 64 * 1024
    }
}

/// How much of an oversized body is still read (and discarded) so that the client, which is
/// still sending, receives the 413 instead of a connection reset. Bodies declared larger are
/// refused without reading.
fn drain_cap(limit: usize) -> usize {
    limit.saturating_mul(2)
}

enum BodyError {
    TooLarge,
    Read,
}

/// Reads at most `limit` bytes of body; an oversized body is drained up to the drain cap and
/// reported as too large.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buffer.extend_from_slice(&chunk);
        } else if seen > drain_cap(limit) {
            return Err(BodyError::TooLarge);
        }
    }
    if seen > limit {
        Err(BodyError::TooLarge)
    } else {
        Ok(buffer.freeze())
    }
}

#[tracing::instrument(skip_all)]
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Result<Response, VaultError> {
    // Split first: the body is not `Sync`, so the request cannot be borrowed across awaits.
    let (parts, body) = request.into_parts();
    let (caller, bytes) = if parts.headers.contains_key(h::ADDRESS) {
        // The wallet scheme signs the body's hash without sending it, so the body is read
        // (bounded, and after the cheap checks) before the signature can be checked.
        let claims = wallet_claims(&auth, &parts)?;
        let bytes = read_request_body(&auth, &parts, body).await?;
        (verify_wallet(&auth, &parts, claims, &bytes).await?, bytes)
    } else {
        let (caller, claimed_hash) = verify_hmac(&auth, &parts).await?;
        let bytes = read_request_body(&auth, &parts, body).await?;
        let digest = {
            let bytes = bytes.clone();
            offload::sized(bytes.len(), move || Sha256::digest(&bytes)).await?
        };
        if digest.as_slice() != claimed_hash.as_slice() {
            return Err(auth.fail(
                "hmac",
                "content_hash",
                VaultError::Unauthenticated("body does not match X-VE-Content-SHA256"),
            ));
        }
        (caller, bytes)
    };
    let verdict = limit_principal(&auth, &caller).await?;
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    // Nothing leaves before the nonce is durably spent: most requests spent it with their
    // audit event; the rest (listings, refusals that record nothing) spend it here.
    auth.vault.spend_nonce(&caller).await?;
    if let Some(verdict) = verdict {
        super::error::rate_limit_headers(response.headers_mut(), &verdict);
    }
    Ok(response)
}

/// Reads the body within the payload limit (413 beyond it).
async fn read_request_body(
    auth: &Authenticator,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<Bytes, VaultError> {
    let max_payload = auth.vault.max_payload_bytes();
    let limit = body_limit(&parts.headers, max_payload);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > drain_cap(limit) as u64) {
        return Err(VaultError::PayloadTooLarge(max_payload));
    }
    read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge => VaultError::PayloadTooLarge(max_payload),
        BodyError::Read => VaultError::BadRequest("could not read the request body".into()),
    })
}

/// The wallet headers, checked for shape and time before the body is read.
struct WalletClaims {
    address: String,
    timestamp_ms: i64,
    nonce: String,
    public_key: String,
    signature: String,
}

fn wallet_claims(
    auth: &Authenticator,
    parts: &axum::http::request::Parts,
) -> Result<WalletClaims, VaultError> {
    let scheme = "wallet";
    let get = |name: &'static str, what: &'static str| {
        header(&parts.headers, name)
            .map(str::to_owned)
            .map_err(|reason| auth.fail(scheme, reason, VaultError::Unauthenticated(what)))
    };
    let address = get(h::ADDRESS, "missing or malformed X-VE-Address header")?;
    let timestamp = get(h::TIMESTAMP, "missing or malformed X-VE-Timestamp header")?;
    let nonce = get(h::NONCE, "missing or malformed X-VE-Nonce header")?;
    let public_key = get(h::PUBKEY, "missing or malformed X-VE-PubKey header")?;
    let signature = get(h::SIGNATURE, "missing or malformed X-VE-Signature header")?;
    let timestamp_ms = check_timestamp(auth, scheme, &timestamp, 1)?;
    check_nonce(auth, scheme, &nonce)?;
    Ok(WalletClaims {
        address,
        timestamp_ms,
        nonce,
        public_key,
        signature,
    })
}

/// Parses a timestamp header (`unit_ms` milliseconds per unit) and checks the replay window;
/// returns the time in milliseconds.
fn check_timestamp(
    auth: &Authenticator,
    scheme: &str,
    text: &str,
    unit_ms: i64,
) -> Result<i64, VaultError> {
    let Some(value) = timestamp::parse_decimal(text) else {
        let message = if unit_ms == 1 {
            "X-VE-Timestamp must be Unix milliseconds"
        } else {
            "X-VE-Timestamp must be Unix seconds"
        };
        return Err(auth.fail(scheme, "malformed", VaultError::Unauthenticated(message)));
    };
    let ms = value.saturating_mul(unit_ms);
    check_time(auth, scheme, ms)?;
    Ok(ms)
}

fn check_nonce(auth: &Authenticator, scheme: &str, nonce: &str) -> Result<(), VaultError> {
    if data_vault_auth::is_valid_nonce(nonce) {
        Ok(())
    } else {
        Err(auth.fail(
            scheme,
            "malformed",
            VaultError::Unauthenticated("X-VE-Nonce must be 16-64 hexadecimal characters"),
        ))
    }
}

/// Checks the signature over the request as sent (path and raw query, body hash), then
/// records the nonce. The principal is the address.
async fn verify_wallet(
    auth: &Authenticator,
    parts: &axum::http::request::Parts,
    claims: WalletClaims,
    body: &Bytes,
) -> Result<Caller, VaultError> {
    let scheme = "wallet";
    let body_hash = {
        let body = body.clone();
        offload::sized(body.len(), move || data_vault_auth::body_hash_field(&body)).await?
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let signed = WalletRequest {
        method: parts.method.as_str(),
        path_and_query,
        timestamp_ms: claims.timestamp_ms,
        nonce: &claims.nonce,
        body_sha256_hex: &body_hash,
    }
    .signed_data();
    auth.wallet
        .verify(
            &claims.address,
            &claims.public_key,
            &claims.signature,
            &signed,
        )
        .map_err(|e| {
            auth.fail(
                scheme,
                e.reason(),
                VaultError::Unauthenticated(match e {
                    WalletError::WrongPrefix => "address has another bech32 prefix",
                    WalletError::AddressMismatch => "address does not belong to the public key",
                    WalletError::MalformedAddress => "X-VE-Address is not a valid address",
                    WalletError::MalformedPublicKey => {
                        "X-VE-PubKey must be a base64 33-byte compressed secp256k1 key"
                    }
                    WalletError::MalformedSignature => {
                        "X-VE-Signature must be a base64 64-byte r||s signature"
                    }
                    WalletError::HighS => "signature is not in low-S form",
                    WalletError::BadSignature => "signature does not verify",
                }),
            )
        })?;
    let principal = Principal::parse(&claims.address).map_err(|_| {
        auth.fail(
            scheme,
            "malformed",
            VaultError::Unauthenticated("X-VE-Address is not a valid principal"),
        )
    })?;
    let nonce = record_nonce(
        auth,
        scheme,
        principal.as_str(),
        &claims.nonce,
        claims.timestamp_ms,
    )
    .await?;
    Ok(Caller {
        principal,
        method: AuthMethod::Wallet,
        request_id: request_id(parts),
        nonce,
    })
}

fn request_id(parts: &axum::http::request::Parts) -> String {
    parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// The replay window of both schemes, in milliseconds.
fn check_time(auth: &Authenticator, scheme: &str, request_ms: i64) -> Result<(), VaultError> {
    data_vault_auth::check_window(request_ms, time::now_millis()).map_err(|e| {
        auth.fail(
            scheme,
            "clock_skew",
            VaultError::ClockSkew(match e {
                data_vault_auth::WindowError::TooOld => "request timestamp is more than 300 s old",
                data_vault_auth::WindowError::TooFarAhead => {
                    "request timestamp is more than 60 s in the future"
                }
            }),
        )
    })
}

/// Accepts a nonce once per principal within the window (it is remembered until the request's
/// timestamp leaves the window). The fast stores (memory, Redis) turn most replays away here;
/// the returned claim is then spent durably before the request answers, which is what holds
/// when the fast stores have lost state (see `PendingNonce`).
async fn record_nonce(
    auth: &Authenticator,
    scheme: &str,
    principal: &str,
    nonce: &str,
    request_ms: i64,
) -> Result<PendingNonce, VaultError> {
    let expires_ms = request_ms.saturating_add(data_vault_auth::MAX_AGE_SECS * 1000 + 1000);
    match auth
        .nonces
        .check_and_record(principal, nonce, time::now_millis(), expires_ms)
        .await
    {
        Ok(true) => Ok(PendingNonce::new(NonceClaim {
            principal: principal.to_owned(),
            nonce: nonce.to_owned(),
            expires_ms,
        })),
        Ok(false) => {
            auth.metrics.replayed(scheme);
            Err(auth.fail(scheme, "replayed", VaultError::Replayed))
        }
        Err(NonceError::Full) => Err(VaultError::Unavailable(anyhow::anyhow!(
            "nonce store is full"
        ))),
        Err(NonceError::Unavailable(e)) => {
            Err(VaultError::Unavailable(anyhow::anyhow!("nonce store: {e}")))
        }
    }
}

/// The per-principal limit, and a block after a denial spike (both answered 429). Returns
/// the verdict whose `X-RateLimit-*` headers the response carries.
async fn limit_principal(
    auth: &Authenticator,
    caller: &Caller,
) -> Result<Option<Verdict>, VaultError> {
    let abuse = auth.vault.abuse();
    let principal = caller.principal.as_str();
    if let Some(spikes) = &abuse.spikes {
        let now = time::now_millis();
        if let Some(until) = spikes.blocked_until(principal, now).await {
            let wait = ((until - now).max(0) as u64).div_ceil(1000).max(1);
            auth.metrics.rate_limited("blocked");
            return Err(VaultError::RateLimited(Verdict {
                allowed: false,
                limit: 0,
                remaining: 0,
                reset_secs: wait,
                retry_after_secs: wait,
            }));
        }
    }
    let Some(limiter) = &abuse.limiter else {
        return Ok(None);
    };
    limiter.enforce(Limit::Principal, principal).await.map(Some)
}

/// Verifies the HMAC headers and records the nonce. Returns the caller and the body hash the
/// signature vouches for.
async fn verify_hmac(
    auth: &Authenticator,
    request: &axum::http::request::Parts,
) -> Result<(Caller, [u8; 32]), VaultError> {
    let scheme = "hmac";
    let headers = &request.headers;
    let get = |name: &'static str, what: &'static str| {
        header(headers, name)
            .map_err(|reason| auth.fail(scheme, reason, VaultError::Unauthenticated(what)))
    };
    let principal = get(h::PRINCIPAL, "missing or malformed X-VE-Principal header")?;
    let timestamp_text = get(h::TIMESTAMP, "missing or malformed X-VE-Timestamp header")?;
    let nonce = get(h::NONCE, "missing or malformed X-VE-Nonce header")?;
    let content_sha256 = get(
        h::CONTENT_SHA256,
        "missing or malformed X-VE-Content-SHA256 header",
    )?;
    let signature = get(h::SIGNATURE, "missing or malformed X-VE-Signature header")?;

    let name = ClientName::parse(principal).map_err(|_| {
        auth.fail(
            scheme,
            "malformed",
            VaultError::Unauthenticated("X-VE-Principal is not a valid client name"),
        )
    })?;
    let request_ms = check_timestamp(auth, scheme, timestamp_text, 1000)?;
    check_nonce(auth, scheme, nonce)?;
    // One spelling only (lower-case hex): the signed string is the header as sent, so an
    // upper-case twin would be a second valid request for the same bytes.
    let Some(claimed_hash) = data_vault_auth::parse_lower_hex_32(content_sha256) else {
        return Err(auth.fail(
            scheme,
            "malformed",
            VaultError::Unauthenticated(
                "X-VE-Content-SHA256 must be 64 lower-case hexadecimal characters",
            ),
        ));
    };
    let Ok(signature) = data_vault_auth::parse_signature(signature) else {
        return Err(auth.fail(
            scheme,
            "malformed",
            VaultError::Unauthenticated(
                "X-VE-Signature must be 64 lower-case hexadecimal characters",
            ),
        ));
    };

    let signed = HmacRequest {
        method: request.method.as_str(),
        path: request.uri.path(),
        raw_query: request.uri.query().unwrap_or(""),
        principal,
        timestamp: timestamp_text,
        nonce,
        content_sha256,
    };
    // An unknown client and a wrong signature get the same answer after the same work, so
    // names cannot be probed (see `Vault::verify_client_signature`).
    if !auth
        .vault
        .verify_client_signature(&name, &signed, &signature)
        .await?
    {
        return Err(auth.fail(
            scheme,
            "bad_signature",
            VaultError::Unauthenticated("signature does not verify"),
        ));
    }

    let nonce = record_nonce(auth, scheme, principal, nonce, request_ms).await?;
    Ok((
        Caller {
            principal: name.principal().clone(),
            method: AuthMethod::Hmac,
            request_id: request_id(request),
            nonce,
        },
        claimed_hash,
    ))
}
