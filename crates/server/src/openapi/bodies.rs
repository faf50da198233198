//! The request bodies of the billing routes that are the core's spec types plus the server's own
//! fields (`customer_id`, a plan's id or key, a default instant), documented for the OpenAPI
//! document only.
//!
//! Their handlers take the body as JSON and check it through the core
//! (`crate::validation::validate_document`), so that a 422 names the field the core
//! objects to; these types describe that shape and are never built. Bodies that *are* core types
//! (a meter, a plan, a tax rate) are documented by the core's own `ToSchema` derive (the
//! `utoipa` feature of billow-core), so they cannot drift from what is parsed.

use billow_core::credit::GrantType;
use billow_core::scenario::{Alignment, ChangePolicy, DiscountDuration};
use billow_core::schema::DecimalText;
use jiff::Timestamp;
use utoipa::ToSchema;

/// `POST /api/v1/credit-grants`: a credit grant (`billow_core::credit::CreditGrant`) for one
/// customer. Its id, made by the server, is its key.
#[derive(ToSchema)]
pub struct CreditGrantBody {
    /// The customer the credits are granted to.
    pub customer_id: String,
    /// Why the credits were given: free and SLA credits are reported apart from prepaid ones.
    #[schema(rename = "type")]
    pub grant_type: GrantType,
    /// Absent: money in the customer's currency; a meter's key: units of that meter (for
    /// example CPU-core-hours).
    pub meter: Option<String>,
    /// How much is granted, positive: major units of the customer's currency for money (at most
    /// its minor-unit precision), meter units otherwise.
    pub amount: DecimalText,
    /// When the grant starts to cover usage (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// When it stops covering usage (RFC 3339), after `start`; absent: never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expiry: Option<Timestamp>,
    /// Among grants expiring together, lower numbers burn first. Default 0.
    #[schema(minimum = 0)]
    pub priority: Option<u32>,
}

/// `POST /api/v1/discounts`: a discount of one customer, either with inline terms
/// (`percent_off` or `amount_off`, `duration`, `start`) or redeemed from a workspace coupon
/// (`coupon`, and optionally `start`), not both.
#[derive(ToSchema)]
pub struct DiscountBody {
    /// The customer who gets the discount.
    pub customer_id: String,
    /// The code of a workspace coupon to redeem: the discount takes the coupon's terms, and the
    /// coupon's redemption count goes up by one. Leave out `percent_off`, `amount_off` and
    /// `duration` when it is given.
    #[schema(example = "LAUNCH10")]
    pub coupon: Option<String>,
    /// A percentage off each charge line, above 0 and at most 100. Exactly one of `percent_off`
    /// and `amount_off` without `coupon`.
    pub percent_off: Option<DecimalText>,
    /// An amount off each invoice in major units of the customer's currency, positive.
    pub amount_off: Option<DecimalText>,
    /// How long the discount lasts: `"once"` (the first invoice), `{"repeating": {"invoices":
    /// N}}` (the first N invoices) or `"forever"`. Required without `coupon`.
    pub duration: Option<DiscountDuration>,
    /// When it starts to apply (RFC 3339). Required without `coupon`; with a coupon, the
    /// redemption's instant when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start: Option<Timestamp>,
}

/// `POST /api/v1/subscriptions`: a customer on a plan's current version.
#[derive(ToSchema)]
pub struct CreateSubscriptionBody {
    /// The customer.
    pub customer_id: String,
    /// The plan's id or key; the subscription pins its current version.
    #[schema(example = "team")]
    pub plan: String,
    /// Seats, instances: multiplies the plan's recurring prices. Default 1, not negative.
    pub quantity: Option<DecimalText>,
    /// When it starts (RFC 3339). Default: now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start: Option<Timestamp>,
    /// How its periods are aligned. Default `cycle_day`.
    pub alignment: Option<Alignment>,
}

/// `POST /api/v1/subscriptions/{id}/changes` and `…/preview-change`: exactly one of
/// `quantity`, `plan` and `cancel`, at `at`.
#[derive(ToSchema)]
pub struct SubscriptionChangeBody {
    /// When the change is made (RFC 3339). Default: now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<Timestamp>,
    /// A new quantity, effective at once and prorated.
    pub quantity: Option<DecimalText>,
    /// A new plan (its id or key; its current version is used).
    pub plan: Option<String>,
    /// When a plan change takes effect. Default `immediate`.
    pub policy: Option<ChangePolicy>,
    /// Cancels the subscription: `immediate` (with prorated credits for what was billed in
    /// advance) or `end_of_term`.
    pub cancel: Option<ChangePolicy>,
}
