//! Wallet principals blocked by an operator (`admin principal block`), with why and since when.

use super::StoreResult;
use crate::audit::NewEvent;
use crate::domain::Principal;
use async_trait::async_trait;

/// One block as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockRecord {
    pub principal: String,
    pub reason: Option<String>,
    pub blocked_at: i64,
}

#[async_trait]
pub trait PrincipalStore: Send + Sync {
    /// Blocks `principal` and records `event`, in one transaction; `false` (and nothing
    /// recorded) if it is already blocked.
    async fn block_principal(
        &self,
        principal: &Principal,
        reason: Option<&str>,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// Lifts a block and records `event`, in one transaction; `false` (and nothing recorded)
    /// if `principal` was not blocked.
    async fn unblock_principal(&self, principal: &Principal, event: &NewEvent)
        -> StoreResult<bool>;
    /// The block on one principal, if any.
    async fn principal_block(&self, principal: &Principal) -> StoreResult<Option<BlockRecord>>;
    /// Every blocked principal, up to `limit`, by name.
    async fn blocked_principals(&self, limit: i64) -> StoreResult<Vec<String>>;
}

macro_rules! principal_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl PrincipalStore for $store {
            async fn block_principal(
                &self,
                principal: &Principal,
                reason: Option<&str>,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let blocked = sqlx::query(
                    "INSERT INTO blocked_principals (principal, reason, blocked_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(principal.as_str())
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                Ok(Self::record_if(tx, blocked, event).await?.is_some())
            }

            async fn unblock_principal(
                &self,
                principal: &Principal,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let lifted = sqlx::query("DELETE FROM blocked_principals WHERE principal = $1")
                    .bind(principal.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                Ok(Self::record_if(tx, lifted, event).await?.is_some())
            }

            async fn principal_block(
                &self,
                principal: &Principal,
            ) -> StoreResult<Option<BlockRecord>> {
                Ok(sqlx::query_as(
                    "SELECT principal, reason, blocked_at FROM blocked_principals \
                     WHERE principal = $1",
                )
                .bind(principal.as_str())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn blocked_principals(&self, limit: i64) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT principal FROM blocked_principals ORDER BY principal LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

for_each_backend!(principal_store);
