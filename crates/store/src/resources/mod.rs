//! Billed resources: priced things a platform runs for a customer from one instant to another
//! (docs/resources.md).
//!
//! - [`ResourceRecord`]: customer, optional project, the plan and the plan version it was
//!   created on, a quantity with dated changes, its lifetime, display fields and dimensions;
//!   [`ResourceRecord::to_spec`] makes the billing core's `ResourceSpec` of it.
//! - [`Store::insert_resource`], [`Store::resource`], [`Store::resource_by_external_id`],
//!   [`Store::resources`] (a customer's, a [`Page`] in id order, optionally those alive at an
//!   instant), [`Store::change_resource_quantity`], [`Store::delete_resource`], and
//!   [`Store::resources_of_customers`] for billing runs.
//!
//! A change or deletion reads the row under a lock (an update of the row to itself, which
//! PostgreSQL locks and SQLite serializes), checks the rules of [`ResourceRecord`], and writes
//! in the same transaction, so two concurrent changes cannot both pass a check on the same old
//! row.

mod record;
mod rows;

use jiff::Timestamp;
use rust_decimal::Decimal;

pub use record::{CheckResourceError, ResourceRecord, QUANTITY_CHANGES_PER_RESOURCE_MAX};
use rows::{bind_resource, quantity_changes_json, ResourceRow, RESOURCE_COLUMNS};

use crate::billing::batch::{builder_for, ROWS_PER_STATEMENT};
use crate::billing::sql::{to_micros, with_pool, BillingStoreError};
use crate::customers::Page;
use crate::ids::CustomerId;
use crate::sql::{violated_unique_key, UniqueKeyName};
use crate::store::Store;
use crate::workspaces::WorkspaceId;

/// Why a resource could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertResourceError {
    /// The resource breaks a rule of its lifetime or quantities.
    #[error("the resource is invalid")]
    Invalid(#[from] CheckResourceError),
    /// Another resource of the workspace has the id.
    #[error("another resource of the workspace has this id")]
    IdTaken,
    /// Another resource of the workspace has the external id.
    #[error("another resource of the workspace has this external id")]
    ExternalIdTaken,
    /// The customer is not the workspace's, or the project is not one of that customer's.
    /// Neither backend says which foreign key failed (SQLite names none).
    #[error("the customer, or the project of that customer, is not in the workspace")]
    UnknownCustomerOrProject,
    /// The query failed.
    #[error(transparent)]
    Store(#[from] BillingStoreError),
}

/// Why a quantity change or a deletion was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ChangeResourceError {
    /// The workspace has no resource with the id.
    #[error("not found")]
    NotFound,
    /// The change breaks a rule of the resource's lifetime or quantities.
    #[error("the change is refused")]
    Refused(#[from] CheckResourceError),
    /// The query failed, or the row is corrupt.
    #[error(transparent)]
    Store(#[from] BillingStoreError),
}

impl From<sqlx::Error> for ChangeResourceError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Which unique key an insert violated.
#[derive(Clone, Copy)]
enum Violation {
    IdTaken,
    ExternalIdTaken,
}

/// The unique keys of `billed_resources`, as each backend names them
/// (migrations/*/0014_billed_resources.sql).
const UNIQUE_KEYS: [(UniqueKeyName, Violation); 2] = [
    (
        UniqueKeyName {
            constraint: "billed_resources_pkey",
            columns: "billed_resources.workspace_id, billed_resources.id",
        },
        Violation::IdTaken,
    ),
    (
        UniqueKeyName {
            constraint: "billed_resources_external_id_key",
            columns: "billed_resources.workspace_id, billed_resources.external_id",
        },
        Violation::ExternalIdTaken,
    ),
];

impl InsertResourceError {
    fn from_sqlx(error: sqlx::Error) -> Self {
        let is_foreign_key_violation = error
            .as_database_error()
            .is_some_and(|database_error| database_error.is_foreign_key_violation());
        if is_foreign_key_violation {
            return Self::UnknownCustomerOrProject;
        }
        match violated_unique_key(&error, &UNIQUE_KEYS) {
            Some(Violation::IdTaken) => Self::IdTaken,
            Some(Violation::ExternalIdTaken) => Self::ExternalIdTaken,
            None => Self::Store(BillingStoreError::Database(error)),
        }
    }
}

/// Which unique column a resource is looked up by.
#[derive(Clone, Copy)]
enum ResourceKey {
    Id,
    ExternalId,
}

/// The resource `$id` read in `$transaction` under a lock: an update of the row to itself,
/// which PostgreSQL locks until the transaction ends and which takes SQLite's write lock at the
/// transaction's first statement (never upgrading a read lock, which concurrent writers would
/// deadlock on). Evaluates to `Result<ResourceRecord, ChangeResourceError>`; a query error
/// returns from the enclosing function.
macro_rules! locked_resource {
    ($transaction:ident, $workspace:expr, $id:expr) => {{
        let sql = format!(
            "UPDATE billed_resources SET id = id WHERE workspace_id = $1 AND id = $2 \
             RETURNING {RESOURCE_COLUMNS}"
        );
        let row: Option<ResourceRow> = sqlx::query_as(&sql)
            .bind($workspace.as_str())
            .bind($id)
            .fetch_optional(&mut *$transaction)
            .await?;
        match row {
            None => Err(ChangeResourceError::NotFound),
            Some(row) => row.into_record().map_err(ChangeResourceError::Store),
        }
    }};
}

impl Store {
    /// Stores a new resource, after checking its rules ([`ResourceRecord::check`]).
    ///
    /// # Errors
    /// [`InsertResourceError`]: the rule broken, the key taken, the customer or project
    /// unknown, or the query failed.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, resource_id = %resource.id))]
    pub async fn insert_resource(
        &self,
        workspace: &WorkspaceId,
        resource: &ResourceRecord,
    ) -> Result<(), InsertResourceError> {
        resource.check()?;
        let sql = format!(
            "INSERT INTO billed_resources (workspace_id, {RESOURCE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        let row = ResourceRow::from_record(resource);
        with_pool!(self, pool => bind_resource!(sqlx::query(&sql), workspace, row)
            .execute(pool)
            .await
            .map(drop))
        .map_err(InsertResourceError::from_sqlx)
    }

    /// The resource `id` of the workspace, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, resource_id = %id))]
    pub async fn resource(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<ResourceRecord>, BillingStoreError> {
        self.resource_by(ResourceKey::Id, workspace, id).await
    }

    /// The resource of the workspace whose external id is `external_id`, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace))]
    pub async fn resource_by_external_id(
        &self,
        workspace: &WorkspaceId,
        external_id: &str,
    ) -> Result<Option<ResourceRecord>, BillingStoreError> {
        self.resource_by(ResourceKey::ExternalId, workspace, external_id)
            .await
    }

    async fn resource_by(
        &self,
        key: ResourceKey,
        workspace: &WorkspaceId,
        value: &str,
    ) -> Result<Option<ResourceRecord>, BillingStoreError> {
        let column = match key {
            ResourceKey::Id => "id",
            ResourceKey::ExternalId => "external_id",
        };
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM billed_resources \
             WHERE workspace_id = $1 AND {column} = $2"
        );
        let row: Option<ResourceRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(value)
            .fetch_optional(pool)
            .await)?;
        row.map(ResourceRow::into_record).transpose()
    }

    /// Up to `limit` resources of the customer `customer_id`, in id order (creation order),
    /// after the id `starting_after` when given; only those alive at `alive_at` (created at or
    /// before it, and not deleted at or before it) when given.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    ///
    /// # Panics
    /// When `limit` is 0: a page holds at least one resource.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, customer_id, limit))]
    pub async fn resources(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
        alive_at: Option<Timestamp>,
        limit: u32,
        starting_after: Option<&str>,
    ) -> Result<Page<ResourceRecord>, BillingStoreError> {
        assert!(limit > 0, "a page holds at least one resource");
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM billed_resources \
             WHERE workspace_id = $1 AND customer_id = $2 AND ($3 IS NULL OR id > $3) \
             AND ($4 IS NULL OR (created_at <= $4 AND (deleted_at IS NULL OR deleted_at > $4))) \
             ORDER BY id LIMIT $5"
        );
        // One more than asked, to tell whether another page follows.
        let fetch = i64::from(limit) + 1;
        let rows: Vec<ResourceRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(customer_id)
            .bind(starting_after)
            .bind(alive_at.map(to_micros))
            .bind(fetch)
            .fetch_all(pool)
            .await)?;
        let mut items = rows
            .into_iter()
            .map(ResourceRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(Page { items, has_more })
    }

    /// Changes the quantity of the resource `id` to `quantity` from `at`: appends to its
    /// quantity changes, after [`ResourceRecord::change_quantity`]'s checks. Returns the
    /// resource after the change.
    ///
    /// # Errors
    /// [`ChangeResourceError::NotFound`], [`ChangeResourceError::Refused`] with the rule the
    /// change breaks (at before the creation or the last change, after the deletion, a
    /// negative quantity, too many changes), or the query failed.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, resource_id = %id))]
    pub async fn change_resource_quantity(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        at: Timestamp,
        quantity: Decimal,
    ) -> Result<ResourceRecord, ChangeResourceError> {
        const UPDATE: &str = "UPDATE billed_resources SET quantity_changes = $3 \
                              WHERE workspace_id = $1 AND id = $2";
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let mut resource = locked_resource!(transaction, workspace, id)?;
            resource.change_quantity(at, quantity)?;
            sqlx::query(UPDATE)
                .bind(workspace.as_str())
                .bind(id)
                .bind(quantity_changes_json(&resource.quantity_changes))
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            Ok(resource)
        })
    }

    /// Records that the resource `id` stopped existing at `deleted_at`, after
    /// [`ResourceRecord::delete`]'s checks. Returns the deleted resource.
    ///
    /// # Errors
    /// [`ChangeResourceError::NotFound`], [`ChangeResourceError::Refused`] with the rule the
    /// deletion breaks (already deleted, before the creation or the last quantity change), or
    /// the query failed.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, resource_id = %id))]
    pub async fn delete_resource(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        deleted_at: Timestamp,
    ) -> Result<ResourceRecord, ChangeResourceError> {
        const UPDATE: &str = "UPDATE billed_resources SET deleted_at = $3 \
                              WHERE workspace_id = $1 AND id = $2 AND deleted_at IS NULL";
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let mut resource = locked_resource!(transaction, workspace, id)?;
            resource.delete(deleted_at)?;
            let updated = sqlx::query(UPDATE)
                .bind(workspace.as_str())
                .bind(id)
                .bind(to_micros(deleted_at))
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            assert_eq!(updated, 1, "the locked resource was not deleted yet");
            transaction.commit().await?;
            Ok(resource)
        })
    }

    /// Every resource of `customer_ids`, alive or deleted, ordered by customer, then creation
    /// instant, then id: what a billing run reads for a batch of customers. One query per 500
    /// customers.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace, customers = customer_ids.len()))]
    pub async fn resources_of_customers(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
    ) -> Result<Vec<ResourceRecord>, BillingStoreError> {
        // In customer order, so that the pieces' results, each in customer order, concatenate
        // in customer order too.
        let mut sorted: Vec<&str> = customer_ids.iter().map(CustomerId::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut all = Vec::new();
        for piece in sorted.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<ResourceRow> = with_pool!(self, pool => {
                let mut builder = builder_for(
                    pool,
                    format!(
                        "SELECT {RESOURCE_COLUMNS} FROM billed_resources WHERE workspace_id = "
                    ),
                );
                builder.push_bind(workspace.as_str()).push(" AND customer_id IN (");
                let mut separated = builder.separated(", ");
                for customer_id in piece {
                    separated.push_bind(*customer_id);
                }
                builder.push(") ORDER BY customer_id, created_at, id");
                builder.build_query_as().fetch_all(pool).await
            })?;
            for row in rows {
                all.push(row.into_record()?);
            }
        }
        Ok(all)
    }
}
