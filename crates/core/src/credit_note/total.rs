//! A credit note's total: the sum of its lines, each a positive amount in the invoice's currency.

use crate::currency::Currency;
use crate::money::Money;

/// The total of a credit note whose lines are added one at a time, so that a bad line is named
/// by its place (`POST /api/v1/invoices/{id}/credit-notes` answers with `lines[i].amount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditNoteTotal {
    total: Money,
}

/// Why a line cannot be added to a credit note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddCreditNoteLineError {
    /// A line credits a positive amount.
    #[error("a credit note line of {amount} is not positive")]
    NotPositive {
        /// The line's amount.
        amount: Money,
    },
    /// The line is in another currency than the note.
    #[error("a {found} line on a {expected} credit note")]
    CurrencyMismatch {
        /// The note's currency.
        expected: Currency,
        /// The line's.
        found: Currency,
    },
    /// The total would not fit in 64-bit minor units.
    #[error("the credit note's total overflows 64-bit minor units of {currency}")]
    Overflow {
        /// The note's currency.
        currency: Currency,
    },
}

impl CreditNoteTotal {
    /// A credit note without lines yet, in `currency`: zero.
    pub fn new(currency: Currency) -> Self {
        Self {
            total: Money::zero(currency),
        }
    }

    /// Adds a line of `amount`.
    ///
    /// # Errors
    /// [`AddCreditNoteLineError`] when the amount is zero or negative, in another currency, or
    /// the total overflows; the total is unchanged then.
    pub fn add_line(&mut self, amount: Money) -> Result<(), AddCreditNoteLineError> {
        let currency = self.total.currency();
        if amount.currency() != currency {
            return Err(AddCreditNoteLineError::CurrencyMismatch {
                expected: currency,
                found: amount.currency(),
            });
        }
        if amount.amount_minor() <= 0 {
            return Err(AddCreditNoteLineError::NotPositive { amount });
        }
        self.total = self
            .total
            .checked_add(amount)
            .map_err(|_| AddCreditNoteLineError::Overflow { currency })?;
        Ok(())
    }

    /// The sum of the lines added.
    pub fn total(&self) -> Money {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    #[test]
    fn a_credit_note_totals_its_lines() {
        let mut note = CreditNoteTotal::new(eur());
        note.add_line(Money::from_minor(250, eur())).unwrap();
        note.add_line(Money::from_minor(1, eur())).unwrap();

        assert_eq!(note.total(), Money::from_minor(251, eur()));
    }

    #[test]
    fn a_line_of_zero_or_less_another_currency_or_too_large_is_refused_and_leaves_the_total() {
        let mut note = CreditNoteTotal::new(eur());
        note.add_line(Money::from_minor(i64::MAX - 1, eur()))
            .unwrap();
        let usd = Currency::from_code("USD").unwrap();

        assert!(matches!(
            note.add_line(Money::from_minor(0, eur())),
            Err(AddCreditNoteLineError::NotPositive { .. })
        ));
        assert!(matches!(
            note.add_line(Money::from_minor(-5, eur())),
            Err(AddCreditNoteLineError::NotPositive { .. })
        ));
        assert!(matches!(
            note.add_line(Money::from_minor(1, usd)),
            Err(AddCreditNoteLineError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            note.add_line(Money::from_minor(2, eur())),
            Err(AddCreditNoteLineError::Overflow { currency: eur() })
        );
        assert_eq!(note.total(), Money::from_minor(i64::MAX - 1, eur()));
    }

    proptest! {
        #[test]
        fn a_credit_note_total_is_the_sum_of_its_lines(
            lines in proptest::collection::vec(1_i64..1_000_000_000, 0..100),
        ) {
            let mut note = CreditNoteTotal::new(eur());
            for line in &lines {
                note.add_line(Money::from_minor(*line, eur())).unwrap();
            }
            prop_assert_eq!(note.total().amount_minor(), lines.iter().sum::<i64>());
            prop_assert!(note.total().amount_minor() >= 0);
        }
    }
}
