//! The checks a scenario must pass after parsing, each naming the field it rejects.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use rust_decimal::Decimal;

use super::{currency_list, PhaseKind, PlanSpec, Scenario, World, SCENARIO_FORMAT_VERSION};
use crate::aggregation::{Aggregation, MAX_GROUP_BY_DIMENSIONS};
use crate::currency::Currency;
use crate::money::Money;

/// Why a scenario was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The document is not valid JSON or does not have the format's shape.
    #[error("{path}: {message}")]
    Malformed {
        /// Where, as a path (`plans[0].prices[1].pricing`), `.` for the document.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A field has a value the format does not allow.
    #[error("{path}: {reason}")]
    Invalid {
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// The earliest instant a world may name: the Unix epoch. Bounded so that the periods a world
/// has to rate are bounded in number (a daily subscription started in year 1 would have some
/// 740,000 to rate before "now", and as many invoices to hold).
const EARLIEST: Timestamp = Timestamp::UNIX_EPOCH;

fn not_before_epoch(path: String, at: Timestamp) -> Result<(), ScenarioError> {
    if at < EARLIEST {
        return Err(invalid(
            path,
            format!("must not be before {EARLIEST}, found {at}"),
        ));
    }
    Ok(())
}

fn positive_or_zero(path: String, value: Decimal) -> Result<(), ScenarioError> {
    if value < Decimal::ZERO {
        return Err(invalid(
            path,
            format!("must not be negative, found {value}"),
        ));
    }
    Ok(())
}

/// An amount charged as it is must be a whole number of `currency`'s minor units: 9.99 is not
/// an amount of yen.
fn whole_minor_units(
    path: String,
    amount: Decimal,
    currency: Currency,
) -> Result<(), ScenarioError> {
    if Money::from_exact_decimal(amount, currency).is_err() {
        return Err(invalid(
            path,
            format!(
                "{amount} {currency} has digits below the currency's minor unit ({currency} has {} decimals)",
                currency.exponent()
            ),
        ));
    }
    Ok(())
}

fn unique<'a>(path: &str, keys: impl Iterator<Item = &'a str>) -> Result<(), ScenarioError> {
    let mut seen = BTreeSet::new();
    for (index, key) in keys.enumerate() {
        if key.is_empty() {
            return Err(invalid(
                format!("{path}[{index}]"),
                "the key must not be empty",
            ));
        }
        if !seen.insert(key) {
            return Err(invalid(
                format!("{path}[{index}]"),
                format!("`{key}` is defined twice"),
            ));
        }
    }
    Ok(())
}

impl Scenario {
    /// Checks what [`Scenario::from_json`] checks after parsing: the format version and the
    /// world ([`World::validate`]).
    ///
    /// # Errors
    /// [`ScenarioError::Invalid`] naming the field and what is wrong with it.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.billow_scenario != SCENARIO_FORMAT_VERSION {
            return Err(invalid(
                "billow_scenario",
                format!("version {} is not supported; this build reads version {SCENARIO_FORMAT_VERSION}", self.billow_scenario),
            ));
        }
        self.world.validate()
    }
}

impl World {
    /// Checks what [`Scenario::from_json`] checks of a world after parsing, for a world built
    /// in code (a billing run assembles one per customer from stored records). Paths name
    /// fields as a scenario document does (`plans[0].prices[1].pricing`).
    ///
    /// # Errors
    /// [`ScenarioError::Invalid`] naming the field and what is wrong with it.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.validate_instants()?;
        self.validate_customer()?;
        self.validate_meters()?;
        self.validate_plans()?;
        self.validate_subscriptions()?;
        self.validate_resources()?;
        self.validate_grants_and_discounts()?;
        self.validate_adjustments()?;
        let mut seen = BTreeSet::new();
        for (index, event) in self.events.iter().enumerate() {
            if event.id.is_empty() {
                return Err(invalid(format!("events[{index}].id"), "must not be empty"));
            }
            if !seen.insert((&event.source, &event.id)) {
                return Err(invalid(
                    format!("events[{index}].id"),
                    format!(
                        "(source, id) = ({:?}, {:?}) repeats an earlier event",
                        event.source, event.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `now` and the first instant of each subscription, resource, grant and discount are at or
    /// after [`EARLIEST`]; every later instant is checked to follow its first.
    fn validate_instants(&self) -> Result<(), ScenarioError> {
        not_before_epoch("now".into(), self.now)?;
        for (index, subscription) in self.subscriptions.iter().enumerate() {
            not_before_epoch(format!("subscriptions[{index}].start"), subscription.start)?;
        }
        for (index, resource) in self.resources.iter().enumerate() {
            not_before_epoch(
                format!("resources[{index}].created_at"),
                resource.created_at,
            )?;
        }
        for (index, grant) in self.credit_grants.iter().enumerate() {
            not_before_epoch(format!("credit_grants[{index}].start"), grant.start)?;
        }
        for (index, discount) in self.discounts.iter().enumerate() {
            not_before_epoch(format!("discounts[{index}].start"), discount.start)?;
        }
        Ok(())
    }

    /// The customer's time zone.
    ///
    /// # Panics
    /// Never after validation.
    pub fn time_zone(&self) -> TimeZone {
        TimeZone::get(&self.customer.time_zone).expect("validated time zone")
    }

    fn validate_customer(&self) -> Result<(), ScenarioError> {
        if TimeZone::get(&self.customer.time_zone).is_err() {
            return Err(invalid(
                "customer.time_zone",
                format!("`{}` is not an IANA time zone", self.customer.time_zone),
            ));
        }
        if !(1..=31).contains(&self.customer.billing_cycle_day) {
            return Err(invalid(
                "customer.billing_cycle_day",
                "must be between 1 and 31",
            ));
        }
        if let Some(tax) = &self.customer.tax {
            positive_or_zero("customer.tax.rate_percent".into(), tax.rate_percent)?;
        }
        Ok(())
    }

    fn validate_meters(&self) -> Result<(), ScenarioError> {
        unique("meters", self.meters.iter().map(|m| m.key.as_str()))?;
        for (index, meter) in self.meters.iter().enumerate() {
            if meter.aggregation != Aggregation::Count && meter.value_property.is_none() {
                return Err(invalid(
                    format!("meters[{index}].value_property"),
                    format!("{:?} needs a value property", meter.aggregation),
                ));
            }
            if meter.group_by.len() > MAX_GROUP_BY_DIMENSIONS {
                return Err(invalid(
                    format!("meters[{index}].group_by"),
                    format!("at most {MAX_GROUP_BY_DIMENSIONS} dimensions"),
                ));
            }
        }
        Ok(())
    }

    fn validate_plans(&self) -> Result<(), ScenarioError> {
        unique("plans", self.plans.iter().map(|p| p.key.as_str()))?;
        for (plan_index, plan) in self.plans.iter().enumerate() {
            let path = format!("plans[{plan_index}]");
            if plan.prices.is_empty() {
                return Err(invalid(
                    format!("{path}.prices"),
                    "a plan needs at least one price",
                ));
            }
            self.validate_plan_currencies(&path, plan)?;
            if let Some(minimum) = plan.minimum_amount {
                positive_or_zero(format!("{path}.minimum_amount"), minimum)?;
            }
            for (index, price) in plan.prices.iter().enumerate() {
                let price_path = format!("{path}.prices[{index}]");
                price
                    .pricing
                    .validate()
                    .map_err(|e| invalid(format!("{price_path}.pricing"), e.to_string()))?;
                let currency = plan.price_currency(price, self.currency);
                for (field, amount) in price.pricing.charged_amounts() {
                    whole_minor_units(format!("{price_path}.pricing.{field}"), amount, currency)?;
                }
                match &price.meter {
                    Some(meter) if !self.meters.iter().any(|m| &m.key == meter) => {
                        return Err(invalid(
                            format!("{price_path}.meter"),
                            format!("no meter `{meter}`"),
                        ));
                    }
                    Some(_) if price.billing == Some(super::BillingTiming::InAdvance) => {
                        return Err(invalid(
                            format!("{price_path}.billing"),
                            "usage is billed in arrears",
                        ));
                    }
                    None if price.pricing.is_percentage() => {
                        return Err(invalid(format!("{price_path}.meter"), "a percentage price needs a meter whose values are the transaction amounts"));
                    }
                    _ => {}
                }
                if let Some(minimum) = price.minimum_amount {
                    positive_or_zero(format!("{price_path}.minimum_amount"), minimum)?;
                    whole_minor_units(format!("{price_path}.minimum_amount"), minimum, currency)?;
                }
            }
            for (index, phase) in plan.phases.iter().enumerate() {
                let phase_path = format!("{path}.phases[{index}]");
                let last = index + 1 == plan.phases.len();
                match phase.periods {
                    None if !last => {
                        return Err(invalid(
                            format!("{phase_path}.periods"),
                            "only the last phase may be open-ended",
                        ))
                    }
                    Some(0) => {
                        return Err(invalid(
                            format!("{phase_path}.periods"),
                            "must be at least 1",
                        ))
                    }
                    _ => {}
                }
                match (phase.kind, phase.percent_off) {
                    (PhaseKind::Discount, Some(p))
                        if p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED => {}
                    (PhaseKind::Discount, _) => {
                        return Err(invalid(
                            format!("{phase_path}.percent_off"),
                            "a discount phase needs a percent_off above 0 and at most 100",
                        ))
                    }
                    (_, Some(_)) => {
                        return Err(invalid(
                            format!("{phase_path}.percent_off"),
                            "only discount phases take a percent_off",
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A price is named by its key and currency; every key is priced in each of the plan's
    /// currencies; a plan-wide minimum needs the plan to be in one currency.
    fn validate_plan_currencies(&self, path: &str, plan: &PlanSpec) -> Result<(), ScenarioError> {
        let currencies = plan.currencies(self.currency);
        let mut seen = BTreeSet::new();
        for (index, price) in plan.prices.iter().enumerate() {
            let price_path = format!("{path}.prices[{index}]");
            let currency = plan.price_currency(price, self.currency);
            if price.key.is_empty() {
                return Err(invalid(price_path, "the key must not be empty"));
            }
            if !seen.insert((price.key.as_str(), currency)) {
                return Err(invalid(
                    price_path,
                    format!("`{}` is defined twice in {currency}", price.key),
                ));
            }
        }
        for (index, price) in plan.prices.iter().enumerate() {
            if let Some(missing) = currencies
                .iter()
                .find(|currency| !seen.contains(&(price.key.as_str(), **currency)))
            {
                return Err(invalid(
                    format!("{path}.prices[{index}]"),
                    format!(
                        "`{}` has no price in {missing}: the plan has prices in {}, and each of its keys is priced in every one of them",
                        price.key,
                        currency_list(&currencies)
                    ),
                ));
            }
        }
        if let Some(minimum) = plan.minimum_amount {
            let [currency] = currencies.as_slice() else {
                return Err(invalid(
                    format!("{path}.minimum_amount"),
                    format!(
                        "a plan's minimum is in its one currency, and this plan has prices in {}: set a minimum_amount on its prices instead",
                        currency_list(&currencies)
                    ),
                ));
            };
            whole_minor_units(format!("{path}.minimum_amount"), minimum, *currency)?;
        }
        Ok(())
    }

    /// The plan `key` (known to exist) bills in the scenario's currency.
    fn priced_in_currency(&self, path: String, key: &str) -> Result<(), ScenarioError> {
        let plan = self
            .plans
            .iter()
            .find(|plan| plan.key == key)
            .expect("the plan's existence is checked first");
        plan.check_priced_in(self.currency, self.currency)
            .map_err(|error| invalid(path, error.to_string()))
    }

    fn validate_subscriptions(&self) -> Result<(), ScenarioError> {
        unique(
            "subscriptions",
            self.subscriptions.iter().map(|s| s.id.as_str()),
        )?;
        let plan_exists = |key: &str| self.plans.iter().any(|p| p.key == key);
        for (index, subscription) in self.subscriptions.iter().enumerate() {
            let path = format!("subscriptions[{index}]");
            if !plan_exists(&subscription.plan) {
                return Err(invalid(
                    format!("{path}.plan"),
                    format!("no plan `{}`", subscription.plan),
                ));
            }
            self.priced_in_currency(format!("{path}.plan"), &subscription.plan)?;
            positive_or_zero(format!("{path}.quantity"), subscription.quantity)?;
            let mut previous = subscription.start;
            let mut canceled = false;
            for (change_index, change) in subscription.changes.iter().enumerate() {
                let change_path = format!("{path}.changes[{change_index}]");
                if change.at < previous {
                    return Err(invalid(
                        format!("{change_path}.at"),
                        "changes must be in time order and not before the start",
                    ));
                }
                if canceled {
                    return Err(invalid(change_path, "no change may follow a cancellation"));
                }
                previous = change.at;
                let count = [
                    change.quantity.is_some(),
                    change.plan.is_some(),
                    change.cancel.is_some(),
                ]
                .iter()
                .filter(|x| **x)
                .count();
                if count != 1 {
                    return Err(invalid(
                        change_path,
                        "a change sets exactly one of `quantity`, `plan` and `cancel`",
                    ));
                }
                if change.policy.is_some() && change.plan.is_none() {
                    return Err(invalid(format!("{change_path}.policy"), "`policy` applies to plan changes; a cancellation's policy is the value of `cancel`"));
                }
                if change.invoice_now && change.quantity.is_some() {
                    return Err(invalid(
                        format!("{change_path}.invoice_now"),
                        "a quantity change always bills on the period's invoice; `invoice_now` applies to plan changes and cancellations",
                    ));
                }
                if let Some(quantity) = change.quantity {
                    positive_or_zero(format!("{change_path}.quantity"), quantity)?;
                }
                if let Some(plan) = &change.plan {
                    if !plan_exists(plan) {
                        return Err(invalid(
                            format!("{change_path}.plan"),
                            format!("no plan `{plan}`"),
                        ));
                    }
                    self.priced_in_currency(format!("{change_path}.plan"), plan)?;
                }
                canceled = change.cancel.is_some();
            }
        }
        Ok(())
    }

    fn validate_resources(&self) -> Result<(), ScenarioError> {
        unique("resources", self.resources.iter().map(|r| r.id.as_str()))?;
        for (index, resource) in self.resources.iter().enumerate() {
            let path = format!("resources[{index}]");
            if resource.id == self.customer.id
                || self.subscriptions.iter().any(|s| s.id == resource.id)
            {
                return Err(invalid(
                    format!("{path}.id"),
                    format!(
                        "`{}` is already the customer's or a subscription's id",
                        resource.id
                    ),
                ));
            }
            if !self.plans.iter().any(|p| p.key == resource.plan) {
                return Err(invalid(
                    format!("{path}.plan"),
                    format!("no plan `{}`", resource.plan),
                ));
            }
            self.priced_in_currency(format!("{path}.plan"), &resource.plan)?;
            positive_or_zero(format!("{path}.quantity"), resource.quantity)?;
            if let Some(deleted_at) = resource.deleted_at {
                if deleted_at < resource.created_at {
                    return Err(invalid(
                        format!("{path}.deleted_at"),
                        format!(
                            "{deleted_at} is before the resource was created ({})",
                            resource.created_at
                        ),
                    ));
                }
            }
            let mut previous = resource.created_at;
            for (change_index, change) in resource.quantity_changes.iter().enumerate() {
                let change_path = format!("{path}.quantity_changes[{change_index}]");
                if change.at < previous
                    || resource
                        .deleted_at
                        .is_some_and(|deleted| change.at > deleted)
                {
                    return Err(invalid(
                        format!("{change_path}.at"),
                        "quantity changes must be in time order, within the resource's lifetime",
                    ));
                }
                previous = change.at;
                positive_or_zero(format!("{change_path}.quantity"), change.quantity)?;
            }
        }
        Ok(())
    }

    fn validate_adjustments(&self) -> Result<(), ScenarioError> {
        unique(
            "adjustments",
            self.adjustments.iter().map(|a| a.key.as_str()),
        )?;
        for (index, adjustment) in self.adjustments.iter().enumerate() {
            let path = format!("adjustments[{index}]");
            if !self
                .subscriptions
                .iter()
                .any(|s| s.id == adjustment.subscription)
                && adjustment.subscription != self.customer.id
            {
                return Err(invalid(
                    format!("{path}.subscription"),
                    format!(
                        "no subscription `{}`, and not the customer's id",
                        adjustment.subscription
                    ),
                ));
            }
            Money::from_exact_decimal(adjustment.amount, self.currency)
                .map_err(|e| invalid(format!("{path}.amount"), e.to_string()))?;
            if adjustment.period.end < adjustment.period.start {
                return Err(invalid(
                    format!("{path}.period.end"),
                    "must not be before the start",
                ));
            }
        }
        Ok(())
    }

    fn validate_grants_and_discounts(&self) -> Result<(), ScenarioError> {
        unique(
            "credit_grants",
            self.credit_grants.iter().map(|g| g.key.as_str()),
        )?;
        for (index, grant) in self.credit_grants.iter().enumerate() {
            let path = format!("credit_grants[{index}]");
            if grant.amount <= Decimal::ZERO {
                return Err(invalid(format!("{path}.amount"), "must be positive"));
            }
            match &grant.meter {
                Some(meter) if !self.meters.iter().any(|m| &m.key == meter) => {
                    return Err(invalid(
                        format!("{path}.meter"),
                        format!("no meter `{meter}`"),
                    ));
                }
                None => {
                    Money::from_exact_decimal(grant.amount, self.currency)
                        .map_err(|e| invalid(format!("{path}.amount"), e.to_string()))?;
                }
                _ => {}
            }
            if grant.expiry.is_some_and(|expiry| expiry <= grant.start) {
                return Err(invalid(format!("{path}.expiry"), "must be after the start"));
            }
        }
        unique("discounts", self.discounts.iter().map(|d| d.key.as_str()))?;
        for (index, discount) in self.discounts.iter().enumerate() {
            let path = format!("discounts[{index}]");
            match (discount.percent_off, discount.amount_off) {
                (Some(p), None) if p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED => {}
                (Some(_), None) => {
                    return Err(invalid(
                        format!("{path}.percent_off"),
                        "must be above 0 and at most 100",
                    ))
                }
                (None, Some(amount)) if amount > Decimal::ZERO => {
                    Money::from_exact_decimal(amount, self.currency)
                        .map_err(|e| invalid(format!("{path}.amount_off"), e.to_string()))?;
                }
                (None, Some(_)) => {
                    return Err(invalid(format!("{path}.amount_off"), "must be positive"))
                }
                _ => {
                    return Err(invalid(
                        path,
                        "a discount sets exactly one of `percent_off` and `amount_off`",
                    ))
                }
            }
            if discount.duration == (super::DiscountDuration::Repeating { invoices: 0 }) {
                return Err(invalid(
                    format!("{path}.duration.repeating.invoices"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}
