//! HMAC clients: registration and secret rotation. Secrets
//! are 32 random bytes shown once as 64 hex characters; the HMAC key is that text's ASCII
//! bytes, and it is stored only sealed under the master key. Every change is audited on the
//! `system` chain. Checking a signature against them is `client_auth`'s job.

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
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<crate::store::StoreError> for ClientError {
    fn from(e: crate::store::StoreError) -> Self {
        ClientError::Vault(e.into())
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
            .create_client(name, &sealed, self.clock.now_secs(), &event)
            .await
            .map_err(|e| self.store_error(e))?;
        if created {
            Ok(secret)
        } else {
            Err(ClientError::Exists(name.as_str().to_owned()))
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
            return Err(ClientError::Missing(name.as_str().to_owned()));
        };
        let slot = newest.slot + 1;
        let secret = new_secret();
        let sealed = self.seal_secret(name, slot, &secret)?;
        let event = self.client_event(caller, "client.rotate", name);
        let added = self
            .store
            .add_client_secret(name, slot, &sealed, self.clock.now_secs(), &event)
            .await
            .map_err(|e| self.store_error(e))?;
        self.secret_cache.forget(name.as_str());
        if added {
            Ok(secret)
        } else {
            Err(ClientError::Raced(name.as_str().to_owned()))
        }
    }

    /// Ends a rotation: only the newest secret stays valid.
    pub async fn prune_client(
        &self,
        caller: &Caller,
        name: &ClientName,
    ) -> Result<u64, ClientError> {
        if self.store.client_secrets(name).await?.is_empty() {
            return Err(ClientError::Missing(name.as_str().to_owned()));
        }
        let event = self.client_event(caller, "client.prune", name);
        self.secret_cache.forget(name.as_str());
        self.store
            .prune_client_secrets(name, &event)
            .await
            .map_err(|e| ClientError::Vault(self.store_error(e)))
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
