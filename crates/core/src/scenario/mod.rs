//! The engine and its input: a [`World`] (one customer with its catalog, subscriptions, billed
//! resources, credits, usage and the instant "now") and the invoices billow issues in it up to
//! "now" ([`preview`]). A billing run builds a world per customer from stored records; a
//! scenario file ([`Scenario`]) is one JSON serialization of a world, offline. See
//! `docs/scenario-format.md` for the format.
//!
//! ```
//! let text = r#"{
//!   "billow_scenario": 1, "name": "one seat", "currency": "USD",
//!   "now": "2024-02-01T00:00:00Z",
//!   "customer": {"id": "c1"},
//!   "plans": [{"key": "basic", "cadence": "monthly", "prices": [
//!     {"key": "seat", "pricing": {"model": "per_unit", "unit_amount": "10"}}]}],
//!   "subscriptions": [{"id": "s1", "plan": "basic", "start": "2024-01-01T00:00:00Z"}]
//! }"#;
//! let scenario = billow_core::scenario::Scenario::from_json(text).unwrap();
//! let preview = billow_core::scenario::preview(&scenario.world).unwrap();
//! assert_eq!(preview.invoices.len(), 2);
//! assert_eq!(preview.invoices[0].invoice.totals.total.amount_minor(), 1000);
//! ```

mod check;
mod checkpoint;
mod engine;
mod file;
mod rating_state;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use check::{check_expectations, Mismatch};
pub use checkpoint::{Checkpoint, RatingSnapshot};
pub use engine::{
    preview, preview_from, InvoiceReason, InvoiceScope, IssuedInvoice, Preview, RunScenarioError,
};
pub use file::{Expectations, ExpectedCreditUsage, ExpectedInvoice, ExpectedLine, Scenario};
pub use validate::ScenarioError;

use crate::aggregation::{Meter, UsageEvent};
use crate::credit::CreditGrant;
use crate::currency::Currency;
use crate::invoice::TaxRate;
use crate::money::RoundingMode;
use crate::period::{Cadence, ProrationUnit};
use crate::price::PriceModel;

/// The version of the scenario format this build reads.
pub const SCENARIO_FORMAT_VERSION: u32 = 1;

/// The world the engine bills: one customer with its catalog, subscriptions, billed
/// resources, credits, discounts, usage and pending adjustments, at the instant `now`. A billing
/// run builds one per customer from stored records; a scenario file is one serialization of it
/// ([`Scenario`]).
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// The invoice currency.
    pub currency: Currency,
    /// How lines are rounded.
    pub rounding: RoundingMode,
    /// The present: invoices due at or before it are issued.
    pub now: Timestamp,
    /// The customer.
    pub customer: CustomerSpec,
    /// Meters.
    pub meters: Vec<Meter>,
    /// Plans.
    pub plans: Vec<PlanSpec>,
    /// Subscriptions, each with its dated changes.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// Credit grants.
    pub credit_grants: Vec<CreditGrant>,
    /// Customer discounts.
    pub discounts: Vec<DiscountSpec>,
    /// Usage events.
    pub events: Vec<UsageEvent>,
    /// Billed resources: priced things that exist from one instant to another (an add-on, a
    /// dyno, a VM, a cluster), each its own line, prorated by its lifetime in the period.
    pub resources: Vec<ResourceSpec>,
    /// Amounts to bill on a subscription's next invoice as they are: late-usage corrections of
    /// invoices already finalized.
    pub adjustments: Vec<AdjustmentSpec>,
}

/// The customer of a scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSpec {
    /// The customer's id; events whose subject is this id belong to it.
    pub id: String,
    /// The IANA time zone that period boundaries are computed in.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// The day of the month invoices are issued on, 1–31, clamped to shorter months.
    #[serde(default = "first")]
    pub billing_cycle_day: i8,
    /// The exclusive tax rate charged to this customer.
    #[serde(default)]
    pub tax: Option<TaxRate>,
    /// One invoice per billing period for all the customer's subscriptions and resources, or
    /// one per subscription. Default in a scenario file: per subscription.
    #[serde(default)]
    pub invoicing: Invoicing,
}

/// How a customer's subscriptions share invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Invoicing {
    /// Each subscription has invoices of its own (Stripe Billing's behaviour). Billed resources
    /// still share one invoice per period of the customer's cycle.
    #[default]
    PerSubscription,
    /// One invoice per customer per billing period: every subscription and resource whose
    /// period ends at the same instant shares it (Lago's rule). Changes that are not invoiced at
    /// once put their prorations and final usage on the period's invoice.
    Consolidated,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn first() -> i8 {
    1
}

/// A plan: a bundle of prices with a cadence and phases.
///
/// Every price is in one currency: its own `currency`, else the plan's `currency`, else (in a
/// scenario file, which bills one currency) the scenario's. A plan priced in several currencies
/// lists one price per key and currency: prices that share a key are the same charge in
/// different currencies, and every key is priced in each of the plan's currencies. A customer
/// is billed only with the prices in its own currency (Stripe's model: a price has one
/// currency, a product has several prices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// The plan's key.
    pub key: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How often it bills.
    pub cadence: Cadence,
    /// The currency (ISO 4217) of its prices that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<String>, example = "EUR"))]
    pub currency: Option<Currency>,
    /// Its prices; several may share a key, each in another currency.
    pub prices: Vec<PriceSpec>,
    /// Phases in order; after the last one the plan is evergreen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseSpec>,
    /// The least the plan bills per period, trued up at period end, in the currency of its
    /// prices: a plan priced in several currencies sets its minimums on its prices instead.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub minimum_amount: Option<Decimal>,
}

impl PlanSpec {
    /// The currency of `price`, one of this plan's prices: its own, else the plan's, else
    /// `default_currency` (a scenario's currency).
    pub fn price_currency(&self, price: &PriceSpec, default_currency: Currency) -> Currency {
        price.currency.or(self.currency).unwrap_or(default_currency)
    }

    /// The prices in `currency`, with their indexes in [`PlanSpec::prices`]; `default_currency`
    /// is that of the prices that name none, as in [`PlanSpec::price_currency`].
    pub fn prices_in(
        &self,
        currency: Currency,
        default_currency: Currency,
    ) -> impl Iterator<Item = (usize, &PriceSpec)> + '_ {
        self.prices
            .iter()
            .enumerate()
            .filter(move |(_, price)| self.price_currency(price, default_currency) == currency)
    }

    /// The currencies it has prices in, in code order.
    pub fn currencies(&self, default_currency: Currency) -> Vec<Currency> {
        let currencies: BTreeSet<Currency> = self
            .prices
            .iter()
            .map(|price| self.price_currency(price, default_currency))
            .collect();
        currencies.into_iter().collect()
    }

    /// Checks that it can bill a customer in `currency`.
    ///
    /// # Errors
    /// [`PlanNotPricedError`] when it has no price in `currency`.
    pub fn check_priced_in(
        &self,
        currency: Currency,
        default_currency: Currency,
    ) -> Result<(), PlanNotPricedError> {
        let priced_in = self.currencies(default_currency);
        if priced_in.contains(&currency) {
            return Ok(());
        }
        Err(PlanNotPricedError {
            currency,
            priced_in,
        })
    }
}

/// A plan has no price in the currency of the customer it would bill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the plan has no price in {currency}, the customer's currency (its prices are in {})",
    currency_list(priced_in)
)]
pub struct PlanNotPricedError {
    /// The customer's currency.
    pub currency: Currency,
    /// The currencies the plan has prices in.
    pub priced_in: Vec<Currency>,
}

/// `EUR`, `EUR and JPY`, `CHF, EUR and JPY`.
pub(crate) fn currency_list(currencies: &[Currency]) -> String {
    match currencies {
        [] => "no currency".to_owned(),
        [only] => only.code().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(|c| c.code()).collect();
            format!("{} and {last}", rest.join(", "))
        }
    }
}

/// When a price is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BillingTiming {
    /// At the start of the period it pays for.
    InAdvance,
    /// At the end of the period it pays for.
    InArrears,
}

/// A price of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    /// The price's key: unique in the plan among the prices of its currency.
    pub key: String,
    /// The line description (the key when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The meter of a usage price; absent for fixed and recurring prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// The currency (ISO 4217) of its amounts; the plan's when absent. Its amounts that are
    /// charged as they are (flat amounts, fees, minimums) are whole minor units of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<String>, example = "JPY"))]
    pub currency: Option<Currency>,
    /// The pricing model.
    pub pricing: PriceModel,
    /// In advance or in arrears. Default: in advance, and always in arrears for usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<BillingTiming>,
    /// Whether partial periods are prorated (recurring and fixed prices). Default true.
    #[serde(default = "yes")]
    pub prorate: bool,
    /// By the second (default) or by the local day.
    #[serde(default)]
    pub proration_unit: ProrationUnit,
    /// The least this price bills per period, trued up at period end, in its currency.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub minimum_amount: Option<Decimal>,
    /// The product its lines count under in an invoice's totals by product; the plan's key
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// For usage prices with meter-unit credits: the allowed overage in percent of allocated.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub overage_limit_percent: Option<Decimal>,
}

fn yes() -> bool {
    true
}

/// What a phase does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// Nothing is charged.
    Trial,
    /// A percentage off every charge of the plan.
    Discount,
    /// The plan's prices as they are.
    Evergreen,
}

/// A phase of a plan, counted in billing periods from the subscription's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// What the phase does.
    pub kind: PhaseKind,
    /// How many periods it lasts; absent for the last, open-ended phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods: Option<u32>,
    /// For a discount phase: the percentage off.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub percent_off: Option<Decimal>,
}

/// How a subscription's periods are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    /// On the customer's billing-cycle day (the default).
    #[default]
    CycleDay,
    /// On the subscription's own start date.
    Anniversary,
    /// On calendar boundaries: the 1st of the month, quarter or year; Mondays for weeks.
    Calendar,
}

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangePolicy {
    /// At once, with prorated credits for what was billed in advance.
    Immediate,
    /// At the end of the current period.
    EndOfTerm,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// The subscription's id; events whose subject is this id belong to it alone.
    pub id: String,
    /// The plan key.
    pub plan: String,
    /// When it starts.
    pub start: Timestamp,
    /// The quantity (seats, instances). Default 1.
    #[serde(default = "one", deserialize_with = "crate::decimal::exact")]
    pub quantity: Decimal,
    /// How its periods are aligned.
    #[serde(default)]
    pub alignment: Alignment,
    /// The project (cost center) its lines count under, when usage does not name one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Dated changes, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ChangeSpec>,
}

fn one() -> Decimal {
    Decimal::ONE
}

/// A dated change of a subscription: exactly one of `quantity`, `plan` and `cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSpec {
    /// When it is made.
    pub at: Timestamp,
    /// A new quantity, effective at once and prorated.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub quantity: Option<Decimal>,
    /// A new plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Cancel the subscription with this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<ChangePolicy>,
    /// The policy of a plan change (default immediate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ChangePolicy>,
    /// For a plan change or a cancellation of a consolidated customer's subscription: bill its
    /// prorations and final usage on an invoice of their own, at once, instead of on the
    /// period's invoice. Quantity changes always bill on the period's invoice.
    #[serde(default)]
    pub invoice_now: bool,
}

/// A billed resource: a priced thing a platform runs for the customer from `created_at` to
/// `deleted_at` (an add-on or a dyno of an app, a VM, a cluster).
///
/// Its plan's prices bill it per period of the customer's billing cycle, prorated by the time
/// it was present (by the second or by the day, as each price says), always on the customer's
/// invoice of that period: a resource never makes an invoice of its own. Usage prices of its
/// plan rate the events whose subject is the resource's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// Its id, unique among the customer's resources and subscriptions.
    pub id: String,
    /// The plan key that prices it.
    pub plan: String,
    /// The quantity (instances, units) at creation. Default 1.
    #[serde(default = "one", deserialize_with = "crate::decimal::exact")]
    pub quantity: Decimal,
    /// When it came into existence.
    pub created_at: Timestamp,
    /// When it was removed; absent while it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// Later quantities, in time order, each effective at its instant and prorated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantity_changes: Vec<QuantityChange>,
    /// The project (cost center) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Its type, as the platform groups lines (`addon`, `dyno`, `vm`, `cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A name to show (an app's name, a cluster's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Dimensions a platform groups by (`app`, `space`, `organization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
}

/// A dated quantity of a billed resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantityChange {
    /// When it takes effect.
    pub at: Timestamp,
    /// The new quantity.
    #[serde(deserialize_with = "crate::decimal::exact")]
    pub quantity: Decimal,
}

/// How long a discount lasts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DiscountDuration {
    /// The first invoice issued at or after its start.
    Once,
    /// The first N invoices issued at or after its start.
    Repeating {
        /// How many invoices.
        invoices: u32,
    },
    /// Every invoice issued at or after its start.
    Forever,
}

/// A customer discount: exactly one of `percent_off` and `amount_off`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscountSpec {
    /// Its key.
    pub key: String,
    /// A percentage off each charge line.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub percent_off: Option<Decimal>,
    /// An amount off each invoice, in the scenario currency.
    #[serde(
        default,
        deserialize_with = "crate::decimal::exact_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount_off: Option<Decimal>,
    /// How long it lasts.
    pub duration: DiscountDuration,
    /// When it starts to apply.
    pub start: Timestamp,
}

/// An amount billed as it is on a subscription's next invoice: a line of kind `adjustment` of
/// the subscription's first invoice issued at or after `at`, or, when the subscription has none
/// (it ended), of a standalone invoice issued at `at` (reason `late_usage`).
///
/// The amount is net: the line takes no discount and no credit, and the invoice's tax applies to
/// it like to any other charge line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentSpec {
    /// Its key; the line's trace names it (`trace.adjustment`).
    pub key: String,
    /// The invoice key whose next invoice bills it: a subscription's id, or the customer's id
    /// for a consolidated customer (see [`IssuedInvoice::key`]).
    pub subscription: String,
    /// The amount in major units, exact in the scenario currency's minor unit; may be negative.
    #[serde(deserialize_with = "crate::decimal::exact")]
    pub amount: Decimal,
    /// The line's description.
    pub description: String,
    /// The service period the line names (the corrected invoice's).
    pub period: crate::period::Period,
    /// The earliest instant of an invoice that may bill it.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests;
