//! The catalog: meters, plans with their versions, and tax rates.
//!
//! Specs are the billing core's types ([`Meter`], [`PlanSpec`], [`TaxRate`]), checked by the
//! core before they are stored and kept as their JSON. Editing a plan
//! adds a version; subscriptions and invoices point at the version they use, so a finalized
//! invoice always names the exact prices it was computed with.

use billow_core::invoice::TaxRate;
use billow_core::scenario::PlanSpec;
use billow_core::Meter;
use jiff::Timestamp;

use crate::billing::sql::{
    from_micros, spec_from_json, to_json, to_micros, with_pool, BillingStoreError,
};
use crate::ids::{MeterId, PlanId, PlanVersionId, TaxRateId};
use crate::store::Store;
use crate::workspaces::WorkspaceId;

/// A stored meter.
#[derive(Clone, Debug, PartialEq)]
pub struct MeterRecord {
    pub id: MeterId,
    pub key: String,
    pub spec: Meter,
    pub created_at: Timestamp,
}

/// A stored plan: its key and the version new subscriptions get.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRecord {
    pub id: PlanId,
    pub key: String,
    pub current_version_id: PlanVersionId,
    pub created_at: Timestamp,
}

/// One version of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanVersionRecord {
    pub id: PlanVersionId,
    pub plan_id: PlanId,
    /// 1 for the plan as created, then one more per edit.
    pub version: i64,
    pub spec: PlanSpec,
    pub created_at: Timestamp,
}

/// A stored tax rate.
#[derive(Clone, Debug, PartialEq)]
pub struct TaxRateRecord {
    pub id: TaxRateId,
    pub spec: TaxRate,
    pub created_at: Timestamp,
}

type SpecRow = (String, String, String, i64);
type VersionRow = (String, String, i64, String, i64);

fn meter_from_row((id, key, spec, created_at): SpecRow) -> Result<MeterRecord, BillingStoreError> {
    Ok(MeterRecord {
        spec: spec_from_json(&spec, "meters", &id)?,
        id: id.into(),
        key,
        created_at: from_micros(created_at)?,
    })
}

fn plan_from_row(
    (id, key, current_version_id, created_at): SpecRow,
) -> Result<PlanRecord, BillingStoreError> {
    Ok(PlanRecord {
        id: id.into(),
        key,
        current_version_id: current_version_id.into(),
        created_at: from_micros(created_at)?,
    })
}

fn version_from_row(
    (id, plan_id, version, spec, created_at): VersionRow,
) -> Result<PlanVersionRecord, BillingStoreError> {
    Ok(PlanVersionRecord {
        spec: spec_from_json(&spec, "plan_versions", &id)?,
        id: id.into(),
        plan_id: plan_id.into(),
        version,
        created_at: from_micros(created_at)?,
    })
}

const VERSION_COLUMNS: &str = "id, plan_id, version, spec, created_at";

impl Store {
    /// Stores a new meter.
    ///
    /// # Errors
    /// [`BillingStoreError::Duplicate`] when the workspace has a meter with the same key.
    #[tracing::instrument(skip_all, fields(meter_id = %meter.id))]
    pub async fn insert_meter(
        &self,
        workspace: &WorkspaceId,
        meter: &MeterRecord,
    ) -> Result<(), BillingStoreError> {
        const SQL: &str = "INSERT INTO meters (workspace_id, id, key, spec, created_at) \
                           VALUES ($1, $2, $3, $4, $5)";
        let spec = to_json(&meter.spec);
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(&meter.id)
            .bind(&meter.key)
            .bind(&spec)
            .bind(to_micros(meter.created_at))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The meters of a workspace, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all)]
    pub async fn meters(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<MeterRecord>, BillingStoreError> {
        const SQL: &str =
            "SELECT id, key, spec, created_at FROM meters WHERE workspace_id = $1 ORDER BY id";
        let rows: Vec<SpecRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(meter_from_row).collect()
    }

    /// The meter `id`, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(meter_id = %id))]
    pub async fn meter(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<MeterRecord>, BillingStoreError> {
        const SQL: &str =
            "SELECT id, key, spec, created_at FROM meters WHERE workspace_id = $1 AND id = $2";
        let row: Option<SpecRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(meter_from_row).transpose()
    }

    /// Stores a new plan with its first version, in one transaction.
    ///
    /// # Errors
    /// [`BillingStoreError::Duplicate`] when the workspace has a plan with the same key.
    #[tracing::instrument(skip_all, fields(plan_id = %plan.id))]
    pub async fn insert_plan(
        &self,
        workspace: &WorkspaceId,
        plan: &PlanRecord,
        version: &PlanVersionRecord,
    ) -> Result<(), BillingStoreError> {
        assert_eq!(
            plan.current_version_id, version.id,
            "a new plan starts at its version"
        );
        assert_eq!(version.version, 1, "a new plan starts at version 1");
        const PLAN: &str =
            "INSERT INTO plans (workspace_id, id, key, current_version_id, created_at) \
                            VALUES ($1, $2, $3, $4, $5)";
        const VERSION: &str = "INSERT INTO plan_versions \
                               (workspace_id, id, plan_id, version, spec, created_at) \
                               VALUES ($1, $2, $3, $4, $5, $6)";
        let spec = to_json(&version.spec);
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query(PLAN)
                .bind(workspace.as_str())
                .bind(&plan.id)
                .bind(&plan.key)
                .bind(&plan.current_version_id)
                .bind(to_micros(plan.created_at))
                .execute(&mut *transaction)
                .await?;
            sqlx::query(VERSION)
                .bind(workspace.as_str())
                .bind(&version.id)
                .bind(&version.plan_id)
                .bind(version.version)
                .bind(&spec)
                .bind(to_micros(version.created_at))
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await
        })?;
        Ok(())
    }

    /// Adds a version to the plan `plan_id` and makes it current; returns its version number.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`] when the plan does not exist.
    #[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
    pub async fn add_plan_version(
        &self,
        workspace: &WorkspaceId,
        plan_id: &str,
        version_id: &str,
        spec: &PlanSpec,
        created_at: Timestamp,
    ) -> Result<i64, BillingStoreError> {
        // The update comes first: it takes the row lock (PostgreSQL) or the write lock (SQLite)
        // that serializes concurrent edits of one plan, so version numbers never collide.
        const CURRENT: &str = "UPDATE plans SET current_version_id = $3 \
                               WHERE workspace_id = $1 AND id = $2";
        const NEXT: &str = "SELECT COALESCE(MAX(version), 0) + 1 FROM plan_versions \
                            WHERE workspace_id = $1 AND plan_id = $2";
        const VERSION: &str = "INSERT INTO plan_versions \
                               (workspace_id, id, plan_id, version, spec, created_at) \
                               VALUES ($1, $2, $3, $4, $5, $6)";
        let spec = to_json(spec);
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let updated = sqlx::query(CURRENT)
                .bind(workspace.as_str())
                .bind(plan_id)
                .bind(version_id)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if updated == 0 {
                return Err(BillingStoreError::NotFound);
            }
            let (version,): (i64,) = sqlx::query_as(NEXT)
                .bind(workspace.as_str())
                .bind(plan_id)
                .fetch_one(&mut *transaction)
                .await?;
            sqlx::query(VERSION)
                .bind(workspace.as_str())
                .bind(version_id)
                .bind(plan_id)
                .bind(version)
                .bind(&spec)
                .bind(to_micros(created_at))
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
            Ok(version)
        })
    }

    /// The plans of a workspace, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all)]
    pub async fn plans(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<PlanRecord>, BillingStoreError> {
        const SQL: &str = "SELECT id, key, current_version_id, created_at FROM plans \
                           WHERE workspace_id = $1 ORDER BY id";
        let rows: Vec<SpecRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(plan_from_row).collect()
    }

    /// The plan `id` (or, when no plan has that id, the plan whose key is `id`), or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(plan_id = %id))]
    pub async fn plan(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<PlanRecord>, BillingStoreError> {
        const SQL: &str = "SELECT id, key, current_version_id, created_at FROM plans \
                           WHERE workspace_id = $1 AND (id = $2 OR key = $2) \
                           ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1";
        let row: Option<SpecRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(plan_from_row).transpose()
    }

    /// The version `id` of any plan, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(plan_version_id = %id))]
    pub async fn plan_version(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<PlanVersionRecord>, BillingStoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plan_versions WHERE workspace_id = $1 AND id = $2"
        );
        let row: Option<VersionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(version_from_row).transpose()
    }

    /// Every version of the plan `plan_id`, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
    pub async fn plan_versions(
        &self,
        workspace: &WorkspaceId,
        plan_id: &str,
    ) -> Result<Vec<PlanVersionRecord>, BillingStoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM plan_versions \
             WHERE workspace_id = $1 AND plan_id = $2 ORDER BY version"
        );
        let rows: Vec<VersionRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(plan_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(version_from_row).collect()
    }

    /// Stores a new tax rate.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(tax_rate_id = %tax_rate.id))]
    pub async fn insert_tax_rate(
        &self,
        workspace: &WorkspaceId,
        tax_rate: &TaxRateRecord,
    ) -> Result<(), BillingStoreError> {
        const SQL: &str = "INSERT INTO tax_rates (workspace_id, id, spec, created_at) \
                           VALUES ($1, $2, $3, $4)";
        let spec = to_json(&tax_rate.spec);
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(&tax_rate.id)
            .bind(&spec)
            .bind(to_micros(tax_rate.created_at))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The tax rates of a workspace, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all)]
    pub async fn tax_rates(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<TaxRateRecord>, BillingStoreError> {
        const SQL: &str = "SELECT id, '', spec, created_at FROM tax_rates \
                           WHERE workspace_id = $1 ORDER BY id";
        let rows: Vec<SpecRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(tax_rate_from_row).collect()
    }

    /// Charges the customer the tax rate `tax_rate_id` from now on (one rate per customer).
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`] when the workspace has no such tax rate.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn set_customer_tax_rate(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
        tax_rate_id: &str,
    ) -> Result<(), BillingStoreError> {
        const SQL: &str =
            "INSERT INTO customer_tax_rates (workspace_id, customer_id, tax_rate_id) \
                           SELECT $1, $2, id FROM tax_rates WHERE workspace_id = $1 AND id = $3 \
                           ON CONFLICT (workspace_id, customer_id) \
                           DO UPDATE SET tax_rate_id = excluded.tax_rate_id";
        let affected = with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(customer_id)
            .bind(tax_rate_id)
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))?;
        if affected == 0 {
            return Err(BillingStoreError::NotFound);
        }
        Ok(())
    }

    /// The tax rate charged to the customer, if any.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn customer_tax_rate(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<Option<TaxRateRecord>, BillingStoreError> {
        const SQL: &str = "SELECT t.id, '', t.spec, t.created_at \
                           FROM customer_tax_rates c JOIN tax_rates t \
                             ON t.workspace_id = c.workspace_id AND t.id = c.tax_rate_id \
                           WHERE c.workspace_id = $1 AND c.customer_id = $2";
        let row: Option<SpecRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(customer_id)
            .fetch_optional(pool)
            .await)?;
        row.map(tax_rate_from_row).transpose()
    }
}

fn tax_rate_from_row(
    (id, _, spec, created_at): SpecRow,
) -> Result<TaxRateRecord, BillingStoreError> {
    Ok(TaxRateRecord {
        spec: spec_from_json(&spec, "tax_rates", &id)?,
        id: id.into(),
        created_at: from_micros(created_at)?,
    })
}
