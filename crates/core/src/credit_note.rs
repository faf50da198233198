//! What a credit note credits: an amount before tax and the tax on it, never more than what is
//! left to credit on the invoice it corrects.
//!
//! Every amount of a credit note is decided here: its total, the sum of its lines
//! ([`CreditNoteTotal`]); what is left to credit on an invoice and how a credit note changes it
//! ([`LeftToCredit`], [`InvoiceCredits`]); what is left to credit on one of its lines
//! ([`LineCredits`]); what the invoice asks for once its credit notes are taken off
//! ([`AmountDue`]).
//!
//! A billing run turns a negative late-usage adjustment of a subscription that has no further
//! invoice into a credit note of the invoice whose usage went down (Stripe's and Lago's form of a
//! negative correction of a finalized invoice), instead of an invoice with a negative total. The
//! engine still decides the amounts: it bills the adjustment as a line of a standalone invoice,
//! taxed like every other charge line, and [`CreditAmounts::of_negative_adjustment`] reads that
//! line and the tax allocated to it, negated; [`CreditAmounts::taxed_as`] then taxes it at the
//! rate the corrected invoice charged ([`AppliedTax`]), which the customer's rate of today (the
//! engine's) may no longer be.
//!
//! ```
//! use billow_core::credit_note::CreditAmounts;
//! use billow_core::{Currency, Money, RoundingMode};
//!
//! let eur = Currency::from_code("EUR").unwrap();
//! // 0.80 and its 19 % VAT (0.15), with only 0.32 left to credit on the invoice: the tax keeps
//! // its share of the 0.32 (0.15 × 32 / 95 = 0.0505 → 0.05).
//! let credit = CreditAmounts::new(Money::from_minor(80, eur), Money::from_minor(15, eur)).unwrap();
//! let capped = credit.capped(Money::from_minor(32, eur), RoundingMode::HalfUp).unwrap();
//! assert_eq!((capped.net().amount_minor(), capped.tax().amount_minor()), (27, 5));
//! assert_eq!(capped.total(), Money::from_minor(32, eur));
//! ```

mod balance;
mod line;
mod total;

pub use balance::{CreditInvoiceError, InvoiceCredits, LeftToCredit};
pub use line::{CreditLineError, LineCredits};
pub use total::{AddCreditNoteLineError, CreditNoteTotal};

use crate::invoice::{Invoice, InvoiceLine, LineKind, TaxRate};
use crate::money::{percent_of_minor, round_to_money, Money, MoneyError, RoundingMode};

/// The tax an invoice applied, as its lines recorded it: what a credit note of it is taxed at.
#[derive(Debug, Clone, PartialEq)]
pub enum AppliedTax {
    /// It has no tax line: it charged no tax.
    Untaxed,
    /// The rate of its tax line.
    Rate(TaxRate),
    /// Its tax line does not say its rate (an invoice issued before billow recorded it).
    Unrecorded,
}

impl AppliedTax {
    /// The tax of an invoice with these lines. An invoice has one tax line at most (a customer
    /// has one rate); should there be several, the first one's rate is taken.
    pub fn of(lines: &[InvoiceLine]) -> Self {
        match lines.iter().find(|line| line.kind == LineKind::Tax) {
            None => Self::Untaxed,
            Some(line) => match &line.trace.tax_rate {
                Some(rate) => Self::Rate(rate.clone()),
                None => Self::Unrecorded,
            },
        }
    }
}

/// What a credit note credits: the amount before tax and the tax on it, both zero or positive and
/// in one currency; the total is their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditAmounts {
    net: Money,
    tax: Money,
    total: Money,
}

/// Why credit amounts could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditAmountsError {
    /// Money arithmetic failed (mixed currencies, overflow).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A credit is never negative.
    #[error("a credit of {amount} is negative")]
    Negative {
        /// The negative part.
        amount: Money,
    },
}

impl CreditAmounts {
    /// A credit of `net` before tax and `tax` on it.
    ///
    /// # Errors
    /// [`CreditAmountsError::Negative`] when either is negative, [`CreditAmountsError::Money`]
    /// when their currencies differ or their sum overflows.
    pub fn new(net: Money, tax: Money) -> Result<Self, CreditAmountsError> {
        for amount in [net, tax] {
            if amount.amount_minor() < 0 {
                return Err(CreditAmountsError::Negative { amount });
            }
        }
        let total = net.checked_add(tax)?;
        Ok(Self { net, tax, total })
    }

    /// The credit that undoes the line numbered `line_number` of `invoice` when it bills a
    /// negative adjustment (a line with `trace.adjustment`): the line's amount and the tax the
    /// invoice's tax lines allocated to it, negated. `None` for any other line.
    ///
    /// # Errors
    /// [`CreditAmountsError`] when the invoice allocated a positive tax to a negative line (a
    /// broken invoice) or the sum overflows.
    pub fn of_negative_adjustment(
        invoice: &Invoice,
        line_number: u32,
    ) -> Result<Option<Self>, CreditAmountsError> {
        let Some(line) = invoice.lines.iter().find(|l| l.number == line_number) else {
            return Ok(None);
        };
        if line.trace.adjustment.is_none() || line.amount.amount_minor() >= 0 {
            return Ok(None);
        }
        let tax_minor: i64 = invoice
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Tax)
            .flat_map(|l| &l.trace.allocations)
            .filter(|allocation| allocation.line == line_number)
            .map(|allocation| allocation.amount_minor)
            .sum();
        let currency = invoice.currency;
        Self::new(
            Money::from_minor(-line.amount.amount_minor(), currency),
            Money::from_minor(-tax_minor, currency),
        )
        .map(Some)
    }

    /// The same credit, at most `available` in total (what is left to credit on the invoice:
    /// its total less its credit notes). When the total is above it, the total becomes
    /// `available` (zero when nothing is left) and the tax keeps its share of it, rounded once
    /// with `mode`; the amount before tax is the rest, so the parts still add up exactly.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] when `available` is in another currency.
    pub fn capped(self, available: Money, mode: RoundingMode) -> Result<Self, MoneyError> {
        let currency = self.total.currency();
        if available.currency() != currency {
            return Err(MoneyError::CurrencyMismatch {
                left: currency,
                right: available.currency(),
            });
        }
        let available_minor = available.amount_minor().max(0);
        if self.total.amount_minor() <= available_minor {
            return Ok(self);
        }
        // tax × available ÷ total, multiplied before dividing: tax ≤ total, so the share is at
        // most `available` and the amount before tax stays zero or positive.
        let share = self.tax.to_decimal() * rust_decimal::Decimal::from(available_minor)
            / rust_decimal::Decimal::from(self.total.amount_minor());
        let tax = round_to_money(share, currency, mode)?;
        let total = Money::from_minor(available_minor, currency);
        let net = Money::from_minor(available_minor - tax.amount_minor(), currency);
        debug_assert!(net.amount_minor() >= 0 && tax.amount_minor() >= 0);
        Ok(Self { net, tax, total })
    }

    /// The same amount before tax, taxed as the invoice it credits was (`applied`): at its rate,
    /// rounded once with `mode`, or not at all when it charged no tax. Unchanged when the
    /// invoice did not record its rate.
    ///
    /// # Errors
    /// [`CreditAmountsError::Money`] when the tax or the sum overflows.
    pub fn taxed_as(
        self,
        applied: &AppliedTax,
        mode: RoundingMode,
    ) -> Result<Self, CreditAmountsError> {
        let currency = self.net.currency();
        let tax_minor = match applied {
            AppliedTax::Unrecorded => return Ok(self),
            AppliedTax::Untaxed => 0,
            AppliedTax::Rate(rate) => {
                percent_of_minor(self.net.amount_minor(), rate.rate_percent, currency, mode)?
            }
        };
        Self::new(self.net, Money::from_minor(tax_minor, currency))
    }

    /// The amount before tax.
    pub fn net(&self) -> Money {
        self.net
    }

    /// The tax on it.
    pub fn tax(&self) -> Money {
        self.tax
    }

    /// The amount before tax plus the tax: what the credit note takes off the invoice.
    pub fn total(&self) -> Money {
        self.total
    }
}

/// What a finalized invoice asks for once its credit notes are taken off, in minor units of its
/// currency (Stripe's `amount_due` and `amount_remaining`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountDue {
    /// The total less what its credit notes credited, never below zero: what the customer owes
    /// for the invoice, and what its payment instructions ask for.
    pub due_minor: i64,
    /// What is still to pay: the amount due while the invoice is open (or a draft), nothing once
    /// it is paid or void.
    pub remaining_minor: i64,
}

impl AmountDue {
    /// The amounts of an invoice whose total is `total_minor` and whose credit notes credited
    /// `credited_minor`; `settled` when it is paid or void.
    pub fn new(total_minor: i64, credited_minor: i64, settled: bool) -> Self {
        // What is left to credit is what is still owed: both are the total less the notes.
        let due_minor = LeftToCredit::of(total_minor, credited_minor).left_minor();
        Self {
            due_minor,
            remaining_minor: if settled { 0 } else { due_minor },
        }
    }
}

#[cfg(test)]
mod tests;
