//! Which customers a billing run must look at, found without reading the others
//! (docs/billing-runs.md, "Incremental runs"): those with no billing state yet, those whose world
//! changed since their last computation (`world_version` ahead of `seen_version`, kept by the
//! triggers of migration 0017), those with something due, and the owners of subjects that
//! received usage late for a period already invoiced.

use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::batch::ROWS_PER_STATEMENT;
use super::sql::{from_micros, to_micros, with_pool, BillingStoreError};
use crate::ids::CustomerId;
use crate::store::Store;
use crate::workspaces::WorkspaceId;

impl Store {
    /// The customers of `workspace` with a subscription or a billed resource that a run at
    /// `now` must look at: no billing state, a world changed since their state was written,
    /// something due (`next_due_at` at or before `now`), or a state computed after `now` (a run
    /// at an earlier instant). In id order.
    ///
    /// # Errors
    /// When a query fails.
    #[tracing::instrument(skip_all)]
    pub async fn billing_candidates(
        &self,
        workspace: &WorkspaceId,
        now: Timestamp,
    ) -> Result<Vec<CustomerId>, BillingStoreError> {
        const SQL: &str = "SELECT customer_id FROM billing_states WHERE workspace_id = $1 \
             AND (world_version > seen_version OR computed_at > $2 OR next_due_at <= $2) \
             UNION SELECT customer_id FROM subscriptions s WHERE workspace_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM billing_states b WHERE b.workspace_id = $1 \
             AND b.customer_id = s.customer_id) \
             UNION SELECT customer_id FROM billed_resources r WHERE workspace_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM billing_states b WHERE b.workspace_id = $1 \
             AND b.customer_id = r.customer_id) \
             ORDER BY customer_id";
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(to_micros(now))
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(|(id,)| id.into()).collect())
    }

    /// How many customers of `workspace` have a subscription or a billed resource.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn billed_customer_count(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<u64, BillingStoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM (SELECT customer_id FROM subscriptions \
             WHERE workspace_id = $1 UNION SELECT customer_id FROM billed_resources \
             WHERE workspace_id = $1) billed";
        let (count,): (i64,) = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_one(pool)
            .await)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The latest instant any customer of `workspace` was invoiced at (`billed_through`):
    /// usage at or after it is of periods no run has invoiced yet.
    ///
    /// # Errors
    /// When the query fails or the value is corrupt.
    pub async fn latest_billed_through(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Option<Timestamp>, BillingStoreError> {
        const SQL: &str = "SELECT MAX(billed_through) FROM billing_states WHERE workspace_id = $1";
        let (latest,): (Option<i64>,) = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_one(pool)
            .await)?;
        latest.map(from_micros).transpose()
    }

    /// The real time at which the last complete billing run of `workspace` started.
    ///
    /// # Errors
    /// When the query fails or the value is corrupt.
    pub async fn billing_scan(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Option<Timestamp>, BillingStoreError> {
        const SQL: &str = "SELECT started_at FROM billing_scans WHERE workspace_id = $1";
        let row: Option<(i64,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_optional(pool)
            .await)?;
        row.map(|(started_at,)| from_micros(started_at)).transpose()
    }

    /// Records that a complete billing run of `workspace` started at `started_at` (real time);
    /// an earlier instant never replaces a later one.
    ///
    /// # Errors
    /// When the statement fails.
    pub async fn record_billing_scan(
        &self,
        workspace: &WorkspaceId,
        started_at: Timestamp,
    ) -> Result<(), BillingStoreError> {
        const SQL: &str = "INSERT INTO billing_scans (workspace_id, started_at) VALUES ($1, $2) \
             ON CONFLICT (workspace_id) DO UPDATE SET started_at = excluded.started_at \
             WHERE billing_scans.started_at < excluded.started_at";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(to_micros(started_at))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The customers whose events `subjects` may be: by their ids and external ids, and the
    /// owners of subscriptions and billed resources with those ids.
    ///
    /// # Errors
    /// When a query fails.
    pub async fn owners_of_subjects(
        &self,
        workspace: &WorkspaceId,
        subjects: &[String],
    ) -> Result<Vec<CustomerId>, BillingStoreError> {
        let mut owners = Vec::new();
        for piece in subjects.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(String,)> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new("SELECT id FROM customers WHERE workspace_id = ");
                builder.push_bind(workspace.as_str()).push(" AND (id");
                in_list(&mut builder, piece);
                builder.push(" OR external_id");
                in_list(&mut builder, piece);
                builder.push(") UNION SELECT customer_id FROM subscriptions WHERE workspace_id = ");
                builder.push_bind(workspace.as_str()).push(" AND id");
                in_list(&mut builder, piece);
                builder.push(" UNION SELECT customer_id FROM billed_resources WHERE workspace_id = ");
                builder.push_bind(workspace.as_str()).push(" AND id");
                in_list(&mut builder, piece);
                builder.build_query_as().fetch_all(pool).await
            })?;
            owners.extend(rows.into_iter().map(|(id,)| CustomerId::from(id)));
        }
        owners.sort_unstable();
        owners.dedup();
        Ok(owners)
    }
}

/// ` IN ($n, …)` of `ids`.
fn in_list<'a, DB: sqlx::Database>(builder: &mut QueryBuilder<'a, DB>, ids: &'a [String])
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    builder.push(" IN (");
    let mut separated = builder.separated(", ");
    for id in ids {
        separated.push_bind(id.as_str());
    }
    builder.push(")");
}
