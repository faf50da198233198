//! Customer and project queries in SQLite's dialect.

use sqlx::SqlitePool;

use super::{CustomerKey, CustomerRow, Project, ProjectRow, Violation};

const CUSTOMER_COLUMNS: &str = "id, external_id, name, email, address, tax_ids, currency, \
                                time_zone, billing_cycle_day, parent_id";

pub(super) async fn insert_customer(
    pool: &SqlitePool,
    workspace_id: &str,
    row: &CustomerRow,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (workspace_id, id, external_id, name, email, address, tax_ids, \
         currency, time_zone, billing_cycle_day, parent_id, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )
    .bind(workspace_id)
    .bind(&row.id)
    .bind(&row.external_id)
    .bind(&row.name)
    .bind(&row.email)
    .bind(&row.address)
    .bind(&row.tax_ids)
    .bind(&row.currency)
    .bind(&row.time_zone)
    .bind(row.billing_cycle_day)
    .bind(&row.parent_id)
    .bind(now)
    .execute(pool)
    .await
    .map(drop)
}

pub(super) async fn update_customer(
    pool: &SqlitePool,
    workspace_id: &str,
    row: &CustomerRow,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE customers SET external_id = ?3, name = ?4, email = ?5, address = ?6, \
         tax_ids = ?7, currency = ?8, time_zone = ?9, billing_cycle_day = ?10, parent_id = ?11, \
         updated_at = ?12 \
         WHERE workspace_id = ?1 AND id = ?2",
    )
    .bind(workspace_id)
    .bind(&row.id)
    .bind(&row.external_id)
    .bind(&row.name)
    .bind(&row.email)
    .bind(&row.address)
    .bind(&row.tax_ids)
    .bind(&row.currency)
    .bind(&row.time_zone)
    .bind(row.billing_cycle_day)
    .bind(&row.parent_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub(super) async fn customer(
    pool: &SqlitePool,
    workspace_id: &str,
    key: CustomerKey,
    value: &str,
) -> Result<Option<CustomerRow>, sqlx::Error> {
    let column = match key {
        CustomerKey::Id => "id",
        CustomerKey::ExternalId => "external_id",
    };
    let query = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE workspace_id = ?1 AND {column} = ?2"
    );
    sqlx::query_as(&query)
        .bind(workspace_id)
        .bind(value)
        .fetch_optional(pool)
        .await
}

pub(super) async fn customers(
    pool: &SqlitePool,
    workspace_id: &str,
    limit: i64,
    starting_after: Option<&str>,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    let query = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers \
         WHERE workspace_id = ?1 AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3"
    );
    sqlx::query_as(&query)
        .bind(workspace_id)
        .bind(starting_after)
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub(super) async fn insert_project(
    pool: &SqlitePool,
    workspace_id: &str,
    project: &Project,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projects (workspace_id, id, customer_id, parent_id, name, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(workspace_id)
    .bind(&project.id)
    .bind(&project.customer_id)
    .bind(&project.parent_id)
    .bind(&project.name)
    .bind(now)
    .execute(pool)
    .await
    .map(drop)
}

pub(super) async fn project(
    pool: &SqlitePool,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, customer_id, parent_id, name FROM projects WHERE workspace_id = ?1 AND id = ?2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub(super) async fn projects(
    pool: &SqlitePool,
    workspace_id: &str,
    customer_id: &str,
    limit: i64,
) -> Result<Vec<ProjectRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, customer_id, parent_id, name FROM projects \
         WHERE workspace_id = ?1 AND customer_id = ?2 ORDER BY id LIMIT ?3",
    )
    .bind(workspace_id)
    .bind(customer_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// SQLite names the columns of a violated unique key ("UNIQUE constraint failed:
/// customers.workspace_id, customers.external_id") but not which foreign key failed.
pub(super) fn violation(error: &sqlx::Error) -> Option<Violation> {
    let database_error = error.as_database_error()?;
    if database_error.is_foreign_key_violation() {
        return Some(Violation::UnknownParent);
    }
    if !database_error.is_unique_violation() {
        return None;
    }
    let columns = database_error
        .message()
        .strip_prefix("UNIQUE constraint failed: ")?;
    match columns {
        "customers.workspace_id, customers.external_id" => Some(Violation::ExternalIdTaken),
        "customers.workspace_id, customers.id" | "projects.workspace_id, projects.id" => {
            Some(Violation::IdTaken)
        }
        _ => None,
    }
}
