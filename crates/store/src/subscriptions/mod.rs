//! Subscriptions with their dated changes, and the customer's credit grants and discounts.
//!
//! A subscription's spec is a [`SubscriptionSpec`] without its changes, whose `plan` is the plan
//! version it started on; each change is a [`ChangeSpec`] whose `plan`, for a plan change, is the
//! new plan version. A customer's credit grants and discounts are [`CreditGrant`]s and
//! [`DiscountSpec`]s ([`HeldSpec`]). Each is stored as its JSON.

use billow_core::credit::CreditGrant;
use billow_core::scenario::{ChangeSpec, DiscountSpec, SubscriptionSpec};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::billing::sql::{
    from_micros, spec_from_json, to_json, to_micros, with_pool, BillingStoreError,
};
use crate::ids::{CustomerId, PlanId, PlanVersionId, SubscriptionId};
use crate::store::Store;
use crate::workspaces::WorkspaceId;

/// A stored subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionRecord {
    pub id: SubscriptionId,
    pub customer_id: CustomerId,
    pub plan_id: PlanId,
    /// The plan version in effect after the latest change.
    pub plan_version_id: PlanVersionId,
    /// Whether a cancellation is recorded (effective now or at period end).
    pub status: SubscriptionStatus,
    /// Its spec without its changes: `plan` is the version it started on.
    pub spec: SubscriptionSpec,
    pub created_at: Timestamp,
}

/// A dated change of a subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionChangeRecord {
    /// 1, 2, ...: the order the changes were made in.
    pub sequence: i64,
    pub at: Timestamp,
    pub spec: ChangeSpec,
    pub created_at: Timestamp,
}

/// A credit grant or discount of one customer.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerSpecRecord<T> {
    /// Its spec's `key`: the id of a credit grant (`grant_…`) or of a discount (`disc_…`),
    /// text because the record serves both kinds.
    pub id: String,
    pub customer_id: CustomerId,
    /// Its spec, whose `key` is its id.
    pub spec: T,
    pub created_at: Timestamp,
}

/// What a customer holds beside its subscriptions, each kind in its table: credit grants and
/// discounts.
///
/// Sealed: implemented for those two only, so `TABLE` is always one of their tables.
pub trait HeldSpec: sealed::Sealed + Serialize + DeserializeOwned {
    /// The table of this kind.
    const TABLE: &'static str;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for billow_core::credit::CreditGrant {}
    impl Sealed for billow_core::scenario::DiscountSpec {}
}

impl HeldSpec for CreditGrant {
    const TABLE: &'static str = "credit_grants";
}

impl HeldSpec for DiscountSpec {
    const TABLE: &'static str = "discounts";
}

/// A subscription's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    /// A cancellation is recorded, effective now or at the end of the period.
    Canceled,
}

impl SubscriptionStatus {
    /// Its name, as stored and shown (`active`, `canceled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Canceled => "canceled",
        }
    }

    /// The status named `name`, or `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(Self::Active),
            "canceled" => Some(Self::Canceled),
            _ => None,
        }
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) type SubscriptionRow = (String, String, String, String, String, String, i64);
const SUBSCRIPTION_COLUMNS: &str =
    "id, customer_id, plan_id, plan_version_id, status, spec, created_at";

pub(crate) fn subscription_from_row(
    (id, customer_id, plan_id, plan_version_id, status, spec, created_at): SubscriptionRow,
) -> Result<SubscriptionRecord, BillingStoreError> {
    Ok(SubscriptionRecord {
        spec: spec_from_json(&spec, "subscriptions", &id)?,
        id: id.into(),
        customer_id: customer_id.into(),
        plan_id: plan_id.into(),
        plan_version_id: plan_version_id.into(),
        status: SubscriptionStatus::parse(&status).ok_or(BillingStoreError::CorruptRow {
            column: "subscriptions.status",
        })?,
        created_at: from_micros(created_at)?,
    })
}

impl Store {
    /// Stores a new subscription.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(subscription_id = %subscription.id))]
    pub async fn insert_subscription(
        &self,
        workspace: &WorkspaceId,
        subscription: &SubscriptionRecord,
    ) -> Result<(), BillingStoreError> {
        let sql = format!(
            "INSERT INTO subscriptions (workspace_id, {SUBSCRIPTION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        let spec = to_json(&subscription.spec);
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(workspace.as_str())
            .bind(&subscription.id)
            .bind(&subscription.customer_id)
            .bind(&subscription.plan_id)
            .bind(&subscription.plan_version_id)
            .bind(subscription.status.as_str())
            .bind(&spec)
            .bind(to_micros(subscription.created_at))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The subscription `id`, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(subscription_id = %id))]
    pub async fn subscription(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<SubscriptionRecord>, BillingStoreError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE workspace_id = $1 AND id = $2"
        );
        let row: Option<SubscriptionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(subscription_from_row).transpose()
    }

    /// The subscriptions of a customer (every customer's when `customer_id` is `None`), oldest
    /// first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all)]
    pub async fn subscriptions(
        &self,
        workspace: &WorkspaceId,
        customer_id: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>, BillingStoreError> {
        let customer = crate::invoices::equal_or_absent("customer_id", 2, customer_id.is_some());
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions \
             WHERE workspace_id = $1 AND {customer} ORDER BY id"
        );
        let rows: Vec<SubscriptionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(customer_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(subscription_from_row).collect()
    }

    /// Records a change of a subscription and its status and plan version after it, in one
    /// transaction; returns the change's sequence number.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`] when the subscription does not exist.
    #[tracing::instrument(skip_all, fields(subscription_id = %subscription_id))]
    pub async fn add_subscription_change(
        &self,
        workspace: &WorkspaceId,
        subscription_id: &str,
        change: &SubscriptionChangeRecord,
        status: SubscriptionStatus,
        plan_version_id: &str,
    ) -> Result<i64, BillingStoreError> {
        const UPDATE: &str = "UPDATE subscriptions SET status = $3, plan_version_id = $4 \
                              WHERE workspace_id = $1 AND id = $2";
        const NEXT: &str = "SELECT COALESCE(MAX(sequence), 0) + 1 FROM subscription_changes \
                            WHERE workspace_id = $1 AND subscription_id = $2";
        const INSERT: &str = "INSERT INTO subscription_changes \
                              (workspace_id, subscription_id, sequence, at, spec, created_at) \
                              VALUES ($1, $2, $3, $4, $5, $6)";
        let spec = to_json(&change.spec);
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let updated = sqlx::query(UPDATE)
                .bind(workspace.as_str())
                .bind(subscription_id)
                .bind(status.as_str())
                .bind(plan_version_id)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(BillingStoreError::NotFound);
            }
            let (sequence,): (i64,) = sqlx::query_as(NEXT)
                .bind(workspace.as_str())
                .bind(subscription_id)
                .fetch_one(&mut *transaction)
                .await?;
            sqlx::query(INSERT)
                .bind(workspace.as_str())
                .bind(subscription_id)
                .bind(sequence)
                .bind(to_micros(change.at))
                .bind(&spec)
                .bind(to_micros(change.created_at))
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            Ok(sequence)
        })
    }

    /// The changes of a subscription, in the order they were made.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(subscription_id = %subscription_id))]
    pub async fn subscription_changes(
        &self,
        workspace: &WorkspaceId,
        subscription_id: &str,
    ) -> Result<Vec<SubscriptionChangeRecord>, BillingStoreError> {
        const SQL: &str = "SELECT sequence, at, spec, created_at FROM subscription_changes \
                           WHERE workspace_id = $1 AND subscription_id = $2 ORDER BY sequence";
        let rows: Vec<(i64, i64, String, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(subscription_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|(sequence, at, spec, created_at)| {
                Ok(SubscriptionChangeRecord {
                    spec: spec_from_json(
                        &spec,
                        "subscription_changes",
                        &format!("{subscription_id}#{sequence}"),
                    )?,
                    sequence,
                    at: from_micros(at)?,
                    created_at: from_micros(created_at)?,
                })
            })
            .collect()
    }

    /// The customers of a workspace that have at least one subscription: who a billing run
    /// visits.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all)]
    pub async fn billed_customers(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<CustomerId>, BillingStoreError> {
        // Customers with a subscription or a billed resource: both make invoices.
        const SQL: &str = "SELECT customer_id FROM subscriptions WHERE workspace_id = $1 \
                           UNION SELECT customer_id FROM billed_resources WHERE workspace_id = $1 \
                           ORDER BY customer_id";
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(|(id,)| id.into()).collect())
    }

    /// The workspaces that have at least one subscription: where the scheduler runs billing.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all)]
    pub async fn billed_workspaces(&self) -> Result<Vec<WorkspaceId>, BillingStoreError> {
        const SQL: &str = "SELECT workspace_id FROM subscriptions \
                           UNION SELECT workspace_id FROM billed_resources ORDER BY workspace_id";
        let rows: Vec<(String,)> =
            with_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|(id,)| {
                WorkspaceId::parse(&id).map_err(|_| BillingStoreError::CorruptRow {
                    column: "subscriptions.workspace_id",
                })
            })
            .collect()
    }

    /// Stores a credit grant or discount of a customer.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(id = %record.id))]
    pub async fn insert_customer_spec<T: HeldSpec>(
        &self,
        workspace: &WorkspaceId,
        record: &CustomerSpecRecord<T>,
    ) -> Result<(), BillingStoreError> {
        let sql = format!(
            "INSERT INTO {} (workspace_id, id, customer_id, spec, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
            T::TABLE
        );
        let spec = to_json(&record.spec);
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(workspace.as_str())
            .bind(&record.id)
            .bind(&record.customer_id)
            .bind(&spec)
            .bind(to_micros(record.created_at))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The credit grant or discount `id`, or `None` when the workspace has none with this id.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn customer_spec<T: HeldSpec>(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<CustomerSpecRecord<T>>, BillingStoreError> {
        let sql = format!(
            "SELECT customer_id, spec, created_at FROM {} WHERE workspace_id = $1 AND id = $2",
            T::TABLE
        );
        let row: Option<(String, String, i64)> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(|(customer_id, spec, created_at)| {
            Ok(CustomerSpecRecord {
                spec: spec_from_json(&spec, T::TABLE, id)?,
                id: id.to_owned(),
                customer_id: customer_id.into(),
                created_at: from_micros(created_at)?,
            })
        })
        .transpose()
    }

    /// The credit grants or discounts of a customer (every customer's when `customer_id` is
    /// `None`), oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all)]
    pub async fn customer_specs<T: HeldSpec>(
        &self,
        workspace: &WorkspaceId,
        customer_id: Option<&str>,
    ) -> Result<Vec<CustomerSpecRecord<T>>, BillingStoreError> {
        let sql = format!(
            "SELECT id, customer_id, spec, created_at FROM {} \
             WHERE workspace_id = $1 AND {} ORDER BY id",
            T::TABLE,
            crate::invoices::equal_or_absent("customer_id", 2, customer_id.is_some())
        );
        let rows: Vec<(String, String, String, i64)> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(customer_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|(id, customer_id, spec, created_at)| {
                Ok(CustomerSpecRecord {
                    spec: spec_from_json(&spec, T::TABLE, &id)?,
                    id,
                    customer_id: customer_id.into(),
                    created_at: from_micros(created_at)?,
                })
            })
            .collect()
    }
}
