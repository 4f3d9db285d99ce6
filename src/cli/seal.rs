//! Sealing a plaintext of any size for upload in flat memory: age encrypts it into an unnamed
//! temporary file while the ciphertext is hashed, because a streamed upload signs the body's
//! SHA-256 before its first byte is sent (DESIGN §6, §18); the file is then streamed up.

use super::client::VaultClient;
use anyhow::Context;
use bytes::BytesMut;
use sha2::{Digest, Sha256};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

/// Plaintext passes through one buffer of this size, wiped when the copy ends.
const PLAINTEXT_BUFFER: usize = 64 * 1024;
/// Bytes per piece read from the temporary file for a streamed upload (and per write to it).
const UPLOAD_PIECE: usize = 256 * 1024;

/// An age envelope in a temporary file, with its length and SHA-256 (lower-case hex).
pub(super) struct Sealed {
    file: std::fs::File,
    pub len: u64,
    pub sha256_hex: String,
}

/// Which side of a plaintext copy failed: the source (a file, standard input, a download
/// being decrypted) or the destination.
pub(super) enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` into `to` through one buffer that is wiped afterwards; returns the bytes
/// copied. `io::copy` would leave the last plaintext in a stack buffer.
pub(super) fn copy_plaintext(from: &mut dyn Read, to: &mut dyn Write) -> Result<u64, CopyError> {
    let mut buffer = Zeroizing::new(vec![0u8; PLAINTEXT_BUFFER]);
    let mut copied = 0u64;
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let piece = buffer.get(..read).unwrap_or_default();
        to.write_all(piece).map_err(CopyError::Write)?;
        copied = copied.saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
    }
}

fn parse_recipients(recipients: &[String]) -> anyhow::Result<Vec<age::x25519::Recipient>> {
    recipients
        .iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r)
                .map_err(|e| anyhow::anyhow!("invalid age recipient {r:?}: {e}"))
        })
        .collect()
}

/// Hashes what passes through it on the way to `inner`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(buf.get(..written).unwrap_or(buf));
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Encrypts everything `plaintext` yields to `recipients` into a temporary file in the system
/// temporary directory (`TMPDIR`). The file never has a name (it is unlinked as it is created),
/// so it goes with the process however that ends, kill -9 included, and no other process can
/// open it. Blocking: call it off the async workers.
pub(super) fn seal(plaintext: &mut dyn Read, recipients: &[String]) -> anyhow::Result<Sealed> {
    let recipients = parse_recipients(recipients)?;
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))?;
    let file = tempfile::tempfile()
        .context("cannot create a temporary file for the envelope (is TMPDIR writable?)")?;
    let mut hashed = Hashing {
        inner: BufWriter::with_capacity(UPLOAD_PIECE, file),
        hasher: Sha256::new(),
    };
    let unwritable = |e: io::Error| {
        anyhow::Error::new(e).context("cannot write the envelope to its temporary file")
    };
    let mut writer = encryptor.wrap_output(&mut hashed).map_err(unwritable)?;
    copy_plaintext(plaintext, &mut writer).map_err(|e| match e {
        CopyError::Read(e) => anyhow::Error::new(e).context("cannot read the plaintext"),
        CopyError::Write(e) => unwritable(e),
    })?;
    writer.finish().map_err(unwritable)?;
    let Hashing { inner, hasher } = hashed;
    let mut file = inner.into_inner().map_err(|e| unwritable(e.into_error()))?;
    file.rewind().map_err(unwritable)?;
    let len = file.metadata().map_err(unwritable)?.len();
    Ok(Sealed {
        file,
        len,
        sha256_hex: hex::encode(hasher.finalize()),
    })
}

/// Seals the file at `path`, or standard input for "-", on a blocking thread.
pub(super) async fn seal_input(path: PathBuf, recipients: Vec<String>) -> anyhow::Result<Sealed> {
    tokio::task::spawn_blocking(move || {
        if path == Path::new("-") {
            return seal(&mut io::stdin().lock(), &recipients)
                .context("cannot encrypt standard input");
        }
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        seal(&mut file, &recipients).with_context(|| format!("cannot encrypt {}", path.display()))
    })
    .await
    .context("the encrypting thread failed")?
}

impl Sealed {
    /// The envelope as a request body, read from the file in pieces as the connection takes
    /// them.
    fn into_body(self) -> reqwest::Body {
        let file = tokio::fs::File::from_std(self.file);
        reqwest::Body::wrap_stream(futures_util::stream::try_unfold(
            file,
            |mut file| async move {
                let mut piece = BytesMut::with_capacity(UPLOAD_PIECE);
                let read = file.read_buf(&mut piece).await?;
                Ok::<_, io::Error>((read > 0).then(|| (piece.freeze(), file)))
            },
        ))
    }

    /// The whole envelope in memory, when it is at most `max` bytes (a JSON upload).
    pub(super) fn into_bytes(mut self, max: usize) -> anyhow::Result<Vec<u8>> {
        let len = usize::try_from(self.len).unwrap_or(usize::MAX);
        if len > max {
            anyhow::bail!("the envelope is {len} bytes, more than the {max} a JSON body carries");
        }
        let mut bytes = Vec::with_capacity(len);
        self.file
            .read_to_end(&mut bytes)
            .context("cannot read the envelope back from its temporary file")?;
        Ok(bytes)
    }

    /// Uploads the envelope raw (`POST /api/v1/vault/blobs` with `query`), streamed from its
    /// file; the answer when it is a success.
    pub(super) async fn upload(
        self,
        client: &VaultClient,
        query: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let (len, hash) = (self.len, self.sha256_hex.clone());
        client
            .call_streamed("/api/v1/vault/blobs", query, self.into_body(), len, &hash)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_envelope_is_hashed_as_written_and_opens_to_the_plaintext() {
        let identity = age::x25519::Identity::generate();
        let plaintext: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let sealed = seal(
            &mut plaintext.as_slice(),
            &[identity.to_public().to_string()],
        )
        .unwrap();
        let hash = sealed.sha256_hex.clone();
        let len = sealed.len;
        let envelope = sealed.into_bytes(usize::MAX).unwrap();
        assert_eq!(u64::try_from(envelope.len()).unwrap(), len);
        assert_eq!(hex::encode(Sha256::digest(&envelope)), hash);
        let opened = age::decrypt(&identity, &envelope).unwrap();
        assert!(opened == plaintext);
    }

    #[test]
    fn a_bad_recipient_is_named() {
        let error = seal(&mut &b"x"[..], &["age1nope".to_owned()])
            .err()
            .unwrap();
        assert!(error.to_string().contains("age1nope"), "{error}");
    }

    #[test]
    fn an_envelope_above_the_json_bound_is_not_read_back() {
        let identity = age::x25519::Identity::generate();
        let sealed = seal(&mut &[7u8; 1000][..], &[identity.to_public().to_string()]).unwrap();
        assert!(sealed.into_bytes(100).is_err());
    }
}
