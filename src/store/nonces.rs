//! The nonce journal (DESIGN §6): the durable record of spent request nonces that decides
//! replays on every replica and after any restart. Nonces are spent inside group commits
//! (`batch.rs`); only pruning runs on its own.

use super::{StoreError, StoreResult};
use async_trait::async_trait;
use std::collections::HashSet;

/// A request's nonce, to be spent durably (DESIGN §6): once inserted it refuses the same
/// `(principal, nonce)` until `expires_ms`, the end of the request's replay window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    pub principal: String,
    pub nonce: String,
    pub expires_ms: i64,
}

#[async_trait]
pub trait NonceJournal: Send + Sync {
    /// Forgets spent nonces whose replay window closed before `now_ms`; how many.
    async fn prune_nonces(&self, now_ms: i64) -> StoreResult<u64>;
}

macro_rules! nonce_journal {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Spends a batch's nonces (one per job, if any) with one multi-row upsert;
            /// returns, per job, whether it may proceed (`false`: its nonce was spent before,
            /// or earlier in this batch). A spent nonce whose window has closed may be spent
            /// again, as a new request within its own window. Claims are inserted in key
            /// order, so batches of two replicas racing over the same nonces cannot deadlock.
            pub(super) async fn spend_nonces_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                claims: &[Option<&NonceClaim>],
                now_ms: i64,
            ) -> StoreResult<Vec<bool>> {
                let mut fresh = vec![true; claims.len()];
                let mut unique: Vec<(usize, &NonceClaim)> = Vec::new();
                let mut seen = HashSet::new();
                for (index, claim) in claims.iter().enumerate() {
                    if let Some(claim) = claim {
                        if seen.insert((claim.principal.as_str(), claim.nonce.as_str())) {
                            unique.push((index, claim));
                        } else if let Some(slot) = fresh.get_mut(index) {
                            *slot = false;
                        }
                    }
                }
                if unique.is_empty() {
                    return Ok(fresh);
                }
                unique.sort_by(|(_, a), (_, b)| {
                    (a.principal.as_str(), a.nonce.as_str())
                        .cmp(&(b.principal.as_str(), b.nonce.as_str()))
                });
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO used_nonces (principal, nonce, expires_ms) ",
                );
                insert.push_values(&unique, |mut row, (_, claim)| {
                    row.push_bind(&claim.principal)
                        .push_bind(&claim.nonce)
                        .push_bind(claim.expires_ms);
                });
                insert
                    .push(
                        " ON CONFLICT (principal, nonce) DO UPDATE SET expires_ms = \
                         excluded.expires_ms WHERE used_nonces.expires_ms <= ",
                    )
                    .push_bind(now_ms)
                    .push(" RETURNING principal, nonce");
                // The replay journal is part of what makes a response safe to send: a failure
                // here fails the batch closed, like an audit write.
                let spent: HashSet<(String, String)> = insert
                    .build_query_as::<(String, String)>()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::audit)?
                    .into_iter()
                    .collect();
                for (index, claim) in unique {
                    let key = (claim.principal.clone(), claim.nonce.clone());
                    if !spent.contains(&key) {
                        if let Some(slot) = fresh.get_mut(index) {
                            *slot = false;
                        }
                    }
                }
                Ok(fresh)
            }
        }

        #[async_trait]
        impl NonceJournal for $store {
            async fn prune_nonces(&self, now_ms: i64) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM used_nonces WHERE expires_ms <= $1")
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

for_each_backend!(nonce_journal);
