//! The `object_gc` journal (DESIGN §18): every object of the object store that may have to be
//! deleted. Uploads register their object before writing it and their commit removes the
//! entry; triggers add the object of every blob row deleted or shredded; the sweep claims due
//! entries, deletes their objects and forgets them.

use super::StoreResult;
use async_trait::async_trait;

/// An object the sweep has claimed for deletion.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueObject {
    pub object_key: String,
    /// An unfinished upload of the object store to abort, if one was recorded.
    pub upload_id: Option<String>,
}

#[async_trait]
pub trait ObjectGcStore: Send + Sync {
    /// Registers an upload's object before its first byte: collected at `due_at` unless the
    /// upload renews it or commits.
    async fn register_object(&self, key: &str, due_at: i64) -> StoreResult<()>;
    /// Records the object store's handle of the unfinished upload, for the sweep to abort.
    async fn note_upload_id(&self, key: &str, upload_id: &str) -> StoreResult<()>;
    /// Moves an upload's due time; false when the sweep claimed it already (the upload must
    /// then give up: its object is being deleted).
    async fn renew_object(&self, key: &str, due_at: i64) -> StoreResult<bool>;
    /// Claims at most `limit` entries due at `now`: unclaimed ones, and those claimed before
    /// `stale_before` by a sweep that never finished them.
    async fn claim_due_objects(
        &self,
        now: i64,
        stale_before: i64,
        limit: i64,
    ) -> StoreResult<Vec<DueObject>>;
    /// Forgets an entry whose object is gone.
    async fn forget_object(&self, key: &str) -> StoreResult<()>;
    /// How many entries wait (uploads in flight included), for the gauge.
    async fn object_gc_backlog(&self) -> StoreResult<i64>;
    /// Journals `key`, an object of the store, for the sweep (due at `due_at`) when neither
    /// a blob row nor an entry names it: an orphan, such as an object written after the
    /// backup a database was restored from. Whether it was one (with `dry_run`: whether it
    /// is, changing nothing). An upload registers its object before writing it, so an
    /// object that exists and is named by nothing cannot be named later.
    async fn adopt_orphan_object(&self, key: &str, due_at: i64, dry_run: bool)
        -> StoreResult<bool>;
}

macro_rules! object_gc_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl ObjectGcStore for $store {
            async fn register_object(&self, key: &str, due_at: i64) -> StoreResult<()> {
                sqlx::query("INSERT INTO object_gc (object_key, due_at) VALUES ($1, $2)")
                    .bind(key)
                    .bind(due_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn note_upload_id(&self, key: &str, upload_id: &str) -> StoreResult<()> {
                sqlx::query("UPDATE object_gc SET upload_id = $2 WHERE object_key = $1")
                    .bind(key)
                    .bind(upload_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn renew_object(&self, key: &str, due_at: i64) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "UPDATE object_gc SET due_at = $2 \
                     WHERE object_key = $1 AND claimed_at IS NULL",
                )
                .bind(key)
                .bind(due_at)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            async fn claim_due_objects(
                &self,
                now: i64,
                stale_before: i64,
                limit: i64,
            ) -> StoreResult<Vec<DueObject>> {
                // One statement: replicas sweeping at once claim disjoint entries (SKIP
                // LOCKED on PostgreSQL; SQLite has one writer).
                let sql = format!(
                    "UPDATE object_gc SET claimed_at = $1 WHERE object_key IN \
                     (SELECT object_key FROM object_gc WHERE due_at <= $1 \
                     AND (claimed_at IS NULL OR claimed_at < $2) \
                     ORDER BY due_at LIMIT $3{}) \
                     RETURNING object_key, upload_id",
                    Self::CLAIM_SKIP_LOCKED
                );
                Ok(sqlx::query_as(&sql)
                    .bind(now)
                    .bind(stale_before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn forget_object(&self, key: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM object_gc WHERE object_key = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn object_gc_backlog(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM object_gc")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn adopt_orphan_object(
                &self,
                key: &str,
                due_at: i64,
                dry_run: bool,
            ) -> StoreResult<bool> {
                if dry_run {
                    let named: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM blobs WHERE object_key = $1) \
                         OR EXISTS (SELECT 1 FROM object_gc WHERE object_key = $1)",
                    )
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?;
                    return Ok(!named);
                }
                let adopted = sqlx::query(
                    "INSERT INTO object_gc (object_key, due_at) SELECT $1, $2 \
                     WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE object_key = $1) \
                     ON CONFLICT (object_key) DO NOTHING",
                )
                .bind(key)
                .bind(due_at)
                .execute(&self.pool)
                .await?;
                Ok(adopted.rows_affected() == 1)
            }
        }
    };
}

for_each_backend!(object_gc_store);
