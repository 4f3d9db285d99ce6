//! Request authentication for data-vault: the canonical strings both schemes sign, the
//! verification the server runs, and the signing helpers clients use. Pure: no I/O, no clock.

pub mod headers;
pub mod hmac_scheme;
pub mod timestamp;
pub mod wallet;

use sha2::{Digest, Sha256};

pub use hmac_scheme::{HmacError, HmacRequest};
pub use timestamp::{check_window, WindowError, MAX_AGE_SECS, MAX_AHEAD_SECS};
pub use wallet::{
    address_from_public_key, body_hash_field, sign_doc, WalletError, WalletRequest,
    WalletSetupError, WalletSigner, WalletVerifier, COSMOS_HD_PATH, DEFAULT_PREFIX,
};

/// Hex SHA-256 of `bytes`, lowercase: the form of `X-VE-Content-SHA256`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `nonce` has the documented shape: 16 to 64 hexadecimal characters.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}
