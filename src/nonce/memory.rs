//! The in-process nonce store: a bounded map from `(principal, nonce)` to expiry.

use super::{NonceError, NonceStore};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// The in-process store: a map from `(principal, nonce)` to expiry, swept when it grows.
pub struct MemoryNonceStore {
    seen: Mutex<HashMap<(String, String), i64>>,
    capacity: usize,
}

impl MemoryNonceStore {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

#[async_trait]
impl NonceStore for MemoryNonceStore {
    async fn check_and_record(
        &self,
        principal: &str,
        nonce: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, NonceError> {
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| NonceError::Unavailable("nonce store lock poisoned".into()))?;
        let key = (principal.to_owned(), nonce.to_owned());
        if let Some(expiry) = seen.get(&key) {
            if *expiry > now_ms {
                return Ok(false);
            }
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, expiry| *expiry > now_ms);
            // Still full of live nonces: refuse rather than forget one, which would let a
            // replay through.
            if seen.len() >= self.capacity {
                return Err(NonceError::Full);
            }
        }
        seen.insert(key, expires_at_ms);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_nonce_is_accepted_once_per_principal() {
        let store = MemoryNonceStore::new(10);
        assert!(store.check_and_record("a", "n1", 0, 100).await.unwrap());
        assert!(!store.check_and_record("a", "n1", 50, 150).await.unwrap());
        assert!(store.check_and_record("b", "n1", 50, 150).await.unwrap());
        // After expiry the window has moved on and the timestamp check rejects old requests.
        assert!(store.check_and_record("a", "n1", 101, 200).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_store_sweeps_and_then_refuses() {
        let store = MemoryNonceStore::new(2);
        assert!(store.check_and_record("a", "1", 0, 10).await.unwrap());
        assert!(store.check_and_record("a", "2", 0, 10).await.unwrap());
        assert!(matches!(
            store.check_and_record("a", "3", 5, 15).await,
            Err(NonceError::Full)
        ));
        assert!(store.check_and_record("a", "3", 11, 20).await.unwrap());
    }
}
