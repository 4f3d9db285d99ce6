//! Reading the audit log: queries under the visibility rules of DESIGN §4.5, chain pages for
//! verification, and the recorded chain heads. Events are only ever appended, inside the
//! transaction of what they record (`tx.rs`).

use super::{StoreError, StoreResult};
use crate::audit::tree::{Hash, NodeId};
use crate::audit::{chain, owner_chain, AuditEvent};
use crate::domain::{BlobId, Principal, Scope};
use async_trait::async_trait;
use std::collections::HashMap;

/// Which events an audit query may return.
#[derive(Debug, Clone)]
pub enum AuditScope {
    /// One tenant's chain (org-wide queries by its administrators or moderators).
    Chain(String),
    /// Events about the principal: as requester, or as owner of the blob.
    Principal(Principal),
}

#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub scope: AuditScope,
    pub blob_id: Option<BlobId>,
    pub blob_scope: Option<Scope>,
    pub requester: Option<Principal>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Only events older than this global position (the cursor).
    pub before_gid: Option<i64>,
    pub limit: i64,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Events matching `query`, newest first, each with its global position (the cursor).
    async fn audit_query(&self, query: &AuditQuery) -> StoreResult<Vec<(i64, AuditEvent)>>;
    /// Up to `limit` events of `chain` with `seq > after_seq`, in `seq` order.
    async fn audit_chain_page(
        &self,
        chain: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// The recorded head (`seq`, `hash`) of a chain.
    async fn audit_head(&self, chain: &str) -> StoreResult<Option<(i64, String)>>;
    /// Every chain that has a head.
    async fn audit_chains(&self) -> StoreResult<Vec<String>>;
    /// The recorded head of a chain with its tree frontier (`None` for a chain whose tree
    /// was never built: written before trees were kept and not appended to since).
    async fn audit_tree_head(&self, chain: &str) -> StoreResult<Option<TreeHead>>;
    /// The stored tree nodes among `ids` (missing ones are simply absent).
    async fn audit_tree_nodes(
        &self,
        chain: &str,
        ids: &[NodeId],
    ) -> StoreResult<HashMap<NodeId, Hash>>;
    /// The leaf inputs (raw event hashes) of a chain's tree in the leaf ranges `[start, end)`,
    /// by leaf index, in one query (leaf `i` is the event `seq` = i + 1; missing events are
    /// simply absent).
    async fn audit_leaves(
        &self,
        chain: &str,
        ranges: &[(u64, u64)],
    ) -> StoreResult<HashMap<u64, Hash>>;
    /// The chains with events after global position `after_gid`, and the newest position.
    async fn audit_changed_since(&self, after_gid: i64) -> StoreResult<(Vec<String>, i64)>;
    /// Every chain head's `seq`, by chain.
    async fn audit_head_sizes(&self) -> StoreResult<Vec<(String, i64)>>;
    /// The chains whose tree was never built (written before trees were kept).
    async fn audit_chains_without_tree(&self) -> StoreResult<Vec<String>>;
    /// Builds the tree of a chain that has none, from its events, in one transaction under
    /// the chain's head lock; `false` if it already had one.
    async fn audit_build_tree(&self, chain: &str) -> StoreResult<bool>;
}

/// A chain head with its tree frontier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    pub seq: i64,
    pub hash: String,
    pub frontier: Option<Vec<u8>>,
}

/// Node look-ups per query: 3 bound values each, below SQLite's oldest limit of 999 bound
/// values and its limit of 500 terms in a compound SELECT.
const NODES_PER_QUERY: usize = 200;

/// Leaf ranges per query (3 bound values each); a plan has at most three.
const RANGES_PER_QUERY: usize = 200;

/// A leaf input read from an event: its index in the tree and its hash as raw bytes.
fn leaf_row(chain: &str, seq: i64, hash: &str) -> StoreResult<(u64, Hash)> {
    let bad = || {
        super::StoreError::Audit(sqlx::Error::Protocol(format!(
            "malformed event hash at seq {seq} of chain {chain}"
        )))
    };
    let index = u64::try_from(seq.saturating_sub(1)).map_err(|_| bad())?;
    let mut leaf = [0u8; 32];
    hex::decode_to_slice(hash, &mut leaf).map_err(|_| bad())?;
    Ok((index, leaf))
}

fn node_row(chain: &str, level: i32, idx: i64, hash: &[u8]) -> StoreResult<(NodeId, Hash)> {
    let bad = || {
        super::StoreError::Audit(sqlx::Error::Protocol(format!(
            "malformed tree node ({level}, {idx}) of chain {chain}"
        )))
    };
    let id = NodeId {
        level: u8::try_from(level).map_err(|_| bad())?,
        index: u64::try_from(idx).map_err(|_| bad())?,
    };
    Ok((id, Hash::try_from(hash).map_err(|_| bad())?))
}

/// An `audit_events` row: the recorded event, its time in milliseconds, and its global
/// position.
#[derive(sqlx::FromRow)]
struct AuditRow {
    gid: i64,
    chain: String,
    seq: i64,
    id: String,
    ts_ms: i64,
    event_type: String,
    blob_id: Option<String>,
    scope: Option<String>,
    owner: Option<String>,
    org_id: Option<String>,
    requester: String,
    auth_method: String,
    outcome: String,
    denial_reason: Option<String>,
    purpose: Option<String>,
    reason: Option<String>,
    details: Option<String>,
    request_id: String,
    previous_hash: String,
    hash: String,
}

const AUDIT_COLUMNS: &str = "gid, chain, seq, id, ts_ms, event_type, blob_id, scope, owner, \
    org_id, requester, auth_method, outcome, denial_reason, purpose, reason, details, request_id, \
    previous_hash, hash";

impl AuditRow {
    /// The event as it was hashed (its timestamp in the chain's text form), and its position.
    /// Stored details that are not an object of strings are an error, not an event without
    /// them (it would then fail verification for a reason nobody could see).
    fn into_event(self) -> StoreResult<(i64, AuditEvent)> {
        let details = self
            .details
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
        Ok((
            self.gid,
            AuditEvent {
                seq: self.seq,
                chain: self.chain,
                id: self.id,
                timestamp: chain::format_timestamp(self.ts_ms),
                event_type: self.event_type,
                blob_id: self.blob_id,
                scope: self.scope,
                owner: self.owner,
                org_id: self.org_id,
                requester: self.requester,
                auth_method: self.auth_method,
                outcome: self.outcome,
                denial_reason: self.denial_reason,
                purpose: self.purpose,
                reason: self.reason,
                details,
                request_id: self.request_id,
                previous_hash: self.previous_hash,
                hash: self.hash,
            },
        ))
    }
}

macro_rules! audit_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl AuditStore for $store {
            async fn audit_query(&self, query: &AuditQuery) -> StoreResult<Vec<(i64, AuditEvent)>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE "
                ));
                match &query.scope {
                    AuditScope::Chain(chain) => {
                        sql.push("chain = ").push_bind(chain);
                    }
                    AuditScope::Principal(principal) => {
                        // Its own requests, except denials recorded on another tenant's chain
                        // (its own chain holds their redacted copies), and every event about
                        // what it owns.
                        sql.push("(owner = ")
                            .push_bind(principal.as_str())
                            .push(" OR (requester = ")
                            .push_bind(principal.as_str())
                            .push(" AND (outcome <> 'denied' OR chain = ")
                            .push_bind(owner_chain(principal.as_str()))
                            .push(")))");
                    }
                }
                if let Some(blob_id) = &query.blob_id {
                    sql.push(" AND blob_id = ").push_bind(blob_id.to_string());
                }
                if let Some(scope) = &query.blob_scope {
                    sql.push(" AND scope = ").push_bind(scope.as_str());
                }
                if let Some(requester) = &query.requester {
                    sql.push(" AND requester = ").push_bind(requester.as_str());
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
                let rows = sql
                    .build_query_as::<AuditRow>()
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(AuditRow::into_event).collect()
            }

            async fn audit_chain_page(
                &self,
                chain: &str,
                after_seq: i64,
                limit: i64,
            ) -> StoreResult<Vec<AuditEvent>> {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_events \
                     WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                );
                let rows: Vec<AuditRow> = sqlx::query_as(&sql)
                    .bind(chain)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|row| row.into_event().map(|(_, event)| event))
                    .collect()
            }

            async fn audit_head(&self, chain: &str) -> StoreResult<Option<(i64, String)>> {
                Ok(
                    sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE chain = $1")
                        .bind(chain)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn audit_chains(&self) -> StoreResult<Vec<String>> {
                Ok(
                    sqlx::query_scalar("SELECT chain FROM audit_heads ORDER BY chain")
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn audit_tree_head(&self, chain: &str) -> StoreResult<Option<TreeHead>> {
                let row: Option<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT seq, hash, tree_frontier FROM audit_heads WHERE chain = $1",
                )
                .bind(chain)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(seq, hash, frontier)| TreeHead {
                    seq,
                    hash,
                    frontier,
                }))
            }

            async fn audit_tree_nodes(
                &self,
                chain: &str,
                ids: &[NodeId],
            ) -> StoreResult<HashMap<NodeId, Hash>> {
                let mut found = HashMap::with_capacity(ids.len());
                for ids in ids.chunks(NODES_PER_QUERY) {
                    // One point look-up per node, glued with UNION ALL: each uses the primary
                    // key (an OR of them made SQLite scan the chain's nodes).
                    let mut sql = sqlx::QueryBuilder::<$db>::new("");
                    for (n, id) in ids.iter().enumerate() {
                        if n > 0 {
                            sql.push(" UNION ALL ");
                        }
                        let idx = i64::try_from(id.index).unwrap_or(i64::MAX);
                        sql.push("SELECT level, idx, hash FROM audit_tree WHERE chain = ")
                            .push_bind(chain)
                            .push(" AND level = ")
                            .push_bind(i32::from(id.level))
                            .push(" AND idx = ")
                            .push_bind(idx);
                    }
                    let rows: Vec<(i32, i64, Vec<u8>)> =
                        sql.build_query_as().fetch_all(&self.pool).await?;
                    for (level, idx, hash) in rows {
                        let (id, hash) = node_row(chain, level, idx, &hash)?;
                        found.insert(id, hash);
                    }
                }
                Ok(found)
            }

            async fn audit_leaves(
                &self,
                chain: &str,
                ranges: &[(u64, u64)],
            ) -> StoreResult<HashMap<u64, Hash>> {
                let mut found = HashMap::new();
                for ranges in ranges.chunks(RANGES_PER_QUERY) {
                    // One range scan of the (chain, seq) index per range, glued like the nodes.
                    let mut sql = sqlx::QueryBuilder::<$db>::new("");
                    for (n, (start, end)) in ranges.iter().enumerate() {
                        if n > 0 {
                            sql.push(" UNION ALL ");
                        }
                        sql.push("SELECT seq, hash FROM audit_events WHERE chain = ")
                            .push_bind(chain)
                            .push(" AND seq > ")
                            .push_bind(i64::try_from(*start).unwrap_or(i64::MAX))
                            .push(" AND seq <= ")
                            .push_bind(i64::try_from(*end).unwrap_or(i64::MAX));
                    }
                    let rows: Vec<(i64, String)> =
                        sql.build_query_as().fetch_all(&self.pool).await?;
                    for (seq, hash) in rows {
                        let (index, leaf) = leaf_row(chain, seq, &hash)?;
                        found.insert(index, leaf);
                    }
                }
                Ok(found)
            }

            async fn audit_head_sizes(&self) -> StoreResult<Vec<(String, i64)>> {
                Ok(
                    sqlx::query_as("SELECT chain, seq FROM audit_heads ORDER BY chain")
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn audit_chains_without_tree(&self) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT chain FROM audit_heads WHERE tree_frontier IS NULL ORDER BY chain",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn audit_build_tree(&self, chain: &str) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // A write first: it takes the head's row lock (SQLite: the write lock).
                let head: Option<(i64, Option<Vec<u8>>)> = sqlx::query_as(
                    "UPDATE audit_heads SET seq = seq WHERE chain = $1 \
                     RETURNING seq, tree_frontier",
                )
                .bind(chain)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((seq, None)) = head else {
                    return Ok(false);
                };
                let mut nodes = Vec::new();
                let frontier = Self::rebuild_tree_in_tx(&mut tx, chain, seq, &mut nodes).await?;
                Self::insert_tree_nodes_in_tx(&mut tx, &nodes).await?;
                sqlx::query("UPDATE audit_heads SET tree_frontier = $1 WHERE chain = $2")
                    .bind(frontier.to_bytes())
                    .bind(chain)
                    .execute(&mut *tx)
                    .await?;
                Self::commit(tx).await?;
                Ok(true)
            }

            async fn audit_changed_since(&self, after_gid: i64) -> StoreResult<(Vec<String>, i64)> {
                let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(gid) FROM audit_events")
                    .fetch_one(&self.pool)
                    .await?;
                let newest = newest.unwrap_or(0);
                let chains = sqlx::query_scalar(
                    "SELECT DISTINCT chain FROM audit_events \
                     WHERE gid > $1 AND gid <= $2 ORDER BY chain",
                )
                .bind(after_gid)
                .bind(newest)
                .fetch_all(&self.pool)
                .await?;
                Ok((chains, newest))
            }
        }
    };
}

for_each_backend!(audit_store);
