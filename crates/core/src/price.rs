//! Price models: how a quantity (or a list of transaction amounts) becomes an unrounded amount.
//!
//! Every function here is exact `Decimal` arithmetic and returns, beside the amount, the steps that
//! produced it (tiers hit, packages, fees), so an invoice line can explain itself.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Most tiers a tiered price may have.
pub const MAX_TIERS: usize = 64;

/// One tier of a graduated or volume price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The tier's inclusive upper bound; `None` for the last tier.
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub up_to: Option<Decimal>,
    /// The price of each unit in the tier.
    #[serde(default, deserialize_with = "crate::decimal::exact")]
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub unit_amount: Decimal,
    /// A fee charged once when the tier is used.
    #[serde(default, deserialize_with = "crate::decimal::exact")]
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub flat_amount: Decimal,
}

/// One tier of a graduated percentage price, over the running total of transaction amounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PercentageTier {
    /// The tier's inclusive upper bound of the running total; `None` for the last tier.
    #[serde(default, deserialize_with = "crate::decimal::exact_option")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
    pub up_to: Option<Decimal>,
    /// The rate in percent applied to the part of the total inside the tier.
    #[serde(deserialize_with = "crate::decimal::exact")]
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub rate_percent: Decimal,
    /// A fee charged once, when the running total first enters the tier.
    #[serde(default, deserialize_with = "crate::decimal::exact")]
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub flat_amount: Decimal,
}

/// A pricing model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriceModel {
    /// One fixed amount, whatever the quantity.
    Flat {
        /// The amount.
        #[serde(deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        amount: Decimal,
    },
    /// The same price for every unit.
    PerUnit {
        /// The price of one unit.
        #[serde(deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        unit_amount: Decimal,
    },
    /// Each tier prices the units that fall inside it; the first tier's flat fee applies even at
    /// zero usage, a later tier's once the quantity enters it.
    Graduated {
        /// The tiers, in increasing order of `up_to`.
        tiers: Vec<Tier>,
    },
    /// The tier that holds the total prices every unit; its flat fee is added.
    Volume {
        /// The tiers, in increasing order of `up_to`.
        tiers: Vec<Tier>,
    },
    /// Units sold in packages; a partial package is a whole one. Free units come first.
    Package {
        /// Units in one package.
        #[serde(deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        package_size: Decimal,
        /// The price of one package.
        #[serde(deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        package_amount: Decimal,
        /// Units given free before packages are counted.
        #[serde(default, deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        free_units: Decimal,
    },
    /// A share of each transaction's amount plus a fixed fee per transaction.
    Percentage {
        /// The rate in percent of each chargeable amount.
        #[serde(deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        rate_percent: Decimal,
        /// A fee per transaction not wholly covered by the free allowance.
        #[serde(default, deserialize_with = "crate::decimal::exact")]
        #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
        fixed_fee: Decimal,
        /// The first N transactions are free (with `free_amount`, until either runs out).
        #[serde(default)]
        free_events: Option<u64>,
        /// The first amount of transactions is free (with `free_events`, until either runs out).
        #[serde(default, deserialize_with = "crate::decimal::exact_option")]
        #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
        free_amount: Option<Decimal>,
        /// The smallest fee of a charged transaction.
        #[serde(default, deserialize_with = "crate::decimal::exact_option")]
        #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
        min_per_transaction: Option<Decimal>,
        /// The largest fee of a charged transaction.
        #[serde(default, deserialize_with = "crate::decimal::exact_option")]
        #[cfg_attr(feature = "utoipa", schema(value_type = Option<crate::schema::DecimalText>))]
        max_per_transaction: Option<Decimal>,
    },
    /// Tiers of rates over the running total of transaction amounts.
    GraduatedPercentage {
        /// The tiers, in increasing order of `up_to`.
        tiers: Vec<PercentageTier>,
    },
}

/// Why a price definition is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPriceError {
    /// A tiered price has no tiers.
    #[error("a tiered price needs at least one tier")]
    NoTiers,
    /// Too many tiers.
    #[error("{count} tiers; at most {MAX_TIERS}")]
    TooManyTiers {
        /// How many were given.
        count: usize,
    },
    /// Tier bounds do not increase, or a non-last tier is unbounded, or the last is bounded.
    #[error("tier {index}: `up_to` must increase, and only the last tier is unbounded")]
    TierBounds {
        /// The offending tier's index.
        index: usize,
    },
    /// An amount, rate or size that must not be negative is.
    #[error("`{field}` must not be negative")]
    Negative {
        /// The field.
        field: &'static str,
    },
    /// The package size is zero.
    #[error("`package_size` must be positive")]
    EmptyPackage,
    /// A rate above 100 percent.
    #[error("`rate_percent` must be at most 100")]
    RateAbove100,
    /// The transaction minimum exceeds the maximum.
    #[error("`min_per_transaction` exceeds `max_per_transaction`")]
    MinimumAboveMaximum,
}

/// Why a quantity could not be rated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatePriceError {
    /// Usage quantities are never negative.
    #[error("quantity {quantity} is negative")]
    NegativeQuantity {
        /// The quantity.
        quantity: Decimal,
    },
    /// The arithmetic overflowed `Decimal`'s 96-bit mantissa.
    #[error("the amount overflows")]
    Overflow,
}

/// What a rating step priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A flat amount.
    Flat,
    /// Units at one unit price.
    Unit,
    /// Units inside a tier (graduated), or all units at the chosen tier (volume).
    Tier,
    /// Whole packages.
    Package,
    /// A rate on an amount.
    Percentage,
    /// Fixed fees per transaction.
    TransactionFee,
    /// Raising charged transactions to the minimum fee.
    TransactionMinimum,
    /// Lowering charged transactions to the maximum fee.
    TransactionMaximum,
}

/// One step of a rating: `quantity × unit_amount + flat_amount = amount`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RatingStep {
    /// What the step prices.
    pub kind: StepKind,
    /// The tier's index, for tiered models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<u16>,
    /// The quantity priced (units, packages, amount for a rate, transactions for a fee).
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub quantity: Decimal,
    /// The price per quantity (a rate is a fraction: 2.9 % is 0.029).
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub unit_amount: Decimal,
    /// A flat part.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub flat_amount: Decimal,
    /// The step's unrounded amount.
    #[cfg_attr(feature = "utoipa", schema(value_type = crate::schema::DecimalText))]
    pub amount: Decimal,
}

/// The unrounded amount of a rating, with its steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rating {
    /// The sum of the steps' amounts.
    pub amount: Decimal,
    /// How the amount came about.
    pub steps: Vec<RatingStep>,
}

impl Rating {
    fn push(&mut self, step: RatingStep) -> Result<(), RatePriceError> {
        self.amount = self
            .amount
            .checked_add(step.amount)
            .ok_or(RatePriceError::Overflow)?;
        self.steps.push(step);
        Ok(())
    }
}

fn step(
    kind: StepKind,
    tier: Option<usize>,
    quantity: Decimal,
    unit_amount: Decimal,
    flat_amount: Decimal,
) -> Result<RatingStep, RatePriceError> {
    let amount = quantity
        .checked_mul(unit_amount)
        .and_then(|product| product.checked_add(flat_amount))
        .ok_or(RatePriceError::Overflow)?;
    Ok(RatingStep {
        kind,
        tier: tier.map(|index| index as u16),
        quantity,
        unit_amount,
        flat_amount,
        amount,
    })
}

fn check_bounds<T>(
    tiers: &[T],
    up_to: impl Fn(&T) -> Option<Decimal>,
) -> Result<(), InvalidPriceError> {
    if tiers.is_empty() {
        return Err(InvalidPriceError::NoTiers);
    }
    if tiers.len() > MAX_TIERS {
        return Err(InvalidPriceError::TooManyTiers { count: tiers.len() });
    }
    let mut previous = Decimal::ZERO;
    for (index, tier) in tiers.iter().enumerate() {
        let last = index + 1 == tiers.len();
        match up_to(tier) {
            None if last => {}
            Some(bound) if !last && bound > previous => previous = bound,
            _ => return Err(InvalidPriceError::TierBounds { index }),
        }
    }
    Ok(())
}

fn not_negative(field: &'static str, value: Decimal) -> Result<(), InvalidPriceError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(InvalidPriceError::Negative { field });
    }
    Ok(())
}

impl PriceModel {
    /// Checks the definition: tier order and count, signs, package size, rates.
    ///
    /// # Errors
    /// [`InvalidPriceError`] naming what is wrong.
    pub fn validate(&self) -> Result<(), InvalidPriceError> {
        match self {
            PriceModel::Flat { amount } => not_negative("amount", *amount),
            PriceModel::PerUnit { unit_amount } => not_negative("unit_amount", *unit_amount),
            PriceModel::Graduated { tiers } | PriceModel::Volume { tiers } => {
                check_bounds(tiers, |tier| tier.up_to)?;
                for tier in tiers {
                    not_negative("unit_amount", tier.unit_amount)?;
                    not_negative("flat_amount", tier.flat_amount)?;
                }
                Ok(())
            }
            PriceModel::Package {
                package_size,
                package_amount,
                free_units,
            } => {
                if *package_size <= Decimal::ZERO {
                    return Err(InvalidPriceError::EmptyPackage);
                }
                not_negative("package_amount", *package_amount)?;
                not_negative("free_units", *free_units)
            }
            PriceModel::Percentage {
                rate_percent,
                fixed_fee,
                free_amount,
                min_per_transaction,
                max_per_transaction,
                ..
            } => {
                check_rate(*rate_percent)?;
                not_negative("fixed_fee", *fixed_fee)?;
                for (field, value) in [
                    ("free_amount", free_amount),
                    ("min_per_transaction", min_per_transaction),
                    ("max_per_transaction", max_per_transaction),
                ] {
                    if let Some(value) = value {
                        not_negative(field, *value)?;
                    }
                }
                match (min_per_transaction, max_per_transaction) {
                    (Some(min), Some(max)) if min > max => {
                        Err(InvalidPriceError::MinimumAboveMaximum)
                    }
                    _ => Ok(()),
                }
            }
            PriceModel::GraduatedPercentage { tiers } => {
                check_bounds(tiers, |tier| tier.up_to)?;
                for tier in tiers {
                    check_rate(tier.rate_percent)?;
                    not_negative("flat_amount", tier.flat_amount)?;
                }
                Ok(())
            }
        }
    }

    /// The amounts this price charges as they are, each with its field's path inside the
    /// pricing (`amount`, `tiers[1].flat_amount`, `fixed_fee`): what must be whole minor units
    /// of the price's currency. Unit amounts and rates are not among them: they multiply a
    /// quantity (0.35 yen per API call, 0.023 USD per GB-month) and the line they make is
    /// rounded once; thresholds (`up_to`, `free_amount`) charge nothing.
    pub fn charged_amounts(&self) -> Vec<(String, Decimal)> {
        let tier_fees = |fees: Vec<Decimal>| {
            fees.into_iter()
                .enumerate()
                .map(|(index, fee)| (format!("tiers[{index}].flat_amount"), fee))
                .collect()
        };
        match self {
            PriceModel::Flat { amount } => vec![("amount".to_owned(), *amount)],
            PriceModel::PerUnit { .. } => Vec::new(),
            PriceModel::Graduated { tiers } | PriceModel::Volume { tiers } => {
                tier_fees(tiers.iter().map(|tier| tier.flat_amount).collect())
            }
            PriceModel::Package { package_amount, .. } => {
                vec![("package_amount".to_owned(), *package_amount)]
            }
            PriceModel::Percentage {
                fixed_fee,
                min_per_transaction,
                max_per_transaction,
                ..
            } => [
                ("fixed_fee", Some(*fixed_fee)),
                ("min_per_transaction", *min_per_transaction),
                ("max_per_transaction", *max_per_transaction),
            ]
            .into_iter()
            .filter_map(|(field, amount)| amount.map(|amount| (field.to_owned(), amount)))
            .collect(),
            PriceModel::GraduatedPercentage { tiers } => {
                tier_fees(tiers.iter().map(|tier| tier.flat_amount).collect())
            }
        }
    }

    /// True for the models priced on transaction amounts rather than a quantity.
    pub fn is_percentage(&self) -> bool {
        matches!(
            self,
            PriceModel::Percentage { .. } | PriceModel::GraduatedPercentage { .. }
        )
    }

    /// Rates `quantity` (for percentage models, the `transactions` amounts in order).
    ///
    /// # Errors
    /// [`RatePriceError::NegativeQuantity`] for a negative quantity, and
    /// [`RatePriceError::Overflow`].
    pub fn rate(
        &self,
        quantity: Decimal,
        transactions: &[Decimal],
    ) -> Result<Rating, RatePriceError> {
        if quantity.is_sign_negative() && !quantity.is_zero() {
            return Err(RatePriceError::NegativeQuantity { quantity });
        }
        let mut rating = Rating::default();
        match self {
            PriceModel::Flat { amount } => {
                rating.push(step(
                    StepKind::Flat,
                    None,
                    Decimal::ONE,
                    Decimal::ZERO,
                    *amount,
                )?)?;
            }
            PriceModel::PerUnit { unit_amount } => {
                rating.push(step(
                    StepKind::Unit,
                    None,
                    quantity,
                    *unit_amount,
                    Decimal::ZERO,
                )?)?;
            }
            PriceModel::Graduated { tiers } => rate_graduated(tiers, quantity, &mut rating)?,
            PriceModel::Volume { tiers } => rate_volume(tiers, quantity, &mut rating)?,
            PriceModel::Package {
                package_size,
                package_amount,
                free_units,
            } => {
                let chargeable = (quantity - *free_units).max(Decimal::ZERO);
                let packages = (chargeable / *package_size).ceil();
                rating.push(step(
                    StepKind::Package,
                    None,
                    packages,
                    *package_amount,
                    Decimal::ZERO,
                )?)?;
            }
            PriceModel::Percentage { .. } => rate_percentage(self, transactions, &mut rating)?,
            PriceModel::GraduatedPercentage { tiers } => {
                rate_graduated_percentage(tiers, transactions, &mut rating)?
            }
        }
        Ok(rating)
    }
}

fn check_rate(rate_percent: Decimal) -> Result<(), InvalidPriceError> {
    not_negative("rate_percent", rate_percent)?;
    if rate_percent > Decimal::ONE_HUNDRED {
        return Err(InvalidPriceError::RateAbove100);
    }
    Ok(())
}

fn rate_graduated(
    tiers: &[Tier],
    quantity: Decimal,
    rating: &mut Rating,
) -> Result<(), RatePriceError> {
    let mut from = Decimal::ZERO;
    for (index, tier) in tiers.iter().enumerate() {
        if index > 0 && quantity <= from {
            break;
        }
        let top = tier.up_to.map_or(quantity, |bound| bound.min(quantity));
        let units = (top - from).max(Decimal::ZERO);
        rating.push(step(
            StepKind::Tier,
            Some(index),
            units,
            tier.unit_amount,
            tier.flat_amount,
        )?)?;
        match tier.up_to {
            Some(bound) => from = bound,
            None => break,
        }
    }
    Ok(())
}

fn rate_volume(
    tiers: &[Tier],
    quantity: Decimal,
    rating: &mut Rating,
) -> Result<(), RatePriceError> {
    let index = tiers
        .iter()
        .position(|tier| tier.up_to.is_none_or(|bound| quantity <= bound))
        .unwrap_or(tiers.len() - 1);
    let tier = &tiers[index];
    rating.push(step(
        StepKind::Tier,
        Some(index),
        quantity,
        tier.unit_amount,
        tier.flat_amount,
    )?)
}

fn rate_percentage(
    model: &PriceModel,
    transactions: &[Decimal],
    rating: &mut Rating,
) -> Result<(), RatePriceError> {
    let PriceModel::Percentage {
        rate_percent,
        fixed_fee,
        free_events,
        free_amount,
        min_per_transaction,
        max_per_transaction,
    } = model
    else {
        unreachable!("rate_percentage is only called for the percentage model");
    };
    let rate = *rate_percent / Decimal::ONE_HUNDRED;
    let has_allowance = free_events.is_some() || free_amount.is_some();
    let mut free_events_left = free_events.unwrap_or(u64::MAX);
    let mut free_amount_left = free_amount.unwrap_or(Decimal::MAX);
    let (mut chargeable_total, mut charged_count) = (Decimal::ZERO, 0_u64);
    let (mut raised, mut lowered) = (Decimal::ZERO, Decimal::ZERO);
    for amount in transactions {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(RatePriceError::NegativeQuantity { quantity: *amount });
        }
        let mut chargeable = *amount;
        if has_allowance && free_events_left > 0 && free_amount_left > Decimal::ZERO {
            let covered = chargeable.min(free_amount_left);
            free_amount_left -= covered;
            chargeable -= covered;
            free_events_left -= 1;
            if chargeable.is_zero() {
                continue;
            }
        }
        let fee = chargeable * rate + *fixed_fee;
        let bounded = clamp_fee(fee, *min_per_transaction, *max_per_transaction);
        if bounded > fee {
            raised += bounded - fee;
        } else {
            lowered += fee - bounded;
        }
        chargeable_total += chargeable;
        charged_count += 1;
    }
    rating.push(step(
        StepKind::Percentage,
        None,
        chargeable_total,
        rate,
        Decimal::ZERO,
    )?)?;
    if !fixed_fee.is_zero() {
        rating.push(step(
            StepKind::TransactionFee,
            None,
            Decimal::from(charged_count),
            *fixed_fee,
            Decimal::ZERO,
        )?)?;
    }
    if !raised.is_zero() {
        rating.push(step(
            StepKind::TransactionMinimum,
            None,
            Decimal::ZERO,
            Decimal::ZERO,
            raised,
        )?)?;
    }
    if !lowered.is_zero() {
        rating.push(step(
            StepKind::TransactionMaximum,
            None,
            Decimal::ZERO,
            Decimal::ZERO,
            -lowered,
        )?)?;
    }
    Ok(())
}

fn clamp_fee(fee: Decimal, minimum: Option<Decimal>, maximum: Option<Decimal>) -> Decimal {
    let raised = minimum.map_or(fee, |minimum| fee.max(minimum));
    maximum.map_or(raised, |maximum| raised.min(maximum))
}

fn rate_graduated_percentage(
    tiers: &[PercentageTier],
    transactions: &[Decimal],
    rating: &mut Rating,
) -> Result<(), RatePriceError> {
    let mut total = Decimal::ZERO;
    for amount in transactions {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(RatePriceError::NegativeQuantity { quantity: *amount });
        }
        total = total.checked_add(*amount).ok_or(RatePriceError::Overflow)?;
    }
    if transactions.is_empty() {
        return Ok(());
    }
    let mut from = Decimal::ZERO;
    for (index, tier) in tiers.iter().enumerate() {
        if index > 0 && total <= from {
            break;
        }
        let top = tier.up_to.map_or(total, |bound| bound.min(total));
        let inside = (top - from).max(Decimal::ZERO);
        let rate = tier.rate_percent / Decimal::ONE_HUNDRED;
        rating.push(step(
            StepKind::Tier,
            Some(index),
            inside,
            rate,
            tier.flat_amount,
        )?)?;
        match tier.up_to {
            Some(bound) => from = bound,
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
