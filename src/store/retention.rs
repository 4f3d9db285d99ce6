//! Retention (DESIGN §12, §13): policies set through the API, the purge of blobs in short
//! batches, legal holds, the destruction of a tenant's key, and the sweep bookkeeping.
//!
//! A purge batch claims its rows and destroys them in one short transaction. On PostgreSQL
//! the sweep claims with `FOR UPDATE SKIP LOCKED`, so replicas sweeping at once take disjoint
//! rows and never wait on each other; SQLite has one writer, taken at `BEGIN IMMEDIATE`.
//! Key material goes first: the wrapped data key (and for crypto-shred the ciphertext) is
//! overwritten before the row is deleted, and each purge appends its `blob.purged` proof to
//! the blob's tenant chain in the same transaction.

use super::blobs::BLOB_COLUMNS;
use super::{BlobRecord, StoreError, StoreResult};
use crate::audit::NewEvent;
use crate::domain::BlobId;
use async_trait::async_trait;

/// A policy as stored by `PUT /vault/retention/policies/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PolicyRecord {
    pub name: String,
    pub max_retention_days: Option<i64>,
    pub default_ttl_days: Option<i64>,
    pub purge_method: String,
    pub description: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PurgeMethod {
    /// The row and its data key are gone; the id then answers 404.
    PhysicalDelete,
    /// The data key and ciphertext are destroyed; a tombstone row answers 410 `purged`.
    CryptoShred,
}

impl PurgeMethod {
    pub const ALL: [PurgeMethod; 2] = [PurgeMethod::PhysicalDelete, PurgeMethod::CryptoShred];

    pub fn as_str(self) -> &'static str {
        match self {
            PurgeMethod::PhysicalDelete => "physical-delete",
            PurgeMethod::CryptoShred => "crypto-shred",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Which blobs a purge pass takes (never held ones, never tombstones).
#[derive(Debug, Clone)]
pub enum PurgeSelection {
    /// Expired at `now` (Unix seconds): the sweep.
    Expired { now: i64 },
    /// Everything this principal owns: erasure.
    OwnedBy(String),
}

/// How to destroy one claimed blob, and the proof event its destruction appends.
pub type PurgePlan<'a> = &'a (dyn Fn(&BlobRecord) -> (PurgeMethod, NewEvent) + Send + Sync);

/// What one purge batch destroyed, by method.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCounts {
    pub physical_delete: u64,
    pub crypto_shred: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.physical_delete + self.crypto_shred
    }

    pub fn add(&mut self, other: PurgeCounts) {
        self.physical_delete += other.physical_delete;
        self.crypto_shred += other.crypto_shred;
    }
}

/// The outstanding work of a selection: blobs a purge would take, and held ones it skips.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub candidates: i64,
    pub held: i64,
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// The policies set through the API.
    async fn stored_policies(&self) -> StoreResult<Vec<PolicyRecord>>;
    async fn stored_policy(&self, name: &str) -> StoreResult<Option<PolicyRecord>>;
    /// Creates or replaces a policy with its event; whether it was new, and the event's `seq`.
    async fn put_policy(
        &self,
        policy: &PolicyRecord,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<(bool, i64)>;
    /// What a purge of `selection` would take now, and what holds keep back.
    async fn purge_backlog(&self, selection: &PurgeSelection) -> StoreResult<Backlog>;
    /// Claims up to `limit` blobs of `selection`, destroys each as `plan` says and appends its
    /// proof event, in one transaction.
    async fn purge_batch(
        &self,
        selection: &PurgeSelection,
        limit: i64,
        now: i64,
        plan: PurgePlan<'_>,
    ) -> StoreResult<PurgeCounts>;
    /// Sets (`Some(reason)`) or releases a live blob's hold with its event; the blob as it is
    /// now and the event's `seq`, or `None` when there is no live blob of that id.
    async fn set_hold(
        &self,
        id: &BlobId,
        reason: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<Option<(BlobRecord, i64)>>;
    /// Live (not purged) blobs of `owner`, in id order after `after`.
    async fn owned_blobs_page(
        &self,
        owner: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<BlobRecord>>;
    /// Destroys the material of every version of `tenant`'s key that no live blob needs,
    /// appending `event` when it destroyed any; how many versions it destroyed.
    async fn destroy_tenant_key(
        &self,
        tenant: &str,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<u64>;
    /// Records the end of a sweep that purged (not a dry run).
    async fn record_sweep(&self, at: i64, purged: u64) -> StoreResult<()>;
}

/// `vault_meta` keys of the last sweep, for the compliance report.
pub const LAST_SWEEP_AT: &str = "retention.last_sweep_at";
pub const PURGED_LAST_SWEEP: &str = "retention.purged_last_sweep";

macro_rules! retention_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The selection's condition and its one bound value.
            fn selection_sql(sql: &mut sqlx::QueryBuilder<'_, $db>, selection: &PurgeSelection) {
                match selection {
                    PurgeSelection::Expired { now } => {
                        sql.push(" AND b.expires_at <= ").push_bind(*now);
                    }
                    PurgeSelection::OwnedBy(owner) => {
                        sql.push(" AND b.owner = ").push_bind(owner.clone());
                    }
                }
            }
        }

        #[async_trait]
        impl RetentionStore for $store {
            async fn stored_policies(&self) -> StoreResult<Vec<PolicyRecord>> {
                Ok(sqlx::query_as(
                    "SELECT name, max_retention_days, default_ttl_days, purge_method, \
                     description FROM retention_policies ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn stored_policy(&self, name: &str) -> StoreResult<Option<PolicyRecord>> {
                Ok(sqlx::query_as(
                    "SELECT name, max_retention_days, default_ttl_days, purge_method, \
                     description FROM retention_policies WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn put_policy(
                &self,
                policy: &PolicyRecord,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<(bool, i64)> {
                let mut tx = self.pool.begin().await?;
                // Insert, else replace: both writes, so SQLite takes its lock at once, and
                // whether the policy is new is what the insert did.
                let created = sqlx::query(
                    "INSERT INTO retention_policies (name, max_retention_days, \
                     default_ttl_days, purge_method, description, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&policy.name)
                .bind(policy.max_retention_days)
                .bind(policy.default_ttl_days)
                .bind(&policy.purge_method)
                .bind(&policy.description)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !created {
                    sqlx::query(
                        "UPDATE retention_policies SET max_retention_days = $2, \
                         default_ttl_days = $3, purge_method = $4, description = $5, \
                         updated_at = $6 WHERE name = $1",
                    )
                    .bind(&policy.name)
                    .bind(policy.max_retention_days)
                    .bind(policy.default_ttl_days)
                    .bind(&policy.purge_method)
                    .bind(&policy.description)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let seq = Self::append_in_tx(&mut tx, event).await?;
                Self::commit(tx).await?;
                Ok((created, seq))
            }

            async fn purge_backlog(&self, selection: &PurgeSelection) -> StoreResult<Backlog> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT COALESCE(SUM(CASE WHEN b.legal_hold THEN 0 ELSE 1 END), 0), \
                     COALESCE(SUM(CASE WHEN b.legal_hold THEN 1 ELSE 0 END), 0) \
                     FROM blobs b WHERE b.purged_at IS NULL",
                );
                Self::selection_sql(&mut sql, selection);
                let (candidates, held): (i64, i64) =
                    sql.build_query_as().fetch_one(&self.pool).await?;
                Ok(Backlog { candidates, held })
            }

            async fn purge_batch(
                &self,
                selection: &PurgeSelection,
                limit: i64,
                now: i64,
                plan: PurgePlan<'_>,
            ) -> StoreResult<PurgeCounts> {
                let mut tx = self.pool.begin_with(Self::WRITE_BEGIN).await?;
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {BLOB_COLUMNS} FROM blobs b \
                     WHERE b.purged_at IS NULL AND b.legal_hold = FALSE"
                ));
                Self::selection_sql(&mut sql, selection);
                sql.push(" ORDER BY b.id LIMIT ").push_bind(limit);
                // The sweep skips rows another replica has claimed; erasure waits for them.
                sql.push(match selection {
                    PurgeSelection::Expired { .. } => Self::CLAIM_SKIP_LOCKED,
                    PurgeSelection::OwnedBy(_) => Self::CLAIM_WAIT,
                });
                let claimed: Vec<BlobRecord> = sql.build_query_as().fetch_all(&mut *tx).await?;
                let mut counts = PurgeCounts::default();
                let mut events = Vec::with_capacity(claimed.len());
                for blob in &claimed {
                    let (method, event) = plan(blob);
                    // Key material first: the wrapped data key is overwritten before anything
                    // else of the row changes (on SQLite, secure_delete zeroes freed pages).
                    let shred = sqlx::query(
                        "UPDATE blobs SET wrapped_key = $1, ciphertext = $2, purged_at = $3, \
                         object_key = NULL WHERE id = $4 AND purged_at IS NULL AND legal_hold = FALSE",
                    )
                    .bind(Vec::<u8>::new())
                    .bind(Vec::<u8>::new())
                    .bind(now)
                    .bind(&blob.id)
                    .execute(&mut *tx)
                    .await?;
                    if shred.rows_affected() != 1 {
                        continue;
                    }
                    match method {
                        PurgeMethod::CryptoShred => counts.crypto_shred += 1,
                        PurgeMethod::PhysicalDelete => {
                            sqlx::query("DELETE FROM blobs WHERE id = $1")
                                .bind(&blob.id)
                                .execute(&mut *tx)
                                .await?;
                            counts.physical_delete += 1;
                        }
                    }
                    events.push(event);
                }
                // Chain heads in one order, as the group commit takes them: no deadlock.
                events.sort_by(|a, b| a.chain.cmp(&b.chain));
                let mut nodes = Vec::new();
                for chain in events.chunk_by(|a, b| a.chain == b.chain) {
                    let chain: Vec<&NewEvent> = chain.iter().collect();
                    Self::append_chain_in_tx(&mut tx, &chain, &mut nodes).await?;
                }
                Self::insert_tree_nodes_in_tx(&mut tx, &nodes).await?;
                Self::commit(tx).await?;
                Ok(counts)
            }

            async fn set_hold(
                &self,
                id: &BlobId,
                reason: Option<&str>,
                event: &NewEvent,
            ) -> StoreResult<Option<(BlobRecord, i64)>> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE blobs SET legal_hold = $1, hold_reason = $2 \
                     WHERE id = $3 AND purged_at IS NULL",
                )
                .bind(reason.is_some())
                .bind(reason)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() != 1 {
                    return Ok(None);
                }
                let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs b WHERE b.id = $1");
                let blob: BlobRecord = sqlx::query_as(&sql)
                    .bind(id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                let seq = Self::append_in_tx(&mut tx, event).await?;
                Self::commit(tx).await?;
                Ok(Some((blob, seq)))
            }

            async fn owned_blobs_page(
                &self,
                owner: &str,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<BlobRecord>> {
                let sql = format!(
                    "SELECT {BLOB_COLUMNS} FROM blobs b WHERE b.owner = $1 \
                     AND b.purged_at IS NULL AND b.id > $2 ORDER BY b.id LIMIT $3"
                );
                Ok(sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn destroy_tenant_key(
                &self,
                tenant: &str,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin_with(Self::WRITE_BEGIN).await?;
                // While a rotation of the tenant runs, its rewrap moves blobs between
                // versions in transactions of its own: a version with no blob now may hold
                // one in a moment (the new one above all). Destroy nothing then; an erasure
                // repeated after the rotation completes finishes the job.
                let destroyed = sqlx::query(
                    "UPDATE tenant_keys SET wrapped = $1, destroyed_at = $2, \
                     status = 'destroyed' \
                     WHERE tenant = $3 AND destroyed_at IS NULL AND NOT EXISTS \
                     (SELECT 1 FROM blobs b WHERE b.key_id = tenant_keys.id \
                     AND b.purged_at IS NULL) AND NOT EXISTS \
                     (SELECT 1 FROM key_rotations r WHERE r.tenant = $3 \
                     AND r.status = 'running')",
                )
                .bind(Vec::<u8>::new())
                .bind(now)
                .bind(tenant)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if destroyed > 0 {
                    Self::append_in_tx(&mut tx, event).await?;
                }
                Self::commit(tx).await?;
                Ok(destroyed)
            }

            async fn record_sweep(&self, at: i64, purged: u64) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for (key, value) in [
                    (LAST_SWEEP_AT, at.to_string()),
                    (PURGED_LAST_SWEEP, purged.to_string()),
                ] {
                    sqlx::query(
                        "INSERT INTO vault_meta (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = $2",
                    )
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await.map_err(StoreError::from)
            }
        }
    };
}

for_each_backend!(retention_store);
