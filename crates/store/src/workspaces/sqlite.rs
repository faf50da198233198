//! Workspace queries in SQLite's dialect.

use sqlx::SqlitePool;

use super::{UniqueKey, WorkspaceRow};

pub(super) async fn insert(pool: &SqlitePool, row: &WorkspaceRow) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, ?3)")
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.created_at)
        .execute(pool)
        .await
        .map(drop)
}

pub(super) async fn fetch(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<WorkspaceRow>, sqlx::Error> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE id = ?1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id, name, created_at)| WorkspaceRow {
        id,
        name,
        created_at,
    }))
}

/// SQLite reports no constraint name, only the columns: "UNIQUE constraint failed:
/// workspaces.name" (https://sqlite.org/rescode.html#constraint_unique).
pub(super) fn violated_unique_key(error: &sqlx::Error) -> Option<UniqueKey> {
    let database_error = error.as_database_error()?;
    if !database_error.is_unique_violation() {
        return None;
    }
    match database_error
        .message()
        .strip_prefix("UNIQUE constraint failed: ")?
    {
        "workspaces.id" => Some(UniqueKey::Id),
        "workspaces.name" => Some(UniqueKey::Name),
        _ => None,
    }
}
