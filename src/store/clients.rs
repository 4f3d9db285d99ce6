//! HMAC clients and their sealed secrets (at most the two newest slots stay live). A revoked
//! client keeps its row, marked, and has no secrets left.

use super::StoreResult;
use crate::audit::NewEvent;
use crate::domain::ClientName;
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientSecretRecord {
    pub slot: i64,
    pub sealed: Vec<u8>,
    /// The master key that sealed it (DESIGN §15 keyring).
    pub master_key_id: Option<String>,
}

/// One client as `admin client list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSummary {
    pub name: String,
    /// When each live secret was created (Unix seconds), newest first.
    pub secrets: Vec<i64>,
    pub revoked_at: Option<i64>,
}

/// The clients whose names match `$condition`, each with its secrets' creation times, newest
/// first: one statement, so a client and its secrets are read at one instant. Its rows are
/// grouped by [`summaries`].
macro_rules! summary_query {
    ($condition:literal) => {
        concat!(
            "SELECT c.name, c.revoked_at, s.created_at FROM clients c \
             LEFT JOIN client_secrets s ON s.client = c.name WHERE ",
            $condition,
            " ORDER BY c.name, s.slot DESC"
        )
    };
}

/// A row of [`summary_query`]: a client, and one of its secrets if it has any.
type SummaryRow = (String, Option<i64>, Option<i64>);

/// Groups the rows of [`summary_query`] into one summary per client, in order.
fn summaries(rows: Vec<SummaryRow>) -> Vec<ClientSummary> {
    let mut clients: Vec<ClientSummary> = Vec::new();
    for (name, revoked_at, secret_created) in rows {
        if clients.last().is_none_or(|c| c.name != name) {
            clients.push(ClientSummary {
                name,
                secrets: Vec::new(),
                revoked_at,
            });
        }
        if let (Some(client), Some(created)) = (clients.last_mut(), secret_created) {
            client.secrets.push(created);
        }
    }
    clients
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client with its first secret and records `event`, in one transaction;
    /// `false` (and nothing recorded) if the name is taken.
    async fn create_client(
        &self,
        name: &ClientName,
        sealed: &[u8],
        master_key_id: &str,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// The client's live secrets, newest first (none if it does not exist).
    async fn client_secrets(&self, name: &ClientName) -> StoreResult<Vec<ClientSecretRecord>>;
    /// Adds the secret in `slot` and keeps only the two newest slots. `false` if the client
    /// does not exist, is revoked, or the slot was taken by a concurrent rotation.
    async fn add_client_secret(
        &self,
        name: &ClientName,
        slot: i64,
        sealed: &[u8],
        master_key_id: &str,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// Drops every secret but the newest and records `event`, in one transaction; returns how
    /// many were dropped (0, and nothing recorded, when there was at most one).
    async fn prune_client_secrets(&self, name: &ClientName, event: &NewEvent) -> StoreResult<u64>;
    /// Marks the client revoked at `now` and deletes all its secrets, recording `event`, in one
    /// transaction; `false` (and nothing recorded) if it does not exist or is already revoked.
    async fn revoke_client(
        &self,
        name: &ClientName,
        now: i64,
        event: &NewEvent,
    ) -> StoreResult<bool>;
    /// `None` if the client does not exist, else when it was revoked (`None` if it is not).
    async fn client_status(&self, name: &ClientName) -> StoreResult<Option<Option<i64>>>;
    /// The first `limit` clients by name, with their secrets' ages and revocation.
    async fn list_clients(&self, limit: i64) -> StoreResult<Vec<ClientSummary>>;
    /// One client as `list_clients` shows it, or `None` when there is no such client.
    async fn client_summary(&self, name: &ClientName) -> StoreResult<Option<ClientSummary>>;
    /// Removes a client; `false` (and nothing recorded) if it did not exist.
    async fn delete_client(&self, name: &ClientName, event: &NewEvent) -> StoreResult<bool>;
}

macro_rules! client_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl ClientStore for $store {
            async fn create_client(
                &self,
                name: &ClientName,
                sealed: &[u8],
                master_key_id: &str,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let created = sqlx::query(
                    "INSERT INTO clients (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(name.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !created {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO client_secrets (client, slot, sealed, created_at, master_key_id) \
                     VALUES ($1, 1, $2, $3, $4)",
                )
                .bind(name.as_str())
                .bind(sealed)
                .bind(now)
                .bind(master_key_id)
                .execute(&mut *tx)
                .await?;
                Self::record_if(tx, true, event).await.map(|s| s.is_some())
            }

            async fn client_secrets(
                &self,
                name: &ClientName,
            ) -> StoreResult<Vec<ClientSecretRecord>> {
                // The newest two, padded with NULL rows to exactly two: the reply for an
                // unknown name then has the shape of a client's, so its timing does not tell
                // them apart (DESIGN §6).
                let rows: Vec<(Option<i64>, Option<Vec<u8>>, Option<String>)> = sqlx::query_as(
                    "SELECT slot, sealed, master_key_id FROM (\
                       SELECT slot, sealed, master_key_id FROM client_secrets WHERE client = $1 \
                       UNION ALL SELECT NULL, NULL, NULL UNION ALL SELECT NULL, NULL, NULL) \
                     AS padded \
                     ORDER BY slot IS NULL, slot DESC LIMIT 2",
                )
                .bind(name.as_str())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(slot, sealed, master_key_id)| {
                        Some(ClientSecretRecord {
                            slot: slot?,
                            sealed: sealed?,
                            master_key_id,
                        })
                    })
                    .collect())
            }

            async fn add_client_secret(
                &self,
                name: &ClientName,
                slot: i64,
                sealed: &[u8],
                master_key_id: &str,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let added = sqlx::query(
                    "INSERT INTO client_secrets (client, slot, sealed, created_at, master_key_id) \
                     SELECT $1, $2, $3, $4, $5 WHERE EXISTS \
                     (SELECT 1 FROM clients WHERE name = $1 AND revoked_at IS NULL) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(name.as_str())
                .bind(slot)
                .bind(sealed)
                .bind(now)
                .bind(master_key_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !added {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM client_secrets WHERE client = $1 AND slot < $2")
                    .bind(name.as_str())
                    .bind(slot - 1)
                    .execute(&mut *tx)
                    .await?;
                Self::record_if(tx, true, event).await.map(|s| s.is_some())
            }

            async fn prune_client_secrets(
                &self,
                name: &ClientName,
                event: &NewEvent,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM client_secrets WHERE client = $1 AND slot < \
                     (SELECT MAX(slot) FROM client_secrets WHERE client = $1)",
                )
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                Self::record_if(tx, done > 0, event).await?;
                Ok(done)
            }

            async fn revoke_client(
                &self,
                name: &ClientName,
                now: i64,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let revoked = sqlx::query(
                    "UPDATE clients SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                )
                .bind(name.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !revoked {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM client_secrets WHERE client = $1")
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                Ok(Self::record_if(tx, true, event).await?.is_some())
            }

            async fn client_status(&self, name: &ClientName) -> StoreResult<Option<Option<i64>>> {
                Ok(
                    sqlx::query_scalar("SELECT revoked_at FROM clients WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn list_clients(&self, limit: i64) -> StoreResult<Vec<ClientSummary>> {
                let rows: Vec<SummaryRow> = sqlx::query_as(summary_query!(
                    "c.name IN (SELECT name FROM clients ORDER BY name LIMIT $1)"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(summaries(rows))
            }

            async fn client_summary(
                &self,
                name: &ClientName,
            ) -> StoreResult<Option<ClientSummary>> {
                let rows: Vec<SummaryRow> = sqlx::query_as(summary_query!("c.name = $1"))
                    .bind(name.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(summaries(rows).into_iter().next())
            }

            async fn delete_client(
                &self,
                name: &ClientName,
                event: &NewEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM client_secrets WHERE client = $1")
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                let gone = sqlx::query("DELETE FROM clients WHERE name = $1")
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                Self::record_if(tx, gone, event).await.map(|s| s.is_some())
            }
        }
    };
}

for_each_backend!(client_store);
