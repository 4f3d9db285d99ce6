//! Tenant keys (one current version per tenant, wrapped by the master key) and the ages of
//! the oldest keys and client secrets, for the key-age metrics.

use super::StoreResult;
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantKeyRecord {
    pub id: String,
    pub tenant: String,
    pub version: i64,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The newest version of `tenant`'s key that has not been destroyed.
    async fn current_tenant_key(&self, tenant: &str) -> StoreResult<Option<TenantKeyRecord>>;
    /// The newest version `tenant`'s key ever had, destroyed or not (0 for none), so a key
    /// made after an erasure takes the next version.
    async fn newest_tenant_key_version(&self, tenant: &str) -> StoreResult<i64>;
    /// Inserts a tenant key; `false` if that tenant version exists (lost a creation race).
    async fn insert_tenant_key(&self, key: &TenantKeyRecord) -> StoreResult<bool>;
    /// Creation times (Unix seconds) of the oldest tenant key and the oldest live client
    /// secret, for the key-age metrics.
    async fn oldest_keys(&self) -> StoreResult<(Option<i64>, Option<i64>)>;
}

macro_rules! key_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl KeyStore for $store {
            async fn current_tenant_key(
                &self,
                tenant: &str,
            ) -> StoreResult<Option<TenantKeyRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, tenant, version, wrapped, created_at FROM tenant_keys \
                     WHERE tenant = $1 AND destroyed_at IS NULL ORDER BY version DESC LIMIT 1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn newest_tenant_key_version(&self, tenant: &str) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) FROM tenant_keys WHERE tenant = $1",
                )
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn insert_tenant_key(&self, key: &TenantKeyRecord) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO tenant_keys (id, tenant, version, wrapped, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(&key.id)
                .bind(&key.tenant)
                .bind(key.version)
                .bind(&key.wrapped)
                .bind(key.created_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn oldest_keys(&self) -> StoreResult<(Option<i64>, Option<i64>)> {
                Ok(sqlx::query_as(
                    "SELECT (SELECT MIN(created_at) FROM tenant_keys WHERE destroyed_at IS NULL), \
                     (SELECT MIN(created_at) FROM client_secrets)",
                )
                .fetch_one(&self.pool)
                .await?)
            }
        }
    };
}

for_each_backend!(key_store);
