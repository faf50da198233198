//! What credit notes may take off one line of an invoice: never more than the line's amount.

use crate::money::{Money, MoneyError};

/// What is left to credit on one invoice line: its amount, less what the credit note lines that
/// name it took off (earlier notes' and this note's, in turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCredits {
    line: Money,
    credited: Money,
}

/// Why a credit of a line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditLineError {
    /// More than what is left of the line.
    #[error("{amount} is more than the {left} left to credit on a line of {line}")]
    AboveLine {
        /// The credit asked for.
        amount: Money,
        /// What was left to credit on the line (zero or more).
        left: Money,
        /// The line's amount.
        line: Money,
    },
    /// The credit is in another currency than the line, or the sum overflows.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl LineCredits {
    /// A line of `amount` nothing has credited yet. A line that charges nothing or takes off
    /// (a discount, a credit) has nothing to credit.
    #[must_use]
    pub fn new(amount: Money) -> Self {
        Self {
            line: amount,
            credited: Money::zero(amount.currency()),
        }
    }

    /// What is left to credit: the line's amount less what was credited, never below zero.
    ///
    /// # Errors
    /// [`MoneyError`] on overflow (not for amounts an invoice holds).
    pub fn left(&self) -> Result<Money, MoneyError> {
        let left = self.line.checked_sub(self.credited)?;
        Ok(if left.amount_minor() < 0 {
            Money::zero(left.currency())
        } else {
            left
        })
    }

    /// Takes `amount` off the line.
    ///
    /// # Errors
    /// [`CreditLineError::AboveLine`] when it is more than what is left (nothing is taken then).
    pub fn credit(&mut self, amount: Money) -> Result<(), CreditLineError> {
        let left = self.left()?;
        if amount.currency() != left.currency() {
            return Err(MoneyError::CurrencyMismatch {
                left: left.currency(),
                right: amount.currency(),
            }
            .into());
        }
        if amount.amount_minor() > left.amount_minor() {
            return Err(CreditLineError::AboveLine {
                amount,
                left,
                line: self.line,
            });
        }
        self.credited = self.credited.checked_add(amount)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::from_code("EUR").unwrap())
    }

    #[test]
    fn a_line_is_credited_up_to_its_amount_across_notes() {
        let mut line = LineCredits::new(eur(1_200));
        line.credit(eur(500)).unwrap();
        line.credit(eur(700)).unwrap();
        assert_eq!(line.left().unwrap(), eur(0));
        assert_eq!(
            line.credit(eur(1)),
            Err(CreditLineError::AboveLine {
                amount: eur(1),
                left: eur(0),
                line: eur(1_200),
            })
        );
    }

    #[test]
    fn a_refused_credit_takes_nothing() {
        let mut line = LineCredits::new(eur(1_000));
        line.credit(eur(400)).unwrap();
        assert!(line.credit(eur(601)).is_err());
        assert_eq!(line.left().unwrap(), eur(600));
        line.credit(eur(600)).unwrap();
    }

    #[test]
    fn a_line_that_takes_off_has_nothing_to_credit() {
        let mut discount = LineCredits::new(eur(-300));
        assert_eq!(discount.left().unwrap(), eur(0));
        assert!(matches!(
            discount.credit(eur(1)),
            Err(CreditLineError::AboveLine { .. })
        ));
    }
}
