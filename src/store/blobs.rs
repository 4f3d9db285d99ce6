//! Blobs: their metadata (all an access decision reads), their sealed content (read only
//! once the decision allowed it), listings, and the writes a group commit applies.

use super::StoreResult;
use crate::domain::{BlobId, OrgId, Principal, Scope};
use async_trait::async_trait;

/// Metadata of a stored blob, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlobRecord {
    pub id: String,
    pub scope: String,
    pub owner: String,
    /// The tenant, when the blob belongs to an org (else its owner is the tenant).
    pub org_id: Option<OrgId>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub retention_policy: String,
    #[sqlx(rename = "tags")]
    pub tags_json: String,
    pub size: i64,
    pub content_hash: String,
    pub key_id: String,
    pub key_version: i64,
    /// Under legal hold: no delete, sweep or erasure touches it (DESIGN §12).
    pub legal_hold: bool,
    /// When it was crypto-shredded; the row is then a tombstone without key or content.
    pub purged_at: Option<i64>,
    /// Where a large blob's sealed chunks are in the object store (DESIGN §18); `None` when
    /// the row holds the ciphertext itself.
    pub object_key: Option<String>,
}

/// What it takes to open a blob, read only once the access decision allowed it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedContent {
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// The tenant key version that wraps `wrapped_key` (read with it, so a rewrap between
    /// the metadata and this read cannot pair a key with the wrong version).
    pub key_version: i64,
    /// The tenant key that wraps `wrapped_key`, itself wrapped by the master key.
    pub tenant: String,
    pub tenant_key_wrapped: Vec<u8>,
    /// The master key that wraps `tenant_key_wrapped`.
    pub master_key_id: Option<String>,
    /// Set when the sealed chunks are in the object store and `ciphertext` is empty.
    pub object_key: Option<String>,
}

/// What a listing may show: the caller's own blobs, and in one org the blobs of the scopes the
/// caller's roles may read.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub owner: Principal,
    pub org_id: Option<OrgId>,
    /// Scopes of `org_id` in which others' blobs are visible to the caller.
    pub org_scopes: Vec<String>,
    pub scope: Option<Scope>,
    /// Only ids strictly less than this one (the cursor).
    pub before_id: Option<BlobId>,
    pub limit: i64,
}

/// A change to the blobs table that commits together with its audit events.
#[derive(Debug, Clone)]
pub enum BlobWrite {
    /// Insert a new blob. Ids are fresh UUIDs: an existing id is an error, never an update.
    /// A blob in the object store (`meta.object_key`) is inserted only while its upload still
    /// holds its `object_gc` entry, which the insert removes: once the sweep has claimed the
    /// object, the insert applies nothing.
    Insert {
        meta: Box<BlobRecord>,
        wrapped_key: Vec<u8>,
        ciphertext: Vec<u8>,
    },
    Delete {
        id: BlobId,
    },
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn blob_meta(&self, id: &BlobId) -> StoreResult<Option<BlobRecord>>;
    /// The sealed content of a blob; read after the decision, which needs only metadata, so
    /// a caller who will be refused never makes the server read the ciphertext.
    async fn blob_content(&self, id: &BlobId) -> StoreResult<Option<SealedContent>>;
    /// Newest first, at most `query.limit`.
    async fn list_blobs(&self, query: &ListQuery) -> StoreResult<Vec<BlobRecord>>;
}

/// The metadata columns, in `BlobRecord`'s names (the content stays unread).
pub(super) const BLOB_COLUMNS: &str = "b.id, b.scope, b.owner, b.org_id, b.created_at, \
    b.expires_at, b.retention_policy, b.tags, b.size, b.content_hash, b.key_id, b.key_version, \
    b.legal_hold, b.purged_at, b.object_key";

macro_rules! blob_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Applies one blob write inside a group commit's transaction; whether it changed
            /// a row (a delete may find the blob already gone).
            pub(super) async fn write_blob_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                write: &BlobWrite,
            ) -> StoreResult<bool> {
                Ok(match write {
                    BlobWrite::Insert {
                        meta,
                        wrapped_key,
                        ciphertext,
                    } => {
                        // An object upload must still hold its entry (locked until the
                        // commit, so the sweep cannot claim it in between).
                        if let Some(key) = &meta.object_key {
                            let sql = format!(
                                "SELECT object_key FROM object_gc WHERE object_key = $1 \
                                 AND claimed_at IS NULL{}",
                                Self::CLAIM_WAIT
                            );
                            let held: Option<String> = sqlx::query_scalar(&sql)
                                .bind(key)
                                .fetch_optional(&mut **tx)
                                .await?;
                            if held.is_none() {
                                return Ok(false);
                            }
                        }
                        // Only under the tenant's active key version, share-locked until
                        // the commit: a rotation that retires it waits for this insert (and
                        // then counts and rewraps the blob), or went first and the insert
                        // applies nothing, for the caller to seal again under the new key.
                        let sql = format!(
                            "INSERT INTO blobs (id, scope, owner, org_id, created_at, \
                             expires_at, retention_policy, tags, size, content_hash, key_id, \
                             key_version, wrapped_key, ciphertext, object_key) \
                             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                             $14, $15 \
                             WHERE EXISTS (SELECT 1 FROM tenant_keys WHERE id = $11 \
                             AND status = 'active'{})",
                            Self::SHARE_LOCK
                        );
                        let inserted = sqlx::query(&sql)
                            .bind(&meta.id)
                            .bind(&meta.scope)
                            .bind(&meta.owner)
                            .bind(meta.org_id.as_ref().map(OrgId::as_str))
                            .bind(meta.created_at)
                            .bind(meta.expires_at)
                            .bind(&meta.retention_policy)
                            .bind(&meta.tags_json)
                            .bind(meta.size)
                            .bind(&meta.content_hash)
                            .bind(&meta.key_id)
                            .bind(meta.key_version)
                            .bind(wrapped_key)
                            .bind(ciphertext)
                            .bind(&meta.object_key)
                            .execute(&mut **tx)
                            .await?
                            .rows_affected()
                            == 1;
                        if let (true, Some(key)) = (inserted, &meta.object_key) {
                            sqlx::query("DELETE FROM object_gc WHERE object_key = $1")
                                .bind(key)
                                .execute(&mut **tx)
                                .await?;
                        }
                        inserted
                    }
                    // A held blob is never deleted, whatever the caller saw a moment ago.
                    BlobWrite::Delete { id } => {
                        sqlx::query("DELETE FROM blobs WHERE id = $1 AND legal_hold = FALSE")
                            .bind(id.to_string())
                            .execute(&mut **tx)
                            .await?
                            .rows_affected()
                            == 1
                    }
                })
            }
        }

        #[async_trait]
        impl BlobStore for $store {
            async fn blob_meta(&self, id: &BlobId) -> StoreResult<Option<BlobRecord>> {
                let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs b WHERE b.id = $1");
                Ok(sqlx::query_as(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn blob_content(&self, id: &BlobId) -> StoreResult<Option<SealedContent>> {
                Ok(sqlx::query_as(
                    "SELECT b.wrapped_key, b.ciphertext, b.key_version, t.tenant, \
                     t.wrapped AS tenant_key_wrapped, t.master_key_id, b.object_key \
                     FROM blobs b JOIN tenant_keys t ON t.id = b.key_id WHERE b.id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_blobs(&self, query: &ListQuery) -> StoreResult<Vec<BlobRecord>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {BLOB_COLUMNS} FROM blobs b WHERE ((b.owner = "
                ));
                sql.push_bind(query.owner.as_str());
                if let Some(org) = &query.org_id {
                    sql.push(" AND b.org_id = ").push_bind(org.as_str());
                }
                sql.push(")");
                if let (Some(org), false) = (&query.org_id, query.org_scopes.is_empty()) {
                    sql.push(" OR (b.org_id = ")
                        .push_bind(org.as_str())
                        .push(" AND b.scope IN (");
                    let mut scopes = sql.separated(", ");
                    for scope in &query.org_scopes {
                        scopes.push_bind(scope);
                    }
                    sql.push("))");
                }
                sql.push(")");
                if let Some(scope) = &query.scope {
                    sql.push(" AND b.scope = ").push_bind(scope.as_str());
                }
                if let Some(before) = &query.before_id {
                    sql.push(" AND b.id < ").push_bind(before.to_string());
                }
                sql.push(" ORDER BY b.id DESC LIMIT ")
                    .push_bind(query.limit);
                Ok(sql
                    .build_query_as::<BlobRecord>()
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}

for_each_backend!(blob_store);
