//! Checking an HMAC client's signature so that a refusal costs the same whether the name is
//! registered or not (DESIGN §6): a short-lived cache of opened secrets that also remembers
//! unknown names, and a decoy key that stands in for missing secrets.
//!
//! Every refusal does the same work in the same order, whatever the name and whatever the
//! cache held: a cache lookup, a pass of two HMAC computations, one database read (which
//! returns two rows either way), two AEAD opens, one cache insert, and a second pass of two
//! HMAC computations. Only a valid signature, which needs the secret, can take a shorter path.

use super::clients::new_secret;
use super::Vault;
use crate::crypto::{CryptoError, MasterKey};
use crate::domain::ClientName;
use crate::error::VaultError;
use data_vault_auth::HmacRequest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long opened secrets (or the knowledge that a name has none) are reused before the
/// database is asked again. It bounds how long a replica honours a secret that another
/// process retired or revoked: DESIGN §15 allows 5 s.
pub const SECRET_TTL: Duration = Duration::from_secs(2);
const _: () = assert!(
    SECRET_TTL.as_secs() < 5,
    "revocation must reach every replica within 5 s"
);
/// Most names remembered. Unknown names are remembered too, and anyone can send endless
/// random ones, so the bound matters.
const SECRET_CACHE_MAX: usize = 10_000;
/// Keys tried per pass: a client holds at most two live secrets (during rotation).
const KEYS_PER_CHECK: usize = 2;
/// The decoy is sealed under this name and slot, which no client can have (client names are
/// never empty and slots start at 1).
const DECOY_NAME: &str = "";
const DECOY_SLOT: i64 = 0;

/// The keys one name is checked against: its live secrets, padded with the decoy to
/// `KEYS_PER_CHECK`. An unknown name has only decoys.
pub(super) struct CheckKeys {
    keys: Vec<Zeroizing<Vec<u8>>>,
    live: usize,
}

impl CheckKeys {
    /// Whether `signature` is the request's MAC under one of the live secrets. Every key is
    /// tried, decoys included, with no early exit.
    fn accept(&self, request: &HmacRequest<'_>, signature: &[u8; 32]) -> bool {
        let mut accepted = false;
        for (index, key) in self.keys.iter().enumerate() {
            let matched = request.matches(signature, key);
            accepted |= matched & (index < self.live);
        }
        accepted
    }
}

/// Recently looked-up names with their keys; bounded, entries expire after `SECRET_TTL`.
pub(super) struct SecretCache {
    entries: Mutex<HashMap<String, (Instant, Arc<CheckKeys>)>>,
    /// A random secret of the same shape as a client's, sealed like one, generated at start.
    decoy_sealed: Vec<u8>,
    /// Decoys only: what a name that is not cached is first checked against.
    placeholder: Arc<CheckKeys>,
}

impl SecretCache {
    pub(super) fn new(master: &MasterKey) -> Result<Self, CryptoError> {
        let decoy = new_secret();
        let decoy_sealed = master.seal_client_secret(DECOY_NAME, DECOY_SLOT, decoy.as_bytes())?;
        let placeholder = Arc::new(CheckKeys {
            keys: (0..KEYS_PER_CHECK)
                .map(|_| Zeroizing::new(decoy.as_bytes().to_vec()))
                .collect(),
            live: 0,
        });
        Ok(Self {
            // Allocated in full up front: a table that grows would rehash on some inserts of
            // a new name and not on a refresh of a known one.
            entries: Mutex::new(HashMap::with_capacity(SECRET_CACHE_MAX)),
            decoy_sealed,
            placeholder,
        })
    }

    fn get(&self, name: &str) -> Option<Arc<CheckKeys>> {
        let entries = self.entries.lock().ok()?;
        let (at, keys) = entries.get(name)?;
        (at.elapsed() < SECRET_TTL).then(|| keys.clone())
    }

    /// Remembers `keys` for `name`. When full, expired entries go; if that frees nothing, all
    /// entries go. Eviction looks only at the table's size and ages, never at whether an
    /// entry is a client or an unknown name, so a flood of random names cannot single out
    /// either kind, and its cost is the same for every insert that meets a full table.
    fn insert(&self, name: &str, keys: Arc<CheckKeys>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= SECRET_CACHE_MAX {
                entries.retain(|_, (at, _)| at.elapsed() < SECRET_TTL);
                if entries.len() >= SECRET_CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(name.to_owned(), (Instant::now(), keys));
        }
    }

    /// Forgets a client at once (after a change made through this process).
    pub(super) fn forget(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(name);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

impl Vault {
    /// Whether `signature` is the MAC of `request` under one of the client's live secrets.
    /// An unknown name is refused after exactly the work a wrong signature costs.
    #[tracing::instrument(skip_all)]
    pub async fn verify_client_signature(
        &self,
        name: &ClientName,
        request: &HmacRequest<'_>,
        signature: &[u8; 32],
    ) -> Result<bool, VaultError> {
        // A name that is not cached is first checked against decoys, which never accept,
        // so that every refusal runs the same steps: a pass, a read, a pass.
        let cached = self
            .secret_cache
            .get(name.as_str())
            .unwrap_or_else(|| self.secret_cache.placeholder.clone());
        if cached.accept(request, signature) {
            return Ok(true);
        }
        // A secret added since the cache was filled (a rotation elsewhere) must work at
        // once, so a refusal is decided on what the database says now.
        let current = self.load_check_keys(name).await?;
        Ok(current.accept(request, signature))
    }

    /// Reads and opens a name's live secrets, pads them with decoys, and caches the result,
    /// for unknown names as for clients.
    async fn load_check_keys(&self, client: &ClientName) -> Result<Arc<CheckKeys>, VaultError> {
        let name = client.as_str();
        let records = self.store.client_secrets(client).await?;
        let mut keys = Vec::with_capacity(KEYS_PER_CHECK);
        for record in records.iter().take(KEYS_PER_CHECK) {
            let opened = match self.master.get(record.master_key_id.as_deref()) {
                Some(master) => master.open_client_secret(name, record.slot, &record.sealed),
                None => Err(crate::crypto::CryptoError::Open),
            };
            match opened {
                Ok(key) => keys.push(key),
                Err(_) => tracing::error!(
                    client = name,
                    slot = record.slot,
                    "a client secret does not open under the master key"
                ),
            }
        }
        let live = keys.len();
        while keys.len() < KEYS_PER_CHECK {
            // Opened afresh each time, as a client's secret is, so this costs the same.
            let decoy = self
                .master
                .active()
                .open_client_secret(DECOY_NAME, DECOY_SLOT, &self.secret_cache.decoy_sealed)
                .map_err(|e| VaultError::Internal(anyhow::Error::new(e).context("decoy key")))?;
            keys.push(decoy);
        }
        let keys = Arc::new(CheckKeys { keys, live });
        self.secret_cache.insert(name, keys.clone());
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn request() -> HmacRequest<'static> {
        HmacRequest {
            method: "GET",
            path: "/api/v1/vault/blobs",
            raw_query: "",
            principal: "svc",
            timestamp: "1700000000",
            nonce: "00112233445566778899aabbccddeeff",
            content_sha256: EMPTY,
        }
    }

    fn keys(secrets: &[&[u8]], live: usize) -> CheckKeys {
        CheckKeys {
            keys: secrets.iter().map(|s| Zeroizing::new(s.to_vec())).collect(),
            live,
        }
    }

    fn signature(secret: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(request().sign(secret), &mut out).unwrap();
        out
    }

    #[test]
    fn only_live_keys_are_accepted_never_the_decoy() {
        let both = keys(&[b"new", b"old"], 2);
        assert!(both.accept(&request(), &signature(b"new")));
        assert!(both.accept(&request(), &signature(b"old")));
        let one = keys(&[b"new", b"decoy"], 1);
        assert!(one.accept(&request(), &signature(b"new")));
        assert!(!one.accept(&request(), &signature(b"decoy")));
        let unknown = keys(&[b"decoy", b"decoy"], 0);
        assert!(!unknown.accept(&request(), &signature(b"decoy")));
    }

    #[test]
    fn the_decoy_opens_to_a_fresh_secret_shaped_key() {
        let master = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let a = SecretCache::new(&master).unwrap();
        let b = SecretCache::new(&master).unwrap();
        let open = |c: &SecretCache| {
            master
                .open_client_secret(DECOY_NAME, DECOY_SLOT, &c.decoy_sealed)
                .unwrap()
        };
        assert_eq!(open(&a).len(), 64, "as long as a client's key");
        assert_ne!(open(&a), open(&b), "random per process");
    }

    #[test]
    fn a_flood_of_names_stays_within_the_bound() {
        let master = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let cache = SecretCache::new(&master).unwrap();
        let entry = Arc::new(keys(&[b"decoy", b"decoy"], 0));
        for i in 0..SECRET_CACHE_MAX {
            cache.insert(&format!("name-{i}"), entry.clone());
        }
        assert_eq!(cache.len(), SECRET_CACHE_MAX);
        assert!(cache.get("name-0").is_some());
        // Nothing has expired, so the next insert empties the table and starts again.
        cache.insert("one-more", entry.clone());
        assert_eq!(cache.len(), 1);
        assert!(cache.get("name-0").is_none());
        assert!(cache.get("one-more").is_some());
    }
}
