//! Typed identifiers and bounded values. Their constructors are the only place where input is
//! checked, so everything past the HTTP layer holds values that are already valid.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

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

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        Uuid::try_parse(text)
            .map(Self)
            .map_err(|_| invalid("blob id must be a UUID"))
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

/// Free-form labels on a blob, bounded in number and size.
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
            if key.is_empty() || key.len() > Self::MAX_KEY || key.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "tag keys must be 1-{} characters without control characters",
                    Self::MAX_KEY
                )));
            }
            if value.len() > Self::MAX_VALUE || value.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "tag values must be at most {} characters without control characters",
                    Self::MAX_VALUE
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
    }

    #[test]
    fn blob_ids_render_in_storage_form() {
        let id = BlobId::new();
        assert_eq!(BlobId::parse(&id.to_string()), Ok(id));
        assert!(BlobId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn tags_are_bounded() {
        let many = (0..33).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(Tags::new(many).is_err());
        let long = [("k".to_owned(), "v".repeat(257))].into_iter().collect();
        assert!(Tags::new(long).is_err());
    }
}
