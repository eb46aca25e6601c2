//! Keyed ids of everything the engine emits (docs/security-rules.md).
//!
//! An alert's id is a function of its rule, key (an ip or a user id), level and window; an
//! action's or blocklist entry's of its alert and what it is. A public function of those
//! would be reversible by brute force — an IPv4 key has 2^32 values, a window a few thousand
//! plausible starts — so after `gdpr delete` the id stored in clear would still name the ip or
//! the user. So ids are HMAC-SHA256 under a secret every monitor instance shares
//! ([`IdSecret`]): deterministic for whoever holds it (replays and other instances reproduce
//! them), meaningless to anyone else. The first 16 bytes of the MAC are written as a UUID of
//! version 8 (RFC 9562's custom layout), so ids keep the shape of every other id.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const SECRET_LEN: usize = 32;
/// Domain separation: a MAC under this secret for any other purpose can never equal an id.
const CONTEXT: &[u8] = b"auditflow/security-monitor/ids/v1";

/// The secret under which alert and action ids are derived: 32 bytes, usually 64 hex digits
/// from `[security] id_secret_file` or `$AUDITFLOW_ID_SECRET`. Zeroed on drop; its `Debug`
/// shows nothing of it.
#[derive(Clone)]
pub struct IdSecret(Zeroizing<[u8; SECRET_LEN]>);

impl IdSecret {
    /// A secret from its raw 32 bytes (decoded from a file or variable by the caller).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> IdSecret {
        IdSecret(Zeroizing::new(bytes))
    }

    /// 64 hex digits, surrounding whitespace ignored. The error never echoes the input.
    pub fn from_hex(text: &str) -> Result<IdSecret, &'static str> {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        crate::hex::decode_into(text, bytes.as_mut_slice())
            .map_err(crate::hex::HexError::secret)?;
        Ok(IdSecret(bytes))
    }

    /// A fixed, public secret so the local stack, `auditflow detect` and tests work with no
    /// setup. Anyone can derive it from this source code: ids under it protect nothing.
    pub fn development() -> IdSecret {
        let digest = Sha256::digest(
            b"auditflow INSECURE development id secret: public, local stack and tests only",
        );
        IdSecret(Zeroizing::new(digest.into()))
    }

    /// The id of `parts`: HMAC-SHA256 over the length-prefixed parts (no two part lists
    /// collide), its first 16 bytes as a version 8 UUID.
    pub(crate) fn derive(&self, parts: &[&str]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes any key length");
        mac.update(CONTEXT);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let tag = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

impl std::fmt::Debug for IdSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn ids_are_version_8_uuids_keyed_by_the_secret() {
        let dev = IdSecret::development();
        let other = IdSecret::from_bytes([7; 32]);
        let id = dev.derive(&["alert", "brute_force", "203.0.113.9"]);
        let uuid = Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 8);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id, dev.derive(&["alert", "brute_force", "203.0.113.9"]));
        assert_ne!(id, other.derive(&["alert", "brute_force", "203.0.113.9"]));
        // Length prefixes: moving a boundary between parts changes the id.
        assert_ne!(dev.derive(&["ab", "c"]), dev.derive(&["a", "bc"]));
    }

    #[test]
    fn the_id_is_an_hmac_of_the_documented_message() {
        // An independent computation of the documented construction, with sha2 alone
        // (RFC 2104: H((K ^ opad) || H((K ^ ipad) || m)), K padded to the 64-byte block).
        let key = [0x42u8; 32];
        let mut message = CONTEXT.to_vec();
        for part in ["alert", "k"] {
            message.extend_from_slice(&(part.len() as u64).to_be_bytes());
            message.extend_from_slice(part.as_bytes());
        }
        let pad = |byte: u8| {
            let mut block = [byte; 64];
            block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
            block
        };
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(&message)
            .finalize();
        let tag = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
        let expected = Uuid::from_bytes(bytes).to_string();
        assert_eq!(IdSecret::from_bytes(key).derive(&["alert", "k"]), expected);
    }

    #[test]
    fn secrets_parse_from_hex_and_never_print() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        let s = IdSecret::from_hex(hex).unwrap();
        assert_eq!(s.0[1], 0x11);
        assert_eq!(s.0[31], 0xff);
        assert!(IdSecret::from_hex("abc").is_err());
        assert!(IdSecret::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{s:?}"), "IdSecret(..)");
    }
}
