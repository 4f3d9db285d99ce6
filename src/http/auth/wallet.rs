//! The wallet scheme (DESIGN §6): a secp256k1 key signs the request and the body's hash, and
//! the principal is the key's bech32 address. No header carries the hash, so the headers are
//! checked first, the body read (bounded), and only then the signature.

use super::headers::{check_nonce, check_timestamp, header};
use super::{nonce, request_id, Authenticator};
use crate::domain::Principal;
use crate::error::VaultError;
use crate::offload;
use crate::service::{AuthMethod, Caller};
use axum::body::Bytes;
use axum::http::request::Parts;
use data_vault_auth::{headers as h, WalletError, WalletRequest};

const SCHEME: &str = "wallet";

/// The wallet headers, checked for shape and time before the body is read.
pub(super) struct WalletClaims {
    address: String,
    timestamp_ms: i64,
    nonce: String,
    public_key: String,
    signature: String,
}

pub(super) fn claims(auth: &Authenticator, parts: &Parts) -> Result<WalletClaims, VaultError> {
    let get = |name: &'static str, what: &'static str| {
        header(&parts.headers, name)
            .map(str::to_owned)
            .map_err(|reason| auth.fail(SCHEME, reason, VaultError::Unauthenticated(what)))
    };
    let address = get(h::ADDRESS, "missing or malformed X-VE-Address header")?;
    let timestamp = get(h::TIMESTAMP, "missing or malformed X-VE-Timestamp header")?;
    let nonce = get(h::NONCE, "missing or malformed X-VE-Nonce header")?;
    let public_key = get(h::PUBKEY, "missing or malformed X-VE-PubKey header")?;
    let signature = get(h::SIGNATURE, "missing or malformed X-VE-Signature header")?;
    let timestamp_ms = check_timestamp(auth, SCHEME, &timestamp, 1)?;
    check_nonce(auth, SCHEME, &nonce)?;
    Ok(WalletClaims {
        address,
        timestamp_ms,
        nonce,
        public_key,
        signature,
    })
}

/// The hash of a body read whole, in the form the wallet signs (empty for no body).
pub(super) async fn body_hash(body: &Bytes) -> Result<String, VaultError> {
    let body = body.clone();
    offload::sized(body.len(), move || data_vault_auth::body_hash_field(&body)).await
}

/// The optional `X-VE-Content-SHA256` header, which lets a wallet's signature be checked
/// before a streamed upload's body arrives (DESIGN §18); malformed is refused.
pub(super) fn claimed_hash(
    auth: &Authenticator,
    parts: &Parts,
) -> Result<Option<[u8; 32]>, VaultError> {
    let Some(value) = parts.headers.get(h::CONTENT_SHA256) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(data_vault_auth::parse_lower_hex_32)
        .map(Some)
        .ok_or_else(|| {
            auth.fail(
                SCHEME,
                "malformed",
                VaultError::Unauthenticated(
                    "X-VE-Content-SHA256 must be 64 lower-case hexadecimal characters",
                ),
            )
        })
}

/// Checks the signature over the request as sent (path and raw query, body hash), then
/// records the nonce. The principal is the address.
pub(super) async fn verify(
    auth: &Authenticator,
    parts: &Parts,
    claims: WalletClaims,
    body_hash: &str,
) -> Result<Caller, VaultError> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let signed = WalletRequest {
        method: parts.method.as_str(),
        path_and_query,
        timestamp_ms: claims.timestamp_ms,
        nonce: &claims.nonce,
        body_sha256_hex: body_hash,
    }
    .signed_data();
    auth.wallet
        .verify(
            &claims.address,
            &claims.public_key,
            &claims.signature,
            &signed,
        )
        .map_err(|e| auth.fail(SCHEME, e.reason(), VaultError::Unauthenticated(message(e))))?;
    let principal = Principal::parse(&claims.address).map_err(|_| {
        auth.fail(
            SCHEME,
            "malformed",
            VaultError::Unauthenticated("X-VE-Address is not a valid principal"),
        )
    })?;
    // A blocked wallet is refused like a bad signature; only the log and the metric say why.
    if auth.vault.is_blocked(&principal).await? {
        tracing::info!(
            principal = principal.as_str(),
            "wallet principal is blocked (admin principal block)"
        );
        return Err(auth.fail(
            SCHEME,
            "blocked",
            VaultError::Unauthenticated(message(WalletError::BadSignature)),
        ));
    }
    let nonce = nonce::record(
        auth,
        SCHEME,
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
        audit: Default::default(),
    })
}

/// What the client is told for each way a wallet signature can fail.
fn message(error: WalletError) -> &'static str {
    match error {
        WalletError::WrongPrefix => "address has another bech32 prefix",
        WalletError::AddressMismatch => "address does not belong to the public key",
        WalletError::MalformedAddress => "X-VE-Address is not a valid address",
        WalletError::MalformedPublicKey => {
            "X-VE-PubKey must be a base64 33-byte compressed secp256k1 key"
        }
        WalletError::MalformedSignature => "X-VE-Signature must be a base64 64-byte r||s signature",
        WalletError::HighS => "signature is not in low-S form",
        WalletError::BadSignature => "signature does not verify",
    }
}
