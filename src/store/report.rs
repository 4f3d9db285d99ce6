//! The counts behind the compliance report (DESIGN §14) and the retention gauges: every
//! number is a query over the data, optionally limited to one org's tenant.

use super::StoreResult;
use async_trait::async_trait;

/// Blob counts of the report's summary; `org` limits them to one org's blobs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct BlobSummary {
    /// Rows that still hold content (live: neither purged nor deleted).
    pub total_blobs: i64,
    pub active: i64,
    pub expired_pending_purge: i64,
    pub held: i64,
    /// The oldest expiry among expired blobs a sweep would purge (not held), if any.
    pub oldest_pending_expiry: Option<i64>,
}

/// Active blobs of one (scope, policy, key version), and how many of them expire soon.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScopeCounts {
    pub scope: String,
    pub retention_policy: String,
    pub key_version: i64,
    pub active: i64,
    pub expiring: i64,
}

/// A tenant key still holding material, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantKeyAge {
    pub tenant: String,
    pub created_at: i64,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    async fn blob_summary(&self, org: Option<&str>, now: i64) -> StoreResult<BlobSummary>;
    /// Active blobs grouped by scope, policy and key version; `expiring` counts those whose
    /// expiry is before `soon`.
    async fn scope_counts(
        &self,
        org: Option<&str>,
        now: i64,
        soon: i64,
    ) -> StoreResult<Vec<ScopeCounts>>;
    /// `blob.purged` events at or after `since_ms`.
    async fn purged_since(&self, org: Option<&str>, since_ms: i64) -> StoreResult<i64>;
    /// Undestroyed tenant keys (of `tenant` only, when given): how many, and the oldest
    /// creation time.
    async fn tenant_key_stats(&self, tenant: Option<&str>) -> StoreResult<(i64, Option<i64>)>;
    /// Undestroyed tenant keys created before `before`, oldest first, at most `limit`.
    async fn tenant_keys_older_than(
        &self,
        tenant: Option<&str>,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<TenantKeyAge>>;
}

macro_rules! report_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl ReportStore for $store {
            async fn blob_summary(&self, org: Option<&str>, now: i64) -> StoreResult<BlobSummary> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT COUNT(*) AS total_blobs, \
                     COALESCE(SUM(CASE WHEN b.expires_at IS NULL OR b.expires_at > ",
                );
                sql.push_bind(now)
                    .push(" THEN 1 ELSE 0 END), 0) AS active, COALESCE(SUM(CASE WHEN b.expires_at <= ")
                    .push_bind(now)
                    .push(
                        " THEN 1 ELSE 0 END), 0) AS expired_pending_purge, \
                         COALESCE(SUM(CASE WHEN b.legal_hold THEN 1 ELSE 0 END), 0) AS held, \
                         MIN(CASE WHEN b.legal_hold = FALSE AND b.expires_at <= ",
                    )
                    .push_bind(now)
                    .push(
                        " THEN b.expires_at END) AS oldest_pending_expiry \
                         FROM blobs b WHERE b.purged_at IS NULL",
                    );
                if let Some(org) = org {
                    sql.push(" AND b.org_id = ").push_bind(org.to_owned());
                }
                Ok(sql.build_query_as().fetch_one(&self.pool).await?)
            }

            async fn scope_counts(
                &self,
                org: Option<&str>,
                now: i64,
                soon: i64,
            ) -> StoreResult<Vec<ScopeCounts>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT b.scope, b.retention_policy, b.key_version, COUNT(*) AS active, \
                     COALESCE(SUM(CASE WHEN b.expires_at IS NOT NULL AND b.expires_at <= ",
                );
                sql.push_bind(soon)
                    .push(
                        " THEN 1 ELSE 0 END), 0) AS expiring FROM blobs b \
                         WHERE b.purged_at IS NULL AND (b.expires_at IS NULL OR b.expires_at > ",
                    )
                    .push_bind(now)
                    .push(")");
                if let Some(org) = org {
                    sql.push(" AND b.org_id = ").push_bind(org.to_owned());
                }
                sql.push(
                    " GROUP BY b.scope, b.retention_policy, b.key_version \
                     ORDER BY b.scope, b.retention_policy, b.key_version",
                );
                Ok(sql.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn purged_since(&self, org: Option<&str>, since_ms: i64) -> StoreResult<i64> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT COUNT(*) FROM audit_events \
                     WHERE event_type = 'blob.purged' AND ts_ms >= ",
                );
                sql.push_bind(since_ms);
                if let Some(org) = org {
                    sql.push(" AND org_id = ").push_bind(org.to_owned());
                }
                Ok(sql.build_query_scalar().fetch_one(&self.pool).await?)
            }

            async fn tenant_key_stats(
                &self,
                tenant: Option<&str>,
            ) -> StoreResult<(i64, Option<i64>)> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT COUNT(*), MIN(CASE WHEN status = 'active' THEN created_at END) \
                     FROM tenant_keys WHERE destroyed_at IS NULL",
                );
                if let Some(tenant) = tenant {
                    sql.push(" AND tenant = ").push_bind(tenant.to_owned());
                }
                Ok(sql.build_query_as().fetch_one(&self.pool).await?)
            }

            async fn tenant_keys_older_than(
                &self,
                tenant: Option<&str>,
                before: i64,
                limit: i64,
            ) -> StoreResult<Vec<TenantKeyAge>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT tenant, created_at FROM tenant_keys \
                     WHERE status = 'active' AND created_at < ",
                );
                sql.push_bind(before);
                if let Some(tenant) = tenant {
                    sql.push(" AND tenant = ").push_bind(tenant.to_owned());
                }
                sql.push(" ORDER BY created_at, tenant LIMIT ").push_bind(limit);
                Ok(sql.build_query_as().fetch_all(&self.pool).await?)
            }
        }
    };
}

for_each_backend!(report_store);
