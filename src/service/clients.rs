//! HMAC clients: registration, secret rotation and retirement, revocation and listing. Secrets
//! are 32 random bytes shown once as 64 hex characters; the HMAC key is that text's ASCII
//! bytes, and it is stored only sealed under the master key. Every change is audited on the
//! `system` chain. Checking a signature against them is `client_auth`'s job.
//!
//! Revocation is final for the client's secrets: they are deleted in the revoking transaction,
//! and a revoked client can be neither rotated nor re-created under its name while its row
//! stays (so the list and the audit trail keep naming it). Giving the service credentials
//! again is a deliberate, audited pair of steps: `admin client delete NAME`, then
//! `admin client create NAME`, which issues a fresh secret.

use super::{Caller, Vault};
use crate::audit::{NewEvent, SYSTEM_CHAIN};
use crate::domain::ClientName;
use crate::error::VaultError;
use rand::RngCore;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client {0:?} already exists")]
    Exists(String),
    #[error("client {0:?} does not exist")]
    Missing(String),
    #[error("another rotation of client {0:?} ran at the same time; try again")]
    Raced(String),
    #[error(
        "client {0:?} is revoked: its secrets are gone for good; to issue new credentials, \
         `admin client delete` it and `admin client create` it again"
    )]
    Revoked(String),
    #[error("client {0:?} has only one secret: nothing to retire (rotate first)")]
    OneSecret(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<crate::store::StoreError> for ClientError {
    fn from(e: crate::store::StoreError) -> Self {
        ClientError::Vault(e.into())
    }
}

/// Most clients `admin client list` shows.
pub const MAX_CLIENTS_LISTED: i64 = 10_000;

/// One client as `admin client list` shows it, ages by the vault's clock.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientListing {
    pub principal: String,
    /// Newest first.
    pub secrets: Vec<SecretAge>,
    pub revoked: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretAge {
    /// RFC 3339.
    pub created_at: String,
    /// Whole days since it was created.
    pub age_days: i64,
}

impl SecretAge {
    /// The ages, at `now`, of secrets created at `created` (Unix seconds).
    pub fn of_all(created: Vec<i64>, now: i64) -> Vec<SecretAge> {
        created
            .into_iter()
            .map(|created| SecretAge {
                created_at: crate::time::to_rfc3339(created),
                age_days: now.saturating_sub(created).div_euclid(86_400).max(0),
            })
            .collect()
    }
}

/// A new client secret: 32 random bytes as 64 hex characters (the HMAC key is that text).
pub(super) fn new_secret() -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    Zeroizing::new(hex::encode(raw.as_ref()))
}

impl Vault {
    fn client_event(
        &self,
        caller: &Caller,
        event_type: &'static str,
        name: &ClientName,
    ) -> NewEvent {
        let mut event = self.event(caller, SYSTEM_CHAIN.to_owned(), event_type);
        // The client the operation is about is the "owner" of the event.
        event.owner = Some(name.as_str().to_owned());
        event
    }

    fn seal_secret(
        &self,
        name: &ClientName,
        slot: i64,
        secret: &str,
    ) -> Result<Vec<u8>, ClientError> {
        self.master
            .active()
            .seal_client_secret(name.as_str(), slot, secret.as_bytes())
            .map_err(|e| ClientError::Vault(VaultError::Internal(e.into())))
    }

    /// Registers a client and returns its first secret (shown once).
    pub async fn create_client(
        &self,
        caller: &Caller,
        name: &ClientName,
    ) -> Result<Zeroizing<String>, ClientError> {
        let secret = new_secret();
        let sealed = self.seal_secret(name, 1, &secret)?;
        let event = self.client_event(caller, "client.create", name);
        let created = self
            .store
            .create_client(
                name,
                &sealed,
                self.master.active().key_id(),
                self.clock.now_secs(),
                &event,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        if created {
            Ok(secret)
        } else {
            match self.why_no_secrets(name).await {
                revoked @ ClientError::Revoked(_) => Err(revoked),
                _ => Err(ClientError::Exists(name.as_str().to_owned())),
            }
        }
    }

    /// Adds a new secret; the previous one stays valid until pruned or rotated again.
    pub async fn rotate_client(
        &self,
        caller: &Caller,
        name: &ClientName,
    ) -> Result<Zeroizing<String>, ClientError> {
        let current = self.store.client_secrets(name).await?;
        let Some(newest) = current.first() else {
            return Err(self.why_no_secrets(name).await);
        };
        let slot = newest.slot + 1;
        let secret = new_secret();
        let sealed = self.seal_secret(name, slot, &secret)?;
        let event = self.client_event(caller, "client.rotate", name);
        let added = self
            .store
            .add_client_secret(
                name,
                slot,
                &sealed,
                self.master.active().key_id(),
                self.clock.now_secs(),
                &event,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        self.secret_cache.forget(name.as_str());
        if added {
            Ok(secret)
        } else {
            Err(ClientError::Raced(name.as_str().to_owned()))
        }
    }

    /// Why a client has no secret to work on: it does not exist, or it is revoked.
    async fn why_no_secrets(&self, name: &ClientName) -> ClientError {
        let owned = || name.as_str().to_owned();
        match self.store.client_status(name).await {
            Ok(Some(Some(_))) => ClientError::Revoked(owned()),
            Ok(_) => ClientError::Missing(owned()),
            Err(e) => e.into(),
        }
    }

    /// Ends a rotation: only the newest secret stays valid. Returns how many were retired;
    /// a client with a single secret is refused, with nothing recorded.
    pub async fn retire_client(
        &self,
        caller: &Caller,
        name: &ClientName,
    ) -> Result<u64, ClientError> {
        if self.store.client_secrets(name).await?.is_empty() {
            return Err(self.why_no_secrets(name).await);
        }
        let event = self.client_event(caller, "client.retire", name);
        let retired = self
            .store
            .prune_client_secrets(name, &event)
            .await
            .map_err(|e| ClientError::Vault(self.store_error(e)))?;
        self.secret_cache.forget(name.as_str());
        if retired == 0 {
            return Err(ClientError::OneSecret(name.as_str().to_owned()));
        }
        Ok(retired)
    }

    /// Revokes a client: every secret is deleted at once, so none verifies again. This
    /// process forgets the client now; other replicas within their cache lifetime
    /// (`client_auth::SECRET_TTL`, under the 5 s of DESIGN §15). A revoked client is refused
    /// exactly as an unknown name is: it has no secrets.
    pub async fn revoke_client(
        &self,
        caller: &Caller,
        name: &ClientName,
    ) -> Result<(), ClientError> {
        let event = self.client_event(caller, "client.revoke", name);
        let revoked = self
            .store
            .revoke_client(name, self.clock.now_secs(), &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.secret_cache.forget(name.as_str());
        if revoked {
            Ok(())
        } else {
            Err(self.why_no_secrets(name).await)
        }
    }

    /// Every client (up to [`MAX_CLIENTS_LISTED`]) with its secrets' ages, by name. The
    /// look-up is an admin operation, so it is audited (`client.list`).
    pub async fn list_clients(&self, caller: &Caller) -> Result<Vec<ClientListing>, ClientError> {
        let now = self.clock.now_secs();
        let clients = self.store.list_clients(MAX_CLIENTS_LISTED).await?;
        let event = self.event(caller, SYSTEM_CHAIN.to_owned(), "client.list");
        self.record(caller, &[event]).await?;
        Ok(clients
            .into_iter()
            .map(|c| ClientListing {
                principal: c.name,
                secrets: SecretAge::of_all(c.secrets, now),
                revoked: c.revoked_at.is_some(),
            })
            .collect())
    }

    pub async fn delete_client(
        &self,
        caller: &Caller,
        name: &ClientName,
    ) -> Result<(), ClientError> {
        let event = self.client_event(caller, "client.delete", name);
        self.secret_cache.forget(name.as_str());
        let deleted = self
            .store
            .delete_client(name, &event)
            .await
            .map_err(|e| self.store_error(e))?;
        if deleted {
            Ok(())
        } else {
            Err(ClientError::Missing(name.as_str().to_owned()))
        }
    }
}
