//! `billow bench billing-run --months N`: what a billing run costs as history grows.
//!
//! The bench seeds the customers and subscriptions of `billow bench billing-run`, then, month
//! after month from January 2024: the month's usage (`--events-per-subscription` per customer,
//! compacted as `billow ingest` leaves it), the month-end run an hour after the month ends (no
//! grace period, so the month's invoices are finalized), a second run at the same instant with
//! nothing due and no new usage, and the upcoming invoice of one customer. It prints each month's
//! figures and, last, month N against month 1: a run should cost what changed, not what was ever
//! stored (issue 13's goals: the month-end run at month 12 within 1.2× of month 1's, a run with
//! nothing due under 0.1 s, the upcoming invoice under 5 ms, at any age).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use billow_billing::clock::ManualClock;
use billow_billing::{run_billing, Billing, BillingSettings, RunReport};
use billow_store::{Database, Store, WorkspaceId};
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::bench_common::thousands;
use crate::bench_seed::{compact, seed_customers, seed_events, SeedSizes, PERIOD_START};

/// Calls of the upcoming invoice timed per month (their median is reported).
const UPCOMING_CALLS: usize = 21;

/// One month's figures.
struct Month {
    number: u32,
    month_end: Duration,
    finalized: u64,
    /// Customers the month-end run computed from their checkpoints.
    from_checkpoint: u64,
    nothing_due: Duration,
    nothing_due_report: RunReport,
    upcoming: Duration,
}

/// Runs `months` months of the bench on `database`.
///
/// # Errors
/// When seeding or a run fails, or a run does not finalize one invoice per customer.
pub(crate) async fn measure(
    sizes: &SeedSizes,
    months: u32,
    database: &Database,
    backend: &str,
) -> anyhow::Result<()> {
    println!(
        "bench billing-run --months {} ({backend}): {} customers, {} events per customer per month",
        months,
        thousands(sizes.subscriptions),
        thousands(sizes.events_per_subscription)
    );
    let store = Store::open(database).await?;
    store.migrate().await?;
    let (workspace, customer_ids) = seed_customers(&store, sizes).await?;
    let start: Timestamp = PERIOD_START.parse()?;
    // The subscriptions' first invoices (their seats, in advance) are finalized before the
    // months begin, so that every month-end run finalizes one invoice per customer.
    let opening = one_month(
        &store,
        &workspace,
        &customer_ids[0],
        0,
        start.checked_add(SignedDuration::from_hours(1))?,
    )
    .await?;
    println!(
        "opening run: {:.3} s ({} finalized)",
        opening.month_end.as_secs_f64(),
        thousands(opening.finalized)
    );
    let mut measured = Vec::new();
    for number in 1..=months {
        let from = start
            .to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(i64::from(number - 1).months())?;
        let to = from.checked_add(1.month())?;
        let seeding = Instant::now();
        seed_events(
            &store,
            &workspace,
            sizes,
            from.timestamp(),
            to.timestamp(),
            &format!("-m{number}"),
            // Stored as a month's events are, on the clock the runs bill by: before its end.
            to.timestamp(),
        )
        .await?;
        compact(&store).await?;
        let seeded = seeding.elapsed();
        let now = to.timestamp().checked_add(SignedDuration::from_hours(1))?;
        let month = one_month(&store, &workspace, &customer_ids[0], number, now).await?;
        println!(
            "month {:>3}: usage seeded in {:.1} s; month-end run {:.3} s ({} finalized, {} customers from checkpoints); run with nothing due {:.3} s ({} customers computed, {} left alone); upcoming invoice {} ms",
            month.number,
            seeded.as_secs_f64(),
            month.month_end.as_secs_f64(),
            thousands(month.finalized),
            thousands(month.from_checkpoint),
            month.nothing_due.as_secs_f64(),
            thousands(month.nothing_due_report.customers),
            thousands(month.nothing_due_report.unchanged),
            milliseconds(month.upcoming),
        );
        ensure!(
            month.nothing_due_report.finalized == 0 && month.nothing_due_report.drafted == 0,
            "the run with nothing due wrote invoices: {:?}",
            month.nothing_due_report
        );
        measured.push(month);
    }
    store.close().await;
    let (first, last) = (&measured[0], &measured[measured.len() - 1]);
    println!(
        "month {} against month 1: month-end run {}× ({:.3} s against {:.3} s), nothing due {}× ({:.3} s against {:.3} s), upcoming invoice {}× ({} ms against {} ms)",
        last.number,
        ratio(last.month_end, first.month_end),
        last.month_end.as_secs_f64(),
        first.month_end.as_secs_f64(),
        ratio(last.nothing_due, first.nothing_due),
        last.nothing_due.as_secs_f64(),
        first.nothing_due.as_secs_f64(),
        ratio(last.upcoming, first.upcoming),
        milliseconds(last.upcoming),
        milliseconds(first.upcoming),
    );
    Ok(())
}

/// `later ÷ earlier` with two decimals, in integer arithmetic (the crate allows no float
/// arithmetic).
fn ratio(later: Duration, earlier: Duration) -> String {
    let hundredths = later.as_micros() * 100 / earlier.as_micros().max(1);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// A duration in milliseconds with two decimals.
fn milliseconds(duration: Duration) -> String {
    let micros = duration.as_micros();
    format!("{}.{:02}", micros / 1_000, micros % 1_000 / 10)
}

/// The month-end run at `now`, a run with nothing due at the same instant, and the median of
/// [`UPCOMING_CALLS`] upcoming invoices of `customer_id`.
async fn one_month(
    store: &Store,
    workspace: &WorkspaceId,
    customer_id: &str,
    number: u32,
    now: Timestamp,
) -> anyhow::Result<Month> {
    let billing = Billing::new(store.clone())
        .with_clock(Arc::new(ManualClock::new(now)))
        .with_settings(BillingSettings {
            grace_period: SignedDuration::ZERO,
            interval: None,
            ..BillingSettings::default()
        });
    let run = |billing: Billing| async move {
        let started = Instant::now();
        let report = run_billing(&billing, Some(workspace))
            .await
            .map_err(|error| anyhow::anyhow!("the billing run failed: {error}"))?;
        anyhow::Ok((started.elapsed(), report))
    };
    let (month_end, report) = run(billing.clone()).await?;
    ensure!(
        report.failed == 0 && report.skipped == 0,
        "month {number}: {} customers failed, {} skipped",
        report.failed,
        report.skipped
    );
    let (nothing_due, nothing_due_report) = run(billing.clone()).await?;
    let mut calls = Vec::with_capacity(UPCOMING_CALLS);
    for _ in 0..UPCOMING_CALLS {
        let started = Instant::now();
        let preview = billing
            .upcoming_invoices(workspace, customer_id)
            .await
            .map_err(|error| anyhow::anyhow!("the upcoming invoice failed: {error}"))?;
        calls.push(started.elapsed());
        ensure!(preview.is_some(), "no customer {customer_id}");
    }
    calls.sort_unstable();
    Ok(Month {
        number,
        month_end,
        finalized: report.finalized,
        from_checkpoint: report.from_checkpoint,
        nothing_due,
        nothing_due_report,
        upcoming: calls[calls.len() / 2],
    })
}
