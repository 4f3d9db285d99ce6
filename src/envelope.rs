//! Structural check of client envelopes: an upload must be a binary age v1 file, so plaintext
//! is never stored by accident. The header is checked by our own bounded, linear parser
//! ([`header`], which says why not the `age` crate's); the payload is checked for the shape of
//! age's STREAM chunks (each a whole 64 KiB chunk plus its 16-byte tag, the last one shorter),
//! which needs no key. The whole check reads at most 64 KiB of the upload.

mod header;

pub use header::{MAX_HEADER_BYTES, MAX_STANZAS};

/// Size of one STREAM chunk on the wire: 64 KiB of plaintext and a 16-byte tag.
const CHUNK_WITH_TAG: u64 = 64 * 1024 + 16;
const TAG: u64 = 16;
/// The payload nonce between the header and the first chunk.
const PAYLOAD_NONCE: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEnvelope(pub &'static str);

/// Checks that `bytes` is a structurally valid age v1 envelope.
pub fn check(bytes: &[u8]) -> Result<(), InvalidEnvelope> {
    let header_len = check_header(bytes)?;
    check_length(bytes.len() as u64, header_len)
}

/// Checks the header at the start of an envelope, of which `prefix` may be only the first
/// part (a streamed upload); returns the header's length. The header is bounded, so a prefix
/// of more than [`MAX_HEADER_BYTES`] bytes always decides.
pub fn check_header(prefix: &[u8]) -> Result<usize, InvalidEnvelope> {
    if prefix.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        return Err(InvalidEnvelope(
            "ASCII-armored age files are not accepted; upload the binary form (age without -a)",
        ));
    }
    header::parse(prefix)
}

/// Checks the payload's shape once the envelope's whole length (`total`) is known.
pub fn check_length(total: u64, header_len: usize) -> Result<(), InvalidEnvelope> {
    let payload_len = total.saturating_sub(header_len as u64);
    if payload_len >= PAYLOAD_NONCE && payload_shape_is_valid(payload_len - PAYLOAD_NONCE) {
        Ok(())
    } else {
        Err(InvalidEnvelope(
            "age envelope payload is truncated or malformed",
        ))
    }
}

fn payload_shape_is_valid(len: u64) -> bool {
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
    use super::header::{BAD_BODY, TOO_LONG, TOO_MANY_STANZAS};
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn encrypt_to(recipients: &[&dyn age::Recipient], plaintext: &[u8]) -> Vec<u8> {
        let encryptor = age::Encryptor::with_recipients(recipients.iter().copied()).unwrap();
        let mut out = Vec::new();
        let mut writer = encryptor.wrap_output(&mut out).unwrap();
        writer.write_all(plaintext).unwrap();
        writer.finish().unwrap();
        out
    }

    /// An envelope to `recipients` fresh X25519 keys (the crate adds one "grease" stanza).
    fn encrypt_x25519(recipients: usize, plaintext: &[u8]) -> Vec<u8> {
        let keys: Vec<_> = (0..recipients)
            .map(|_| age::x25519::Identity::generate().to_public())
            .collect();
        let dyns: Vec<&dyn age::Recipient> =
            keys.iter().map(|k| k as &dyn age::Recipient).collect();
        encrypt_to(&dyns, plaintext)
    }

    fn encrypt_passphrase(plaintext: &[u8]) -> Vec<u8> {
        let mut recipient = age::scrypt::Recipient::new(secrecy::SecretString::from("pass"));
        recipient.set_work_factor(2);
        encrypt_to(&[&recipient], plaintext)
    }

    /// What the server accepted before this parser: the `age` crate's header parse, the
    /// nonce, and the payload shape. Kept as the reference the new parser is compared with.
    fn crate_accepts(bytes: &[u8]) -> bool {
        let mut rest = bytes;
        age::Decryptor::new_buffered(&mut rest).is_ok() && payload_shape_is_valid(rest.len() as u64)
    }

    /// The smallest valid payload: the nonce and one empty final chunk (its tag alone).
    const EMPTY_PAYLOAD: [u8; 32] = [0; 32];

    /// A synthetic header of `stanzas` X25519-shaped stanzas (43-character argument and body),
    /// with `pad` extra characters on the first stanza's argument, followed by a payload.
    fn synthetic(stanzas: usize, pad: usize) -> Vec<u8> {
        let mut out = b"age-encryption.org/v1\n".to_vec();
        for i in 0..stanzas {
            let extra = if i == 0 {
                "x".repeat(pad)
            } else {
                String::new()
            };
            let stanza = format!("-> X25519 {:0>43}{extra}\n{}\n", i, "A".repeat(43));
            out.extend_from_slice(stanza.as_bytes());
        }
        out.extend_from_slice(format!("--- {}\n", "A".repeat(43)).as_bytes());
        out
    }

    fn with_payload(mut header: Vec<u8>) -> Vec<u8> {
        header.extend_from_slice(&EMPTY_PAYLOAD);
        header
    }

    #[test]
    fn real_age_envelopes_pass() {
        for size in [0, 1, 4096, 64 * 1024, 64 * 1024 + 1, 200_000] {
            let plaintext = vec![7u8; size];
            assert_eq!(check(&encrypt_x25519(1, &plaintext)), Ok(()), "size {size}");
            assert_eq!(check(&encrypt_x25519(3, &plaintext)), Ok(()), "size {size}");
            assert_eq!(
                check(&encrypt_passphrase(&plaintext)),
                Ok(()),
                "size {size}"
            );
        }
        // 255 recipients and the crate's grease stanza make the most stanzas allowed.
        assert_eq!(check(&encrypt_x25519(255, b"for many")), Ok(()));
        assert_eq!(
            check(&encrypt_x25519(256, b"for too many")),
            Err(TOO_MANY_STANZAS)
        );
    }

    #[test]
    fn plaintext_and_truncations_fail() {
        assert!(check(b"hello world").is_err());
        assert!(check(b"").is_err());
        assert!(check(b"{\"json\": true}").is_err());
        assert!(check(&vec![b'a'; 1 << 20]).is_err());
        // 15 bytes of plaintext: a final chunk of 31 bytes after the nonce. Cutting fewer than
        // 16 bytes leaves the shape of a shorter plaintext, which only the key can tell apart.
        let envelope = encrypt_x25519(2, b"secret document");
        for cut in [16, 20, 31, 32, 40, 47] {
            assert!(
                check(&envelope[..envelope.len() - cut]).is_err(),
                "cut {cut}"
            );
        }
        for end in 0..envelope.len() - 15 {
            assert!(check(&envelope[..end]).is_err(), "prefix of {end} bytes");
        }
    }

    #[test]
    fn garbled_headers_fail() {
        let envelope = encrypt_x25519(1, b"secret document");
        let mac_line = envelope.windows(4).position(|w| w == b"--- ").unwrap();
        for (at, byte) in [
            (0, b'A'),
            (21, b'\r'),
            (22, b'+'),
            (24, b'\n'),
            (mac_line + 3, b'='),
        ] {
            let mut garbled = envelope.clone();
            garbled[at] = byte;
            assert!(check(&garbled).is_err(), "byte {at} set to {byte}");
        }
    }

    #[test]
    fn armored_envelopes_get_a_specific_message() {
        let err = check(b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n").unwrap_err();
        assert!(err.0.contains("armored"));
    }

    #[test]
    fn other_stanza_types_are_accepted() {
        // age 1.3's post-quantum stanza has a 1120-byte argument and a 32-byte body; plugin
        // stanzas have arbitrary arguments and bodies of any length.
        let mut header = b"age-encryption.org/v1\n".to_vec();
        header.extend_from_slice(format!("-> mlkem768x25519 {}\n", "A".repeat(1494)).as_bytes());
        header.extend_from_slice(format!("{}\n", "A".repeat(43)).as_bytes());
        header.extend_from_slice(b"-> piv-p256 1mgwOA A8Dwk\n");
        header.extend_from_slice(
            format!("{}\n{}\nAAAA\n", "B".repeat(64), "C".repeat(64)).as_bytes(),
        );
        header.extend_from_slice(b"-> example.com/enigma\n\n");
        header.extend_from_slice(format!("--- {}\n", "A".repeat(43)).as_bytes());
        let envelope = with_payload(header);
        assert_eq!(check(&envelope), Ok(()));
        assert!(crate_accepts(&envelope), "the reference agrees");
    }

    #[test]
    fn at_most_256_stanzas() {
        assert_eq!(check(&with_payload(synthetic(1, 0))), Ok(()));
        assert_eq!(check(&with_payload(synthetic(MAX_STANZAS, 0))), Ok(()));
        assert_eq!(
            check(&with_payload(synthetic(MAX_STANZAS + 1, 0))),
            Err(TOO_MANY_STANZAS)
        );
        // The count stops the scan: thousands more stanzas are never looked at.
        let mut bomb = synthetic(MAX_STANZAS + 1, 0);
        bomb.truncate(bomb.len() - 48);
        bomb.extend_from_slice(&b"\xff".repeat(1 << 20));
        assert_eq!(check(&bomb), Err(TOO_MANY_STANZAS));
    }

    #[test]
    fn header_of_64_kib_passes_and_one_byte_more_does_not() {
        let base = synthetic(100, 0).len();
        let exact = synthetic(100, MAX_HEADER_BYTES - base);
        assert_eq!(exact.len(), MAX_HEADER_BYTES);
        assert_eq!(check(&with_payload(exact)), Ok(()));
        let over = synthetic(100, MAX_HEADER_BYTES - base + 1);
        assert_eq!(check(&with_payload(over)), Err(TOO_LONG));
        // A header that never ends is refused as too long, not read to its end.
        let mut endless = b"age-encryption.org/v1\n-> X25519 ".to_vec();
        endless.extend_from_slice(&vec![b'x'; 5 << 20]);
        assert_eq!(check(&endless), Err(TOO_LONG));
    }

    #[test]
    fn payload_shapes() {
        assert!(!payload_shape_is_valid(15));
        assert!(payload_shape_is_valid(16));
        assert!(payload_shape_is_valid(CHUNK_WITH_TAG));
        assert!(!payload_shape_is_valid(CHUNK_WITH_TAG + 16));
        assert!(!payload_shape_is_valid(CHUNK_WITH_TAG + 5));
        assert!(payload_shape_is_valid(CHUNK_WITH_TAG + 17));
        let header = synthetic(1, 0);
        assert!(check(&with_payload(header.clone())).is_ok());
        let mut nonce_only = header;
        nonce_only.extend_from_slice(&[0; 16]);
        assert!(check(&nonce_only).is_err(), "a nonce without a chunk");
    }

    /// One edit of an envelope: where (as a fraction of its length), what, and which byte.
    #[derive(Debug, Clone)]
    enum Mutation {
        Set(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        // Bytes that matter to the grammar are more likely than others.
        let byte = prop_oneof![prop::sample::select(b"\n -> =+/A".to_vec()), any::<u8>(),];
        let at = any::<usize>();
        prop_oneof![
            (at, byte.clone()).prop_map(|(at, b)| Mutation::Set(at, b)),
            (at, byte).prop_map(|(at, b)| Mutation::Insert(at, b)),
            at.prop_map(Mutation::Remove),
            at.prop_map(Mutation::Truncate),
        ]
    }

    /// Applies `mutation`, aiming at the header (the first 300 bytes) most of the time.
    fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
        let pick = |at: usize, len: usize| {
            if len == 0 {
                0
            } else if at % 4 == 0 {
                at % len
            } else {
                at % len.min(300)
            }
        };
        match *mutation {
            Mutation::Set(at, b) if !bytes.is_empty() => {
                let i = pick(at, bytes.len());
                bytes[i] = b;
            }
            Mutation::Insert(at, b) => {
                let i = pick(at, bytes.len() + 1);
                bytes.insert(i, b);
            }
            Mutation::Remove(at) if !bytes.is_empty() => {
                let i = pick(at, bytes.len());
                bytes.remove(i);
            }
            Mutation::Truncate(at) => bytes.truncate(pick(at, bytes.len() + 1)),
            _ => {}
        }
    }

    proptest! {
        // Encryption is slow in unoptimised test builds; 64 envelopes cover the shapes.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn envelopes_from_the_age_crate_always_pass(
            recipients in 0usize..6,
            size in prop_oneof![0usize..2048, 65_500usize..65_600, 131_000usize..131_200],
        ) {
            let plaintext = vec![0x42u8; size];
            let envelope = if recipients == 0 {
                encrypt_passphrase(&plaintext)
            } else {
                encrypt_x25519(recipients, &plaintext)
            };
            prop_assert_eq!(check(&envelope), Ok(()));
        }

        /// Mutated envelopes never panic the check, and it agrees with the crate's parser:
        /// whatever it accepts the crate accepts, and what only the crate accepts is the
        /// legacy stanza body (a last line of a full 64 columns) the spec now forbids.
        #[test]
        fn mutations_never_panic_and_agree_with_the_crate(
            recipients in 1usize..4,
            size in 0usize..300,
            mutations in prop::collection::vec(mutation(), 1..4),
        ) {
            let mut envelope = encrypt_x25519(recipients, &vec![1u8; size]);
            for m in &mutations {
                apply(&mut envelope, m);
            }
            let ours = check(&envelope);
            let reference = crate_accepts(&envelope);
            if ours.is_ok() {
                prop_assert!(reference, "accepted what the crate refuses");
            } else if reference {
                prop_assert_eq!(ours, Err(BAD_BODY));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            after_version in any::<bool>(),
            tail in prop::collection::vec(
                prop_oneof![prop::sample::select(b"\n -> A=".to_vec()), any::<u8>()],
                0..600,
            ),
        ) {
            let mut bytes = if after_version {
                b"age-encryption.org/v1\n".to_vec()
            } else {
                Vec::new()
            };
            bytes.extend_from_slice(&tail);
            let _ = check(&bytes);
        }
    }
}
