//! The SQL both backends share. SQLite and PostgreSQL accept the same statements here
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`), so one macro expands the same code for
//! each pool type instead of two hand-kept copies.
//!
//! Every write transaction starts with a write statement: SQLite then takes its write lock at
//! once, instead of failing to upgrade a read lock when another writer got there first.

use super::BlobRecord;
use crate::audit::AuditEvent;
use sqlx::Row;

pub(super) const BLOB_COLUMNS: &str = "b.id, b.scope, b.owner, b.org_id, b.created_at, \
    b.expires_at, b.retention_policy, b.tags, b.size, b.content_hash, b.key_id, b.key_version";

pub(super) const AUDIT_COLUMNS: &str = "gid, chain, seq, id, ts_ms, event_type, blob_id, scope, \
    owner, org_id, requester, auth_method, outcome, denial_reason, purpose, reason, request_id, \
    previous_hash, hash";

pub(super) fn blob_record<R: Row>(row: &R) -> Result<BlobRecord, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(BlobRecord {
        id: row.try_get("id")?,
        scope: row.try_get("scope")?,
        owner: row.try_get("owner")?,
        org_id: row.try_get("org_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        retention_policy: row.try_get("retention_policy")?,
        tags_json: row.try_get("tags")?,
        size: row.try_get("size")?,
        content_hash: row.try_get("content_hash")?,
        key_id: row.try_get("key_id")?,
        key_version: row.try_get("key_version")?,
    })
}

/// An audit row and its global position.
pub(super) fn audit_event<R: Row>(row: &R) -> Result<(i64, AuditEvent), sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let ts_ms: i64 = row.try_get("ts_ms")?;
    Ok((
        row.try_get("gid")?,
        AuditEvent {
            seq: row.try_get("seq")?,
            chain: row.try_get("chain")?,
            id: row.try_get("id")?,
            timestamp: crate::audit::chain::format_timestamp(ts_ms),
            event_type: row.try_get("event_type")?,
            blob_id: row.try_get("blob_id")?,
            scope: row.try_get("scope")?,
            owner: row.try_get("owner")?,
            org_id: row.try_get("org_id")?,
            requester: row.try_get("requester")?,
            auth_method: row.try_get("auth_method")?,
            outcome: row.try_get("outcome")?,
            denial_reason: row.try_get("denial_reason")?,
            purpose: row.try_get("purpose")?,
            reason: row.try_get("reason")?,
            request_id: row.try_get("request_id")?,
            previous_hash: row.try_get("previous_hash")?,
            hash: row.try_get("hash")?,
        },
    ))
}

macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Appends one event inside `tx`.
            async fn append_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<()> {
                Self::append_chain_in_tx(tx, std::slice::from_ref(event)).await
            }

            /// Appends events of one chain inside `tx`: lock the chain head (an upsert, so the
            /// first statement is a write on both backends), link and insert each event, then
            /// advance the head once.
            async fn append_chain_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[$crate::audit::NewEvent],
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::StoreError;
                let Some(first) = events.first() else {
                    return Ok(());
                };
                let (mut seq, mut previous): (i64, String) = sqlx::query_as(
                    "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2) \
                     ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq \
                     RETURNING seq, hash",
                )
                .bind(&first.chain)
                .bind($crate::audit::chain::GENESIS_HASH)
                .fetch_one(&mut **tx)
                .await
                .map_err(StoreError::audit)?;
                let mut linked = Vec::with_capacity(events.len());
                for event in events {
                    seq += 1;
                    let next = $crate::audit::chain::link(event, seq, &previous)
                        .map_err(|e| StoreError::Audit(sqlx::Error::Encode(Box::new(e))))?;
                    previous.clone_from(&next.hash);
                    linked.push((event.timestamp_ms, next));
                }
                // One multi-row INSERT per chain: a round trip per event was the cost that
                // bounded a batch (at most MAX_BATCH_EVENTS rows of 18 values stays far below
                // either backend's limit on bound parameters).
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO audit_events (chain, seq, id, ts_ms, event_type, blob_id, scope, \
                     owner, org_id, requester, auth_method, outcome, denial_reason, purpose, \
                     reason, request_id, previous_hash, hash) ",
                );
                insert.push_values(&linked, |mut row, (ts_ms, e)| {
                    row.push_bind(&e.chain)
                        .push_bind(e.seq)
                        .push_bind(&e.id)
                        .push_bind(*ts_ms)
                        .push_bind(&e.event_type)
                        .push_bind(&e.blob_id)
                        .push_bind(&e.scope)
                        .push_bind(&e.owner)
                        .push_bind(&e.org_id)
                        .push_bind(&e.requester)
                        .push_bind(&e.auth_method)
                        .push_bind(&e.outcome)
                        .push_bind(&e.denial_reason)
                        .push_bind(&e.purpose)
                        .push_bind(&e.reason)
                        .push_bind(&e.request_id)
                        .push_bind(&e.previous_hash)
                        .push_bind(&e.hash);
                });
                insert
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::audit)?;
                sqlx::query("UPDATE audit_heads SET seq = $1, hash = $2 WHERE chain = $3")
                    .bind(seq)
                    .bind(&previous)
                    .bind(&first.chain)
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::audit)?;
                Ok(())
            }

            /// Ends a one-change transaction: with its event when the change applied, else
            /// rolled back with nothing recorded. Returns whether it applied.
            async fn record_if(
                mut tx: sqlx::Transaction<'_, $db>,
                applied: bool,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                if applied {
                    Self::append_in_tx(&mut tx, event).await?;
                    Self::commit(tx).await?;
                }
                Ok(applied)
            }

            async fn commit(tx: sqlx::Transaction<'_, $db>) -> $crate::store::StoreResult<()> {
                // A failed commit of a transaction that carries an audit event means the event
                // is not durable: report it as an audit failure.
                tx.commit().await.map_err($crate::store::StoreError::audit)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn meta_value(&self, key: &str) -> $crate::store::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM vault_meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_meta_value(
                &self,
                key: &str,
                value: &str,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO vault_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_client(
                &self,
                name: &str,
                sealed: &[u8],
                now: i64,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let created = sqlx::query(
                    "INSERT INTO clients (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !created {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO client_secrets (client, slot, sealed, created_at) VALUES ($1, 1, $2, $3)",
                )
                .bind(name)
                .bind(sealed)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::record_if(tx, true, event).await
            }

            async fn client_secrets(
                &self,
                name: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ClientSecretRecord>> {
                // The newest two, padded with NULL rows to exactly two: the reply for an
                // unknown name then has the shape of a client's, so its timing does not tell
                // them apart (DESIGN §6).
                let rows: Vec<(Option<i64>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT slot, sealed FROM (\
                       SELECT slot, sealed FROM client_secrets WHERE client = $1 \
                       UNION ALL SELECT NULL, NULL UNION ALL SELECT NULL, NULL) AS padded \
                     ORDER BY slot IS NULL, slot DESC LIMIT 2",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(slot, sealed)| {
                        Some($crate::store::ClientSecretRecord {
                            slot: slot?,
                            sealed: sealed?,
                        })
                    })
                    .collect())
            }

            async fn add_client_secret(
                &self,
                name: &str,
                slot: i64,
                sealed: &[u8],
                now: i64,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let added = sqlx::query(
                    "INSERT INTO client_secrets (client, slot, sealed, created_at) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM clients WHERE name = $1) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(slot)
                .bind(sealed)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !added {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM client_secrets WHERE client = $1 AND slot < $2")
                    .bind(name)
                    .bind(slot - 1)
                    .execute(&mut *tx)
                    .await?;
                Self::record_if(tx, true, event).await
            }

            async fn prune_client_secrets(
                &self,
                name: &str,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM client_secrets WHERE client = $1 AND slot < \
                     (SELECT MAX(slot) FROM client_secrets WHERE client = $1)",
                )
                .bind(name)
                .execute(&mut *tx)
                .await?;
                Self::append_in_tx(&mut tx, event).await?;
                Self::commit(tx).await?;
                Ok(done.rows_affected())
            }

            async fn delete_client(
                &self,
                name: &str,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM client_secrets WHERE client = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let gone = sqlx::query("DELETE FROM clients WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                Self::record_if(tx, gone, event).await
            }

            async fn create_org(
                &self,
                id: &str,
                now: i64,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let created = sqlx::query(
                    "INSERT INTO orgs (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                Self::record_if(tx, created, event).await
            }

            async fn org_exists(&self, id: &str) -> $crate::store::StoreResult<bool> {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT created_at FROM orgs WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(found.is_some())
            }

            async fn set_member(
                &self,
                org: &str,
                principal: &str,
                roles: &str,
                now: i64,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let stored = sqlx::query(
                    "INSERT INTO memberships (org_id, principal, roles, updated_at) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $1) \
                     ON CONFLICT (org_id, principal) \
                     DO UPDATE SET roles = excluded.roles, updated_at = excluded.updated_at",
                )
                .bind(org)
                .bind(principal)
                .bind(roles)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                Self::record_if(tx, stored, event).await
            }

            async fn remove_member(
                &self,
                org: &str,
                principal: &str,
                event: &$crate::audit::NewEvent,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let removed =
                    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND principal = $2")
                        .bind(org)
                        .bind(principal)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                Self::record_if(tx, removed, event).await
            }

            async fn member_roles(
                &self,
                org: &str,
                principal: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT roles FROM memberships WHERE org_id = $1 AND principal = $2",
                )
                .bind(org)
                .bind(principal)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_members(
                &self,
                org: &str,
            ) -> $crate::store::StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT principal, roles FROM memberships WHERE org_id = $1 \
                     ORDER BY principal LIMIT 10000",
                )
                .bind(org)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn current_tenant_key(
                &self,
                tenant: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::TenantKeyRecord>> {
                let row: Option<(String, i64, Vec<u8>, i64)> = sqlx::query_as(
                    "SELECT id, version, wrapped, created_at FROM tenant_keys \
                     WHERE tenant = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(id, version, wrapped, created_at)| {
                    $crate::store::TenantKeyRecord {
                        id,
                        tenant: tenant.to_owned(),
                        version,
                        wrapped,
                        created_at,
                    }
                }))
            }

            async fn insert_tenant_key(
                &self,
                key: &$crate::store::TenantKeyRecord,
            ) -> $crate::store::StoreResult<bool> {
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

            async fn fetch_blob(
                &self,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::SealedBlobRecord>> {
                let sql = format!(
                    "SELECT {}, b.wrapped_key, b.ciphertext, t.tenant, t.wrapped \
                     FROM blobs b JOIN tenant_keys t ON t.id = b.key_id WHERE b.id = $1",
                    $crate::store::sql::BLOB_COLUMNS
                );
                let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?
                else {
                    return Ok(None);
                };
                use sqlx::Row as _;
                Ok(Some($crate::store::SealedBlobRecord {
                    meta: $crate::store::sql::blob_record(&row)?,
                    wrapped_key: row.try_get("wrapped_key")?,
                    ciphertext: row.try_get("ciphertext")?,
                    tenant: row.try_get("tenant")?,
                    tenant_key_wrapped: row.try_get("wrapped")?,
                }))
            }

            async fn blob_meta(
                &self,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::BlobRecord>> {
                let sql = format!(
                    "SELECT {} FROM blobs b WHERE b.id = $1",
                    $crate::store::sql::BLOB_COLUMNS
                );
                let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| $crate::store::sql::blob_record(&r)).transpose()?)
            }

            async fn list_blobs(
                &self,
                query: &$crate::store::ListQuery,
            ) -> $crate::store::StoreResult<Vec<$crate::store::BlobRecord>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM blobs b WHERE ((b.owner = ",
                    $crate::store::sql::BLOB_COLUMNS
                ));
                sql.push_bind(&query.owner);
                if let Some(org) = &query.org_id {
                    sql.push(" AND b.org_id = ").push_bind(org);
                }
                sql.push(")");
                if let (Some(org), false) = (&query.org_id, query.org_scopes.is_empty()) {
                    sql.push(" OR (b.org_id = ").push_bind(org).push(" AND b.scope IN (");
                    let mut scopes = sql.separated(", ");
                    for scope in &query.org_scopes {
                        scopes.push_bind(scope);
                    }
                    sql.push("))");
                }
                sql.push(")");
                if let Some(scope) = &query.scope {
                    sql.push(" AND b.scope = ").push_bind(scope);
                }
                if let Some(before) = &query.before_id {
                    sql.push(" AND b.id < ").push_bind(before);
                }
                sql.push(" ORDER BY b.id DESC LIMIT ").push_bind(query.limit);
                let rows = sql.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::sql::blob_record)
                    .collect::<Result<_, _>>()?)
            }

            async fn commit_batch(
                &self,
                jobs: &[$crate::store::BatchJob],
            ) -> $crate::store::StoreResult<Vec<bool>> {
                use $crate::store::BlobWrite;
                let mut tx = self.pool.begin().await?;
                let mut applied = Vec::with_capacity(jobs.len());
                let mut events: Vec<$crate::audit::NewEvent> = Vec::new();
                for job in jobs {
                    let done = match &job.write {
                        None => true,
                        Some(BlobWrite::Insert { meta, wrapped_key, ciphertext }) => {
                            sqlx::query(
                                "INSERT INTO blobs (id, scope, owner, org_id, created_at, \
                                 expires_at, retention_policy, tags, size, content_hash, key_id, \
                                 key_version, wrapped_key, ciphertext) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                            )
                            .bind(&meta.id)
                            .bind(&meta.scope)
                            .bind(&meta.owner)
                            .bind(&meta.org_id)
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
                            .execute(&mut *tx)
                            .await?;
                            true
                        }
                        Some(BlobWrite::Delete { id }) => {
                            sqlx::query("DELETE FROM blobs WHERE id = $1")
                                .bind(id)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected()
                                == 1
                        }
                    };
                    if done {
                        events.extend(job.events.iter().cloned());
                    }
                    applied.push(done);
                }
                // Lock chain heads in one order, so concurrent batches cannot deadlock; the
                // sort is stable, so each chain keeps its events' order.
                events.sort_by(|a, b| a.chain.cmp(&b.chain));
                for chain in events.chunk_by(|a, b| a.chain == b.chain) {
                    Self::append_chain_in_tx(&mut tx, chain).await?;
                }
                Self::commit(tx).await?;
                Ok(applied)
            }

            async fn audit_query(
                &self,
                query: &$crate::store::AuditQuery,
            ) -> $crate::store::StoreResult<Vec<(i64, $crate::audit::AuditEvent)>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM audit_events WHERE ",
                    $crate::store::sql::AUDIT_COLUMNS
                ));
                match &query.scope {
                    $crate::store::AuditScope::Chain(chain) => {
                        sql.push("chain = ").push_bind(chain);
                    }
                    $crate::store::AuditScope::Principal(principal) => {
                        sql.push("(requester = ")
                            .push_bind(principal)
                            .push(" OR owner = ")
                            .push_bind(principal)
                            .push(")");
                    }
                }
                if let Some(blob_id) = &query.blob_id {
                    sql.push(" AND blob_id = ").push_bind(blob_id);
                }
                if let Some(scope) = &query.blob_scope {
                    sql.push(" AND scope = ").push_bind(scope);
                }
                if let Some(requester) = &query.requester {
                    sql.push(" AND requester = ").push_bind(requester);
                }
                if let Some(start) = query.start_ms {
                    sql.push(" AND ts_ms >= ").push_bind(start);
                }
                if let Some(end) = query.end_ms {
                    sql.push(" AND ts_ms < ").push_bind(end);
                }
                if let Some(before) = query.before_gid {
                    sql.push(" AND gid < ").push_bind(before);
                }
                sql.push(" ORDER BY gid DESC LIMIT ").push_bind(query.limit);
                let rows = sql.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::sql::audit_event)
                    .collect::<Result<_, _>>()?)
            }

            async fn audit_chain_page(
                &self,
                chain: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::audit::AuditEvent>> {
                let sql = format!(
                    "SELECT {} FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    $crate::store::sql::AUDIT_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(chain)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| $crate::store::sql::audit_event(r).map(|(_, e)| e))
                    .collect::<Result<_, _>>()
                    .map_err(Into::into)
            }

            async fn audit_head(
                &self,
                chain: &str,
            ) -> $crate::store::StoreResult<Option<(i64, String)>> {
                Ok(sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE chain = $1")
                    .bind(chain)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn audit_chains(&self) -> $crate::store::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT chain FROM audit_heads ORDER BY chain")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn oldest_keys(
                &self,
            ) -> $crate::store::StoreResult<(Option<i64>, Option<i64>)> {
                Ok(sqlx::query_as(
                    "SELECT (SELECT MIN(created_at) FROM tenant_keys), \
                     (SELECT MIN(created_at) FROM client_secrets)",
                )
                .fetch_one(&self.pool)
                .await?)
            }
        }
    };
}

pub(super) use impl_store;
