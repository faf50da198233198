//! Idempotency key queries in SQLite's dialect.

use sqlx::SqlitePool;

use super::Claim;

/// Deletes the key if it expired (or its claim went stale), then tries to insert it.
pub(super) async fn claim(
    pool: &SqlitePool,
    workspace_id: &str,
    key: &str,
    fingerprint: &str,
    [now, expired_before, stale_before]: [&str; 3],
) -> Result<Claim, sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE workspace_id = ?1 AND key = ?2 \
         AND (created_at < ?3 OR (response_status IS NULL AND created_at < ?4))",
    )
    .bind(workspace_id)
    .bind(key)
    .bind(expired_before)
    .bind(stale_before)
    .execute(pool)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, created_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (workspace_id, key) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    let row = sqlx::query_as(
        "SELECT fingerprint, response_status, response_headers, response_body \
         FROM idempotency_keys WHERE workspace_id = ?1 AND key = ?2",
    )
    .bind(workspace_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(Claim::Taken(row))
}

pub(super) async fn complete(
    pool: &SqlitePool,
    workspace_id: &str,
    key: &str,
    status: i64,
    headers: &str,
    body: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = ?3, response_headers = ?4, \
         response_body = ?5 WHERE workspace_id = ?1 AND key = ?2",
    )
    .bind(workspace_id)
    .bind(key)
    .bind(status)
    .bind(headers)
    .bind(body)
    .execute(pool)
    .await
    .map(drop)
}

pub(super) async fn abandon(
    pool: &SqlitePool,
    workspace_id: &str,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys \
         WHERE workspace_id = ?1 AND key = ?2 AND response_status IS NULL",
    )
    .bind(workspace_id)
    .bind(key)
    .execute(pool)
    .await
    .map(drop)
}

pub(super) async fn delete_expired(
    pool: &SqlitePool,
    expired_before: &str,
) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
        .bind(expired_before)
        .execute(pool)
        .await
        .map(|result| result.rows_affected())
}
