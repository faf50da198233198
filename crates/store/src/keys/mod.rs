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
mod secret;
mod sqlite;
mod tokens;

use cache::CachedCredential;
pub(crate) use cache::CredentialCache;
pub use cache::{CREDENTIAL_CACHE_ENTRIES_MAX, CREDENTIAL_CACHE_TTL};
pub use secret::{CredentialHash, CredentialKind, CredentialSecret};

use jiff::Timestamp;

use crate::ids::new_id;
use crate::store::{Backend, Store};
use crate::workspaces::format_timestamp;
use crate::{InsertWorkspaceError, Workspace, WorkspaceId, WorkspaceName};

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
