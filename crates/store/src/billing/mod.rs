//! What billing runs need beyond the catalog and the invoices: leases that claim one customer for
//! one run, the finalization of an invoice (its gap-free number, its first payment state) in one
//! transaction, and the adjustments that carry late usage to a later invoice.
//!
//! Correctness never rests on a lease alone: an invoice's key (subscription, instant) is unique,
//! and its number is taken in the transaction that inserts it, so a run that lost its lease (a
//! paused process) can only fail to insert, never issue an invoice twice or leave a gap.

pub(crate) mod batch;
mod selection;
mod settings;
pub(crate) mod sql;

pub use batch::{
    AdjustmentCredit, BillingStateRecord, BillingWrites, BillingWritten, Finalization, HeldLeases,
    InvoiceSummary,
};
pub use settings::WorkspaceSettings;

use jiff::Timestamp;

use crate::ids::{AdjustmentId, InvoiceId};
use crate::invoices::{
    append_payment_state, bind_invoice, insert_invoice_sql, InvoiceRecord, InvoiceStatus,
};
use crate::store::Store;
use crate::workspaces::WorkspaceId;
use sql::{from_micros, to_micros, with_pool, BillingStoreError};

/// The state every finalized invoice starts its payment history with.
pub const PAYMENT_PENDING: &str = "PaymentPending";

/// A late-usage difference of a finalized invoice, to be billed on a later one.
#[derive(Clone, Debug, PartialEq)]
pub struct AdjustmentRecord {
    pub id: AdjustmentId,
    pub invoice_key: String,
    /// The finalized invoice whose amount changed.
    pub source_invoice_id: InvoiceId,
    /// What the engine computes now for the invoice's own lines before tax, minus what it
    /// computed when the invoice was finalized (and the earlier adjustments of that invoice).
    pub amount_minor: i64,
    /// The invoice it was applied to; `None` while pending. Usually the invoice that billed it;
    /// for a negative adjustment of a subscription with no further invoice, its source invoice,
    /// which a credit note credited instead (whose line names this adjustment).
    pub applied_invoice_id: Option<InvoiceId>,
    pub created_at: Timestamp,
}

/// How an attempt to finalize ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finalized {
    /// The invoice is now open with this number.
    Numbered(i64),
    /// Another run finalized it first; nothing changed.
    AlreadyFinal,
}

impl Store {
    /// Claims the customer for a billing run until `until`, unless another holder's lease on
    /// it is still running at `now`. Returns whether the lease is held.
    ///
    /// One statement on both backends: an upsert whose update only happens when the lease has
    /// expired (or is the caller's own), so two callers never both see it taken.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn acquire_billing_lease(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, BillingStoreError> {
        const SQL: &str = "INSERT INTO billing_leases \
                           (workspace_id, customer_id, locked_by, locked_until) \
                           VALUES ($1, $2, $3, $4) \
                           ON CONFLICT (workspace_id, customer_id) DO UPDATE \
                           SET locked_by = excluded.locked_by, locked_until = excluded.locked_until \
                           WHERE billing_leases.locked_until <= $5 \
                              OR billing_leases.locked_by = excluded.locked_by \
                           RETURNING locked_by";
        let row: Option<(String,)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(customer_id)
            .bind(holder)
            .bind(to_micros(until))
            .bind(to_micros(now))
            .fetch_optional(pool)
            .await)?;
        Ok(row.is_some_and(|(locked_by,)| locked_by == holder))
    }

    /// Gives up the holder's lease on the customer, so that the next run need not wait for it to
    /// expire.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn release_billing_lease(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
        holder: &str,
    ) -> Result<(), BillingStoreError> {
        const SQL: &str = "DELETE FROM billing_leases \
                           WHERE workspace_id = $1 AND customer_id = $2 AND locked_by = $3";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(customer_id)
            .bind(holder)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Finalizes an invoice in one transaction: takes the workspace's next invoice number, stores
    /// the invoice as open with that number (replacing its draft, if any), starts its payment
    /// history with `PaymentPending`, and marks the adjustments it bills as applied.
    ///
    /// When the invoice with the same subscription and instant is already final, nothing
    /// changes and no number is used.
    ///
    /// # Errors
    /// When a query fails.
    #[tracing::instrument(skip_all, fields(invoice_id = %invoice.id))]
    pub async fn finalize_invoice(
        &self,
        workspace: &WorkspaceId,
        invoice: &InvoiceRecord,
        applied_adjustment_ids: &[AdjustmentId],
    ) -> Result<Finalized, BillingStoreError> {
        assert_eq!(
            invoice.status,
            InvoiceStatus::Open,
            "finalized invoices start open"
        );
        assert!(invoice.finalized_at.is_some());
        // The sequence is written first: on SQLite the first write takes the database's write
        // lock, on PostgreSQL the row lock serializes finalizations of one workspace. Either
        // way, the number is used only if this transaction commits: gap-free.
        const SEED: &str = "INSERT INTO invoice_number_sequences (workspace_id, next_number) \
                            VALUES ($1, 1) ON CONFLICT (workspace_id) DO NOTHING";
        const TAKE: &str = "UPDATE invoice_number_sequences SET next_number = next_number + 1 \
                            WHERE workspace_id = $1 RETURNING next_number - 1";
        const EXISTING: &str = "SELECT id, status FROM invoices \
                                WHERE workspace_id = $1 AND invoice_key = $2 AND issued_at = $3";
        const DELETE_DRAFT: &str = "DELETE FROM invoices \
                                    WHERE workspace_id = $1 AND id = $2 AND status = 'draft'";
        const APPLY: &str = "UPDATE invoice_adjustments SET applied_invoice_id = $3 \
                             WHERE workspace_id = $1 AND id = $2 AND applied_invoice_id IS NULL";
        let insert = insert_invoice_sql();
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query(SEED).bind(workspace.as_str()).execute(&mut *transaction).await?;
            let (number,): (i64,) = sqlx::query_as(TAKE)
                .bind(workspace.as_str())
                .fetch_one(&mut *transaction)
                .await?;
            let existing: Option<(String, String)> = sqlx::query_as(EXISTING)
                .bind(workspace.as_str())
                .bind(&invoice.invoice_key)
                .bind(to_micros(invoice.issued_at))
                .fetch_optional(&mut *transaction)
                .await?;
            let mut record = invoice.clone();
            record.number = Some(number);
            if let Some((draft_id, status)) = existing {
                if status.parse::<InvoiceStatus>()? != InvoiceStatus::Draft {
                    transaction.rollback().await?;
                    return Ok(Finalized::AlreadyFinal);
                }
                // The draft's id stays the invoice's id: clients may have seen it.
                record.id = draft_id.into();
                let deleted = sqlx::query(DELETE_DRAFT)
                    .bind(workspace.as_str())
                    .bind(&record.id)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    transaction.rollback().await?;
                    return Ok(Finalized::AlreadyFinal);
                }
            }
            let inserted = bind_invoice!(sqlx::query(&insert), workspace, record)
                .execute(&mut *transaction)
                .await;
            match inserted {
                Ok(_) => {}
                Err(error) if sql::is_unique_violation(&error) => {
                    transaction.rollback().await?;
                    return Ok(Finalized::AlreadyFinal);
                }
                Err(error) => return Err(error.into()),
            }
            let finalized_at = invoice.finalized_at.unwrap_or(invoice.issued_at);
            append_payment_state!(
                transaction, workspace, &record.id, PAYMENT_PENDING, None::<&str>, finalized_at
            );
            for adjustment_id in applied_adjustment_ids {
                sqlx::query(APPLY)
                    .bind(workspace.as_str())
                    .bind(adjustment_id)
                    .bind(&record.id)
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
            Ok(Finalized::Numbered(number))
        })
    }

    /// Records a late-usage adjustment.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(invoice_key = %adjustment.invoice_key))]
    pub async fn insert_adjustment(
        &self,
        workspace: &WorkspaceId,
        adjustment: &AdjustmentRecord,
    ) -> Result<(), BillingStoreError> {
        const SQL: &str = "INSERT INTO invoice_adjustments (workspace_id, id, invoice_key, \
                           source_invoice_id, amount_minor, applied_invoice_id, created_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7)";
        with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(&adjustment.id)
            .bind(&adjustment.invoice_key)
            .bind(&adjustment.source_invoice_id)
            .bind(adjustment.amount_minor)
            .bind(adjustment.applied_invoice_id.as_deref())
            .bind(to_micros(adjustment.created_at))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The adjustments of a subscription, pending and applied, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(invoice_key = %invoice_key))]
    pub async fn adjustments(
        &self,
        workspace: &WorkspaceId,
        invoice_key: &str,
    ) -> Result<Vec<AdjustmentRecord>, BillingStoreError> {
        const SQL: &str = "SELECT id, invoice_key, source_invoice_id, amount_minor, \
                           applied_invoice_id, created_at FROM invoice_adjustments \
                           WHERE workspace_id = $1 AND invoice_key = $2 ORDER BY id";
        let rows: Vec<AdjustmentRow> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(invoice_key)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(adjustment_from_row).collect()
    }
}

/// `id, invoice_key, source_invoice_id, amount_minor, applied_invoice_id, created_at` of
/// `invoice_adjustments`.
pub(crate) type AdjustmentRow = (String, String, String, i64, Option<String>, i64);

pub(crate) fn adjustment_from_row(
    (id, invoice_key, source_invoice_id, amount_minor, applied, created_at): AdjustmentRow,
) -> Result<AdjustmentRecord, BillingStoreError> {
    Ok(AdjustmentRecord {
        id: id.into(),
        invoice_key,
        source_invoice_id: source_invoice_id.into(),
        amount_minor,
        applied_invoice_id: applied.map(Into::into),
        created_at: from_micros(created_at)?,
    })
}
