//! Customer-scoped tokens (`bct_…`): made by a workspace key for one customer, refused after
//! they expire or are revoked.

use jiff::Timestamp;

use super::cache::CachedCredential;
use super::{
    credential_timestamp, CredentialKind, CredentialSecret, CustomerToken, CustomerTokenOwner,
    LoadCredentialError, StoreCredentialError,
};
use crate::ids::new_id;
use crate::sql::{to_micros, with_pool};
use crate::store::Store;
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
            customer_id: customer_id.into(),
            prefix: secret.display_prefix(),
            created_at: now,
            expires_at,
        };
        const SQL: &str = "INSERT INTO customer_tokens \
                           (workspace_id, id, customer_id, hash, prefix, created_at, expires_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let hash = secret.hash();
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(&token.id)
            .bind(customer_id)
            .bind(hash.as_str())
            .bind(&token.prefix)
            .bind(to_micros(now))
            .bind(to_micros(expires_at))
            .execute(pool)
            .await
            .map(drop))
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
        const SQL: &str = "SELECT workspace_id, customer_id, expires_at FROM customer_tokens \
                           WHERE hash = $1 AND expires_at > $2";
        let row: Option<(String, String, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(hash.as_str())
            .bind(to_micros(now))
            .fetch_optional(pool)
            .await)
        .map_err(LoadCredentialError::Database)?;
        let Some((workspace_id, customer_id, expires_at)) = row else {
            return Ok(None);
        };
        let owner = CustomerTokenOwner {
            workspace_id: WorkspaceId::parse(&workspace_id)
                .map_err(|_| LoadCredentialError::CorruptRow)?,
            customer_id: customer_id.into(),
        };
        let expires_at = credential_timestamp(expires_at)?;
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
        const SQL: &str = "SELECT id, prefix, created_at, expires_at FROM customer_tokens \
                           WHERE workspace_id = $1 AND customer_id = $2 AND expires_at > $3 \
                           ORDER BY id";
        let rows: Vec<(String, String, i64, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace_id.as_str())
            .bind(customer_id)
            .bind(to_micros(now))
            .fetch_all(pool)
            .await)
        .map_err(LoadCredentialError::Database)?;
        rows.into_iter()
            .map(|(id, prefix, created_at, expires_at)| {
                Ok(CustomerToken {
                    workspace_id: workspace_id.clone(),
                    id,
                    customer_id: customer_id.into(),
                    prefix,
                    created_at: credential_timestamp(created_at)?,
                    expires_at: credential_timestamp(expires_at)?,
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
        const SQL: &str =
            "DELETE FROM customer_tokens WHERE workspace_id = $1 AND customer_id = $2 AND id = $3";
        let deleted = with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(customer_id)
            .bind(token_id)
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))
        .map_err(StoreCredentialError)?;
        self.credentials.clear();
        Ok(deleted == 1)
    }
}
