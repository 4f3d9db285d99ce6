//! The commands' standard output. Rust ignores SIGPIPE, so once the reader goes away
//! (`data-vault ... | head`) every write fails with EPIPE, and `println!` turns that into a
//! panic. Writes through here return the error instead, marked as [`Closed`], so that `main`
//! ends the command quietly (see [`closed`]).

use std::io::{self, Write};

/// Standard output gone: the reader closed its end of the pipe.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed")]
pub struct Closed;

/// Standard output, locked, with a closed pipe reported as [`Closed`].
pub struct Stdout(io::StdoutLock<'static>);

impl Stdout {
    pub fn lock() -> Self {
        Self(io::stdout().lock())
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

fn mark(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, Closed)
    } else {
        e
    }
}

/// One line on standard output; what the `out!` macro calls.
pub fn line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    writeln!(Stdout::lock(), "{args}")
}

/// Whether `e` is standard output closing under the command. Only our own writes are marked,
/// so a broken pipe to the server (an upload cut off) is still reported as the error it is.
pub fn closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<Closed>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_marked_broken_pipe_counts_as_closed_output() {
        let ours = anyhow::Error::from(mark(io::ErrorKind::BrokenPipe.into()));
        assert!(closed(&ours.context("writing the listing")));
        let theirs = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!closed(&theirs));
        let full = anyhow::Error::from(mark(io::Error::from_raw_os_error(28)));
        assert!(!closed(&full), "a full disk is an error");
    }
}
