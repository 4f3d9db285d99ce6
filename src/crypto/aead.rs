//! The at-rest cipher, from its own crate (`aead/`), which says why it lives there.

pub use data_vault_aead::{open, seal, CryptoError, InPlace, NONCE_LEN, TAG_LEN};
