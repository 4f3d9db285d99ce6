//! Tenant keys (versions with a status, each wrapped by one master key of the keyring), the
//! ages of the oldest live keys and client secrets, and the rewrap of everything the master
//! key wraps (`admin keys rewrap-master`).

use super::StoreResult;
use async_trait::async_trait;

/// The status of the tenant key version that wraps new data keys (DESIGN §15); the others
/// are `retired` and `destroyed`.
pub const KEY_ACTIVE: &str = "active";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantKeyRecord {
    pub id: String,
    pub tenant: String,
    pub version: i64,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
    /// `active`, `retired` or `destroyed`.
    pub status: String,
    /// The master key that wraps `wrapped`.
    pub master_key_id: Option<String>,
}

/// One tenant key version as `GET /vault/keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantKeyListing {
    pub tenant: String,
    pub version: i64,
    pub status: String,
    pub created_at: i64,
    /// Live blobs (not crypto-shredded) whose data key this version wraps.
    pub blobs: i64,
}

/// A client secret sealed under a master key other than the active one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedSecretRecord {
    pub client: String,
    pub slot: i64,
    pub sealed: Vec<u8>,
    pub master_key_id: Option<String>,
}

/// Creation times (Unix seconds) of the oldest live key of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OldestKeys {
    /// The oldest `active` tenant key version.
    pub tenant: Option<i64>,
    /// The oldest live secret of a client that is not revoked.
    pub client_secret: Option<i64>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The active version of `tenant`'s key.
    async fn current_tenant_key(&self, tenant: &str) -> StoreResult<Option<TenantKeyRecord>>;
    /// Every version of `tenant`'s key that has not been destroyed, oldest first.
    async fn live_tenant_keys(&self, tenant: &str) -> StoreResult<Vec<TenantKeyRecord>>;
    /// The newest version `tenant`'s key ever had, destroyed or not (0 for none), so a key
    /// made after an erasure takes the next version.
    async fn newest_tenant_key_version(&self, tenant: &str) -> StoreResult<i64>;
    /// Inserts a tenant key; `false` if that tenant version, or an active one, exists (lost a
    /// creation race).
    async fn insert_tenant_key(&self, key: &TenantKeyRecord) -> StoreResult<bool>;
    /// Tenant key versions (of one tenant, or all), by tenant and version, at most `limit`.
    async fn list_tenant_keys(
        &self,
        tenant: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<TenantKeyListing>>;
    /// Creation times of the oldest active tenant key and the oldest live client secret.
    async fn oldest_keys(&self) -> StoreResult<OldestKeys>;
    /// The ids of the master keys that wrap a live tenant key or a client secret.
    async fn referenced_master_keys(&self) -> StoreResult<Vec<String>>;
    /// How many live tenant keys and client secrets are wrapped by another master key than
    /// `active_id`.
    async fn count_not_under_master(&self, active_id: &str) -> StoreResult<i64>;
    /// Up to `limit` live tenant keys wrapped by another master key than `active_id`.
    async fn tenant_keys_not_under_master(
        &self,
        active_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<TenantKeyRecord>>;
    /// Up to `limit` client secrets sealed by another master key than `active_id`.
    async fn secrets_not_under_master(
        &self,
        active_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<SealedSecretRecord>>;
    /// Replaces a tenant key's wrapping if it is still `old` (a concurrent rewrap or erasure
    /// wins); whether it changed.
    async fn rewrap_tenant_key(
        &self,
        id: &str,
        old: &[u8],
        wrapped: &[u8],
        master_key_id: &str,
    ) -> StoreResult<bool>;
    /// Replaces a client secret's seal if it is still `old`; whether it changed.
    async fn reseal_client_secret(
        &self,
        client: &str,
        slot: i64,
        old: &[u8],
        sealed: &[u8],
        master_key_id: &str,
    ) -> StoreResult<bool>;
}

const TENANT_KEY_COLUMNS: &str = "id, tenant, version, wrapped, created_at, status, master_key_id";

macro_rules! key_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Inserts a tenant key version on `executor` (the pool, or a rotation's
            /// transaction); false when the version exists already.
            pub(super) async fn insert_tenant_key_on<'e, E>(
                executor: E,
                key: &TenantKeyRecord,
            ) -> StoreResult<bool>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let done = sqlx::query(
                    "INSERT INTO tenant_keys \
                     (id, tenant, version, wrapped, created_at, status, master_key_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(&key.id)
                .bind(&key.tenant)
                .bind(key.version)
                .bind(&key.wrapped)
                .bind(key.created_at)
                .bind(&key.status)
                .bind(&key.master_key_id)
                .execute(executor)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn current_tenant_key(
                &self,
                tenant: &str,
            ) -> StoreResult<Option<TenantKeyRecord>> {
                let sql = format!(
                    "SELECT {TENANT_KEY_COLUMNS} FROM tenant_keys \
                     WHERE tenant = $1 AND status = 'active' ORDER BY version DESC LIMIT 1"
                );
                Ok(sqlx::query_as(&sql)
                    .bind(tenant)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn live_tenant_keys(&self, tenant: &str) -> StoreResult<Vec<TenantKeyRecord>> {
                let sql = format!(
                    "SELECT {TENANT_KEY_COLUMNS} FROM tenant_keys \
                     WHERE tenant = $1 AND status <> 'destroyed' ORDER BY version"
                );
                Ok(sqlx::query_as(&sql)
                    .bind(tenant)
                    .fetch_all(&self.pool)
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
                Self::insert_tenant_key_on(&self.pool, key).await
            }

            async fn list_tenant_keys(
                &self,
                tenant: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<TenantKeyListing>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT t.tenant, t.version, t.status, t.created_at, \
                     (SELECT COUNT(*) FROM blobs b WHERE b.key_id = t.id \
                      AND b.purged_at IS NULL) AS blobs FROM tenant_keys t",
                );
                if let Some(tenant) = tenant {
                    sql.push(" WHERE t.tenant = ").push_bind(tenant);
                }
                sql.push(" ORDER BY t.tenant, t.version LIMIT ")
                    .push_bind(limit);
                Ok(sql.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn oldest_keys(&self) -> StoreResult<OldestKeys> {
                let (tenant, client_secret): (Option<i64>, Option<i64>) = sqlx::query_as(
                    "SELECT (SELECT MIN(created_at) FROM tenant_keys WHERE status = 'active'), \
                     (SELECT MIN(s.created_at) FROM client_secrets s JOIN clients c \
                      ON c.name = s.client WHERE c.revoked_at IS NULL)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(OldestKeys {
                    tenant,
                    client_secret,
                })
            }

            async fn referenced_master_keys(&self) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT master_key_id FROM tenant_keys \
                     WHERE status <> 'destroyed' AND master_key_id IS NOT NULL \
                     UNION SELECT master_key_id FROM client_secrets \
                     WHERE master_key_id IS NOT NULL",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn count_not_under_master(&self, active_id: &str) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM tenant_keys WHERE status <> 'destroyed' \
                       AND (master_key_id IS NULL OR master_key_id <> $1)) \
                     + (SELECT COUNT(*) FROM client_secrets \
                       WHERE master_key_id IS NULL OR master_key_id <> $1)",
                )
                .bind(active_id)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn tenant_keys_not_under_master(
                &self,
                active_id: &str,
                limit: i64,
            ) -> StoreResult<Vec<TenantKeyRecord>> {
                let sql = format!(
                    "SELECT {TENANT_KEY_COLUMNS} FROM tenant_keys WHERE status <> 'destroyed' \
                     AND (master_key_id IS NULL OR master_key_id <> $1) ORDER BY id LIMIT $2"
                );
                Ok(sqlx::query_as(&sql)
                    .bind(active_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn secrets_not_under_master(
                &self,
                active_id: &str,
                limit: i64,
            ) -> StoreResult<Vec<SealedSecretRecord>> {
                Ok(sqlx::query_as(
                    "SELECT client, slot, sealed, master_key_id FROM client_secrets \
                     WHERE master_key_id IS NULL OR master_key_id <> $1 \
                     ORDER BY client, slot LIMIT $2",
                )
                .bind(active_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn rewrap_tenant_key(
                &self,
                id: &str,
                old: &[u8],
                wrapped: &[u8],
                master_key_id: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE tenant_keys SET wrapped = $1, master_key_id = $2 \
                     WHERE id = $3 AND wrapped = $4 AND status <> 'destroyed'",
                )
                .bind(wrapped)
                .bind(master_key_id)
                .bind(id)
                .bind(old)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn reseal_client_secret(
                &self,
                client: &str,
                slot: i64,
                old: &[u8],
                sealed: &[u8],
                master_key_id: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE client_secrets SET sealed = $1, master_key_id = $2 \
                     WHERE client = $3 AND slot = $4 AND sealed = $5",
                )
                .bind(sealed)
                .bind(master_key_id)
                .bind(client)
                .bind(slot)
                .bind(old)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

for_each_backend!(key_store);
