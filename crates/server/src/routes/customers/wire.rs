//! Customers and projects on the wire: request bodies parsed into store types with every invalid
//! field listed (422 `validation`), and the response bodies.

use billow_core::scenario::Invoicing;
use billow_core::Currency;
use billow_store::{Address, Customer, Project, TaxId};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::FieldError;

/// The longest external id, name, address part or project name, in characters.
const TEXT_LENGTH_MAX: usize = 255;
/// The longest email address (RFC 5321 §4.5.3.1.3 path limit less the angle brackets).
const EMAIL_LENGTH_MAX: usize = 254;
/// The most tax ids one customer has.
const TAX_IDS_MAX: usize = 10;
/// The longest tax id type (`eu_vat`, `us_ein`, …) and value.
const TAX_ID_TYPE_LENGTH_MAX: usize = 32;
const TAX_ID_VALUE_LENGTH_MAX: usize = 64;

/// A postal address; every part optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressBody {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case, e.g. `DE`.
    #[schema(example = "DE")]
    pub country: Option<String>,
}

/// A tax id.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxIdBody {
    /// Lowercase letters, digits and underscores, e.g. `eu_vat`.
    #[serde(rename = "type")]
    #[schema(example = "eu_vat")]
    pub kind: String,
    #[schema(example = "DE123456789")]
    pub value: String,
}

/// `POST /api/v1/customers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    /// The platform's own id for the account; unique within the workspace.
    #[schema(example = "team-42")]
    pub external_id: String,
    #[schema(example = "Team 42")]
    pub name: String,
    pub email: Option<String>,
    pub address: Option<AddressBody>,
    #[serde(default)]
    pub tax_ids: Vec<TaxIdBody>,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    pub currency: String,
    /// IANA time zone; `UTC` when absent.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: Option<String>,
    /// 1 to 31; 1 when absent.
    #[schema(minimum = 1, maximum = 31)]
    pub billing_cycle_day: Option<i64>,
    /// A customer of the same workspace that pays for this one.
    pub parent_id: Option<String>,
    /// `consolidated` (the default: one invoice per billing period for every subscription and
    /// billed resource) or `per_subscription` (each subscription has invoices of its own).
    pub invoicing: Option<Invoicing>,
    /// Payment terms: days from an invoice's finalization to its due date, 0 to 365; the
    /// workspace's when absent.
    #[schema(minimum = 0, maximum = 365)]
    pub net_days: Option<i64>,
    /// The platform's id of the user who owns the account (EMCP's team owner, Cloud Plans'
    /// organization owner), 1 to 255 characters.
    #[schema(example = "6548a41138406c14db33b606")]
    pub owner: Option<String>,
}

/// `PATCH /api/v1/customers/{id}`: the fields given replace the stored ones; `null` clears
/// `email`, `address` and `parent_id` and is refused for the others.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AddressBody>)]
    pub address: Option<Option<AddressBody>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<TaxIdBody>>)]
    pub tax_ids: Option<Option<Vec<TaxIdBody>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub currency: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 31)]
    pub billing_cycle_day: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    /// Changes only while the customer has no invoice (a 409 otherwise): invoices already
    /// issued keep the keys they were issued under.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Invoicing>)]
    pub invoicing: Option<Option<Invoicing>>,
    /// `null` takes the workspace's payment terms again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 365)]
    pub net_days: Option<Option<i64>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, by `default`).
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A customer as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerBody {
    #[schema(example = "cus_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub external_id: String,
    pub name: String,
    pub email: Option<String>,
    pub address: Option<AddressBody>,
    pub tax_ids: Vec<TaxIdBody>,
    #[schema(example = "EUR")]
    pub currency: String,
    pub time_zone: String,
    pub billing_cycle_day: i8,
    pub parent_id: Option<String>,
    pub invoicing: Invoicing,
    /// Its own payment terms; `null` when it takes the workspace's.
    pub net_days: Option<u16>,
    /// The platform's id of the user who owns the account; `null` when not given.
    pub owner: Option<String>,
}

impl From<Customer> for CustomerBody {
    fn from(customer: Customer) -> Self {
        Self {
            id: customer.id.into(),
            external_id: customer.external_id,
            name: customer.name,
            email: customer.email,
            address: customer.address.map(|address| AddressBody {
                line1: address.line1,
                line2: address.line2,
                city: address.city,
                state: address.state,
                postal_code: address.postal_code,
                country: address.country,
            }),
            tax_ids: customer
                .tax_ids
                .into_iter()
                .map(|tax_id| TaxIdBody {
                    kind: tax_id.kind,
                    value: tax_id.value,
                })
                .collect(),
            currency: customer.currency.code().to_owned(),
            time_zone: customer.time_zone,
            billing_cycle_day: customer.billing_cycle_day,
            parent_id: customer.parent_id.map(Into::into),
            invoicing: customer.invoicing,
            net_days: customer.net_days,
            owner: customer.owner,
        }
    }
}

/// `POST /api/v1/customers/{id}/projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    #[schema(example = "production")]
    pub name: String,
    /// A project of the same customer; a root project when absent.
    pub parent_id: Option<String>,
}

/// A project as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectBody {
    #[schema(example = "prj_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    pub parent_id: Option<String>,
    pub name: String,
}

impl From<Project> for ProjectBody {
    fn from(project: Project) -> Self {
        Self {
            id: project.id.into(),
            customer_id: project.customer_id.into(),
            parent_id: project.parent_id.map(Into::into),
            name: project.name,
        }
    }
}

/// Collects every invalid field of a body, so that a client sees all of them at once.
#[derive(Debug, Default)]
pub struct Checks {
    pub errors: Vec<FieldError>,
}

impl Checks {
    pub fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// The value of a PATCH field that may be absent but not `null`.
    pub fn not_null<T>(&mut self, field: &str, value: Option<Option<T>>) -> Option<T> {
        match value {
            Some(None) => {
                self.fail(field, "must not be null");
                None
            }
            Some(Some(value)) => Some(value),
            None => None,
        }
    }

    /// A required line of text: 1 to 255 characters, no control characters, no surrounding
    /// whitespace.
    pub fn text(&mut self, field: &str, value: &str) -> String {
        let length = value.chars().count();
        if length == 0 || length > TEXT_LENGTH_MAX {
            self.fail(
                field,
                format!("must have 1 to {TEXT_LENGTH_MAX} characters"),
            );
        } else if value.trim() != value {
            self.fail(field, "must not start or end with whitespace");
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
        value.to_owned()
    }

    pub fn email(&mut self, field: &str, value: &str) -> String {
        let well_formed = value.len() <= EMAIL_LENGTH_MAX
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !well_formed {
            self.fail(
                field,
                "must be an email address such as billing@example.com",
            );
        }
        value.to_owned()
    }

    pub fn currency(&mut self, field: &str, value: &str) -> Option<Currency> {
        let currency = (value.len() == 3)
            .then(|| Currency::from_code(value).ok())
            .flatten();
        if currency.is_none() {
            self.fail(field, "must be an ISO 4217 currency code such as EUR");
        }
        currency
    }

    pub fn time_zone(&mut self, field: &str, value: &str) -> String {
        if jiff::tz::TimeZone::get(value).is_err() {
            self.fail(field, "must be an IANA time zone such as Europe/Berlin");
        }
        value.to_owned()
    }

    /// Payment terms in days: 0 to 365.
    pub fn net_days(&mut self, field: &str, value: i64) -> Option<u16> {
        match u16::try_from(value) {
            Ok(days @ 0..=365) => Some(days),
            _ => {
                self.fail(field, "must be between 0 and 365 days");
                None
            }
        }
    }

    pub fn billing_cycle_day(&mut self, field: &str, value: i64) -> i8 {
        match i8::try_from(value) {
            Ok(day @ 1..=31) => day,
            _ => {
                self.fail(field, "must be between 1 and 31");
                1
            }
        }
    }

    pub fn address(&mut self, field: &str, body: AddressBody) -> Address {
        let mut part = |name: &str, value: Option<String>| {
            value.map(|value| self.text(&format!("{field}.{name}"), &value))
        };
        let address = Address {
            line1: part("line1", body.line1),
            line2: part("line2", body.line2),
            city: part("city", body.city),
            state: part("state", body.state),
            postal_code: part("postal_code", body.postal_code),
            country: body.country,
        };
        if let Some(country) = &address.country {
            if country.len() != 2 || !country.bytes().all(|byte| byte.is_ascii_uppercase()) {
                self.fail(
                    format!("{field}.country"),
                    "must be an ISO 3166-1 alpha-2 code such as DE",
                );
            }
        }
        address
    }

    pub fn tax_ids(&mut self, field: &str, bodies: Vec<TaxIdBody>) -> Vec<TaxId> {
        if bodies.len() > TAX_IDS_MAX {
            self.fail(field, format!("must have at most {TAX_IDS_MAX} items"));
        }
        bodies
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let kind_ok = (1..=TAX_ID_TYPE_LENGTH_MAX).contains(&body.kind.len())
                    && body.kind.bytes().all(|byte| {
                        byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'
                    });
                if !kind_ok {
                    self.fail(
                        format!("{field}[{index}].type"),
                        format!(
                            "must be 1 to {TAX_ID_TYPE_LENGTH_MAX} lowercase letters, digits or \
                             underscores, such as eu_vat"
                        ),
                    );
                }
                let value_length = body.value.chars().count();
                if value_length == 0
                    || value_length > TAX_ID_VALUE_LENGTH_MAX
                    || body.value.trim() != body.value
                    || body.value.chars().any(char::is_control)
                {
                    self.fail(
                        format!("{field}[{index}].value"),
                        format!("must have 1 to {TAX_ID_VALUE_LENGTH_MAX} printable characters"),
                    );
                }
                TaxId {
                    kind: body.kind,
                    value: body.value,
                }
            })
            .collect()
    }
}
