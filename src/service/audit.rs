//! Reading the audit log: queries with the visibility rules of DESIGN §4.5, and chain
//! verification (also used offline by `data-vault audit verify`).

use super::access::Question;
use super::listing::one_page;
use super::{Caller, Vault};
use crate::audit::chain::{ChainVerifier, Verification};
use crate::audit::tree::{self, Frontier, NodeId};
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
/// head, then the chain's Merkle tree against its events (DESIGN §16): every stored subtree
/// must be the one its events make, and the frontier beside the head the one they make.
pub async fn verify_chain(store: &dyn Store, chain: &str) -> Result<Verification, StoreError> {
    let mut verifier = ChainVerifier::new(chain);
    let stored_frontier = store.audit_tree_head(chain).await?.and_then(|h| h.frontier);
    // A chain written before trees were kept, and never appended to since, has none to
    // check; one whose frontier alone was removed still has its first stored subtree.
    let built = stored_frontier.is_some()
        || !store
            .audit_tree_nodes(chain, &[FIRST_STORED])
            .await?
            .is_empty();
    let mut frontier = Frontier::default();
    // How far the stored frontier's subtrees (left to right) are those the events make.
    let mut ends = FrontierMatch::new(stored_frontier.as_deref());
    let mut completed = Vec::new();
    let mut stored = Vec::new();
    let mut first_bad_node: Option<i64> = None;
    let mut after = 0;
    loop {
        let page = store.audit_chain_page(chain, after, VERIFY_PAGE).await?;
        for event in &page {
            verifier.push(event);
            let mut leaf = [0u8; 32];
            // A malformed hash already failed the chain check above.
            if hex::decode_to_slice(&event.hash, &mut leaf).is_ok() {
                frontier.push(&leaf, &mut completed);
                ends.advance(&completed);
                stored.extend(completed.drain(..).filter(|(id, _)| tree::is_stored(*id)));
            }
        }
        if built && first_bad_node.is_none() && !stored.is_empty() {
            first_bad_node = first_differing_node(store, chain, &stored).await?;
        }
        stored.clear();
        match page.last() {
            Some(last) if i64::try_from(page.len()) == Ok(VERIFY_PAGE) => after = last.seq,
            _ => break,
        }
    }
    let mut result = verifier.finish(store.audit_head(chain).await?);
    if result.valid && built {
        let vouched = ends.leaves();
        let first_invalid = match first_bad_node {
            Some(seq) => Some(seq),
            None if ends.complete() && vouched == frontier.size() => None,
            // The tree ends before the events (a forged append moves the head, not the
            // frontier), or from there on holds other events than these (a cut tail, a
            // changed or removed frontier): the first event it does not vouch for.
            None => Some(i64::try_from(vouched).unwrap_or(i64::MAX).saturating_add(1)),
        };
        if first_invalid.is_some() {
            result.valid = false;
            result.first_invalid_seq = first_invalid;
        }
    }
    Ok(result)
}

/// Matches a stored frontier (the roots of its tree's right-edge subtrees, left to right)
/// against the subtrees the events complete, in order.
struct FrontierMatch<'a> {
    stored: std::slice::ChunksExact<'a, u8>,
    next: Option<&'a [u8]>,
    /// Leaves covered by the stored subtrees matched so far.
    leaves: u64,
}

impl<'a> FrontierMatch<'a> {
    fn new(stored: Option<&'a [u8]>) -> Self {
        // A malformed frontier matches nothing, like a missing one.
        let bytes = stored.filter(|b| b.len() % 32 == 0).unwrap_or_default();
        let mut stored = bytes.chunks_exact(32);
        let next = stored.next();
        Self {
            stored,
            next,
            leaves: 0,
        }
    }

    /// Takes the subtrees one leaf completed (smallest first).
    fn advance(&mut self, completed: &[(NodeId, tree::Hash)]) {
        for (id, hash) in completed {
            let Some(next) = self.next else {
                return;
            };
            if id.index << id.level == self.leaves && next == hash.as_slice() {
                self.leaves = (id.index + 1) << id.level;
                self.next = self.stored.next();
            }
        }
    }

    /// Whether every stored subtree was matched.
    fn complete(&self) -> bool {
        self.next.is_none()
    }

    fn leaves(&self) -> u64 {
        self.leaves
    }
}

/// The first stored subtree of any tree of at least `2^STORED_LEVEL` leaves.
const FIRST_STORED: NodeId = NodeId {
    level: tree::STORED_LEVEL,
    index: 0,
};

/// The first of `computed` (subtrees in the order the events completed them) that is
/// missing from the store or differs: the `seq` of its first event.
async fn first_differing_node(
    store: &dyn Store,
    chain: &str,
    computed: &[(NodeId, tree::Hash)],
) -> Result<Option<i64>, StoreError> {
    let ids: Vec<NodeId> = computed.iter().map(|(id, _)| *id).collect();
    let found = store.audit_tree_nodes(chain, &ids).await?;
    Ok(computed
        .iter()
        .find(|(id, hash)| found.get(id) != Some(hash))
        .map(|(id, _)| {
            let first_leaf = id.index.saturating_mul(1u64 << id.level);
            i64::try_from(first_leaf)
                .unwrap_or(i64::MAX)
                .saturating_add(1)
        }))
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
