//! What a billing run reads and writes for many customers at once.
//!
//! A run bills customers in batches (docs/billing-runs.md): each batch claims its leases with one
//! statement, reads each table once for all its customers, and writes everything the engine
//! decided (drafts, finalized invoices with their numbers and first payment states,
//! adjustments) in one transaction. Per-customer round trips and per-invoice commits, not the
//! engine, are what a run's time would go to otherwise (`billow bench billing-run` prints the
//! store's share).
//!
//! Lists of ids are bound one parameter each (`IN ($2, $3, …)`); callers pass at most a batch
//! of customers, far below either backend's limit on parameters. Multi-row statements are cut
//! into pieces of [`ROWS_PER_STATEMENT`] rows for the same reason.

use billow_core::credit_note::CreditInvoiceError;
use billow_core::scenario::Checkpoint;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::sql::{enum_text, from_micros, spec_from_json, to_micros, with_pool, BillingStoreError};
use super::{adjustment_from_row, AdjustmentRecord, AdjustmentRow, PAYMENT_PENDING};
use crate::catalog::{PlanVersionRecord, TaxRateRecord};
use crate::ids::{AdjustmentId, CustomerId, InvoiceId, PlanVersionId, SubscriptionId};
use crate::invoices::{
    available_to_credit, insert_credit_note_row, CreditNoteRecord, InvoiceRecord, InvoiceStatus,
    INVOICE_COLUMNS,
};
use crate::store::Store;
use crate::subscriptions::{
    subscription_from_row, CustomerSpecRecord, HeldSpec, SubscriptionChangeRecord,
    SubscriptionRecord, SubscriptionRow,
};
use crate::workspaces::WorkspaceId;

/// Rows per multi-row statement: 20 parameters per invoice row stay below SQLite's 32,766
/// parameters and PostgreSQL's 65,535.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// Appends `IN (…)` with one bound parameter per id to a query builder.
macro_rules! push_in {
    ($builder:expr, $ids:expr) => {{
        $builder.push(" IN (");
        let mut separated = $builder.separated(", ");
        for id in $ids {
            separated.push_bind(id.as_str());
        }
        $builder.push(")");
    }};
}

/// Deletes the leases `holder` holds on `customer_ids`, in `transaction`.
macro_rules! delete_leases {
    ($transaction:expr, $workspace:expr, $customer_ids:expr, $holder:expr) => {{
        for piece in $customer_ids.chunks(ROWS_PER_STATEMENT) {
            let mut builder = QueryBuilder::new("DELETE FROM billing_leases WHERE workspace_id = ");
            builder
                .push_bind($workspace)
                .push(" AND locked_by = ")
                .push_bind($holder);
            builder.push(" AND customer_id");
            push_in!(builder, piece);
            builder.build().execute(&mut *$transaction).await?;
        }
    }};
}

/// Leases a billing batch's writer gives back in the batch's own transaction.
#[derive(Clone, Copy, Debug)]
pub struct HeldLeases<'a> {
    /// The customers whose leases the batch holds.
    pub customer_ids: &'a [CustomerId],
    /// The holder that took them (the node's name).
    pub holder: &'a str,
}

/// `INSERT INTO invoices (…) VALUES (…), …` as a query builder, for an iterator of
/// (invoice, number to give it or `None` for its own).
macro_rules! insert_invoices {
    ($pool:expr, $workspace:expr, $invoices:expr $(,)?) => {{
        let mut builder = builder_for(
            $pool,
            format!("INSERT INTO invoices (workspace_id, {INVOICE_COLUMNS}) "),
        );
        builder.push_values(
            $invoices,
            |mut row, (invoice, number): (&InvoiceRecord<String>, Option<i64>)| {
                row.push_bind($workspace)
                    .push_bind(invoice.id.as_str())
                    .push_bind(number.or(invoice.number))
                    .push_bind(invoice.customer_id.as_str())
                    .push_bind(invoice.invoice_key.as_str())
                    .push_bind(invoice.plan_version_id.as_str())
                    .push_bind(enum_text(&invoice.reason))
                    .push_bind(to_micros(invoice.issued_at))
                    .push_bind(to_micros(invoice.period_start))
                    .push_bind(to_micros(invoice.period_end))
                    .push_bind(invoice.status.as_str())
                    .push_bind(invoice.currency.code())
                    .push_bind(enum_text(&invoice.rounding))
                    .push_bind(invoice.total_minor)
                    .push_bind(invoice.amount_before_tax_minor)
                    .push_bind(invoice.lines.as_str())
                    .push_bind(invoice.totals.as_str())
                    .push_bind(invoice.credit_usage.as_str())
                    .push_bind(to_micros(invoice.created_at))
                    .push_bind(invoice.finalized_at.map(to_micros))
                    .push_bind(invoice.scope.as_str())
                    .push_bind(crate::invoices::subscriptions_json(&invoice.subscriptions))
                    .push_bind(invoice.due_at.map(to_micros));
            },
        );
        builder
    }};
}

/// Settles each [`AdjustmentCredit`] inside a transaction; evaluates to the number of credit notes
/// written. A credit note is checked against what is left to credit on its invoice, under the
/// invoice's lock, before its adjustment is settled: one that no longer fits (a credit note
/// written, or the invoice voided, since the run read it) is skipped, and its adjustment stays
/// pending for the next run, which plans it again from what is left then. An adjustment another
/// run settled meanwhile is skipped too, so it is never credited twice.
macro_rules! write_credits {
    ($transaction:ident, $workspace:expr, $credits:expr) => {{
        let mut written: u64 = 0;
        for credit in $credits {
            let credit: &AdjustmentCredit = credit;
            // What the invoice credits once the note is written, as core decides it from the
            // locked row; `None` without a note.
            let credited = match &credit.note {
                None => None,
                Some(note) => {
                    match available_to_credit!($transaction, $workspace, &note.invoice_id) {
                        Ok(credits) => match credits.with_note(note.total_minor) {
                            Ok(credited) => Some(credited),
                            Err(CreditInvoiceError::Exceeds { .. }) => continue,
                            Err(CreditInvoiceError::NotPositive { .. }) => {
                                panic!("a credit note credits a positive amount")
                            }
                        },
                        Err(BillingStoreError::NotFound | BillingStoreError::Immutable) => continue,
                        Err(other) => return Err(other),
                    }
                }
            };
            let settled = sqlx::query(
                "UPDATE invoice_adjustments SET applied_invoice_id = $3 \
                 WHERE workspace_id = $1 AND id = $2 AND applied_invoice_id IS NULL",
            )
            .bind($workspace.as_str())
            .bind(&credit.adjustment_id)
            .bind(&credit.source_invoice_id)
            .execute(&mut *$transaction)
            .await?
            .rows_affected();
            if settled == 0 {
                continue;
            }
            if let (Some(note), Some(credited)) = (&credit.note, credited) {
                insert_credit_note_row!($transaction, $workspace, note, credited);
                written += 1;
            }
        }
        written
    }};
}

/// A query builder for `pool`'s backend (named by the pool, where inference cannot tell it).
pub(crate) fn builder_for<'args, DB: sqlx::Database>(
    _pool: &sqlx::Pool<DB>,
    sql: String,
) -> QueryBuilder<'args, DB>
where
    DB::Arguments<'args>: Default,
{
    QueryBuilder::new(sql)
}

/// What a billing run knows of a stored invoice without reading its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceSummary {
    pub id: InvoiceId,
    pub number: Option<i64>,
    pub customer_id: CustomerId,
    pub invoice_key: String,
    pub issued_at: Timestamp,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub status: InvoiceStatus,
    pub currency: billow_core::Currency,
    /// [`InvoiceRecord::amount_before_tax_minor`]: what late usage is compared with.
    pub amount_before_tax_minor: i64,
}

/// Everything one batch of a billing run writes, in one transaction.
#[derive(Clone, Debug, Default)]
pub struct BillingWrites {
    /// Drafts to store or refresh (a finalized invoice with the same key is left as it is).
    pub drafts: Vec<InvoiceRecord<String>>,
    /// Invoices to finalize, in the order their numbers are given; each `Open`, with
    /// `finalized_at`, without a number. An id that is a stored draft's replaces that draft.
    pub finalize: Vec<Finalization>,
    /// Late-usage adjustments to record.
    pub adjustments: Vec<AdjustmentRecord>,
    /// Pending negative adjustments to settle with a credit note of their source invoice.
    pub credits: Vec<AdjustmentCredit>,
    /// What the run knows of each customer it computed (replacing what was stored).
    pub states: Vec<BillingStateRecord>,
    /// Customers it left alone whose world version was ahead of the one their state had seen
    /// (a change that changed nothing they bill): (customer, the version read), written as
    /// seen, so that later runs do not look at them again.
    pub seen: Vec<(CustomerId, i64)>,
}

/// What a billing run knows of a customer after computing it (`billing_states`, 0016).
#[derive(Clone, Debug, PartialEq)]
pub struct BillingStateRecord {
    pub customer_id: CustomerId,
    /// The instant the run billed at.
    pub computed_at: Timestamp,
    /// The earliest instant after `computed_at` at which something is due without any change;
    /// `None` when nothing ever is.
    pub next_due_at: Option<Timestamp>,
    /// A digest of everything the run read for the customer but its usage.
    pub fingerprint: String,
    /// Where the next computation may start the engine, valid while the fingerprint is this
    /// one and no event arrives late for a period it covers. Stored as JSON; one that cannot be
    /// read back is dropped (the run then reads the customer's whole history).
    pub checkpoint: Option<Checkpoint>,
    /// The latest instant the customer was invoiced at (drafts included): an event at or
    /// after it belongs to a period no run has invoiced yet. `None`: nothing invoiced.
    pub billed_through: Option<Timestamp>,
    /// The customer's world version when the run read the state (`world_version`, which the
    /// triggers of 0017 advance on every change of its world): written back as `seen_version`,
    /// so a change made meanwhile leaves the customer to compute again. 0 when there was none.
    pub world_version: i64,
    /// The version its state had seen when read (`seen_version`); a run writes
    /// `world_version` as the new one.
    pub seen_version: i64,
}

/// A billing state's row: customer, computed_at, next_due_at, fingerprint, checkpoint,
/// billed_through, world_version, seen_version.
type StateRow = (
    String,
    i64,
    Option<i64>,
    String,
    Option<String>,
    Option<i64>,
    i64,
    i64,
);

/// A checkpoint as stored: its JSON (made of strings, numbers and arrays, so it always
/// serializes).
fn checkpoint_text(checkpoint: &Checkpoint) -> String {
    serde_json::to_string(checkpoint).expect("a checkpoint serializes")
}

/// A pending negative late-usage adjustment of a subscription with no further invoice, settled
/// against the invoice whose usage went down (its source) instead of billed on an invoice of its
/// own: the adjustment is marked applied to its source invoice, and the credit note, if any,
/// written in the same transaction.
#[derive(Clone, Debug)]
pub struct AdjustmentCredit {
    pub adjustment_id: AdjustmentId,
    pub source_invoice_id: InvoiceId,
    /// The credit note of the source invoice, within what was left to credit on it when the run
    /// read it; `None` when nothing was left (the adjustment is settled without one).
    pub note: Option<CreditNoteRecord>,
}

/// One invoice to finalize, and the pending adjustments it bills.
#[derive(Clone, Debug)]
pub struct Finalization {
    pub invoice: InvoiceRecord<String>,
    /// Whether `invoice.id` is a stored draft's, which this invoice replaces.
    pub replaces_draft: bool,
    pub applied_adjustment_ids: Vec<AdjustmentId>,
}

/// What [`Store::write_billing_batch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingWritten {
    /// Drafts written (a draft whose key was finalized meanwhile is not).
    pub drafted: u64,
    /// For each finalization, in order: its number, or `None` when another run finalized that
    /// invoice first (no number was used for it).
    pub numbers: Vec<Option<i64>>,
    /// Credit notes written for negative late usage.
    pub credit_notes: u64,
}

impl Store {
    /// Claims each customer of `customer_ids` for a billing run until `until`, unless another
    /// holder's lease on it is still running at `now`; returns the customers now held, in the
    /// order given. One statement per piece, as [`Store::acquire_billing_lease`] for one.
    ///
    /// # Errors
    /// When a query fails.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn acquire_billing_leases(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<CustomerId>, BillingStoreError> {
        // One transaction, one commit: on SQLite each commit waits for the database's write lock.
        let rows: Vec<(String, String)> = with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let mut rows = Vec::with_capacity(customer_ids.len());
            for piece in customer_ids.chunks(ROWS_PER_STATEMENT) {
                let mut builder = QueryBuilder::new(
                    "INSERT INTO billing_leases (workspace_id, customer_id, locked_by, locked_until) ",
                );
                builder.push_values(piece, |mut row, customer_id| {
                    row.push_bind(workspace.as_str())
                        .push_bind(customer_id.as_str())
                        .push_bind(holder)
                        .push_bind(to_micros(until));
                });
                builder
                    .push(
                        " ON CONFLICT (workspace_id, customer_id) DO UPDATE \
                         SET locked_by = excluded.locked_by, locked_until = excluded.locked_until \
                         WHERE billing_leases.locked_until <= ",
                    )
                    .push_bind(to_micros(now))
                    .push(
                        " OR billing_leases.locked_by = excluded.locked_by \
                         RETURNING customer_id, locked_by",
                    );
                let piece_rows: Vec<(String, String)> =
                    builder.build_query_as().fetch_all(&mut *transaction).await?;
                rows.extend(piece_rows);
            }
            transaction.commit().await.map(|()| rows)
        })?;
        let held: std::collections::HashSet<String> = rows
            .into_iter()
            .filter(|(_, locked_by)| locked_by == holder)
            .map(|(customer_id, _)| customer_id)
            .collect();
        Ok(customer_ids
            .iter()
            .filter(|id| held.contains(id.as_str()))
            .cloned()
            .collect())
    }

    /// Gives up the holder's leases on `customer_ids`.
    ///
    /// # Errors
    /// When a query fails.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn release_billing_leases(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
        holder: &str,
    ) -> Result<(), BillingStoreError> {
        if customer_ids.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            delete_leases!(transaction, workspace.as_str(), customer_ids, holder);
            transaction.commit().await
        })?;
        Ok(())
    }

    /// The subscriptions of `customer_ids`, by customer, oldest first.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn subscriptions_of_customers(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
    ) -> Result<Vec<SubscriptionRecord>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in customer_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<SubscriptionRow> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT id, customer_id, plan_id, plan_version_id, status, spec, created_at \
                     FROM subscriptions WHERE workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND customer_id");
                push_in!(builder, piece);
                builder.push(" ORDER BY customer_id, id");
                builder.build_query_as().fetch_all(pool).await
            })?;
            for row in rows {
                all.push(subscription_from_row(row)?);
            }
        }
        Ok(all)
    }

    /// The changes of `subscription_ids`, as (subscription id, change), each subscription's in
    /// the order they were made.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(subscriptions = subscription_ids.len()))]
    pub async fn changes_of_subscriptions(
        &self,
        workspace: &WorkspaceId,
        subscription_ids: &[SubscriptionId],
    ) -> Result<Vec<(SubscriptionId, SubscriptionChangeRecord)>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in subscription_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(String, i64, i64, String, i64)> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT subscription_id, sequence, at, spec, created_at \
                     FROM subscription_changes WHERE workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND subscription_id");
                push_in!(builder, piece);
                builder.push(" ORDER BY subscription_id, sequence");
                builder.build_query_as().fetch_all(pool).await
            })?;
            for (subscription_id, sequence, at, spec, created_at) in rows {
                let spec = spec_from_json(
                    &spec,
                    "subscription_changes",
                    &format!("{subscription_id}#{sequence}"),
                )?;
                all.push((
                    subscription_id.into(),
                    SubscriptionChangeRecord {
                        spec,
                        sequence,
                        at: from_micros(at)?,
                        created_at: from_micros(created_at)?,
                    },
                ));
            }
        }
        Ok(all)
    }

    /// The credit grants or discounts of `customer_ids`, oldest first.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn customer_specs_of_customers<T: HeldSpec>(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
    ) -> Result<Vec<CustomerSpecRecord<T>>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in customer_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(String, String, String, i64)> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(format!(
                    "SELECT id, customer_id, spec, created_at FROM {} WHERE workspace_id = ",
                    T::TABLE
                ));
                builder.push_bind(workspace.as_str()).push(" AND customer_id");
                push_in!(builder, piece);
                builder.push(" ORDER BY id");
                builder.build_query_as().fetch_all(pool).await
            })?;
            for (id, customer_id, spec, created_at) in rows {
                all.push(CustomerSpecRecord {
                    spec: spec_from_json(&spec, T::TABLE, &id)?,
                    id,
                    customer_id: customer_id.into(),
                    created_at: from_micros(created_at)?,
                });
            }
        }
        Ok(all)
    }

    /// The tax rate charged to each of `customer_ids` that has one, as (customer id, rate).
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn tax_rates_of_customers(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
    ) -> Result<Vec<(CustomerId, TaxRateRecord)>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in customer_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(String, String, String, i64)> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT c.customer_id, t.id, t.spec, t.created_at \
                     FROM customer_tax_rates c JOIN tax_rates t \
                       ON t.workspace_id = c.workspace_id AND t.id = c.tax_rate_id \
                     WHERE c.workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND c.customer_id");
                push_in!(builder, piece);
                builder.build_query_as().fetch_all(pool).await
            })?;
            for (customer_id, id, spec, created_at) in rows {
                all.push((
                    customer_id.into(),
                    TaxRateRecord {
                        spec: spec_from_json(&spec, "tax_rates", &id)?,
                        id: id.into(),
                        created_at: from_micros(created_at)?,
                    },
                ));
            }
        }
        Ok(all)
    }

    /// The plan versions among `ids` that exist in the workspace.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(versions = ids.len()))]
    pub async fn plan_versions_by_id(
        &self,
        workspace: &WorkspaceId,
        ids: &[PlanVersionId],
    ) -> Result<Vec<PlanVersionRecord>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(String, String, i64, String, i64)> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT id, plan_id, version, spec, created_at FROM plan_versions \
                     WHERE workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND id");
                push_in!(builder, piece);
                builder.build_query_as().fetch_all(pool).await
            })?;
            for (id, plan_id, version, spec, created_at) in rows {
                all.push(PlanVersionRecord {
                    spec: spec_from_json(&spec, "plan_versions", &id)?,
                    id: id.into(),
                    plan_id: plan_id.into(),
                    version,
                    created_at: from_micros(created_at)?,
                });
            }
        }
        Ok(all)
    }

    /// Every stored invoice of `customer_ids`, without lines.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    pub async fn invoice_summaries_of_customers(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
    ) -> Result<Vec<InvoiceSummary>, BillingStoreError> {
        self.invoice_summaries_since(workspace, customer_ids, None)
            .await
    }

    /// The stored invoices of `customer_ids` issued at or after `since` (all of them when
    /// `None`), without lines.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn invoice_summaries_since(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
        since: Option<Timestamp>,
    ) -> Result<Vec<InvoiceSummary>, BillingStoreError> {
        type Row = (
            String,
            Option<i64>,
            String,
            String,
            i64,
            i64,
            i64,
            String,
            String,
            i64,
        );
        let mut all = Vec::new();
        for piece in customer_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<Row> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT id, number, customer_id, invoice_key, issued_at, period_start, \
                     period_end, status, currency, amount_before_tax_minor FROM invoices \
                     WHERE workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND customer_id");
                push_in!(builder, piece);
                if let Some(since) = since {
                    builder.push(" AND issued_at >= ").push_bind(to_micros(since));
                }
                builder.build_query_as().fetch_all(pool).await
            })?;
            for row in rows {
                let (id, number, customer_id, invoice_key, issued_at, start, end) =
                    (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
                all.push(InvoiceSummary {
                    id: id.into(),
                    number,
                    customer_id: customer_id.into(),
                    invoice_key,
                    issued_at: from_micros(issued_at)?,
                    period_start: from_micros(start)?,
                    period_end: from_micros(end)?,
                    status: row.7.parse()?,
                    currency: billow_core::Currency::from_code(&row.8).map_err(|_| {
                        BillingStoreError::CorruptRow {
                            column: "invoices.currency",
                        }
                    })?,
                    amount_before_tax_minor: row.9,
                });
            }
        }
        Ok(all)
    }

    /// The billing states of `customer_ids` (those that have one).
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customers = customer_ids.len()))]
    pub async fn billing_states(
        &self,
        workspace: &WorkspaceId,
        customer_ids: &[CustomerId],
    ) -> Result<Vec<BillingStateRecord>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in customer_ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<StateRow> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT customer_id, computed_at, next_due_at, fingerprint, checkpoint, \
                     billed_through, world_version, seen_version FROM billing_states \
                     WHERE workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND customer_id");
                push_in!(builder, piece);
                builder.build_query_as().fetch_all(pool).await
            })?;
            for row in rows {
                let (customer_id, computed_at, next_due_at, fingerprint, checkpoint) =
                    (row.0, row.1, row.2, row.3, row.4);
                let checkpoint = checkpoint.and_then(|text| {
                    serde_json::from_str(&text)
                        .inspect_err(|error| {
                            tracing::warn!(
                                customer_id = %customer_id,
                                error.message = %error,
                                "a stored billing checkpoint could not be read; dropped"
                            );
                        })
                        .ok()
                });
                all.push(BillingStateRecord {
                    customer_id: customer_id.into(),
                    computed_at: from_micros(computed_at)?,
                    next_due_at: next_due_at.map(from_micros).transpose()?,
                    fingerprint,
                    checkpoint,
                    billed_through: row.5.map(from_micros).transpose()?,
                    world_version: row.6,
                    seen_version: row.7,
                });
            }
        }
        Ok(all)
    }

    /// The adjustments of `invoice_keys`, pending and applied, oldest first.
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(subscriptions = invoice_keys.len()))]
    pub async fn adjustments_of_keys(
        &self,
        workspace: &WorkspaceId,
        invoice_keys: &[String],
    ) -> Result<Vec<AdjustmentRecord>, BillingStoreError> {
        let mut all = Vec::new();
        for piece in invoice_keys.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<AdjustmentRow> = with_pool!(self, pool => {
                let mut builder = QueryBuilder::new(
                    "SELECT id, invoice_key, source_invoice_id, amount_minor, \
                     applied_invoice_id, created_at FROM invoice_adjustments WHERE workspace_id = ",
                );
                builder.push_bind(workspace.as_str()).push(" AND invoice_key");
                push_in!(builder, piece);
                builder.push(" ORDER BY id");
                builder.build_query_as().fetch_all(pool).await
            })?;
            for row in rows {
                all.push(adjustment_from_row(row)?);
            }
        }
        Ok(all)
    }

    /// Writes what one batch of a billing run decided, in one transaction: adjustments, drafts,
    /// and finalized invoices with gap-free numbers, their `PaymentPending` state and the
    /// adjustments they bill.
    ///
    /// Finalizations are first tried in bulk: the drafts they replace are deleted and the
    /// invoices inserted with consecutive numbers, skipping any whose key already exists. When
    /// every one went in (the usual case) the sequence moves past them. When one did not (a
    /// draft finalized or an invoice issued by another run meanwhile), that attempt is rolled
    /// back and the batch is written again one finalization at a time, where a finalization
    /// that finds its invoice already final uses no number: either way numbers stay gap-free.
    ///
    /// The `leases` of the batch, when given, are released in the same transaction: one commit
    /// instead of two, and a lease is never released before what it guarded is stored.
    ///
    /// # Errors
    /// When a query fails; then nothing of the batch is stored and no lease released.
    #[tracing::instrument(skip_all, fields(
        drafts = writes.drafts.len(),
        finalize = writes.finalize.len(),
        adjustments = writes.adjustments.len()
    ))]
    pub async fn write_billing_batch(
        &self,
        workspace: &WorkspaceId,
        writes: &BillingWrites,
        leases: Option<HeldLeases<'_>>,
    ) -> Result<BillingWritten, BillingStoreError> {
        for finalization in &writes.finalize {
            assert_eq!(finalization.invoice.status, InvoiceStatus::Open);
            assert!(finalization.invoice.finalized_at.is_some());
        }
        for draft in &writes.drafts {
            assert_eq!(draft.status, InvoiceStatus::Draft);
            assert!(draft.number.is_none(), "a draft has no number");
        }
        if let Some(written) = self.write_batch(workspace, writes, leases, true).await? {
            return Ok(written);
        }
        Ok(self
            .write_batch(workspace, writes, leases, false)
            .await?
            .expect("the careful path always completes"))
    }

    /// One attempt of [`Store::write_billing_batch`]: `bulk` gives up (`None`, rolled back) when
    /// a finalization finds its invoice taken; otherwise finalizations go one by one.
    async fn write_batch(
        &self,
        workspace: &WorkspaceId,
        writes: &BillingWrites,
        leases: Option<HeldLeases<'_>>,
        bulk: bool,
    ) -> Result<Option<BillingWritten>, BillingStoreError> {
        const SEED: &str = "INSERT INTO invoice_number_sequences (workspace_id, next_number) \
                            VALUES ($1, 1) ON CONFLICT (workspace_id) DO NOTHING";
        const LOCK: &str = "UPDATE invoice_number_sequences SET next_number = next_number \
                            WHERE workspace_id = $1 RETURNING next_number";
        const ADVANCE: &str =
            "UPDATE invoice_number_sequences SET next_number = $2 WHERE workspace_id = $1";
        const DELETE_DRAFT: &str = "DELETE FROM invoices \
                                    WHERE workspace_id = $1 AND id = $2 AND status = 'draft'";
        let ws = workspace.as_str();
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            // The sequence row first: on SQLite the first write takes the database's write
            // lock, on PostgreSQL the row lock serializes finalizations of the workspace.
            sqlx::query(SEED).bind(ws).execute(&mut *transaction).await?;
            let (first,): (i64,) =
                sqlx::query_as(LOCK).bind(ws).fetch_one(&mut *transaction).await?;
            let mut next = first;

            for piece in writes.adjustments.chunks(ROWS_PER_STATEMENT) {
                let mut builder = QueryBuilder::new(
                    "INSERT INTO invoice_adjustments (workspace_id, id, invoice_key, \
                     source_invoice_id, amount_minor, applied_invoice_id, created_at) ",
                );
                builder.push_values(piece, |mut row, adjustment| {
                    row.push_bind(ws)
                        .push_bind(adjustment.id.as_str())
                        .push_bind(adjustment.invoice_key.as_str())
                        .push_bind(adjustment.source_invoice_id.as_str())
                        .push_bind(adjustment.amount_minor)
                        .push_bind(adjustment.applied_invoice_id.as_deref())
                        .push_bind(to_micros(adjustment.created_at));
                });
                builder.build().execute(&mut *transaction).await?;
            }

            for piece in writes.states.chunks(ROWS_PER_STATEMENT) {
                let checkpoints: Vec<Option<String>> = piece
                    .iter()
                    .map(|state| state.checkpoint.as_ref().map(checkpoint_text))
                    .collect();
                let mut builder = QueryBuilder::new(
                    "INSERT INTO billing_states (workspace_id, customer_id, computed_at, \
                     next_due_at, fingerprint, checkpoint, billed_through, world_version, \
                     seen_version) ",
                );
                builder.push_values(piece.iter().zip(&checkpoints), |mut row, (state, checkpoint)| {
                    row.push_bind(ws)
                        .push_bind(state.customer_id.as_str())
                        .push_bind(to_micros(state.computed_at))
                        .push_bind(state.next_due_at.map(to_micros))
                        .push_bind(state.fingerprint.as_str())
                        .push_bind(checkpoint.as_deref())
                        .push_bind(state.billed_through.map(to_micros))
                        // A new row starts one ahead: a change of the world between the run's
                        // read and this write found no row to count on.
                        .push_bind(state.world_version.saturating_add(1))
                        .push_bind(state.world_version);
                });
                builder.push(
                    " ON CONFLICT (workspace_id, customer_id) DO UPDATE SET \
                     computed_at = excluded.computed_at, next_due_at = excluded.next_due_at, \
                     fingerprint = excluded.fingerprint, checkpoint = excluded.checkpoint, \
                     billed_through = excluded.billed_through, \
                     seen_version = excluded.seen_version",
                );
                builder.build().execute(&mut *transaction).await?;
            }

            let mut drafted = 0;
            for piece in writes.drafts.chunks(ROWS_PER_STATEMENT) {
                let mut builder = insert_invoices!(pool, ws, piece.iter().map(|draft| (draft, None)));
                builder.push(crate::invoices::UPSERT_DRAFT);
                drafted += builder.build().execute(&mut *transaction).await?.rows_affected();
            }

            let mut numbers = Vec::with_capacity(writes.finalize.len());
            if bulk {
                let replaced: Vec<&str> = writes
                    .finalize
                    .iter()
                    .filter(|f| f.replaces_draft)
                    .map(|f| f.invoice.id.as_str())
                    .collect();
                let mut deleted = 0;
                for piece in replaced.chunks(ROWS_PER_STATEMENT) {
                    let mut builder = QueryBuilder::new("DELETE FROM invoices WHERE workspace_id = ");
                    builder.push_bind(ws).push(" AND status = 'draft' AND id IN (");
                    let mut separated = builder.separated(", ");
                    for id in piece {
                        separated.push_bind(*id);
                    }
                    builder.push(")");
                    deleted += builder.build().execute(&mut *transaction).await?.rows_affected();
                }
                if deleted != u64::try_from(replaced.len()).expect("usize fits in u64") {
                    transaction.rollback().await?;
                    return Ok(None);
                }
                for (index, piece) in writes.finalize.chunks(ROWS_PER_STATEMENT).enumerate() {
                    let offset = i64::try_from(index * ROWS_PER_STATEMENT).expect("small");
                    let mut builder = insert_invoices!(
                        pool,
                        ws,
                        piece.iter().zip(0_i64..).map(|(f, i)| (&f.invoice, Some(first + offset + i))),
                    );
                    builder.push(
                        " ON CONFLICT (workspace_id, invoice_key, issued_at) DO NOTHING",
                    );
                    let inserted = builder.build().execute(&mut *transaction).await?.rows_affected();
                    if inserted != u64::try_from(piece.len()).expect("usize fits in u64") {
                        transaction.rollback().await?;
                        return Ok(None);
                    }
                }
                for _ in &writes.finalize {
                    numbers.push(Some(next));
                    next += 1;
                }
                for piece in writes.finalize.chunks(ROWS_PER_STATEMENT) {
                    let mut builder = QueryBuilder::new(
                        "INSERT INTO payment_state_history \
                         (workspace_id, invoice_id, sequence, state, message, at) ",
                    );
                    builder.push_values(piece, |mut row, finalization| {
                        let invoice = &finalization.invoice;
                        row.push_bind(ws)
                            .push_bind(invoice.id.as_str())
                            .push_bind(1_i64)
                            .push_bind(PAYMENT_PENDING)
                            .push_bind(None::<&str>)
                            .push_bind(to_micros(invoice.finalized_at.unwrap_or(invoice.issued_at)));
                    });
                    builder.build().execute(&mut *transaction).await?;
                }
            } else {
                for finalization in &writes.finalize {
                    let invoice = &finalization.invoice;
                    if finalization.replaces_draft {
                        let deleted = sqlx::query(DELETE_DRAFT)
                            .bind(ws)
                            .bind(&invoice.id)
                            .execute(&mut *transaction)
                            .await?
                            .rows_affected();
                        if deleted == 0 {
                            numbers.push(None);
                            continue;
                        }
                    }
                    let mut builder = insert_invoices!(pool, ws, std::iter::once((invoice, Some(next))));
                    builder.push(
                        " ON CONFLICT (workspace_id, invoice_key, issued_at) DO NOTHING",
                    );
                    if builder.build().execute(&mut *transaction).await?.rows_affected() == 0 {
                        numbers.push(None);
                        continue;
                    }
                    crate::invoices::append_payment_state!(
                        transaction,
                        workspace,
                        &invoice.id,
                        PAYMENT_PENDING,
                        None::<&str>,
                        invoice.finalized_at.unwrap_or(invoice.issued_at)
                    );
                    numbers.push(Some(next));
                    next += 1;
                }
            }

            for (finalization, number) in writes.finalize.iter().zip(&numbers) {
                if number.is_none() || finalization.applied_adjustment_ids.is_empty() {
                    continue;
                }
                let mut builder =
                    QueryBuilder::new("UPDATE invoice_adjustments SET applied_invoice_id = ");
                builder
                    .push_bind(finalization.invoice.id.as_str())
                    .push(" WHERE workspace_id = ")
                    .push_bind(ws)
                    .push(" AND applied_invoice_id IS NULL AND id");
                push_in!(builder, &finalization.applied_adjustment_ids);
                builder.build().execute(&mut *transaction).await?;
            }

            // A customer one of whose invoices another writer finalized first keeps no
            // checkpoint: the run's was made as if its own finalization held, and the next
            // computation compares that invoice again from the whole history.
            let mut overtaken: Vec<CustomerId> = writes
                .finalize
                .iter()
                .zip(&numbers)
                .filter(|(_, number)| number.is_none())
                .map(|(finalization, _)| finalization.invoice.customer_id.clone())
                .collect();
            overtaken.sort_unstable();
            overtaken.dedup();
            for piece in overtaken.chunks(ROWS_PER_STATEMENT) {
                let mut builder =
                    QueryBuilder::new("UPDATE billing_states SET checkpoint = NULL WHERE workspace_id = ");
                builder.push_bind(ws).push(" AND customer_id");
                push_in!(builder, piece);
                builder.build().execute(&mut *transaction).await?;
            }

            for (customer_id, version) in &writes.seen {
                sqlx::query(
                    "UPDATE billing_states SET seen_version = $1 WHERE workspace_id = $2 \
                     AND customer_id = $3 AND seen_version < $1",
                )
                .bind(*version)
                .bind(ws)
                .bind(customer_id.as_str())
                .execute(&mut *transaction)
                .await?;
            }

            let credit_notes = write_credits!(transaction, workspace, &writes.credits);

            if next != first {
                sqlx::query(ADVANCE).bind(ws).bind(next).execute(&mut *transaction).await?;
            }
            if let Some(leases) = leases {
                delete_leases!(transaction, ws, leases.customer_ids, leases.holder);
            }
            transaction.commit().await?;
            Ok(Some(BillingWritten {
                drafted,
                numbers,
                credit_notes,
            }))
        })
    }
}
