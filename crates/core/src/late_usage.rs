//! Late usage: what usage reported after an invoice was finalized changes on it.
//!
//! A finalized invoice never changes (docs/billing-runs.md, "Late usage"). When a billing run
//! recomputes the period of a finalized invoice and the amount before tax of its own lines
//! ([`Invoice::net_before_tax_minor`]) moved, the difference becomes an adjustment, billed as a
//! line of the next invoice (or credited, when negative, by a credit note). Each adjustment is
//! recorded against the finalized invoice, so a later run records only what moved since.
//!
//! ```
//! use billow_core::late_usage::late_usage_adjustment;
//! use billow_core::{Currency, Money};
//! # use billow_core::invoice::{assemble_invoice, Charge, InvoiceInput, LineKind};
//! # use billow_core::{Period, RoundingMode};
//! # use rust_decimal::Decimal;
//! let eur = Currency::from_code("EUR").unwrap();
//! # let period = Period::new("2024-01-01T00:00:00Z".parse().unwrap(), "2024-02-01T00:00:00Z".parse().unwrap()).unwrap();
//! # let charge = Charge { kind: LineKind::Usage, description: "API calls".into(), price: None, meter: None,
//! #     project: None, period, quantity: Decimal::ONE, amount: Decimal::new(1290, 2), target: None,
//! #     source: Default::default(), trace: Default::default() };
//! # let input = InvoiceInput { currency: eur, rounding: RoundingMode::HalfUp, issued_at: period.end, period,
//! #     charges: vec![charge], discounts: &[], tax: None, credit_reports: vec![] };
//! # let recomputed = assemble_invoice(input, &mut []).unwrap();
//! // January was finalized at 10.00 before tax; late events bring it to 12.90, and an earlier
//! // run already recorded 2.00 of that.
//! let adjustment = late_usage_adjustment(
//!     &recomputed,
//!     Money::from_minor(1000, eur),
//!     [Money::from_minor(200, eur)],
//! )
//! .unwrap();
//! assert_eq!(adjustment, Some(Money::from_minor(90, eur)));
//! ```

use crate::invoice::Invoice;
use crate::money::{Money, MoneyError};

/// The adjustment late usage makes to a finalized invoice: the amount before tax of the invoice
/// as recomputed now (`recomputed`, its own lines only) less the amount before tax it was
/// finalized with (`finalized_net_before_tax`), less the adjustments already recorded against
/// it (`adjusted`). Positive when usage went up, negative when it went down, `None` when nothing
/// moved since the last adjustment. Tax is left to the invoice that bills the adjustment.
///
/// # Errors
/// [`MoneyError::CurrencyMismatch`] when an amount is in another currency than `recomputed`
/// (the customer's currency changed since the invoice was finalized: amounts in two currencies
/// do not subtract), [`MoneyError::Overflow`] when a sum overflows.
pub fn late_usage_adjustment(
    recomputed: &Invoice,
    finalized_net_before_tax: Money,
    adjusted: impl IntoIterator<Item = Money>,
) -> Result<Option<Money>, MoneyError> {
    let computed = Money::from_minor(recomputed.net_before_tax_minor(), recomputed.currency);
    let mut difference = computed.checked_sub(finalized_net_before_tax)?;
    for adjustment in adjusted {
        difference = difference.checked_sub(adjustment)?;
    }
    Ok((!difference.is_zero()).then_some(difference))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::*;
    use crate::currency::Currency;
    use crate::invoice::{
        assemble_invoice, AppliedDiscount, Charge, DiscountValue, InvoiceInput, LineKind,
        LineTrace, TaxRate,
    };
    use crate::money::RoundingMode;
    use crate::period::Period;

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    fn eur_minor(amount_minor: i64) -> Money {
        Money::from_minor(amount_minor, eur())
    }

    fn charge(kind: LineKind, amount_milli: i64, adjustment: Option<&str>) -> Charge {
        let period = january();
        Charge {
            kind,
            description: "API calls".into(),
            price: None,
            meter: None,
            project: None,
            period,
            quantity: Decimal::ONE,
            amount: Decimal::new(amount_milli, 3),
            target: None,
            source: Default::default(),
            trace: LineTrace {
                adjustment: adjustment.map(str::to_owned),
                ..LineTrace::default()
            },
        }
    }

    fn january() -> Period {
        Period::new(
            "2024-01-01T00:00:00Z".parse().unwrap(),
            "2024-02-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    /// January's invoice for usage charges of `usage_milli` (thousandths of a euro), 10 % off
    /// and 19 % VAT, beside the lines in `billed` that bill earlier adjustments.
    fn invoice(usage_milli: &[i64], billed: &[i64]) -> Invoice {
        let mut charges: Vec<Charge> = usage_milli
            .iter()
            .map(|amount| charge(LineKind::Usage, *amount, None))
            .collect();
        charges.extend(
            billed
                .iter()
                .map(|amount| charge(LineKind::Adjustment, *amount, Some("adj_earlier"))),
        );
        let discounts = [AppliedDiscount {
            key: "ten".into(),
            value: DiscountValue::PercentOff(Decimal::TEN),
        }];
        let tax = TaxRate {
            name: "VAT".into(),
            rate_percent: Decimal::from(19),
        };
        let input = InvoiceInput {
            currency: eur(),
            rounding: RoundingMode::HalfUp,
            issued_at: january().end,
            period: january(),
            charges,
            discounts: &discounts,
            tax: Some(&tax),
            credit_reports: vec![],
        };
        assemble_invoice(input, &mut []).unwrap()
    }

    #[test]
    fn late_usage_adjusts_by_the_pre_tax_difference_less_what_was_already_adjusted() {
        // Finalized at 10.00 of usage, 9.00 after the discount; late events add 3.00.
        let finalized = invoice(&[10_000], &[]);
        let recomputed = invoice(&[10_000, 3_000], &[]);
        let finalized_net = eur_minor(finalized.net_before_tax_minor());
        assert_eq!(finalized_net, eur_minor(900));

        let first = late_usage_adjustment(&recomputed, finalized_net, []).unwrap();
        let again = late_usage_adjustment(&recomputed, finalized_net, [eur_minor(270)]).unwrap();

        // 13.00 − 10 % = 11.70 before tax, 2.70 more than finalized; the tax is not adjusted.
        assert_eq!(first, Some(eur_minor(270)));
        assert_eq!(again, None, "a difference is recorded once");
    }

    #[test]
    fn usage_that_went_down_adjusts_by_a_negative_difference() {
        let finalized = eur_minor(invoice(&[10_000], &[]).net_before_tax_minor());
        let recomputed = invoice(&[6_000], &[]);

        let adjustment = late_usage_adjustment(&recomputed, finalized, []).unwrap();

        assert_eq!(adjustment, Some(eur_minor(-360)));
    }

    #[test]
    fn lines_that_bill_earlier_adjustments_are_not_part_of_the_difference() {
        let finalized = eur_minor(invoice(&[10_000], &[]).net_before_tax_minor());
        // The same usage, on an invoice that also bills a 5.00 adjustment of another period.
        let recomputed = invoice(&[10_000], &[5_000]);

        assert_eq!(
            late_usage_adjustment(&recomputed, finalized, []).unwrap(),
            None
        );
    }

    #[test]
    fn amounts_in_another_currency_are_not_subtracted() {
        let usd = Currency::from_code("USD").unwrap();
        let recomputed = invoice(&[10_000], &[]);

        let result = late_usage_adjustment(&recomputed, Money::from_minor(900, usd), []);

        assert!(matches!(result, Err(MoneyError::CurrencyMismatch { .. })));
    }

    proptest! {
        #[test]
        fn a_late_adjustment_is_the_difference_of_the_two_invoices_pre_tax_nets(
            usage in proptest::collection::vec(0_i64..5_000_000, 1..6),
            recomputed_usage in proptest::collection::vec(0_i64..5_000_000, 1..6),
            adjusted in proptest::collection::vec(-100_000_i64..100_000, 0..3),
        ) {
            // Late usage moves the period's usage up or down: any usage may be recomputed.
            let finalized = invoice(&usage, &[]);
            let recomputed = invoice(&recomputed_usage, &[]);
            let adjusted: Vec<Money> = adjusted.into_iter().map(eur_minor).collect();

            let adjustment = late_usage_adjustment(
                &recomputed,
                eur_minor(finalized.net_before_tax_minor()),
                adjusted.iter().copied(),
            )
            .unwrap();

            let expected = recomputed.net_before_tax_minor()
                - finalized.net_before_tax_minor()
                - adjusted.iter().map(|a| a.amount_minor()).sum::<i64>();
            prop_assert_eq!(adjustment.map_or(0, Money::amount_minor), expected);
            prop_assert!(adjustment.is_none_or(|a| !a.is_zero()));
            // Recording it settles the difference: the next run finds nothing more.
            let recorded: Vec<Money> = adjusted.iter().copied().chain(adjustment).collect();
            let next = late_usage_adjustment(
                &recomputed,
                eur_minor(finalized.net_before_tax_minor()),
                recorded,
            )
            .unwrap();
            prop_assert_eq!(next, None);
        }

        #[test]
        fn successive_adjustments_add_up_to_the_whole_change(
            usage in proptest::collection::vec(0_i64..5_000_000, 1..4),
            runs in proptest::collection::vec(
                proptest::collection::vec(0_i64..5_000_000, 1..4), 1..5),
        ) {
            // Each run recomputes the period with the usage known then and records what moved.
            let finalized = invoice(&usage, &[]);
            let finalized_net = eur_minor(finalized.net_before_tax_minor());
            let mut recorded: Vec<Money> = Vec::new();
            for run in &runs {
                let recomputed = invoice(run, &[]);
                if let Some(adjustment) =
                    late_usage_adjustment(&recomputed, finalized_net, recorded.iter().copied())
                        .unwrap()
                {
                    recorded.push(adjustment);
                }
            }
            let last = invoice(runs.last().unwrap(), &[]);
            prop_assert_eq!(
                recorded.iter().map(|a| a.amount_minor()).sum::<i64>(),
                last.net_before_tax_minor() - finalized.net_before_tax_minor()
            );
        }
    }
}
