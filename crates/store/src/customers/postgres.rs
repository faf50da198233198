//! Customer and project queries in PostgreSQL's dialect.

use sqlx::PgPool;

use super::{CustomerKey, CustomerRow, Project, ProjectRow, Violation};

/// JSON columns read as text and the day widened, so that both backends share the row type.
const CUSTOMER_COLUMNS: &str = "id, external_id, name, email, address::text AS address, \
                                tax_ids::text AS tax_ids, currency, time_zone, \
                                billing_cycle_day::int8 AS billing_cycle_day, parent_id";

pub(super) async fn insert_customer(
    pool: &PgPool,
    workspace_id: &str,
    row: &CustomerRow,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (workspace_id, id, external_id, name, email, address, tax_ids, \
         currency, time_zone, billing_cycle_day, parent_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10::int2, $11, \
         $12::timestamptz, $12::timestamptz)",
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
    pool: &PgPool,
    workspace_id: &str,
    row: &CustomerRow,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE customers SET external_id = $3, name = $4, email = $5, address = $6::jsonb, \
         tax_ids = $7::jsonb, currency = $8, time_zone = $9, billing_cycle_day = $10::int2, \
         parent_id = $11, updated_at = $12::timestamptz \
         WHERE workspace_id = $1 AND id = $2",
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
    pool: &PgPool,
    workspace_id: &str,
    key: CustomerKey,
    value: &str,
) -> Result<Option<CustomerRow>, sqlx::Error> {
    let column = match key {
        CustomerKey::Id => "id",
        CustomerKey::ExternalId => "external_id",
    };
    let query = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE workspace_id = $1 AND {column} = $2"
    );
    sqlx::query_as(&query)
        .bind(workspace_id)
        .bind(value)
        .fetch_optional(pool)
        .await
}

pub(super) async fn customers(
    pool: &PgPool,
    workspace_id: &str,
    limit: i64,
    starting_after: Option<&str>,
) -> Result<Vec<CustomerRow>, sqlx::Error> {
    let query = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers \
         WHERE workspace_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3"
    );
    sqlx::query_as(&query)
        .bind(workspace_id)
        .bind(starting_after)
        .bind(limit)
        .fetch_all(pool)
        .await
}

pub(super) async fn insert_project(
    pool: &PgPool,
    workspace_id: &str,
    project: &Project,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projects (workspace_id, id, customer_id, parent_id, name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6::timestamptz)",
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
    pool: &PgPool,
    workspace_id: &str,
    id: &str,
) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, customer_id, parent_id, name FROM projects WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub(super) async fn projects(
    pool: &PgPool,
    workspace_id: &str,
    customer_id: &str,
    limit: i64,
) -> Result<Vec<ProjectRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, customer_id, parent_id, name FROM projects \
         WHERE workspace_id = $1 AND customer_id = $2 ORDER BY id LIMIT $3",
    )
    .bind(workspace_id)
    .bind(customer_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The constraints are named in the migration (migrations/postgres/0002_access.sql).
pub(super) fn violation(error: &sqlx::Error) -> Option<Violation> {
    let database_error = error.as_database_error()?;
    if database_error.is_foreign_key_violation() {
        return Some(Violation::UnknownParent);
    }
    if !database_error.is_unique_violation() {
        return None;
    }
    match database_error.constraint()? {
        "customers_external_id_key" => Some(Violation::ExternalIdTaken),
        "customers_pkey" | "projects_pkey" => Some(Violation::IdTaken),
        _ => None,
    }
}
