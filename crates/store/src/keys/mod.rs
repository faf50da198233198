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

pub(crate) mod cache;
mod secret;
mod tokens;

use cache::CachedCredential;
pub use cache::{CREDENTIAL_CACHE_ENTRIES_MAX, CREDENTIAL_CACHE_TTL};
pub use secret::{CredentialHash, CredentialKind, CredentialSecret};

use jiff::Timestamp;

use crate::ids::{new_id, CustomerId};
use crate::sql::{timestamp_from_micros, to_micros, with_pool};
use crate::store::Store;
use crate::workspaces::{workspace_from_row, WorkspaceKey};
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
    pub customer_id: CustomerId,
    pub prefix: String,
    pub created_at: Timestamp,
    /// The token is refused from this instant on.
    pub expires_at: Timestamp,
}

/// The owner of a valid customer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerTokenOwner {
    pub workspace_id: WorkspaceId,
    pub customer_id: CustomerId,
}

/// A stored instant of a credential.
fn credential_timestamp(micros: i64) -> Result<Timestamp, LoadCredentialError> {
    timestamp_from_micros(micros).map_err(|_| LoadCredentialError::CorruptRow)
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
        const SQL: &str = "INSERT INTO api_keys (workspace_id, id, hash, prefix, created_at) \
                           VALUES ($1, $2, $3, $4, $5)";
        let hash = secret.hash();
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(&key.id)
            .bind(hash.as_str())
            .bind(&key.prefix)
            .bind(to_micros(now))
            .execute(pool)
            .await
            .map(drop))
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
        const SQL: &str =
            "SELECT workspace_id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL";
        let workspace_id: Option<String> = with_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(hash.as_str())
            .fetch_optional(pool)
            .await)
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
        const SQL: &str = "SELECT id, prefix, created_at, revoked_at \
                           FROM api_keys WHERE workspace_id = $1 ORDER BY id";
        let rows: Vec<(String, String, i64, Option<i64>)> = with_pool!(self, pool =>
            sqlx::query_as(SQL).bind(workspace_id.as_str()).fetch_all(pool).await)
        .map_err(LoadCredentialError::Database)?;
        rows.into_iter()
            .map(|(id, prefix, created_at, revoked_at)| {
                Ok(ApiKey {
                    workspace_id: workspace_id.clone(),
                    id,
                    prefix,
                    created_at: credential_timestamp(created_at)?,
                    revoked_at: revoked_at.map(credential_timestamp).transpose()?,
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
        const SQL: &str = "UPDATE api_keys SET revoked_at = $3 \
                           WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL";
        let revoked = with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(key_id)
            .bind(to_micros(now))
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))
        .map_err(StoreCredentialError)?;
        self.credentials.clear();
        Ok(revoked == 1)
    }

    /// Whether any unrevoked API key exists, in any workspace: `serve` says how to make one when
    /// none does.
    ///
    /// # Errors
    ///
    /// [`LoadCredentialError`] when the query fails.
    pub async fn any_api_key_exists(&self) -> Result<bool, LoadCredentialError> {
        const SQL: &str = "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)";
        with_pool!(self, pool => sqlx::query_scalar(SQL).fetch_one(pool).await)
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
        let row = self
            .workspace_row(WorkspaceKey::Name, name.as_str())
            .await
            .map_err(EnsureWorkspaceError::Database)?;
        let workspace = row
            .map(workspace_from_row)
            .transpose()
            .map_err(|_| EnsureWorkspaceError::CorruptRow)?;
        if let Some(workspace) = &workspace {
            assert_eq!(
                &workspace.name, name,
                "the query returned another workspace"
            );
        }
        Ok(workspace)
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
