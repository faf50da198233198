//! Idempotency keys: the first response to a POST with an `Idempotency-Key`, kept so that a
//! retry gets the same answer instead of doing the work twice (Stripe's semantics; DESIGN.md §4).
//!
//! [`Store::begin_idempotent_request`] claims a key (or reports it in flight, completed, or used
//! with another request), [`Store::complete_idempotent_request`] records the response, and
//! [`Store::abandon_idempotent_request`] releases a claim whose request should be retried for
//! real. Keys are scoped to a workspace.

mod postgres;
mod sqlite;

use jiff::Timestamp;

use crate::store::{Backend, Store};
use crate::workspaces::format_timestamp;
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

/// A row as both backends' query modules read it.
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
        let now = format_timestamp(window.now);
        let expired_before = format_timestamp(window.expired_before);
        let stale_before = format_timestamp(window.stale_before);
        let workspace_id = workspace_id.as_str();
        // Twice: the row found conflicting may be deleted (expired) before it is read.
        for _ in 0..2 {
            let existing = match &self.backend {
                Backend::Sqlite(pool) => {
                    sqlite::claim(
                        pool,
                        workspace_id,
                        key,
                        fingerprint,
                        [&now, &expired_before, &stale_before],
                    )
                    .await
                }
                Backend::Postgres(pool) => {
                    postgres::claim(
                        pool,
                        workspace_id,
                        key,
                        fingerprint,
                        [&now, &expired_before, &stale_before],
                    )
                    .await
                }
            }
            .map_err(IdempotencyStoreError::Database)?;
            match existing {
                Claim::Claimed => return Ok(IdempotencyBegin::Started),
                Claim::Taken(Some(row)) => return row.into_begin(fingerprint),
                Claim::Taken(None) => continue,
            }
        }
        Ok(IdempotencyBegin::InFlight)
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
        let status = i64::from(response.status);
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::complete(
                    pool,
                    workspace_id.as_str(),
                    key,
                    status,
                    &headers,
                    &response.body,
                )
                .await
            }
            Backend::Postgres(pool) => {
                postgres::complete(
                    pool,
                    workspace_id.as_str(),
                    key,
                    status,
                    &headers,
                    &response.body,
                )
                .await
            }
        }
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
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::abandon(pool, workspace_id.as_str(), key).await,
            Backend::Postgres(pool) => postgres::abandon(pool, workspace_id.as_str(), key).await,
        }
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
        let expired_before = format_timestamp(expired_before);
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::delete_expired(pool, &expired_before).await,
            Backend::Postgres(pool) => postgres::delete_expired(pool, &expired_before).await,
        }
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
