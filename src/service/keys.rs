//! Tenant keys (created on first use, one per org or personal owner) and the master-key
//! fingerprint check at start-up.

use super::Vault;
use crate::crypto::{MasterKey, TenantKey};
use crate::error::VaultError;
use crate::store::{Store, StoreError, TenantKeyRecord};

const CHECK_KEY: &str = "master_key_check";

/// Outcome of comparing the master key with the one the database was set up with.
#[derive(Debug, PartialEq, Eq)]
pub enum MasterKeyCheck {
    /// The database had no fingerprint; this key's was recorded.
    Recorded,
    Matches,
}

/// Records the master key's fingerprint on first use and refuses a different key later, so a
/// wrong key is found at start-up, not on the first read.
pub async fn check_master_key(
    store: &dyn Store,
    master: &MasterKey,
) -> Result<MasterKeyCheck, anyhow::Error> {
    if store
        .insert_meta_value(CHECK_KEY, master.check_value())
        .await?
    {
        return Ok(MasterKeyCheck::Recorded);
    }
    match store.meta_value(CHECK_KEY).await? {
        Some(value) if value == master.check_value() => Ok(MasterKeyCheck::Matches),
        _ => anyhow::bail!(
            "the master key does not match the one this database was created with; \
             refusing to start (see runbooks/key-rotation.md)"
        ),
    }
}

/// Whether the database already holds a master-key fingerprint (it has been used before).
pub async fn database_is_initialised(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(store.meta_value(CHECK_KEY).await?.is_some())
}

impl Vault {
    /// The current key of `tenant`, created on first use.
    pub(super) async fn tenant_key(
        &self,
        tenant: &str,
    ) -> Result<(TenantKeyRecord, TenantKey), VaultError> {
        // Two replicas may race to create a tenant's first key; the loser reads the winner's.
        for _ in 0..3 {
            if let Some(record) = self.store.current_tenant_key(tenant).await? {
                let key = self
                    .master
                    .unwrap_tenant_key(tenant, record.version, &record.wrapped)
                    .map_err(|e| VaultError::Internal(e.into()))?;
                return Ok((record, key));
            }
            // After an erasure destroyed the key, a new one takes the next version.
            let version = self.store.newest_tenant_key_version(tenant).await? + 1;
            let key = TenantKey::generate();
            let record = TenantKeyRecord {
                id: uuid::Uuid::new_v4().to_string(),
                tenant: tenant.to_owned(),
                version,
                wrapped: self
                    .master
                    .wrap_tenant_key(tenant, version, &key)
                    .map_err(|e| VaultError::Internal(e.into()))?,
                created_at: self.clock.now_secs(),
            };
            if self.store.insert_tenant_key(&record).await? {
                return Ok((record, key));
            }
        }
        Err(VaultError::Internal(anyhow::anyhow!(
            "could not create or read the key of tenant {tenant}"
        )))
    }

    pub(super) fn unwrap_tenant_key(
        &self,
        tenant: &str,
        version: i64,
        wrapped: &[u8],
    ) -> Result<TenantKey, VaultError> {
        self.master
            .unwrap_tenant_key(tenant, version, wrapped)
            .map_err(|e| VaultError::Internal(e.into()))
    }
}

/// The tenant a blob's keys belong to: its org, or its owner when it has none.
/// Its audit chain has the same name.
pub fn tenant_of(owner: &str, org: Option<&str>) -> String {
    match org {
        Some(org) => crate::audit::org_chain(org),
        None => crate::audit::owner_chain(owner),
    }
}
