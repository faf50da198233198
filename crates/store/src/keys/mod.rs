//! Credentials: workspace API keys (`bk_…`) and customer-scoped tokens (`bct_…`).
//!
//! A secret is shown once, when it is made, and never stored: the database keeps the lowercase hex
//! SHA-256 of the whole secret, and a request's credential is found by hashing what it presents.
//! SHA-256 rather than a password hash is enough because the secrets are 256 random bits, not
//! something a person chose: there is no dictionary to try.
//!
//! - [`CredentialSecret`] makes and hashes secrets; [`CredentialHash`] is what is stored.
//! - [`Store::create_api_key`], [`Store::api_key_workspace`], [`Store::revoke_api_key`],
//!   [`Store::any_api_key_exists`] and [`Store::workspace_named_or_created`] serve the server's
//!   auth extractors and `billow keys create`.
//! - [`Store::create_customer_token`] and [`Store::customer_token_owner`] serve customer-scoped
//!   access.

mod cache;
mod postgres;
mod sqlite;

use cache::CachedCredential;
pub(crate) use cache::CredentialCache;
pub use cache::{CREDENTIAL_CACHE_ENTRIES_MAX, CREDENTIAL_CACHE_TTL};

use std::fmt;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::ids::new_id;
use crate::store::{Backend, Store};
use crate::workspaces::format_timestamp;
use crate::{InsertWorkspaceError, Workspace, WorkspaceId, WorkspaceName};

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

/// A stored workspace API key, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub workspace_id: WorkspaceId,
    /// `key_…`.
    pub id: String,
    /// The secret's first characters, e.g. `bk_1f0c93ab`.
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A stored customer-scoped token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerToken {
    pub workspace_id: WorkspaceId,
    /// `ctok_…`.
    pub id: String,
    pub customer_id: String,
    pub prefix: String,
    pub created_at: Timestamp,
    /// The token is refused from this instant on.
    pub expires_at: Timestamp,
}

/// The owner of a valid customer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerTokenOwner {
    pub workspace_id: WorkspaceId,
    pub customer_id: String,
}

/// A credential row as both backends' query modules write it.
struct CredentialRow<'a> {
    workspace_id: &'a str,
    id: &'a str,
    /// Only for customer tokens.
    customer_id: Option<&'a str>,
    hash: &'a str,
    prefix: &'a str,
    created_at: String,
    /// `revoked_at` is always NULL when written; `expires_at` for customer tokens.
    expires_at: Option<String>,
}

impl Store {
    /// Makes a new API key for `workspace_id` and stores its hash. The secret is returned once and
    /// cannot be recovered.
    ///
    /// # Errors
    ///
    /// [`StoreCredentialError`] when the insert fails (e.g. the workspace does not exist).
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn create_api_key(
        &self,
        workspace_id: &WorkspaceId,
        now: Timestamp,
    ) -> Result<(ApiKey, CredentialSecret), StoreCredentialError> {
        let secret = CredentialSecret::generate(CredentialKind::ApiKey);
        let key = ApiKey {
            workspace_id: workspace_id.clone(),
            id: new_id("key"),
            prefix: secret.display_prefix(),
            created_at: now,
            revoked_at: None,
        };
        let hash = secret.hash();
        let row = CredentialRow {
            workspace_id: workspace_id.as_str(),
            id: &key.id,
            customer_id: None,
            hash: hash.as_str(),
            prefix: &key.prefix,
            created_at: format_timestamp(now),
            expires_at: None,
        };
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::insert_api_key(pool, &row).await,
            Backend::Postgres(pool) => postgres::insert_api_key(pool, &row).await,
        }
        .map_err(StoreCredentialError)?;
        Ok((key, secret))
    }

    /// The workspace of the unrevoked API key whose secret hashes to `hash`, if any.
    ///
    /// # Errors
    ///
    /// [`LoadCredentialError`] when the query fails or the stored workspace id is invalid.
    #[tracing::instrument(skip_all)]
    pub async fn api_key_workspace(
        &self,
        hash: &CredentialHash,
    ) -> Result<Option<WorkspaceId>, LoadCredentialError> {
        if let Some(CachedCredential::ApiKey(workspace_id)) = self.credentials.get(hash.as_str()) {
            return Ok(Some(workspace_id));
        }
        let workspace_id = match &self.backend {
            Backend::Sqlite(pool) => sqlite::api_key_workspace(pool, hash.as_str()).await,
            Backend::Postgres(pool) => postgres::api_key_workspace(pool, hash.as_str()).await,
        }
        .map_err(LoadCredentialError::Database)?;
        let workspace_id = workspace_id
            .map(|id| WorkspaceId::parse(&id).map_err(|_| LoadCredentialError::CorruptRow))
            .transpose()?;
        if let Some(workspace_id) = &workspace_id {
            self.credentials.insert(
                hash.as_str(),
                CachedCredential::ApiKey(workspace_id.clone()),
            );
        }
        Ok(workspace_id)
    }

    /// Every API key of `workspace_id`, revoked ones included, oldest first.
    ///
    /// # Errors
    ///
    /// [`LoadCredentialError`] when the query fails or a row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn api_keys(
        &self,
        workspace_id: &WorkspaceId,
    ) -> Result<Vec<ApiKey>, LoadCredentialError> {
        let rows = match &self.backend {
            Backend::Sqlite(pool) => sqlite::api_keys(pool, workspace_id.as_str()).await,
            Backend::Postgres(pool) => postgres::api_keys(pool, workspace_id.as_str()).await,
        }
        .map_err(LoadCredentialError::Database)?;
        rows.into_iter()
            .map(|(id, prefix, created_at, revoked_at)| {
                let parse = |text: &str| {
                    text.parse::<Timestamp>()
                        .map_err(|_| LoadCredentialError::CorruptRow)
                };
                Ok(ApiKey {
                    workspace_id: workspace_id.clone(),
                    id,
                    prefix,
                    created_at: parse(&created_at)?,
                    revoked_at: revoked_at.as_deref().map(parse).transpose()?,
                })
            })
            .collect()
    }

    /// Revokes the API key `key_id` of `workspace_id`: it is refused from then on. Returns whether
    /// an unrevoked key was found.
    ///
    /// # Errors
    ///
    /// [`StoreCredentialError`] when the update fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, key_id))]
    pub async fn revoke_api_key(
        &self,
        workspace_id: &WorkspaceId,
        key_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreCredentialError> {
        let now = format_timestamp(now);
        let revoked = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::revoke_api_key(pool, workspace_id.as_str(), key_id, &now).await
            }
            Backend::Postgres(pool) => {
                postgres::revoke_api_key(pool, workspace_id.as_str(), key_id, &now).await
            }
        }
        .map_err(StoreCredentialError)?;
        self.credentials.clear();
        Ok(revoked)
    }

    /// Whether any unrevoked API key exists, in any workspace: `serve` says how to make one when
    /// none does.
    ///
    /// # Errors
    ///
    /// [`LoadCredentialError`] when the query fails.
    pub async fn any_api_key_exists(&self) -> Result<bool, LoadCredentialError> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::any_api_key_exists(pool).await,
            Backend::Postgres(pool) => postgres::any_api_key_exists(pool).await,
        }
        .map_err(LoadCredentialError::Database)
    }

    /// The workspace named `name`, created (with a new `ws_…` id) when there is none.
    ///
    /// # Errors
    ///
    /// [`EnsureWorkspaceError`] when a query fails or the stored row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_name = %name))]
    pub async fn workspace_named_or_created(
        &self,
        name: &WorkspaceName,
        now: Timestamp,
    ) -> Result<Workspace, EnsureWorkspaceError> {
        // Two attempts: another process may create the same name between our look-up and insert.
        for _ in 0..2 {
            if let Some(workspace) = self.workspace_named(name).await? {
                return Ok(workspace);
            }
            let workspace = Workspace {
                id: WorkspaceId::parse(&new_id("ws")).expect("new ids are valid workspace ids"),
                name: name.clone(),
                created_at: now,
            };
            match self.insert_workspace(&workspace).await {
                Ok(()) => return Ok(workspace),
                Err(InsertWorkspaceError::NameTaken { .. }) => continue,
                Err(error) => return Err(EnsureWorkspaceError::Insert(error)),
            }
        }
        Err(EnsureWorkspaceError::Race)
    }

    /// The workspace named `name`, or `None`.
    ///
    /// # Errors
    ///
    /// [`EnsureWorkspaceError::Database`] or [`EnsureWorkspaceError::CorruptRow`].
    pub async fn workspace_named(
        &self,
        name: &WorkspaceName,
    ) -> Result<Option<Workspace>, EnsureWorkspaceError> {
        let row = match &self.backend {
            Backend::Sqlite(pool) => sqlite::workspace_named(pool, name.as_str()).await,
            Backend::Postgres(pool) => postgres::workspace_named(pool, name.as_str()).await,
        }
        .map_err(EnsureWorkspaceError::Database)?;
        let Some((id, created_at)) = row else {
            return Ok(None);
        };
        Ok(Some(Workspace {
            id: WorkspaceId::parse(&id).map_err(|_| EnsureWorkspaceError::CorruptRow)?,
            name: name.clone(),
            created_at: created_at
                .parse()
                .map_err(|_| EnsureWorkspaceError::CorruptRow)?,
        }))
    }

    /// Makes a new token for the customer `customer_id` of `workspace_id`, valid until
    /// `expires_at`, and stores its hash. The secret is returned once.
    ///
    /// # Errors
    ///
    /// [`StoreCredentialError`] when the insert fails (e.g. the customer does not exist).
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id))]
    pub async fn create_customer_token(
        &self,
        workspace_id: &WorkspaceId,
        customer_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(CustomerToken, CredentialSecret), StoreCredentialError> {
        assert!(expires_at > now, "a token expires after it is made");
        let secret = CredentialSecret::generate(CredentialKind::CustomerToken);
        let token = CustomerToken {
            workspace_id: workspace_id.clone(),
            id: new_id("ctok"),
            customer_id: customer_id.to_owned(),
            prefix: secret.display_prefix(),
            created_at: now,
            expires_at,
        };
        let hash = secret.hash();
        let row = CredentialRow {
            workspace_id: workspace_id.as_str(),
            id: &token.id,
            customer_id: Some(customer_id),
            hash: hash.as_str(),
            prefix: &token.prefix,
            created_at: format_timestamp(now),
            expires_at: Some(format_timestamp(expires_at)),
        };
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::insert_customer_token(pool, &row).await,
            Backend::Postgres(pool) => postgres::insert_customer_token(pool, &row).await,
        }
        .map_err(StoreCredentialError)?;
        Ok((token, secret))
    }

    /// The owner of the customer token whose secret hashes to `hash`, if it exists and has not
    /// expired at `now`.
    ///
    /// # Errors
    ///
    /// [`LoadCredentialError`] when the query fails or the stored workspace id is invalid.
    #[tracing::instrument(skip_all)]
    pub async fn customer_token_owner(
        &self,
        hash: &CredentialHash,
        now: Timestamp,
    ) -> Result<Option<CustomerTokenOwner>, LoadCredentialError> {
        if let Some(CachedCredential::CustomerToken { owner, expires_at }) =
            self.credentials.get(hash.as_str())
        {
            return Ok((now < expires_at).then_some(owner));
        }
        let now_text = format_timestamp(now);
        let row = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::customer_token_owner(pool, hash.as_str(), &now_text).await
            }
            Backend::Postgres(pool) => {
                postgres::customer_token_owner(pool, hash.as_str(), &now_text).await
            }
        }
        .map_err(LoadCredentialError::Database)?;
        let Some((workspace_id, customer_id, expires_at)) = row else {
            return Ok(None);
        };
        let corrupt = |_| LoadCredentialError::CorruptRow;
        let owner = CustomerTokenOwner {
            workspace_id: WorkspaceId::parse(&workspace_id)
                .map_err(|_| LoadCredentialError::CorruptRow)?,
            customer_id,
        };
        let expires_at: Timestamp = expires_at.parse().map_err(corrupt)?;
        self.credentials.insert(
            hash.as_str(),
            CachedCredential::CustomerToken {
                owner: owner.clone(),
                expires_at,
            },
        );
        Ok(Some(owner))
    }

    /// The unexpired tokens of the customer `customer_id`, oldest first.
    ///
    /// # Errors
    ///
    /// [`LoadCredentialError`] when the query fails or a row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id))]
    pub async fn customer_tokens(
        &self,
        workspace_id: &WorkspaceId,
        customer_id: &str,
        now: Timestamp,
    ) -> Result<Vec<CustomerToken>, LoadCredentialError> {
        let now = format_timestamp(now);
        let rows = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::customer_tokens(pool, workspace_id.as_str(), customer_id, &now).await
            }
            Backend::Postgres(pool) => {
                postgres::customer_tokens(pool, workspace_id.as_str(), customer_id, &now).await
            }
        }
        .map_err(LoadCredentialError::Database)?;
        let parse = |text: &str| {
            text.parse::<Timestamp>()
                .map_err(|_| LoadCredentialError::CorruptRow)
        };
        rows.into_iter()
            .map(|(id, prefix, created_at, expires_at)| {
                Ok(CustomerToken {
                    workspace_id: workspace_id.clone(),
                    id,
                    customer_id: customer_id.to_owned(),
                    prefix,
                    created_at: parse(&created_at)?,
                    expires_at: parse(&expires_at)?,
                })
            })
            .collect()
    }

    /// Deletes the token `token_id` of the customer `customer_id`: it is refused from then on (by
    /// other processes within [`CREDENTIAL_CACHE_TTL`]). Returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`StoreCredentialError`] when the delete fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id, token_id))]
    pub async fn revoke_customer_token(
        &self,
        workspace_id: &WorkspaceId,
        customer_id: &str,
        token_id: &str,
    ) -> Result<bool, StoreCredentialError> {
        let workspace_id = workspace_id.as_str();
        let deleted = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::delete_customer_token(pool, workspace_id, customer_id, token_id).await
            }
            Backend::Postgres(pool) => {
                postgres::delete_customer_token(pool, workspace_id, customer_id, token_id).await
            }
        }
        .map_err(StoreCredentialError)?;
        self.credentials.clear();
        Ok(deleted)
    }
}

/// Why a credential could not be stored or revoked.
#[derive(Debug, thiserror::Error)]
#[error("could not store the credential")]
pub struct StoreCredentialError(#[source] sqlx::Error);

/// Why a credential could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum LoadCredentialError {
    #[error("could not look the credential up")]
    Database(#[source] sqlx::Error),
    #[error("the stored credential has an invalid workspace id or timestamp")]
    CorruptRow,
}

/// Why [`Store::workspace_named_or_created`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EnsureWorkspaceError {
    #[error("could not look the workspace up")]
    Database(#[source] sqlx::Error),
    #[error("could not create the workspace")]
    Insert(#[source] InsertWorkspaceError),
    #[error("the stored workspace is invalid")]
    CorruptRow,
    #[error("the workspace was created and removed concurrently")]
    Race,
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
