//! The transaction helpers every aggregate shares: appending audit events to their chains
//! inside the transaction of the change they record, and ending a one-change transaction.
//!
//! Every write transaction starts with a write statement: SQLite then takes its write lock at
//! once, instead of failing to upgrade a read lock when another writer got there first.

use super::{StoreError, StoreResult};
use crate::audit::{chain, NewEvent};

macro_rules! tx_helpers {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Appends one event inside `tx`.
            pub(super) async fn append_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                event: &NewEvent,
            ) -> StoreResult<()> {
                Self::append_chain_in_tx(tx, std::slice::from_ref(event)).await
            }

            /// Appends events of one chain inside `tx`: lock the chain head (an upsert, so the
            /// first statement is a write on both backends), link and insert each event, then
            /// advance the head once.
            pub(super) async fn append_chain_in_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                events: &[NewEvent],
            ) -> StoreResult<()> {
                let Some(first) = events.first() else {
                    return Ok(());
                };
                let (mut seq, mut previous): (i64, String) = sqlx::query_as(
                    "INSERT INTO audit_heads (chain, seq, hash) VALUES ($1, 0, $2) \
                     ON CONFLICT (chain) DO UPDATE SET seq = audit_heads.seq \
                     RETURNING seq, hash",
                )
                .bind(&first.chain)
                .bind(chain::GENESIS_HASH)
                .fetch_one(&mut **tx)
                .await
                .map_err(StoreError::audit)?;
                let encode = |e: serde_json::Error| StoreError::Audit(sqlx::Error::Encode(Box::new(e)));
                let mut linked = Vec::with_capacity(events.len());
                for event in events {
                    seq += 1;
                    let next = chain::link(event, seq, &previous).map_err(encode)?;
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
            pub(super) async fn record_if(
                mut tx: sqlx::Transaction<'_, $db>,
                applied: bool,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                if applied {
                    Self::append_in_tx(&mut tx, event).await?;
                    Self::commit(tx).await?;
                }
                Ok(applied)
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
