//! Hash chaining and verification. `hash` is the hex SHA-256 of the RFC 8785 (JCS) canonical
//! JSON of the event without its `hash` field; the first event of a chain has a
//! `previous_hash` of 64 zeros. Anyone can recompute it with any JCS library.

use super::{AuditEvent, NewEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed view of an event: every field but `hash`.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: i64,
    chain: &'a str,
    id: &'a str,
    timestamp: &'a str,
    event_type: &'a str,
    blob_id: Option<&'a str>,
    scope: Option<&'a str>,
    owner: Option<&'a str>,
    org_id: Option<&'a str>,
    requester: &'a str,
    auth_method: &'a str,
    outcome: &'a str,
    denial_reason: Option<&'a str>,
    purpose: Option<&'a str>,
    reason: Option<&'a str>,
    request_id: &'a str,
    previous_hash: &'a str,
}

/// The canonical bytes that are hashed.
pub fn canonical_json(event: &AuditEvent) -> Result<String, serde_json::Error> {
    serde_jcs::to_string(&Hashed {
        seq: event.seq,
        chain: &event.chain,
        id: &event.id,
        timestamp: &event.timestamp,
        event_type: &event.event_type,
        blob_id: event.blob_id.as_deref(),
        scope: event.scope.as_deref(),
        owner: event.owner.as_deref(),
        org_id: event.org_id.as_deref(),
        requester: &event.requester,
        auth_method: &event.auth_method,
        outcome: &event.outcome,
        denial_reason: event.denial_reason.as_deref(),
        purpose: event.purpose.as_deref(),
        reason: event.reason.as_deref(),
        request_id: &event.request_id,
        previous_hash: &event.previous_hash,
    })
}

pub fn event_hash(event: &AuditEvent) -> Result<String, serde_json::Error> {
    Ok(hex::encode(Sha256::digest(
        canonical_json(event)?.as_bytes(),
    )))
}

/// Event timestamps: RFC 3339 in UTC with milliseconds, derived from the stored milliseconds
/// so that verification recomputes the very same text.
pub fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
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
        let recomputed = event_hash(event).unwrap_or_default();
        let intact = event.chain == self.chain
            && event.seq == self.expected_seq
            && event.previous_hash == self.previous_hash
            && recomputed == event.hash;
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
