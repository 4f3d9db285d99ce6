//! The HMAC scheme (DESIGN §6): a registered client signs the request, including the hash of
//! the body it claims to send; the body is read only after the signature holds, then checked
//! against that hash.

use super::headers::{check_nonce, check_timestamp, header};
use super::{nonce, request_id, Authenticator};
use crate::domain::ClientName;
use crate::error::VaultError;
use crate::offload;
use crate::service::{AuthMethod, Caller};
use axum::body::Bytes;
use axum::http::request::Parts;
use data_vault_auth::{headers as h, HmacRequest};
use sha2::{Digest, Sha256};

const SCHEME: &str = "hmac";

/// Verifies the HMAC headers and records the nonce. Returns the caller and the body hash the
/// signature vouches for.
pub(super) async fn verify(
    auth: &Authenticator,
    request: &Parts,
) -> Result<(Caller, [u8; 32]), VaultError> {
    let headers = &request.headers;
    let get = |name: &'static str, what: &'static str| {
        header(headers, name)
            .map_err(|reason| auth.fail(SCHEME, reason, VaultError::Unauthenticated(what)))
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
            SCHEME,
            "malformed",
            VaultError::Unauthenticated("X-VE-Principal is not a valid client name"),
        )
    })?;
    let request_ms = check_timestamp(auth, SCHEME, timestamp_text, 1000)?;
    check_nonce(auth, SCHEME, nonce)?;
    // One spelling only (lower-case hex): the signed string is the header as sent, so an
    // upper-case twin would be a second valid request for the same bytes.
    let Some(claimed_hash) = data_vault_auth::parse_lower_hex_32(content_sha256) else {
        return Err(auth.fail(
            SCHEME,
            "malformed",
            VaultError::Unauthenticated(
                "X-VE-Content-SHA256 must be 64 lower-case hexadecimal characters",
            ),
        ));
    };
    let Ok(signature) = data_vault_auth::parse_signature(signature) else {
        return Err(auth.fail(
            SCHEME,
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
            SCHEME,
            "bad_signature",
            VaultError::Unauthenticated("signature does not verify"),
        ));
    }

    let nonce = nonce::record(auth, SCHEME, principal, nonce, request_ms).await?;
    Ok((
        Caller {
            principal: name.principal().clone(),
            method: AuthMethod::Hmac,
            request_id: request_id(request),
            nonce,
            audit: Default::default(),
        },
        claimed_hash,
    ))
}

/// Checks the body as read against the hash the signature covers.
pub(super) async fn check_body(
    auth: &Authenticator,
    claimed_hash: &[u8; 32],
    body: &Bytes,
) -> Result<(), VaultError> {
    let digest = {
        let body = body.clone();
        offload::sized(body.len(), move || Sha256::digest(&body)).await?
    };
    if digest.as_slice() == claimed_hash.as_slice() {
        Ok(())
    } else {
        Err(auth.fail(
            SCHEME,
            "content_hash",
            VaultError::Unauthenticated("body does not match X-VE-Content-SHA256"),
        ))
    }
}
