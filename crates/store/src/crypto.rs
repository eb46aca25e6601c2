//! Encryption at rest: the master key, per-user data keys, sealed fields, user references.
//!
//! Key hierarchy (every derivation is HKDF-SHA256 over the master key, one `info` label each):
//! - the **master key** (32 bytes, from a file or an environment variable) never touches the
//!   database; it derives
//!   - the **key-encryption key** that wraps every data key,
//!   - the **user-reference key**: `user_keys` rows are found by HMAC-SHA256(key, user id), a
//!     keyed pseudonym nobody without the master key can compute or reverse,
//!   - the **check key**, whose MAC of a fixed label is stored once per keyspace so a process
//!     started with the wrong master key fails loudly instead of writing undecryptable rows,
//!   - the **shredded-id key**: a record stored unreadable (see the `erasure` module) is
//!     filed under a pseudonym derived from its event id, so storing it again gives the same
//!     row;
//! - a **data key** per user (32 random bytes, stored only wrapped) seals that user's fields.
//!
//! Sealing (format 2) is AES-256-GCM-SIV (RFC 8452) with its nonce derived from the
//! associated data. The associated data names the table, the partition, the event id and the
//! field, so a ciphertext copied to another row or column fails to open, and no two values
//! sealed under one key share it unless they are the same record's same field: GCM-SIV is
//! built for exactly that repetition (it reveals only that the two ciphertexts are of the same
//! plaintext, here always true). The gain is determinism: a record delivered again is stored
//! byte for byte as before, so the tamper-evident log (`integrity` module) computes the same
//! leaf on every replay. Format 1 (XChaCha20-Poly1305, random 192-bit nonce), written by
//! earlier versions, is still opened.

use aes_gcm_siv::Aes256GcmSiv;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};
use auditflow_core::config::StoreSettings;
use auditflow_core::hex::HexError;

const KEY_LEN: usize = 32;
/// Format 1's random XChaCha20 nonce, stored after the format byte.
const NONCE_LEN_V1: usize = 24;
/// Format 2's AES-GCM-SIV nonce, derived from the associated data and not stored.
const NONCE_LEN_V2: usize = 12;
/// First byte of every sealed value: the format, so it can change without guessing.
const SEALED_V1: u8 = 1;
const SEALED_V2: u8 = 2;

/// Where the master key came from; printed at startup (never the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `$AUDITFLOW_MASTER_KEY` (or the variable `[store] master_key_env` names).
    Environment,
    /// `[store] master_key_file`.
    File,
    /// The built-in, publicly known development key. Protects nothing.
    InsecureDevelopmentKey,
}

/// The root secret. Zeroed on drop; no `Debug`, no `Display`.
pub(crate) struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// Loads the key named by the settings: the environment variable, else the file, else (when
    /// allowed) the development key.
    pub(crate) fn load(settings: &StoreSettings) -> Result<(Self, KeySource)> {
        let configured = load_hex_key(
            &settings.master_key_env,
            settings.master_key_file.as_deref(),
        )
        .map_err(StoreError::MasterKey)?;
        if let Some((key, source)) = configured {
            return Ok((Self(key), source));
        }
        if development_key_allowed(settings) {
            return Ok((
                Self::insecure_development_key(),
                KeySource::InsecureDevelopmentKey,
            ));
        }
        Err(StoreError::MasterKey(format!(
            "{}: set ${} or [store] master_key_file (64 hex digits)",
            no_key_why(settings),
            settings.master_key_env
        )))
    }

    /// A fixed, public key so the local stack and tests work with no setup. Anyone can derive
    /// it from this source code: it must never guard real data.
    pub(crate) fn insecure_development_key() -> Self {
        let digest = Sha256::digest(
            b"auditflow INSECURE development master key: public, local stack and tests only",
        );
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&digest);
        Self(key)
    }

    /// 64 hex digits, surrounding whitespace ignored. The error never echoes the input.
    #[cfg(test)]
    pub(crate) fn from_hex(text: &str) -> Result<Self, &'static str> {
        key_from_hex(text).map(Self)
    }

    fn derive(&self, info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(Some(b"auditflow-store"), self.0.as_slice());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
        hk.expand(info, out.as_mut_slice())
            .expect("HKDF output length is valid");
        out
    }
}

/// A 32-byte secret, zeroed on drop.
pub(crate) type SecretKey = Zeroizing<[u8; KEY_LEN]>;

/// 64 hex digits, surrounding whitespace ignored. The error never echoes the input.
fn key_from_hex(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, &'static str> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    auditflow_core::hex::decode_into(text, key.as_mut_slice()).map_err(HexError::secret)?;
    Ok(key)
}

/// A 32-byte key from the environment variable `env` (when named and set), else from `file`;
/// `None` when neither is configured. The error names where it looked, never the key.
pub(crate) fn load_hex_key(
    env: &str,
    file: Option<&std::path::Path>,
) -> Result<Option<(SecretKey, KeySource)>, String> {
    if !env.is_empty()
        && let Ok(value) = std::env::var(env)
    {
        let value = Zeroizing::new(value);
        let key = key_from_hex(&value).map_err(|why| format!("${env}: {why}"))?;
        return Ok(Some((key, KeySource::Environment)));
    }
    if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        let key = key_from_hex(&text).map_err(|why| format!("{}: {why}", path.display()))?;
        return Ok(Some((key, KeySource::File)));
    }
    Ok(None)
}

/// Whether a built-in, public development key may stand in for a missing one: only when
/// `[store] insecure_dev_key` allows it and every `[store] nodes` address is loopback.
pub(crate) fn development_key_allowed(settings: &StoreSettings) -> bool {
    settings.insecure_dev_key
        && settings
            .nodes
            .iter()
            .all(|node| auditflow_core::config::is_loopback_address(node))
}

/// Why no key was found, when [`development_key_allowed`] said no.
pub(crate) fn no_key_why(settings: &StoreSettings) -> &'static str {
    // A deployment that forgot its key must not seal everything with a published one.
    if settings.insecure_dev_key {
        "the built-in development key is only used when every [store] nodes address is loopback"
    } else {
        "none configured"
    }
}

/// The keys derived from the master key; the master key itself is dropped after derivation.
pub(crate) struct Keyring {
    kek: Zeroizing<[u8; KEY_LEN]>,
    user_ref: Zeroizing<[u8; KEY_LEN]>,
    check: Zeroizing<[u8; KEY_LEN]>,
    shredded: Zeroizing<[u8; KEY_LEN]>,
}

impl Keyring {
    pub(crate) fn new(master: &MasterKey) -> Self {
        Self {
            kek: master.derive(b"auditflow/v1/key-encryption-key"),
            user_ref: master.derive(b"auditflow/v1/user-reference"),
            check: master.derive(b"auditflow/v1/key-check"),
            shredded: master.derive(b"auditflow/v1/shredded-record-id"),
        }
    }

    /// The pseudonym an unreadable (shredded) record is filed under: a function of its event
    /// id alone, keyed so nobody without the master key can link it to the id, and never a
    /// key id in `data_keys` (a random version-4 id could only collide by chance, 2^-122).
    pub(crate) fn shredded_id(&self, event_id: &str) -> Uuid {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.shredded.as_slice())
            .expect("HMAC takes any key length");
        mac.update(event_id.as_bytes());
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// The keyed pseudonym under which a subject's key row is stored. Domain-separated so a
    /// user id can never collide with the "no user" subject.
    pub(crate) fn user_ref(&self, subject: Subject<'_>) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.user_ref.as_slice())
            .expect("HMAC takes any key length");
        match subject {
            Subject::User(id) => {
                mac.update(b"user\0");
                mac.update(id.as_bytes());
            }
            Subject::NoUser => mac.update(b"no-user\0"),
        }
        mac.finalize().into_bytes().into()
    }

    /// A MAC of a fixed label: equal values mean equal master keys.
    pub(crate) fn check_value(&self) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.check.as_slice())
            .expect("HMAC takes any key length");
        mac.update(b"auditflow master key check");
        mac.finalize().into_bytes().to_vec()
    }

    pub(crate) fn wrap(&self, key_id: Uuid, key: &DataKey) -> Vec<u8> {
        seal_with(&self.kek, &wrap_aad(key_id), key.0.as_slice())
    }

    pub(crate) fn unwrap(&self, key_id: Uuid, wrapped: &[u8]) -> Result<DataKey> {
        let bytes = Zeroizing::new(
            open_with(&self.kek, &wrap_aad(key_id), wrapped)
                .ok_or(StoreError::Corrupt("wrapped data key"))?,
        );
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(StoreError::Corrupt("wrapped data key"));
        }
        key.copy_from_slice(&bytes);
        Ok(DataKey(key))
    }
}

fn wrap_aad(key_id: Uuid) -> Vec<u8> {
    Aad::new("data_keys")
        .part(key_id.as_bytes())
        .part(b"wrapped_key")
        .into_bytes()
}

/// Whose key seals a record: a user's, or the shared key of records that name no user (an
/// ip-only security event or alert). `gdpr delete` only ever destroys `User` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Subject<'a> {
    User(&'a str),
    NoUser,
}

/// One user's data key. Zeroed on drop; no `Debug`.
pub(crate) struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    pub(crate) fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(key.as_mut_slice())
            .map_err(|e| StoreError::MasterKey(format!("no OS randomness: {e}")))?;
        Ok(Self(key))
    }

    pub(crate) fn seal(&self, aad: &Aad, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.0, &aad.bytes, plaintext)
    }

    /// `None` when the ciphertext does not authenticate under this key and associated data.
    pub(crate) fn open(&self, aad: &Aad, sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.0, &aad.bytes, sealed)
    }
}

/// Associated data: length-prefixed parts, so no two different part lists encode alike.
pub(crate) struct Aad {
    bytes: Vec<u8>,
}

impl Aad {
    pub(crate) fn new(table: &str) -> Self {
        Self {
            bytes: b"auditflow/v1".to_vec(),
        }
        .part(table.as_bytes())
    }

    pub(crate) fn part(mut self, part: &[u8]) -> Self {
        self.bytes
            .extend_from_slice(&(part.len() as u64).to_be_bytes());
        self.bytes.extend_from_slice(part);
        self
    }

    fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Format 2's nonce: a hash of the associated data (domain-separated from every other hash).
fn nonce_v2(aad: &[u8]) -> [u8; NONCE_LEN_V2] {
    let digest = Sha256::new()
        .chain_update(b"auditflow seal v2 nonce\0")
        .chain_update(aad)
        .finalize();
    let mut nonce = [0u8; NONCE_LEN_V2];
    nonce.copy_from_slice(&digest[..NONCE_LEN_V2]);
    nonce
}

fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256GcmSiv::new(aes_gcm_siv::Key::<Aes256GcmSiv>::from_slice(key));
    let ciphertext = cipher
        .encrypt(
            aes_gcm_siv::Nonce::from_slice(&nonce_v2(aad)),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM-SIV encrypts any length we store (up to 64 GiB)");
    let mut out = Vec::with_capacity(1 + ciphertext.len());
    out.push(SEALED_V2);
    out.extend_from_slice(&ciphertext);
    out
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (&version, rest) = sealed.split_first()?;
    match version {
        SEALED_V2 => Aes256GcmSiv::new(aes_gcm_siv::Key::<Aes256GcmSiv>::from_slice(key))
            .decrypt(
                aes_gcm_siv::Nonce::from_slice(&nonce_v2(aad)),
                Payload { msg: rest, aad },
            )
            .ok(),
        SEALED_V1 if rest.len() >= NONCE_LEN_V1 => {
            let (nonce, ciphertext) = rest.split_at(NONCE_LEN_V1);
            XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key))
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad,
                    },
                )
                .ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(&MasterKey::from_hex(&"ab".repeat(32)).unwrap())
    }

    #[test]
    fn sealed_field_opens_only_with_its_own_associated_data() {
        let key = DataKey::generate().unwrap();
        let aad = || {
            Aad::new("audit_general_by_user")
                .part(b"p")
                .part(b"e1")
                .part(b"event")
        };
        let sealed = key.seal(&aad(), b"alice@example.com");
        assert_eq!(key.open(&aad(), &sealed).unwrap(), b"alice@example.com");
        let other_row = Aad::new("audit_general_by_user")
            .part(b"p")
            .part(b"e2")
            .part(b"event");
        assert!(key.open(&other_row, &sealed).is_none());
        assert!(DataKey::generate().unwrap().open(&aad(), &sealed).is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(&aad(), &tampered).is_none());
        assert!(key.open(&aad(), &[]).is_none());
    }

    #[test]
    fn a_seal_is_a_function_of_key_associated_data_and_value() {
        let key = DataKey::generate().unwrap();
        let aad = |id: &[u8]| Aad::new("t").part(id);
        assert_eq!(key.seal(&aad(b"e1"), b"x"), key.seal(&aad(b"e1"), b"x"));
        assert_ne!(key.seal(&aad(b"e1"), b"x"), key.seal(&aad(b"e2"), b"x"));
        assert_ne!(key.seal(&aad(b"e1"), b"x"), key.seal(&aad(b"e1"), b"y"));
        let other = DataKey::generate().unwrap();
        assert_ne!(key.seal(&aad(b"e1"), b"x"), other.seal(&aad(b"e1"), b"x"));
    }

    /// Rows written before format 2 stay readable.
    #[test]
    fn format_one_still_opens() {
        let key = DataKey::generate().unwrap();
        let aad = Aad::new("t").part(b"e1");
        let nonce = [7u8; NONCE_LEN_V1];
        let ciphertext =
            XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.0.as_slice()))
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: b"old".as_slice(),
                        aad: &aad.bytes,
                    },
                )
                .unwrap();
        let sealed = [&[SEALED_V1][..], &nonce, &ciphertext].concat();
        assert_eq!(key.open(&aad, &sealed).unwrap(), b"old");
        assert!(key.open(&Aad::new("t").part(b"e2"), &sealed).is_none());
        let mut unknown = sealed.clone();
        unknown[0] = 3;
        assert!(key.open(&aad, &unknown).is_none());
    }

    #[test]
    fn shredded_ids_are_stable_keyed_and_per_record() {
        let ring = keyring();
        assert_eq!(ring.shredded_id("e1"), ring.shredded_id("e1"));
        assert_ne!(ring.shredded_id("e1"), ring.shredded_id("e2"));
        let other = Keyring::new(&MasterKey::insecure_development_key());
        assert_ne!(ring.shredded_id("e1"), other.shredded_id("e1"));
    }

    #[test]
    fn aad_parts_are_unambiguous() {
        assert_ne!(
            Aad::new("t").part(b"ab").part(b"c").bytes,
            Aad::new("t").part(b"a").part(b"bc").bytes
        );
    }

    #[test]
    fn data_keys_wrap_and_unwrap_bound_to_their_id() {
        let ring = keyring();
        let key = DataKey::generate().unwrap();
        let id = Uuid::new_v4();
        let wrapped = ring.wrap(id, &key);
        assert_eq!(
            ring.unwrap(id, &wrapped).unwrap().0.as_slice(),
            key.0.as_slice()
        );
        assert!(ring.unwrap(Uuid::new_v4(), &wrapped).is_err());
        let other = Keyring::new(&MasterKey::from_hex(&"cd".repeat(32)).unwrap());
        assert!(other.unwrap(id, &wrapped).is_err());
    }

    #[test]
    fn user_refs_are_keyed_and_domain_separated() {
        let ring = keyring();
        assert_eq!(
            ring.user_ref(Subject::User("u1")),
            ring.user_ref(Subject::User("u1"))
        );
        assert_ne!(
            ring.user_ref(Subject::User("u1")),
            ring.user_ref(Subject::User("u2"))
        );
        assert_ne!(
            ring.user_ref(Subject::User("")),
            ring.user_ref(Subject::NoUser)
        );
        let other = Keyring::new(&MasterKey::insecure_development_key());
        assert_ne!(
            ring.user_ref(Subject::User("u1")),
            other.user_ref(Subject::User("u1"))
        );
        assert_ne!(ring.check_value(), other.check_value());
    }

    #[test]
    fn master_key_hex_is_strict_and_errors_do_not_echo_it() {
        assert!(MasterKey::from_hex(&format!("  {}\n", "0F".repeat(32))).is_ok());
        let secret = "zz".repeat(32);
        let err = MasterKey::from_hex(&secret).err().unwrap();
        assert!(!err.contains("zz"));
        assert!(MasterKey::from_hex("abcd").is_err());
    }

    #[test]
    fn the_development_key_is_only_used_against_a_loopback_cluster() {
        let settings = |nodes: &[&str]| StoreSettings {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            // No key from this process's environment.
            master_key_env: String::new(),
            ..StoreSettings::default()
        };
        let local = MasterKey::load(&settings(&["127.0.0.1:9042", "[::1]:9042"]));
        assert!(matches!(local, Ok((_, KeySource::InsecureDevelopmentKey))));
        for remote in [&["scylla:9042"][..], &["127.0.0.1:9042", "10.1.2.3:9042"]] {
            let Err(StoreError::MasterKey(why)) = MasterKey::load(&settings(remote)) else {
                panic!("{remote:?}: the public key was accepted for a remote cluster");
            };
            assert!(why.contains("master_key_file"), "names the setting: {why}");
            assert!(!why.contains('\n'), "one line: {why}");
        }
        let refused = StoreSettings {
            insecure_dev_key: false,
            ..settings(&["127.0.0.1:9042"])
        };
        assert!(MasterKey::load(&refused).is_err());
    }
}
