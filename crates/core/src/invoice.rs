//! Invoice assembly: charges are rounded into lines, then discounts, money credits and tax are
//! added as lines of their own, and the totals are the sums of rounded lines.
//!
//! Order (Stripe Billing's): charges → discounts → credit grants → exclusive tax on what remains of
//! each charge line, rounded per line. Every line carries a [`LineTrace`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::credit::{CreditUsageReport, GrantBalance, GrantConsumption};
use crate::currency::Currency;
use crate::money::{percent_of_minor, round_to_money, Money, MoneyError, RoundingMode};
use crate::period::{Period, ProrationFactor};
use crate::price::RatingStep;

/// Most lines one invoice may have.
pub const MAX_LINES: usize = 10_000;

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// A flat fee of the plan.
    Fixed,
    /// A fee per unit of the subscription's quantity (seats, instances).
    Recurring,
    /// Metered usage.
    Usage,
    /// Money credit grants consumed (negative).
    Credit,
    /// Discounts (negative).
    Discount,
    /// Exclusive tax.
    Tax,
    /// Proration credits for unused time, minimum-commitment true-ups.
    Adjustment,
}

impl LineKind {
    /// True for the kinds produced from prices (the lines discounts, credits and tax apply to).
    pub fn is_charge(self) -> bool {
        matches!(
            self,
            LineKind::Fixed | LineKind::Recurring | LineKind::Usage | LineKind::Adjustment
        )
    }
}

/// Proration applied to a line: the factor, the interval present and the real period around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProrationTrace {
    /// The exact factor.
    pub factor: ProrationFactor,
    /// The factor as a decimal, for reading.
    pub factor_decimal: Decimal,
    /// The interval billed.
    pub interval: Period,
    /// The billing period that contains it.
    pub containing: Period,
}

/// What one discount, credit or tax line took from one charge line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Allocation {
    /// The charge line's number.
    pub line: u32,
    /// The amount, in minor units, taken from (or, for tax, added to) that line.
    pub amount_minor: i64,
}

/// How a line's amount came about.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LineTrace {
    /// The rating steps (tiers hit, packages, fees).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RatingStep>,
    /// The proration, when the line was prorated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proration: Option<Box<ProrationTrace>>,
    /// Grants consumed: meter-unit grants before rating, or a money grant for a credit line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantConsumption>,
    /// The quantity before meter-unit grants were consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity_before_grants: Option<Decimal>,
    /// For discount, credit and tax lines: what each charge line gave or took.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<Allocation>,
    /// The amount before rounding to the minor unit.
    pub unrounded_amount: Decimal,
    /// Why the line exists, when its kind does not say (trial, unused time, true-up, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a line billing a scenario adjustment (late usage of a finalized invoice): its key.
    /// Such a line takes no discount and no credit (its amount is already net of them); tax
    /// applies to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment: Option<String>,
    /// For a tax line: the rate it applied, so that a later correction of the invoice (a credit
    /// note) is taxed as the invoice was, whatever the customer's rate has become. Absent on the
    /// tax lines of invoices issued before billow recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate: Option<TaxRate>,
}

/// The billed resource a line bills, as the line shows it: which resource, its type and name,
/// and when it existed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResource {
    /// The resource's id.
    pub id: String,
    /// Its type (`addon`, `dyno`, `vm`, `cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it came into existence.
    pub created_at: Timestamp,
    /// When it was removed, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    /// The dimensions a platform groups by (`app`, `space`, `organization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
}

/// What a line bills for, beyond its price: the subscription or billed resource it comes from
/// and the product it counts under. Empty for discount, credit and tax lines, and for lines of
/// invoices issued before billow recorded it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LineSource {
    /// The subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The billed resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<LineResource>>,
    /// The product (the price's, or its plan's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// A priced item before rounding: what the rating of one price for one period produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    /// The line kind (a charge kind).
    pub kind: LineKind,
    /// What the customer reads.
    pub description: String,
    /// The price that produced it.
    pub price: Option<String>,
    /// The meter, for usage.
    pub meter: Option<String>,
    /// The project (cost center) the usage belongs to.
    pub project: Option<String>,
    /// The service period.
    pub period: Period,
    /// The quantity billed.
    pub quantity: Decimal,
    /// The unrounded amount (the trace's `unrounded_amount` is set from it).
    pub amount: Decimal,
    /// For a discount charge (a plan's discount phase): the index, in the same input, of the
    /// charge it discounts. It never takes more than what is left of that charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<usize>,
    /// The subscription or resource it bills, and its product.
    #[serde(default)]
    pub source: LineSource,
    /// How it came about.
    pub trace: LineTrace,
}

/// One invoice line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// 1-based position on the invoice.
    pub number: u32,
    /// What the line is.
    pub kind: LineKind,
    /// What the customer reads.
    pub description: String,
    /// The price that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// The meter, for usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// The project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The subscription it bills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The billed resource it bills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<LineResource>>,
    /// The product it counts under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The service period.
    pub period: Period,
    /// The quantity.
    pub quantity: Decimal,
    /// The rounded amount.
    pub amount: Money,
    /// How it came about.
    pub trace: LineTrace,
}

/// A discount as it applies to one invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountValue {
    /// A percentage of each charge line, rounded per line.
    PercentOff(Decimal),
    /// A fixed amount, spread over charge lines in proportion to their amounts.
    AmountOff(Money),
}

/// A discount to apply to one invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedDiscount {
    /// The discount's key.
    pub key: String,
    /// What it takes off.
    pub value: DiscountValue,
}

/// An exclusive tax rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TaxRate {
    /// Its name on the invoice (VAT, GST, sales tax).
    pub name: String,
    /// The rate in percent.
    #[serde(deserialize_with = "crate::decimal::exact")]
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub rate_percent: Decimal,
}

impl TaxRate {
    /// The description of the tax line it makes: its name and its rate (`VAT 19%`).
    pub fn line_description(&self) -> String {
        format!("{} {}%", self.name, self.rate_percent.normalize())
    }
}

/// Everything an invoice is assembled from.
#[derive(Debug, Clone)]
pub struct InvoiceInput<'a> {
    /// The invoice currency; every charge is in it.
    pub currency: Currency,
    /// The rounding mode, recorded on the invoice.
    pub rounding: RoundingMode,
    /// When it is issued.
    pub issued_at: Timestamp,
    /// The billing period it closes.
    pub period: Period,
    /// The priced items.
    pub charges: Vec<Charge>,
    /// Discounts, applied in order.
    pub discounts: &'a [AppliedDiscount],
    /// The tax rate, if any.
    pub tax: Option<&'a TaxRate>,
    /// Per-product credit figures computed while rating.
    pub credit_reports: Vec<CreditUsageReport>,
}

/// Amounts of an invoice by line kind, and totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct InvoiceTotals {
    /// Σ charge lines (fixed, recurring, usage, adjustment).
    pub subtotal: Money,
    /// Σ discount lines (≤ 0).
    pub discount: Money,
    /// Σ credit lines (≤ 0).
    pub credit: Money,
    /// Σ tax lines.
    pub tax: Money,
    /// Σ of every line.
    pub total: Money,
    /// Σ per line kind.
    pub by_kind: BTreeMap<LineKind, Money>,
    /// Σ per project, of the lines that carry one, net of their discounts and credits, before tax.
    pub by_project: BTreeMap<String, Money>,
    /// Σ per subscription, of the lines that bill one, net of their discounts and credits,
    /// before tax.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_subscription: BTreeMap<String, Money>,
    /// Σ per billed resource type (`addon`, `dyno`), of the resource lines that carry a type, net
    /// of their discounts and credits, before tax.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_resource_type: BTreeMap<String, Money>,
    /// Σ per product, of the lines that carry one, net of their discounts and credits, before
    /// tax.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_product: BTreeMap<String, Money>,
}

/// An assembled invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// The currency of every amount.
    pub currency: Currency,
    /// The rounding mode used for every line.
    pub rounding: RoundingMode,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// The billing period.
    pub period: Period,
    /// The lines.
    pub lines: Vec<InvoiceLine>,
    /// The totals.
    pub totals: InvoiceTotals,
    /// Per-product credit figures (Palette's allocated / used / billable / breached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_usage: Vec<CreditUsageReport>,
}

impl Invoice {
    /// What the invoice's own lines come to before tax: subtotal + discount + credit, without
    /// the lines that bill scenario adjustments. A billing run compares this figure of a
    /// finalized invoice with the same figure recomputed later (late usage).
    pub fn net_before_tax_minor(&self) -> i64 {
        let totals = &self.totals;
        let adjustments: i64 = self
            .lines
            .iter()
            .filter(|line| line.trace.adjustment.is_some())
            .map(|line| line.amount.amount_minor())
            .sum();
        totals.subtotal.amount_minor()
            + totals.discount.amount_minor()
            + totals.credit.amount_minor()
            - adjustments
    }
}

impl InvoiceLine {
    /// The price of one unit over a whole period, before proration: the unit amount of a line
    /// rated in one step of units (a per-unit price, or the one tier a volume price reached,
    /// without a flat part), the amount of a flat price. `None` for a line rated in several
    /// steps (graduated tiers, a flat fee beside units) or in none (discount, credit and tax
    /// lines), whose amount no single unit price explains.
    pub fn unit_price(&self) -> Option<Decimal> {
        use crate::price::StepKind;
        match self.trace.steps.as_slice() {
            [step] => match step.kind {
                StepKind::Unit | StepKind::Tier if step.flat_amount.is_zero() => {
                    Some(step.unit_amount)
                }
                StepKind::Flat => Some(step.flat_amount),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What a selection of an invoice's charge lines comes to: their amounts, and what the
/// invoice's discount, credit and tax lines took from or added to each of them (their
/// allocations). A platform's view of a part of an invoice (one organization's or one
/// project's lines); selecting every charge line gives the invoice's own totals.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionTotals {
    /// Σ the selected charge lines.
    pub charges: Money,
    /// Σ what discount lines took from them (≤ 0).
    pub discount: Money,
    /// Σ what money credits took from them (≤ 0).
    pub credit: Money,
    /// Σ the tax on them.
    pub tax: Money,
    /// charges + discount + credit + tax.
    pub total: Money,
    /// Σ the selected lines that bill a billed resource, per resource type (`addon`, `dyno`),
    /// before discounts, credits and tax.
    pub charges_by_resource_type: BTreeMap<String, Money>,
    /// Σ the quantities of the selected lines that bill a billed resource, per resource type.
    pub quantity_by_resource_type: BTreeMap<String, Decimal>,
}

impl SelectionTotals {
    /// The totals of the charge lines of `lines` (an invoice's, in `currency`) that `selected`
    /// keeps. Discount, credit and tax lines are never selected themselves: they count through
    /// their allocations to the selected lines.
    ///
    /// # Errors
    /// [`MoneyError`] when an amount is in another currency or a sum overflows.
    pub fn of(
        lines: &[InvoiceLine],
        currency: Currency,
        selected: impl Fn(&InvoiceLine) -> bool,
    ) -> Result<SelectionTotals, MoneyError> {
        let zero = Money::zero(currency);
        let mut totals = SelectionTotals {
            charges: zero,
            discount: zero,
            credit: zero,
            tax: zero,
            total: zero,
            charges_by_resource_type: BTreeMap::new(),
            quantity_by_resource_type: BTreeMap::new(),
        };
        let mut numbers = std::collections::HashSet::new();
        for line in lines
            .iter()
            .filter(|line| line.kind.is_charge() && selected(line))
        {
            numbers.insert(line.number);
            totals.charges = totals.charges.checked_add(line.amount)?;
            let Some(kind) = line.resource.as_ref().and_then(|r| r.kind.as_ref()) else {
                continue;
            };
            let by_type = totals
                .charges_by_resource_type
                .entry(kind.clone())
                .or_insert(zero);
            *by_type = by_type.checked_add(line.amount)?;
            let quantity = totals
                .quantity_by_resource_type
                .entry(kind.clone())
                .or_insert(Decimal::ZERO);
            *quantity = quantity
                .checked_add(line.quantity)
                .ok_or(MoneyError::Overflow { currency })?;
        }
        for line in lines.iter().filter(|line| !line.kind.is_charge()) {
            let allocated = line
                .trace
                .allocations
                .iter()
                .filter(|allocation| numbers.contains(&allocation.line))
                .try_fold(zero, |sum, allocation| {
                    sum.checked_add(Money::from_minor(allocation.amount_minor, currency))
                })?;
            let bucket = match line.kind {
                LineKind::Discount => &mut totals.discount,
                LineKind::Credit => &mut totals.credit,
                LineKind::Tax => &mut totals.tax,
                _ => continue,
            };
            *bucket = bucket.checked_add(allocated)?;
        }
        totals.total = totals
            .charges
            .checked_add(totals.discount)?
            .checked_add(totals.credit)?
            .checked_add(totals.tax)?;
        Ok(totals)
    }
}

/// Why an invoice could not be assembled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssembleInvoiceError {
    /// Money arithmetic failed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A discount or credit in another currency than the invoice.
    #[error("a {found} amount on a {expected} invoice")]
    CurrencyMismatch {
        /// The invoice currency.
        expected: Currency,
        /// The amount's.
        found: Currency,
    },
    /// Too many lines.
    #[error("{count} lines; at most {MAX_LINES}")]
    TooManyLines {
        /// How many.
        count: usize,
    },
}

/// Assembles an invoice, consuming money credit grants from `money_grants` (in burn order).
///
/// # Errors
/// [`AssembleInvoiceError`] on overflow, mixed currencies or too many lines.
///
/// # Panics
/// When an invariant of the result fails (total ≠ Σ lines, a credit above its grant): a bug.
pub fn assemble_invoice(
    input: InvoiceInput<'_>,
    money_grants: &mut [GrantBalance],
) -> Result<Invoice, AssembleInvoiceError> {
    if input.charges.len() > MAX_LINES {
        return Err(AssembleInvoiceError::TooManyLines {
            count: input.charges.len(),
        });
    }
    let currency = input.currency;
    let mut lines = Vec::with_capacity(input.charges.len() + input.discounts.len() + 2);
    let mut targets = Vec::with_capacity(input.charges.len());
    for charge in input.charges {
        let target = charge.target.filter(|_| charge.kind == LineKind::Discount);
        assert!(
            target.is_none_or(|t| t < lines.len()),
            "a discount charge must follow its target"
        );
        targets.push(target);
        let amount = round_to_money(charge.amount, currency, input.rounding)?;
        let mut trace = charge.trace;
        trace.unrounded_amount = charge.amount;
        lines.push(InvoiceLine {
            number: lines.len() as u32 + 1,
            kind: charge.kind,
            description: charge.description,
            price: charge.price,
            meter: charge.meter,
            project: charge.project,
            subscription: charge.source.subscription,
            resource: charge.source.resource,
            product: charge.source.product,
            period: charge.period,
            quantity: charge.quantity,
            amount,
            trace,
        });
    }
    // What is left of each charge line after discounts and credits: the base of the next step.
    let mut net: Vec<i64> = lines
        .iter()
        .map(|line| {
            if line.kind.is_charge() {
                line.amount.amount_minor()
            } else {
                0
            }
        })
        .collect();
    let charge_count = lines.len();
    // Adjustment lines are net of discounts and credits already: held out of both, taxed below.
    let held: Vec<(usize, i64)> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.trace.adjustment.is_some())
        .map(|(index, _)| (index, std::mem::take(&mut net[index])))
        .collect();
    for (index, target) in targets.into_iter().enumerate() {
        let Some(target) = target else { continue };
        // A discount never changes the sign of what it discounts: a phase discount on a credit for
        // unused time shrinks the credit.
        let wanted = -lines[index].amount.amount_minor();
        let off = if net[target] >= 0 {
            wanted.clamp(0, net[target])
        } else {
            wanted.clamp(net[target], 0)
        };
        net[target] -= off;
        lines[index].amount = Money::from_minor(-off, currency);
        lines[index].trace.allocations = vec![Allocation {
            line: target as u32 + 1,
            amount_minor: -off,
        }];
    }
    for discount in input.discounts {
        let allocations = allocate_discount(&discount.value, &mut net, currency, input.rounding)?;
        push_allocated_line(
            &mut lines,
            LineKind::Discount,
            format!("Discount {}", discount.key),
            input.period,
            currency,
            allocations,
            None,
        );
    }
    let mut grant_lines = Vec::new();
    for balance in money_grants.iter_mut() {
        if balance.grant.meter.is_some() {
            continue;
        }
        let mut allocations = Vec::new();
        for (index, left) in net.iter_mut().enumerate().take(charge_count) {
            if *left <= 0 || balance.remaining <= Decimal::ZERO {
                continue;
            }
            // A grant covers the lines whose service period overlaps its window.
            if !balance.grant.window().overlaps(&lines[index].period) {
                continue;
            }
            let remaining_minor = i64::try_from(balance.remaining.trunc()).unwrap_or(i64::MAX);
            let amount = remaining_minor.min(*left);
            assert!(amount <= *left, "a credit made line {} negative", index + 1);
            if amount <= 0 {
                continue;
            }
            balance.remaining -= Decimal::from(amount);
            *left -= amount;
            allocations.push(Allocation {
                line: index as u32 + 1,
                amount_minor: -amount,
            });
        }
        if !allocations.is_empty() {
            let consumed: i64 = allocations.iter().map(|a| -a.amount_minor).sum();
            grant_lines.push((
                balance.grant.key.clone(),
                balance.grant.grant_type,
                consumed,
                allocations,
            ));
        }
    }
    for (key, grant_type, consumed, allocations) in grant_lines {
        let grants = vec![GrantConsumption {
            grant: key.clone(),
            grant_type,
            amount: Decimal::from(consumed),
        }];
        push_allocated_line(
            &mut lines,
            LineKind::Credit,
            format!("Credit {key}"),
            input.period,
            currency,
            allocations,
            Some(grants),
        );
    }
    for (index, amount) in held {
        net[index] = amount;
    }
    if let Some(tax) = input.tax {
        let mut allocations = Vec::with_capacity(charge_count);
        for (index, base) in net.iter().enumerate().take(charge_count) {
            let tax_minor = percent_of_minor(*base, tax.rate_percent, currency, input.rounding)?;
            if tax_minor != 0 {
                allocations.push(Allocation {
                    line: index as u32 + 1,
                    amount_minor: tax_minor,
                });
            }
        }
        let description = tax.line_description();
        let before = lines.len();
        push_allocated_line(
            &mut lines,
            LineKind::Tax,
            description,
            input.period,
            currency,
            allocations,
            None,
        );
        if let Some(line) = lines.get_mut(before) {
            line.trace.tax_rate = Some(tax.clone());
        }
    }
    let totals = compute_totals(&lines, &net, currency)?;
    let invoice = Invoice {
        currency,
        rounding: input.rounding,
        issued_at: input.issued_at,
        period: input.period,
        lines,
        totals,
        credit_usage: input.credit_reports,
    };
    assert_invoice_invariants(&invoice);
    Ok(invoice)
}

fn push_allocated_line(
    lines: &mut Vec<InvoiceLine>,
    kind: LineKind,
    description: String,
    period: Period,
    currency: Currency,
    allocations: Vec<Allocation>,
    grants: Option<Vec<GrantConsumption>>,
) {
    let amount_minor: i64 = allocations.iter().map(|a| a.amount_minor).sum();
    if allocations.is_empty() {
        return;
    }
    let amount = Money::from_minor(amount_minor, currency);
    lines.push(InvoiceLine {
        number: lines.len() as u32 + 1,
        kind,
        description,
        price: None,
        meter: None,
        project: None,
        subscription: None,
        resource: None,
        product: None,
        period,
        quantity: Decimal::ONE,
        amount,
        trace: LineTrace {
            allocations,
            grants: grants.unwrap_or_default(),
            unrounded_amount: amount.to_decimal(),
            ..LineTrace::default()
        },
    });
}

fn allocate_discount(
    value: &DiscountValue,
    net: &mut [i64],
    currency: Currency,
    rounding: RoundingMode,
) -> Result<Vec<Allocation>, AssembleInvoiceError> {
    let mut allocations = Vec::new();
    match value {
        DiscountValue::PercentOff(percent) => {
            for (index, left) in net.iter_mut().enumerate() {
                if *left <= 0 {
                    continue;
                }
                let off = percent_of_minor(*left, *percent, currency, rounding)?.min(*left);
                *left -= off;
                allocations.push(Allocation {
                    line: index as u32 + 1,
                    amount_minor: -off,
                });
            }
        }
        DiscountValue::AmountOff(amount) => {
            if amount.currency() != currency {
                return Err(AssembleInvoiceError::CurrencyMismatch {
                    expected: currency,
                    found: amount.currency(),
                });
            }
            let base: i128 = net
                .iter()
                .filter(|left| **left > 0)
                .map(|left| i128::from(*left))
                .sum();
            let off_total = i128::from(amount.amount_minor()).min(base);
            if off_total <= 0 {
                return Ok(allocations);
            }
            // Largest remainder: each line gets floor(off × line ÷ base), and the minor units left
            // over go to the lines with the largest remainders, earlier lines first on ties.
            let mut shares: Vec<(usize, i128, i128)> = net
                .iter()
                .enumerate()
                .filter(|(_, left)| **left > 0)
                .map(|(index, left)| {
                    let product = off_total * i128::from(*left);
                    (index, product / base, product % base)
                })
                .collect();
            let given: i128 = shares.iter().map(|share| share.1).sum();
            let mut order: Vec<usize> = (0..shares.len()).collect();
            order.sort_by(|a, b| shares[*b].2.cmp(&shares[*a].2).then(a.cmp(b)));
            for position in order.into_iter().take((off_total - given) as usize) {
                shares[position].1 += 1;
            }
            for (index, share, _) in shares {
                let off = i64::try_from(share).unwrap_or(i64::MAX).min(net[index]);
                net[index] -= off;
                allocations.push(Allocation {
                    line: index as u32 + 1,
                    amount_minor: -off,
                });
            }
        }
    }
    Ok(allocations)
}

fn compute_totals(
    lines: &[InvoiceLine],
    net: &[i64],
    currency: Currency,
) -> Result<InvoiceTotals, MoneyError> {
    let zero = Money::zero(currency);
    let mut by_kind: BTreeMap<LineKind, Money> = BTreeMap::new();
    let mut by_project: BTreeMap<String, Money> = BTreeMap::new();
    let mut by_subscription: BTreeMap<String, Money> = BTreeMap::new();
    let mut by_resource_type: BTreeMap<String, Money> = BTreeMap::new();
    let mut by_product: BTreeMap<String, Money> = BTreeMap::new();
    let mut total = zero;
    for line in lines {
        let entry = by_kind.entry(line.kind).or_insert(zero);
        *entry = entry.checked_add(line.amount)?;
        total = total.checked_add(line.amount)?;
        let net_minor = net.get(line.number as usize - 1).copied().unwrap_or(0);
        let net_amount = Money::from_minor(net_minor, currency);
        let resource_type = line.resource.as_ref().and_then(|r| r.kind.as_ref());
        for (totals, key) in [
            (&mut by_project, line.project.as_ref()),
            (&mut by_subscription, line.subscription.as_ref()),
            (&mut by_resource_type, resource_type),
            (&mut by_product, line.product.as_ref()),
        ] {
            if let Some(key) = key {
                let entry = totals.entry(key.clone()).or_insert(zero);
                *entry = entry.checked_add(net_amount)?;
            }
        }
    }
    let sum_of = |kinds: &[LineKind]| -> Result<Money, MoneyError> {
        kinds.iter().try_fold(zero, |sum, kind| {
            sum.checked_add(by_kind.get(kind).copied().unwrap_or(zero))
        })
    };
    Ok(InvoiceTotals {
        subtotal: sum_of(&[
            LineKind::Fixed,
            LineKind::Recurring,
            LineKind::Usage,
            LineKind::Adjustment,
        ])?,
        discount: sum_of(&[LineKind::Discount])?,
        credit: sum_of(&[LineKind::Credit])?,
        tax: sum_of(&[LineKind::Tax])?,
        total,
        by_kind,
        by_project,
        by_subscription,
        by_resource_type,
        by_product,
    })
}

/// Checks what must hold of every invoice: one currency, total = Σ rounded lines, the parts add up
/// to the total, no discount or credit takes more from a line than the line is worth.
///
/// # Panics
/// When an invariant fails.
pub fn assert_invoice_invariants(invoice: &Invoice) {
    let currency = invoice.currency;
    let mut sum: i128 = 0;
    for line in &invoice.lines {
        assert_eq!(
            line.amount.currency(),
            currency,
            "line {} is in another currency",
            line.number
        );
        sum += i128::from(line.amount.amount_minor());
    }
    assert_eq!(
        sum,
        i128::from(invoice.totals.total.amount_minor()),
        "total is not the sum of the lines"
    );
    let totals = &invoice.totals;
    let parts = [totals.subtotal, totals.discount, totals.credit, totals.tax]
        .iter()
        .map(|part| i128::from(part.amount_minor()))
        .sum::<i128>();
    assert_eq!(
        parts, sum,
        "subtotal + discount + credit + tax is not the total"
    );
    // What discounts and credits took from each line, indexed by line number − 1.
    let mut taken = vec![0_i64; invoice.lines.len()];
    for line in invoice
        .lines
        .iter()
        .filter(|l| matches!(l.kind, LineKind::Discount | LineKind::Credit))
    {
        if line.kind == LineKind::Credit {
            assert!(line.amount.amount_minor() <= 0, "a credit line is positive");
        }
        for allocation in &line.trace.allocations {
            taken[allocation.line as usize - 1] += allocation.amount_minor;
        }
    }
    for (line, change) in invoice.lines.iter().zip(taken) {
        let amount = line.amount.amount_minor();
        let after = amount + change;
        assert!(
            (amount >= 0 && (0..=amount).contains(&after))
                || (amount < 0 && (amount..=0).contains(&after)),
            "line {} changed sign through a discount or credit",
            line.number
        );
    }
}

#[cfg(test)]
mod tests;
