use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;
use crate::currency::Currency;
use crate::invoice::{assemble_invoice, Charge, InvoiceInput, LineTrace, TaxRate};
use crate::period::Period;

fn eur() -> Currency {
    Currency::from_code("EUR").unwrap()
}

fn eur_minor(amount_minor: i64) -> Money {
    Money::from_minor(amount_minor, eur())
}

/// A standalone late-usage invoice as the engine bills it: one adjustment line per amount, taxed
/// at `rate_percent`.
fn standalone(amounts: &[Decimal], rate_percent: Decimal) -> Invoice {
    let period = Period::new(
        "2024-01-01T00:00:00Z".parse().unwrap(),
        "2024-02-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap();
    let charges = amounts
        .iter()
        .enumerate()
        .map(|(index, amount)| Charge {
            kind: LineKind::Adjustment,
            description: format!("Late usage for invoice #{index}"),
            price: None,
            meter: None,
            project: None,
            period,
            quantity: Decimal::ONE,
            amount: *amount,
            target: None,
            source: Default::default(),
            trace: LineTrace {
                adjustment: Some(format!("adj_{index}")),
                ..LineTrace::default()
            },
        })
        .collect();
    let tax = TaxRate {
        name: "VAT".into(),
        rate_percent,
    };
    let input = InvoiceInput {
        currency: eur(),
        rounding: RoundingMode::HalfUp,
        issued_at: period.end,
        period,
        charges,
        discounts: &[],
        tax: Some(&tax),
        credit_reports: vec![],
    };
    assemble_invoice(input, &mut []).unwrap()
}

#[test]
fn a_negative_adjustment_line_is_credited_with_the_tax_the_invoice_gave_it() {
    // −0.40 at 19 %: −0.076 → −0.08 (half up, away from zero); a +0.80 line beside it is not
    // credited.
    let invoice = standalone(&[dec!(0.80), dec!(-0.40)], dec!(19));

    let credit = CreditAmounts::of_negative_adjustment(&invoice, 2)
        .unwrap()
        .unwrap();

    assert_eq!(credit.net(), eur_minor(40));
    assert_eq!(credit.tax(), eur_minor(8));
    assert_eq!(credit.total(), eur_minor(48));
    assert_eq!(
        CreditAmounts::of_negative_adjustment(&invoice, 1).unwrap(),
        None,
        "a positive adjustment is billed, not credited"
    );
    assert_eq!(
        CreditAmounts::of_negative_adjustment(&invoice, 3).unwrap(),
        None,
        "the tax line is not an adjustment"
    );
}

#[test]
fn a_credit_within_what_is_left_is_kept_as_it_is() {
    let credit = CreditAmounts::new(eur_minor(40), eur_minor(8)).unwrap();

    assert_eq!(
        credit.capped(eur_minor(48), RoundingMode::HalfUp).unwrap(),
        credit
    );
}

#[test]
fn a_credit_above_what_is_left_credits_what_is_left_and_the_tax_keeps_its_share() {
    let credit = CreditAmounts::new(eur_minor(80), eur_minor(15)).unwrap();

    let capped = credit.capped(eur_minor(32), RoundingMode::HalfUp).unwrap();

    // 15 × 32 / 95 = 5.05 → 5; the rest, 27, before tax.
    assert_eq!(
        (capped.net(), capped.tax(), capped.total()),
        (eur_minor(27), eur_minor(5), eur_minor(32))
    );
    let nothing = credit.capped(eur_minor(0), RoundingMode::HalfUp).unwrap();
    assert_eq!(nothing.total(), eur_minor(0));
}

#[test]
fn a_negative_credit_is_refused() {
    assert!(matches!(
        CreditAmounts::new(eur_minor(-1), eur_minor(0)),
        Err(CreditAmountsError::Negative { .. })
    ));
}

proptest! {
    #[test]
    fn a_capped_credit_is_the_smaller_of_the_credit_and_what_is_left_and_its_parts_add_up(
        net in 0_i64..10_000_000,
        rate in 0_u32..30,
        available in -1_000_i64..10_000_000,
    ) {
        let tax = net * i64::from(rate) / 100;
        let credit = CreditAmounts::new(eur_minor(net), eur_minor(tax)).unwrap();
        for mode in [RoundingMode::HalfUp, RoundingMode::HalfEven] {
            let capped = credit.capped(eur_minor(available), mode).unwrap();
            prop_assert_eq!(capped.total().amount_minor(), (net + tax).min(available.max(0)));
            prop_assert_eq!(
                capped.net().amount_minor() + capped.tax().amount_minor(),
                capped.total().amount_minor()
            );
            prop_assert!(capped.net().amount_minor() >= 0);
            prop_assert!((0..=tax).contains(&capped.tax().amount_minor()));
        }
    }
}

#[test]
fn the_amount_due_is_the_total_less_its_credit_notes_and_nothing_remains_once_settled() {
    // 11.90 with 4.00 credited: 7.90 due, and still to pay while open.
    assert_eq!(
        AmountDue::new(1190, 400, false),
        AmountDue {
            due_minor: 790,
            remaining_minor: 790
        }
    );
    // Paid or void: the amount due stays on record, nothing remains.
    assert_eq!(
        AmountDue::new(1190, 400, true),
        AmountDue {
            due_minor: 790,
            remaining_minor: 0
        }
    );
    // Fully credited, and a zero invoice: nothing is due.
    assert_eq!(AmountDue::new(1190, 1190, false).due_minor, 0);
    assert_eq!(AmountDue::new(0, 0, false).remaining_minor, 0);
}

#[test]
fn a_credit_is_taxed_at_the_rate_the_corrected_invoice_recorded() {
    // The corrected invoice charged 19 %; today's rate (the engine's) is 16 %.
    let corrected = standalone(&[dec!(10.00)], dec!(19));
    let applied = AppliedTax::of(&corrected.lines);
    assert_eq!(
        applied,
        AppliedTax::Rate(TaxRate {
            name: "VAT".into(),
            rate_percent: dec!(19)
        })
    );
    let today = standalone(&[dec!(-0.80)], dec!(16));
    let credit = CreditAmounts::of_negative_adjustment(&today, 1)
        .unwrap()
        .unwrap();
    assert_eq!(credit.tax(), eur_minor(13), "0.128 at today's rate");

    let retaxed = credit.taxed_as(&applied, RoundingMode::HalfUp).unwrap();

    // 0.80 × 19 % = 0.152 → 0.15.
    assert_eq!(
        (retaxed.net(), retaxed.tax(), retaxed.total()),
        (eur_minor(80), eur_minor(15), eur_minor(95))
    );
    // An untaxed invoice gives back no tax; one that did not record its rate keeps the engine's.
    let untaxed = credit.taxed_as(&AppliedTax::Untaxed, RoundingMode::HalfUp);
    assert_eq!(untaxed.unwrap().tax(), eur_minor(0));
    let mut unrecorded = corrected.lines.clone();
    for line in &mut unrecorded {
        line.trace.tax_rate = None;
    }
    assert_eq!(AppliedTax::of(&unrecorded), AppliedTax::Unrecorded);
    let kept = credit.taxed_as(&AppliedTax::Unrecorded, RoundingMode::HalfUp);
    assert_eq!(kept.unwrap(), credit);
    assert_eq!(AppliedTax::of(&[]), AppliedTax::Untaxed);
}
