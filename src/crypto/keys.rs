//! The three levels of keys and what each one seals.

use super::aead::{self, CryptoError};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

type Key32 = Zeroizing<[u8; 32]>;

fn random_key() -> Key32 {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    key
}

fn key_from_vec(mut bytes: Vec<u8>) -> Result<Key32, CryptoError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let ok = bytes.len() == 32;
    if ok {
        key.copy_from_slice(&bytes);
    }
    bytes.zeroize();
    if ok {
        Ok(key)
    } else {
        Err(CryptoError::Open)
    }
}

/// Length-prefixed concatenation, so that no two field lists give the same bytes.
fn encode_fields(label: &str, fields: &[Option<&[u8]>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(label.as_bytes());
    for field in fields {
        match field {
            Some(bytes) => {
                out.push(1);
                // Every field is a label, id or key of a few dozen bytes; a length beyond
                // u32 cannot occur, and saturating keeps the encoding total regardless.
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.push(0),
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be 64 hexadecimal characters (32 bytes), e.g. from `openssl rand -hex 32`")]
    Malformed,
}

/// The root of the hierarchy. It never seals data directly: purpose-specific subkeys are
/// derived from it (HMAC-SHA256 as a KDF over a fixed label), one per kind of thing sealed.
pub struct MasterKey {
    tenant_wrap: Key32,
    secret_wrap: Key32,
    check_value: String,
}

impl MasterKey {
    /// Parses 64 hex characters, allowing one trailing newline (as `openssl rand -hex 32 >
    /// file` writes it).
    pub fn from_hex(text: &str) -> Result<Self, MasterKeyError> {
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let mut raw = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, raw.as_mut()).map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self::from_bytes(&raw))
    }

    fn from_bytes(raw: &[u8; 32]) -> Self {
        let check = Self::derive(raw, "data-vault/v1/key-check");
        Self {
            tenant_wrap: Self::derive(raw, "data-vault/v1/tenant-key-wrap"),
            secret_wrap: Self::derive(raw, "data-vault/v1/client-secret-wrap"),
            // Always `Some`: 16 bytes of a 32-byte key.
            check_value: check
                .first_chunk::<16>()
                .map(hex::encode)
                .unwrap_or_default(),
        }
    }

    /// A new random key in its file form: 64 hex characters and a newline.
    pub fn generate_hex() -> Zeroizing<String> {
        let key = random_key();
        Zeroizing::new(format!("{}\n", hex::encode(key.as_ref())))
    }

    fn derive(master: &[u8; 32], label: &str) -> Key32 {
        // HMAC accepts any key length; the fallback only keeps this total.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(master)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(label.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// A public fingerprint recorded in the database, so that starting with the wrong master
    /// key fails loudly at start-up instead of on the first read.
    pub fn check_value(&self) -> &str {
        &self.check_value
    }

    /// The key's public id: the first 16 hex characters of its check value. Stored beside
    /// everything the key wraps, so a keyring opens each with the right key.
    pub fn key_id(&self) -> &str {
        key_id_of_check(&self.check_value)
    }

    fn tenant_aad(tenant: &str, version: i64) -> Vec<u8> {
        encode_fields(
            "data-vault tenant-key v1",
            &[Some(tenant.as_bytes()), Some(&version.to_be_bytes())],
        )
    }

    pub fn wrap_tenant_key(
        &self,
        tenant: &str,
        version: i64,
        key: &TenantKey,
    ) -> Result<Vec<u8>, CryptoError> {
        aead::seal(
            &self.tenant_wrap,
            &Self::tenant_aad(tenant, version),
            key.0.as_ref(),
        )
    }

    pub fn unwrap_tenant_key(
        &self,
        tenant: &str,
        version: i64,
        wrapped: &[u8],
    ) -> Result<TenantKey, CryptoError> {
        let raw = aead::open(
            &self.tenant_wrap,
            &Self::tenant_aad(tenant, version),
            wrapped,
        )?;
        key_from_vec(raw).map(TenantKey)
    }

    /// Seals an HMAC client secret, bound to the client's name and secret slot.
    pub fn seal_client_secret(
        &self,
        client: &str,
        slot: i64,
        secret: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let aad = encode_fields(
            "data-vault client-secret v1",
            &[Some(client.as_bytes()), Some(&slot.to_be_bytes())],
        );
        aead::seal(&self.secret_wrap, &aad, secret)
    }

    pub fn open_client_secret(
        &self,
        client: &str,
        slot: i64,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let aad = encode_fields(
            "data-vault client-secret v1",
            &[Some(client.as_bytes()), Some(&slot.to_be_bytes())],
        );
        aead::open(&self.secret_wrap, &aad, sealed).map(Zeroizing::new)
    }
}

/// The key id a check value stands for (its first 16 hex characters).
pub fn key_id_of_check(check_value: &str) -> &str {
    check_value.get(..16).unwrap_or(check_value)
}

/// A tenant's key: wraps the data keys of that tenant's blobs. Destroying every version of it
/// crypto-erases the tenant.
pub struct TenantKey(Key32);

impl TenantKey {
    pub fn generate() -> Self {
        Self(random_key())
    }

    pub fn wrap_data_key(
        &self,
        binding: &BlobBinding<'_>,
        key: &DataKey,
    ) -> Result<Vec<u8>, CryptoError> {
        aead::seal(
            &self.0,
            &binding.aad("data-vault data-key v1"),
            key.0.as_ref(),
        )
    }

    pub fn unwrap_data_key(
        &self,
        binding: &BlobBinding<'_>,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        let raw = aead::open(&self.0, &binding.aad("data-vault data-key v1"), wrapped)?;
        key_from_vec(raw).map(DataKey)
    }
}

/// What a sealed blob is bound to: a row whose id, owner, org or scope changed does not open.
#[derive(Debug, Clone, Copy)]
pub struct BlobBinding<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub org: Option<&'a str>,
    pub scope: &'a str,
}

impl BlobBinding<'_> {
    pub(super) fn aad(&self, label: &str) -> Vec<u8> {
        encode_fields(
            label,
            &[
                Some(self.id.as_bytes()),
                Some(self.owner.as_bytes()),
                self.org.map(str::as_bytes),
                Some(self.scope.as_bytes()),
            ],
        )
    }
}

/// A fresh key for one blob.
pub struct DataKey(Key32);

/// One blob as stored: its sealed bytes and its data key wrapped by the tenant key.
pub struct SealedBlob {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
}

impl DataKey {
    /// A fresh key, for a blob stored in chunks (`super::chunks`).
    pub fn generate() -> Self {
        Self(random_key())
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seals `envelope` under a fresh data key, wrapped by `tenant`.
    pub fn seal_new(
        tenant: &TenantKey,
        binding: &BlobBinding<'_>,
        envelope: &[u8],
    ) -> Result<SealedBlob, CryptoError> {
        let key = Self(random_key());
        Ok(SealedBlob {
            ciphertext: aead::seal(&key.0, &binding.aad("data-vault blob v1"), envelope)?,
            wrapped_key: tenant.wrap_data_key(binding, &key)?,
        })
    }

    pub fn open(
        &self,
        binding: &BlobBinding<'_>,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        aead::open(&self.0, &binding.aad("data-vault blob v1"), ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex()).unwrap()
    }

    fn binding<'a>(owner: &'a str, org: Option<&'a str>) -> BlobBinding<'a> {
        BlobBinding {
            id: "b1",
            owner,
            org,
            scope: "veid",
        }
    }

    #[test]
    fn blob_round_trips_through_the_hierarchy() {
        let master = master();
        let tenant = TenantKey::generate();
        let wrapped_tenant = master.wrap_tenant_key("org:acme", 1, &tenant).unwrap();
        let sealed = DataKey::seal_new(&tenant, &binding("alice", Some("acme")), b"age").unwrap();

        let tenant = master
            .unwrap_tenant_key("org:acme", 1, &wrapped_tenant)
            .unwrap();
        let key = tenant
            .unwrap_data_key(&binding("alice", Some("acme")), &sealed.wrapped_key)
            .unwrap();
        assert_eq!(
            key.open(&binding("alice", Some("acme")), &sealed.ciphertext)
                .unwrap(),
            b"age"
        );
    }

    #[test]
    fn a_row_moved_to_another_owner_or_org_does_not_open() {
        let tenant = TenantKey::generate();
        let sealed = DataKey::seal_new(&tenant, &binding("alice", Some("acme")), b"age").unwrap();
        for moved in [
            binding("mallory", Some("acme")),
            binding("alice", None),
            binding("alice", Some("evil")),
        ] {
            assert!(tenant.unwrap_data_key(&moved, &sealed.wrapped_key).is_err());
        }
    }

    #[test]
    fn tenant_key_of_one_tenant_does_not_unwrap_as_another() {
        let master = master();
        let wrapped = master
            .wrap_tenant_key("org:acme", 1, &TenantKey::generate())
            .unwrap();
        assert!(master.unwrap_tenant_key("org:evil", 1, &wrapped).is_err());
        assert!(master.unwrap_tenant_key("org:acme", 2, &wrapped).is_err());
    }

    #[test]
    fn master_key_parsing_accepts_one_trailing_newline_only() {
        let hex = "ab".repeat(32);
        assert!(MasterKey::from_hex(&hex).is_ok());
        assert!(MasterKey::from_hex(&format!("{hex}\n")).is_ok());
        assert!(MasterKey::from_hex(&format!("{hex}\n\n")).is_err());
        assert!(MasterKey::from_hex(&hex[..62]).is_err());
        assert_eq!(
            MasterKey::from_hex(&hex).unwrap().check_value(),
            MasterKey::from_hex(&format!("{hex}\n"))
                .unwrap()
                .check_value()
        );
    }

    #[test]
    fn client_secrets_are_bound_to_name_and_slot() {
        let master = master();
        let sealed = master.seal_client_secret("svc", 1, b"s3cret").unwrap();
        assert_eq!(
            master
                .open_client_secret("svc", 1, &sealed)
                .unwrap()
                .as_slice(),
            b"s3cret"
        );
        assert!(master.open_client_secret("svc", 2, &sealed).is_err());
        assert!(master.open_client_secret("other", 1, &sealed).is_err());
    }
}
