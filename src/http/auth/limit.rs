//! What an authenticated principal may still be refused for: a block after a denial spike,
//! and the per-principal rate limit (both answered 429).

use super::Authenticator;
use crate::error::VaultError;
use crate::limits::{Limit, Verdict};
use crate::service::Caller;
use crate::spikes::SpikeDetector;

/// Applies the spike block, then the per-principal limit. Returns the verdict whose
/// `X-RateLimit-*` headers the response carries (none when limits are off).
pub(super) async fn limit_principal(
    auth: &Authenticator,
    caller: &Caller,
) -> Result<Option<Verdict>, VaultError> {
    let abuse = auth.vault.abuse();
    let principal = caller.principal.as_str();
    if let Some(spikes) = &abuse.spikes {
        refuse_if_blocked(auth, spikes, principal).await?;
    }
    match &abuse.limiter {
        Some(limiter) => limiter.enforce(Limit::Principal, principal).await.map(Some),
        None => Ok(None),
    }
}

/// A principal blocked after a denial spike is refused until the block ends, with that wait
/// as its `Retry-After`.
async fn refuse_if_blocked(
    auth: &Authenticator,
    spikes: &SpikeDetector,
    principal: &str,
) -> Result<(), VaultError> {
    let now = auth.vault.clock().now_millis();
    let Some(until) = spikes.blocked_until(principal, now).await else {
        return Ok(());
    };
    let wait = u64::try_from(until.saturating_sub(now))
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1);
    auth.metrics.rate_limited("blocked");
    Err(VaultError::RateLimited(Verdict {
        allowed: false,
        limit: 0,
        remaining: 0,
        reset_secs: wait,
        retry_after_secs: wait,
    }))
}
