use proptest::prelude::*;
use rust_decimal_macros::dec;

use super::*;

fn tier(up_to: Option<Decimal>, unit_amount: Decimal, flat_amount: Decimal) -> Tier {
    Tier {
        up_to,
        unit_amount,
        flat_amount,
    }
}

fn tiers() -> Vec<Tier> {
    vec![
        tier(Some(dec!(100)), dec!(0.10), dec!(5)),
        tier(Some(dec!(1000)), dec!(0.08), dec!(2)),
        tier(None, dec!(0.05), dec!(0)),
    ]
}

fn amount(model: &PriceModel, quantity: Decimal) -> Decimal {
    model.rate(quantity, &[]).unwrap().amount
}

#[test]
fn graduated_prices_each_tier_and_charges_the_first_flat_fee_at_zero() {
    let graduated = PriceModel::Graduated { tiers: tiers() };
    assert_eq!(amount(&graduated, dec!(0)), dec!(5));
    assert_eq!(amount(&graduated, dec!(100)), dec!(15));
    // 100 × 0.10 + 5, then 50 × 0.08 + 2.
    assert_eq!(amount(&graduated, dec!(150)), dec!(21));
    // 10 + 5 + 900 × 0.08 + 2 + 500 × 0.05.
    let rating = graduated.rate(dec!(1500), &[]).unwrap();
    assert_eq!(rating.amount, dec!(114));
    assert_eq!(rating.steps.len(), 3);
    assert_eq!(rating.steps[1].quantity, dec!(900));
}

#[test]
fn volume_prices_every_unit_at_the_tier_the_total_reaches() {
    let volume = PriceModel::Volume { tiers: tiers() };
    assert_eq!(amount(&volume, dec!(0)), dec!(5));
    assert_eq!(amount(&volume, dec!(100)), dec!(15));
    assert_eq!(amount(&volume, dec!(101)), dec!(10.08));
    assert_eq!(amount(&volume, dec!(2000)), dec!(100));
}

#[test]
fn package_rounds_partial_packages_up_after_free_units() {
    let package = PriceModel::Package {
        package_size: dec!(100),
        package_amount: dec!(7),
        free_units: dec!(50),
    };
    assert_eq!(amount(&package, dec!(50)), dec!(0));
    assert_eq!(amount(&package, dec!(51)), dec!(7));
    assert_eq!(amount(&package, dec!(150)), dec!(7));
    assert_eq!(amount(&package, dec!(151)), dec!(14));
}

fn percentage(
    free_events: Option<u64>,
    free_amount: Option<Decimal>,
    min: Option<Decimal>,
    max: Option<Decimal>,
) -> PriceModel {
    PriceModel::Percentage {
        rate_percent: dec!(2.9),
        fixed_fee: dec!(0.30),
        free_events,
        free_amount,
        min_per_transaction: min,
        max_per_transaction: max,
    }
}

#[test]
fn percentage_charges_a_rate_and_a_fee_per_transaction() {
    let model = percentage(None, None, None, None);
    // 2.9 % of 300 + 3 × 0.30.
    assert_eq!(
        model
            .rate(dec!(0), &[dec!(100), dec!(100), dec!(100)])
            .unwrap()
            .amount,
        dec!(9.60)
    );
}

#[test]
fn percentage_free_allowance_ends_when_either_limit_runs_out() {
    // Two free events, but only 150 of free amount: the second transaction is half charged.
    let model = percentage(Some(2), Some(dec!(150)), None, None);
    let rating = model
        .rate(dec!(0), &[dec!(100), dec!(100), dec!(100)])
        .unwrap();
    // Chargeable 50 + 100, two charged transactions.
    assert_eq!(rating.amount, dec!(4.35) + dec!(0.60));
    // One free event only: the allowance ends after the first transaction.
    let model = percentage(Some(1), Some(dec!(1000)), None, None);
    assert_eq!(
        model.rate(dec!(0), &[dec!(100), dec!(100)]).unwrap().amount,
        dec!(3.20)
    );
}

#[test]
fn percentage_fees_are_bounded_per_transaction() {
    let model = percentage(None, None, Some(dec!(1)), Some(dec!(5)));
    // 0.59 raised to 1; 290.30 lowered to 5.
    assert_eq!(
        model
            .rate(dec!(0), &[dec!(10), dec!(10000)])
            .unwrap()
            .amount,
        dec!(6)
    );
}

#[test]
fn graduated_percentage_charges_each_tier_flat_fee_once_when_entered() {
    let model = PriceModel::GraduatedPercentage {
        tiers: vec![
            PercentageTier {
                up_to: Some(dec!(1000)),
                rate_percent: dec!(2),
                flat_amount: dec!(1),
            },
            PercentageTier {
                up_to: None,
                rate_percent: dec!(1),
                flat_amount: dec!(10),
            },
        ],
    };
    assert_eq!(model.rate(dec!(0), &[]).unwrap().amount, dec!(0));
    assert_eq!(model.rate(dec!(0), &[dec!(500)]).unwrap().amount, dec!(11));
    // 1000 × 2 % + 1, then 500 × 1 % + 10.
    assert_eq!(
        model.rate(dec!(0), &[dec!(700), dec!(800)]).unwrap().amount,
        dec!(36)
    );
}

#[test]
fn invalid_definitions_are_rejected() {
    assert_eq!(
        PriceModel::Graduated { tiers: vec![] }.validate(),
        Err(InvalidPriceError::NoTiers)
    );
    let unordered = vec![
        tier(Some(dec!(10)), dec!(1), dec!(0)),
        tier(Some(dec!(5)), dec!(1), dec!(0)),
        tier(None, dec!(1), dec!(0)),
    ];
    assert_eq!(
        PriceModel::Volume { tiers: unordered }.validate(),
        Err(InvalidPriceError::TierBounds { index: 1 })
    );
    let bounded_last = vec![tier(Some(dec!(10)), dec!(1), dec!(0))];
    assert_eq!(
        PriceModel::Graduated {
            tiers: bounded_last
        }
        .validate(),
        Err(InvalidPriceError::TierBounds { index: 0 })
    );
    let package = PriceModel::Package {
        package_size: dec!(0),
        package_amount: dec!(1),
        free_units: dec!(0),
    };
    assert_eq!(package.validate(), Err(InvalidPriceError::EmptyPackage));
    assert_eq!(
        percentage(None, None, Some(dec!(5)), Some(dec!(1))).validate(),
        Err(InvalidPriceError::MinimumAboveMaximum)
    );
    assert!(PriceModel::PerUnit {
        unit_amount: dec!(1)
    }
    .rate(dec!(-1), &[])
    .is_err());
}

fn quantity() -> impl Strategy<Value = Decimal> {
    (0_i64..5_000_000, 0_u32..4).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
}

proptest! {
    #[test]
    fn graduated_total_is_the_sum_of_tier_charges(q in quantity()) {
        let rating = PriceModel::Graduated { tiers: tiers() }.rate(q, &[]).unwrap();
        let by_hand: Decimal = rating.steps.iter().map(|s| s.quantity * s.unit_amount + s.flat_amount).sum();
        prop_assert_eq!(rating.amount, by_hand);
        let units: Decimal = rating.steps.iter().map(|s| s.quantity).sum();
        prop_assert_eq!(units, q);
    }

    #[test]
    fn totals_never_decrease_as_usage_grows(a in quantity(), b in quantity()) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let volume_tiers = vec![
            tier(Some(dec!(100)), dec!(0.10), dec!(0)),
            tier(Some(dec!(1000)), dec!(0.10), dec!(0)),
            tier(None, dec!(0.10), dec!(0)),
        ];
        for model in [
            PriceModel::Graduated { tiers: tiers() },
            PriceModel::Volume { tiers: volume_tiers },
            PriceModel::Package { package_size: dec!(25), package_amount: dec!(3), free_units: dec!(10) },
            PriceModel::PerUnit { unit_amount: dec!(0.0123) },
        ] {
            prop_assert!(amount(&model, low) <= amount(&model, high), "{:?}", model);
        }
    }
}
