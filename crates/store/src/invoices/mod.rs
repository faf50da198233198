//! Invoices, their credit notes and their payment-state history.
//!
//! An invoice is a draft until it is finalized ([`Store::finalize_invoice`]): a draft's content
//! follows the latest billing run; a finalized invoice has a gap-free number and its content never
//! changes again, only its status (open → paid, or void).

use std::fmt;
use std::str::FromStr;

use billow_core::scenario::InvoiceReason;
use billow_core::{Currency, RoundingMode};
use jiff::Timestamp;
use serde_json::Value;

use crate::billing::sql::{
    enum_from_text, from_json, from_micros, to_micros, with_pool, BillingStoreError,
};
use crate::ids::{CustomerId, InvoiceId, PlanVersionId, SubscriptionId};
use crate::store::Store;
use crate::workspaces::WorkspaceId;

mod credit_notes;

pub(crate) use credit_notes::{available_to_credit, insert_credit_note_row};
pub use credit_notes::{CreditBalance, CreditNoteRecord};

/// Most invoices one list call returns.
pub const INVOICE_PAGE_LIMIT_MAX: i64 = 100;

/// Where an invoice is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Computed, not yet final: held for late usage.
    Draft,
    /// Final, numbered, awaiting payment.
    Open,
    /// Paid.
    Paid,
    /// Canceled after finalization.
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Void => "void",
        }
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for InvoiceStatus {
    type Err = BillingStoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "draft" => Ok(Self::Draft),
            "open" => Ok(Self::Open),
            "paid" => Ok(Self::Paid),
            "void" => Ok(Self::Void),
            _ => Err(BillingStoreError::CorruptRow {
                column: "invoices.status",
            }),
        }
    }
}

/// Whom an invoice bills: what its key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceScope {
    /// One subscription: the key is its id.
    Subscription,
    /// The customer's invoice of a period (its consolidated subscriptions and its billed
    /// resources): the key is the customer's id.
    Customer,
}

impl InvoiceScope {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscription => "subscription",
            Self::Customer => "customer",
        }
    }
}

impl FromStr for InvoiceScope {
    type Err = BillingStoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "subscription" => Ok(Self::Subscription),
            "customer" => Ok(Self::Customer),
            _ => Err(BillingStoreError::CorruptRow {
                column: "invoices.scope",
            }),
        }
    }
}

/// A stored invoice. Its lines, totals and credit usage are JSON: parsed (`Value`, the default)
/// as reads return them, or as text (`String`) as a billing run writes them, serialized on the
/// engine's threads from the core's types without building a `Value` first.
#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceRecord<Json = Value> {
    pub id: InvoiceId,
    /// The gap-free number of the workspace's sequence; `None` while a draft.
    pub number: Option<i64>,
    pub customer_id: CustomerId,
    /// With `issued_at`, what names the invoice: a subscription's id or the customer's
    /// ([`InvoiceScope`]).
    pub invoice_key: String,
    pub scope: InvoiceScope,
    /// The subscriptions it has lines of.
    pub subscriptions: Vec<SubscriptionId>,
    /// The plan version of a subscription's invoice; empty on the customer's invoice, whose
    /// lines each name their product.
    pub plan_version_id: PlanVersionId,
    /// Why the engine issued it (`period_end`, `subscription_start`, ...).
    pub reason: InvoiceReason,
    pub issued_at: Timestamp,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub status: InvoiceStatus,
    pub currency: Currency,
    pub rounding: RoundingMode,
    pub total_minor: i64,
    /// What the engine computed for the invoice's own lines before tax: subtotal + discount +
    /// credit, without the late-usage adjustment lines it bills (`Invoice::net_before_tax_minor`;
    /// the figure since 0009, the name since 0010). Late usage is the change of this figure.
    pub amount_before_tax_minor: i64,
    /// The core's `InvoiceLine`s, traces included, as a JSON array.
    pub lines: Json,
    /// The core's `InvoiceTotals` as JSON.
    pub totals: Json,
    /// The core's credit usage reports as a JSON array.
    pub credit_usage: Json,
    pub created_at: Timestamp,
    pub finalized_at: Option<Timestamp>,
    /// When payment is due: set when it is finalized (the customer's or the workspace's net
    /// days after); `None` for drafts and for invoices finalized before due dates existed.
    pub due_at: Option<Timestamp>,
    /// Σ the totals of its credit notes (tax included): read from the database, kept by every
    /// credit note's write; ignored when an invoice is inserted (a new invoice has none).
    pub credited_minor: i64,
    /// When it last changed: its status, a payment state or a credit note after finalization;
    /// its finalization before that; a draft's creation by the run that last wrote it. Read
    /// from the database; ignored when an invoice is inserted.
    pub updated_at: Timestamp,
}

impl InvoiceRecord {
    /// The same invoice with its JSON columns as text.
    pub fn into_text(self) -> InvoiceRecord<String> {
        InvoiceRecord {
            id: self.id,
            number: self.number,
            customer_id: self.customer_id,
            invoice_key: self.invoice_key,
            scope: self.scope,
            subscriptions: self.subscriptions,
            plan_version_id: self.plan_version_id,
            reason: self.reason,
            issued_at: self.issued_at,
            period_start: self.period_start,
            period_end: self.period_end,
            status: self.status,
            currency: self.currency,
            rounding: self.rounding,
            total_minor: self.total_minor,
            amount_before_tax_minor: self.amount_before_tax_minor,
            lines: self.lines.to_string(),
            totals: self.totals.to_string(),
            credit_usage: self.credit_usage.to_string(),
            created_at: self.created_at,
            finalized_at: self.finalized_at,
            due_at: self.due_at,
            credited_minor: self.credited_minor,
            updated_at: self.updated_at,
        }
    }
}

/// Which invoices a list returns: every filter given must match. Pages go by id (ids are
/// time-ordered), newest first.
#[derive(Clone, Debug, Default)]
pub struct InvoiceFilter {
    pub customer_id: Option<String>,
    /// Invoices that bill this subscription: its own, and the customer's invoices with lines
    /// of it.
    pub subscription_id: Option<String>,
    /// Only invoices with a line of this project.
    pub project: Option<String>,
    pub status: Option<InvoiceStatus>,
    /// Invoices issued at or after.
    pub issued_from: Option<Timestamp>,
    /// Invoices issued before.
    pub issued_to: Option<Timestamp>,
    /// Only ids before this one (the cursor of the previous page).
    pub before_id: Option<String>,
    /// At most this many, bounded by [`INVOICE_PAGE_LIMIT_MAX`] and one more: a page of the
    /// API asks for one past its size, to tell whether another page follows.
    pub limit: i64,
}

/// The period of one of a customer's own invoices, without its content
/// ([`Store::customer_invoice_periods`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoicePeriod {
    pub id: InvoiceId,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    pub issued_at: Timestamp,
}

/// One entry of an invoice's payment-state history.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentStateRecord {
    pub sequence: i64,
    /// `PaymentPending`, `PaymentInProgress`, `Paid` or `PaymentFailed`.
    pub state: String,
    pub message: Option<String>,
    pub at: Timestamp,
}

/// Appends one payment state inside a transaction; evaluates to its sequence number.
macro_rules! append_payment_state {
    ($transaction:ident, $workspace:expr, $invoice_id:expr, $state:expr, $message:expr, $at:expr) => {{
        let (sequence,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(sequence), 0) + 1 FROM payment_state_history \
             WHERE workspace_id = $1 AND invoice_id = $2",
        )
        .bind($workspace.as_str())
        .bind($invoice_id)
        .fetch_one(&mut *$transaction)
        .await?;
        sqlx::query(
            "INSERT INTO payment_state_history \
             (workspace_id, invoice_id, sequence, state, message, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($workspace.as_str())
        .bind($invoice_id)
        .bind(sequence)
        .bind($state)
        .bind($message)
        .bind($crate::billing::sql::to_micros($at))
        .execute(&mut *$transaction)
        .await?;
        sequence
    }};
}
pub(crate) use append_payment_state;

/// The columns an invoice insert writes, as a literal for `concat!`.
macro_rules! invoice_columns {
    () => {
        "id, number, customer_id, invoice_key, plan_version_id, reason, issued_at, \
         period_start, period_end, status, currency, rounding, total_minor, \
         amount_before_tax_minor, lines, totals, credit_usage, created_at, finalized_at, scope, \
         subscriptions, due_at"
    };
}

pub(crate) const INVOICE_COLUMNS: &str = invoice_columns!();

/// What [`InvoiceRow`] reads: [`INVOICE_COLUMNS`], and what the invoice's credit notes maintain.
pub(crate) const INVOICE_SELECT_COLUMNS: &str = concat!(
    invoice_columns!(),
    ", credited_minor, COALESCE(updated_at, finalized_at, created_at) AS updated_at"
);

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceRow {
    id: String,
    number: Option<i64>,
    customer_id: String,
    invoice_key: String,
    plan_version_id: String,
    reason: String,
    issued_at: i64,
    period_start: i64,
    period_end: i64,
    status: String,
    currency: String,
    rounding: String,
    total_minor: i64,
    amount_before_tax_minor: i64,
    lines: String,
    totals: String,
    credit_usage: String,
    created_at: i64,
    finalized_at: Option<i64>,
    scope: String,
    subscriptions: String,
    due_at: Option<i64>,
    credited_minor: i64,
    updated_at: i64,
}

impl InvoiceRow {
    pub(crate) fn into_record(self) -> Result<InvoiceRecord, BillingStoreError> {
        Ok(InvoiceRecord {
            id: self.id.into(),
            number: self.number,
            customer_id: self.customer_id.into(),
            invoice_key: self.invoice_key,
            scope: self.scope.parse()?,
            subscriptions: serde_json::from_str(&self.subscriptions).map_err(|_| {
                BillingStoreError::CorruptRow {
                    column: "invoices.subscriptions",
                }
            })?,
            plan_version_id: self.plan_version_id.into(),
            reason: enum_from_text(&self.reason, "invoices.reason")?,
            issued_at: from_micros(self.issued_at)?,
            period_start: from_micros(self.period_start)?,
            period_end: from_micros(self.period_end)?,
            status: self.status.parse()?,
            currency: Currency::from_code(&self.currency).map_err(|_| {
                BillingStoreError::CorruptRow {
                    column: "invoices.currency",
                }
            })?,
            rounding: enum_from_text(&self.rounding, "invoices.rounding")?,
            total_minor: self.total_minor,
            amount_before_tax_minor: self.amount_before_tax_minor,
            lines: from_json(&self.lines, "invoices.lines")?,
            totals: from_json(&self.totals, "invoices.totals")?,
            credit_usage: from_json(&self.credit_usage, "invoices.credit_usage")?,
            created_at: from_micros(self.created_at)?,
            finalized_at: self.finalized_at.map(from_micros).transpose()?,
            due_at: self.due_at.map(from_micros).transpose()?,
            credited_minor: self.credited_minor,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

/// Binds every column of [`INVOICE_COLUMNS`] after the workspace id, in order.
macro_rules! bind_invoice {
    ($query:expr, $workspace:expr, $invoice:expr) => {
        $query
            .bind($workspace.as_str())
            .bind(&$invoice.id)
            .bind($invoice.number)
            .bind(&$invoice.customer_id)
            .bind(&$invoice.invoice_key)
            .bind(&$invoice.plan_version_id)
            .bind($crate::billing::sql::enum_text(&$invoice.reason))
            .bind(to_micros($invoice.issued_at))
            .bind(to_micros($invoice.period_start))
            .bind(to_micros($invoice.period_end))
            .bind($invoice.status.as_str())
            .bind($invoice.currency.code())
            .bind($crate::billing::sql::enum_text(&$invoice.rounding))
            .bind($invoice.total_minor)
            .bind($invoice.amount_before_tax_minor)
            .bind($invoice.lines.to_string())
            .bind($invoice.totals.to_string())
            .bind($invoice.credit_usage.to_string())
            .bind(to_micros($invoice.created_at))
            .bind($invoice.finalized_at.map(to_micros))
            .bind($invoice.scope.as_str())
            .bind($crate::invoices::subscriptions_json(
                &$invoice.subscriptions,
            ))
            .bind($invoice.due_at.map(to_micros))
    };
}
pub(crate) use bind_invoice;

/// An invoice's `subscriptions` column: a JSON array of ids.
pub(crate) fn subscriptions_json(subscriptions: &[SubscriptionId]) -> String {
    serde_json::to_string(subscriptions).expect("ids serialize")
}

/// What follows an invoice insert to store a draft or refresh the draft with the same key; a
/// finalized invoice with that key is left as it is.
pub(crate) const UPSERT_DRAFT: &str = " ON CONFLICT (workspace_id, invoice_key, issued_at) \
    DO UPDATE SET plan_version_id = excluded.plan_version_id, reason = excluded.reason, \
    period_start = excluded.period_start, period_end = excluded.period_end, \
    total_minor = excluded.total_minor, \
    amount_before_tax_minor = excluded.amount_before_tax_minor, lines = excluded.lines, \
    totals = excluded.totals, credit_usage = excluded.credit_usage \
    WHERE invoices.status = 'draft'";

/// `INSERT INTO invoices (workspace_id, <every column>) VALUES ($1, ..., $23)`.
pub(crate) fn insert_invoice_sql() -> String {
    let placeholders: Vec<String> = (1..=23).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO invoices (workspace_id, {INVOICE_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    )
}

impl Store {
    /// Stores a draft, or replaces the content of the draft with the same subscription and
    /// instant. A finalized invoice with that key is left as it is; returns whether a draft was
    /// written.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(invoice_id = %draft.id))]
    pub async fn upsert_draft_invoice(
        &self,
        workspace: &WorkspaceId,
        draft: &InvoiceRecord,
    ) -> Result<bool, BillingStoreError> {
        assert_eq!(draft.status, InvoiceStatus::Draft);
        assert!(draft.number.is_none(), "a draft has no number");
        let sql = format!("{}{UPSERT_DRAFT}", insert_invoice_sql());
        let affected = with_pool!(self, pool => bind_invoice!(sqlx::query(&sql), workspace, draft)
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))?;
        Ok(affected == 1)
    }

    /// The invoice `id`, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(invoice_id = %id))]
    pub async fn invoice(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<InvoiceRecord>, BillingStoreError> {
        let sql = format!(
            "SELECT {INVOICE_SELECT_COLUMNS} FROM invoices WHERE workspace_id = $1 AND id = $2"
        );
        let row: Option<InvoiceRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        row.map(InvoiceRow::into_record).transpose()
    }

    /// The invoices that match `filter`, newest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all)]
    pub async fn invoices(
        &self,
        workspace: &WorkspaceId,
        filter: &InvoiceFilter,
    ) -> Result<Vec<InvoiceRecord>, BillingStoreError> {
        // A customer or subscription filter is written as a plain equality, never as
        // `($2 IS NULL OR customer_id = $2)`, which keeps SQLite from using the index and made
        // every billing run's per-customer read scan the whole workspace (`EXPLAIN QUERY PLAN`).
        let customer = equal_or_absent("customer_id", 2, filter.customer_id.is_some());
        let subscription = if filter.subscription_id.is_some() {
            "(invoice_key = $3 OR subscriptions LIKE '%\"' || $3 || '\"%')".to_owned()
        } else {
            "$3 IS NULL".to_owned()
        };
        let sql = format!(
            "SELECT {INVOICE_SELECT_COLUMNS} FROM invoices WHERE workspace_id = $1 \
             AND {customer} AND {subscription} \
             AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR issued_at >= $5) \
             AND ($6 IS NULL OR issued_at < $6) AND ($7 IS NULL OR id < $7) \
             AND ($9 IS NULL OR lines LIKE $9) \
             ORDER BY id DESC LIMIT $8"
        );
        let limit = filter.limit.clamp(1, INVOICE_PAGE_LIMIT_MAX + 1);
        let project_pattern = filter
            .project
            .as_ref()
            .map(|project| format!("%\"project\":{}%", Value::String(project.clone())));
        let rows: Vec<InvoiceRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(filter.customer_id.as_deref())
            .bind(filter.subscription_id.as_deref())
            .bind(filter.status.map(InvoiceStatus::as_str))
            .bind(filter.issued_from.map(to_micros))
            .bind(filter.issued_to.map(to_micros))
            .bind(filter.before_id.as_deref())
            .bind(limit)
            .bind(project_pattern.as_deref())
            .fetch_all(pool)
            .await)?;
        let invoices: Vec<InvoiceRecord> = rows
            .into_iter()
            .map(InvoiceRow::into_record)
            .collect::<Result<_, _>>()?;
        // LIKE narrows by the serialized lines (its `_` and `%` wildcards may over-match); the
        // exact check is on the parsed lines.
        Ok(invoices
            .into_iter()
            .filter(|invoice| match &filter.project {
                None => true,
                Some(project) => invoice.lines.as_array().is_some_and(|lines| {
                    lines
                        .iter()
                        .any(|line| line["project"].as_str() == Some(project))
                }),
            })
            .collect())
    }

    /// The customer's finalized invoices (every status but draft), newest first, from position
    /// `offset` (0: the newest), at most `limit`, and how many there are in all: what a history
    /// numbered in pages needs (EMCP's).
    ///
    /// # Errors
    /// When a query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn finalized_invoices_at(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<InvoiceRecord>, i64), BillingStoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM invoices \
                             WHERE workspace_id = $1 AND customer_id = $2 AND status <> 'draft'";
        let sql = format!(
            "SELECT {INVOICE_SELECT_COLUMNS} FROM invoices \
             WHERE workspace_id = $1 AND customer_id = $2 AND status <> 'draft' \
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        );
        let limit = limit.clamp(0, INVOICE_PAGE_LIMIT_MAX);
        let (rows, (count,)): (Vec<InvoiceRow>, (i64,)) = with_pool!(self, pool => {
            let rows = sqlx::query_as(&sql)
                .bind(workspace.as_str())
                .bind(customer_id)
                .bind(limit)
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?;
            let count = sqlx::query_as(COUNT)
                .bind(workspace.as_str())
                .bind(customer_id)
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((rows, count))
        })?;
        let invoices = rows
            .into_iter()
            .map(InvoiceRow::into_record)
            .collect::<Result<_, _>>()?;
        Ok((invoices, count))
    }

    /// The periods of the customer's own invoices (scope customer: its billed resources' and
    /// its consolidated subscriptions') that are finalized and not void, by period start, then
    /// issue: a platform's list of a customer's monthly bills (Akkeris's). Reads no lines.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn customer_invoice_periods(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<Vec<InvoicePeriod>, BillingStoreError> {
        const SQL: &str = "SELECT id, period_start, period_end, issued_at FROM invoices \
                           WHERE workspace_id = $1 AND customer_id = $2 AND scope = 'customer' \
                           AND status IN ('open', 'paid') \
                           ORDER BY period_start, issued_at, id";
        let rows: Vec<(String, i64, i64, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(customer_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|(id, period_start, period_end, issued_at)| {
                Ok(InvoicePeriod {
                    id: id.into(),
                    period_start: from_micros(period_start)?,
                    period_end: from_micros(period_end)?,
                    issued_at: from_micros(issued_at)?,
                })
            })
            .collect()
    }

    /// The customer's own invoice (scope customer), finalized and not void, whose period starts
    /// at or after `from` and before `to`: the one issued last when several do (a consolidated
    /// subscription's start beside the period's close), or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
    pub async fn customer_invoice_starting(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<InvoiceRecord>, BillingStoreError> {
        let sql = format!(
            "SELECT {INVOICE_SELECT_COLUMNS} FROM invoices \
             WHERE workspace_id = $1 AND customer_id = $2 AND scope = 'customer' \
             AND status IN ('open', 'paid') AND period_start >= $3 AND period_start < $4 \
             ORDER BY issued_at DESC, id DESC LIMIT 1"
        );
        let row: Option<InvoiceRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(customer_id)
            .bind(to_micros(from))
            .bind(to_micros(to))
            .fetch_optional(pool)
            .await)?;
        row.map(InvoiceRow::into_record).transpose()
    }

    /// Moves an invoice from one of the statuses `from` to `to`; returns the invoice as it is
    /// after the call.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`] when there is no such invoice,
    /// [`BillingStoreError::Immutable`] when its status is not one of `from`.
    #[tracing::instrument(skip_all, fields(invoice_id = %id))]
    pub async fn set_invoice_status(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        from: &[InvoiceStatus],
        to: InvoiceStatus,
        at: Timestamp,
    ) -> Result<InvoiceRecord, BillingStoreError> {
        assert!(
            to != InvoiceStatus::Open,
            "invoices are opened by finalize_invoice"
        );
        let Some(invoice) = self.invoice(workspace, id).await? else {
            return Err(BillingStoreError::NotFound);
        };
        if !from.contains(&invoice.status) {
            return Err(BillingStoreError::Immutable);
        }
        const SQL: &str = "UPDATE invoices SET status = $3, updated_at = $5 \
                           WHERE workspace_id = $1 AND id = $2 AND status = $4";
        let affected = with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(id)
            .bind(to.as_str())
            .bind(invoice.status.as_str())
            .bind(to_micros(at))
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))?;
        if affected == 0 {
            // Another request changed it between the read and the update.
            return Err(BillingStoreError::Immutable);
        }
        Ok(InvoiceRecord {
            status: to,
            updated_at: at,
            ..invoice
        })
    }

    /// Appends a payment state to an invoice's history; `Paid` also marks an open invoice paid.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`], or [`BillingStoreError::Immutable`] when the invoice is
    /// a draft or void.
    #[tracing::instrument(skip_all, fields(invoice_id = %invoice_id))]
    pub async fn add_payment_state(
        &self,
        workspace: &WorkspaceId,
        invoice_id: &str,
        state: &str,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<i64, BillingStoreError> {
        const LAST_STATE: &str = "SELECT state FROM payment_state_history \
                                  WHERE workspace_id = $1 AND invoice_id = $2 \
                                  ORDER BY sequence DESC LIMIT 1";
        const LOCK: &str =
            "UPDATE invoices SET status = CASE WHEN $3 = 'Paid' AND status = 'open' \
                            THEN 'paid' ELSE status END, updated_at = $4 \
                            WHERE workspace_id = $1 AND id = $2 RETURNING status";
        with_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let status: Option<(String,)> = sqlx::query_as(LOCK)
                .bind(workspace.as_str())
                .bind(invoice_id)
                .bind(state)
                .bind(to_micros(at))
                .fetch_optional(&mut *transaction)
                .await?;
            let Some((status,)) = status else {
                return Err(BillingStoreError::NotFound);
            };
            if matches!(status.parse()?, InvoiceStatus::Draft | InvoiceStatus::Void) {
                return Err(BillingStoreError::Immutable);
            }
            // Under the invoice's row lock, taken above: two writers see each other's states.
            let last: Option<(String,)> = sqlx::query_as(LAST_STATE)
                .bind(workspace.as_str())
                .bind(invoice_id)
                .fetch_optional(&mut *transaction)
                .await?;
            if let Some((last,)) = last {
                if !payment_may_follow(&last, state) {
                    return Err(BillingStoreError::Transition {
                        from: last,
                        to: state.to_owned(),
                    });
                }
            }
            let sequence = append_payment_state!(
                transaction, workspace, invoice_id, state, message, at
            );
            transaction.commit().await?;
            Ok(sequence)
        })
    }

    /// The payment-state history of an invoice, oldest first.
    ///
    /// # Errors
    /// When the query fails or a row is corrupt.
    #[tracing::instrument(skip_all, fields(invoice_id = %invoice_id))]
    pub async fn payment_states(
        &self,
        workspace: &WorkspaceId,
        invoice_id: &str,
    ) -> Result<Vec<PaymentStateRecord>, BillingStoreError> {
        const SQL: &str = "SELECT sequence, state, message, at FROM payment_state_history \
                           WHERE workspace_id = $1 AND invoice_id = $2 ORDER BY sequence";
        let rows: Vec<(i64, String, Option<String>, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(invoice_id)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|(sequence, state, message, at)| {
                Ok(PaymentStateRecord {
                    sequence,
                    state,
                    message,
                    at: from_micros(at)?,
                })
            })
            .collect()
    }
}

/// `column = $n` when the filter is given, else `$n IS NULL` (always true for the bound `None`),
/// so the parameter numbering stays the same and an index on `column` can be used.
pub(crate) fn equal_or_absent(column: &str, parameter: u8, given: bool) -> String {
    if given {
        format!("{column} = ${parameter}")
    } else {
        format!("${parameter} IS NULL")
    }
}

/// Whether an invoice's payment may go from state `from` to state `to` (Palette's four
/// states): a pending payment may start, succeed or fail; one in progress may succeed or fail;
/// a failed one may be tried again or be settled by hand; a paid one is final (refunds come with
/// payment providers). A state never follows itself: `Paid` twice is one payment.
pub fn payment_may_follow(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        (
            "PaymentPending",
            "PaymentInProgress" | "Paid" | "PaymentFailed"
        ) | ("PaymentInProgress", "Paid" | "PaymentFailed")
            | ("PaymentFailed", "PaymentInProgress" | "Paid")
    )
}

#[cfg(test)]
mod payment_tests {
    use super::payment_may_follow;

    #[test]
    fn payment_states_follow_each_other_only_forward() {
        let states = [
            "PaymentPending",
            "PaymentInProgress",
            "Paid",
            "PaymentFailed",
        ];
        let allowed: Vec<(&str, &str)> = states
            .iter()
            .flat_map(|from| states.iter().map(move |to| (*from, *to)))
            .filter(|(from, to)| payment_may_follow(from, to))
            .collect();
        assert_eq!(
            allowed,
            [
                ("PaymentPending", "PaymentInProgress"),
                ("PaymentPending", "Paid"),
                ("PaymentPending", "PaymentFailed"),
                ("PaymentInProgress", "Paid"),
                ("PaymentInProgress", "PaymentFailed"),
                ("PaymentFailed", "PaymentInProgress"),
                ("PaymentFailed", "Paid"),
            ]
        );
    }
}
