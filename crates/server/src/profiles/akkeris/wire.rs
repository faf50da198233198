//! Akkeris's invoice shapes (seed 002; `docs/profiles/akkeris.md`): a list of `$ref`s, one per
//! monthly invoice, and a monthly invoice with its items and Akkeris's totals, mapped from an
//! invoice's lines and the core's sums of them.

use billow_core::invoice::{InvoiceLine, SelectionTotals};
use billow_core::period::{local_days_touched, CalendarError};
use billow_core::{Currency, Money, MoneyError, Period};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Number;

use crate::profiles::shared::javascript_iso as iso;

/// The resource types Akkeris sums apart: `addons_total`, `platform_total` (dynos),
/// `database_total`.
const ADDON: &str = "addon";
const DYNO: &str = "dyno";
const DATABASE: &str = "database";

/// Hours in a day, for `weighted_dyno_hours`.
const HOURS_PER_DAY: i64 = 24;

/// One entry of a list: `{"$ref": "/account/invoices/2016-07-01"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AkkerisInvoiceReference)]
pub(crate) struct Reference {
    #[serde(rename = "$ref")]
    pub reference: String,
}

/// `GET /account/invoices/{invoice_id}` (and the organization's and the space's). Amounts are
/// exact decimals written as JSON numbers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AkkerisInvoice)]
pub(crate) struct Invoice {
    #[schema(value_type = f64)]
    pub addons_total: Number,
    #[schema(value_type = f64)]
    pub database_total: Number,
    #[schema(value_type = f64)]
    pub charges_total: Number,
    pub created_at: String,
    #[schema(value_type = f64)]
    pub credits_total: Number,
    #[schema(value_type = f64)]
    pub dyno_units: Number,
    pub id: String,
    pub number: String,
    #[schema(value_type = String, example = "Pending")]
    pub payment_status: &'static str,
    pub period_end: String,
    pub period_start: String,
    #[schema(value_type = f64)]
    pub platform_total: Number,
    pub state: u8,
    #[schema(value_type = f64)]
    pub total: Number,
    pub updated_at: String,
    #[schema(value_type = f64)]
    pub weighted_dyno_hours: Number,
    pub items: Vec<Item>,
}

/// One item of an invoice: one of its lines.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AkkerisInvoiceItem)]
pub(crate) struct Item {
    pub organization: Option<String>,
    pub app: App,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = f64)]
    pub quantity: Number,
    #[schema(value_type = Option<f64>)]
    pub price_per_unit: Option<Number>,
    #[schema(value_type = f64)]
    pub billed_price: Number,
    pub created_at: String,
    pub deleted_at: Option<String>,
}

/// The app an item belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AkkerisApp)]
pub(crate) struct App {
    pub name: Option<String>,
}

/// Which lines of an account's invoice a path shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// `/account/…`: every charge line.
    Account,
    /// `/organizations/{org}/…`: the lines of billed resources whose `organization` dimension
    /// is this.
    Organization(String),
    /// `/spaces/{space}/…`: the lines of these projects (the projects the space names).
    Projects(Vec<String>),
}

impl Part {
    /// Whether `line` (a charge line) is one of this part's.
    pub(crate) fn selects(&self, line: &InvoiceLine) -> bool {
        match self {
            Self::Account => true,
            Self::Organization(organization) => line
                .resource
                .as_ref()
                .and_then(|resource| resource.dimensions.get("organization"))
                .is_some_and(|value| value == organization),
            Self::Projects(projects) => line
                .project
                .as_ref()
                .is_some_and(|project| projects.contains(project)),
        }
    }

    /// Whether any charge line of `lines` is this part's.
    pub(crate) fn has_items(&self, lines: &[InvoiceLine]) -> bool {
        lines
            .iter()
            .any(|line| line.kind.is_charge() && self.selects(line))
    }
}

/// One monthly invoice of an account, as the domain holds it: a finalized invoice of a closed
/// period, or the upcoming invoice of the current one.
pub(crate) struct Month<'a> {
    /// The period; for the current month, from its start to now.
    pub period: Period,
    /// The current month (the upcoming invoice), not a closed one.
    pub current: bool,
    pub paid: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub currency: Currency,
    pub lines: &'a [InvoiceLine],
}

/// Why a month could not be mapped: amounts or dates out of range (a bug or a corrupt row).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MapError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error("the dyno hours of the period overflow")]
    Overflow,
}

/// An invoice's id: the local date its period starts on, in the account's time zone.
pub(crate) fn invoice_id(period_start: Timestamp, time_zone: &TimeZone) -> Date {
    period_start.to_zoned(time_zone.clone()).date()
}

impl Invoice {
    /// The invoice of `month` showing the lines of `part`; `None` when the part has none.
    pub(crate) fn new(
        month: &Month<'_>,
        part: &Part,
        time_zone: &TimeZone,
    ) -> Result<Option<Self>, MapError> {
        if !part.has_items(month.lines) {
            return Ok(None);
        }
        let totals = SelectionTotals::of(month.lines, month.currency, |line| part.selects(line))?;
        let zero = Money::zero(month.currency);
        let by_type = |kind: &str| {
            totals
                .charges_by_resource_type
                .get(kind)
                .copied()
                .unwrap_or(zero)
        };
        let dyno_units = totals
            .quantity_by_resource_type
            .get(DYNO)
            .copied()
            .unwrap_or(Decimal::ZERO);
        let days = local_days_touched(month.period, time_zone)?;
        let dyno_hours = dyno_units
            .checked_mul(Decimal::from(HOURS_PER_DAY))
            .and_then(|hours| hours.checked_mul(Decimal::from(days)))
            .ok_or(MapError::Overflow)?;
        // What discounts and credits took off, as a positive amount.
        let credits = totals.discount.checked_add(totals.credit)?.checked_neg()?;
        let items = month
            .lines
            .iter()
            .filter(|line| line.kind.is_charge() && part.selects(line))
            .map(Item::from)
            .collect();
        Ok(Some(Self {
            addons_total: money(by_type(ADDON)),
            database_total: money(by_type(DATABASE)),
            charges_total: money(totals.charges),
            created_at: iso(month.created_at),
            credits_total: money(credits),
            dyno_units: decimal(dyno_units),
            id: invoice_id(month.period.start, time_zone).to_string(),
            number: month.period.start.as_millisecond().to_string(),
            payment_status: if month.paid { "Paid" } else { "Pending" },
            period_end: iso(month.period.end),
            period_start: iso(month.period.start),
            platform_total: money(by_type(DYNO)),
            state: if month.current { 2 } else { 1 },
            total: money(totals.total),
            updated_at: iso(month.updated_at),
            weighted_dyno_hours: decimal(dyno_hours),
            items,
        }))
    }
}

impl From<&InvoiceLine> for Item {
    fn from(line: &InvoiceLine) -> Self {
        let resource = line.resource.as_deref();
        Self {
            organization: resource
                .and_then(|resource| resource.dimensions.get("organization"))
                .cloned(),
            app: App {
                name: resource.and_then(|resource| resource.name.clone()),
            },
            description: line.description.clone(),
            kind: resource
                .and_then(|resource| resource.kind.clone())
                .unwrap_or_else(|| line_kind(line)),
            quantity: decimal(line.quantity),
            price_per_unit: line.unit_price().map(decimal),
            billed_price: money(line.amount),
            created_at: iso(resource.map_or(line.period.start, |resource| resource.created_at)),
            deleted_at: resource.and_then(|resource| resource.deleted_at).map(iso),
        }
    }
}

/// A line that bills no resource is typed by its kind (`fixed`, `recurring`, `usage`,
/// `adjustment`), as billow's lines name them.
fn line_kind(line: &InvoiceLine) -> String {
    serde_json::to_value(line.kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An amount in major units as an exact JSON number, without trailing zeros (`25`, `10.71`).
fn money(amount: Money) -> Number {
    decimal(amount.to_decimal())
}

/// A decimal as an exact JSON number: its digits, never a binary float's (`213.51`, not
/// `213.51000000000005`), without trailing zeros.
fn decimal(value: Decimal) -> Number {
    let text = value.normalize().to_string();
    // A decimal's text is always a JSON number (digits, an optional sign and point).
    text.parse().unwrap_or_else(|_| Number::from(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn numbers_keep_their_digits_and_drop_trailing_zeros() {
        let text = |value: Decimal| serde_json::to_string(&decimal(value)).unwrap();
        assert_eq!(text(dec("25.00")), "25");
        assert_eq!(text(dec("10.71")), "10.71");
        assert_eq!(text(dec("10.70")), "10.7");
        assert_eq!(text(dec("213.51")), "213.51");
        assert_eq!(text(dec("-0.00")), "0");
        assert_eq!(text(dec("-4.5")), "-4.5");
        assert_eq!(text(dec("7320")), "7320");
        let usd = Currency::from_code("USD").unwrap();
        assert_eq!(
            serde_json::to_string(&money(Money::from_minor(21_351, usd))).unwrap(),
            "213.51"
        );
    }
}
