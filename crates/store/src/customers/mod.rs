//! Customers (billing accounts) and their project trees (DESIGN.md §2).
//!
//! - [`Customer`]: external id (unique per workspace), name, email, [`Address`], [`TaxId`]s,
//!   currency, IANA time zone, billing-cycle day and an optional parent customer of the same
//!   workspace. [`Store::insert_customer`], [`Store::customer`], [`Store::customer_by_external_id`],
//!   [`Store::customers`] (a [`Page`] in id order, which is creation order) and
//!   [`Store::update_customer`].
//! - [`Project`]: a node of a customer's cost-center tree. [`Store::insert_project`],
//!   [`Store::project`] and [`Store::projects`].
//!
//! Every query is scoped by workspace id: a row of another workspace is never returned, so the
//! server answers 404 for it like for an id that does not exist.

mod projects;
mod rows;

use billow_core::scenario::Invoicing;
use billow_core::Currency;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use rows::{bind_customer, CustomerRow, CUSTOMER_COLUMNS};

use crate::ids::{CustomerId, ProjectId};
use crate::sql::{to_micros, violated_unique_key, with_pool, UniqueKeyName};
use crate::store::Store;
use crate::WorkspaceId;

/// The most projects one customer may have, and so the most [`Store::projects`] returns.
pub const PROJECTS_PER_CUSTOMER_MAX: u32 = 1_000;

/// A billing account of a workspace: an EMCP team, an Akkeris account, a Palette tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// `cus_…`.
    pub id: CustomerId,
    /// The platform's own id for this account; unique within the workspace.
    pub external_id: String,
    pub name: String,
    pub email: Option<String>,
    pub address: Option<Address>,
    pub tax_ids: Vec<TaxId>,
    pub currency: Currency,
    /// An IANA time zone name, e.g. `Europe/Berlin`: billing periods follow its calendar.
    pub time_zone: String,
    /// The day of the month periods start on, 1 to 31 (clamped to the month's last day).
    pub billing_cycle_day: i8,
    /// Another customer of the same workspace that may pay for this one.
    pub parent_id: Option<CustomerId>,
    /// One invoice per period for all its subscriptions and resources, or one per
    /// subscription.
    pub invoicing: Invoicing,
    /// Days from an invoice's finalization to its due date; `None` takes the workspace's.
    pub net_days: Option<u16>,
    /// The platform's id of the user who owns the account (EMCP's `user`, Cloud Plans'
    /// `owner`), when the platform gave one.
    pub owner: Option<String>,
}

/// A postal address; every part optional, `country` an ISO 3166-1 alpha-2 code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// A tax id such as `{"type": "eu_vat", "value": "DE123456789"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxId {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// A node of a customer's project tree (Akkeris organization → space, Palette project).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// `prj_…`.
    pub id: ProjectId,
    pub customer_id: CustomerId,
    /// A project of the same customer, or `None` for a root.
    pub parent_id: Option<ProjectId>,
    pub name: String,
}

/// One page of a list in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether items follow the last one of this page.
    pub has_more: bool,
}

/// Which unique column a customer is looked up by.
#[derive(Clone, Copy)]
enum CustomerKey {
    Id,
    ExternalId,
}

/// Which constraint an insert or update violated.
#[derive(Clone, Copy)]
enum Violation {
    IdTaken,
    ExternalIdTaken,
    UnknownParent,
}

/// The unique keys of `customers` and `projects`, as each backend names them
/// (migrations/*/0002_access.sql).
const UNIQUE_KEYS: [(UniqueKeyName, Violation); 3] = [
    (
        UniqueKeyName {
            constraint: "customers_external_id_key",
            columns: "customers.workspace_id, customers.external_id",
        },
        Violation::ExternalIdTaken,
    ),
    (
        UniqueKeyName {
            constraint: "customers_pkey",
            columns: "customers.workspace_id, customers.id",
        },
        Violation::IdTaken,
    ),
    (
        UniqueKeyName {
            constraint: "projects_pkey",
            columns: "projects.workspace_id, projects.id",
        },
        Violation::IdTaken,
    ),
];

impl Store {
    /// Stores a new customer of `workspace_id`.
    ///
    /// # Errors
    ///
    /// [`StoreCustomerError::ExternalIdTaken`] when another customer of the workspace has the
    /// same external id, [`StoreCustomerError::UnknownParent`] when the parent is not a customer
    /// of the workspace, [`StoreCustomerError::Database`] otherwise.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id = %customer.id))]
    pub async fn insert_customer(
        &self,
        workspace_id: &WorkspaceId,
        customer: &Customer,
        now: Timestamp,
    ) -> Result<(), StoreCustomerError> {
        const SQL: &str = "INSERT INTO customers (workspace_id, id, external_id, name, email, \
                           address, tax_ids, currency, time_zone, billing_cycle_day, parent_id, \
                           invoicing, net_days, owner, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                           $14, $15, $15)";
        let row = CustomerRow::from_customer(customer);
        with_pool!(self, pool => bind_customer!(sqlx::query(SQL), workspace_id, row)
            .bind(to_micros(now))
            .execute(pool)
            .await
            .map(drop))
        .map_err(StoreCustomerError::from_sqlx)
    }

    /// Replaces every field of the stored customer `customer.id` but its id. Returns whether it
    /// exists in `workspace_id`.
    ///
    /// # Errors
    ///
    /// As [`Store::insert_customer`].
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id = %customer.id))]
    pub async fn update_customer(
        &self,
        workspace_id: &WorkspaceId,
        customer: &Customer,
        now: Timestamp,
    ) -> Result<bool, StoreCustomerError> {
        const SQL: &str = "UPDATE customers SET external_id = $3, name = $4, email = $5, \
                           address = $6, tax_ids = $7, currency = $8, time_zone = $9, \
                           billing_cycle_day = $10, parent_id = $11, invoicing = $12, \
                           net_days = $13, owner = $14, updated_at = $15 \
                           WHERE workspace_id = $1 AND id = $2";
        let row = CustomerRow::from_customer(customer);
        let updated = with_pool!(self, pool => bind_customer!(sqlx::query(SQL), workspace_id, row)
            .bind(to_micros(now))
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))
        .map_err(StoreCustomerError::from_sqlx)?;
        Ok(updated == 1)
    }

    /// The customer `id` of `workspace_id`, or `None` (also when it belongs to another workspace).
    ///
    /// # Errors
    ///
    /// [`LoadCustomerError`] when the query fails or the row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, customer_id = %id))]
    pub async fn customer(
        &self,
        workspace_id: &WorkspaceId,
        id: &str,
    ) -> Result<Option<Customer>, LoadCustomerError> {
        let customer = self.customer_by(CustomerKey::Id, workspace_id, id).await?;
        if let Some(customer) = &customer {
            assert_eq!(customer.id, id, "the query returned another customer");
        }
        Ok(customer)
    }

    /// The customer of `workspace_id` whose external id is `external_id`, or `None`.
    ///
    /// # Errors
    ///
    /// [`LoadCustomerError`] when the query fails or the row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn customer_by_external_id(
        &self,
        workspace_id: &WorkspaceId,
        external_id: &str,
    ) -> Result<Option<Customer>, LoadCustomerError> {
        self.customer_by(CustomerKey::ExternalId, workspace_id, external_id)
            .await
    }

    /// The customer of `workspace_id` whose `key` column is `value`.
    async fn customer_by(
        &self,
        key: CustomerKey,
        workspace_id: &WorkspaceId,
        value: &str,
    ) -> Result<Option<Customer>, LoadCustomerError> {
        let column = match key {
            CustomerKey::Id => "id",
            CustomerKey::ExternalId => "external_id",
        };
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE workspace_id = $1 AND {column} = $2"
        );
        let row: Option<CustomerRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace_id.as_str())
            .bind(value)
            .fetch_optional(pool)
            .await)
        .map_err(LoadCustomerError::Database)?;
        row.map(CustomerRow::into_customer).transpose()
    }

    /// The customers of `workspace_id` with the ids `ids` (those that exist), in id order.
    ///
    /// # Errors
    ///
    /// [`LoadCustomerError`] when a query fails or a row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, ids = ids.len()))]
    pub async fn customers_with_ids(
        &self,
        workspace_id: &WorkspaceId,
        ids: &[CustomerId],
    ) -> Result<Vec<Customer>, LoadCustomerError> {
        let mut all = Vec::with_capacity(ids.len());
        for piece in ids.chunks(500) {
            let rows: Vec<CustomerRow> = with_pool!(self, pool => {
                let mut builder = sqlx::QueryBuilder::new(format!(
                    "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE workspace_id = "
                ));
                builder.push_bind(workspace_id.as_str()).push(" AND id IN (");
                let mut separated = builder.separated(", ");
                for id in piece {
                    separated.push_bind(id.as_str());
                }
                builder.push(")");
                builder.build_query_as().fetch_all(pool).await
            })
            .map_err(LoadCustomerError::Database)?;
            for row in rows {
                all.push(row.into_customer()?);
            }
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// Up to `limit` customers of `workspace_id` in id order (creation order), after the id
    /// `starting_after` when given.
    ///
    /// # Errors
    ///
    /// [`LoadCustomerError`] when the query fails or a row is invalid.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, limit))]
    pub async fn customers(
        &self,
        workspace_id: &WorkspaceId,
        limit: u32,
        starting_after: Option<&str>,
    ) -> Result<Page<Customer>, LoadCustomerError> {
        assert!(limit > 0, "a page holds at least one item");
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers \
             WHERE workspace_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        // One more than asked, to tell whether another page follows.
        let fetch = i64::from(limit) + 1;
        let rows: Vec<CustomerRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace_id.as_str())
            .bind(starting_after)
            .bind(fetch)
            .fetch_all(pool)
            .await)
        .map_err(LoadCustomerError::Database)?;
        let mut items = rows
            .into_iter()
            .map(CustomerRow::into_customer)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(Page { items, has_more })
    }
}

/// Why a customer or project could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreCustomerError {
    #[error("the id is taken")]
    IdTaken,
    #[error("another customer of the workspace has this external id")]
    ExternalIdTaken,
    #[error("the parent (or the customer of a project) is not in the workspace")]
    UnknownParent,
    #[error("could not store the customer or project")]
    Database(#[source] sqlx::Error),
}

impl StoreCustomerError {
    /// The typed error for a violated constraint. Neither backend says which foreign key failed
    /// (SQLite names none), but each of these tables has only parent references.
    fn from_sqlx(error: sqlx::Error) -> Self {
        let is_foreign_key_violation = error
            .as_database_error()
            .is_some_and(|database_error| database_error.is_foreign_key_violation());
        let violation = if is_foreign_key_violation {
            Some(Violation::UnknownParent)
        } else {
            violated_unique_key(&error, &UNIQUE_KEYS)
        };
        match violation {
            Some(Violation::IdTaken) => Self::IdTaken,
            Some(Violation::ExternalIdTaken) => Self::ExternalIdTaken,
            Some(Violation::UnknownParent) => Self::UnknownParent,
            None => Self::Database(error),
        }
    }
}

/// Why a customer or project could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadCustomerError {
    #[error("could not load the customer or project")]
    Database(#[source] sqlx::Error),
    #[error("the stored customer {id} has an invalid {column}")]
    CorruptRow { id: String, column: &'static str },
}
