//! Authentication of every `/api/v1` request (DESIGN §6). There is no anonymous path: a
//! request either proves a principal or is answered 401.
//!
//! Order matters for cost: cheap header checks first, then the signature, which covers the
//! claimed body hash, then the nonce, and only then is the body read (bounded) and hashed. An
//! unauthenticated client can make the server neither buffer a body nor burn a nonce. A raw
//! blob upload's body is not read here at all: it streams to the object store, and the upload
//! checks the claimed hash ([`body::ClaimedSha256`]) before anything becomes visible.
//!
//! This file is the middleware; each scheme (`hmac.rs`, `wallet.rs`), the checks they share
//! (`headers.rs`), the nonce record (`nonce.rs`) and the principal's limits (`limit.rs`) have
//! their own.

mod headers;
mod hmac;
mod limit;
mod nonce;
mod wallet;

use super::body;
use super::middleware::access_log::LoggedPrincipal;
use super::middleware::request_id::RequestId;
use crate::error::VaultError;
use crate::metrics::Metrics;
use crate::nonce::NonceStore;
use crate::service::Vault;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use data_vault_auth::{headers as h, WalletVerifier};
use std::sync::Arc;

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

    /// Counts and logs a refusal, and returns the error it is answered with. The line is
    /// written inside the `authenticate` span, which carries the principal the request
    /// claimed, so on-call sees which client is failing and why (DESIGN §20).
    fn fail(&self, scheme: &str, reason: &'static str, error: VaultError) -> VaultError {
        self.metrics.auth_failure(scheme, reason);
        tracing::info!(scheme, reason, "authentication failed");
        error
    }
}

/// The principal a request claims, fit for the log: the header's value when it is a valid
/// principal (client names and addresses are plain ASCII, so nothing can be forged into the
/// line), else `(malformed)`; `(none)` when neither header is sent.
pub fn claimed_principal(headers: &axum::http::HeaderMap) -> LoggedPrincipal {
    LoggedPrincipal(claimed_principal_text(headers))
}

fn claimed_principal_text(headers: &axum::http::HeaderMap) -> String {
    let header = |name| headers::header(headers, name);
    let claimed = match header(h::ADDRESS) {
        Err("missing") => header(h::PRINCIPAL),
        other => other,
    };
    match claimed {
        Ok(text) if crate::domain::Principal::parse(text).is_ok() => text.to_owned(),
        Err("missing") => "(none)".to_owned(),
        _ => "(malformed)".to_owned(),
    }
}

#[tracing::instrument(skip_all, fields(claimed_principal = tracing::field::Empty))]
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // Taken by the time limit, which logs it should the request run out of time.
    let claimed = match parts.extensions.get::<LoggedPrincipal>() {
        Some(claimed) => claimed.0.clone(),
        None => claimed_principal_text(&parts.headers),
    };
    tracing::Span::current().record("claimed_principal", tracing::field::display(&claimed));
    match verify_and_run(&auth, parts, body, next).await {
        Ok(response) => response,
        Err(error) => {
            let mut response = error.into_response();
            response.extensions_mut().insert(LoggedPrincipal(claimed));
            response
        }
    }
}

async fn verify_and_run(
    auth: &Arc<Authenticator>,
    parts: Parts,
    body: Body,
    next: Next,
) -> Result<Response, VaultError> {
    // Split first (by the caller): the body is not `Sync`, so the request cannot be borrowed
    // across awaits.
    let auth = auth.as_ref();
    let mut parts = parts;
    // Bodies other than a streamed upload's are read whole, so never beyond what a JSON
    // document may carry.
    let max_buffered = auth.vault.json_max_bytes();
    let streamed = body::is_streamed(&parts);
    let (caller, body) = if parts.headers.contains_key(h::ADDRESS) {
        let claims = wallet::claims(auth, &parts)?;
        // A wallet signs the body's hash without sending it, unless it sends
        // X-VE-Content-SHA256 too: then an upload's signature is checked before its body.
        let claimed = match streamed {
            true => wallet::claimed_hash(auth, &parts)?,
            false => None,
        };
        match claimed {
            Some(hash) => {
                let caller = wallet::verify(auth, &parts, claims, &hex::encode(hash)).await?;
                parts.extensions.insert(body::ClaimedSha256(hash));
                (caller, body)
            }
            None => {
                let bytes = body::read_bounded(&parts.headers, body, max_buffered).await?;
                let hash = wallet::body_hash(&bytes).await?;
                (
                    wallet::verify(auth, &parts, claims, &hash).await?,
                    Body::from(bytes),
                )
            }
        }
    } else {
        let (caller, claimed_hash) = hmac::verify(auth, &parts).await?;
        if streamed {
            parts.extensions.insert(body::ClaimedSha256(claimed_hash));
            (caller, body)
        } else {
            let bytes = body::read_bounded(&parts.headers, body, max_buffered).await?;
            hmac::check_body(auth, &claimed_hash, &bytes).await?;
            (caller, Body::from(bytes))
        }
    };
    let verdict = limit::limit_principal(auth, &caller).await?;
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    // Nothing leaves before the nonce is durably spent: most requests spent it with their
    // audit event; the rest (listings, refusals that record nothing) spend it here.
    auth.vault.spend_nonce(&caller).await?;
    if let Some(verdict) = verdict {
        super::error::rate_limit_headers(response.headers_mut(), &verdict);
    }
    audit_event_header(&mut response, &caller);
    response
        .extensions_mut()
        .insert(LoggedPrincipal(caller.principal.as_str().to_owned()));
    Ok(response)
}

/// `X-VE-Audit-Event: <chain>/<seq>` on every response whose request recorded an event
/// (DESIGN §16), whichever route: the commit path notes the position in the caller.
fn audit_event_header(response: &mut Response, caller: &crate::service::Caller) {
    let Some(position) = caller.audit.get() else {
        return;
    };
    let value = format!("{}/{}", position.chain, position.seq);
    match axum::http::HeaderValue::from_str(&value) {
        Ok(value) => {
            response.headers_mut().insert(AUDIT_EVENT, value);
        }
        // Chain names are checked ASCII; a value that is not a header is a bug to see.
        Err(_) => tracing::error!(value, "audit position is not a header value"),
    }
}

/// The response header naming the audit event of a request.
pub const AUDIT_EVENT: &str = "x-ve-audit-event";

/// The id the request-id middleware gave this request, for the audit trail.
fn request_id(parts: &Parts) -> String {
    parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}
