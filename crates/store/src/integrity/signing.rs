//! The checkpoint signing key: an Ed25519 seed, loaded like the master key (an environment
//! variable, else a file, else — only where the development master key would be — a public
//! development key). The sink signs with it; `auditflow keys public` prints its verification
//! key, which is all an auditor needs.

use zeroize::Zeroizing;

use auditflow_core::Config;
use auditflow_core::checkpoint;
use sha2::{Digest, Sha256};

use crate::KeySource;
use crate::crypto::{development_key_allowed, load_hex_key, no_key_why};
use crate::error::{Result, StoreError};

/// The seed of the key checkpoints are signed with. Zeroed on drop; no `Debug`.
pub struct SigningKey {
    seed: Zeroizing<[u8; 32]>,
    source: KeySource,
}

impl SigningKey {
    /// The key `[integrity]` names: `$<signing_key_env>`, else `signing_key_file`, else the
    /// development key when `[store]` allows the development master key. The error is one
    /// line naming the setting, never the key.
    pub fn load(config: &Config) -> Result<Self> {
        let settings = &config.integrity;
        let configured = load_hex_key(
            &settings.signing_key_env,
            settings.signing_key_file.as_deref(),
        )
        .map_err(StoreError::SigningKey)?;
        if let Some((seed, source)) = configured {
            return Ok(Self { seed, source });
        }
        if development_key_allowed(&config.store) {
            return Ok(Self::insecure_development_key());
        }
        Err(StoreError::SigningKey(format!(
            "{}: set ${} or [integrity] signing_key_file (64 hex digits)",
            no_key_why(&config.store),
            settings.signing_key_env
        )))
    }

    /// A fixed, public key for the local stack and tests: a checkpoint it signs proves nothing.
    pub fn insecure_development_key() -> Self {
        let digest = Sha256::digest(
            b"auditflow INSECURE development checkpoint signing key: public, local stack only",
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&digest);
        Self {
            seed,
            source: KeySource::InsecureDevelopmentKey,
        }
    }

    /// Where the key came from.
    pub fn source(&self) -> KeySource {
        self.source
    }

    /// The seed, for [`checkpoint::Checkpoint::sign`].
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The Ed25519 verification key: what `auditflow verify` and auditors check against.
    pub fn public_key(&self) -> [u8; 32] {
        checkpoint::public_key(&self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_development_key_is_only_used_where_the_development_master_key_is() {
        let mut config = Config::default();
        config.integrity.signing_key_env = String::new();
        let local = SigningKey::load(&config).unwrap();
        assert_eq!(local.source(), KeySource::InsecureDevelopmentKey);
        assert_eq!(
            local.public_key(),
            SigningKey::insecure_development_key().public_key()
        );
        config.store.nodes = vec!["scylla-0:9042".into()];
        let Err(StoreError::SigningKey(why)) = SigningKey::load(&config) else {
            panic!("the public signing key was accepted for a remote cluster");
        };
        assert!(why.contains("signing_key_file"), "{why}");
        assert!(!why.contains('\n'));
    }

    #[test]
    fn a_key_file_is_read_and_its_errors_do_not_echo_it() {
        let dir = std::env::temp_dir().join(format!("auditflow-signing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let mut config = Config::default();
        config.integrity.signing_key_env = String::new();
        config.integrity.signing_key_file = Some(path.clone());
        std::fs::write(&path, format!("{}\n", "11".repeat(32))).unwrap();
        let key = SigningKey::load(&config).unwrap();
        assert_eq!(key.source(), KeySource::File);
        assert_eq!(key.seed(), &[0x11; 32]);
        std::fs::write(&path, "zz".repeat(32)).unwrap();
        let Err(StoreError::SigningKey(why)) = SigningKey::load(&config) else {
            panic!("a bad key file was accepted");
        };
        assert!(!why.contains("zz"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
