//! A bounded, single-pass structural parser of the age v1 header (c2sp.org/age, "ABNF
//! definition of file header"): the version line, one or more recipient stanzas, the MAC line.
//!
//! Why not the `age` crate's parser: `Decryptor::new_buffered` reads one line at a time and
//! re-parses the whole header from its first byte after each one, so its cost grows with the
//! square of the header length, and it has no bound on either the length or the number of
//! stanzas. A 1.5 MB upload of thousands of stanzas kept an async worker busy for tens of
//! seconds. Here every byte is looked at once, and at most [`MAX_HEADER_BYTES`] of the upload
//! are ever read: the bounds are enforced while scanning, so the work per upload is bounded
//! whatever its size. Nothing is decoded or allocated; the server cannot decrypt the header
//! anyway, only see that it has the right shape.

use super::InvalidEnvelope;

/// The longest header accepted, from the version line to the MAC line's final newline.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most recipient stanzas accepted. Every stanza counts, including the random "grease"
/// stanza that the `age` crate (rage) adds to each non-passphrase header.
pub const MAX_STANZAS: usize = 256;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
const STANZA_PREFIX: &[u8] = b"-> ";
const MAC_PREFIX: &[u8] = b"--- ";
/// A 32-byte HMAC-SHA-256 in unpadded base64.
const MAC_CHARS: usize = 43;
/// Stanza bodies are wrapped at this many base64 characters per line.
const BODY_COLUMNS: usize = 64;
/// The passphrase stanza type, which the spec requires to be alone in its header.
const SCRYPT: &[u8] = b"scrypt";

pub(super) const NOT_AGE_V1: InvalidEnvelope =
    InvalidEnvelope("payload is not an age v1 envelope (age-encryption.org/v1)");
pub(super) const TOO_LONG: InvalidEnvelope = InvalidEnvelope("age header is longer than 64 KiB");
pub(super) const TOO_MANY_STANZAS: InvalidEnvelope =
    InvalidEnvelope("age header has more than 256 recipient stanzas");
pub(super) const TRUNCATED: InvalidEnvelope = InvalidEnvelope("age header is truncated");
pub(super) const NO_STANZA: InvalidEnvelope = InvalidEnvelope("age header has no recipient stanza");
pub(super) const BAD_LINE: InvalidEnvelope =
    InvalidEnvelope("age header line is neither a recipient stanza nor the MAC line");
pub(super) const BAD_ARGUMENTS: InvalidEnvelope = InvalidEnvelope(
    "age recipient stanza arguments must be printable ASCII separated by single spaces",
);
pub(super) const BAD_BODY: InvalidEnvelope = InvalidEnvelope(
    "age recipient stanza body is not canonical unpadded base64 wrapped at 64 columns",
);
pub(super) const BAD_MAC: InvalidEnvelope =
    InvalidEnvelope("age header MAC line must be \"--- \" and 43 base64 characters");
pub(super) const MIXED_SCRYPT: InvalidEnvelope =
    InvalidEnvelope("an age scrypt (passphrase) stanza must be the only stanza in the header");

/// Parses the header at the start of `bytes` and returns its length in bytes (up to and
/// including the MAC line's newline). Reads at most [`MAX_HEADER_BYTES`] of `bytes`.
pub fn parse(bytes: &[u8]) -> Result<usize, InvalidEnvelope> {
    if !bytes.starts_with(VERSION_LINE) {
        return Err(NOT_AGE_V1);
    }
    let mut lines = Lines {
        window: bytes.get(..MAX_HEADER_BYTES).unwrap_or(bytes),
        pos: VERSION_LINE.len(),
        more_beyond_window: bytes.len() > MAX_HEADER_BYTES,
    };
    let mut stanzas = 0usize;
    let mut scrypt = false;
    loop {
        let line = lines.next()?;
        if let Some(arguments) = line.strip_prefix(STANZA_PREFIX) {
            stanzas += 1;
            if stanzas > MAX_STANZAS {
                return Err(TOO_MANY_STANZAS);
            }
            check_arguments(arguments)?;
            scrypt |= first_argument(arguments) == SCRYPT;
            skip_body(&mut lines)?;
        } else if let Some(mac) = line.strip_prefix(MAC_PREFIX) {
            if mac.len() != MAC_CHARS || !is_canonical_base64(mac) {
                return Err(BAD_MAC);
            }
            return match stanzas {
                0 => Err(NO_STANZA),
                1 => Ok(lines.pos),
                _ if scrypt => Err(MIXED_SCRYPT),
                _ => Ok(lines.pos),
            };
        } else {
            return Err(BAD_LINE);
        }
    }
}

/// The header's lines, read from a window that never extends past [`MAX_HEADER_BYTES`].
struct Lines<'a> {
    window: &'a [u8],
    pos: usize,
    /// Whether the upload continues past the window: a line that does not end inside the
    /// window then means "too long" rather than "truncated".
    more_beyond_window: bool,
}

impl<'a> Lines<'a> {
    /// The next line without its newline. Each byte is scanned once over the whole parse.
    fn next(&mut self) -> Result<&'a [u8], InvalidEnvelope> {
        let rest = self.window.get(self.pos..).unwrap_or_default();
        match rest
            .iter()
            .position(|&b| b == b'\n')
            .and_then(|end| rest.get(..end))
        {
            Some(line) => {
                self.pos += line.len() + 1;
                Ok(line)
            }
            None if self.more_beyond_window => Err(TOO_LONG),
            None => Err(TRUNCATED),
        }
    }
}

/// `argument *(SP argument)` where `argument = 1*VCHAR`.
fn check_arguments(arguments: &[u8]) -> Result<(), InvalidEnvelope> {
    let well_formed = !arguments.is_empty()
        && arguments.split(|&b| b == b' ').all(|argument| {
            !argument.is_empty() && argument.iter().all(|b| (0x21..=0x7e).contains(b))
        });
    if well_formed {
        Ok(())
    } else {
        Err(BAD_ARGUMENTS)
    }
}

/// The stanza's type: its first argument.
fn first_argument(arguments: &[u8]) -> &[u8] {
    arguments.split(|&b| b == b' ').next().unwrap_or_default()
}

/// `*full-line final-line`: lines of exactly 64 base64 characters, ended by one shorter line
/// (possibly empty). Together they must be canonical base64, which only the final line can
/// break.
fn skip_body(lines: &mut Lines<'_>) -> Result<(), InvalidEnvelope> {
    loop {
        let line = lines.next()?;
        if line.len() > BODY_COLUMNS || !is_canonical_base64(line) {
            return Err(BAD_BODY);
        }
        if line.len() < BODY_COLUMNS {
            return Ok(());
        }
    }
}

/// Whether `text` is canonical unpadded base64 (RFC 4648 §3.5): only alphabet characters, no
/// length of 1 mod 4, and no bits set beyond the last whole byte.
fn is_canonical_base64(text: &[u8]) -> bool {
    let mut values = text.iter().map(|&c| base64_value(c));
    if !values.all(|v| v.is_some()) {
        return false;
    }
    let last = text.last().and_then(|&c| base64_value(c)).unwrap_or(0);
    match text.len() % 4 {
        0 => true,
        // Two characters carry one byte: the last one's low four bits are padding.
        2 => last & 0x0f == 0,
        // Three characters carry two bytes: the last one's low two bits are padding.
        3 => last & 0x03 == 0,
        _ => false,
    }
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header of `stanzas` stanzas, each `-> t ARG` with an empty body, and a MAC of zeros.
    fn header(stanzas: &[&str]) -> Vec<u8> {
        let mut out = VERSION_LINE.to_vec();
        for stanza in stanzas {
            out.extend_from_slice(stanza.as_bytes());
        }
        out.extend_from_slice(b"--- ");
        out.extend_from_slice(&[b'A'; MAC_CHARS]);
        out.push(b'\n');
        out
    }

    #[test]
    fn returns_the_header_length() {
        let h = header(&["-> X25519 abc\nAAAA\n"]);
        let mut with_payload = h.clone();
        with_payload.extend_from_slice(&[0u8; 40]);
        assert_eq!(parse(&with_payload), Ok(h.len()));
    }

    #[test]
    fn stanza_argument_lines() {
        assert!(parse(&header(&["-> a\n\n"])).is_ok());
        assert!(parse(&header(&["-> a b ~!{}\n\n"])).is_ok());
        for bad in [
            "-> \n\n",
            "-> a  b\n\n",
            "-> a \n\n",
            "-> a\tb\n\n",
            "-> é\n\n",
        ] {
            assert_eq!(parse(&header(&[bad])), Err(BAD_ARGUMENTS), "{bad:?}");
        }
        for bad in ["->\n\n", "->a\n\n"] {
            assert_eq!(parse(&header(&[bad])), Err(BAD_LINE), "{bad:?}");
        }
    }

    #[test]
    fn stanza_bodies_are_canonical_base64_wrapped_at_64() {
        let full = "A".repeat(64);
        for good in ["", "AA", "AAA", "AAAA", "QQ", "AAE", "ab+/"] {
            let stanza = format!("-> t\n{good}\n");
            assert!(parse(&header(&[&stanza])).is_ok(), "{good:?}");
            let stanza = format!("-> t\n{full}\n{good}\n");
            assert!(parse(&header(&[&stanza])).is_ok(), "{full} {good:?}");
        }
        // Padding, a length of 1 mod 4, stray bits, other characters, long lines, and a body
        // whose last line is full (the legacy encoding the spec now forbids).
        for bad in [
            "AA==",
            "A",
            "AAAAA",
            "AB",
            "AAB",
            "AA-_",
            "AA A",
            &"A".repeat(65),
        ] {
            let stanza = format!("-> t\n{bad}\n");
            assert_eq!(parse(&header(&[&stanza])), Err(BAD_BODY), "{bad:?}");
        }
        let legacy = format!("-> t\n{full}\n");
        assert_eq!(parse(&header(&[&legacy])), Err(BAD_BODY));
        let short_then_more = "-> t\nAAAA\nAAAA\n";
        assert_eq!(parse(&header(&[short_then_more])), Err(BAD_LINE));
    }

    #[test]
    fn mac_line() {
        let mut h = header(&["-> t\n\n"]);
        assert!(parse(&h).is_ok());
        let mac_start = h.len() - MAC_CHARS - 1;
        let last = h.len() - 2;
        for (byte, why) in [(b'B', "stray bits"), (b'=', "padding"), (b'.', "alphabet")] {
            h[last] = byte;
            assert_eq!(parse(&h), Err(BAD_MAC), "{why}");
        }
        h[last] = b'A';
        h.insert(mac_start, b'A');
        assert_eq!(parse(&h), Err(BAD_MAC), "44 characters");
        assert_eq!(parse(&header(&[])), Err(NO_STANZA));
    }

    #[test]
    fn other_versions_and_lines_are_refused() {
        assert_eq!(parse(b"age-encryption.org/v2\n-> t\n\n"), Err(NOT_AGE_V1));
        assert_eq!(parse(b"age-encryption.org/v1"), Err(NOT_AGE_V1));
        assert_eq!(parse(b"age-encryption.org/v1\r\n"), Err(NOT_AGE_V1));
        assert_eq!(parse(&header(&["-> t\n\n", "# note\n"])), Err(BAD_LINE));
        assert_eq!(parse(&header(&["-> t\n\n", "---\n"])), Err(BAD_LINE));
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let h = header(&["-> X25519 abc\nAAAA\n", "-> t\n\n"]);
        for end in 0..h.len() {
            assert!(parse(&h[..end]).is_err(), "cut at {end}");
        }
        assert_eq!(parse(&h[..h.len() - 1]), Err(TRUNCATED));
    }

    #[test]
    fn scrypt_must_stand_alone() {
        assert!(parse(&header(&["-> scrypt c2FsdA 10\nAAAA\n"])).is_ok());
        assert_eq!(
            parse(&header(&["-> scrypt c2FsdA 10\nAAAA\n", "-> t\n\n"])),
            Err(MIXED_SCRYPT)
        );
        assert_eq!(
            parse(&header(&["-> t\n\n", "-> scrypt c2FsdA 10\nAAAA\n"])),
            Err(MIXED_SCRYPT)
        );
        assert!(parse(&header(&["-> scrypt2 x\n\n", "-> t\n\n"])).is_ok());
    }
}
