//! Settled amounts in integer minor units, and the one function that rounds to them.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::currency::Currency;

/// How a `Decimal` amount is rounded to the currency's minor unit.
///
/// The mode is a workspace setting and is recorded on every invoice it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Ties away from zero: 0.5 → 1, 1.5 → 2, 2.5 → 3, −0.5 → −1. The default.
    #[default]
    HalfUp,
    /// Ties to the even neighbour (banker's rounding): 0.5 → 0, 1.5 → 2, 2.5 → 2.
    HalfEven,
}

/// An error of money arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflows 64-bit minor units of {currency}")]
    Overflow {
        /// The currency of the amount.
        currency: Currency,
    },
    /// An amount that must already be settled has digits below the minor unit.
    #[error("{amount} {currency} has digits below the currency's minor unit")]
    NotAMinorUnitMultiple {
        /// The amount as given.
        amount: Decimal,
        /// Its currency.
        currency: Currency,
    },
}

/// A settled amount: an integer number of the currency's minor units.
///
/// ```
/// use billow_core::{Currency, Money, RoundingMode, round_to_money};
/// use rust_decimal::Decimal;
/// let usd = Currency::from_code("USD").unwrap();
/// let amount = round_to_money(Decimal::new(72435, 4), usd, RoundingMode::HalfUp).unwrap();
/// assert_eq!(amount, Money::from_minor(724, usd));
/// assert_eq!(amount.to_string(), "7.24 USD");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount of `amount_minor` minor units (cents for USD, yen for JPY, fils for KWD).
    pub fn from_minor(amount_minor: i64, currency: Currency) -> Money {
        Money {
            amount_minor,
            currency,
        }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// Converts an amount that is already a whole number of minor units (such as `12.50` USD).
    ///
    /// # Errors
    /// [`MoneyError::NotAMinorUnitMultiple`] when digits below the minor unit are not zero, and
    /// [`MoneyError::Overflow`] when it does not fit.
    pub fn from_exact_decimal(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let scaled = amount
            .checked_mul(Decimal::from(10_i64.pow(currency.exponent())))
            .ok_or(MoneyError::Overflow { currency })?;
        if scaled.fract() != Decimal::ZERO {
            return Err(MoneyError::NotAMinorUnitMultiple { amount, currency });
        }
        let amount_minor = i64::try_from(scaled).map_err(|_| MoneyError::Overflow { currency })?;
        Ok(Money::from_minor(amount_minor, currency))
    }

    /// The amount in minor units.
    pub fn amount_minor(self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The amount in major units as an exact `Decimal` (724 cents → 7.24).
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.amount_minor, self.currency.exponent())
    }

    /// Adds two amounts of one currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.amount_minor
            .checked_add(other.amount_minor)
            .map(|sum| Money::from_minor(sum, self.currency))
            .ok_or(MoneyError::Overflow {
                currency: self.currency,
            })
    }

    /// Subtracts `other` from `self`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.checked_add(other.checked_neg()?)
    }

    /// The opposite amount.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] for `i64::MIN` minor units.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.amount_minor
            .checked_neg()
            .map(|negated| Money::from_minor(negated, self.currency))
            .ok_or(MoneyError::Overflow {
                currency: self.currency,
            })
    }

    /// True when the amount is zero.
    pub fn is_zero(self) -> bool {
        self.amount_minor == 0
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

impl fmt::Display for Money {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.to_decimal(), self.currency)
    }
}

/// Money is written as `{"amount": "7.24", "amount_minor": 724, "currency": "USD"}`: the decimal
/// string for people, the integer for programs.
impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("Money", 3)?;
        state.serialize_field("amount", &self.to_decimal().to_string())?;
        state.serialize_field("amount_minor", &self.amount_minor)?;
        state.serialize_field("currency", &self.currency)?;
        state.end()
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            amount_minor: i64,
            currency: Currency,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(Money::from_minor(wire.amount_minor, wire.currency))
    }
}

/// `percent` % of an amount in minor units, rounded to a whole minor unit with `mode`.
///
/// Exact and division-free: `amount_minor × percent` shifted by two more decimal places, so a tax
/// or discount line is rounded once, like every other line.
///
/// # Errors
/// [`MoneyError::Overflow`] when the result does not fit.
pub fn percent_of_minor(
    amount_minor: i64,
    percent: Decimal,
    currency: Currency,
    mode: RoundingMode,
) -> Result<i64, MoneyError> {
    let product = i128::from(amount_minor)
        .checked_mul(percent.mantissa())
        .ok_or(MoneyError::Overflow { currency })?;
    round_scaled(product, percent.scale() + 2, mode)
        .and_then(|minor| i64::try_from(minor).ok())
        .ok_or(MoneyError::Overflow { currency })
}

/// Rounds an unrounded amount to the currency's minor unit: the one place where billow rounds money.
///
/// # Errors
/// [`MoneyError::Overflow`] when the rounded amount does not fit in 64-bit minor units.
pub fn round_to_money(
    amount: Decimal,
    currency: Currency,
    mode: RoundingMode,
) -> Result<Money, MoneyError> {
    let overflow = MoneyError::Overflow { currency };
    let (mantissa, scale, exponent) = (amount.mantissa(), amount.scale(), currency.exponent());
    let minor = if scale >= exponent {
        round_scaled(mantissa, scale - exponent, mode)
    } else {
        10_i128
            .checked_pow(exponent - scale)
            .and_then(|factor| mantissa.checked_mul(factor))
    }
    .ok_or(overflow.clone())?;
    let amount_minor = i64::try_from(minor).map_err(|_| overflow)?;
    Ok(Money::from_minor(amount_minor, currency))
}

/// `mantissa ÷ 10^scale` rounded to an integer with `mode`, in integer arithmetic: one division,
/// where `Decimal::round_dp` divides by ten once per digit dropped.
fn round_scaled(mantissa: i128, scale: u32, mode: RoundingMode) -> Option<i128> {
    if scale == 0 {
        return Some(mantissa);
    }
    let divisor = 10_i128.checked_pow(scale)?;
    let quotient = mantissa / divisor;
    let twice_remainder = (mantissa % divisor).abs() * 2;
    let away_from_zero = match twice_remainder.cmp(&divisor) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => match mode {
            RoundingMode::HalfUp => true,
            RoundingMode::HalfEven => quotient % 2 != 0,
        },
    };
    Some(if away_from_zero {
        quotient + mantissa.signum()
    } else {
        quotient
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use rust_decimal_macros::dec;

    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    #[rstest]
    #[case(dec!(0.005), RoundingMode::HalfUp, 1)]
    #[case(dec!(0.015), RoundingMode::HalfUp, 2)]
    #[case(dec!(0.025), RoundingMode::HalfUp, 3)]
    #[case(dec!(0.005), RoundingMode::HalfEven, 0)]
    #[case(dec!(0.015), RoundingMode::HalfEven, 2)]
    #[case(dec!(0.025), RoundingMode::HalfEven, 2)]
    #[case(dec!(-0.005), RoundingMode::HalfUp, -1)]
    #[case(dec!(-0.025), RoundingMode::HalfEven, -2)]
    #[case(dec!(7.2435483870967741935483870968), RoundingMode::HalfUp, 724)]
    fn ties_round_by_the_mode(
        #[case] amount: Decimal,
        #[case] mode: RoundingMode,
        #[case] minor: i64,
    ) {
        assert_eq!(
            round_to_money(amount, currency("USD"), mode)
                .unwrap()
                .amount_minor(),
            minor
        );
    }

    #[test]
    fn rounding_uses_the_currency_exponent() {
        assert_eq!(
            round_to_money(dec!(1234.5), currency("JPY"), RoundingMode::HalfUp)
                .unwrap()
                .amount_minor(),
            1235
        );
        assert_eq!(
            round_to_money(dec!(1.2345), currency("KWD"), RoundingMode::HalfEven)
                .unwrap()
                .amount_minor(),
            1234
        );
        assert_eq!(
            round_to_money(dec!(1.23456), currency("CLF"), RoundingMode::HalfUp)
                .unwrap()
                .amount_minor(),
            12346
        );
    }

    proptest::proptest! {
        #[test]
        fn integer_rounding_agrees_with_decimal_rounding(mantissa in -10_i64.pow(15)..10_i64.pow(15), scale in 0_u32..12, even in proptest::bool::ANY) {
            let amount = Decimal::new(mantissa, scale);
            let (mode, strategy) = if even {
                (RoundingMode::HalfEven, rust_decimal::RoundingStrategy::MidpointNearestEven)
            } else {
                (RoundingMode::HalfUp, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            };
            let expected = i64::try_from((amount * Decimal::ONE_HUNDRED).round_dp_with_strategy(0, strategy)).unwrap();
            proptest::prop_assert_eq!(round_to_money(amount, currency("USD"), mode).unwrap().amount_minor(), expected);
        }
    }

    #[test]
    fn percentages_of_minor_units_round_once() {
        let usd = currency("USD");
        assert_eq!(
            percent_of_minor(8500, dec!(19), usd, RoundingMode::HalfUp).unwrap(),
            1615
        );
        assert_eq!(
            percent_of_minor(3333, dec!(10), usd, RoundingMode::HalfUp).unwrap(),
            333
        );
        assert_eq!(
            percent_of_minor(5, dec!(10), usd, RoundingMode::HalfUp).unwrap(),
            1
        );
        assert_eq!(
            percent_of_minor(5, dec!(10), usd, RoundingMode::HalfEven).unwrap(),
            0
        );
        assert_eq!(
            percent_of_minor(-5, dec!(10), usd, RoundingMode::HalfUp).unwrap(),
            -1
        );
        assert_eq!(
            percent_of_minor(470, dec!(19), usd, RoundingMode::HalfUp).unwrap(),
            89
        );
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let sum = Money::from_minor(1, currency("USD"))
            .checked_add(Money::from_minor(1, currency("EUR")));
        assert!(matches!(sum, Err(MoneyError::CurrencyMismatch { .. })));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let max = Money::from_minor(i64::MAX, currency("USD"));
        assert!(matches!(
            max.checked_add(Money::from_minor(1, currency("USD"))),
            Err(MoneyError::Overflow { .. })
        ));
        assert!(round_to_money(Decimal::MAX, currency("USD"), RoundingMode::HalfUp).is_err());
    }

    #[test]
    fn exact_decimals_must_be_whole_minor_units() {
        assert_eq!(
            Money::from_exact_decimal(dec!(12.50), currency("USD"))
                .unwrap()
                .amount_minor(),
            1250
        );
        assert!(Money::from_exact_decimal(dec!(12.505), currency("USD")).is_err());
        assert_eq!(
            Money::from_exact_decimal(dec!(1.234), currency("KWD"))
                .unwrap()
                .amount_minor(),
            1234
        );
    }
}
