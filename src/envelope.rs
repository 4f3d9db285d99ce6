//! Structural check of client envelopes: an upload must be a binary age v1 file, so plaintext
//! is never stored by accident. The header is parsed by the `age` crate itself; the payload
//! is checked for the shape of age's STREAM chunks (each a whole 64 KiB chunk plus its
//! 16-byte tag, the last one shorter), which needs no key.

/// Size of one STREAM chunk on the wire: 64 KiB of plaintext and a 16-byte tag.
const CHUNK_WITH_TAG: usize = 64 * 1024 + 16;
const TAG: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEnvelope(pub &'static str);

/// Checks that `bytes` is a structurally valid age v1 envelope.
pub fn check(bytes: &[u8]) -> Result<(), InvalidEnvelope> {
    if bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Err(InvalidEnvelope(
            "ASCII-armored age files are not accepted; upload the binary form (age without -a)",
        ));
    }
    let mut rest = bytes;
    age::Decryptor::new_buffered(&mut rest).map_err(|_| {
        InvalidEnvelope("payload is not an age v1 envelope (age-encryption.org/v1)")
    })?;
    // `rest` now starts after the header and the 16-byte payload nonce.
    if payload_shape_is_valid(rest.len()) {
        Ok(())
    } else {
        Err(InvalidEnvelope(
            "age envelope payload is truncated or malformed",
        ))
    }
}

fn payload_shape_is_valid(len: usize) -> bool {
    if len < TAG {
        return false;
    }
    match len % CHUNK_WITH_TAG {
        // Ends on a whole chunk: fine (the last chunk was full).
        0 => true,
        // A trailing piece too short to hold a tag.
        last if last < TAG => false,
        // An empty final chunk is allowed only when it is the only chunk.
        TAG => len == TAG,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn encrypt(plaintext: &[u8]) -> Vec<u8> {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::new();
        let mut writer = encryptor.wrap_output(&mut out).unwrap();
        writer.write_all(plaintext).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn real_age_envelopes_pass() {
        for size in [0, 1, 4096, 64 * 1024, 64 * 1024 + 1, 200_000] {
            assert_eq!(check(&encrypt(&vec![7u8; size])), Ok(()), "size {size}");
        }
    }

    #[test]
    fn plaintext_and_truncations_fail() {
        assert!(check(b"hello world").is_err());
        assert!(check(b"").is_err());
        assert!(check(b"{\"json\": true}").is_err());
        let envelope = encrypt(b"secret document");
        assert!(check(&envelope[..envelope.len() - 20]).is_err());
        assert!(check(&envelope[..40]).is_err());
    }

    #[test]
    fn armored_envelopes_get_a_specific_message() {
        let err = check(b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n").unwrap_err();
        assert!(err.0.contains("armored"));
    }

    #[test]
    fn payload_shapes() {
        assert!(!payload_shape_is_valid(15));
        assert!(payload_shape_is_valid(16));
        assert!(payload_shape_is_valid(CHUNK_WITH_TAG));
        assert!(!payload_shape_is_valid(CHUNK_WITH_TAG + 16));
        assert!(!payload_shape_is_valid(CHUNK_WITH_TAG + 5));
        assert!(payload_shape_is_valid(CHUNK_WITH_TAG + 17));
    }
}
