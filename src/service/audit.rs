//! Reading the audit log: queries with the visibility rules of DESIGN §4.5, and chain
//! verification (also used offline by `data-vault audit verify`).

use super::access::Question;
use super::listing::one_page;
use super::{Caller, Vault};
use crate::audit::chain::{ChainVerifier, Verification};
use crate::audit::tree::{self, Frontier, Plan};
use crate::audit::{self, AuditEvent};
use crate::domain::{BlobId, OrgId, Principal, Scope};
use crate::error::VaultError;
use crate::store::{AuditQuery, AuditScope, Store, StoreError};
use serde::Serialize;

pub const MAX_AUDIT_LIMIT: i64 = 500;
pub const DEFAULT_AUDIT_LIMIT: i64 = 100;
/// Events read per page while verifying, so memory stays flat for any chain length.
const VERIFY_PAGE: i64 = 5000;

#[derive(Debug, Default)]
pub struct AuditParams {
    pub blob_id: Option<BlobId>,
    pub scope: Option<Scope>,
    pub requester: Option<Principal>,
    pub org_id: Option<OrgId>,
    /// Unix seconds, inclusive.
    pub start: Option<i64>,
    /// Unix seconds, exclusive.
    pub end: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

/// Verifies one chain straight from the store, a page at a time: the hash chain against its
/// head, then the chain's Merkle tree against its events (DESIGN §16).
pub async fn verify_chain(store: &dyn Store, chain: &str) -> Result<Verification, StoreError> {
    let mut verifier = ChainVerifier::new(chain);
    let mut frontier = Frontier::default();
    let mut sink = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_chain_page(chain, after, VERIFY_PAGE).await?;
        for event in &page {
            verifier.push(event);
            let mut leaf = [0u8; 32];
            // A malformed hash already failed the chain check above.
            if hex::decode_to_slice(&event.hash, &mut leaf).is_ok() {
                frontier.push(&leaf, &mut sink);
                sink.clear();
            }
        }
        match page.last() {
            Some(last) if i64::try_from(page.len()) == Ok(VERIFY_PAGE) => after = last.seq,
            _ => break,
        }
    }
    let mut result = verifier.finish(store.audit_head(chain).await?);
    if result.valid {
        if let Some(seq) = first_tree_mismatch(store, chain, &frontier).await? {
            result.valid = false;
            result.first_invalid_seq = Some(seq);
        }
    }
    Ok(result)
}

/// Whether the stored tree of `chain` is the tree of its events (whose frontier is
/// `computed`); if not, the `seq` of the first event whose leaf is missing or differs.
/// A chain written before trees were kept, and never appended to since, has none to check.
async fn first_tree_mismatch(
    store: &dyn Store,
    chain: &str,
    computed: &Frontier,
) -> Result<Option<i64>, StoreError> {
    let size = computed.size();
    if size == 0 {
        return Ok(None);
    }
    let head = store.audit_tree_head(chain).await?;
    let first_leaf = store.audit_tree_leaves(chain, 0, 1).await?;
    if head.as_ref().is_some_and(|h| h.frontier.is_none()) && first_leaf.is_empty() {
        return Ok(None);
    }
    let plan = Plan::root(size);
    let nodes = store.audit_tree_nodes(chain, &plan.nodes()).await?;
    let frontier_agrees = head
        .and_then(|h| h.frontier)
        .and_then(|bytes| Frontier::from_bytes(size, &bytes).ok())
        .is_some_and(|stored| stored.root() == computed.root());
    if frontier_agrees && plan.hashes(&nodes).ok() == Some(vec![computed.root()]) {
        return Ok(None);
    }
    // Find the first leaf that differs: read events and leaves side by side.
    let mut after = 0i64;
    loop {
        let page = store.audit_chain_page(chain, after, VERIFY_PAGE).await?;
        let from = u64::try_from(after).unwrap_or(0);
        let leaves = store.audit_tree_leaves(chain, from, VERIFY_PAGE).await?;
        for (n, event) in page.iter().enumerate() {
            let mut input = [0u8; 32];
            let expected = hex::decode_to_slice(&event.hash, &mut input)
                .is_ok()
                .then(|| tree::leaf_hash(&input));
            let stored = leaves.get(n);
            let index = u64::try_from(event.seq.saturating_sub(1)).unwrap_or(u64::MAX);
            if stored.map(|(i, h)| (*i, *h)) != expected.map(|h| (index, h)) {
                return Ok(Some(event.seq));
            }
        }
        match page.last() {
            Some(last) if i64::try_from(page.len()) == Ok(VERIFY_PAGE) => after = last.seq,
            Some(last) if leaves.len() > page.len() => return Ok(Some(last.seq + 1)),
            None if !leaves.is_empty() => return Ok(Some(after + 1)),
            // Every leaf matches its event, yet the roots differ: the tree beyond the leaves
            // (an inner node or the head's frontier) was changed.
            _ => return Ok(Some(1)),
        }
    }
}

impl Vault {
    pub async fn query_audit(
        &self,
        caller: &Caller,
        params: AuditParams,
    ) -> Result<AuditPage, VaultError> {
        let result = self.query_audit_inner(caller, params).await;
        self.metrics.access("audit", "audit_query", result.is_ok());
        result
    }

    async fn query_audit_inner(
        &self,
        caller: &Caller,
        params: AuditParams,
    ) -> Result<AuditPage, VaultError> {
        let scope = match &params.org_id {
            Some(org) => {
                self.authorize(
                    caller,
                    Question::OrgAudit {
                        org,
                        event_type: "audit.query",
                    },
                )
                .await?;
                // Who read an org's trail is itself part of that org's trail.
                let mut event = self.event(caller, audit::org_chain(org.as_str()), "audit.query");
                event.org_id = Some(org.as_str().to_owned());
                self.record(caller, &[event]).await?;
                AuditScope::Chain(audit::org_chain(org.as_str()))
            }
            None => AuditScope::Principal(caller.principal.clone()),
        };
        let limit = params
            .limit
            .unwrap_or(DEFAULT_AUDIT_LIMIT)
            .clamp(1, MAX_AUDIT_LIMIT);
        let query = AuditQuery {
            scope,
            blob_id: params.blob_id,
            blob_scope: params.scope,
            requester: params.requester,
            start_ms: params.start.map(|s| s.saturating_mul(1000)),
            end_ms: params.end.map(|s| s.saturating_mul(1000)),
            before_gid: params.cursor,
            limit: limit + 1,
        };
        let rows = self.store.audit_query(&query).await?;
        let (rows, next_cursor) = one_page(rows, limit, |(gid, _)| gid.to_string());
        Ok(AuditPage {
            events: rows.into_iter().map(|(_, e)| e).collect(),
            next_cursor,
        })
    }

    /// Verifies an org's chain (for its auditors) or the caller's own chain.
    pub async fn verify_audit(
        &self,
        caller: &Caller,
        org: Option<&OrgId>,
    ) -> Result<Verification, VaultError> {
        let chain = match org {
            Some(org) => {
                self.authorize(
                    caller,
                    Question::OrgAudit {
                        org,
                        event_type: "audit.verify",
                    },
                )
                .await?;
                audit::org_chain(org.as_str())
            }
            None => audit::owner_chain(caller.principal.as_str()),
        };
        Ok(verify_chain(self.store.as_ref(), &chain).await?)
    }
}
