//! At-rest key hierarchy (DESIGN §7): the master key wraps per-tenant keys, a tenant key wraps
//! per-blob data keys, and a data key seals one stored envelope. Every seal binds what it
//! protects through its AAD, so ciphertext moved to another row, tenant or owner does not open.
//! All key material lives in zeroizing buffers.

mod aead;
pub mod chunks;
mod keyring;
mod keys;

pub use aead::CryptoError;
pub use keyring::MasterKeyring;
pub use keys::{
    key_id_of_check, BlobBinding, DataKey, MasterKey, MasterKeyError, SealedBlob, TenantKey,
};
