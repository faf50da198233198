//! What an invoice bills, as a native response shows it: its period and its lines.
//!
//! The core's invoice types (`billow_core::invoice`) are what billing runs store and scenario
//! files print; their instants are written as jiff writes them. A native response writes every
//! instant as a [`crate::wire::Instant`], so the parts of an invoice that hold one (the period,
//! a line, its billed resource, its proration) are shown through these types. The parts without
//! an instant (amounts, totals, rating steps, credit figures) are the core's own types, whose
//! schemas the core derives.

use std::collections::BTreeMap;

use billow_core::credit::{CreditUsageReport, GrantConsumption};
use billow_core::invoice::{
    Allocation, Invoice, InvoiceLine, InvoiceTotals, LineKind, LineResource, LineTrace,
    ProrationTrace, TaxRate,
};
use billow_core::money::{Money, RoundingMode};
use billow_core::period::{Period, ProrationFactor};
use billow_core::schema::DecimalText;
use billow_core::RatingStep;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::wire::Instant;

/// A half-open interval of time: from `start` up to, not including, `end`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PeriodBody {
    /// The first instant inside the period.
    pub start: Instant,
    /// The first instant after it.
    pub end: Instant,
}

impl From<Period> for PeriodBody {
    fn from(period: Period) -> Self {
        Self {
            start: period.start.into(),
            end: period.end.into(),
        }
    }
}

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
    pub period: PeriodBody,
    /// The lines, numbered from 1.
    pub lines: Vec<LineBody>,
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
            lines: invoice.lines.into_iter().map(LineBody::from).collect(),
            totals: invoice.totals,
            credit_usage: invoice.credit_usage,
        }
    }
}

/// One invoice line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LineBody {
    /// 1-based position on the invoice.
    pub number: u32,
    pub kind: LineKind,
    /// What the customer reads.
    pub description: String,
    /// The key of the price that produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// The meter, for usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// The project (cost center).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The subscription it bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The billed resource it bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<LineResourceBody>,
    /// The product it counts under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The service period.
    pub period: PeriodBody,
    #[schema(value_type = DecimalText)]
    pub quantity: Decimal,
    /// The rounded amount.
    pub amount: Money,
    /// How the amount came about.
    pub trace: LineTraceBody,
}

impl From<InvoiceLine> for LineBody {
    fn from(line: InvoiceLine) -> Self {
        Self {
            number: line.number,
            kind: line.kind,
            description: line.description,
            price: line.price,
            meter: line.meter,
            project: line.project,
            subscription: line.subscription,
            resource: line
                .resource
                .map(|resource| LineResourceBody::from(*resource)),
            product: line.product,
            period: line.period.into(),
            quantity: line.quantity,
            amount: line.amount,
            trace: line.trace.into(),
        }
    }
}

/// The billed resource a line bills.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LineResourceBody {
    /// The resource's id (`res_…`).
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

impl From<LineResource> for LineResourceBody {
    fn from(resource: LineResource) -> Self {
        Self {
            id: resource.id,
            kind: resource.kind,
            name: resource.name,
            created_at: resource.created_at.into(),
            deleted_at: resource.deleted_at.map(Instant::from),
            dimensions: resource.dimensions,
        }
    }
}

/// How a line's amount came about.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LineTraceBody {
    /// The rating steps (tiers hit, packages, fees).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RatingStep>,
    /// The proration, when the line was prorated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proration: Option<ProrationBody>,
    /// Grants consumed: meter-unit grants before rating, or a money grant for a credit line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantConsumption>,
    /// The quantity before meter-unit grants were consumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DecimalText>)]
    pub quantity_before_grants: Option<Decimal>,
    /// For discount, credit and tax lines: what each charge line gave or took.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<Allocation>,
    /// The amount before rounding to the minor unit.
    #[schema(value_type = DecimalText)]
    pub unrounded_amount: Decimal,
    /// Why the line exists, when its kind does not say (trial, unused time, true-up, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a line billing a late-usage adjustment of a finalized invoice: its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<String>,
    /// For a tax line: the rate it applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_rate: Option<TaxRate>,
}

impl From<LineTrace> for LineTraceBody {
    fn from(trace: LineTrace) -> Self {
        Self {
            steps: trace.steps,
            proration: trace
                .proration
                .map(|proration| ProrationBody::from(*proration)),
            grants: trace.grants,
            quantity_before_grants: trace.quantity_before_grants,
            allocations: trace.allocations,
            unrounded_amount: trace.unrounded_amount,
            note: trace.note,
            adjustment: trace.adjustment,
            tax_rate: trace.tax_rate,
        }
    }
}

/// The proration of a line: the exact factor, the interval billed and the period around it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProrationBody {
    pub factor: ProrationFactor,
    /// The factor as a decimal, for reading.
    #[schema(value_type = DecimalText)]
    pub factor_decimal: Decimal,
    /// The interval billed.
    pub interval: PeriodBody,
    /// The billing period that contains it.
    pub containing: PeriodBody,
}

impl From<ProrationTrace> for ProrationBody {
    fn from(proration: ProrationTrace) -> Self {
        Self {
            factor: proration.factor,
            factor_decimal: proration.factor_decimal,
            interval: proration.interval.into(),
            containing: proration.containing.into(),
        }
    }
}
