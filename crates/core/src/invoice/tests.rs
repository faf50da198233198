use proptest::prelude::*;
use rust_decimal_macros::dec;

use super::*;
use crate::credit::{CreditGrant, GrantType};

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

fn period() -> Period {
    Period::new(
        "2024-01-01T00:00:00Z".parse().unwrap(),
        "2024-02-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap()
}

fn charge(amount: Decimal, project: Option<&str>) -> Charge {
    Charge {
        kind: LineKind::Usage,
        description: "usage".into(),
        price: Some("p".into()),
        meter: None,
        project: project.map(str::to_owned),
        period: period(),
        quantity: dec!(1),
        amount,
        target: None,
        source: Default::default(),
        trace: LineTrace::default(),
    }
}

fn input<'a>(
    charges: Vec<Charge>,
    discounts: &'a [AppliedDiscount],
    tax: Option<&'a TaxRate>,
) -> InvoiceInput<'a> {
    InvoiceInput {
        currency: usd(),
        rounding: RoundingMode::HalfUp,
        issued_at: period().end,
        period: period(),
        charges,
        discounts,
        tax,
        credit_reports: vec![],
    }
}

fn money_grant(amount_minor: i64) -> GrantBalance {
    GrantBalance {
        grant: CreditGrant {
            key: "promo".into(),
            grant_type: GrantType::Promotional,
            meter: None,
            amount: Decimal::from(amount_minor) / dec!(100),
            start: period().start,
            expiry: None,
            priority: 0,
        },
        remaining: Decimal::from(amount_minor),
    }
}

#[test]
fn lines_are_rounded_once_and_the_total_is_their_sum() {
    let invoice = assemble_invoice(
        input(
            vec![charge(dec!(0.005), None), charge(dec!(0.005), None)],
            &[],
            None,
        ),
        &mut [],
    )
    .unwrap();
    // Rounded per line (1 + 1), not on the unrounded sum (0.01 → 1).
    assert_eq!(invoice.totals.total.amount_minor(), 2);
    assert_eq!(invoice.lines[0].trace.unrounded_amount, dec!(0.005));
}

#[test]
fn discounts_then_credits_then_tax_per_line() {
    let discounts = [AppliedDiscount {
        key: "ten".into(),
        value: DiscountValue::PercentOff(dec!(10)),
    }];
    let tax = TaxRate {
        name: "VAT".into(),
        rate_percent: dec!(19),
    };
    let mut grants = [money_grant(500)];
    let charges = vec![charge(dec!(100), Some("a")), charge(dec!(33.33), Some("b"))];
    let invoice = assemble_invoice(input(charges, &discounts, Some(&tax)), &mut grants).unwrap();
    let amounts: Vec<(LineKind, i64)> = invoice
        .lines
        .iter()
        .map(|l| (l.kind, l.amount.amount_minor()))
        .collect();
    // Discount: 1000 + 333 (3333 × 10 % = 333.3). Credit: 500 from line 1. Tax: 19 % of 8500 and 3000.
    assert_eq!(
        amounts,
        vec![
            (LineKind::Usage, 10000),
            (LineKind::Usage, 3333),
            (LineKind::Discount, -1333),
            (LineKind::Credit, -500),
            (LineKind::Tax, 1615 + 570)
        ]
    );
    assert_eq!(
        invoice.totals.total.amount_minor(),
        10000 + 3333 - 1333 - 500 + 2185
    );
    assert_eq!(invoice.totals.by_project["a"].amount_minor(), 8500);
    assert_eq!(invoice.totals.by_project["b"].amount_minor(), 3000);
    assert_eq!(grants[0].remaining, dec!(0));
}

#[test]
fn a_selection_of_lines_takes_its_share_of_discounts_credits_and_tax() {
    let discounts = [AppliedDiscount {
        key: "ten".into(),
        value: DiscountValue::PercentOff(dec!(10)),
    }];
    let tax = TaxRate {
        name: "VAT".into(),
        rate_percent: dec!(19),
    };
    let mut grants = [money_grant(500)];
    let mut charges = vec![charge(dec!(100), Some("a")), charge(dec!(33.33), Some("b"))];
    charges[0].quantity = dec!(2);
    charges[0].source.resource = Some(Box::new(LineResource {
        id: "res_1".into(),
        kind: Some("dyno".into()),
        name: Some("web".into()),
        created_at: period().start,
        deleted_at: None,
        dimensions: BTreeMap::new(),
    }));
    let invoice = assemble_invoice(input(charges, &discounts, Some(&tax)), &mut grants).unwrap();
    let of = |project: &'static str| {
        SelectionTotals::of(&invoice.lines, usd(), |line| {
            line.project.as_deref() == Some(project)
        })
        .unwrap()
    };

    // Line 1 (project a): 100.00, 10.00 off, 5.00 of credit, 19 % of 85.00.
    let a = of("a");
    let minor = |money: Money| money.amount_minor();
    assert_eq!(
        (
            minor(a.charges),
            minor(a.discount),
            minor(a.credit),
            minor(a.tax),
            minor(a.total)
        ),
        (10_000, -1_000, -500, 1_615, 10_115)
    );
    assert_eq!(minor(a.charges_by_resource_type["dyno"]), 10_000);
    assert_eq!(a.quantity_by_resource_type["dyno"], dec!(2));
    // Line 2 (project b) is no resource's: no resource type.
    let b = of("b");
    assert_eq!((minor(b.total), minor(b.tax)), (3_570, 570));
    assert!(b.charges_by_resource_type.is_empty());
    // Both parts make the invoice; every line, its totals.
    assert_eq!(minor(a.total) + minor(b.total), minor(invoice.totals.total));
    let all = SelectionTotals::of(&invoice.lines, usd(), |_| true).unwrap();
    assert_eq!(all.charges, invoice.totals.subtotal);
    assert_eq!(all.discount, invoice.totals.discount);
    assert_eq!(all.credit, invoice.totals.credit);
    assert_eq!(all.tax, invoice.totals.tax);
    assert_eq!(all.total, invoice.totals.total);
    let none = SelectionTotals::of(&invoice.lines, usd(), |_| false).unwrap();
    assert!(none.total.is_zero() && none.charges.is_zero());
}

#[test]
fn a_unit_price_is_that_of_a_line_rated_in_one_step() {
    use crate::price::StepKind;
    let step = |kind, unit_amount, flat_amount| RatingStep {
        kind,
        tier: None,
        quantity: dec!(3),
        unit_amount,
        flat_amount,
        amount: dec!(0),
    };
    let invoice = assemble_invoice(input(vec![charge(dec!(1), None)], &[], None), &mut []).unwrap();
    let mut line = invoice.lines[0].clone();
    let mut priced = |steps: Vec<RatingStep>| {
        line.trace.steps = steps;
        line.unit_price()
    };
    assert_eq!(
        priced(vec![step(StepKind::Unit, dec!(140), dec!(0))]),
        Some(dec!(140))
    );
    assert_eq!(
        priced(vec![step(StepKind::Tier, dec!(0.5), dec!(0))]),
        Some(dec!(0.5))
    );
    assert_eq!(
        priced(vec![step(StepKind::Flat, dec!(0), dec!(25))]),
        Some(dec!(25))
    );
    assert_eq!(priced(vec![step(StepKind::Tier, dec!(1), dec!(5))]), None);
    assert_eq!(
        priced(vec![
            step(StepKind::Tier, dec!(1), dec!(0)),
            step(StepKind::Tier, dec!(0.5), dec!(0))
        ]),
        None
    );
    assert_eq!(priced(vec![]), None);
}

#[test]
fn an_amount_off_discount_is_spread_by_largest_remainder_and_capped() {
    let discounts = [AppliedDiscount {
        key: "five".into(),
        value: DiscountValue::AmountOff(Money::from_minor(1000, usd())),
    }];
    let charges = vec![
        charge(dec!(10), None),
        charge(dec!(10), None),
        charge(dec!(10), None),
    ];
    let invoice = assemble_invoice(input(charges, &discounts, None), &mut []).unwrap();
    let allocations: Vec<i64> = invoice.lines[3]
        .trace
        .allocations
        .iter()
        .map(|a| a.amount_minor)
        .collect();
    assert_eq!(allocations, vec![-334, -333, -333]);
    let big = [AppliedDiscount {
        key: "big".into(),
        value: DiscountValue::AmountOff(Money::from_minor(99_999, usd())),
    }];
    let invoice =
        assemble_invoice(input(vec![charge(dec!(10), None)], &big, None), &mut []).unwrap();
    assert_eq!(invoice.totals.total.amount_minor(), 0);
}

#[test]
fn a_credit_never_takes_more_than_the_line_or_the_grant() {
    let mut grants = [money_grant(100_000)];
    let invoice = assemble_invoice(
        input(vec![charge(dec!(12.34), None)], &[], None),
        &mut grants,
    )
    .unwrap();
    assert_eq!(invoice.totals.credit.amount_minor(), -1234);
    assert_eq!(invoice.totals.total.amount_minor(), 0);
    assert_eq!(grants[0].remaining, Decimal::from(100_000 - 1234));
}

#[test]
fn a_discount_in_another_currency_is_rejected() {
    let eur = Currency::from_code("EUR").unwrap();
    let discounts = [AppliedDiscount {
        key: "eur".into(),
        value: DiscountValue::AmountOff(Money::from_minor(1, eur)),
    }];
    let result = assemble_invoice(
        input(vec![charge(dec!(1), None)], &discounts, None),
        &mut [],
    );
    assert!(matches!(
        result,
        Err(AssembleInvoiceError::CurrencyMismatch { .. })
    ));
}

proptest! {
    #[test]
    fn total_is_the_sum_of_rounded_lines_and_credit_stays_within_the_grant(
        amounts in proptest::collection::vec(0_i64..10_000_000, 1..12),
        percent in 0_u32..100,
        grant_minor in 0_i64..5_000_000,
        tax_percent in 0_u32..30,
    ) {
        let charges = amounts.iter().map(|a| charge(Decimal::new(*a, 3), None)).collect();
        let discounts = [AppliedDiscount { key: "d".into(), value: DiscountValue::PercentOff(Decimal::from(percent)) }];
        let tax = TaxRate { name: "tax".into(), rate_percent: Decimal::from(tax_percent) };
        let mut grants = [money_grant(grant_minor)];
        let invoice = assemble_invoice(input(charges, &discounts, Some(&tax)), &mut grants).unwrap();
        let sum: i64 = invoice.lines.iter().map(|l| l.amount.amount_minor()).sum();
        prop_assert_eq!(sum, invoice.totals.total.amount_minor());
        prop_assert!(-invoice.totals.credit.amount_minor() <= grant_minor);
        prop_assert!(invoice.totals.total.amount_minor() >= 0);
    }

    #[test]
    fn selections_that_split_the_lines_split_the_totals(
        amounts in proptest::collection::vec(0_i64..10_000_000, 1..12),
        percent in 0_u32..100,
        grant_minor in 0_i64..5_000_000,
        tax_percent in 0_u32..30,
    ) {
        let charges = amounts
            .iter()
            .enumerate()
            .map(|(index, a)| charge(Decimal::new(*a, 3), Some(if index % 2 == 0 { "even" } else { "odd" })))
            .collect();
        let discounts = [AppliedDiscount { key: "d".into(), value: DiscountValue::PercentOff(Decimal::from(percent)) }];
        let tax = TaxRate { name: "tax".into(), rate_percent: Decimal::from(tax_percent) };
        let mut grants = [money_grant(grant_minor)];
        let invoice = assemble_invoice(input(charges, &discounts, Some(&tax)), &mut grants).unwrap();
        let of = |project: &str| {
            SelectionTotals::of(&invoice.lines, usd(), |line| line.project.as_deref() == Some(project)).unwrap()
        };
        let (even, odd) = (of("even"), of("odd"));
        prop_assert_eq!(even.total.amount_minor() + odd.total.amount_minor(), invoice.totals.total.amount_minor());
        prop_assert_eq!(even.tax.amount_minor() + odd.tax.amount_minor(), invoice.totals.tax.amount_minor());
        prop_assert_eq!(even.credit.amount_minor() + odd.credit.amount_minor(), invoice.totals.credit.amount_minor());
        prop_assert_eq!(even.discount.amount_minor() + odd.discount.amount_minor(), invoice.totals.discount.amount_minor());
        let all = SelectionTotals::of(&invoice.lines, usd(), |_| true).unwrap();
        prop_assert_eq!(all.total, invoice.totals.total);
        prop_assert_eq!(all.charges, invoice.totals.subtotal);
    }
}
