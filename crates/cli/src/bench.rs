//! `billow bench ...`: measured figures for BENCHMARKS.md.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use billow_core::credit::{CreditGrant, GrantBalance, GrantType};
use billow_core::invoice::{
    assemble_invoice, AppliedDiscount, Charge, DiscountValue, InvoiceInput, LineKind, LineTrace,
    TaxRate,
};
use billow_core::price::Tier;
use billow_core::{proration_factor, Currency, Period, PriceModel, ProrationUnit, RoundingMode};
use rust_decimal::Decimal;

use crate::bench_common::{per_second, thousands};

/// Arguments of `billow bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchTarget {
    /// Usage events ingested per second over HTTP, on SQLite and on PostgreSQL (with
    /// DATABASE_URL), each beside the naive way of storing them measured in the same run.
    Ingest(crate::bench_ingest::IngestBenchArgs),
    /// One month-end billing run over N subscriptions with M usage events each, on a fresh
    /// SQLite file or PostgreSQL database: seed time, run time, invoices/s, peak RSS.
    BillingRun(crate::bench_billing::BillingRunBenchArgs),
    /// Invoices rated and assembled per second on one core (10 lines: tiers, proration, a
    /// discount, a money credit grant, tax).
    Rating {
        /// How long to measure, in seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Rate exactly this many invoices instead (for instruction counts under callgrind).
        #[arg(long)]
        invoices: Option<u64>,
    },
}

/// Runs `billow bench`.
///
/// # Errors
/// When the benchmark's own setup fails.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        BenchTarget::Rating { seconds, invoices } => {
            bench_rating(Duration::from_secs(seconds.max(1)), invoices)
        }
        BenchTarget::Ingest(args) => {
            crate::block_on(crate::bench_ingest::run(args))??;
            Ok(ExitCode::SUCCESS)
        }
        BenchTarget::BillingRun(args) => {
            crate::block_on(crate::bench_billing::run(args))??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

struct Item {
    kind: LineKind,
    description: &'static str,
    price: &'static str,
    model: PriceModel,
    quantity: Decimal,
    prorated: bool,
}

fn tiers(unit_amounts: [i64; 3]) -> Vec<Tier> {
    vec![
        Tier {
            up_to: Some(Decimal::from(1_000)),
            unit_amount: Decimal::new(unit_amounts[0], 4),
            flat_amount: Decimal::new(500, 2),
        },
        Tier {
            up_to: Some(Decimal::from(10_000)),
            unit_amount: Decimal::new(unit_amounts[1], 4),
            flat_amount: Decimal::ZERO,
        },
        Tier {
            up_to: None,
            unit_amount: Decimal::new(unit_amounts[2], 4),
            flat_amount: Decimal::ZERO,
        },
    ]
}

fn items() -> Vec<Item> {
    let usage = |description, price, model, quantity: i64| Item {
        kind: LineKind::Usage,
        description,
        price,
        model,
        quantity: Decimal::new(quantity, 2),
        prorated: false,
    };
    vec![
        usage(
            "CPU core-hours",
            "cpu",
            PriceModel::Graduated {
                tiers: tiers([500, 400, 300]),
            },
            1_234_567,
        ),
        usage(
            "Memory GiB-hours",
            "memory",
            PriceModel::Graduated {
                tiers: tiers([100, 80, 60]),
            },
            4_567_890,
        ),
        usage(
            "GPU hours",
            "gpu",
            PriceModel::Graduated {
                tiers: tiers([25_000, 20_000, 15_000]),
            },
            12_345,
        ),
        usage(
            "Egress GB",
            "egress",
            PriceModel::Graduated {
                tiers: tiers([900, 700, 500]),
            },
            98_765,
        ),
        usage(
            "API calls",
            "api",
            PriceModel::Volume {
                tiers: tiers([10, 8, 5]),
            },
            5_000_000,
        ),
        usage(
            "Storage GB-months",
            "storage",
            PriceModel::Volume {
                tiers: tiers([230, 200, 180]),
            },
            750_000,
        ),
        usage(
            "Build minutes",
            "builds",
            PriceModel::Package {
                package_size: Decimal::from(1_000),
                package_amount: Decimal::from(10),
                free_units: Decimal::from(500),
            },
            1_234_500,
        ),
        Item {
            kind: LineKind::Recurring,
            description: "Seats",
            price: "seats",
            model: PriceModel::PerUnit {
                unit_amount: Decimal::new(2_495, 2),
            },
            quantity: Decimal::from(7),
            prorated: true,
        },
        Item {
            kind: LineKind::Recurring,
            description: "Clusters",
            price: "clusters",
            model: PriceModel::PerUnit {
                unit_amount: Decimal::from(99),
            },
            quantity: Decimal::from(3),
            prorated: true,
        },
        Item {
            kind: LineKind::Fixed,
            description: "Platform fee",
            price: "platform",
            model: PriceModel::Flat {
                amount: Decimal::from(49),
            },
            quantity: Decimal::ONE,
            prorated: false,
        },
    ]
}

fn bench_rating(duration: Duration, fixed_count: Option<u64>) -> anyhow::Result<ExitCode> {
    let currency = Currency::from_code("USD")?;
    let period = Period::new(
        "2024-01-01T00:00:00Z".parse()?,
        "2024-02-01T00:00:00Z".parse()?,
    )?;
    let partial = Period::new("2024-01-16T08:30:00Z".parse()?, period.end)?;
    let time_zone = jiff::tz::TimeZone::UTC;
    let items = items();
    let discounts = [AppliedDiscount {
        key: "partner".into(),
        value: DiscountValue::PercentOff(Decimal::from(5)),
    }];
    let tax = TaxRate {
        name: "VAT".into(),
        rate_percent: Decimal::from(19),
    };
    let grant = CreditGrant {
        key: "prepaid".into(),
        grant_type: GrantType::Prepaid,
        meter: None,
        amount: Decimal::from(200),
        start: period.start,
        expiry: None,
        priority: 0,
    };
    let mut grants = vec![GrantBalance {
        grant,
        remaining: Decimal::from(20_000),
    }];
    let rate_one_invoice = |grants: &mut Vec<GrantBalance>| -> anyhow::Result<i64> {
        grants[0].remaining = Decimal::from(20_000);
        let mut charges = Vec::with_capacity(items.len());
        for item in &items {
            let rating = item.model.rate(black_box(item.quantity), &[])?;
            let mut amount = rating.amount;
            if item.prorated {
                amount = proration_factor(partial, period, ProrationUnit::Second, &time_zone)?
                    .apply(amount);
            }
            charges.push(Charge {
                kind: item.kind,
                description: item.description.to_owned(),
                price: Some(item.price.to_owned()),
                meter: None,
                project: None,
                period,
                quantity: item.quantity,
                amount,
                target: None,
                source: Default::default(),
                trace: LineTrace {
                    steps: rating.steps,
                    ..LineTrace::default()
                },
            });
        }
        let input = InvoiceInput {
            currency,
            rounding: RoundingMode::HalfUp,
            issued_at: period.end,
            period,
            charges,
            discounts: &discounts,
            tax: Some(&tax),
            credit_reports: Vec::new(),
        };
        let invoice = assemble_invoice(input, grants)?;
        Ok(invoice.totals.total.amount_minor())
    };
    let total_minor = rate_one_invoice(&mut grants)?;
    let lines = items.len();
    let started = Instant::now();
    let mut invoices: u64 = 0;
    while fixed_count.map_or(started.elapsed() < duration, |count| invoices < count) {
        for _ in 0..1_000 {
            black_box(rate_one_invoice(&mut grants)?);
        }
        invoices += 1_000;
    }
    let elapsed = started.elapsed();
    let rate = thousands(per_second(invoices, elapsed));
    let nanos_per_invoice = elapsed.as_nanos() / u128::from(invoices.max(1));
    println!("bench rating: {lines} charge lines + discount, credit and tax lines per invoice (total {total_minor} minor units)");
    println!(
        "bench rating: {invoices} invoices in {:.3?} on one thread",
        elapsed
    );
    println!("bench rating: {rate} invoices/s ({nanos_per_invoice} ns per invoice)");
    Ok(ExitCode::SUCCESS)
}
