//! Sealed chunks: how a large blob's envelope is stored in the object store (DESIGN §18).
//!
//! The envelope is cut into chunks of [`CHUNK_PLAINTEXT`] bytes (the last one shorter, and
//! empty only when the whole envelope is) and each is sealed with XChaCha20-Poly1305 under the
//! blob's data key, in the manner of the STREAM construction: the nonce is the chunk's index
//! and a flag saying whether it is the last, and the AAD binds the blob (id, owner, org,
//! scope), the index and the flag again. So a chunk moved within its object, to another
//! object, or an object cut short or extended at a chunk boundary, does not open.
//!
//! The nonce needs no randomness: a data key is fresh for each blob and seals each
//! (index, last) pair once. Rotation rewraps the data key and never reseals the chunks.

use super::aead::{CryptoError, InPlace, NONCE_LEN, TAG_LEN};
use super::keys::{BlobBinding, DataKey};

/// Envelope bytes per chunk.
pub const CHUNK_PLAINTEXT: usize = 64 * 1024;
/// The Poly1305 tag each sealed chunk carries after its ciphertext.
pub const CHUNK_TAG: usize = TAG_LEN;
/// A whole sealed chunk in the object.
pub const CHUNK_SEALED: usize = CHUNK_PLAINTEXT + CHUNK_TAG;

/// How many chunks an envelope of `size` bytes is stored in (an empty one in one empty chunk).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_PLAINTEXT as u64).max(1)
}

/// The length of the object that stores an envelope of `size` bytes.
pub fn sealed_len(size: u64) -> u64 {
    size.saturating_add(chunk_count(size).saturating_mul(CHUNK_TAG as u64))
}

fn nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    let (_, tail) = nonce.split_at_mut(15);
    let (counter, flag) = tail.split_at_mut(8);
    counter.copy_from_slice(&index.to_be_bytes());
    flag.fill(u8::from(last));
    nonce
}

fn aad(binding: &BlobBinding<'_>, index: u64, last: bool) -> Vec<u8> {
    let mut aad = binding.aad("data-vault chunk v1");
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// Seals consecutive chunks of one blob.
pub struct ChunkSealer<'a> {
    cipher: InPlace,
    binding: BlobBinding<'a>,
}

impl<'a> ChunkSealer<'a> {
    pub fn new(key: &DataKey, binding: BlobBinding<'a>) -> Self {
        Self {
            cipher: InPlace::new(key.bytes()),
            binding,
        }
    }

    /// Seals `plaintext`, cut into chunks from index `first`, appending them to `out`. Every
    /// chunk but the last must be whole; the last is flagged as the blob's end when `ends`.
    pub fn seal(
        &self,
        first: u64,
        plaintext: &[u8],
        ends: bool,
        out: &mut Vec<u8>,
    ) -> Result<u64, CryptoError> {
        let pieces: Vec<&[u8]> = if plaintext.is_empty() {
            vec![&[]]
        } else {
            plaintext.chunks(CHUNK_PLAINTEXT).collect()
        };
        let count = pieces.len();
        out.reserve(plaintext.len() + count * CHUNK_TAG);
        for (n, piece) in pieces.into_iter().enumerate() {
            let last = ends && n + 1 == count;
            if !last && piece.len() != CHUNK_PLAINTEXT {
                return Err(CryptoError::Seal);
            }
            let index = first + n as u64;
            let start = out.len();
            out.extend_from_slice(piece);
            let tag = self.cipher.seal(
                &nonce(index, last),
                &aad(&self.binding, index, last),
                out.get_mut(start..).ok_or(CryptoError::Seal)?,
            )?;
            out.extend_from_slice(&tag);
        }
        Ok(count as u64)
    }
}

/// Opens the chunks of one blob, knowing its size (so the last chunk is known too).
pub struct ChunkOpener<'a> {
    cipher: InPlace,
    binding: BlobBinding<'a>,
    chunks: u64,
}

impl<'a> ChunkOpener<'a> {
    pub fn new(key: &DataKey, binding: BlobBinding<'a>, size: u64) -> Self {
        Self {
            cipher: InPlace::new(key.bytes()),
            binding,
            chunks: chunk_count(size),
        }
    }

    /// Opens whole sealed chunks from index `first` (the blob's last chunk may be shorter),
    /// appending the envelope bytes to `out`.
    pub fn open(&self, first: u64, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        for (n, chunk) in sealed.chunks(CHUNK_SEALED).enumerate() {
            let index = first + n as u64;
            if index >= self.chunks || chunk.len() < CHUNK_TAG {
                return Err(CryptoError::Open);
            }
            let last = index + 1 == self.chunks;
            let (ciphertext, tag) = chunk.split_at(chunk.len() - CHUNK_TAG);
            let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| CryptoError::Open)?;
            let start = out.len();
            out.extend_from_slice(ciphertext);
            let opened = self.cipher.open(
                &nonce(index, last),
                &aad(&self.binding, index, last),
                out.get_mut(start..).ok_or(CryptoError::Open)?,
                tag,
            );
            if opened.is_err() {
                out.truncate(start);
                return Err(CryptoError::Open);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(id: &str) -> BlobBinding<'_> {
        BlobBinding {
            id,
            owner: "alice",
            org: Some("acme"),
            scope: "support",
        }
    }

    fn sealed(key: &DataKey, id: &str, envelope: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ChunkSealer::new(key, binding(id))
            .seal(0, envelope, true, &mut out)
            .unwrap();
        out
    }

    fn opened(key: &DataKey, id: &str, size: usize, object: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::new();
        ChunkOpener::new(key, binding(id), size as u64).open(0, object, &mut out)?;
        Ok(out)
    }

    fn envelope(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[test]
    fn sizes_round_trip_and_have_the_computed_length() {
        let key = DataKey::generate();
        for len in [
            0,
            1,
            CHUNK_PLAINTEXT - 1,
            CHUNK_PLAINTEXT,
            CHUNK_PLAINTEXT + 1,
            3 * CHUNK_PLAINTEXT + 7,
        ] {
            let data = envelope(len);
            let object = sealed(&key, "b1", &data);
            assert_eq!(object.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(opened(&key, "b1", len, &object).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn sealing_in_batches_equals_sealing_at_once() {
        let key = DataKey::generate();
        let data = envelope(5 * CHUNK_PLAINTEXT + 3);
        let sealer = ChunkSealer::new(&key, binding("b1"));
        let mut out = Vec::new();
        let (head, tail) = data.split_at(2 * CHUNK_PLAINTEXT);
        assert_eq!(sealer.seal(0, head, false, &mut out).unwrap(), 2);
        assert_eq!(sealer.seal(2, tail, true, &mut out).unwrap(), 4);
        assert_eq!(opened(&key, "b1", data.len(), &out).unwrap(), data);
        // A batch that does not end the blob must hold whole chunks only.
        assert!(sealer.seal(0, &data[..10], false, &mut Vec::new()).is_err());
    }

    #[test]
    fn swapped_moved_cut_or_extended_chunks_do_not_open() {
        let key = DataKey::generate();
        let len = 3 * CHUNK_PLAINTEXT;
        let object = sealed(&key, "b1", &envelope(len));
        let mut swapped = object.clone();
        let (first, rest) = swapped.split_at_mut(CHUNK_SEALED);
        first.swap_with_slice(&mut rest[..CHUNK_SEALED]);
        assert!(opened(&key, "b1", len, &swapped).is_err(), "swapped chunks");
        assert!(
            opened(&key, "b2", len, &object).is_err(),
            "another blob's object"
        );
        assert!(
            opened(&DataKey::generate(), "b1", len, &object).is_err(),
            "another key"
        );
        // Cut at a chunk boundary: the new last chunk was not sealed as the last.
        let cut = &object[..2 * CHUNK_SEALED];
        assert!(
            opened(&key, "b1", 2 * CHUNK_PLAINTEXT, cut).is_err(),
            "cut short"
        );
        // A chunk appended after the last one.
        let mut longer = object.clone();
        longer.extend_from_slice(&object[..CHUNK_SEALED]);
        assert!(opened(&key, "b1", len, &longer).is_err(), "extended");
        let mut flipped = object.clone();
        flipped[CHUNK_SEALED + 5] ^= 1;
        assert!(opened(&key, "b1", len, &flipped).is_err(), "flipped bit");
    }
}
