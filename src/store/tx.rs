//! The transaction helpers every aggregate shares: appending audit events to their chains
//! inside the transaction of the change they record, and ending a one-change transaction.
//!
//! Every write transaction starts with a write statement: SQLite then takes its write lock at
//! once, instead of failing to upgrade a read lock when another writer got there first.

use super::{StoreError, StoreResult};
use crate::audit::tree::{self, Frontier, Hash};
use crate::audit::{chain, NewEvent};

/// Tree rows per INSERT (4 bound values each, far below either backend's limit).
const TREE_ROWS_PER_INSERT: usize = 1000;

/// A stored node of a chain's tree (`audit_tree`), as bound to SQL.
#[derive(Debug, Clone)]
pub(super) struct TreeRow {
    pub chain: String,
    pub level: i32,
    pub index: i64,
    pub hash: Hash,
}

/// A head's `seq` as a tree size.
fn tree_size(seq: i64) -> StoreResult<u64> {
    u64::try_from(seq)
        .map_err(|_| StoreError::Audit(sqlx::Error::Protocol(format!("negative chain head {seq}"))))
}

/// Adds the event with hex `hash` as the next leaf, collecting the stored nodes it completes
/// (subtrees below [`tree::STORED_LEVEL`] are folded from the events when needed).
fn push_leaf(
    frontier: &mut Frontier,
    chain: &str,
    hash: &str,
    nodes: &mut Vec<TreeRow>,
) -> StoreResult<()> {
    let mut leaf = [0u8; 32];
    hex::decode_to_slice(hash, &mut leaf).map_err(|_| {
        StoreError::Audit(sqlx::Error::Protocol(format!(
            "an event of chain {chain} has a malformed hash"
        )))
    })?;
    let mut fresh = Vec::new();
    frontier.push(&leaf, &mut fresh);
    for (id, hash) in fresh.into_iter().filter(|(id, _)| tree::is_stored(*id)) {
        nodes.push(TreeRow {
            chain: chain.to_owned(),
            level: i32::from(id.level),
            index: i64::try_from(id.index).map_err(|_| {
                StoreError::Audit(sqlx::Error::Protocol("tree index overflow".into()))
            })?,
            hash,
        });
    }
    Ok(())
}

macro_rules! tx_helpers {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Appends one event inside `tx`, tree included; returns its `seq`.
            pub(super) async fn append_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &NewEvent,
            ) -> StoreResult<i64> {
                let mut nodes = Vec::new();
                let seq =
                    Self::append_chain_in_tx(tx, &[event], &mut nodes).await?;
                Self::insert_tree_nodes_in_tx(tx, &nodes).await?;
                Ok(seq)
            }

            /// Appends events of one chain inside `tx`: lock the chain head (an upsert, so the
            /// first statement is a write on both backends), link and insert each event, then
            /// advance the head, and its tree frontier, once. The perfect subtrees the events
            /// complete go to `nodes`, for the caller to insert with those of other chains
            /// ([`Self::insert_tree_nodes_in_tx`]) in the same transaction. Returns the `seq`
            /// of the first event.
            pub(super) async fn append_chain_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[&NewEvent],
                nodes: &mut Vec<TreeRow>,
            ) -> StoreResult<i64> {
                let Some(first) = events.first() else {
                    return Ok(0);
                };
                let (mut seq, mut previous, stored_frontier): (i64, String, Option<Vec<u8>>) =
                    sqlx::query_as(
                        "INSERT INTO audit_heads (chain, seq, hash, tree_frontier) \
                         VALUES ($1, 0, $2, $3) \
                         ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq \
                         RETURNING seq, hash, tree_frontier",
                    )
                    .bind(&first.chain)
                    .bind(chain::GENESIS_HASH)
                    .bind(Vec::<u8>::new())
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(StoreError::audit)?;
                let mut frontier = match stored_frontier {
                    Some(bytes) => Frontier::from_bytes(tree_size(seq)?, &bytes)
                        .map_err(|e| StoreError::Audit(sqlx::Error::Decode(Box::new(e))))?,
                    None => Self::rebuild_tree_in_tx(tx, &first.chain, seq, nodes).await?,
                };
                let first_seq = seq.saturating_add(1);
                let encode = |e: serde_json::Error| StoreError::Audit(sqlx::Error::Encode(Box::new(e)));
                let mut linked = Vec::with_capacity(events.len());
                for event in events {
                    seq += 1;
                    let next = chain::link(event, seq, &previous).map_err(encode)?;
                    push_leaf(&mut frontier, &next.chain, &next.hash, nodes)?;
                    previous.clone_from(&next.hash);
                    let details = next
                        .details
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(encode)?;
                    linked.push((event.timestamp_ms, details, next));
                }
                // One multi-row INSERT per chain: a round trip per event was the cost that
                // bounded a batch (at most MAX_BATCH_EVENTS rows of 19 values stays far below
                // either backend's limit on bound parameters).
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO audit_events (chain, seq, id, ts_ms, event_type, blob_id, scope, \
                     owner, org_id, requester, auth_method, outcome, denial_reason, purpose, \
                     reason, details, request_id, previous_hash, hash) ",
                );
                insert.push_values(&linked, |mut row, (ts_ms, details, e)| {
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
                        .push_bind(details)
                        .push_bind(&e.request_id)
                        .push_bind(&e.previous_hash)
                        .push_bind(&e.hash);
                });
                insert
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(StoreError::audit)?;
                sqlx::query(
                    "UPDATE audit_heads SET seq = $1, hash = $2, tree_frontier = $3 \
                     WHERE chain = $4",
                )
                .bind(seq)
                .bind(&previous)
                .bind(frontier.to_bytes())
                .bind(&first.chain)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::audit)?;
                Ok(first_seq)
            }

            /// The tree of a chain written before trees were kept (its head has no frontier):
            /// built from its stored events, its nodes added to `nodes`.
            pub(super) async fn rebuild_tree_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                chain: &str,
                head_seq: i64,
                nodes: &mut Vec<TreeRow>,
            ) -> StoreResult<Frontier> {
                let mut frontier = Frontier::default();
                let mut after = 0i64;
                loop {
                    let page: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT seq, hash FROM audit_events \
                         WHERE chain = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT 10000",
                    )
                    .bind(chain)
                    .bind(after)
                    .bind(head_seq)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::audit)?;
                    let Some((last, _)) = page.last() else {
                        break;
                    };
                    let last = *last;
                    for (seq, hash) in &page {
                        if *seq != after.saturating_add(1) {
                            return Err(StoreError::Audit(sqlx::Error::Protocol(format!(
                                "chain {chain} has a gap before seq {seq}: its tree cannot be built"
                            ))));
                        }
                        after = *seq;
                        push_leaf(&mut frontier, chain, hash, nodes)?;
                    }
                    after = last;
                }
                if after != head_seq {
                    return Err(StoreError::Audit(sqlx::Error::Protocol(format!(
                        "chain {chain} holds {after} events but its head says {head_seq}"
                    ))));
                }
                Ok(frontier)
            }

            /// Inserts tree nodes gathered by [`Self::append_chain_in_tx`].
            pub(super) async fn insert_tree_nodes_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                nodes: &[TreeRow],
            ) -> StoreResult<()> {
                for rows in nodes.chunks(TREE_ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO audit_tree (chain, level, idx, hash) ",
                    );
                    insert.push_values(rows, |mut row, node| {
                        row.push_bind(&node.chain)
                            .push_bind(node.level)
                            .push_bind(node.index)
                            .push_bind(node.hash.to_vec());
                    });
                    insert
                        .build()
                        .execute(&mut **tx)
                        .await
                        .map_err(StoreError::audit)?;
                }
                Ok(())
            }

            /// Ends a one-change transaction: with its event when the change applied, else
            /// rolled back with nothing recorded. Returns the event's `seq` when it applied.
            pub(super) async fn record_if(
                mut tx: sqlx::Transaction<'_, $db>,
                applied: bool,
                event: &NewEvent,
            ) -> StoreResult<Option<i64>> {
                if !applied {
                    return Ok(None);
                }
                let seq = Self::append_in_tx(&mut tx, event).await?;
                Self::commit(tx).await?;
                Ok(Some(seq))
            }

            pub(super) async fn commit(tx: sqlx::Transaction<'_, $db>) -> StoreResult<()> {
                // A failed commit of a transaction that carries an audit event means the event
                // is not durable: report it as an audit failure.
                tx.commit().await.map_err(StoreError::audit)
            }
        }
    };
}

for_each_backend!(tx_helpers);
