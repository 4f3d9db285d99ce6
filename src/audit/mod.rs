//! The audit log (DESIGN §8): every blob and admin operation, granted or denied, appended to a
//! per-tenant hash chain. `chain.rs` holds the pure hashing and verification; the store
//! appends (group-committed by `store::CommitQueue`); the service decides what is recorded.

pub mod chain;
pub mod note;
pub mod tree;

use crate::domain::{Invalid, OrgId, Principal};
use serde::Serialize;
use std::collections::BTreeMap;

/// An event's `details` (DESIGN §12): string values by name, hashed with the rest.
pub type Details = BTreeMap<String, String>;

/// The chain of platform operations (clients, org creation).
pub const SYSTEM_CHAIN: &str = "system";

/// The chain of an org's tenant.
pub fn org_chain(org: &str) -> String {
    format!("org:{org}")
}

/// The chain of a principal's personal blobs and of requests that name no tenant.
pub fn owner_chain(principal: &str) -> String {
    format!("owner:{principal}")
}

/// A chain named by a client: `system`, `org:<org id>` or `owner:<principal>`, each part
/// checked, so a chain name from a query can only name a chain the vault could have made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainName {
    System,
    Org(OrgId),
    Owner(Principal),
}

impl ChainName {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        if text == SYSTEM_CHAIN {
            return Ok(Self::System);
        }
        if let Some(org) = text.strip_prefix("org:") {
            return OrgId::parse(org).map(Self::Org);
        }
        if let Some(principal) = text.strip_prefix("owner:") {
            return Principal::parse(principal).map(Self::Owner);
        }
        Err(Invalid(
            "chain must be system, org:<org id> or owner:<principal>".into(),
        ))
    }

    /// A tenant with keys: `org:<org id>` or `owner:<principal>` (`system` has none).
    pub fn parse_tenant(text: &str) -> Result<Self, Invalid> {
        match Self::parse(text)? {
            Self::System => Err(Invalid(
                "tenant must be org:<org id> or owner:<principal>".into(),
            )),
            tenant => Ok(tenant),
        }
    }

    /// The chain's name as stored.
    pub fn to_chain(&self) -> String {
        match self {
            Self::System => SYSTEM_CHAIN.to_owned(),
            Self::Org(org) => org_chain(org.as_str()),
            Self::Owner(principal) => owner_chain(principal.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }
}

/// An event as the service describes it; the store gives it its place in the chain.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub chain: String,
    pub id: String,
    pub timestamp_ms: i64,
    pub event_type: &'static str,
    pub blob_id: Option<String>,
    pub scope: Option<String>,
    pub owner: Option<String>,
    pub org_id: Option<String>,
    pub requester: String,
    pub auth_method: &'static str,
    pub outcome: Outcome,
    pub denial_reason: Option<&'static str>,
    pub purpose: Option<String>,
    pub reason: Option<String>,
    pub request_id: String,
    /// Absent from the hashed form when `None` (never set it to an empty map).
    pub details: Option<Details>,
}

impl NewEvent {
    /// An event with the common fields set; callers fill in the rest.
    pub fn new(
        chain: String,
        event_type: &'static str,
        requester: &str,
        auth_method: &'static str,
        request_id: &str,
        timestamp_ms: i64,
    ) -> Self {
        Self {
            chain,
            id: uuid::Uuid::now_v7().to_string(),
            timestamp_ms,
            event_type,
            blob_id: None,
            scope: None,
            owner: None,
            org_id: None,
            requester: requester.to_owned(),
            auth_method,
            outcome: Outcome::Granted,
            denial_reason: None,
            purpose: None,
            reason: None,
            request_id: request_id.to_owned(),
            details: None,
        }
    }
}

/// A recorded event, exactly the object whose hash is chained (DESIGN §8). Absent optional
/// fields are `null`, never omitted, so every implementation hashes the same bytes; the one
/// exception is `details` (DESIGN §12), which is left out when an event has none, so that
/// chains written before it existed keep their hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub chain: String,
    pub id: String,
    pub timestamp: String,
    pub event_type: String,
    pub blob_id: Option<String>,
    pub scope: Option<String>,
    pub owner: Option<String>,
    pub org_id: Option<String>,
    pub requester: String,
    pub auth_method: String,
    pub outcome: String,
    pub denial_reason: Option<String>,
    pub purpose: Option<String>,
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    pub request_id: String,
    pub previous_hash: String,
    pub hash: String,
}
