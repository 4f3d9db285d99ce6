//! Opening a downloaded envelope of any size in flat memory. age's `Decryptor` reads
//! synchronously, so the raw download's pieces cross a bounded channel to a blocking thread,
//! which decrypts them as they arrive. A plaintext file is written under a temporary name
//! beside its destination and renamed only once the whole envelope has opened, so a failed
//! download never leaves part of a file under the name asked for.

use super::seal::{copy_plaintext, CopyError};
use anyhow::Context;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Pieces of the download waiting for the decrypting thread: what bounds memory when the
/// network is faster than decryption and the disk.
const QUEUED_PIECES: usize = 4;

/// The age identities of an identity file, read before anything is downloaded so that a bad
/// file costs no (audited) read.
pub(super) struct Identities(age::IdentityFile<age::NoCallbacks>);

impl Identities {
    pub(super) fn load(path: &Path) -> anyhow::Result<Self> {
        age::IdentityFile::from_file(path.to_string_lossy().into_owned())
            .map(Self)
            .with_context(|| format!("cannot read identity file {}", path.display()))
    }
}

/// The download's pieces as a synchronous reader, for the decrypting thread. The channel's
/// end is the end of the input; a broken download arrives as an error.
struct Pieces {
    receiver: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BufRead for Pieces {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(Ok(piece)) => self.current = piece,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount.min(self.current.len()));
    }
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let amount = available.len().min(out.len());
        if let (Some(to), Some(from)) = (out.get_mut(..amount), available.get(..amount)) {
            to.copy_from_slice(from);
        }
        self.consume(amount);
        Ok(amount)
    }
}

/// Sends the download's pieces to the decrypting thread until the body ends, the thread stops
/// reading, or the connection fails (returned, and passed on as the reader's error).
async fn feed(
    response: reqwest::Response,
    sender: mpsc::Sender<io::Result<Bytes>>,
) -> Option<reqwest::Error> {
    let mut body = response.bytes_stream();
    loop {
        let piece = tokio::select! {
            piece = body.next() => piece,
            // The thread stopped reading (an error, or the envelope's last chunk): no need
            // to wait for more.
            () = sender.closed() => return None,
        };
        match piece {
            None => return None,
            Some(Ok(bytes)) => {
                if sender.send(Ok(bytes)).await.is_err() {
                    return None;
                }
            }
            Some(Err(e)) => {
                let _ = sender
                    .send(Err(io::Error::other("the download broke off")))
                    .await;
                return Some(e);
            }
        }
    }
}

/// Decrypts the raw download `response` with `identities` as it arrives and hands the
/// plaintext to `consume`, which runs on a blocking thread. Succeeds only when the whole
/// envelope arrived and opened: age's STREAM refuses a truncated envelope, and a broken
/// connection is an error even when `consume` returned.
pub(super) async fn open<T, F>(
    response: reqwest::Response,
    identities: Identities,
    consume: F,
) -> anyhow::Result<T>
where
    F: FnOnce(&mut dyn Read) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (sender, receiver) = mpsc::channel(QUEUED_PIECES);
    let opener = tokio::task::spawn_blocking(move || {
        let identities = identities
            .0
            .into_identities()
            .map_err(|e| anyhow::anyhow!("invalid identity file: {e}"))?;
        let pieces = Pieces {
            receiver,
            current: Bytes::new(),
        };
        let decryptor =
            age::Decryptor::new_buffered(pieces).context("the blob is not an age envelope")?;
        let mut plaintext = decryptor
            .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .context("cannot decrypt: none of the identities is a recipient of this blob")?;
        consume(&mut plaintext)
    });
    let broken = feed(response, sender).await;
    let opened = opener.await.context("the decrypting thread failed")?;
    if let Some(e) = broken {
        return Err(anyhow::Error::new(e).context("the download broke off"));
    }
    opened
}

/// Where `blob get` writes the plaintext.
pub(super) enum Destination {
    Stdout,
    /// A temporary file (mode 0600) beside `path`, renamed over it on success and deleted
    /// otherwise.
    File {
        staged: tempfile::NamedTempFile,
        path: PathBuf,
    },
}

impl Destination {
    /// Standard output for "-", else a temporary file beside `path`, created now so that an
    /// unwritable destination fails before the download.
    pub(super) fn create(path: &Path) -> anyhow::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::Stdout);
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?;
        let staged = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".part")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        Ok(Self::File {
            staged,
            path: path.to_owned(),
        })
    }

    /// Decrypts `response` into the destination; returns the plaintext's length.
    pub(super) async fn receive(
        self,
        response: reqwest::Response,
        identities: Identities,
    ) -> anyhow::Result<u64> {
        match self {
            Self::Stdout => {
                open(response, identities, |plaintext| {
                    let mut out = super::output::Stdout::lock();
                    let written = copy(plaintext, &mut out, "standard output")?;
                    out.flush().context("cannot write to standard output")?;
                    Ok(written)
                })
                .await
            }
            Self::File { staged, path } => {
                let shown = path.display().to_string();
                let (staged, written) = open(response, identities, move |plaintext| {
                    let mut out = BufWriter::new(staged.as_file());
                    let written = copy(plaintext, &mut out, &shown)?;
                    out.flush()
                        .with_context(|| format!("cannot write {shown}"))?;
                    drop(out);
                    staged
                        .as_file()
                        .sync_all()
                        .with_context(|| format!("cannot write {shown}"))?;
                    Ok((staged, written))
                })
                .await?;
                staged
                    .persist(&path)
                    .map_err(|e| e.error)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(written)
            }
        }
    }
}

/// Copies decrypted plaintext to `out`, naming `shown` when writing fails.
fn copy(plaintext: &mut dyn Read, out: &mut dyn Write, shown: &str) -> anyhow::Result<u64> {
    copy_plaintext(plaintext, out).map_err(|e| match e {
        CopyError::Read(e) => anyhow::Error::new(e).context("cannot decrypt the blob"),
        CopyError::Write(e) => anyhow::Error::new(e).context(format!("cannot write {shown}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_read_across_their_boundaries_and_pass_errors_on() {
        let (sender, receiver) = mpsc::channel(4);
        sender.try_send(Ok(Bytes::from_static(b"abc"))).unwrap();
        sender.try_send(Ok(Bytes::new())).unwrap();
        sender.try_send(Ok(Bytes::from_static(b"defg"))).unwrap();
        sender.try_send(Err(io::Error::other("cut"))).unwrap();
        drop(sender);
        let mut pieces = Pieces {
            receiver,
            current: Bytes::new(),
        };
        let mut two = [0u8; 2];
        pieces.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"ab");
        let mut rest = Vec::new();
        let error = pieces.read_to_end(&mut rest).unwrap_err();
        assert_eq!(rest, b"cdefg");
        assert_eq!(error.to_string(), "cut");
        assert_eq!(pieces.read(&mut two).unwrap(), 0, "the end after the error");
    }
}
