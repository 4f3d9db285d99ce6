//! The verifiable audit log (DESIGN §16): signed checkpoints, inclusion and consistency
//! proofs over each chain's Merkle tree, and the periodic verification of recently changed
//! chains. Who may see a chain's proofs is asked as for `GET /vault/audit/verify`
//! ([`Question::ChainAudit`]).

use super::access::Question;
use super::{audit::verify_chain, Caller, Vault};
use crate::audit::note::{Checkpoint, LogKey};
use crate::audit::tree::{self, Hash, Inputs, Plan};
use crate::audit::ChainName;
use crate::error::VaultError;
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// Chains the periodic verifier remembers a last-seen tree of; beyond it, the oldest are
/// forgotten (they are still verified when they change).
const MAX_REMEMBERED_CHAINS: usize = 100_000;

#[derive(Debug, Serialize)]
pub struct InclusionProof {
    pub chain: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub proof: Vec<String>,
    /// The leaf input: the `hash` of the event with `seq` = leaf_index + 1.
    pub event_hash: String,
}

#[derive(Debug, Serialize)]
pub struct ConsistencyProof {
    pub chain: String,
    pub from: u64,
    pub to: u64,
    pub proof: Vec<String>,
}

/// The verifier key of the log, as served and printed.
#[derive(Debug, Serialize)]
pub struct LogKeyInfo {
    pub name: String,
    pub key: String,
}

/// The last pass of the periodic verification: what the compliance report's audit section
/// reads (DESIGN §14 `"audit": {"chains", "invalid_chains", "last_verified_at"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditHealth {
    /// Chains verified in the last pass.
    pub chains_checked: u64,
    /// Chains known to be invalid (until a pass finds them valid again), by name.
    pub invalid_chains: Vec<String>,
    /// When the last pass ended, in Unix seconds; `None` before the first.
    pub last_verified_at: Option<i64>,
}

/// What the periodic verifier carries from one pass to the next.
#[derive(Debug, Default)]
pub struct VerifierState {
    after_gid: i64,
    /// Each chain's tree as last seen (size, root): the next pass proves consistency from it.
    seen: HashMap<String, (u64, Hash)>,
    invalid: BTreeSet<String>,
}

/// Reads what folding `plan` takes: its stored nodes (one query) and the event hashes of its
/// subtrees below the stored levels, and of leaf `leaf` if asked (one query).
pub async fn read_plan(
    store: &dyn Store,
    chain: &str,
    plan: &Plan,
    leaf: Option<u64>,
) -> Result<Inputs, StoreError> {
    let mut ranges = plan.leaf_ranges();
    if let Some(index) = leaf {
        if !ranges.iter().any(|(s, e)| (*s..*e).contains(&index)) {
            ranges.push((index, index.saturating_add(1)));
        }
    }
    Ok(Inputs {
        nodes: store.audit_tree_nodes(chain, &plan.nodes()).await?,
        leaves: store.audit_leaves(chain, &ranges).await?,
    })
}

/// A chain's tree as stored at its head, checked against the head: the tree's last leaf is
/// the head's event and the frontier's root is the root of the stored nodes and events.
/// `None` for a chain without a head.
pub async fn stored_tree(
    store: &dyn Store,
    chain: &str,
) -> Result<Option<(u64, Hash)>, VaultError> {
    let Some(head) = store.audit_tree_head(chain).await? else {
        return Ok(None);
    };
    let size = u64::try_from(head.seq).unwrap_or(0);
    if size == 0 {
        return Ok(Some((0, tree::empty_root())));
    }
    let plan = Plan::root(size);
    let last = size - 1;
    let inputs = read_plan(store, chain, &plan, Some(last)).await?;
    let root = first(
        plan.hashes(&inputs)
            .map_err(|e| integrity(chain, &e.to_string()))?,
    )?;
    let mut head_leaf = [0u8; 32];
    hex::decode_to_slice(&head.hash, &mut head_leaf)
        .map_err(|_| integrity(chain, "the head hash is not hex"))?;
    if inputs.leaves.get(&last) != Some(&head_leaf) {
        return Err(integrity(
            chain,
            "the tree's last leaf is not the head event",
        ));
    }
    // Events written around the vault move the head, not the frontier: it is then not the
    // frontier of the head's size, or not of the stored nodes and events.
    if let Some(bytes) = &head.frontier {
        let frontier = tree::Frontier::from_bytes(size, bytes)
            .map_err(|e| integrity(chain, &e.to_string()))?;
        if frontier.root() != root {
            return Err(integrity(
                chain,
                "the frontier disagrees with the stored nodes",
            ));
        }
    }
    Ok(Some((size, root)))
}

fn first(hashes: Vec<Hash>) -> Result<Hash, VaultError> {
    hashes
        .into_iter()
        .next()
        .ok_or_else(|| VaultError::Internal(anyhow::anyhow!("empty tree plan")))
}

/// A chain whose tree and head disagree: never signed, logged loudly, answered 500.
fn integrity(chain: &str, what: &str) -> VaultError {
    tracing::error!(chain, what, "audit tree integrity failure");
    VaultError::Internal(anyhow::anyhow!("audit tree of {chain}: {what}"))
}

fn hexes(hashes: Vec<Hash>) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// A requested size, checked against the tree.
fn size_param(name: &str, value: Option<i64>, size: u64, min: u64) -> Result<u64, VaultError> {
    let Some(value) = value else {
        return Ok(size);
    };
    match u64::try_from(value) {
        Ok(v) if v >= min && v <= size => Ok(v),
        _ => Err(VaultError::BadRequest(format!(
            "{name} must be between {min} and the tree size {size}"
        ))),
    }
}

impl Vault {
    fn log_key(&self) -> Result<&LogKey, VaultError> {
        self.log_key
            .as_deref()
            .ok_or_else(|| VaultError::Internal(anyhow::anyhow!("no log key loaded")))
    }

    /// The log's verifier key (any authenticated caller may have it).
    pub fn log_verifier_key(&self) -> Result<LogKeyInfo, VaultError> {
        let key = self.log_key()?;
        Ok(LogKeyInfo {
            name: key.name().to_owned(),
            key: key.verifier().to_string(),
        })
    }

    /// The chain's tree at its head, once `caller` may see the chain.
    async fn visible_tree(
        &self,
        caller: &Caller,
        chain: &ChainName,
        event_type: &'static str,
    ) -> Result<(String, u64, Hash), VaultError> {
        self.authorize(caller, Question::ChainAudit { chain, event_type })
            .await?;
        let name = chain.to_chain();
        match stored_tree(self.store.as_ref(), &name).await? {
            Some((size, root)) if size > 0 => Ok((name, size, root)),
            _ => Err(VaultError::NotFound("chain")),
        }
    }

    /// The signed checkpoint of the chain's latest tree (a C2SP signed note).
    pub async fn checkpoint(
        &self,
        caller: &Caller,
        chain: &ChainName,
    ) -> Result<String, VaultError> {
        let key = self.log_key()?;
        let (name, size, root) = self.visible_tree(caller, chain, "audit.checkpoint").await?;
        let checkpoint = Checkpoint {
            origin: format!("{}/{name}", key.name()),
            size,
            root,
        };
        Ok(key.sign(&checkpoint.body()))
    }

    /// The inclusion proof of the event `seq` in the tree of `tree_size` (default: latest).
    pub async fn inclusion_proof(
        &self,
        caller: &Caller,
        chain: &ChainName,
        seq: i64,
        tree_size: Option<i64>,
    ) -> Result<InclusionProof, VaultError> {
        let (name, size, _) = self.visible_tree(caller, chain, "audit.proof").await?;
        let tree_size = size_param("tree_size", tree_size, size, 1)?;
        let seq = size_param("seq", Some(seq), tree_size, 1)?;
        let index = seq - 1;
        let plan =
            Plan::inclusion(index, tree_size).map_err(|e| VaultError::BadRequest(e.to_string()))?;
        let inputs = read_plan(self.store.as_ref(), &name, &plan, Some(index)).await?;
        let proof = plan
            .hashes(&inputs)
            .map_err(|e| integrity(&name, &e.to_string()))?;
        // The leaf input is the event's own hash, read with the proof.
        let event_hash = match inputs.leaves.get(&index) {
            Some(input) => hex::encode(input),
            None => return Err(integrity(&name, "the event of a tree leaf is missing")),
        };
        Ok(InclusionProof {
            chain: name,
            leaf_index: index,
            tree_size,
            proof: hexes(proof),
            event_hash,
        })
    }

    /// The consistency proof between two sizes of the chain's tree (`to` default: latest).
    pub async fn consistency_proof(
        &self,
        caller: &Caller,
        chain: &ChainName,
        from: i64,
        to: Option<i64>,
    ) -> Result<ConsistencyProof, VaultError> {
        let (name, size, _) = self.visible_tree(caller, chain, "audit.proof").await?;
        let to = size_param("to", to, size, 1)?;
        let from = size_param("from", Some(from), to, 1)?;
        let plan =
            Plan::consistency(from, to).map_err(|e| VaultError::BadRequest(e.to_string()))?;
        let inputs = read_plan(self.store.as_ref(), &name, &plan, None).await?;
        let proof = plan
            .hashes(&inputs)
            .map_err(|e| integrity(&name, &e.to_string()))?;
        Ok(ConsistencyProof {
            chain: name,
            from,
            to,
            proof: hexes(proof),
        })
    }

    /// Builds the trees of chains written before trees were kept, so that every chain can be
    /// checkpointed and proved; run by `serve` at start-up (appends also build a missing tree).
    pub async fn build_missing_trees(&self) -> Result<u64, VaultError> {
        let mut built = 0;
        for chain in self.store.audit_chains_without_tree().await? {
            if self
                .store
                .audit_build_tree(&chain)
                .await
                .map_err(|e| self.store_error(e))?
            {
                built += 1;
            }
        }
        Ok(built)
    }

    /// The last periodic verification's result.
    pub fn audit_health(&self) -> AuditHealth {
        match self.audit_health.lock() {
            Ok(health) => health.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// One pass of the periodic verification (DESIGN §16): every chain with events since the
    /// last pass is verified (hash chain, tree against events, and consistency with the tree
    /// the last pass saw), and every chain seen before must still exist. Updates the gauges
    /// and [`Self::audit_health`].
    pub async fn verify_changed_chains(&self, state: &mut VerifierState) -> Result<(), VaultError> {
        let (changed, newest) = self.store.audit_changed_since(state.after_gid).await?;
        let mut to_check: BTreeSet<String> = changed.into_iter().collect();
        // A chain seen before is re-checked when its head no longer has the size seen (one
        // query for all heads): one that vanished or shrank is caught even though no event
        // "changed" it.
        if !state.seen.is_empty() {
            let heads: HashMap<String, i64> =
                self.store.audit_head_sizes().await?.into_iter().collect();
            for (chain, (size, _)) in &state.seen {
                let same = heads
                    .get(chain)
                    .is_some_and(|seq| u64::try_from(*seq) == Ok(*size));
                if !same {
                    to_check.insert(chain.clone());
                }
            }
        }
        let mut checked = 0u64;
        for chain in &to_check {
            checked += 1;
            match self.verify_one(chain, state.seen.get(chain).copied()).await {
                Ok(Some(tree)) => {
                    state.invalid.remove(chain);
                    if state.seen.len() < MAX_REMEMBERED_CHAINS || state.seen.contains_key(chain) {
                        state.seen.insert(chain.clone(), tree);
                    }
                }
                Ok(None) => {
                    state.invalid.remove(chain);
                }
                Err(why) => {
                    tracing::error!(chain, why, "audit chain failed periodic verification");
                    state.invalid.insert(chain.clone());
                }
            }
        }
        state.after_gid = newest;
        let now = self.clock.now_secs();
        self.metrics
            .audit_invalid_chains
            .set(i64::try_from(state.invalid.len()).unwrap_or(i64::MAX));
        self.metrics.audit_last_verified.set(now);
        let health = AuditHealth {
            chains_checked: checked,
            invalid_chains: state.invalid.iter().cloned().collect(),
            last_verified_at: Some(now),
        };
        match self.audit_health.lock() {
            Ok(mut slot) => *slot = health,
            Err(poisoned) => *poisoned.into_inner() = health,
        }
        Ok(())
    }

    /// Verifies one chain; its tree when valid (`None` for a chain never seen and not
    /// there), else why not.
    async fn verify_one(
        &self,
        chain: &str,
        seen: Option<(u64, Hash)>,
    ) -> Result<Option<(u64, Hash)>, String> {
        let verification = verify_chain(self.store.as_ref(), chain)
            .await
            .map_err(|e| format!("cannot read the chain: {e}"))?;
        if !verification.valid {
            return Err(format!(
                "invalid from seq {}",
                verification.first_invalid_seq.unwrap_or_default()
            ));
        }
        let tree = stored_tree(self.store.as_ref(), chain)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let Some((size, root)) = tree else {
            return match seen {
                Some(_) => Err("the chain vanished".into()),
                None => Ok(None),
            };
        };
        if let Some((old_size, old_root)) = seen {
            if old_size > size {
                return Err(format!("the tree shrank from {old_size} to {size} leaves"));
            }
            let plan = Plan::consistency(old_size, size).map_err(|e| e.to_string())?;
            let inputs = read_plan(self.store.as_ref(), chain, &plan, None)
                .await
                .map_err(|e| e.to_string())?;
            let proof = plan.hashes(&inputs).map_err(|e| e.to_string())?;
            tree::verify_consistency(old_size, size, &old_root, &root, &proof)
                .map_err(|e| format!("not consistent with the tree seen before: {e}"))?;
        }
        Ok(Some((size, root)))
    }
}
