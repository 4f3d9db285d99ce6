//! Tenant key rotations (DESIGN §15): starting one (a new active version, the old one
//! retired, in one transaction with its events), the background rewrap of the tenant's data
//! keys in bounded batches, and completion. Progress is in the table, so any replica, or a
//! restarted one, carries a rotation on; on PostgreSQL replicas rewrapping the same tenant
//! claim disjoint blobs (`FOR UPDATE OF b SKIP LOCKED`), SQLite has one writer.

use super::{StoreResult, TenantKeyRecord};
use crate::audit::NewEvent;
use async_trait::async_trait;

pub const ROTATION_RUNNING: &str = "running";
pub const ROTATION_COMPLETE: &str = "complete";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RotationRecord {
    pub id: String,
    pub tenant: String,
    pub from_version: i64,
    pub to_version: i64,
    pub emergency: bool,
    pub reason: Option<String>,
    pub requester: String,
    pub status: String,
    pub rewrapped: i64,
    pub total: i64,
    pub started_at: i64,
    pub completed_at: Option<i64>,
}

/// What starting a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationStart {
    /// Started; the rotation as stored (with its `total`) and the `seq` of each event.
    Started(Box<RotationRecord>, Vec<i64>),
    /// A rotation of the tenant is already running.
    AlreadyRunning,
    /// The active version is no longer `from_version`, or none is seen (a concurrent rotation
    /// or erasure): the new key, bound to its version, must be made again.
    VersionChanged,
}

/// A blob whose data key a rewrap moves under the new tenant key version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RewrapRow {
    pub id: String,
    pub owner: String,
    pub org_id: Option<String>,
    pub scope: String,
    pub wrapped_key: Vec<u8>,
    /// The tenant key version that wraps it now.
    pub key_id: String,
}

/// What one rewrap batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapBatch {
    pub claimed: u64,
    pub rewrapped: u64,
    /// The blobs whose data keys did not open under their tenant key (left as they were).
    pub unopened: Vec<String>,
    /// The greatest id claimed (the cursor of the next batch).
    pub last_id: Option<String>,
}

/// Rewraps one blob's data key under the new version; `None` if it does not open.
pub type RewrapPlan<'a> = &'a (dyn Fn(&RewrapRow) -> Option<Vec<u8>> + Send + Sync);

#[async_trait]
pub trait RotationStore: Send + Sync {
    /// In one transaction: checks `rotation.from_version` is the tenant's active version,
    /// records the rotation (refused while another runs for the tenant), retires the old
    /// version, inserts `new_key` as the active one, counts the blobs to rewrap and appends
    /// `events`.
    async fn start_rotation(
        &self,
        rotation: &RotationRecord,
        new_key: &TenantKeyRecord,
        events: &[NewEvent],
    ) -> StoreResult<RotationStart>;
    async fn rotation(&self, id: &str) -> StoreResult<Option<RotationRecord>>;
    /// Running rotations, emergency ones first, then oldest first; at most `limit`.
    async fn running_rotations(&self, limit: i64) -> StoreResult<Vec<RotationRecord>>;
    /// Claims up to `limit` blobs of the tenant still under an older version, with ids after
    /// `after` (a keyset cursor: rows rewrapped earlier are never scanned again, dead or
    /// alive), rewraps each with `plan` under `new_key_id` and adds them to the rotation's
    /// progress, in one transaction. Returns how many were claimed, rewrapped and did not
    /// open, and the last id claimed.
    async fn rewrap_batch(
        &self,
        rotation: &RotationRecord,
        new_key_id: &str,
        after: &str,
        limit: i64,
        plan: RewrapPlan<'_>,
    ) -> StoreResult<RewrapBatch>;
    /// Blobs of the tenant still under a version older than `to_version`.
    async fn remaining_rewraps(&self, tenant: &str, to_version: i64) -> StoreResult<i64>;
    /// Marks the rotation complete if nothing is left to rewrap and no other replica did
    /// first; then retires the older versions, or destroys them (`emergency`), and appends
    /// `events`, in one transaction. Whether this call completed it.
    async fn complete_rotation(
        &self,
        rotation: &RotationRecord,
        now: i64,
        events: &[NewEvent],
    ) -> StoreResult<bool>;
}

const ROTATION_COLUMNS: &str = "id, tenant, from_version, to_version, emergency, reason, \
    requester, status, rewrapped, total, started_at, completed_at";

/// Blobs rewrapped by one UPDATE (SQLite allows 500 terms in a compound SELECT).
const REWRAP_ROWS_PER_UPDATE: usize = 200;

/// Live blobs of tenant `$1` under a version older than `$2`.
const STALE_BLOBS: &str = "FROM blobs b JOIN tenant_keys t ON t.id = b.key_id \
    WHERE t.tenant = $1 AND t.version < $2 AND b.purged_at IS NULL";

macro_rules! rotation_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Appends events in chain order (as every other writer takes chain heads).
            async fn append_sorted_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[NewEvent],
            ) -> StoreResult<Vec<i64>> {
                let mut order: Vec<usize> = (0..events.len()).collect();
                order.sort_by(|a, b| {
                    let chain = |i: &usize| events.get(*i).map(|e| e.chain.as_str());
                    chain(a).cmp(&chain(b))
                });
                let mut seqs = vec![0; events.len()];
                for i in order {
                    if let (Some(event), Some(slot)) = (events.get(i), seqs.get_mut(i)) {
                        *slot = Self::append_in_tx(tx, event).await?;
                    }
                }
                Ok(seqs)
            }
        }

        #[async_trait]
        impl RotationStore for $store {
            async fn start_rotation(
                &self,
                rotation: &RotationRecord,
                new_key: &TenantKeyRecord,
                events: &[NewEvent],
            ) -> StoreResult<RotationStart> {
                let mut tx = self.pool.begin_with(Self::WRITE_BEGIN).await?;
                // Waits for blob inserts that hold the active version (share-locked).
                let active: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT version FROM tenant_keys WHERE tenant = $1 AND status = 'active' \
                     ORDER BY version DESC LIMIT 1{}",
                    Self::CLAIM_WAIT
                ))
                .bind(&rotation.tenant)
                .fetch_optional(&mut *tx)
                .await?;
                // None is a change too: on PostgreSQL, a rotation that committed while this
                // waited retired the row it locked, and the row that replaced it is not in
                // this statement's snapshot. The caller reads again and decides.
                if active != Some(rotation.from_version) {
                    return Ok(RotationStart::VersionChanged);
                }
                let inserted = sqlx::query(&format!(
                    "INSERT INTO key_rotations ({ROTATION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 0, 0, $8, NULL) \
                     ON CONFLICT (tenant) WHERE status = 'running' DO NOTHING"
                ))
                .bind(&rotation.id)
                .bind(&rotation.tenant)
                .bind(rotation.from_version)
                .bind(rotation.to_version)
                .bind(rotation.emergency)
                .bind(&rotation.reason)
                .bind(&rotation.requester)
                .bind(rotation.started_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted != 1 {
                    return Ok(RotationStart::AlreadyRunning);
                }
                sqlx::query(
                    "UPDATE tenant_keys SET status = 'retired' \
                     WHERE tenant = $1 AND status = 'active'",
                )
                .bind(&rotation.tenant)
                .execute(&mut *tx)
                .await?;
                if !Self::insert_tenant_key_on(&mut *tx, new_key).await? {
                    // The version was taken since it was read (a destroyed one after an
                    // erasure raced us): start over with the next.
                    return Ok(RotationStart::VersionChanged);
                }
                let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {STALE_BLOBS}"))
                    .bind(&rotation.tenant)
                    .bind(rotation.to_version)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query("UPDATE key_rotations SET total = $1 WHERE id = $2")
                    .bind(total)
                    .bind(&rotation.id)
                    .execute(&mut *tx)
                    .await?;
                let seqs = Self::append_sorted_in_tx(&mut tx, events).await?;
                Self::commit(tx).await?;
                Ok(RotationStart::Started(
                    Box::new(RotationRecord {
                        total,
                        status: ROTATION_RUNNING.to_owned(),
                        rewrapped: 0,
                        completed_at: None,
                        ..rotation.clone()
                    }),
                    seqs,
                ))
            }

            async fn rotation(&self, id: &str) -> StoreResult<Option<RotationRecord>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {ROTATION_COLUMNS} FROM key_rotations WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn running_rotations(&self, limit: i64) -> StoreResult<Vec<RotationRecord>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {ROTATION_COLUMNS} FROM key_rotations WHERE status = 'running' \
                     ORDER BY emergency DESC, started_at, id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn rewrap_batch(
                &self,
                rotation: &RotationRecord,
                new_key_id: &str,
                after: &str,
                limit: i64,
                plan: RewrapPlan<'_>,
            ) -> StoreResult<RewrapBatch> {
                let mut tx = self.pool.begin_with(Self::WRITE_BEGIN).await?;
                let rows: Vec<RewrapRow> = sqlx::query_as(&format!(
                    "SELECT b.id, b.owner, b.org_id, b.scope, b.wrapped_key, b.key_id \
                     {STALE_BLOBS} AND b.id > $3 ORDER BY b.id LIMIT $4{}",
                    Self::REWRAP_CLAIM
                ))
                .bind(&rotation.tenant)
                .bind(rotation.to_version)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut unopened = Vec::new();
                let mut planned: Vec<(&RewrapRow, Vec<u8>)> = Vec::with_capacity(rows.len());
                for row in &rows {
                    match plan(row) {
                        Some(wrapped) => planned.push((row, wrapped)),
                        None => unopened.push(row.id.clone()),
                    }
                }
                // One statement per chunk rather than one round trip per blob (the round trips
                // bounded PostgreSQL's rate); a chunk stays under SQLite's 500 compound terms.
                let mut done = 0u64;
                for chunk in planned.chunks(REWRAP_ROWS_PER_UPDATE) {
                    let mut sql = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE blobs SET wrapped_key = v.wk, key_id = ",
                    );
                    sql.push_bind(new_key_id)
                        .push(", key_version = ")
                        .push_bind(rotation.to_version)
                        .push(" FROM (");
                    // SELECT id, wk, old_key UNION ALL ...: each row and its new wrapping.
                    for (i, (row, wrapped)) in chunk.iter().enumerate() {
                        if i > 0 {
                            sql.push(" UNION ALL ");
                        }
                        sql.push("SELECT ")
                            .push_bind(&row.id)
                            .push(" AS id, ")
                            .push_bind(wrapped)
                            .push(" AS wk, ")
                            .push_bind(&row.key_id)
                            .push(" AS old_key");
                    }
                    sql.push(
                        ") AS v WHERE blobs.id = v.id AND blobs.key_id = v.old_key \
                         AND blobs.purged_at IS NULL",
                    );
                    done += sql.build().execute(&mut *tx).await?.rows_affected();
                }
                if done > 0 {
                    sqlx::query(
                        "UPDATE key_rotations SET rewrapped = rewrapped + $1 WHERE id = $2",
                    )
                    .bind(i64::try_from(done).unwrap_or(i64::MAX))
                    .bind(&rotation.id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(RewrapBatch {
                    claimed: u64::try_from(rows.len()).unwrap_or(u64::MAX),
                    rewrapped: done,
                    unopened,
                    last_id: rows.last().map(|r| r.id.clone()),
                })
            }

            async fn remaining_rewraps(&self, tenant: &str, to_version: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) {STALE_BLOBS}"))
                    .bind(tenant)
                    .bind(to_version)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn complete_rotation(
                &self,
                rotation: &RotationRecord,
                now: i64,
                events: &[NewEvent],
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(Self::WRITE_BEGIN).await?;
                let completed = sqlx::query(&format!(
                    "UPDATE key_rotations SET status = 'complete', completed_at = $3 \
                     WHERE id = $4 AND status = 'running' AND NOT EXISTS (SELECT 1 {STALE_BLOBS})"
                ))
                .bind(&rotation.tenant)
                .bind(rotation.to_version)
                .bind(now)
                .bind(&rotation.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if completed != 1 {
                    return Ok(false);
                }
                if rotation.emergency {
                    // Key material first; a version a live blob still needs is never destroyed.
                    sqlx::query(
                        "UPDATE tenant_keys SET wrapped = $1, status = 'destroyed', \
                         destroyed_at = $2 WHERE tenant = $3 AND version < $4 \
                         AND status <> 'destroyed' AND NOT EXISTS (SELECT 1 FROM blobs b \
                         WHERE b.key_id = tenant_keys.id AND b.purged_at IS NULL)",
                    )
                    .bind(Vec::<u8>::new())
                    .bind(now)
                    .bind(&rotation.tenant)
                    .bind(rotation.to_version)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::append_sorted_in_tx(&mut tx, events).await?;
                Self::commit(tx).await?;
                Ok(true)
            }
        }
    };
}

for_each_backend!(rotation_store);
