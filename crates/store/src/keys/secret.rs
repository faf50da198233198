//! Secrets as shown once to their owners ([`CredentialSecret`]) and what is stored in their place
//! ([`CredentialHash`]).

use std::fmt;

use sha2::{Digest, Sha256};

/// Random bytes in a secret: 256 bits.
const SECRET_BYTES_LENGTH: usize = 32;
/// Characters of the secret, after its kind prefix, kept for display.
const DISPLAY_PREFIX_LENGTH: usize = 8;

/// What a credential grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// `bk_…`: everything in one workspace.
    ApiKey,
    /// `bct_…`: reading one customer's billing data.
    CustomerToken,
}

impl CredentialKind {
    /// The text every secret of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::ApiKey => "bk_",
            Self::CustomerToken => "bct_",
        }
    }

    /// The kind a presented secret claims by its prefix, or `None` for an unknown prefix.
    pub fn of_secret(secret: &str) -> Option<Self> {
        [Self::ApiKey, Self::CustomerToken]
            .into_iter()
            .find(|kind| secret.starts_with(kind.prefix()))
    }
}

/// A secret credential, as shown to its owner once. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialSecret(String);

impl CredentialSecret {
    /// A new secret of `kind`: its prefix and 64 hex digits of operating-system randomness.
    ///
    /// # Panics
    ///
    /// When the operating system has no randomness to give, which leaves no safe way to go on.
    pub fn generate(kind: CredentialKind) -> Self {
        let mut bytes = [0_u8; SECRET_BYTES_LENGTH];
        if let Err(error) = getrandom::fill(&mut bytes) {
            panic!("the operating system gave no randomness for a secret: {error}");
        }
        let mut secret = String::from(kind.prefix());
        for byte in bytes {
            secret.push_str(&format!("{byte:02x}"));
        }
        Self(secret)
    }

    /// The secret itself, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored in place of the secret.
    pub fn hash(&self) -> CredentialHash {
        CredentialHash::of(&self.0)
    }

    /// The kind prefix and the first few characters, to tell secrets apart without revealing them.
    pub fn display_prefix(&self) -> String {
        let kind = CredentialKind::of_secret(&self.0).map_or("", CredentialKind::prefix);
        self.0
            .chars()
            .take(kind.len() + DISPLAY_PREFIX_LENGTH)
            .collect()
    }
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "CredentialSecret({}…)", self.display_prefix())
    }
}

/// The lowercase hex SHA-256 of a secret: what the database holds and is searched by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialHash(String);

impl CredentialHash {
    /// The hash of whatever a client presented, valid or not.
    pub fn of(presented: &str) -> Self {
        let digest = Sha256::digest(presented.as_bytes());
        Self(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The hash as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_has_its_kind_prefix_and_256_random_bits() {
        let key = CredentialSecret::generate(CredentialKind::ApiKey);
        let token = CredentialSecret::generate(CredentialKind::CustomerToken);

        assert!(key.expose().starts_with("bk_"));
        assert_eq!(key.expose().len(), 3 + 64);
        assert!(token.expose().starts_with("bct_"));
        assert_ne!(key, CredentialSecret::generate(CredentialKind::ApiKey));
        assert_eq!(
            CredentialKind::of_secret(token.expose()),
            Some(CredentialKind::CustomerToken)
        );
        assert_eq!(CredentialKind::of_secret("Basic abc"), None);
    }

    #[test]
    fn debug_shows_only_the_display_prefix() {
        let key = CredentialSecret::generate(CredentialKind::ApiKey);

        let shown = format!("{key:?}");

        assert!(!shown.contains(key.expose()), "{shown}");
        assert!(shown.contains(&key.display_prefix()));
        assert_eq!(key.display_prefix().len(), 3 + DISPLAY_PREFIX_LENGTH);
    }

    #[test]
    fn the_hash_is_the_hex_sha256_of_the_whole_secret() {
        // echo -n abc | sha256sum
        assert_eq!(
            CredentialHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
