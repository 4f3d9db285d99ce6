//! Replay protection: a nonce is accepted once per principal within the replay window.
//!
//! The in-process store always records; with Redis configured, nonces are also recorded there
//! (`SET key 1 NX EX`), so a request replayed against another replica is refused too. When
//! Redis cannot be reached, the vault keeps serving on the in-process store alone, reports
//! itself `degraded`, and counts it — see `runbooks/redis-outage.md`.

mod memory;
mod shared;

use async_trait::async_trait;

pub use memory::MemoryNonceStore;
pub use shared::RedisNonceStore;

#[derive(Debug, thiserror::Error)]
pub enum NonceError {
    #[error("nonce store is full")]
    Full,
    #[error("nonce store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Records `nonce` for `principal` until `expires_at_ms`. Returns `false` when it was
    /// already recorded (a replay). Check and record are one atomic step.
    async fn check_and_record(
        &self,
        principal: &str,
        nonce: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, NonceError>;
}
