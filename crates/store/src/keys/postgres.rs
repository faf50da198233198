//! Credential queries in PostgreSQL's dialect.

use sqlx::PgPool;

use super::CredentialRow;

pub(super) async fn insert_api_key(
    pool: &PgPool,
    row: &CredentialRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_keys (workspace_id, id, hash, prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5::timestamptz)",
    )
    .bind(row.workspace_id)
    .bind(row.id)
    .bind(row.hash)
    .bind(row.prefix)
    .bind(&row.created_at)
    .execute(pool)
    .await
    .map(drop)
}

pub(super) async fn api_key_workspace(
    pool: &PgPool,
    hash: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT workspace_id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
        .bind(hash)
        .fetch_optional(pool)
        .await
}

/// `(id, prefix, created_at, revoked_at)` of every key of the workspace, oldest first.
pub(super) async fn api_keys(
    pool: &PgPool,
    workspace_id: &str,
) -> Result<Vec<(String, String, String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT id, prefix,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM api_keys WHERE workspace_id = $1 ORDER BY id"#,
    )
    .bind(workspace_id)
    .fetch_all(pool)
    .await
}

pub(super) async fn revoke_api_key(
    pool: &PgPool,
    workspace_id: &str,
    key_id: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE api_keys SET revoked_at = $3::timestamptz \
         WHERE workspace_id = $1 AND id = $2 AND revoked_at IS NULL",
    )
    .bind(workspace_id)
    .bind(key_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub(super) async fn any_api_key_exists(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)")
        .fetch_one(pool)
        .await
}

pub(super) async fn workspace_named(
    pool: &PgPool,
    name: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM workspaces WHERE name = $1"#,
    )
    .bind(name)
    .fetch_optional(pool)
    .await
}

pub(super) async fn insert_customer_token(
    pool: &PgPool,
    row: &CredentialRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customer_tokens \
         (workspace_id, id, customer_id, hash, prefix, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6::timestamptz, $7::timestamptz)",
    )
    .bind(row.workspace_id)
    .bind(row.id)
    .bind(row.customer_id)
    .bind(row.hash)
    .bind(row.prefix)
    .bind(&row.created_at)
    .bind(&row.expires_at)
    .execute(pool)
    .await
    .map(drop)
}

/// `(workspace_id, customer_id, expires_at)` of the unexpired token.
pub(super) async fn customer_token_owner(
    pool: &PgPool,
    hash: &str,
    now: &str,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT workspace_id, customer_id,
                  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM customer_tokens WHERE hash = $1 AND expires_at > $2::timestamptz"#,
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(pool)
    .await
}

/// `(id, prefix, created_at, expires_at)` of the customer's unexpired tokens, oldest first.
pub(super) async fn customer_tokens(
    pool: &PgPool,
    workspace_id: &str,
    customer_id: &str,
    now: &str,
) -> Result<Vec<(String, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT id, prefix,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM customer_tokens
           WHERE workspace_id = $1 AND customer_id = $2 AND expires_at > $3::timestamptz
           ORDER BY id"#,
    )
    .bind(workspace_id)
    .bind(customer_id)
    .bind(now)
    .fetch_all(pool)
    .await
}

pub(super) async fn delete_customer_token(
    pool: &PgPool,
    workspace_id: &str,
    customer_id: &str,
    token_id: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM customer_tokens WHERE workspace_id = $1 AND customer_id = $2 AND id = $3",
    )
    .bind(workspace_id)
    .bind(customer_id)
    .bind(token_id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}
