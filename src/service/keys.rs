//! Tenant keys (created on first use, one active version per org or personal owner), the
//! master keyring check at start-up, the key listing, cryptoperiod signals, and the rewrap of
//! everything the master key wraps (`admin keys rewrap-master`).

use super::access::Question;
use super::{Caller, Vault};
use crate::audit::{self, ChainName, Details};
use crate::crypto::{key_id_of_check, MasterKeyring, TenantKey};
use crate::error::VaultError;
use crate::store::{Store, StoreError, TenantKeyRecord, KEY_ACTIVE};
use crate::time;
use serde::Serialize;
use std::time::Duration;

const CHECK_KEY: &str = "master_key_check";
/// `vault_meta` key prefix of the first time a master key (by id) was in use.
const MASTER_SINCE: &str = "master_key_since:";
use crate::retention::DAY_SECS;
/// Tenant key versions `GET /vault/keys` returns at most.
pub const MAX_KEYS_LISTED: i64 = 10_000;
/// Tenant keys and client secrets resealed per step of `rewrap-master`.
const MASTER_REWRAP_BATCH: i64 = 200;

/// Cryptoperiod and rewrap settings (`[keys]`).
#[derive(Debug, Clone, Copy)]
pub struct KeySettings {
    pub max_age_days: i64,
    pub warn_age_days: i64,
    /// Data keys rewrapped per transaction by a rotation.
    pub rewrap_batch_size: i64,
    /// Pause between two rewrap batches, to bound the load a rotation puts on the database.
    pub rewrap_pause: Duration,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            max_age_days: 90,
            warn_age_days: 80,
            rewrap_batch_size: 500,
            rewrap_pause: Duration::ZERO,
        }
    }
}

/// Outcome of comparing the keyring with what the database was sealed under.
#[derive(Debug, PartialEq, Eq)]
pub enum MasterKeyCheck {
    /// The database had no fingerprint; the active key's was recorded.
    Recorded,
    Matches,
}

/// Records the active master key's fingerprint on first use; later, refuses to start unless
/// every master key that wraps a live tenant key or client secret (and the one the database
/// was last set to) is in the keyring, naming the missing key id.
pub async fn check_master_keyring(
    store: &dyn Store,
    ring: &mut MasterKeyring,
    now: i64,
) -> Result<MasterKeyCheck, anyhow::Error> {
    let recorded = store
        .insert_meta_value(CHECK_KEY, ring.active().check_value())
        .await?;
    let mut needed = store.referenced_master_keys().await?;
    if !recorded {
        if let Some(check) = store.meta_value(CHECK_KEY).await? {
            let original = key_id_of_check(&check);
            ring.set_original(original);
            needed.push(original.to_owned());
        }
    }
    let active = ring.active();
    needed.sort();
    needed.dedup();
    let missing: Vec<&String> = needed.iter().filter(|id| !ring.contains(id)).collect();
    if let Some(first) = missing.first() {
        anyhow::bail!(
            "master key {first} is not in the keyring: this database holds tenant keys or \
             client secrets wrapped by it{}. Add its file to keys.previous_master_key_files \
             (the keyring now holds {}); refusing to start (see runbooks/key-rotation.md)",
            if missing.len() > 1 {
                format!(
                    " (also missing: {})",
                    missing
                        .iter()
                        .skip(1)
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            },
            ring.key_ids().join(", ")
        );
    }
    store
        .insert_meta_value(
            &format!("{MASTER_SINCE}{}", active.key_id()),
            &now.to_string(),
        )
        .await?;
    Ok(if recorded {
        MasterKeyCheck::Recorded
    } else {
        MasterKeyCheck::Matches
    })
}

/// Whether the database already holds a master-key fingerprint (it has been used before).
pub async fn database_is_initialised(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(store.meta_value(CHECK_KEY).await?.is_some())
}

/// One tenant key version (`GET /vault/keys`).
#[derive(Debug, Clone, Serialize)]
pub struct TenantKeyInfo {
    pub tenant: String,
    pub version: i64,
    pub status: String,
    pub created_at: String,
    pub age_days: i64,
    pub blobs: i64,
}

/// The active master key: its public id and age, never its material.
#[derive(Debug, Clone, Serialize)]
pub struct MasterKeyInfo {
    pub key_id: String,
    pub created_at: Option<String>,
    pub age_days: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    pub keys: Vec<TenantKeyInfo>,
    pub master: MasterKeyInfo,
}

/// Where the oldest active key of all kinds stands against the cryptoperiod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Ok,
    RotationDue,
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Ok => "ok",
            KeyState::RotationDue => "rotation_due",
            KeyState::Expired => "expired",
        }
    }
}

/// The age of the oldest active key of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAge {
    pub kind: &'static str,
    /// `None` when there is no key of the kind.
    pub seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAges {
    pub ages: [KeyAge; 3],
    pub state: KeyState,
}

/// What `rewrap-master` moved under the active master key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MasterRewrap {
    pub tenant_keys: u64,
    pub client_secrets: u64,
    /// Left under another key when it finished (0 on success).
    pub remaining: i64,
}

fn age_days(now: i64, created_at: i64) -> i64 {
    (now - created_at).max(0) / DAY_SECS
}

impl Vault {
    /// The active key of `tenant`, created on first use.
    pub(super) async fn tenant_key(
        &self,
        tenant: &str,
    ) -> Result<(TenantKeyRecord, TenantKey), VaultError> {
        // Two requests (or replicas) may race to create a tenant's first key: one active
        // version per tenant is a unique index, so the loser's insert does nothing and it
        // reads the winner's.
        for _ in 0..3 {
            if let Some(record) = self.store.current_tenant_key(tenant).await? {
                let key = self.open_tenant_key(&record)?;
                return Ok((record, key));
            }
            // After an erasure destroyed the key, a new one takes the next version.
            let version = self.store.newest_tenant_key_version(tenant).await? + 1;
            let (record, key) = self.new_tenant_key(tenant, version)?;
            if self.store.insert_tenant_key(&record).await? {
                return Ok((record, key));
            }
        }
        Err(VaultError::Internal(anyhow::anyhow!(
            "could not create or read the key of tenant {tenant}"
        )))
    }

    /// A fresh key for `tenant` at `version`, wrapped by the active master key.
    pub(super) fn new_tenant_key(
        &self,
        tenant: &str,
        version: i64,
    ) -> Result<(TenantKeyRecord, TenantKey), VaultError> {
        let key = TenantKey::generate();
        let master = self.master.active();
        let record = TenantKeyRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: tenant.to_owned(),
            version,
            wrapped: master
                .wrap_tenant_key(tenant, version, &key)
                .map_err(|e| VaultError::Internal(e.into()))?,
            created_at: self.clock.now_secs(),
            status: KEY_ACTIVE.to_owned(),
            master_key_id: Some(master.key_id().to_owned()),
        };
        Ok((record, key))
    }

    /// Opens a stored version of a tenant key.
    pub(super) fn open_tenant_key(
        &self,
        record: &TenantKeyRecord,
    ) -> Result<TenantKey, VaultError> {
        self.unwrap_tenant_key(
            &record.tenant,
            record.version,
            &record.wrapped,
            record.master_key_id.as_deref(),
        )
    }

    pub(super) fn unwrap_tenant_key(
        &self,
        tenant: &str,
        version: i64,
        wrapped: &[u8],
        master_key_id: Option<&str>,
    ) -> Result<TenantKey, VaultError> {
        let Some(master) = self.master.get(master_key_id) else {
            return Err(VaultError::Internal(anyhow::anyhow!(
                "the key of tenant {tenant} version {version} is wrapped by master key {}, \
                 which is not in the keyring",
                master_key_id.unwrap_or("?")
            )));
        };
        master
            .unwrap_tenant_key(tenant, version, wrapped)
            .map_err(|e| VaultError::Internal(e.into()))
    }

    /// `GET /vault/keys`: every tenant's key versions (platform admins), or one tenant's
    /// (`tenant`; an org's administrators may ask for their org's), and the master key.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        tenant: Option<&ChainName>,
    ) -> Result<KeyListing, VaultError> {
        let org = match tenant {
            Some(ChainName::Org(org)) => Some(org),
            _ => None,
        };
        // On the org's chain when it exists (its administrators see their own listings
        // there), else on `system`: a listing never opens a chain for a made-up tenant.
        let chain = match org {
            Some(org) if self.store.org_exists(org).await? => audit::org_chain(org.as_str()),
            _ => audit::SYSTEM_CHAIN.to_owned(),
        };
        let mut event = self.event(caller, chain, "key.list");
        event.org_id = org.map(|o| o.as_str().to_owned());
        self.authorize(caller, Question::Keys { org, event: &event })
            .await?;
        self.record(caller, &[event]).await?;
        let now = self.clock.now_secs();
        let tenant_name = tenant.map(ChainName::to_chain);
        let keys = self
            .store
            .list_tenant_keys(tenant_name.as_deref(), MAX_KEYS_LISTED)
            .await?
            .into_iter()
            .map(|k| TenantKeyInfo {
                age_days: age_days(now, k.created_at),
                created_at: time::to_rfc3339(k.created_at),
                tenant: k.tenant,
                version: k.version,
                status: k.status,
                blobs: k.blobs,
            })
            .collect();
        let since = self.master_since().await?;
        Ok(KeyListing {
            keys,
            master: MasterKeyInfo {
                key_id: self.master.active().key_id().to_owned(),
                created_at: since.map(time::to_rfc3339),
                age_days: since.map(|s| age_days(now, s)),
            },
        })
    }

    /// The public id of the active master key.
    pub fn active_master_key_id(&self) -> &str {
        self.master.active().key_id()
    }

    /// When the active master key was first used (recorded at start-up).
    async fn master_since(&self) -> Result<Option<i64>, VaultError> {
        let key = format!("{MASTER_SINCE}{}", self.master.active().key_id());
        Ok(self
            .store
            .meta_value(&key)
            .await?
            .and_then(|v| v.parse().ok()))
    }

    /// The age of the oldest active tenant key, the master key and the oldest live client
    /// secret, against `[keys] warn_age_days` and `max_age_days`; sets the key-age gauges.
    pub async fn key_ages(&self) -> Result<KeyAges, VaultError> {
        let now = self.clock.now_secs();
        let oldest = self.store.oldest_keys().await?;
        let master = self.master_since().await?;
        let age = |at: Option<i64>| at.map(|t| (now - t).max(0));
        let ages = [
            KeyAge {
                kind: "tenant",
                seconds: age(oldest.tenant),
            },
            KeyAge {
                kind: "master",
                seconds: age(master),
            },
            KeyAge {
                kind: "client_secret",
                seconds: age(oldest.client_secret),
            },
        ];
        let oldest_secs = ages.iter().filter_map(|a| a.seconds).max().unwrap_or(0);
        let state = self.state_of(oldest_secs);
        for a in &ages {
            self.metrics.set_key_age(a.kind, a.seconds.unwrap_or(0));
        }
        Ok(KeyAges { ages, state })
    }

    /// Where a key of age `secs` stands against `[keys] warn_age_days` and `max_age_days`.
    fn state_of(&self, secs: i64) -> KeyState {
        if secs > self.keys.max_age_days.saturating_mul(DAY_SECS) {
            KeyState::Expired
        } else if secs > self.keys.warn_age_days.saturating_mul(DAY_SECS) {
            KeyState::RotationDue
        } else {
            KeyState::Ok
        }
    }

    /// Logs a warning for each kind of key past `warn_age_days` (housekeeping).
    pub async fn warn_about_key_ages(&self) -> Result<KeyState, VaultError> {
        let ages = self.key_ages().await?;
        for age in &ages.ages {
            let Some(secs) = age.seconds else { continue };
            let days = secs / DAY_SECS;
            match self.state_of(secs) {
                KeyState::Expired => tracing::warn!(
                    kind = age.kind,
                    age_days = days,
                    max_age_days = self.keys.max_age_days,
                    "a key is past its cryptoperiod: rotate it now (runbooks/key-rotation.md)"
                ),
                KeyState::RotationDue => tracing::warn!(
                    kind = age.kind,
                    age_days = days,
                    warn_age_days = self.keys.warn_age_days,
                    "a key is due for rotation (runbooks/key-rotation.md)"
                ),
                _ => {}
            }
        }
        Ok(ages.state)
    }

    /// `data-vault admin keys rewrap-master`: reseals every live tenant key and client secret
    /// under the active master key, in batches, reporting `(done, total)` after each; then
    /// records the active key as the database's, so the previous key files can be removed.
    pub async fn rewrap_master(
        &self,
        caller: &Caller,
        progress: &(dyn Fn(u64, i64) + Send + Sync),
    ) -> Result<MasterRewrap, VaultError> {
        let active = self.master.active();
        let mut event = self.event(
            caller,
            audit::SYSTEM_CHAIN.to_owned(),
            "key.master_rewrapped",
        );
        self.authorize(caller, Question::Platform { event: &event })
            .await?;
        let total = self.store.count_not_under_master(active.key_id()).await?;
        let mut done = MasterRewrap::default();
        progress(0, total);
        loop {
            let keys = self
                .store
                .tenant_keys_not_under_master(active.key_id(), MASTER_REWRAP_BATCH)
                .await?;
            if keys.is_empty() {
                break;
            }
            let mut changed = 0;
            for record in &keys {
                let key = self.open_tenant_key(record)?;
                let wrapped = active
                    .wrap_tenant_key(&record.tenant, record.version, &key)
                    .map_err(|e| VaultError::Internal(e.into()))?;
                if self
                    .store
                    .rewrap_tenant_key(&record.id, &record.wrapped, &wrapped, active.key_id())
                    .await?
                {
                    changed += 1;
                }
            }
            done.tenant_keys += changed;
            progress(done.tenant_keys + done.client_secrets, total);
            if changed == 0 {
                // Every one changed under us (a concurrent rewrap); look again.
                tokio::task::yield_now().await;
            }
        }
        loop {
            let secrets = self
                .store
                .secrets_not_under_master(active.key_id(), MASTER_REWRAP_BATCH)
                .await?;
            if secrets.is_empty() {
                break;
            }
            for record in &secrets {
                let Some(old) = self.master.get(record.master_key_id.as_deref()) else {
                    return Err(VaultError::Internal(anyhow::anyhow!(
                        "a secret of client {} is sealed by master key {}, not in the keyring",
                        record.client,
                        record.master_key_id.as_deref().unwrap_or("?")
                    )));
                };
                let secret = old
                    .open_client_secret(&record.client, record.slot, &record.sealed)
                    .map_err(|e| VaultError::Internal(e.into()))?;
                let sealed = active
                    .seal_client_secret(&record.client, record.slot, &secret)
                    .map_err(|e| VaultError::Internal(e.into()))?;
                if self
                    .store
                    .reseal_client_secret(
                        &record.client,
                        record.slot,
                        &record.sealed,
                        &sealed,
                        active.key_id(),
                    )
                    .await?
                {
                    done.client_secrets += 1;
                }
            }
            progress(done.tenant_keys + done.client_secrets, total);
        }
        done.remaining = self.store.count_not_under_master(active.key_id()).await?;
        if done.remaining == 0 {
            self.store
                .set_meta_value(CHECK_KEY, active.check_value())
                .await?;
        }
        let mut details = Details::new();
        details.insert("master_key_id".into(), active.key_id().to_owned());
        details.insert("tenant_keys".into(), done.tenant_keys.to_string());
        details.insert("client_secrets".into(), done.client_secrets.to_string());
        details.insert("remaining".into(), done.remaining.to_string());
        event.details = Some(details);
        self.record(caller, &[event]).await?;
        Ok(done)
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
