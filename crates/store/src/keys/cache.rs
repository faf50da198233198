//! [`CredentialCache`]: recently seen credentials, so that an authenticated request does not
//! cost a database round trip (the lookup dominated a cached read in a debug-build measurement:
//! ~0.6 ms of ~1.1 ms per authenticated GET).
//!
//! Entries live [`CREDENTIAL_CACHE_TTL`]: a key revoked through this store is forgotten at once,
//! one revoked by another process (`billow keys revoke`, another node) is refused within that
//! time. Unknown credentials are not cached, so guessing cannot fill the cache; the cache is
//! emptied when it reaches [`CREDENTIAL_CACHE_ENTRIES_MAX`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::CustomerTokenOwner;
use crate::WorkspaceId;

/// How long a looked-up credential is trusted without asking the database again.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(10);
/// The most credentials kept.
pub const CREDENTIAL_CACHE_ENTRIES_MAX: usize = 10_000;

/// What a valid credential resolved to.
#[derive(Clone, Debug)]
pub(crate) enum CachedCredential {
    ApiKey(WorkspaceId),
    CustomerToken {
        owner: CustomerTokenOwner,
        expires_at: Timestamp,
    },
}

/// Shared by every clone of a [`Store`](crate::Store).
#[derive(Clone, Debug, Default)]
pub(crate) struct CredentialCache {
    entries: Arc<RwLock<HashMap<String, (CachedCredential, Instant)>>>,
}

impl CredentialCache {
    /// The credential stored under `hash`, if seen less than the TTL ago.
    pub(crate) fn get(&self, hash: &str) -> Option<CachedCredential> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (credential, fetched_at) = entries.get(hash)?;
        (fetched_at.elapsed() < CREDENTIAL_CACHE_TTL).then(|| credential.clone())
    }

    pub(crate) fn insert(&self, hash: &str, credential: CachedCredential) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= CREDENTIAL_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(hash.to_owned(), (credential, Instant::now()));
    }

    /// Forgets everything: after a revocation, which is rare.
    pub(crate) fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> CachedCredential {
        CachedCredential::ApiKey(WorkspaceId::parse("ws_a").unwrap())
    }

    #[test]
    fn a_cached_credential_is_found_until_cleared() {
        let cache = CredentialCache::default();
        cache.insert("h1", workspace());

        assert!(matches!(cache.get("h1"), Some(CachedCredential::ApiKey(_))));
        assert!(cache.get("h2").is_none());
        cache.clear();
        assert!(cache.get("h1").is_none());
    }

    #[test]
    fn clones_share_entries_and_the_size_is_bounded() {
        let cache = CredentialCache::default();
        let clone = cache.clone();
        for index in 0..CREDENTIAL_CACHE_ENTRIES_MAX {
            clone.insert(&index.to_string(), workspace());
        }
        assert!(cache.get("0").is_some());

        cache.insert("one more", workspace());

        assert!(cache.get("0").is_none(), "emptied when full");
        assert!(cache.get("one more").is_some());
    }
}
