//! Credit grants, discounts and tax rates as the API shows them: the stored record's id,
//! customer and creation instant beside the core's spec, each member written out so that the
//! document describes exactly what is sent.

use billow_core::credit::{CreditGrant, GrantType};
use billow_core::scenario::{DiscountDuration, DiscountSpec};
use billow_core::schema::DecimalText;
use billow_store::catalog::TaxRateRecord;
use billow_store::subscriptions::CustomerSpecRecord;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire::Instant;

/// Credits granted to a customer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreditGrant)]
pub(crate) struct GrantBody {
    #[schema(example = "grant_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    pub created_at: Instant,
    /// Why the credits were given.
    #[serde(rename = "type")]
    pub grant_type: GrantType,
    /// The meter whose units are granted; absent for money in the customer's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// How much was granted: major units of the customer's currency, or meter units.
    #[schema(value_type = DecimalText)]
    pub amount: Decimal,
    /// When it starts to cover usage.
    pub start: Instant,
    /// When it stops covering usage; absent when never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Instant>,
    /// Among grants expiring together, lower numbers burn first.
    pub priority: u32,
}

impl From<CustomerSpecRecord<CreditGrant>> for GrantBody {
    fn from(record: CustomerSpecRecord<CreditGrant>) -> Self {
        let grant = record.spec;
        Self {
            id: record.id,
            customer_id: record.customer_id.into(),
            created_at: record.created_at.into(),
            grant_type: grant.grant_type,
            meter: grant.meter,
            amount: grant.amount,
            start: grant.start.into(),
            expiry: grant.expiry.map(Instant::from),
            priority: grant.priority,
        }
    }
}

/// A customer's discount: a percentage or an amount off, for some invoices.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Discount)]
pub(crate) struct DiscountShown {
    #[schema(example = "disc_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    pub created_at: Instant,
    /// The code of the coupon it was redeemed from; `null` when it was made with inline terms.
    #[schema(example = "LAUNCH10")]
    pub coupon: Option<String>,
    /// A percentage off each charge line; absent for an amount off.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DecimalText>)]
    pub percent_off: Option<Decimal>,
    /// An amount off each invoice, in major units of the customer's currency; absent for a
    /// percentage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DecimalText>)]
    pub amount_off: Option<Decimal>,
    pub duration: DiscountDuration,
    /// When it starts to apply.
    pub start: Instant,
}

impl DiscountShown {
    /// `record`, redeemed from the coupon `coupon` (`None` for inline terms).
    pub(crate) fn new(record: CustomerSpecRecord<DiscountSpec>, coupon: Option<String>) -> Self {
        let discount = record.spec;
        Self {
            id: record.id,
            customer_id: record.customer_id.into(),
            created_at: record.created_at.into(),
            coupon,
            percent_off: discount.percent_off,
            amount_off: discount.amount_off,
            duration: discount.duration,
            start: discount.start.into(),
        }
    }
}

/// An exclusive tax rate of the workspace.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaxRateBody {
    #[schema(example = "tax_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// Its name on the invoice (VAT, GST, sales tax).
    #[schema(example = "VAT")]
    pub name: String,
    /// The rate in percent.
    #[schema(value_type = DecimalText, example = "19")]
    pub rate_percent: Decimal,
    pub created_at: Instant,
}

impl From<TaxRateRecord> for TaxRateBody {
    fn from(record: TaxRateRecord) -> Self {
        Self {
            id: record.id.into(),
            name: record.spec.name,
            rate_percent: record.spec.rate_percent,
            created_at: record.created_at.into(),
        }
    }
}

/// `PUT /api/v1/customers/{id}/tax-rate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerTaxRate {
    /// A tax rate of the workspace (`tax_…`).
    #[schema(example = "tax_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub tax_rate_id: String,
}

/// The tax rate a customer is charged from its next invoice on.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CustomerTaxRateBody {
    pub customer_id: String,
    pub tax_rate_id: String,
}
