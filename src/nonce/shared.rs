//! Nonces shared across replicas through Redis, with the in-process store kept warm beside it.

use super::{MemoryNonceStore, NonceError, NonceStore};
use crate::redis_conn::Redis;
use async_trait::async_trait;
use std::sync::Arc;

pub struct RedisNonceStore {
    redis: Arc<Redis>,
    local: MemoryNonceStore,
}

impl RedisNonceStore {
    pub fn new(redis: Arc<Redis>, local: MemoryNonceStore) -> Self {
        Self { redis, local }
    }
}

#[async_trait]
impl NonceStore for RedisNonceStore {
    async fn check_and_record(
        &self,
        principal: &str,
        nonce: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, NonceError> {
        // The local record catches replays to this replica even while Redis is away.
        if !self
            .local
            .check_and_record(principal, nonce, now_ms, expires_at_ms)
            .await?
        {
            return Ok(false);
        }
        let key = self.redis.key(&["nonce", principal, nonce]);
        let ttl_secs =
            u64::try_from((expires_at_ms.saturating_sub(now_ms) / 1000).max(1)).unwrap_or(1);
        let stored = self
            .redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        match stored {
            Ok(Some(_)) => Ok(true),
            // Another replica saw this nonce first.
            Ok(None) => Ok(false),
            // Degraded: the local record stands alone until Redis returns.
            Err(_) => Ok(true),
        }
    }
}
