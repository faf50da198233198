//! Customer-scoped tokens (`bct_…`): made by a workspace key for one customer, refused after
//! they expire or are revoked.

use jiff::Timestamp;

use super::cache::CachedCredential;
use super::{
    postgres, sqlite, CredentialKind, CredentialRow, CredentialSecret, CustomerToken,
    CustomerTokenOwner, LoadCredentialError, StoreCredentialError,
};
use crate::ids::new_id;
use crate::store::{Backend, Store};
use crate::workspaces::format_timestamp;
use crate::{CredentialHash, WorkspaceId};

impl Store {
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
    /// other processes within [`CREDENTIAL_CACHE_TTL`](super::CREDENTIAL_CACHE_TTL)). Returns
    /// whether it existed.
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
