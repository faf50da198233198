//! What is left to credit on an invoice, and what a credit note does to it.
//!
//! An invoice's credit notes together never credit more than its total. Two places hold that
//! limit: a billing run, which credits negative late usage of several adjustments against one
//! invoice and keeps a running balance of what is left ([`LeftToCredit::credit`]), and the store,
//! which checks a credit note again under the invoice's row lock and records what it credited
//! ([`InvoiceCredits::with_note`]). Both take the amounts from here, so the limit is one rule.

use crate::credit_note::CreditAmounts;
use crate::money::{Money, MoneyError, RoundingMode};

/// What is left to credit on an invoice, in minor units of its currency: never below zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeftToCredit {
    left_minor: i64,
}

impl LeftToCredit {
    /// Nothing left: what a draft or a void invoice, which take no credit note, leaves.
    pub const NOTHING: Self = Self { left_minor: 0 };

    /// What is left on an invoice whose total is `total_minor` once its credit notes credited
    /// `credited_minor`: the difference, or zero when they credited the whole total (or the
    /// total is negative).
    pub fn of(total_minor: i64, credited_minor: i64) -> Self {
        Self {
            left_minor: total_minor.saturating_sub(credited_minor).max(0),
        }
    }

    /// The amount left, in minor units: zero or positive.
    pub fn left_minor(self) -> i64 {
        self.left_minor
    }

    /// True when a credit of `credit_minor` fits in what is left.
    pub fn fits(self, credit_minor: i64) -> bool {
        credit_minor <= self.left_minor
    }

    /// Credits `amounts`, at most what is left ([`CreditAmounts::capped`], the tax keeping its
    /// share, rounded with `mode`), and takes what it credited off what is left. Returns what is
    /// credited: `amounts` when they fit, less otherwise (nothing when nothing is left).
    ///
    /// # Errors
    /// [`MoneyError`] when the capped share overflows; what is left is unchanged then.
    pub fn credit(
        &mut self,
        amounts: CreditAmounts,
        mode: RoundingMode,
    ) -> Result<CreditAmounts, MoneyError> {
        let currency = amounts.total().currency();
        let credited = amounts.capped(Money::from_minor(self.left_minor, currency), mode)?;
        let credited_minor = credited.total().amount_minor();
        // `capped` never credits more than it was given: what is left stays zero or positive.
        assert!(
            (0..=self.left_minor).contains(&credited_minor),
            "a capped credit of {credited_minor} exceeds the {} left",
            self.left_minor
        );
        self.left_minor -= credited_minor;
        Ok(credited)
    }
}

/// An invoice's credit position as its record keeps it: its total and what its credit notes
/// credited together, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceCredits {
    total_minor: i64,
    credited_minor: i64,
}

/// Why a credit note cannot be written on an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CreditInvoiceError {
    /// A credit note credits a positive amount.
    #[error("a credit note of {requested_minor} minor units credits nothing")]
    NotPositive {
        /// The note's total.
        requested_minor: i64,
    },
    /// The note credits more than is left on the invoice.
    #[error("a credit note of {requested_minor} minor units exceeds the {available_minor} left to credit")]
    Exceeds {
        /// The note's total.
        requested_minor: i64,
        /// What is left to credit on the invoice.
        available_minor: i64,
    },
}

impl InvoiceCredits {
    /// An invoice whose total is `total_minor`, of which its credit notes credited
    /// `credited_minor`.
    pub fn new(total_minor: i64, credited_minor: i64) -> Self {
        Self {
            total_minor,
            credited_minor,
        }
    }

    /// The invoice's total.
    pub fn total_minor(self) -> i64 {
        self.total_minor
    }

    /// What its credit notes credited together.
    pub fn credited_minor(self) -> i64 {
        self.credited_minor
    }

    /// Whether its credit notes credit all of it: nothing is owed for it any more.
    #[must_use]
    pub fn fully_credited(self) -> bool {
        self.left_to_credit().left_minor() == 0
    }

    /// What is left to credit on it.
    pub fn left_to_credit(self) -> LeftToCredit {
        LeftToCredit::of(self.total_minor, self.credited_minor)
    }

    /// The invoice once a credit note of `note_total_minor` is written on it: its credit notes
    /// then credit that much more.
    ///
    /// # Errors
    /// [`CreditInvoiceError::NotPositive`] for a note of zero or less,
    /// [`CreditInvoiceError::Exceeds`] when the note credits more than is left.
    pub fn with_note(self, note_total_minor: i64) -> Result<Self, CreditInvoiceError> {
        if note_total_minor <= 0 {
            return Err(CreditInvoiceError::NotPositive {
                requested_minor: note_total_minor,
            });
        }
        let left = self.left_to_credit();
        let exceeds = CreditInvoiceError::Exceeds {
            requested_minor: note_total_minor,
            available_minor: left.left_minor(),
        };
        if !left.fits(note_total_minor) {
            return Err(exceeds);
        }
        let credited_minor = self
            .credited_minor
            .checked_add(note_total_minor)
            .ok_or(exceeds)?;
        Ok(Self {
            total_minor: self.total_minor,
            credited_minor,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::currency::Currency;

    fn eur_minor(amount_minor: i64) -> Money {
        Money::from_minor(amount_minor, Currency::from_code("EUR").unwrap())
    }

    #[test]
    fn what_is_left_is_the_total_less_its_credit_notes_and_never_below_zero() {
        assert_eq!(LeftToCredit::of(1000, 950).left_minor(), 50);
        assert_eq!(LeftToCredit::of(1000, 1000).left_minor(), 0);
        assert_eq!(LeftToCredit::of(-200, 0).left_minor(), 0);
        assert_eq!(LeftToCredit::of(i64::MIN, i64::MAX).left_minor(), 0);
        assert_eq!(LeftToCredit::NOTHING.left_minor(), 0);
    }

    #[test]
    fn a_running_balance_credits_what_fits_then_what_is_left_then_nothing() {
        // 0.50 left; three corrections of 0.40 + 0.08 tax each.
        let mut left = LeftToCredit::of(1000, 950);
        let correction = CreditAmounts::new(eur_minor(40), eur_minor(8)).unwrap();

        let first = left.credit(correction, RoundingMode::HalfUp).unwrap();
        let second = left.credit(correction, RoundingMode::HalfUp).unwrap();
        let third = left.credit(correction, RoundingMode::HalfUp).unwrap();

        assert_eq!(first, correction);
        // 2 left: the tax keeps its share, 8 × 2 / 48 = 0.33 → 0.
        assert_eq!(
            (second.net(), second.tax(), second.total()),
            (eur_minor(2), eur_minor(0), eur_minor(2))
        );
        assert_eq!(third.total(), eur_minor(0));
        assert_eq!(left, LeftToCredit::NOTHING);
    }

    #[test]
    fn a_note_that_fits_adds_to_what_is_credited_and_one_above_what_is_left_is_refused() {
        let invoice = InvoiceCredits::new(1000, 600);

        assert_eq!(invoice.with_note(400), Ok(InvoiceCredits::new(1000, 1000)));
        assert_eq!(
            invoice.with_note(401),
            Err(CreditInvoiceError::Exceeds {
                requested_minor: 401,
                available_minor: 400
            })
        );
        assert_eq!(
            invoice.with_note(0),
            Err(CreditInvoiceError::NotPositive { requested_minor: 0 })
        );
        assert_eq!(
            InvoiceCredits::new(-100, 0).with_note(1),
            Err(CreditInvoiceError::Exceeds {
                requested_minor: 1,
                available_minor: 0
            })
        );
    }

    proptest! {
        #[test]
        fn credits_never_exceed_what_is_left_and_what_is_left_never_goes_below_zero(
            total in -1_000_i64..10_000_000,
            credited_before in 0_i64..10_000_000,
            corrections in proptest::collection::vec((0_i64..5_000_000, 0_u32..30), 0..8),
        ) {
            let mut left = LeftToCredit::of(total, credited_before);
            let start = left.left_minor();
            prop_assert_eq!(start, (total - credited_before).max(0));
            let mut credited = 0_i64;
            for (net, rate) in corrections {
                let amounts =
                    CreditAmounts::new(eur_minor(net), eur_minor(net * i64::from(rate) / 100)).unwrap();
                let before = left.left_minor();
                let taken = left.credit(amounts, RoundingMode::HalfEven).unwrap();
                prop_assert!(taken.total().amount_minor() <= amounts.total().amount_minor());
                prop_assert_eq!(taken.total().amount_minor(), amounts.total().amount_minor().min(before));
                prop_assert!(left.left_minor() >= 0);
                credited += taken.total().amount_minor();
            }
            prop_assert_eq!(credited + left.left_minor(), start);
        }

        #[test]
        fn notes_written_one_by_one_never_credit_more_than_the_total(
            total in 0_i64..10_000_000,
            notes in proptest::collection::vec(-10_i64..3_000_000, 0..12),
        ) {
            let mut invoice = InvoiceCredits::new(total, 0);
            for note in notes {
                let before = invoice;
                match invoice.with_note(note) {
                    Ok(after) => {
                        prop_assert!(note > 0 && note <= before.left_to_credit().left_minor());
                        prop_assert_eq!(after.credited_minor(), before.credited_minor() + note);
                        invoice = after;
                    }
                    Err(_) => prop_assert!(note <= 0 || note > before.left_to_credit().left_minor()),
                }
                prop_assert!(invoice.credited_minor() <= total);
                prop_assert_eq!(
                    invoice.left_to_credit().left_minor(),
                    total - invoice.credited_minor()
                );
            }
        }
    }
}
