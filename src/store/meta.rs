//! The store's own bookkeeping: whether the database answers, and the `vault_meta` key-value
//! table (the master key's fingerprint lives there).

use super::StoreResult;
use async_trait::async_trait;

#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;

    async fn meta_value(&self, key: &str) -> StoreResult<Option<String>>;
    /// Stores `value` unless the key already has one; returns whether it was stored.
    async fn insert_meta_value(&self, key: &str, value: &str) -> StoreResult<bool>;
    /// Stores `value`, replacing the key's value if it has one.
    async fn set_meta_value(&self, key: &str, value: &str) -> StoreResult<()>;
}

macro_rules! meta_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl MetaStore for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn meta_value(&self, key: &str) -> StoreResult<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT value FROM vault_meta WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn insert_meta_value(&self, key: &str, value: &str) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO vault_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_meta_value(&self, key: &str, value: &str) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO vault_meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = $2",
                )
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

for_each_backend!(meta_store);
