//! The invoice document of native responses: the core's invoice lines, their traces and the
//! invoices the engine would issue, as a response writes them, every instant an [`Instant`].
//!
//! Each type mirrors one of `billow_core` and is built from it by destructuring it whole, so a
//! field the core adds does not compile here until the response shows it. Types without an
//! instant (totals, rating steps, credit figures, money) are the core's own, documented by its
//! `utoipa` feature.

use std::collections::BTreeMap;

use billow_core::credit::{CreditUsageReport, GrantConsumption};
use billow_core::invoice::{Allocation, InvoiceTotals, LineKind, TaxRate};
use billow_core::scenario::{InvoiceReason, InvoiceScope, IssuedInvoice};
use billow_core::{Currency, Money, ProrationFactor, RatingStep, RoundingMode};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use super::Instant;

/// A half-open span of time: from `start` (included) to `end` (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Period {
    /// The first instant inside the period.
    pub start: Instant,
    /// The first instant after it.
    pub end: Instant,
}

impl From<billow_core::Period> for Period {
    fn from(billow_core::Period { start, end }: billow_core::Period) -> Self {
        Self {
            start: start.into(),
            end: end.into(),
        }
    }
}

/// One line of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLine {
    /// Its position on the invoice, from 1; what a credit note's `line` names.
    pub number: u32,
    /// What the line is.
    pub kind: LineKind,
    /// What the customer reads.
    pub description: String,
    /// The price that produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// The meter, for usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// The project (cost center) the usage belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The subscription it bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The billed resource it bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<LineResource>,
    /// The product it counts under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The service period.
    pub period: Period,
    /// The quantity billed.
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub quantity: Decimal,
    /// The amount, rounded to the currency's minor unit.
    pub amount: Money,
    /// How the amount came about.
    pub trace: LineTrace,
}

impl From<billow_core::invoice::InvoiceLine> for InvoiceLine {
    fn from(line: billow_core::invoice::InvoiceLine) -> Self {
        let billow_core::invoice::InvoiceLine {
            number,
            kind,
            description,
            price,
            meter,
            project,
            subscription,
            resource,
            product,
            period,
            quantity,
            amount,
            trace,
        } = line;
        Self {
            number,
            kind,
            description,
            price,
            meter,
            project,
            subscription,
            resource: resource.map(|resource| (*resource).into()),
            product,
            period: period.into(),
            quantity,
            amount,
            trace: trace.into(),
        }
    }
}

/// How a line's amount came about.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineTrace {
    /// The rating steps (tiers hit, packages, fees).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RatingStep>,
    /// The proration, when the line was prorated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proration: Option<ProrationTrace>,
    /// Credit grants consumed: meter-unit grants before rating, or a money grant for a credit
    /// line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantConsumption>,
    /// The quantity before meter-unit grants were consumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<billow_core::schema::DecimalText>)]
    pub quantity_before_grants: Option<Decimal>,
    /// For discount, credit and tax lines: what each charge line gave or took.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<Allocation>,
    /// The amount before rounding to the minor unit.
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub unrounded_amount: Decimal,
    /// Why the line exists, when its kind does not say (trial, unused time, true-up, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a line billing late usage of a finalized invoice: the adjustment's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<String>,
    /// For a tax line: the rate it applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_rate: Option<TaxRate>,
}

impl From<billow_core::invoice::LineTrace> for LineTrace {
    fn from(trace: billow_core::invoice::LineTrace) -> Self {
        let billow_core::invoice::LineTrace {
            steps,
            proration,
            grants,
            quantity_before_grants,
            allocations,
            unrounded_amount,
            note,
            adjustment,
            tax_rate,
        } = trace;
        Self {
            steps,
            proration: proration.map(|proration| (*proration).into()),
            grants,
            quantity_before_grants,
            allocations,
            unrounded_amount,
            note,
            adjustment,
            tax_rate,
        }
    }
}

/// The proration of a line: the exact factor, the interval billed and the period around it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProrationTrace {
    /// The exact factor, a fraction.
    pub factor: ProrationFactor,
    /// The factor as a decimal, for reading.
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub factor_decimal: Decimal,
    /// The interval billed.
    pub interval: Period,
    /// The billing period that contains it.
    pub containing: Period,
}

impl From<billow_core::invoice::ProrationTrace> for ProrationTrace {
    fn from(trace: billow_core::invoice::ProrationTrace) -> Self {
        let billow_core::invoice::ProrationTrace {
            factor,
            factor_decimal,
            interval,
            containing,
        } = trace;
        Self {
            factor,
            factor_decimal,
            interval: interval.into(),
            containing: containing.into(),
        }
    }
}

/// The billed resource a line bills: which resource, its type and name, and when it existed.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineResource {
    /// The resource's id.
    pub id: String,
    /// Its type (`addon`, `dyno`, `vm`, `cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it came into existence.
    pub created_at: Instant,
    /// When it was removed, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Instant>,
    /// The dimensions a platform groups by (`app`, `space`, `organization`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
}

impl From<billow_core::invoice::LineResource> for LineResource {
    fn from(resource: billow_core::invoice::LineResource) -> Self {
        let billow_core::invoice::LineResource {
            id,
            kind,
            name,
            created_at,
            deleted_at,
            dimensions,
        } = resource;
        Self {
            id,
            kind,
            name,
            created_at: created_at.into(),
            deleted_at: deleted_at.map(Instant::from),
            dimensions,
        }
    }
}

/// An invoice the engine would issue, not stored: an upcoming invoice (the open period as if it
/// closed now) or one of a change's preview.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComputedInvoice {
    /// The subscription's id for a subscription's invoice, the customer's id for the
    /// customer's: with `issued_at`, what names the invoice a billing run would store.
    pub key: String,
    /// Whom it bills.
    pub scope: InvoiceScope,
    /// The subscriptions it has lines of, in order.
    pub subscriptions: Vec<String>,
    /// Why it would be issued.
    pub reason: InvoiceReason,
    /// The currency of every amount.
    pub currency: Currency,
    /// How its lines are rounded to the minor unit.
    pub rounding: RoundingMode,
    /// When it would be issued.
    pub issued_at: Instant,
    /// The billing period it closes.
    pub period: Period,
    /// Its lines.
    pub lines: Vec<InvoiceLine>,
    /// Its amounts by kind of line, and its total.
    pub totals: InvoiceTotals,
    /// Per-product credit figures (allocated, used, billable, breached).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credit_usage: Vec<CreditUsageReport>,
}

impl From<IssuedInvoice> for ComputedInvoice {
    fn from(issued: IssuedInvoice) -> Self {
        let IssuedInvoice {
            key,
            scope,
            subscriptions,
            reason,
            invoice,
        } = issued;
        let billow_core::invoice::Invoice {
            currency,
            rounding,
            issued_at,
            period,
            lines,
            totals,
            credit_usage,
        } = invoice;
        Self {
            key,
            scope,
            subscriptions,
            reason,
            currency,
            rounding,
            issued_at: issued_at.into(),
            period: period.into(),
            lines: lines.into_iter().map(InvoiceLine::from).collect(),
            totals,
            credit_usage,
        }
    }
}

/// Why a stored invoice document cannot be shown: it does not read as the core's.
#[derive(Debug, thiserror::Error)]
#[error("a stored invoice's {part} do not read as the core's: {source}")]
pub struct StoredDocumentError {
    part: &'static str,
    #[source]
    source: serde_json::Error,
}

/// The lines of a stored invoice (the core's `InvoiceLine`s as JSON), as a response shows them.
///
/// # Errors
///
/// When the stored JSON is not the core's lines.
pub fn stored_lines(lines: &serde_json::Value) -> Result<Vec<InvoiceLine>, StoredDocumentError> {
    read_stored("lines", lines).map(|lines: Vec<billow_core::invoice::InvoiceLine>| {
        lines.into_iter().map(InvoiceLine::from).collect()
    })
}

/// A part of a stored invoice (its totals, its credit usage) read as the core's type.
///
/// # Errors
///
/// When the stored JSON is not a `T`.
pub fn read_stored<T: serde::de::DeserializeOwned>(
    part: &'static str,
    json: &serde_json::Value,
) -> Result<T, StoredDocumentError> {
    T::deserialize(json).map_err(|source| StoredDocumentError { part, source })
}
