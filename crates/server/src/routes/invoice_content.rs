//! What a change preview's invoice shows: the engine's invoice, its instants and lines in the
//! native form ([`crate::wire::invoice`]). The parts without an instant (totals, credit
//! figures) are the core's own types, whose schemas the core derives.

use billow_core::credit::CreditUsageReport;
use billow_core::invoice::{Invoice, InvoiceTotals};
use billow_core::money::RoundingMode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::wire::invoice::{InvoiceLine, Period};
use crate::wire::Instant;

/// The currency, rounding, issue instant, period, lines, totals and credit figures of an
/// invoice: what the engine assembled.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvoiceContent {
    /// The currency of every amount (ISO 4217).
    #[schema(value_type = String, example = "EUR")]
    pub currency: billow_core::Currency,
    /// The rounding mode every line was rounded with.
    pub rounding: RoundingMode,
    /// When it was issued.
    pub issued_at: Instant,
    /// The billing period it closes.
    pub period: Period,
    /// The lines, numbered from 1.
    pub lines: Vec<InvoiceLine>,
    /// The sums of the lines.
    pub totals: InvoiceTotals,
    /// Per-product credit figures (allocated, used, billable, breached); absent when no credit
    /// applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credit_usage: Vec<CreditUsageReport>,
}

impl From<Invoice> for InvoiceContent {
    fn from(invoice: Invoice) -> Self {
        Self {
            currency: invoice.currency,
            rounding: invoice.rounding,
            issued_at: invoice.issued_at.into(),
            period: invoice.period.into(),
            lines: invoice.lines.into_iter().map(InvoiceLine::from).collect(),
            totals: invoice.totals,
            credit_usage: invoice.credit_usage,
        }
    }
}
