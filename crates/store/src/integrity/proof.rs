//! One record's proof, for `auditflow prove` and `auditflow verify-proof`: its leaf, an
//! inclusion proof (RFC 9162 audit path) against a signed checkpoint of its log, and a
//! consistency proof from an older checkpoint to that one.
//!
//! Checking a proof ([`RecordProof::check`]) is pure and needs the public key alone: no
//! database, no Kafka. An auditor handed one record's proof learns that the record, exactly as
//! its leaf describes it (its clear columns, where its rows are, the digests of its
//! ciphertexts), is leaf `index` of a log whose checkpoint the key's holder signed — and,
//! with the consistency proof, that the log only grew between the two checkpoints.

use serde::{Deserialize, Serialize};

use auditflow_core::checkpoint::SignedCheckpoint;
use auditflow_core::hex;
use auditflow_core::merkle::{self, Hash, leaf_hash};

use super::Leaf;

/// A record's proof, as `auditflow prove` prints it (hashes and bytes in hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordProof {
    /// The record's event id.
    pub event_id: String,
    /// The leaf's bytes, hex ([`Leaf::decode`] reads them).
    pub leaf: String,
    /// The leaf's index in its log (0-based).
    pub index: u64,
    /// The checkpoint the record is proven under.
    pub checkpoint: SignedCheckpoint,
    /// The audit path from the leaf to the checkpoint's root, hex.
    pub inclusion: Vec<String>,
    /// From an older checkpoint of the log to `checkpoint`, when the log has one.
    pub consistency: Option<ConsistencyProof>,
}

/// That a log only grew from one checkpoint to a later one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older checkpoint.
    pub from: SignedCheckpoint,
    /// RFC 9162 consistency proof from `from`'s tree to the newer one's, hex.
    pub proof: Vec<String>,
}

/// What a valid proof establishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Proven {
    /// The record's leaf, decoded.
    pub leaf: Leaf,
    /// Its index in its log.
    pub index: u64,
    /// The size of the checkpoint it was proven under.
    pub size: u64,
    /// The older checkpoint's size, when consistency was proven too.
    pub consistent_from: Option<u64>,
}

fn hashes(hex_list: &[String]) -> Result<Vec<Hash>, String> {
    hex_list
        .iter()
        .map(|h| {
            hex::decode_array::<32>(h).ok_or_else(|| "a proof hash is not 64 hex digits".to_owned())
        })
        .collect()
}

impl RecordProof {
    /// The proof of the leaf at `index` of `leaves` (the log's stored leaf bytes, in order)
    /// under `checkpoint`, with consistency from `older` when given. `None` when the checkpoint
    /// does not cover the leaf, or `leaves` are fewer than it covers.
    pub fn build(
        leaves: &[Vec<u8>],
        index: usize,
        checkpoint: SignedCheckpoint,
        older: Option<SignedCheckpoint>,
    ) -> Option<Self> {
        let size = usize::try_from(checkpoint.checkpoint.size).ok()?;
        if index >= size || leaves.len() < size {
            return None;
        }
        let leaf = &leaves[index];
        let hashed: Vec<Hash> = leaves[..size].iter().map(|l| leaf_hash(l)).collect();
        let inclusion = merkle::inclusion_proof(&hashed, index)?;
        let consistency = match older {
            Some(from) => {
                let first = usize::try_from(from.checkpoint.size).ok()?;
                let proof = merkle::consistency_proof(&hashed, first)?;
                Some(ConsistencyProof {
                    from,
                    proof: proof.iter().map(|h| hex::encode(h)).collect(),
                })
            }
            None => None,
        };
        Some(Self {
            event_id: Leaf::decode(leaf).ok()?.event_id,
            leaf: hex::encode(leaf),
            index: index as u64,
            checkpoint,
            inclusion: inclusion.iter().map(|h| hex::encode(h)).collect(),
            consistency,
        })
    }

    /// Checks the proof with the public key alone; what it proves, or why it fails (one line,
    /// naming the part that does not check out).
    pub fn check(&self, public_key: &[u8; 32]) -> Result<Proven, String> {
        let bytes = hex_bytes(&self.leaf).ok_or("the leaf is not hex")?;
        let leaf = Leaf::decode(&bytes).map_err(|why| format!("the leaf is malformed: {why}"))?;
        if leaf.event_id != self.event_id {
            return Err("the leaf is another record's".into());
        }
        let cp = &self.checkpoint;
        if leaf.position.log != cp.checkpoint.log {
            return Err("the leaf is of another log than the checkpoint".into());
        }
        cp.verify(public_key)
            .map_err(|_| "the checkpoint is not signed by the key".to_owned())?;
        let path = hashes(&self.inclusion)?;
        merkle::verify_inclusion(
            self.index,
            cp.checkpoint.size,
            &leaf_hash(&bytes),
            &path,
            &cp.checkpoint.root,
        )
        .map_err(|e| format!("the inclusion proof fails: {e}"))?;
        let consistent_from = match &self.consistency {
            None => None,
            Some(c) => {
                c.from
                    .verify(public_key)
                    .map_err(|_| "the older checkpoint is not signed by the key".to_owned())?;
                if c.from.checkpoint.log != cp.checkpoint.log {
                    return Err("the older checkpoint is of another log".into());
                }
                merkle::verify_consistency(
                    c.from.checkpoint.size,
                    cp.checkpoint.size,
                    &c.from.checkpoint.root,
                    &cp.checkpoint.root,
                    &hashes(&c.proof)?,
                )
                .map_err(|e| format!("the consistency proof fails: {e}"))?;
                Some(c.from.checkpoint.size)
            }
        };
        Ok(Proven {
            leaf,
            index: self.index,
            size: cp.checkpoint.size,
            consistent_from,
        })
    }
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let mut out = vec![0u8; text.len() / 2];
    hex::decode_into(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::leaf::tests::sample;
    use crate::integrity::{CheckpointRule, LogTail};
    use auditflow_core::checkpoint::{LogId, public_key};

    const SEED: [u8; 32] = [3; 32];

    /// A log of `n` leaves checkpointed every 4, its leaves and its checkpoints.
    fn log(n: i64) -> (Vec<Vec<u8>>, Vec<SignedCheckpoint>) {
        let id = LogId {
            topic: "audit.user.action".into(),
            partition: 0,
        };
        let leaves: Vec<(i64, Vec<u8>)> = (0..n)
            .map(|offset| {
                let mut leaf = sample();
                leaf.position.log = id.clone();
                leaf.position.offset = offset * 2;
                leaf.event_id = format!("ua-{offset}");
                (offset * 2, leaf.encode())
            })
            .collect();
        let rule = CheckpointRule {
            every: 4,
            interval_ms: i64::MAX,
        };
        let mut tail = LogTail::empty(id);
        let checkpoints = tail.extend(&leaves, rule, &SEED).unwrap();
        (leaves.into_iter().map(|(_, b)| b).collect(), checkpoints)
    }

    #[test]
    fn a_proof_checks_out_with_the_public_key_alone() {
        let (leaves, cps) = log(13);
        let newest = cps.last().unwrap().clone();
        for index in 0..12 {
            let proof =
                RecordProof::build(&leaves, index, newest.clone(), Some(cps[0].clone())).unwrap();
            let proven = proof.check(&public_key(&SEED)).unwrap();
            assert_eq!(proven.leaf.event_id, format!("ua-{index}"));
            assert_eq!(
                (proven.index, proven.size, proven.consistent_from),
                (index as u64, 12, Some(4))
            );
            // Through JSON, as an auditor receives it.
            let json = serde_json::to_string(&proof).unwrap();
            let back: RecordProof = serde_json::from_str(&json).unwrap();
            assert_eq!(back, proof);
        }
        // The newest leaf is not covered yet.
        assert!(RecordProof::build(&leaves, 12, newest, None).is_none());
    }

    #[test]
    fn any_changed_byte_of_a_proof_fails_it() {
        let (leaves, cps) = log(12);
        let proof = RecordProof::build(&leaves, 5, cps[2].clone(), Some(cps[1].clone())).unwrap();
        let key = public_key(&SEED);
        assert!(proof.check(&key).is_ok());
        assert!(proof.check(&public_key(&[4; 32])).is_err(), "another key");
        let json = serde_json::to_string(&proof).unwrap();
        let mut failed = 0;
        let mut tried = 0;
        for (i, c) in json.char_indices() {
            if !c.is_ascii_hexdigit() {
                continue;
            }
            let flipped = if c == '0' { '1' } else { '0' };
            let mut bytes = json.clone().into_bytes();
            bytes[i] = flipped as u8;
            let text = String::from_utf8(bytes).unwrap();
            tried += 1;
            // A changed digit either breaks the JSON (a number), or the proof.
            match serde_json::from_str::<RecordProof>(&text) {
                Err(_) => failed += 1,
                Ok(changed) if changed == proof => {}
                Ok(changed) => {
                    assert!(
                        changed.check(&key).is_err(),
                        "changed digit {i} still checks out"
                    );
                    failed += 1;
                }
            }
        }
        assert!(tried > 1000 && failed > 1000, "{failed} of {tried}");
    }

    #[test]
    fn a_proof_of_one_record_cannot_be_passed_off_as_another() {
        let (leaves, cps) = log(8);
        let mut proof = RecordProof::build(&leaves, 2, cps[1].clone(), None).unwrap();
        proof.event_id = "ua-3".into();
        assert_eq!(
            proof.check(&public_key(&SEED)).unwrap_err(),
            "the leaf is another record's"
        );
        let mut moved = RecordProof::build(&leaves, 2, cps[1].clone(), None).unwrap();
        moved.index = 3;
        assert!(moved.check(&public_key(&SEED)).is_err());
    }
}
