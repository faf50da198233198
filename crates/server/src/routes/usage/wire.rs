//! The body of `GET /api/v1/customers/{id}/usage`, as the handler writes it and as
//! `/api/v1/openapi.json` documents it.

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::wire::{Instant, Page};

/// A customer's usage in `[from, to)`, one item per meter.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CustomerUsage {
    pub customer_id: String,
    /// The start of the period asked for.
    pub from: Instant,
    /// Its end (excluded).
    pub to: Instant,
    #[serde(flatten)]
    pub page: Page<MeterUsage>,
}

/// One meter's usage in the period: in total, per project and per local day of the customer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MeterUsage {
    /// The meter's key.
    pub meter: String,
    /// The meter's aggregation over the whole period (what a billing run rates).
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub quantity: Decimal,
    /// The same per project; `project` is `null` for usage of no project.
    pub projects: Vec<ProjectUsage>,
    /// The same per local day of the customer's time zone, in order; the first and last days
    /// are cut at `from` and `to`.
    pub series: Vec<DailyUsage>,
}

/// A meter's usage of one project.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectUsage {
    pub project: Option<String>,
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub quantity: Decimal,
}

/// A meter's usage of one day.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DailyUsage {
    pub start: Instant,
    pub end: Instant,
    #[schema(value_type = billow_core::schema::DecimalText)]
    pub quantity: Decimal,
}
