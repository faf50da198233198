//! Credit notes: corrections of a finalized invoice, which together never credit more than its
//! total. Written by `POST /api/v1/invoices/{id}/credit-notes` ([`Store::insert_credit_note`]) and
//! by billing runs, for negative late usage of a subscription with no further invoice
//! (`Store::write_billing_batch`); both check the limit the same way, under the invoice's row
//! lock ([`available_to_credit!`]), with core's rule ([`InvoiceCredits::with_note`]): the store
//! adds, subtracts and compares no amount itself.

use billow_core::credit_note::{CreditInvoiceError, InvoiceCredits, LeftToCredit};
use jiff::Timestamp;
use serde_json::Value;

use super::InvoiceStatus;
use crate::billing::sql::{from_json, from_micros, with_pool, BillingStoreError};
use crate::ids::{CreditNoteId, InvoiceId};
use crate::store::Store;
use crate::workspaces::WorkspaceId;

/// A credit note: a correction of a finalized invoice.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditNoteRecord {
    pub id: CreditNoteId,
    pub invoice_id: InvoiceId,
    /// What it takes off the invoice's total (tax included), positive.
    pub total_minor: i64,
    pub lines: Value,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

/// What is left to credit on an invoice, as a billing run reads it before it plans a credit
/// note (the write checks again under the invoice's lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditBalance {
    pub invoice_id: InvoiceId,
    pub status: InvoiceStatus,
    pub total_minor: i64,
    /// Σ the invoice's credit notes.
    pub credited_minor: i64,
    /// The invoice's lines (the core's `InvoiceLine`s as JSON): its tax line says the rate a
    /// credit of it is taxed at.
    pub lines: Value,
}

impl CreditBalance {
    /// The total less what its credit notes credited, as core computes it; nothing for an
    /// invoice that takes no credit note (a draft, a void invoice).
    pub fn left_to_credit(&self) -> LeftToCredit {
        match self.status {
            InvoiceStatus::Open | InvoiceStatus::Paid => {
                InvoiceCredits::new(self.total_minor, self.credited_minor).left_to_credit()
            }
            InvoiceStatus::Draft | InvoiceStatus::Void => LeftToCredit::NOTHING,
        }
    }

    /// [`CreditBalance::left_to_credit`] in minor units.
    pub fn available_minor(&self) -> i64 {
        self.left_to_credit().left_minor()
    }
}

/// Locks the invoice's row for the transaction (an update to itself), so that two credit notes
/// written at once cannot both pass the limit, and evaluates to its credit position as the
/// locked row holds it: `Ok(`[`InvoiceCredits`]`)`, whose [`InvoiceCredits::with_note`] says
/// whether a note fits and what the invoice then credits, or `Err`
/// [`BillingStoreError::NotFound`] / [`BillingStoreError::Immutable`] (a draft or void invoice).
/// A query error returns from the enclosing function.
macro_rules! available_to_credit {
    ($transaction:ident, $workspace:expr, $invoice_id:expr) => {{
        let invoice: Option<(String, i64, i64)> = sqlx::query_as(
            "UPDATE invoices SET status = status \
             WHERE workspace_id = $1 AND id = $2 RETURNING status, total_minor, credited_minor",
        )
        .bind($workspace.as_str())
        .bind($invoice_id)
        .fetch_optional(&mut *$transaction)
        .await?;
        match invoice {
            None => Err($crate::billing::sql::BillingStoreError::NotFound),
            Some((status, total_minor, credited_minor)) => {
                match status.parse::<$crate::invoices::InvoiceStatus>()? {
                    $crate::invoices::InvoiceStatus::Open
                    | $crate::invoices::InvoiceStatus::Paid => Ok(
                        billow_core::credit_note::InvoiceCredits::new(total_minor, credited_minor),
                    ),
                    _ => Err($crate::billing::sql::BillingStoreError::Immutable),
                }
            }
        }
    }};
}
pub(crate) use available_to_credit;

/// Inserts a credit note's row inside a transaction, and records on the invoice what its credit
/// notes then credit: `$credited`, the [`InvoiceCredits`] core made of the row
/// [`available_to_credit!`] locked and this note ([`InvoiceCredits::with_note`]). The row stays
/// locked until the transaction ends, so no other note can have changed it since. An open
/// invoice its notes then credit in full becomes paid, its payment history ending with `Paid`
/// ("credited in full").
macro_rules! insert_credit_note_row {
    ($transaction:ident, $workspace:expr, $note:expr, $credited:expr) => {{
        let note: &$crate::invoices::CreditNoteRecord = $note;
        let credited: billow_core::credit_note::InvoiceCredits = $credited;
        assert!(
            note.total_minor > 0,
            "a credit note credits a positive amount"
        );
        sqlx::query(
            "INSERT INTO credit_notes \
             (workspace_id, id, invoice_id, total_minor, lines, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($workspace.as_str())
        .bind(&note.id)
        .bind(&note.invoice_id)
        .bind(note.total_minor)
        .bind(note.lines.to_string())
        .bind(note.reason.as_deref())
        .bind($crate::billing::sql::to_micros(note.created_at))
        .execute(&mut *$transaction)
        .await?;
        sqlx::query(
            "UPDATE invoices SET credited_minor = $3, updated_at = $4 \
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind($workspace.as_str())
        .bind(&note.invoice_id)
        .bind(credited.credited_minor())
        .bind($crate::billing::sql::to_micros(note.created_at))
        .execute(&mut *$transaction)
        .await?;
        // An open invoice its credit notes credit in full is settled, as Stripe marks it paid:
        // nothing is owed for it, and its payment history says why.
        if credited.fully_credited() {
            let settled = sqlx::query(
                "UPDATE invoices SET status = 'paid' \
                 WHERE workspace_id = $1 AND id = $2 AND status = 'open'",
            )
            .bind($workspace.as_str())
            .bind(&note.invoice_id)
            .execute(&mut *$transaction)
            .await?
            .rows_affected();
            if settled > 0 {
                $crate::invoices::append_payment_state!(
                    $transaction,
                    $workspace,
                    &note.invoice_id,
                    "Paid",
                    Some("credited in full"),
                    note.created_at
                );
            }
        }
    }};
}
pub(crate) use insert_credit_note_row;

impl Store {
    /// Stores a credit note of a finalized invoice, unless the invoice's credit notes would then
    /// credit more than its total.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`], [`BillingStoreError::Immutable`] (a draft or void
    /// invoice), [`BillingStoreError::Exceeds`].
    #[tracing::instrument(skip_all, fields(invoice_id = %note.invoice_id))]
    pub async fn insert_credit_note(
        &self,
        workspace: &WorkspaceId,
        note: &CreditNoteRecord,
    ) -> Result<(), BillingStoreError> {
        assert!(
            note.total_minor > 0,
            "a credit note credits a positive amount"
        );
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let credits = available_to_credit!(transaction, workspace, &note.invoice_id)?;
            let credited = credits.with_note(note.total_minor).map_err(|error| match error {
                CreditInvoiceError::Exceeds { requested_minor, available_minor } => {
                    BillingStoreError::Exceeds { requested_minor, available_minor }
                }
                CreditInvoiceError::NotPositive { .. } => {
                    unreachable!("a credit note of a positive amount was asserted above")
                }
            })?;
            insert_credit_note_row!(transaction, workspace, note, credited);
            transaction.commit().await?;
            Ok(())
        })
    }

    /// The credit notes of an invoice, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(invoice_id = %invoice_id))]
    pub async fn credit_notes(
        &self,
        workspace: &WorkspaceId,
        invoice_id: &str,
    ) -> Result<Vec<CreditNoteRecord>, BillingStoreError> {
        const SQL: &str = "SELECT id, invoice_id, total_minor, lines, reason, created_at \
                           FROM credit_notes WHERE workspace_id = $1 AND invoice_id = $2 \
                           ORDER BY id";
        type Row = (String, String, i64, String, Option<String>, i64);
        let rows: Vec<Row> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(invoice_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|(id, invoice_id, total_minor, lines, reason, created_at)| {
                Ok(CreditNoteRecord {
                    id: id.into(),
                    invoice_id: invoice_id.into(),
                    total_minor,
                    lines: from_json(&lines, "credit_notes.lines")?,
                    reason,
                    created_at: from_micros(created_at)?,
                })
            })
            .collect()
    }

    /// What is left to credit on each of `invoice_ids` that exists, in no particular order. A
    /// billing run asks only for the invoices that negative late usage may credit, so the
    /// usual run makes no such query.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(invoices = invoice_ids.len()))]
    pub async fn credit_balances(
        &self,
        workspace: &WorkspaceId,
        invoice_ids: &[InvoiceId],
    ) -> Result<Vec<CreditBalance>, BillingStoreError> {
        let mut all = Vec::with_capacity(invoice_ids.len());
        // One query per id: a run asks for a handful at most (one per negative adjustment).
        for invoice_id in invoice_ids {
            const SQL: &str = "SELECT status, total_minor, credited_minor, lines FROM invoices \
                               WHERE workspace_id = $1 AND id = $2";
            let row: Option<(String, i64, i64, String)> = with_pool!(self, pool => sqlx::query_as(SQL)
                .bind(workspace.as_str())
                .bind(invoice_id)
                .fetch_optional(pool)
                .await)?;
            if let Some((status, total_minor, credited_minor, lines)) = row {
                all.push(CreditBalance {
                    invoice_id: invoice_id.clone(),
                    status: status.parse()?,
                    total_minor,
                    credited_minor,
                    lines: from_json(&lines, "invoices.lines")?,
                });
            }
        }
        Ok(all)
    }
}
