//! Idempotency keys: the first response to a POST with an `Idempotency-Key`, kept so that a
//! retry gets the same answer instead of doing the work twice (Stripe's semantics; DESIGN.md §4).
//!
//! [`Store::begin_idempotent_request`] claims a key (or reports it in flight, completed, or used
//! with another request), [`Store::complete_idempotent_request`] records the response, and
//! [`Store::abandon_idempotent_request`] releases a claim whose request should be retried for
//! real. Keys are scoped to a workspace.

use jiff::Timestamp;

use crate::sql::{to_micros, with_pool};
use crate::store::Store;
use crate::WorkspaceId;

/// A response as it was first answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Name and value pairs, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What [`Store::begin_idempotent_request`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is new (or expired): this request owns it and must complete or abandon it.
    Started,
    /// Another request with the key has not finished yet.
    InFlight,
    /// A request with the key finished: answer its response again.
    Completed(StoredResponse),
    /// The key was used with a request of another fingerprint.
    Mismatch,
}

/// When keys expire and when an unfinished claim is taken over.
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyWindow {
    pub now: Timestamp,
    /// Keys created before this instant are forgotten.
    pub expired_before: Timestamp,
    /// Claims created before this instant and never completed (their process died) are taken
    /// over rather than answered 409 until they expire.
    pub stale_before: Timestamp,
}

/// A claimed key's row, as read back.
#[derive(sqlx::FromRow)]
struct IdempotencyRow {
    fingerprint: String,
    response_status: Option<i64>,
    response_headers: Option<String>,
    response_body: Option<Vec<u8>>,
}

impl IdempotencyRow {
    fn into_begin(self, fingerprint: &str) -> Result<IdempotencyBegin, IdempotencyStoreError> {
        // In flight first, whatever the fingerprint: the first request's outcome is not known yet.
        let Some(status) = self.response_status else {
            return Ok(IdempotencyBegin::InFlight);
        };
        if self.fingerprint != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        let status = u16::try_from(status).map_err(|_| IdempotencyStoreError::CorruptRow)?;
        let headers = serde_json::from_str(self.response_headers.as_deref().unwrap_or("[]"))
            .map_err(|_| IdempotencyStoreError::CorruptRow)?;
        Ok(IdempotencyBegin::Completed(StoredResponse {
            status,
            headers,
            body: self.response_body.unwrap_or_default(),
        }))
    }
}

impl Store {
    /// Claims `key` of `workspace_id` for a request whose method, path and body hash to
    /// `fingerprint`, or reports what an earlier request with the key left.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError`] when a query fails or the stored row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn begin_idempotent_request(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
        fingerprint: &str,
        window: IdempotencyWindow,
    ) -> Result<IdempotencyBegin, IdempotencyStoreError> {
        // Twice: the row found conflicting may be deleted (expired) before it is read.
        for _ in 0..2 {
            let claim = self
                .claim_idempotency_key(workspace_id, key, fingerprint, window)
                .await
                .map_err(IdempotencyStoreError::Database)?;
            match claim {
                Claim::Claimed => return Ok(IdempotencyBegin::Started),
                Claim::Taken(Some(row)) => return row.into_begin(fingerprint),
                Claim::Taken(None) => continue,
            }
        }
        Ok(IdempotencyBegin::InFlight)
    }

    /// Deletes the key if it expired (or its claim went stale), then tries to insert it.
    async fn claim_idempotency_key(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
        fingerprint: &str,
        window: IdempotencyWindow,
    ) -> Result<Claim, sqlx::Error> {
        const DELETE_EXPIRED: &str = "DELETE FROM idempotency_keys \
                                      WHERE workspace_id = $1 AND key = $2 AND (created_at < $3 \
                                      OR (response_status IS NULL AND created_at < $4))";
        const INSERT: &str = "INSERT INTO idempotency_keys \
                              (workspace_id, key, fingerprint, created_at) VALUES ($1, $2, $3, $4) \
                              ON CONFLICT (workspace_id, key) DO NOTHING";
        const SELECT: &str = "SELECT fingerprint, response_status, response_headers, \
                              response_body FROM idempotency_keys \
                              WHERE workspace_id = $1 AND key = $2";
        let workspace_id = workspace_id.as_str();
        with_pool!(self, pool => {
            sqlx::query(DELETE_EXPIRED)
                .bind(workspace_id)
                .bind(key)
                .bind(to_micros(window.expired_before))
                .bind(to_micros(window.stale_before))
                .execute(pool)
                .await?;
            let inserted = sqlx::query(INSERT)
                .bind(workspace_id)
                .bind(key)
                .bind(fingerprint)
                .bind(to_micros(window.now))
                .execute(pool)
                .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::Claimed);
            }
            let row = sqlx::query_as(SELECT)
                .bind(workspace_id)
                .bind(key)
                .fetch_optional(pool)
                .await?;
            Ok(Claim::Taken(row))
        })
    }

    /// Records the response of the request that claimed `key`.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError::Database`] when the update fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, status = response.status))]
    pub async fn complete_idempotent_request(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyStoreError> {
        let headers = match serde_json::to_string(&response.headers) {
            Ok(headers) => headers,
            Err(error) => unreachable!("header pairs always serialize: {error}"),
        };
        const SQL: &str = "UPDATE idempotency_keys SET response_status = $3, \
                           response_headers = $4, response_body = $5 \
                           WHERE workspace_id = $1 AND key = $2";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(key)
            .bind(i64::from(response.status))
            .bind(&headers)
            .bind(&response.body)
            .execute(pool)
            .await
            .map(drop))
        .map_err(IdempotencyStoreError::Database)
    }

    /// Releases the unfinished claim on `key`, so that a retry runs the request again (after a
    /// 5xx, or a rejection before the work started).
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError::Database`] when the delete fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn abandon_idempotent_request(
        &self,
        workspace_id: &WorkspaceId,
        key: &str,
    ) -> Result<(), IdempotencyStoreError> {
        const SQL: &str = "DELETE FROM idempotency_keys \
                           WHERE workspace_id = $1 AND key = $2 AND response_status IS NULL";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace_id.as_str())
            .bind(key)
            .execute(pool)
            .await
            .map(drop))
        .map_err(IdempotencyStoreError::Database)
    }

    /// Forgets every key created before `expired_before`, in every workspace. Returns how many.
    ///
    /// # Errors
    ///
    /// [`IdempotencyStoreError::Database`] when the delete fails.
    pub async fn delete_expired_idempotency_keys(
        &self,
        expired_before: Timestamp,
    ) -> Result<u64, IdempotencyStoreError> {
        const SQL: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(to_micros(expired_before))
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))
        .map_err(IdempotencyStoreError::Database)
    }
}

/// What a claim attempt found: the key claimed, or the row that holds it (`None` when that row
/// vanished between the insert and the read).
enum Claim {
    Claimed,
    Taken(Option<IdempotencyRow>),
}

/// Why an idempotency key could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyStoreError {
    #[error("could not read or write the idempotency key")]
    Database(#[source] sqlx::Error),
    #[error("the stored idempotent response is invalid")]
    CorruptRow,
}
