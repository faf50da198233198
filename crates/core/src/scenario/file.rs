//! The scenario file: one JSON document describing a [`World`] offline, with a name, a
//! description and, for golden tests, the invoices expected of it (docs/scenario-format.md).

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::{
    AdjustmentSpec, CustomerSpec, DiscountSpec, PlanSpec, ResourceSpec, ScenarioError,
    SubscriptionSpec, World,
};
use crate::aggregation::{Meter, UsageEvent};
use crate::credit::CreditGrant;
use crate::currency::Currency;
use crate::money::RoundingMode;

/// A scenario document: a [`World`] with a name, a description and, for golden tests, the
/// expected invoices. Read with [`Scenario::from_json`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ScenarioFile")]
pub struct Scenario {
    /// The format version; must be [`SCENARIO_FORMAT_VERSION`].
    pub billow_scenario: u32,
    /// A short name.
    pub name: String,
    /// What the scenario shows.
    pub description: Option<String>,
    /// The world it describes.
    pub world: World,
    /// The invoices a golden test expects.
    pub expect: Option<Expectations>,
}

impl From<ScenarioFile> for Scenario {
    fn from(file: ScenarioFile) -> Self {
        Self {
            billow_scenario: file.billow_scenario,
            name: file.name,
            description: file.description,
            world: World {
                currency: file.currency,
                rounding: file.rounding,
                now: file.now,
                customer: file.customer,
                meters: file.meters,
                plans: file.plans,
                subscriptions: file.subscriptions,
                credit_grants: file.credit_grants,
                discounts: file.discounts,
                events: file.events,
                resources: file.resources,
                adjustments: file.adjustments,
            },
            expect: file.expect,
        }
    }
}

/// A scenario document as written: the file format, flat (what [`Scenario`] is read from).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// The format version; must be [`SCENARIO_FORMAT_VERSION`].
    billow_scenario: u32,
    /// A short name.
    name: String,
    /// What the scenario shows.
    #[serde(default)]
    description: Option<String>,
    /// The invoice currency.
    currency: Currency,
    /// How lines are rounded.
    #[serde(default)]
    rounding: RoundingMode,
    /// The present: invoices due at or before it are issued.
    now: Timestamp,
    /// The customer.
    customer: CustomerSpec,
    /// Meters.
    #[serde(default)]
    meters: Vec<Meter>,
    /// Plans.
    plans: Vec<PlanSpec>,
    /// Subscriptions, each with its dated changes.
    #[serde(default)]
    subscriptions: Vec<SubscriptionSpec>,
    /// Credit grants.
    #[serde(default)]
    credit_grants: Vec<CreditGrant>,
    /// Customer discounts.
    #[serde(default)]
    discounts: Vec<DiscountSpec>,
    /// Usage events.
    #[serde(default)]
    events: Vec<UsageEvent>,
    /// Billed resources: priced things that exist from one instant to another (an add-on, a
    /// dyno, a VM, a cluster), each its own line, prorated by its lifetime in the period.
    #[serde(default)]
    resources: Vec<ResourceSpec>,
    /// Amounts to bill on a subscription's next invoice as they are: late-usage corrections of
    /// invoices already finalized.
    #[serde(default)]
    adjustments: Vec<AdjustmentSpec>,
    /// What billow must produce, for `billow preview --check`.
    #[serde(default)]
    expect: Option<Expectations>,
}

/// What `billow preview --check` compares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Issued invoices, in order; their count must match.
    #[serde(default)]
    pub invoices: Vec<ExpectedInvoice>,
    /// Upcoming invoices (the open periods closed at "now"), when given.
    #[serde(default)]
    pub upcoming: Option<Vec<ExpectedInvoice>>,
}

/// An expected invoice; only the fields given are compared.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedInvoice {
    /// The invoice's key: the subscription it bills, or the customer's id for a consolidated
    /// invoice.
    #[serde(default)]
    pub subscription: Option<String>,
    /// When it is issued.
    #[serde(default)]
    pub issued_at: Option<Timestamp>,
    /// The total, in major units (`"35.71"`).
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub total: Option<Decimal>,
    /// Subtotal, discount, credit and tax, in major units.
    #[serde(default)]
    pub totals: BTreeMap<String, Value>,
    /// The lines, in order; their count must match when given.
    #[serde(default)]
    pub lines: Option<Vec<ExpectedLine>>,
    /// Per-meter credit figures.
    #[serde(default)]
    pub credit_usage: Vec<ExpectedCreditUsage>,
}

/// An expected line; only the fields given are compared.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedLine {
    /// The line kind (`usage`, `recurring`, ...).
    #[serde(default)]
    pub kind: Option<String>,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// The project.
    #[serde(default)]
    pub project: Option<String>,
    /// The subscription the line bills.
    #[serde(default)]
    pub subscription: Option<String>,
    /// The billed resource the line bills.
    #[serde(default)]
    pub resource: Option<String>,
    /// The quantity.
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub quantity: Option<Decimal>,
    /// The amount in major units.
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    pub amount: Option<Decimal>,
}

/// Expected credit figures of one meter; only the fields given are compared (an unknown figure
/// name is reported by the check).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpectedCreditUsage {
    /// The meter.
    pub meter: String,
    /// The figures by name (`allocated`, `used`, `free`, `prepaid`, `billable`, `breached`,
    /// `overage_limit_exceeded`).
    #[serde(flatten)]
    pub figures: BTreeMap<String, Value>,
}

impl Scenario {
    /// Parses and validates a scenario document.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the field (as a path such as `plans[0].prices[1].pricing`) and
    /// what is wrong with it.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let scenario: Scenario =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                ScenarioError::Malformed {
                    path: error.path().to_string(),
                    message: error.inner().to_string(),
                }
            })?;
        scenario.validate()?;
        Ok(scenario)
    }
}
