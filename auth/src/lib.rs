//! Request authentication for data-vault: the canonical strings both schemes sign, the
//! verification the server runs, and the signing helpers clients use. Pure: no I/O, no clock.

pub mod headers;
pub mod hmac_scheme;
pub mod timestamp;

use sha2::{Digest, Sha256};

pub use hmac_scheme::{HmacError, HmacRequest};
pub use timestamp::{check_window, WindowError, MAX_AGE_SECS, MAX_AHEAD_SECS};

/// Hex SHA-256 of `bytes`, lowercase: the form of `X-VE-Content-SHA256`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `nonce` has the documented shape: 16 to 64 hexadecimal characters.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}
