//! Customers and projects as stored, and their mapping to and from [`Customer`] and [`Project`].

use billow_core::scenario::Invoicing;
use billow_core::Currency;
use serde::Serialize;

use super::{Customer, LoadCustomerError, Project};

/// A customer as stored: JSON as text.
#[derive(sqlx::FromRow)]
pub(super) struct CustomerRow {
    pub(super) id: String,
    pub(super) external_id: String,
    pub(super) name: String,
    pub(super) email: Option<String>,
    /// JSON text.
    pub(super) address: Option<String>,
    /// JSON text.
    pub(super) tax_ids: String,
    pub(super) currency: String,
    pub(super) time_zone: String,
    pub(super) billing_cycle_day: i64,
    pub(super) parent_id: Option<String>,
    pub(super) invoicing: String,
    pub(super) net_days: Option<i64>,
    pub(super) owner: Option<String>,
}

impl CustomerRow {
    pub(super) fn from_customer(customer: &Customer) -> Self {
        Self {
            id: customer.id.clone().into(),
            external_id: customer.external_id.clone(),
            name: customer.name.clone(),
            email: customer.email.clone(),
            address: customer.address.as_ref().map(to_json),
            tax_ids: to_json(&customer.tax_ids),
            currency: customer.currency.code().to_owned(),
            time_zone: customer.time_zone.clone(),
            billing_cycle_day: i64::from(customer.billing_cycle_day),
            parent_id: customer.parent_id.clone().map(Into::into),
            invoicing: invoicing_text(customer.invoicing).to_owned(),
            net_days: customer.net_days.map(i64::from),
            owner: customer.owner.clone(),
        }
    }

    /// Checks a loaded row: the database is not trusted to hold only what this code wrote.
    pub(super) fn into_customer(self) -> Result<Customer, LoadCustomerError> {
        let corrupt = |column| LoadCustomerError::CorruptRow {
            id: self.id.clone(),
            column,
        };
        let address = match &self.address {
            Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt("address"))?),
            None => None,
        };
        let tax_ids = serde_json::from_str(&self.tax_ids).map_err(|_| corrupt("tax_ids"))?;
        let currency = Currency::from_code(&self.currency).map_err(|_| corrupt("currency"))?;
        let billing_cycle_day = i8::try_from(self.billing_cycle_day)
            .ok()
            .filter(|day| (1..=31).contains(day))
            .ok_or_else(|| corrupt("billing_cycle_day"))?;
        let invoicing = match self.invoicing.as_str() {
            "per_subscription" => Invoicing::PerSubscription,
            "consolidated" => Invoicing::Consolidated,
            _ => return Err(corrupt("invoicing")),
        };
        let net_days = self
            .net_days
            .map(|days| u16::try_from(days).map_err(|_| corrupt("net_days")))
            .transpose()?;
        Ok(Customer {
            invoicing,
            net_days,
            id: self.id.into(),
            external_id: self.external_id,
            name: self.name,
            email: self.email,
            address,
            tax_ids,
            currency,
            time_zone: self.time_zone,
            billing_cycle_day,
            parent_id: self.parent_id.map(Into::into),
            owner: self.owner,
        })
    }
}

/// The `customers.invoicing` column's text.
fn invoicing_text(invoicing: Invoicing) -> &'static str {
    match invoicing {
        Invoicing::PerSubscription => "per_subscription",
        Invoicing::Consolidated => "consolidated",
    }
}

/// A JSON column's text; these plain types always serialize.
fn to_json<T: Serialize>(value: &T) -> String {
    match serde_json::to_string(value) {
        Ok(json) => json,
        Err(error) => unreachable!("addresses and tax ids always serialize: {error}"),
    }
}

/// The columns [`CustomerRow`] reads.
pub(super) const CUSTOMER_COLUMNS: &str = "id, external_id, name, email, address, tax_ids, \
                                           currency, time_zone, billing_cycle_day, parent_id, \
                                           invoicing, net_days, owner";

/// Binds a [`CustomerRow`] as `$2` (id) to `$14` (owner), after the workspace id `$1`.
macro_rules! bind_customer {
    ($query:expr, $workspace_id:expr, $row:expr) => {
        $query
            .bind($workspace_id.as_str())
            .bind(&$row.id)
            .bind(&$row.external_id)
            .bind(&$row.name)
            .bind(&$row.email)
            .bind(&$row.address)
            .bind(&$row.tax_ids)
            .bind(&$row.currency)
            .bind(&$row.time_zone)
            .bind($row.billing_cycle_day)
            .bind(&$row.parent_id)
            .bind(&$row.invoicing)
            .bind($row.net_days)
            .bind(&$row.owner)
    };
}
pub(super) use bind_customer;

/// A project as stored.
#[derive(sqlx::FromRow)]
pub(super) struct ProjectRow {
    id: String,
    customer_id: String,
    parent_id: Option<String>,
    name: String,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Self {
            id: row.id.into(),
            customer_id: row.customer_id.into(),
            parent_id: row.parent_id.map(Into::into),
            name: row.name,
        }
    }
}
