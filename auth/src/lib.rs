//! Request authentication for data-vault: the canonical strings both schemes sign, the
//! verification the server runs, and the signing helpers clients use. Pure: no I/O, no clock.

pub mod headers;
pub mod hmac_scheme;
pub mod timestamp;
pub mod wallet;

use sha2::{Digest, Sha256};

pub use hmac_scheme::{parse_signature, HmacError, HmacRequest};
pub use timestamp::{check_window, WindowError, MAX_AGE_SECS, MAX_AHEAD_SECS};
pub use wallet::{
    address_from_public_key, body_hash_field, sign_doc, WalletError, WalletRequest,
    WalletSetupError, WalletSigner, WalletVerifier, COSMOS_HD_PATH, DEFAULT_PREFIX,
};

/// Hex SHA-256 of `bytes`, lowercase: the form of `X-VE-Content-SHA256`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decodes exactly 64 lower-case hexadecimal characters, the only spelling of
/// `X-VE-Content-SHA256` and `X-VE-Signature`: a second spelling of the same bytes would be a
/// second signed string for one request.
pub fn parse_lower_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Whether `nonce` has the documented shape: 16 to 64 hexadecimal characters.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_signatures_are_lower_case_hex_only() {
        let lower = sha256_hex(b"");
        assert_eq!(
            parse_lower_hex_32(&lower).map(hex::encode),
            Some(lower.clone())
        );
        assert_eq!(parse_lower_hex_32(&lower.to_uppercase()), None);
        let mut mixed = lower.clone();
        mixed.replace_range(0..1, "E");
        assert_eq!(parse_lower_hex_32(&mixed), None);
        assert_eq!(parse_lower_hex_32(&lower[..62]), None);
        assert_eq!(parse_lower_hex_32(&format!("{lower}00")), None);
        assert_eq!(parse_lower_hex_32(&format!("{}zz", &lower[..62])), None);
        assert_eq!(parse_lower_hex_32(&format!("+{}", &lower[..63])), None);
    }
}
