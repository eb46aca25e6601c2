//! Append-only Merkle logs as Certificate Transparency defines them (RFC 6962 §2.1, RFC 9162
//! §2.1): SHA-256, a leaf hashed as `H(0x00 ‖ data)`, an interior node as `H(0x01 ‖ left ‖
//! right)`, and the tree over `n` leaves split at the largest power of two below `n`. So a log
//! of audit records can prove that one record is in it (an inclusion proof, an audit path) and
//! that a later tree extends an earlier one without changing it (a consistency proof).
//!
//! - [`Frontier`] appends leaves one at a time and gives the root at any size while holding
//!   only one hash per set bit of the size (the perfect subtrees along the right edge): what a
//!   writer keeps per log.
//! - [`root`], [`inclusion_proof`] and [`consistency_proof`] build from a log's leaf hashes.
//! - [`verify_inclusion`] and [`verify_consistency`] check proofs with nothing but the
//!   hashes, sizes and roots (RFC 9162 §2.1.3.2 and §2.1.4.2): what an auditor runs offline.
//!
//! Checked against the Certificate Transparency project's published test vectors
//! (`crates/core/tests/merkle_vectors.rs`).

use sha2::{Digest, Sha256};

/// A SHA-256 hash: of a leaf, an interior node, or a whole tree (its root).
pub type Hash = [u8; 32];

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The sizes or index cannot describe a proof (an index past the tree, a tree that
    /// shrank).
    #[error("invalid proof request: {0}")]
    Invalid(&'static str),
    /// The proof has more hashes than a proof for its sizes can have.
    #[error("the proof is too long for its sizes")]
    TooLong,
    /// The proof has fewer hashes than a proof for its sizes needs.
    #[error("the proof is too short for its sizes")]
    TooShort,
    /// The proof leads to another root than the one given.
    #[error("the proof does not lead to the given root")]
    RootMismatch,
}

/// The hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (`n` > 1): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of the tree whose leaf hashes are `leaves` (RFC 6962 `MTH`).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 `PATH`), from the leaf's
/// sibling up. `None` when `index` is not a leaf of the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(index, leaves, &mut proof);
    Some(proof)
}

fn path(m: usize, leaves: &[Hash], proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], proof);
        proof.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], proof);
        proof.push(root(&leaves[..k]));
    }
}

/// The proof that the tree of the first `first` of `leaves` is a prefix of the tree of all of
/// them (RFC 6962 `PROOF`): empty when `first` is 0 or all of them. `None` when `first` is
/// larger than the tree.
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Option<Vec<Hash>> {
    if first > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    if first > 0 && first < leaves.len() {
        subproof(first, leaves, true, &mut proof);
    }
    Some(proof)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose root is
/// `root`, by its audit path `proof` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Invalid("the index is not a leaf of the tree"));
    }
    let mut walk = Walk {
        node: index,
        last: size - 1,
    };
    let mut r = *leaf;
    for p in proof {
        r = if walk.next()? {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    }
    walk.end(r == *root)
}

/// Checks that the tree of `first` leaves with root `first_root` is a prefix of the tree of
/// `second` leaves with root `second_root`, by `proof` (RFC 9162 §2.1.4.2). Equal sizes need
/// equal roots and an empty proof; a first tree of no leaves is refused (it proves nothing).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if second < first {
        return Err(ProofError::Invalid(
            "the second tree is smaller than the first",
        ));
    }
    if first == 0 {
        // Every tree extends the empty one: such a proof would prove nothing, and a
        // verifier asked for one is being misled about what it checks.
        return Err(ProofError::Invalid(
            "a consistency proof from the empty tree proves nothing",
        ));
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::TooLong);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::TooShort);
    }
    // The first tree's root is the proof's first hash unless the first tree is a perfect
    // subtree of the second (its size a power of two), when the verifier supplies it.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let mut walk = Walk {
        node: first - 1,
        last: second - 1,
    };
    while walk.node & 1 == 1 {
        walk.up();
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if walk.next()? {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    }
    walk.end(fr == *first_root && sr == *second_root)
}

/// Where a proof's verification stands (RFC 9162's `fn` and `sn`): the index of the node the
/// running hash covers and of the tree's last node, at the current level.
struct Walk {
    node: u64,
    last: u64,
}

impl Walk {
    /// One level up.
    fn up(&mut self) {
        self.node >>= 1;
        self.last >>= 1;
    }

    /// Whether the next proof hash is the running hash's left sibling; moves past it (a
    /// right edge node with no sibling is skipped upwards first). A proof longer than the
    /// tree is high is refused.
    fn next(&mut self) -> Result<bool, ProofError> {
        if self.last == 0 {
            return Err(ProofError::TooLong);
        }
        let left = self.node & 1 == 1 || self.node == self.last;
        if left {
            while self.node & 1 == 0 && self.node != 0 {
                self.up();
            }
        }
        self.up();
        Ok(left)
    }

    /// The verdict once the proof is used up: the root reached, and no level left to climb.
    fn end(&self, reached: bool) -> Result<(), ProofError> {
        match (self.last, reached) {
            (0, true) => Ok(()),
            (0, false) => Err(ProofError::RootMismatch),
            _ => Err(ProofError::TooShort),
        }
    }
}

/// The right edge of a log: the roots of its perfect subtrees, largest first, one per set bit
/// of its size. Appending a leaf merges equal subtrees, as adding one to a binary number
/// carries; the root at any size folds the edge from the right. Deterministic: the same
/// leaves give the same frontier, in any process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Perfect subtree roots, largest (leftmost) first.
    edge: Vec<Hash>,
}

impl Frontier {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier as stored: its size and its edge, largest subtree first. `None` when the
    /// edge does not have one hash per set bit of `size`.
    pub fn from_parts(size: u64, edge: Vec<Hash>) -> Option<Self> {
        (edge.len() == size.count_ones() as usize).then_some(Self { size, edge })
    }

    /// Leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots along the right edge, largest first (what to store).
    pub fn edge(&self) -> &[Hash] {
        &self.edge
    }

    /// Appends a leaf by its hash ([`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        // Each trailing one bit of the old size is a subtree as large as the carry so far.
        let mut merges = self.size.trailing_ones();
        while merges > 0 {
            let left = self
                .edge
                .pop()
                .expect("one edge hash per set bit of the size");
            carry = node_hash(&left, &carry);
            merges -= 1;
        }
        self.edge.push(carry);
        self.size += 1;
    }

    /// The root of the tree of every leaf appended so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev();
        let Some(last) = hashes.next() else {
            return empty_root();
        };
        hashes.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn the_frontier_gives_the_root_of_every_prefix() {
        let all = leaves(70);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.size(), i as u64 + 1);
            assert_eq!(frontier.root(), root(&all[..=i]), "size {}", i + 1);
            let again = Frontier::from_parts(frontier.size(), frontier.edge().to_vec());
            assert_eq!(again.as_ref(), Some(&frontier));
        }
        assert_eq!(Frontier::from_parts(3, vec![[0; 32]]), None);
    }

    proptest! {
        #[test]
        fn every_inclusion_proof_verifies_and_no_other_leaf_does(n in 1usize..80, i in 0usize..80) {
            let all = leaves(n);
            let i = i % n;
            let top = root(&all);
            let proof = inclusion_proof(&all, i).unwrap();
            prop_assert_eq!(verify_inclusion(i as u64, n as u64, &all[i], &proof, &top), Ok(()));
            let other = leaf_hash(b"not in the log");
            prop_assert!(verify_inclusion(i as u64, n as u64, &other, &proof, &top).is_err());
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(verify_inclusion(j as u64, n as u64, &all[i], &proof, &top).is_err());
            }
        }

        #[test]
        fn every_consistency_proof_verifies_and_a_rewritten_prefix_does_not(n in 1usize..80, m in 0usize..80) {
            let all = leaves(n);
            let m = 1 + m % n;
            let proof = consistency_proof(&all, m).unwrap();
            let (old, new) = (root(&all[..m]), root(&all));
            prop_assert_eq!(verify_consistency(m as u64, n as u64, &old, &new, &proof), Ok(()));
            if m > 0 && m < n {
                let mut forged = all.clone();
                forged[m - 1] = leaf_hash(b"rewritten");
                let forged_new = root(&forged);
                prop_assert!(verify_consistency(m as u64, n as u64, &old, &forged_new, &proof).is_err());
            }
        }
    }
}
