//! Workspace queries in PostgreSQL's dialect.

use sqlx::PgPool;

use super::{UniqueKey, WorkspaceRow};

pub(super) async fn insert(pool: &PgPool, row: &WorkspaceRow) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3::timestamptz)")
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.created_at)
        .execute(pool)
        .await
        .map(drop)
}

pub(super) async fn fetch(pool: &PgPool, id: &str) -> Result<Option<WorkspaceRow>, sqlx::Error> {
    // Formatted in SQL, as SQLite stores it, so that both backends share the row mapping.
    let row: Option<(String, String, String)> = sqlx::query_as(
        r#"SELECT id, name,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
           FROM workspaces WHERE id = $1"#,
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, name, created_at)| WorkspaceRow {
        id,
        name,
        created_at,
    }))
}

/// The constraints are named in the migration (migrations/postgres/0001_workspaces.sql).
pub(super) fn violated_unique_key(error: &sqlx::Error) -> Option<UniqueKey> {
    let database_error = error.as_database_error()?;
    if !database_error.is_unique_violation() {
        return None;
    }
    match database_error.constraint()? {
        "workspaces_pkey" => Some(UniqueKey::Id),
        "workspaces_name_key" => Some(UniqueKey::Name),
        _ => None,
    }
}
