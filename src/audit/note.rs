//! Signed checkpoints (DESIGN §16): the C2SP `tlog-checkpoint` body signed as a C2SP
//! `signed-note` with the Ed25519 log key.
//!
//! A note is the body text (ending in a newline), an empty line, then one line per signature,
//! `— <key name> <base64(key id ‖ signature)>`. The key id is the first 4 bytes of
//! SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key); the verifier key is written
//! `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
//!
//! Why hand-written: the `signed_note` crate (0.2) takes the private key only as Go's
//! `PRIVATE+KEY+...` string, an unzeroized `String`, and brings a second generation of
//! base64 and thiserror; producing and checking one Ed25519 line is the few lines below,
//! checked in the tests against the C2SP example key and, in `tests/api`, by Node's crypto.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The algorithm byte of Ed25519 keys in signed notes.
const ED25519: u8 = 0x01;
/// Most bytes of a note the witness accepts.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed log key: {0}")]
    BadKey(&'static str),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("the note carries no signature by {0}")]
    Unsigned(String),
    #[error("the note's signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

/// The log key: an Ed25519 key under a name. The seed is zeroized when dropped (the
/// `zeroize` feature of ed25519-dalek).
pub struct LogKey {
    name: String,
    signing: SigningKey,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.verifier().key_id))
            .finish_non_exhaustive()
    }
}

/// A key name is non-empty UTF-8 without whitespace or `+`.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadKey(
            "the name must be 1-256 characters, no spaces or '+'",
        ));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public);
    let digest: [u8; 32] = h.finalize().into();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0u8; 4]));
    id
}

impl LogKey {
    /// The key from its 32-byte seed written as 64 hex characters (a trailing newline allowed).
    pub fn from_hex(name: &str, text: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, seed.as_mut())
            .map_err(|_| NoteError::BadKey("the seed must be 64 hex characters"))?;
        Ok(Self {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// A fresh seed, as 64 hex characters.
    pub fn generate_hex() -> Zeroizing<String> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
        Zeroizing::new(hex::encode(seed.as_ref()))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        let public = self.signing.verifying_key();
        NoteVerifier {
            name: self.name.clone(),
            key_id: key_id(&self.name, public.as_bytes()),
            key: public,
        }
    }

    /// Signs `body` (which must end in a newline) into a note.
    pub fn sign(&self, body: &str) -> String {
        let signature = self.signing.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.verifier().key_id);
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A verifier key of a signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl std::fmt::Display for NoteVerifier {
    /// `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(raw)
        )
    }
}

impl NoteVerifier {
    /// Parses `<name>+<hex key id>+<base64(0x01 ‖ public key)>`, checking the id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        // The name holds no '+'; base64 may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected name+keyid+key"));
        };
        check_name(name)?;
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("the key is not base64"))?;
        let Some((&ED25519, public)) = raw.split_first() else {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 key has 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::BadKey("not a valid Ed25519 point"))?;
        let key_id = key_id(name, &public);
        if hex::encode(key_id) != id {
            return Err(NoteError::BadKey("the key id does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The body of `note` once a signature by this key verifies on it.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("too long"));
        }
        let Some(split) = note.rfind("\n\n") else {
            return Err(NoteError::Malformed("no signature block"));
        };
        let (body, signatures) = note.split_at(split.saturating_add(1));
        let signatures = signatures.strip_prefix('\n').unwrap_or(signatures);
        if !signatures.ends_with('\n') {
            return Err(NoteError::Malformed(
                "the signature block must end in a newline",
            ));
        }
        let mut found = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(NoteError::Malformed(
                    "a signature line must start with '— '",
                ));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed(
                    "a signature line needs a name and a signature",
                ));
            };
            if name != self.name {
                continue;
            }
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            let Some((id, signature)) = blob.split_at_checked(4) else {
                return Err(NoteError::Malformed("a signature is too short"));
            };
            if id != self.key_id {
                continue;
            }
            found = true;
            let signature = ed25519_dalek::Signature::from_slice(signature)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            self.key
                .verify_strict(body.as_bytes(), &signature)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        }
        if found {
            Ok(body)
        } else {
            Err(NoteError::Unsigned(self.name.clone()))
        }
    }
}

/// A C2SP `tlog-checkpoint` body: origin, tree size, base64 root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body; extension lines after the root are allowed and ignored.
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::BadCheckpoint("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(NoteError::BadCheckpoint("empty origin"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(NoteError::BadCheckpoint("the size is not a decimal number"));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::BadCheckpoint("the size is out of range"))?;
        let root: [u8; 32] = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::BadCheckpoint("the root is not 32 base64 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    #[test]
    fn a_note_signed_by_the_log_key_opens_with_its_verifier_key() {
        let key = LogKey::from_hex("data-vault", SEED).unwrap();
        let verifier = NoteVerifier::parse(&key.verifier().to_string()).unwrap();
        let checkpoint = Checkpoint {
            origin: "data-vault/org:acme".into(),
            size: 3,
            root: [9u8; 32],
        };
        let note = key.sign(&checkpoint.body());
        let body = verifier.open(&note).unwrap();
        assert_eq!(Checkpoint::parse(body).unwrap(), checkpoint);
        // A changed body, another key, or no signature by our name: refused.
        let tampered = note.replace("\n3\n", "\n4\n");
        assert!(matches!(
            verifier.open(&tampered),
            Err(NoteError::BadSignature(_))
        ));
        let other = LogKey::from_hex("data-vault", &"11".repeat(32)).unwrap();
        assert!(matches!(
            other.verifier().open(&note),
            Err(NoteError::Unsigned(_))
        ));
        let renamed = LogKey::from_hex("someone", SEED).unwrap();
        assert!(matches!(
            renamed.verifier().open(&note),
            Err(NoteError::Unsigned(_))
        ));
    }

    #[test]
    fn the_verifier_key_has_the_c2sp_form() {
        let key = LogKey::from_hex("data-vault", SEED).unwrap();
        let text = key.verifier().to_string();
        // RFC 8032 test 1's public key behind the 0x01 algorithm byte.
        let expected_key = B64.encode(
            [
                &[1u8][..],
                &hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                    .unwrap(),
            ]
            .concat(),
        );
        assert!(text.starts_with("data-vault+"));
        assert!(text.ends_with(&format!("+{expected_key}")));
        let mut bad = text.clone();
        bad.replace_range(11..12, if &text[11..12] == "0" { "1" } else { "0" });
        assert!(NoteVerifier::parse(&bad).is_err());
    }

    #[test]
    fn checkpoint_bodies_are_strict() {
        assert!(Checkpoint::parse("o\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n-1\n").is_err());
        assert!(Checkpoint::parse("\n1\n").is_err());
    }

    /// The worked example of docs/audit-format.md, computed there with Python's `hashlib`
    /// and `cryptography` (an implementation that is not ours): our tree, proofs and note
    /// must produce the very same bytes.
    #[test]
    fn the_documented_worked_example_is_what_we_produce() {
        use crate::audit::tree::{self, Frontier, Inputs, Plan};
        let leaves: Vec<[u8; 32]> = (0..5)
            .map(|i| Sha256::digest(format!("leaf {i}")).into())
            .collect();
        assert_eq!(
            hex::encode(leaves[4]),
            "5036d5415fd89f22c593f3a7a10348af3c87b3f13d73373a42f8768e377da3e9"
        );
        let mut frontier = Frontier::default();
        let mut nodes = Vec::new();
        for leaf in &leaves {
            frontier.push(leaf, &mut nodes);
        }
        let stored = Inputs {
            nodes: nodes
                .into_iter()
                .filter(|(id, _)| tree::is_stored(*id))
                .collect(),
            leaves: (0..).zip(leaves.iter().copied()).collect(),
        };
        assert_eq!(
            hex::encode(frontier.root()),
            "5f8b6d7a1c69c5784e2966d821a0e05fa93f34e36ae59aca75fd6f294684b7c8"
        );
        let key = LogKey::from_hex("data-vault", SEED).unwrap();
        assert_eq!(
            key.verifier().to_string(),
            "data-vault+60551f2d+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
        );
        let note = key.sign(
            &Checkpoint {
                origin: "data-vault/org:acme".into(),
                size: 5,
                root: frontier.root(),
            }
            .body(),
        );
        assert_eq!(
            note,
            "data-vault/org:acme\n5\nX4ttehxpxXhOKWbYIaDgX6k/NONq5ZrKdf1vKUaEt8g=\n\n\
             \u{2014} data-vault YFUfLVTescMuI2WhjnnFsEImMxHhFRw3yqmLbBVy+0VOf9vHm+daSAO+ros\
             F+buOHXCg6z+iQDudP6Nsl2w1TWSlbgQ=\n"
        );
        let hexes = |plan: Plan| -> Vec<String> {
            plan.hashes(&stored)
                .unwrap()
                .iter()
                .map(hex::encode)
                .collect()
        };
        assert_eq!(
            hexes(Plan::inclusion(2, 5).unwrap()),
            [
                "f99610c7caae17dd087cbdeb434fdf71e0ce721b243c90c1167f7a482425cd03",
                "34959128c8eb35cc38a329af9116b54ef78c6b044d0687478eab65e4b70078bb",
                "039df592b68e96465c0e6633b2f87ca739048786ff87303a99a73d22cb3031c6",
            ]
        );
        assert_eq!(
            hexes(Plan::consistency(3, 5).unwrap()),
            [
                "1836dab6ed1e36096bea656bb07764e1e03a64aeadbb7033da8a59c2de9ee78a",
                "f99610c7caae17dd087cbdeb434fdf71e0ce721b243c90c1167f7a482425cd03",
                "34959128c8eb35cc38a329af9116b54ef78c6b044d0687478eab65e4b70078bb",
                "039df592b68e96465c0e6633b2f87ca739048786ff87303a99a73d22cb3031c6",
            ]
        );
        assert_eq!(
            hexes(Plan::root(3)),
            ["06e2e1946f3b546e28fec6b7d571e36753bbe5350e820315f0cb6945ec3ead03"]
        );
    }
}
