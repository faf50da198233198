//! The bodies of `POST /api/v1/billing-runs`, as the handler parses and writes them and as
//! `/api/v1/openapi.json` documents them.

use billow_billing::RunReport;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire::Instant;

/// `POST /api/v1/billing-runs`: `{}` runs the whole workspace, `{"customer_id": …}` one
/// customer.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBillingRun {
    /// Only this customer of the workspace (`cus_…`); absent: every customer with a
    /// subscription. An unknown id runs nothing.
    #[serde(default)]
    #[schema(example = "cus_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub customer_id: Option<String>,
}

/// A billing run that has finished.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BillingRun)]
pub(crate) struct BillingRunBody {
    #[schema(example = "run_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// The instant it billed up to.
    pub now: Instant,
    pub report: RunReportBody,
}

/// What a billing run did, in sum over its customers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunReport)]
pub(crate) struct RunReportBody {
    /// Customers computed.
    pub customers: u64,
    /// Customers another run held a lease on.
    pub skipped: u64,
    /// Customers with nothing due and nothing new since they were last computed: left alone.
    pub unchanged: u64,
    /// Customers computed from their state after their last finalized invoice; among
    /// `customers`.
    pub from_checkpoint: u64,
    /// Customers whose run failed (logged; the next run retries them).
    pub failed: u64,
    /// Draft invoices written.
    pub drafted: u64,
    /// Invoices finalized (numbered).
    pub finalized: u64,
    /// Late-usage adjustments recorded for finalized invoices.
    pub adjustments: u64,
    /// Credit notes written for negative late usage of subscriptions with no further invoice.
    pub credit_notes: u64,
    /// The first numbers given, in order (at most 100; `finalized` counts them all).
    pub numbers: Vec<i64>,
}

impl From<RunReport> for RunReportBody {
    fn from(report: RunReport) -> Self {
        let RunReport {
            customers,
            skipped,
            unchanged,
            from_checkpoint,
            failed,
            drafted,
            finalized,
            adjustments,
            credit_notes,
            numbers,
        } = report;
        Self {
            customers,
            skipped,
            unchanged,
            from_checkpoint,
            failed,
            drafted,
            finalized,
            adjustments,
            credit_notes,
            numbers,
        }
    }
}
