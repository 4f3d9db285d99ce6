//! XChaCha20-Poly1305, the one cipher data-vault seals with at rest: whole, with a random
//! 192-bit nonce stored as `nonce || ciphertext || tag` (keys and small blobs), or in place
//! under a nonce the caller derives (the chunks of a large blob).
//!
//! A crate of its own for one reason: the cipher is generic code, compiled where it is first
//! used with concrete types. Here, the workspace's dev profile optimises it, so that debug
//! builds (and the tests that move gigabytes through them) seal at the speed of release
//! builds instead of tens of times slower.

use chacha20poly1305::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

/// Bytes of the random nonce in front of a whole seal.
pub const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag.
pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed data does not open: wrong key, or data moved from where it was sealed")]
    Open,
    #[error("encryption failed")]
    Seal,
}

/// Seals `plaintext` under a fresh random nonce: `nonce || ciphertext || tag`. Random nonces
/// of this size are safe for any number of messages under one key.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Seal)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens what [`seal`] made.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Open);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Open)
}

/// A key set up once for sealing or opening many pieces in place.
pub struct InPlace(XChaCha20Poly1305);

impl InPlace {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(key.into()))
    }

    /// Encrypts `buffer` in place and returns its tag. The caller guarantees that `nonce` is
    /// never used twice with this key.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        self.0
            .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, buffer)
            .map(Into::into)
            .map_err(|_| CryptoError::Seal)
    }

    /// Decrypts `buffer` in place if `tag` authenticates it (and `aad`); on failure `buffer`
    /// holds nothing of the plaintext.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        self.0
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, buffer, Tag::from_slice(tag))
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seals_round_trip_and_bind_their_aad() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"aad", b"secret").unwrap();
        assert_eq!(open(&key, b"aad", &sealed).unwrap(), b"secret");
        assert_eq!(open(&key, b"other", &sealed), Err(CryptoError::Open));
        assert_eq!(open(&[8u8; 32], b"aad", &sealed), Err(CryptoError::Open));
        assert_eq!(open(&key, b"aad", &sealed[..10]), Err(CryptoError::Open));
    }

    #[test]
    fn in_place_seals_round_trip_and_fail_on_any_change() {
        let cipher = InPlace::new(&[1u8; 32]);
        let nonce = [3u8; NONCE_LEN];
        let mut buffer = b"chunk of a blob".to_vec();
        let tag = cipher.seal(&nonce, b"aad", &mut buffer).unwrap();
        assert_ne!(buffer, b"chunk of a blob");
        let mut opened = buffer.clone();
        cipher.open(&nonce, b"aad", &mut opened, &tag).unwrap();
        assert_eq!(opened, b"chunk of a blob");
        let mut other_nonce = [3u8; NONCE_LEN];
        other_nonce[23] = 1;
        assert!(cipher
            .open(&other_nonce, b"aad", &mut buffer.clone(), &tag)
            .is_err());
        assert!(cipher
            .open(&nonce, b"aaD", &mut buffer.clone(), &tag)
            .is_err());
        let mut flipped = buffer.clone();
        flipped[0] ^= 1;
        assert!(cipher.open(&nonce, b"aad", &mut flipped, &tag).is_err());
    }
}
