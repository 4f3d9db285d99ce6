//! The checks both schemes share, all cheap and done before any signature: one header read
//! with a length bound, the timestamp and its replay window, and the nonce's shape.

use super::Authenticator;
use crate::error::VaultError;
use axum::http::HeaderMap;

/// Headers longer than this are refused before any parsing.
const MAX_AUTH_HEADER_LEN: usize = 512;

/// One authentication header as text, or the failure reason (`missing`, `malformed`).
pub(super) fn header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, &'static str> {
    let value = headers.get(name).ok_or("missing")?;
    if value.len() > MAX_AUTH_HEADER_LEN {
        return Err("malformed");
    }
    value.to_str().map_err(|_| "malformed")
}

/// Parses a timestamp header (`unit_ms` milliseconds per unit) and checks the replay window;
/// returns the time in milliseconds.
pub(super) fn check_timestamp(
    auth: &Authenticator,
    scheme: &str,
    text: &str,
    unit_ms: i64,
) -> Result<i64, VaultError> {
    let Some(value) = data_vault_auth::timestamp::parse_decimal(text) else {
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

/// The replay window of both schemes, in milliseconds.
fn check_time(auth: &Authenticator, scheme: &str, request_ms: i64) -> Result<(), VaultError> {
    data_vault_auth::check_window(request_ms, auth.vault.clock().now_millis()).map_err(|e| {
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

/// The nonce's shape; whether it was seen before is [`super::nonce::record`]'s job.
pub(super) fn check_nonce(
    auth: &Authenticator,
    scheme: &str,
    nonce: &str,
) -> Result<(), VaultError> {
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
