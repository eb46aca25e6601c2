//! Signed checkpoints of a Merkle log ([`crate::merkle`]): the statement "log L had `size`
//! leaves with root R, the last of them from offset O, after checkpoint P", signed with
//! Ed25519. Each checkpoint names the hash of the one before it in the same log, so the
//! checkpoints of a log form a chain: removing, reordering or re-signing one breaks the chain
//! or a signature, and a later tree that does not extend an earlier one fails its consistency
//! proof.
//!
//! What is signed is a canonical byte string ([`Checkpoint::signed_bytes`]): a fixed label,
//! then each field in a fixed order, integers big-endian, strings length-prefixed — never JSON,
//! whose field order and number formatting a verifier would have to reproduce. The JSON form
//! ([`SignedCheckpoint`] with serde) is for transport: hashes and signatures in hex.
//!
//! Pure: no key is loaded here (the caller brings the key bytes), and nothing is random:
//! Ed25519 signatures are deterministic, so signing the same checkpoint twice gives the same
//! bytes — a replayed checkpoint is identical to the first.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The label every signed checkpoint starts with: the format and its version.
const LABEL: &[u8] = b"auditflow checkpoint v1\n";

/// Which log a checkpoint is about: one per Kafka partition of the topics the sink reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogId {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// A log's state at one point: what a signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The log.
    pub log: LogId,
    /// Leaves in the log.
    pub size: u64,
    /// The root of the tree of those leaves.
    #[serde(with = "hex_bytes")]
    pub root: Hash,
    /// The Kafka offset of the last leaf's record.
    pub last_offset: i64,
    /// When (ms since the epoch): the Kafka timestamp of the last leaf's record, so that every
    /// replay signs the same checkpoint.
    pub time_ms: i64,
    /// [`Checkpoint::hash`] of the log's previous checkpoint; all zeros for its first.
    #[serde(with = "hex_bytes")]
    pub previous: Hash,
}

/// Why a checkpoint, or two of them, do not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signature is not the key's over this checkpoint.
    #[error("bad signature on the checkpoint of {log} at size {size}")]
    Signature {
        /// The log, as `topic/partition`.
        log: String,
        /// The checkpoint's size.
        size: u64,
    },
    /// The later checkpoint does not follow the earlier one.
    #[error("broken chain in {log}: {why}")]
    Chain {
        /// The log, as `topic/partition`.
        log: String,
        /// What does not follow.
        why: &'static str,
    },
    /// A key or signature of the wrong form.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

impl Checkpoint {
    /// The bytes the signature covers (see the module documentation).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let topic = self.log.topic.as_bytes();
        let mut out = Vec::with_capacity(LABEL.len() + 8 + topic.len() + 4 + 8 + 32 + 16 + 32);
        out.extend_from_slice(LABEL);
        out.extend_from_slice(&(topic.len() as u64).to_be_bytes());
        out.extend_from_slice(topic);
        out.extend_from_slice(&self.log.partition.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.previous);
        out
    }

    /// SHA-256 of [`Checkpoint::signed_bytes`]: what the next checkpoint names as `previous`.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.signed_bytes()).into()
    }

    /// Signs the checkpoint with the Ed25519 key whose 32-byte seed is `seed`.
    pub fn sign(self, seed: &[u8; 32]) -> SignedCheckpoint {
        let key = SigningKey::from_bytes(seed);
        let signature = key.sign(&self.signed_bytes()).to_bytes();
        SignedCheckpoint {
            checkpoint: self,
            signature,
        }
    }
}

/// The verification key of the Ed25519 key whose seed is `seed` (what `auditflow keys public`
/// prints, and what an auditor verifies with).
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// A checkpoint and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// What is signed.
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// The Ed25519 signature over [`Checkpoint::signed_bytes`].
    #[serde(with = "hex_bytes")]
    pub signature: [u8; 64],
}

impl SignedCheckpoint {
    /// Checks the signature against the verification key `public`.
    pub fn verify(&self, public: &[u8; 32]) -> Result<(), CheckpointError> {
        let key = VerifyingKey::from_bytes(public)
            .map_err(|_| CheckpointError::Malformed("verification key"))?;
        key.verify(
            &self.checkpoint.signed_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| CheckpointError::Signature {
            log: self.checkpoint.log.to_string(),
            size: self.checkpoint.size,
        })
    }

    /// Checks that `next` follows this checkpoint in the same log: it names this one as its
    /// previous, and neither the log nor its offsets went backwards. (That the trees agree is
    /// the consistency proof's to show, [`crate::merkle::verify_consistency`].)
    pub fn followed_by(&self, next: &SignedCheckpoint) -> Result<(), CheckpointError> {
        let (a, b) = (&self.checkpoint, &next.checkpoint);
        let broken = |why| CheckpointError::Chain {
            log: a.log.to_string(),
            why,
        };
        if a.log != b.log {
            return Err(broken("the checkpoints are of different logs"));
        }
        if b.previous != a.hash() {
            return Err(broken("the later checkpoint does not name the earlier one"));
        }
        if b.size < a.size || b.last_offset < a.last_offset {
            return Err(broken("the log went backwards"));
        }
        Ok(())
    }
}

/// Byte arrays as lower-case hex in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        crate::hex::decode_array(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("expected {} hex digits", 2 * N)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn first() -> Checkpoint {
        Checkpoint {
            log: LogId {
                topic: "audit.user.action".into(),
                partition: 2,
            },
            size: 1000,
            root: [0xab; 32],
            last_offset: 1041,
            time_ms: 1_764_590_400_000,
            previous: [0; 32],
        }
    }

    fn second(previous: Hash) -> Checkpoint {
        Checkpoint {
            size: 2000,
            root: [0xcd; 32],
            last_offset: 2050,
            time_ms: 1_764_590_460_000,
            previous,
            ..first()
        }
    }

    #[test]
    fn a_signature_verifies_with_the_key_and_fails_on_any_change() {
        let signed = first().sign(&SEED);
        let public = public_key(&SEED);
        assert_eq!(signed.verify(&public), Ok(()));
        assert_eq!(first().sign(&SEED), signed, "deterministic");
        let other_key = public_key(&[8; 32]);
        assert!(signed.verify(&other_key).is_err());
        let changes: [fn(&mut Checkpoint); 6] = [
            |c| c.size += 1,
            |c| c.root[31] ^= 1,
            |c| c.last_offset -= 1,
            |c| c.time_ms += 1,
            |c| c.log.partition = 3,
            |c| c.previous[0] = 1,
        ];
        for change in changes {
            let mut forged = signed.clone();
            change(&mut forged.checkpoint);
            assert!(forged.verify(&public).is_err(), "{:?}", forged.checkpoint);
        }
        let mut flipped = signed.clone();
        flipped.signature[10] ^= 0x40;
        assert!(flipped.verify(&public).is_err());
    }

    #[test]
    fn the_signed_bytes_are_canonical_and_unambiguous() {
        let bytes = first().signed_bytes();
        assert!(bytes.starts_with(LABEL));
        // A topic cannot borrow bytes from the partition: lengths are explicit.
        let mut shifted = first();
        shifted.log.topic.push('\0');
        assert_ne!(shifted.signed_bytes(), bytes);
        assert_eq!(bytes.len(), LABEL.len() + 8 + 17 + 4 + 8 + 32 + 8 + 8 + 32);
    }

    #[test]
    fn the_chain_needs_the_previous_hash_the_same_log_and_no_step_back() {
        let a = first().sign(&SEED);
        let b = second(a.checkpoint.hash()).sign(&SEED);
        assert_eq!(a.followed_by(&b), Ok(()));
        assert!(b.followed_by(&a).is_err(), "reversed");
        let skipped = second([9; 32]).sign(&SEED);
        assert!(
            a.followed_by(&skipped).is_err(),
            "not naming its predecessor"
        );
        let mut elsewhere = second(a.checkpoint.hash());
        elsewhere.log.partition = 0;
        assert!(a.followed_by(&elsewhere.sign(&SEED)).is_err());
        let mut shrunk = second(a.checkpoint.hash());
        shrunk.size = 999;
        assert!(a.followed_by(&shrunk.sign(&SEED)).is_err());
    }

    #[test]
    fn json_round_trips_with_hex_fields() {
        let signed = first().sign(&SEED);
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(json["root"], "ab".repeat(32));
        assert_eq!(json["log"]["topic"], "audit.user.action");
        assert_eq!(json["signature"].as_str().unwrap().len(), 128);
        let back: SignedCheckpoint = serde_json::from_value(json).unwrap();
        assert_eq!(back, signed);
    }
}
