//! The RFC 6962 / RFC 9162 Merkle tree of a chain (DESIGN §16): leaf `i` is the event with
//! `seq` = i+1, its leaf input the 32 raw bytes of the event's `hash`.
//!
//! Storage keeps every *perfect* subtree of at least [`STORED_LEVEL`] levels once it is
//! complete (a node `(level, index)` covers leaves `[index << level, (index + 1) << level)`);
//! perfect subtrees never change. Smaller subtrees are not stored: they are recomputed from
//! their leaf inputs, the event hashes the chain stores anyway. So any past tree's root,
//! inclusion proof and consistency proof is a fold over O(log n) stored nodes and at most
//! [`MAX_PLAN_LEAVES`] event hashes, never a recomputation over the chain. Appends need only the
//! "frontier" (the roots of the perfect subtrees of the right edge, one per set bit of the
//! size), kept beside the chain head.
//!
//! Why not store every level: a stored level 0 and 1.. cost about two rows per event on top of
//! the event's own row, which slowed appends on SQLite by a third (docs/performance.md). With
//! subtrees of 2^4 leaves and up, an append writes on average one row per 8 events, and a proof
//! reads at most a few blocks of 16 event hashes more.
//!
//! Why hand-written: the crates that fit the math (`ct-merkle`, `tlog_tiles`) either hold the
//! whole tree in memory or read stored hashes through a synchronous callback in Go's stored-hash
//! index order, which fits neither an async SQL transaction nor one batched read per proof. The
//! code below is the RFC's own recursion (PATH, SUBPROOF and the §2.1.3.2/§2.1.4.2 verifiers),
//! checked in the tests against a second implementation and, in `tests/api`, against an
//! independent one in Python.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub type Hash = [u8; 32];

/// Most leaves a tree may have: sizes and indexes travel as `i64` in SQL and JSON.
pub const MAX_SIZE: u64 = u64::MAX >> 1;

/// The lowest level of the subtrees that are stored (`audit_tree`); those below it are folded
/// from event hashes. Migration 0009 removed the rows below it from older databases.
pub const STORED_LEVEL: u8 = 4;

/// Most leaf inputs any one plan folds: the subtrees below [`STORED_LEVEL`] that a root or
/// proof needs lie in at most three blocks of `2^STORED_LEVEL` leaves (checked in the tests).
pub const MAX_PLAN_LEAVES: u64 = 3 << STORED_LEVEL;

/// Whether the node is one that is stored (rather than folded from leaves when needed).
pub fn is_stored(id: NodeId) -> bool {
    id.level >= STORED_LEVEL
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("the stored tree lacks node ({level}, {index})")]
    MissingNode { level: u8, index: u64 },
    #[error("the event of leaf {index} is missing")]
    MissingLeaf { index: u64 },
    #[error("stored tree state is malformed: {0}")]
    Malformed(&'static str),
    #[error("{0}")]
    BadRange(&'static str),
    #[error("the proof does not verify: {0}")]
    Invalid(&'static str),
}

/// A perfect subtree: `2^level` leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

pub fn leaf_hash(input: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(input);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The roots of the perfect subtrees of a tree's right edge, largest first: all an append
/// needs to extend the tree and to know its root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// A frontier as stored: `size` leaves, the concatenated 32-byte roots.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Result<Self, TreeError> {
        let chunks = bytes.chunks_exact(32);
        if !chunks.remainder().is_empty() || chunks.len() != size.count_ones() as usize {
            return Err(TreeError::Malformed(
                "frontier length does not match the size",
            ));
        }
        let hashes = chunks
            .map(|c| Hash::try_from(c).map_err(|_| TreeError::Malformed("frontier hash")))
            .collect::<Result<_, _>>()?;
        Ok(Self { size, hashes })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; pushes onto `new_nodes` every perfect subtree it completes, the leaf
    /// itself first (the caller keeps those that [`is_stored`]).
    pub fn push(&mut self, leaf_input: &[u8], new_nodes: &mut Vec<(NodeId, Hash)>) {
        let mut hash = leaf_hash(leaf_input);
        let mut id = NodeId {
            level: 0,
            index: self.size,
        };
        new_nodes.push((id, hash));
        while id.index & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break; // unreachable: an odd index has its left sibling in the frontier
            };
            hash = node_hash(&left, &hash);
            id = NodeId {
                level: id.level.saturating_add(1),
                index: id.index >> 1,
            };
            new_nodes.push((id, hash));
        }
        self.hashes.push(hash);
        self.size = self.size.saturating_add(1);
    }

    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }
}

/// MTH of perfect subtrees given left to right, largest first: `H(a, H(b, H(c, ...)))`.
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |right, left| node_hash(left, &right))
}

/// The perfect subtrees that make up leaves `[start, end)`, largest first. For the ranges the
/// RFC recursion produces, their right fold is MTH of the range.
fn perfect_parts(mut start: u64, end: u64, out: &mut Vec<NodeId>) {
    while start < end {
        let mut level: u8 = 0;
        loop {
            let next = level.saturating_add(1);
            let Some(size) = 1u64.checked_shl(u32::from(next)) else {
                break;
            };
            if next >= 63 || start % size != 0 || start.saturating_add(size) > end {
                break;
            }
            level = next;
        }
        out.push(NodeId {
            level,
            index: start >> level,
        });
        start = start.saturating_add(1u64 << level);
    }
}

/// Largest power of two strictly below `n` (`n` ≥ 2).
fn split(n: u64) -> u64 {
    let mut k = 1u64;
    while k.saturating_mul(2) < n {
        k = k.saturating_mul(2);
    }
    k
}

/// The ranges whose MTHs form PATH(m, D[start:end]), bottom-up (RFC 9162 §2.1.3.1).
fn path_ranges(m: u64, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_ranges(m, start, start + k, out);
        out.push((start + k, end));
    } else {
        path_ranges(m - k, start + k, end, out);
        out.push((start, start + k));
    }
}

/// The ranges of SUBPROOF(m, D[start:end], b) (RFC 9162 §2.1.4.1), in proof order.
fn subproof_ranges(m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if m == n {
        if !complete {
            out.push((start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof_ranges(m, start, start + k, complete, out);
        out.push((start + k, end));
    } else {
        subproof_ranges(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

/// What a plan is folded from: stored subtrees, and leaf inputs (the 32 raw bytes of event
/// hashes) by leaf index for the subtrees below [`STORED_LEVEL`].
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub nodes: HashMap<NodeId, Hash>,
    pub leaves: HashMap<u64, Hash>,
}

impl Inputs {
    /// The hash of a perfect subtree: stored, or folded from its leaves.
    fn subtree(&self, id: NodeId) -> Result<Hash, TreeError> {
        if is_stored(id) {
            return self.nodes.get(&id).copied().ok_or(TreeError::MissingNode {
                level: id.level,
                index: id.index,
            });
        }
        let start = id.index << id.level;
        let mut level: Vec<Hash> = (start..start + (1u64 << id.level))
            .map(|index| {
                self.leaves
                    .get(&index)
                    .map(|input| leaf_hash(input))
                    .ok_or(TreeError::MissingLeaf { index })
            })
            .collect::<Result<_, _>>()?;
        while level.len() > 1 {
            level = level
                .chunks_exact(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    _ => empty_root(), // unreachable: chunks_exact(2)
                })
                .collect();
        }
        level
            .pop()
            .ok_or(TreeError::Malformed("a subtree without leaves"))
    }
}

/// What a proof over the stored tree needs: the ranges whose hashes it returns, and the
/// stored nodes and leaves they are folded from. Plan first, read the nodes and leaves (one
/// query each), then [`Plan::hashes`].
#[derive(Debug, Clone)]
pub struct Plan {
    ranges: Vec<(u64, u64)>,
}

impl Plan {
    /// The root of the tree of `size` leaves.
    pub fn root(size: u64) -> Self {
        Self {
            ranges: vec![(0, size)],
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, TreeError> {
        if index >= size {
            return Err(TreeError::BadRange("the leaf is beyond the tree size"));
        }
        let mut ranges = Vec::new();
        path_ranges(index, 0, size, &mut ranges);
        Ok(Self { ranges })
    }

    /// The consistency proof from the tree of `from` leaves to the one of `to` leaves.
    pub fn consistency(from: u64, to: u64) -> Result<Self, TreeError> {
        if from == 0 || from > to {
            return Err(TreeError::BadRange("from must be between 1 and to"));
        }
        let mut ranges = Vec::new();
        if from < to {
            subproof_ranges(from, 0, to, true, &mut ranges);
        }
        Ok(Self { ranges })
    }

    /// Every perfect subtree the plan folds, sorted, once each.
    fn parts(&self) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        for (start, end) in &self.ranges {
            perfect_parts(*start, *end, &mut nodes);
        }
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Every stored node the plan folds.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.parts()
            .into_iter()
            .filter(|id| is_stored(*id))
            .collect()
    }

    /// The leaves whose inputs the plan folds (those of its subtrees below [`STORED_LEVEL`]),
    /// as sorted, disjoint ranges `[start, end)`; at most [`MAX_PLAN_LEAVES`] in all.
    pub fn leaf_ranges(&self) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut parts: Vec<NodeId> = self
            .parts()
            .into_iter()
            .filter(|id| !is_stored(*id))
            .collect();
        parts.sort_unstable_by_key(|id| id.index << id.level);
        for id in parts {
            let (start, end) = (id.index << id.level, (id.index + 1) << id.level);
            match ranges.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => ranges.push((start, end)),
            }
        }
        ranges
    }

    /// The hashes of the plan's ranges, in order, from the nodes and leaves read for it.
    pub fn hashes(&self, inputs: &Inputs) -> Result<Vec<Hash>, TreeError> {
        let mut parts = Vec::new();
        self.ranges
            .iter()
            .map(|(start, end)| {
                parts.clear();
                perfect_parts(*start, *end, &mut parts);
                let hashes = parts
                    .iter()
                    .map(|id| inputs.subtree(*id))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(fold_right(&hashes))
            })
            .collect()
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TreeError> {
    if index >= size {
        return Err(TreeError::Invalid("leaf index beyond the tree size"));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(TreeError::Invalid("proof too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(TreeError::Invalid("proof too short"));
    }
    if &r != root {
        return Err(TreeError::Invalid("root mismatch"));
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> Result<(), TreeError> {
    if from == 0 || from > to {
        return Err(TreeError::Invalid("sizes out of order"));
    }
    if from == to {
        return match (proof.is_empty(), from_root == to_root) {
            (true, true) => Ok(()),
            (false, _) => Err(TreeError::Invalid("proof must be empty for equal sizes")),
            (true, false) => Err(TreeError::Invalid("different roots for the same size")),
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(TreeError::Invalid("empty proof"));
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(TreeError::Invalid("proof too long"));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(TreeError::Invalid("proof too short"));
    }
    if &fr != from_root || &sr != to_root {
        return Err(TreeError::Invalid("root mismatch"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// MTH straight from RFC 6962 §2.1, over the leaf inputs: the second implementation.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = usize::try_from(split(n as u64)).unwrap();
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = usize::try_from(split(n as u64)).unwrap();
        if m < k {
            let mut p = reference_path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn reference_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![mth(leaves)] };
        }
        let k = usize::try_from(split(n as u64)).unwrap();
        if m <= k {
            let mut p = reference_subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = reference_subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// `n` leaves, the nodes a store would keep of their tree (those that [`is_stored`]), and
    /// the frontier.
    fn build(n: usize) -> (Vec<Hash>, HashMap<NodeId, Hash>, Frontier) {
        let leaves: Vec<Hash> = (0..n)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect();
        let mut frontier = Frontier::default();
        let mut nodes = Vec::new();
        for leaf in &leaves {
            frontier.push(leaf, &mut nodes);
        }
        let stored = nodes.into_iter().filter(|(id, _)| is_stored(*id)).collect();
        (leaves, stored, frontier)
    }

    /// What a store would read for `plan`: its stored nodes and the leaves of its leaf ranges,
    /// nothing more (so a range the plan forgot to name fails the fold).
    fn read(plan: &Plan, stored: &HashMap<NodeId, Hash>, leaves: &[Hash]) -> Inputs {
        let nodes = plan
            .nodes()
            .into_iter()
            .filter_map(|id| stored.get(&id).map(|h| (id, *h)))
            .collect();
        let leaves = plan
            .leaf_ranges()
            .into_iter()
            .flat_map(|(start, end)| start..end)
            .map(|i| (i, leaves[usize::try_from(i).unwrap()]))
            .collect();
        Inputs { nodes, leaves }
    }

    fn hashes_of(plan: &Plan, stored: &HashMap<NodeId, Hash>, leaves: &[Hash]) -> Vec<Hash> {
        plan.hashes(&read(plan, stored, leaves)).unwrap()
    }

    #[test]
    fn roots_match_the_rfc_definition_for_every_size_up_to_70() {
        let (leaves, stored, _) = build(70);
        for n in 0..=70usize {
            let mut f = Frontier::default();
            let mut sink = Vec::new();
            for leaf in &leaves[..n] {
                f.push(leaf, &mut sink);
            }
            assert_eq!(f.root(), mth(&leaves[..n]), "size {n}");
            if n > 0 {
                let root = hashes_of(&Plan::root(n as u64), &stored, &leaves);
                assert_eq!(root, vec![mth(&leaves[..n])], "stored root of size {n}");
            }
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference_and_verify() {
        let (leaves, stored, _) = build(70);
        for n in 1..=70usize {
            let root = mth(&leaves[..n]);
            for m in 0..n {
                let proof = hashes_of(
                    &Plan::inclusion(m as u64, n as u64).unwrap(),
                    &stored,
                    &leaves,
                );
                assert_eq!(proof, reference_path(m, &leaves[..n]), "m {m} n {n}");
                let leaf = leaf_hash(&leaves[m]);
                verify_inclusion(m as u64, n as u64, &leaf, &proof, &root).unwrap();
                let other = leaf_hash(&leaves[(m + 1) % 70]);
                if n > 1 || m != 0 {
                    assert!(verify_inclusion(m as u64, n as u64, &other, &proof, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference_and_verify() {
        let (leaves, stored, _) = build(70);
        for to in 1..=70usize {
            for from in 1..=to {
                let plan = Plan::consistency(from as u64, to as u64).unwrap();
                let proof = hashes_of(&plan, &stored, &leaves);
                let expected = if from == to {
                    vec![]
                } else {
                    reference_subproof(from, &leaves[..to], true)
                };
                assert_eq!(proof, expected, "{from} -> {to}");
                let (a, b) = (mth(&leaves[..from]), mth(&leaves[..to]));
                verify_consistency(from as u64, to as u64, &a, &b, &proof).unwrap();
                // A rewritten first leaf breaks it.
                let mut forged = leaves[..to].to_vec();
                forged[0] = [7u8; 32];
                let b2 = mth(&forged);
                if from < to {
                    assert!(verify_consistency(from as u64, to as u64, &a, &b2, &proof).is_err());
                }
            }
        }
    }

    fn plan_size_bits(plan: &Plan) -> usize {
        let end = plan.ranges.iter().map(|r| r.1).max().unwrap_or(0);
        end.leading_zeros() as usize
    }

    /// Proofs stay O(log n) reads whatever the size: at most two stored nodes per level and
    /// [`MAX_PLAN_LEAVES`] event hashes, in at most three ranges (sizes around every power of
    /// two up to 2^62, every leaf and old size near the edges of the blocks).
    #[test]
    fn plans_read_a_bounded_number_of_nodes_and_leaves() {
        let check = |plan: Plan, what: &str| {
            let n = plan.nodes().len();
            let ranges = plan.leaf_ranges();
            let leaves: u64 = ranges.iter().map(|(s, e)| e - s).sum();
            let log = 64 - plan_size_bits(&plan);
            assert!(n <= 2 * log + 2, "{what}: {n} nodes");
            assert!(leaves <= MAX_PLAN_LEAVES, "{what}: {leaves} leaves");
            assert!(ranges.len() <= 3, "{what}: {ranges:?}");
            assert!(
                ranges.windows(2).all(|w| w[0].1 < w[1].0),
                "{what}: {ranges:?}"
            );
            for id in plan.nodes() {
                assert!(is_stored(id), "{what}: {id:?}");
            }
        };
        let mut sizes: Vec<u64> = (1..=300).collect();
        for bits in 5..62 {
            let p = 1u64 << bits;
            sizes.extend([
                p - 17,
                p - 16,
                p - 15,
                p - 1,
                p,
                p + 1,
                p + 15,
                p + 16,
                p + 17,
            ]);
            sizes.extend([p + (p >> 1) + 5, p + 12_345 % p]);
        }
        for &size in &sizes {
            let near = |x: u64| -> Vec<u64> {
                let mut v = vec![0, 1, 15, 16, 17, x / 2, x / 3 + 7];
                v.extend([
                    x.saturating_sub(17),
                    x.saturating_sub(16),
                    x.saturating_sub(1),
                ]);
                v.into_iter().filter(|&i| i < x).collect()
            };
            let small = size <= 300;
            let indexes: Vec<u64> = if small {
                (0..size).collect()
            } else {
                near(size)
            };
            check(Plan::root(size), &format!("root {size}"));
            for &i in &indexes {
                check(
                    Plan::inclusion(i, size).unwrap(),
                    &format!("leaf {i} of {size}"),
                );
                check(
                    Plan::consistency(i + 1, size).unwrap(),
                    &format!("{} -> {size}", i + 1),
                );
            }
            assert!(Plan::root(size).nodes().len() <= 64);
        }
    }

    #[test]
    fn frontier_round_trips_and_refuses_a_wrong_length() {
        let (_, _, frontier) = build(13);
        let again = Frontier::from_bytes(13, &frontier.to_bytes()).unwrap();
        assert_eq!(again, frontier);
        assert!(Frontier::from_bytes(12, &frontier.to_bytes()).is_err());
        assert!(Frontier::from_bytes(13, &[0u8; 31]).is_err());
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(Plan::inclusion(5, 5).is_err());
        assert!(Plan::consistency(0, 5).is_err());
        assert!(Plan::consistency(6, 5).is_err());
    }
}
