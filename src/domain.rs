//! Typed identifiers and bounded values. Their constructors are the only place where input is
//! checked, so everything past the HTTP layer holds values that are already valid.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

mod recipients;

pub use recipients::AgeRecipients;

/// Why a value was refused: a message safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// Names made of a conservative alphabet, used for principals, orgs and policies.
fn is_name(text: &str, max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BlobId(Uuid);

impl BlobId {
    /// A new time-ordered id (UUIDv7), so listing order is creation order.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Accepts only the canonical form, lower-case and hyphenated, the one the server hands
    /// out. `Uuid::try_parse` alone also takes upper case, braces, `urn:uuid:` and the
    /// unhyphenated form, which would give one blob many names (in URLs, logs and the audit
    /// trail).
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let canonical = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
            });
        let refused = || {
            invalid(
                "blob id must be a UUID in lower-case hyphenated form \
                 (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            )
        };
        if !canonical {
            return Err(refused());
        }
        Uuid::try_parse(text).map(Self).map_err(|_| refused())
    }
}

impl Default for BlobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lowercase: the storage form, whose text order is id order.
        write!(f, "{}", self.0.hyphenated())
    }
}

/// Who calls: an HMAC client name or a wallet's bech32 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Principal(String);

impl Principal {
    pub const MAX_LEN: usize = 128;

    /// Any principal as stored: lowercase letters, digits and `._-`.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_name(text, Self::MAX_LEN, b"._-") {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "principal must be 1-128 characters of a-z, 0-9, '.', '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of an HMAC client. It must not look like a wallet address, so that no client can
/// be registered under a name that a wallet principal owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(Principal);

/// What routes accept in place of the caller's own principal.
pub const SELF_ALIAS: &str = "me";

impl ClientName {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let ok = is_name(text, 64, b"._-")
            && text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(invalid(
                "client name must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
            ));
        }
        if looks_like_bech32(text) {
            return Err(invalid("client name must not look like a wallet address"));
        }
        // Routes such as `/recipients/me` and `/subjects/me` read `me` as "the caller"; a
        // client of that name could never be named by anyone else.
        if text == SELF_ALIAS {
            return Err(invalid(
                "client name `me` is reserved: routes read it as the caller",
            ));
        }
        Ok(Self(Principal(text.to_owned())))
    }

    pub fn principal(&self) -> &Principal {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A cheap structural test: an `hrp1data` string whose data part is long enough and uses only
/// the bech32 alphabet. Deliberately broader than a checksum test.
fn looks_like_bech32(text: &str) -> bool {
    const ALPHABET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    match text.rsplit_once('1') {
        Some((hrp, data)) => {
            !hrp.is_empty() && data.len() >= 6 && data.chars().all(|c| ALPHABET.contains(c))
        }
        None => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_name(text, 64, b"._-") {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "org id must be 1-64 characters of a-z, 0-9, '.', '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A scope name; whether the scope exists is the scope table's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_name(text, 32, b"_-") {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "scope must be 1-32 characters of a-z, 0-9, '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RetentionPolicy(String);

impl RetentionPolicy {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if is_name(text, 64, b"_-") {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid(
                "retention_policy must be 1-64 characters of a-z, 0-9, '_' or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self("standard".to_owned())
    }
}

/// Characters that change how text looks without showing themselves: control characters,
/// line and paragraph separators, bidirectional controls (text then displays in another order
/// than it is stored, the "Trojan Source" trick), and invisible format characters (zero-width
/// spaces and joiners, the byte-order mark, word joiners, soft hyphen, Unicode tag characters),
/// which make two different strings look alike.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Free-form labels on a blob, bounded in number and size, free of hidden characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tags(BTreeMap<String, String>);

impl Tags {
    pub const MAX_TAGS: usize = 32;
    pub const MAX_KEY: usize = 64;
    pub const MAX_VALUE: usize = 256;

    pub fn new(map: BTreeMap<String, String>) -> Result<Self, Invalid> {
        if map.len() > Self::MAX_TAGS {
            return Err(invalid(format!("at most {} tags", Self::MAX_TAGS)));
        }
        for (key, value) in &map {
            if key.is_empty() || key.len() > Self::MAX_KEY {
                return Err(invalid(format!(
                    "tag keys must be 1-{} bytes of UTF-8",
                    Self::MAX_KEY
                )));
            }
            if value.len() > Self::MAX_VALUE {
                return Err(invalid(format!(
                    "tag values must be at most {} bytes of UTF-8",
                    Self::MAX_VALUE
                )));
            }
            if let Some(c) = key.chars().chain(value.chars()).find(|&c| is_hidden(c)) {
                return Err(invalid(format!(
                    "tag keys and values must not contain control, bidirectional-control or \
                     invisible characters (found U+{:04X})",
                    u32::from(c)
                )));
            }
        }
        Ok(Self(map))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn from_json(text: &str) -> Result<Self, Invalid> {
        serde_json::from_str(text)
            .map(Self)
            .map_err(|_| invalid("stored tags are not a JSON object"))
    }
}

/// A free-text reason or purpose given with a read, bounded and printable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Note(String);

impl Note {
    pub const MAX_LEN: usize = 512;

    pub fn parse(field: &str, text: &str) -> Result<Self, Invalid> {
        if text.len() > Self::MAX_LEN || text.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{field} must be at most {} characters without control characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_that_look_like_wallet_addresses_are_refused() {
        assert!(ClientName::parse("virtengine1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu").is_err());
        assert!(ClientName::parse("provider-daemon-7").is_ok());
        assert!(ClientName::parse("-leading-dash").is_err());
        assert!(ClientName::parse("Upper").is_err());
        assert!(ClientName::parse("me").is_err(), "reserved for the caller");
    }

    #[test]
    fn blob_ids_render_in_storage_form() {
        let id = BlobId::new();
        assert_eq!(BlobId::parse(&id.to_string()), Ok(id));
        assert!(BlobId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn blob_ids_have_one_spelling() {
        let text = "0190b6a0-c0de-7abc-8def-0123456789ab";
        assert!(BlobId::parse(text).is_ok());
        let simple = text.replace('-', "");
        for other in [
            text.to_uppercase(),
            text.replacen('c', "C", 1),
            format!("{{{text}}}"),
            simple.clone(),
            simple.to_uppercase(),
            format!("urn:uuid:{text}"),
            format!(" {text}"),
            format!("{text}\n"),
            text.replacen('-', "", 1) + "0",
            text.replacen('-', "+", 1),
            String::new(),
        ] {
            assert!(BlobId::parse(&other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn tags_refuse_hidden_characters_in_keys_and_values() {
        let tag =
            |k: &str, v: &str| Tags::new([(k.to_owned(), v.to_owned())].into_iter().collect());
        let hidden_characters = [
            "\u{0007}\u{001B}\u{007F}\u{0085}",         // control
            "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}", // bidi embeddings, overrides
            "\u{2066}\u{2067}\u{2068}\u{2069}",         // bidi isolates
            "\u{200E}\u{200F}\u{061C}",                 // bidi marks
            "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}", // zero width
            "\u{2028}\u{2029}\u{00AD}\u{E0041}",        // separators, soft hyphen, tag
        ];
        for c in hidden_characters.concat().chars() {
            let hidden = format!("ticket{c}42");
            let refused = tag(&hidden, "v").expect_err("hidden character in key");
            assert!(
                refused.0.contains(&format!("U+{:04X}", u32::from(c))),
                "{refused}"
            );
            assert!(
                tag("ticket", &hidden).is_err(),
                "U+{:04X} in value",
                u32::from(c)
            );
        }
        // Visible text in any script, emoji and ordinary punctuation stay allowed.
        assert!(tag("ticket", "T-42 / Zürich · 東京 · مرحبا · 🙂").is_ok());
        assert!(tag("", "v").is_err());
    }

    #[test]
    fn tags_are_bounded() {
        let many = (0..33).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(Tags::new(many).is_err());
        let long = [("k".to_owned(), "v".repeat(257))].into_iter().collect();
        assert!(Tags::new(long).is_err());
    }
}
