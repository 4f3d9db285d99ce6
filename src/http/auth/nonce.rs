//! Recording a request's nonce: accepted once per principal within the replay window.

use super::Authenticator;
use crate::error::VaultError;
use crate::nonce::NonceError;
use crate::service::PendingNonce;
use crate::store::NonceClaim;

/// Accepts a nonce once per principal within the window (it is remembered until the request's
/// timestamp leaves the window). The fast stores (memory, Redis) turn most replays away here;
/// the returned claim is then spent durably before the request answers, which is what holds
/// when the fast stores have lost state (see `PendingNonce`).
pub(super) async fn record(
    auth: &Authenticator,
    scheme: &str,
    principal: &str,
    nonce: &str,
    request_ms: i64,
) -> Result<PendingNonce, VaultError> {
    let expires_ms = request_ms.saturating_add(data_vault_auth::MAX_AGE_SECS * 1000 + 1000);
    match auth
        .nonces
        .check_and_record(
            principal,
            nonce,
            auth.vault.clock().now_millis(),
            expires_ms,
        )
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
