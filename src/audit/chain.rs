//! Hash chaining and verification. `hash` is the hex SHA-256 of the RFC 8785 (JCS) canonical
//! JSON of the event without its `hash` field; the first event of a chain has a
//! `previous_hash` of 64 zeros. Anyone can recompute it with any JCS library.

use super::{AuditEvent, Details, NewEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed view of an event: every field but `hash`, declared in the RFC 8785 key order
/// (sorted by code unit; all keys are ASCII).
///
/// Why serde_json and not a JCS library on the hot path: for an object whose keys are already
/// in canonical order and whose values are only strings, integers, null and (`details`) a
/// `BTreeMap` of strings with ASCII keys (byte order is then UTF-16 order too), serde_json's
/// compact output *is* the RFC 8785 form (same escaping of `"`, `\` and control characters,
/// nothing else escaped, integers as plain digits), and it is several times faster than a
/// general canonicaliser that buffers and sorts every member. A property test checks the two
/// agree byte for byte against `serde_jcs` on arbitrary events.
#[derive(Serialize)]
struct Hashed<'a> {
    auth_method: &'a str,
    blob_id: Option<&'a str>,
    chain: &'a str,
    denial_reason: Option<&'a str>,
    /// Sorts between `denial_reason` and `event_type`; absent, not null, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
    event_type: &'a str,
    id: &'a str,
    org_id: Option<&'a str>,
    outcome: &'a str,
    owner: Option<&'a str>,
    previous_hash: &'a str,
    purpose: Option<&'a str>,
    reason: Option<&'a str>,
    request_id: &'a str,
    requester: &'a str,
    scope: Option<&'a str>,
    seq: i64,
    timestamp: &'a str,
}

impl<'a> Hashed<'a> {
    fn of(event: &'a AuditEvent) -> Self {
        Self {
            auth_method: &event.auth_method,
            blob_id: event.blob_id.as_deref(),
            chain: &event.chain,
            denial_reason: event.denial_reason.as_deref(),
            details: event.details.as_ref().filter(|d| !d.is_empty()),
            event_type: &event.event_type,
            id: &event.id,
            org_id: event.org_id.as_deref(),
            outcome: &event.outcome,
            owner: event.owner.as_deref(),
            previous_hash: &event.previous_hash,
            purpose: event.purpose.as_deref(),
            reason: event.reason.as_deref(),
            request_id: &event.request_id,
            requester: &event.requester,
            scope: event.scope.as_deref(),
            seq: event.seq,
            timestamp: &event.timestamp,
        }
    }
}

pub fn canonical_json(event: &AuditEvent) -> Result<String, serde_json::Error> {
    String::from_utf8(canonical_bytes(event)?).map_err(serde::ser::Error::custom)
}

fn canonical_bytes(event: &AuditEvent) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Hashed::of(event))
}

/// The same bytes through a general RFC 8785 canonicaliser: the reference the fast path is
/// checked against.
#[cfg(test)]
fn canonical_bytes_reference(event: &AuditEvent) -> Result<Vec<u8>, serde_json::Error> {
    serde_jcs::to_vec(&Hashed::of(event))
}

fn digest(event: &AuditEvent) -> Result<[u8; 32], serde_json::Error> {
    Ok(Sha256::digest(canonical_bytes(event)?).into())
}

pub fn event_hash(event: &AuditEvent) -> Result<String, serde_json::Error> {
    Ok(hex::encode(digest(event)?))
}

/// Whether `event.hash` is the hash of the event (without allocating the hex form).
fn hash_matches(event: &AuditEvent) -> bool {
    let mut stored = [0u8; 32];
    hex::decode_to_slice(&event.hash, &mut stored).is_ok()
        && digest(event).is_ok_and(|computed| computed == stored)
}

/// The layout of event timestamps, for chrono.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Event timestamps: RFC 3339 in UTC with milliseconds, derived from the stored milliseconds
/// so that verification recomputes the very same text.
///
/// Every appended event and every event read back for verification is formatted, and
/// chrono's `format` parses its format string on each call (about 4,700 instructions, 15 %
/// of reading an event back from the database): years 0 to 9999, all real timestamps, are written
/// digit by digit instead, the same bytes (a property test compares the two); other years go
/// through chrono.
pub fn format_timestamp(ms: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) else {
        return String::new();
    };
    let Ok(year) = u32::try_from(t.year()) else {
        return t.format(TIMESTAMP_FORMAT).to_string();
    };
    if year > 9999 {
        return t.format(TIMESTAMP_FORMAT).to_string();
    }
    let mut out = String::with_capacity(24);
    let fields = [
        (year, 4, '-'),
        (t.month(), 2, '-'),
        (t.day(), 2, 'T'),
        (t.hour(), 2, ':'),
        (t.minute(), 2, ':'),
        (t.second(), 2, '.'),
        (t.timestamp_subsec_millis(), 3, 'Z'),
    ];
    for (value, width, separator) in fields {
        push_digits(&mut out, value, width);
        out.push(separator);
    }
    out
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// Places `new` after (`seq - 1`, `previous_hash`) and computes its hash.
pub fn link(
    new: &NewEvent,
    seq: i64,
    previous_hash: &str,
) -> Result<AuditEvent, serde_json::Error> {
    let mut event = AuditEvent {
        seq,
        chain: new.chain.clone(),
        id: new.id.clone(),
        timestamp: format_timestamp(new.timestamp_ms),
        event_type: new.event_type.to_owned(),
        blob_id: new.blob_id.clone(),
        scope: new.scope.clone(),
        owner: new.owner.clone(),
        org_id: new.org_id.clone(),
        requester: new.requester.clone(),
        auth_method: new.auth_method.to_owned(),
        outcome: new.outcome.as_str().to_owned(),
        denial_reason: new.denial_reason.map(str::to_owned),
        purpose: new.purpose.clone(),
        reason: new.reason.clone(),
        details: new.details.clone().filter(|d| !d.is_empty()),
        request_id: new.request_id.clone(),
        previous_hash: previous_hash.to_owned(),
        hash: String::new(),
    };
    event.hash = event_hash(&event)?;
    Ok(event)
}

/// The result of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub chain: String,
    pub valid: bool,
    pub length: i64,
    pub head_hash: String,
    pub first_invalid_seq: Option<i64>,
}

/// Verifies a chain fed in `seq` order, a page at a time, in constant memory.
pub struct ChainVerifier {
    chain: String,
    expected_seq: i64,
    previous_hash: String,
    length: i64,
    first_invalid: Option<i64>,
}

impl ChainVerifier {
    pub fn new(chain: &str) -> Self {
        Self {
            chain: chain.to_owned(),
            expected_seq: 1,
            previous_hash: GENESIS_HASH.to_owned(),
            length: 0,
            first_invalid: None,
        }
    }

    /// Checks the next stored event: its place (no gap, no reordering), its link to the one
    /// before, and its own hash.
    pub fn push(&mut self, event: &AuditEvent) {
        self.length += 1;
        if self.first_invalid.is_some() {
            return;
        }
        let intact = event.chain == self.chain
            && event.seq == self.expected_seq
            && event.previous_hash == self.previous_hash
            && hash_matches(event);
        if intact {
            self.previous_hash.clone_from(&event.hash);
        } else {
            self.first_invalid = Some(self.expected_seq);
        }
        self.expected_seq += 1;
    }

    /// Ends verification. `head` is the recorded chain head: a chain shorter than its head
    /// lost its tail.
    pub fn finish(self, head: Option<(i64, String)>) -> Verification {
        let mut first_invalid = self.first_invalid;
        if first_invalid.is_none() {
            if let Some((head_seq, head_hash)) = &head {
                if *head_seq != self.length || *head_hash != self.previous_hash {
                    first_invalid = Some(self.length.min(*head_seq) + 1);
                }
            }
        }
        Verification {
            chain: self.chain,
            valid: first_invalid.is_none(),
            length: self.length,
            head_hash: self.previous_hash,
            first_invalid_seq: first_invalid,
        }
    }
}

#[cfg(test)]
mod tests;
