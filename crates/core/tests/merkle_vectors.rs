//! `auditflow_core::merkle` against the Certificate Transparency project's published RFC 6962
//! test vectors (`tests/vectors/rfc6962/`, see its README): the roots of the trees of the eight
//! reference leaves, and every inclusion and consistency probe — each valid proof verifies,
//! each mutated one is refused, and the proofs this crate builds are the published ones.

use std::fs;
use std::path::{Path, PathBuf};

use auditflow_core::merkle::{
    Frontier, Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};
use serde_json::Value;

/// The eight leaf inputs the vectors are built from (hex).
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// The published roots of the trees of the first 0..=8 leaves (transparency-dev/merkle,
/// `testonly/constants.go`, `RootHashes`).
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Standard base64 (with padding), as the vectors write hashes. The workspace has no base64
/// crate and this test is its only reader, so it decodes here.
fn unbase64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text:?}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | value(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A hash as a vector writes it. Some probes hold strings that are no 32-byte hash ("don't
/// care" roots, garbage); those stand in as the hash of their bytes, which keeps what the
/// probes rely on: equal strings are equal, different ones differ.
fn hash(value: &Value) -> Hash {
    let raw = unbase64(value.as_str().expect("a base64 string"));
    Hash::try_from(raw.as_slice()).unwrap_or_else(|_| leaf_hash(&raw))
}

fn proof(value: &Value) -> Vec<Hash> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(hash).collect(),
        other => panic!("a proof: {other}"),
    }
}

fn probes(kind: &str) -> Vec<(PathBuf, Value)> {
    fn walk(dir: &Path, found: &mut Vec<(PathBuf, Value)>) {
        for entry in fs::read_dir(dir).expect("vector folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = fs::read_to_string(&path).expect("vector");
                found.push((path, serde_json::from_str(&text).expect("JSON")));
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/rfc6962")
        .join(kind);
    let mut found = Vec::new();
    walk(&dir, &mut found);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn reference_leaves() -> Vec<Hash> {
    LEAVES.iter().map(|l| leaf_hash(&unhex(l))).collect()
}

#[test]
fn the_roots_of_the_reference_trees_are_the_published_ones() {
    let leaves = reference_leaves();
    let mut frontier = Frontier::new();
    for (size, want) in ROOTS.iter().enumerate() {
        let want = unhex(want);
        assert_eq!(root(&leaves[..size]).as_slice(), want, "size {size}");
        assert_eq!(frontier.root().as_slice(), want, "frontier at size {size}");
        if size < leaves.len() {
            frontier.push(leaves[size]);
        }
    }
}

/// What a probe led to: the verifier's verdict and, for a valid probe over the reference
/// tree, the proof this crate builds for it beside the published one.
type Judged = (Result<(), String>, Option<(Vec<Hash>, Vec<Hash>)>);

/// Judges every probe of `kind` with `judge`: each verdict must be the published one, and
/// every built proof the published proof.
fn judge_all(kind: &str, judge: impl Fn(&Value, &[Hash]) -> Judged) {
    let leaves = reference_leaves();
    let all = probes(kind);
    assert!(all.len() > 80, "{} {kind} probes", all.len());
    let mut built = 0;
    for (path, probe) in &all {
        let want_err = probe["wantErr"].as_bool().expect("wantErr");
        let (verdict, proofs) = judge(probe, &leaves);
        assert_eq!(
            verdict.is_err(),
            want_err,
            "{}: {verdict:?}",
            path.display()
        );
        if let Some((ours, published)) = proofs.filter(|_| !want_err) {
            assert_eq!(ours, published, "{}", path.display());
            built += 1;
        }
    }
    assert!(built >= 5, "{built} {kind} proofs built and compared");
}

#[test]
fn every_published_inclusion_probe_is_judged_as_published() {
    judge_all("inclusion", |probe, leaves| {
        let index = probe["leafIdx"].as_u64().expect("leafIdx");
        let size = probe["treeSize"].as_u64().expect("treeSize");
        let (published, top) = (proof(&probe["proof"]), hash(&probe["root"]));
        // A leaf hash is a 32-byte hash by type here: one of another length is refused
        // before any proof is looked at (as the reference does).
        let leaf = unbase64(probe["leafHash"].as_str().expect("leafHash"));
        let verdict = match Hash::try_from(leaf.as_slice()) {
            Ok(leaf) => {
                verify_inclusion(index, size, &leaf, &published, &top).map_err(|e| e.to_string())
            }
            Err(_) => Err(format!("a leaf hash of {} bytes", leaf.len())),
        };
        let tree = &leaves[..(size as usize).min(leaves.len())];
        let ours = (size as usize <= leaves.len() && top == root(tree))
            .then(|| inclusion_proof(tree, index as usize))
            .flatten();
        (verdict, ours.map(|ours| (ours, published)))
    });
}

#[test]
fn every_published_consistency_probe_is_judged_as_published() {
    judge_all("consistency", |probe, leaves| {
        let first = probe["size1"].as_u64().expect("size1");
        let second = probe["size2"].as_u64().expect("size2");
        let (r1, r2, published) = (
            hash(&probe["root1"]),
            hash(&probe["root2"]),
            proof(&probe["proof"]),
        );
        let verdict =
            verify_consistency(first, second, &r1, &r2, &published).map_err(|e| e.to_string());
        let tree = &leaves[..(second as usize).min(leaves.len())];
        let ours = (first > 0 && second as usize <= leaves.len() && r2 == root(tree))
            .then(|| consistency_proof(tree, first as usize))
            .flatten();
        (verdict, ours.map(|ours| (ours, published)))
    });
}
