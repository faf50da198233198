//! A billing run for one customer: claim it with a lease, run the engine over its stored world,
//! and reconcile what the engine issues with what is stored (docs/billing-runs.md).
//!
//! - An invoice due (issued at or before now) but still inside the grace period is stored as a
//!   draft, and redrafted by every run while late usage may change it.
//! - Past the grace period it is finalized: numbered, opened, `PaymentPending`, immutable.
//! - A finalized invoice that the engine now computes differently before tax (usage that arrived
//!   after it was finalized) gets an adjustment: the difference, which the engine bills (taxed)
//!   on the subscription's next invoice, or on a standalone one when the subscription ended;
//!   a negative one of an ended subscription becomes a credit note of the invoice it corrects
//!   ([`crate::late_credit`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use billow_core::scenario::Preview;
use billow_core::UsageEvent;
use billow_store::billing::{BillingWrites, HeldLeases};
use billow_store::{Customer, CustomerId, WorkspaceId};
use jiff::Timestamp;

use crate::load::{CustomerInput, LoadedBatch, RunCatalog};
use crate::preview::{preview_with_credits, Upcoming};
use crate::reconcile::{pending_adjustments, plan_customer};
use crate::report::REPORTED_NUMBERS_MAX;
use crate::world::{meter_specs, workspace_settings, CustomerWorld};
use crate::{incremental, load};
use crate::{Billing, BillingSettings, Inconsistency, RunBillingError, RunReport};

/// Engine threads per batch: one per core.
fn engine_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs billing for the customers of the workspace (those with a subscription or a billed
/// resource) that may have something to bill: the store's candidates (no billing state, a world
/// changed since, something due) and the owners of usage that arrived, since the last complete
/// run started, for a period already invoiced. The others are left alone without being read
/// (counted as `unchanged`); the first complete run of a workspace looks at every customer.
pub(crate) async fn run_workspace(
    billing: &Billing,
    workspace: &WorkspaceId,
) -> Result<RunReport, RunBillingError> {
    let now = billing.clock.now();
    // Where the next run looks for usage that arrived: events are stamped with the ingesting
    // process's clock (the real time, or a test's manual clock). The earlier of the billing
    // clock and the real time, so that a run at a future `--now` never hides from later runs
    // the events ingested before that date.
    let started = now.min(billing.lease_clock.now());
    let store = &billing.store;
    let mut wanted: BTreeSet<CustomerId> = store
        .billing_candidates(workspace, now)
        .await
        .map_err(RunBillingError::store)?
        .into_iter()
        .collect();
    match store
        .billing_scan(workspace)
        .await
        .map_err(RunBillingError::store)?
    {
        Some(scanned) => {
            let latest = store
                .latest_billed_through(workspace)
                .await
                .map_err(RunBillingError::store)?;
            if let Some(before) = latest {
                let since = scanned
                    .checked_sub(incremental::INGESTION_VISIBILITY)
                    .unwrap_or(Timestamp::MIN);
                let subjects: Vec<String> = store
                    .subjects_with_late_usage(workspace, since, before)
                    .await
                    .map_err(RunBillingError::store)?
                    .into_iter()
                    .collect();
                if !subjects.is_empty() {
                    wanted.extend(
                        store
                            .owners_of_subjects(workspace, &subjects)
                            .await
                            .map_err(RunBillingError::store)?,
                    );
                }
            }
        }
        None => wanted.extend(
            store
                .billed_customers(workspace)
                .await
                .map_err(RunBillingError::store)?,
        ),
    }
    let billed = store
        .billed_customer_count(workspace)
        .await
        .map_err(RunBillingError::store)?;
    let ids: Vec<CustomerId> = wanted.into_iter().collect();
    let looked_at = u64::try_from(ids.len()).unwrap_or(u64::MAX);
    let customers = store
        .customers_with_ids(workspace, &ids)
        .await
        .map_err(RunBillingError::store)?;
    let batches = customers
        .chunks(billing.settings.customers_per_batch.max(1))
        .map(<[Customer]>::to_vec)
        .collect();
    let mut report = run_batches(billing, workspace, batches).await?;
    report.unchanged += billed.saturating_sub(looked_at);
    store
        .record_billing_scan(workspace, started)
        .await
        .map_err(RunBillingError::store)?;
    Ok(report)
}

/// Runs billing for one customer, if no other run holds it.
pub(crate) async fn run_customer(
    billing: &Billing,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<RunReport, RunBillingError> {
    let Some(customer) = billing
        .store
        .customer(workspace, customer_id)
        .await
        .map_err(RunBillingError::store)?
    else {
        return Ok(RunReport::default());
    };
    run_batches(billing, workspace, vec![vec![customer]]).await
}

/// A batch the engine has planned, ready to be written.
struct PlannedBatch {
    held: Vec<CustomerId>,
    report: RunReport,
    writes: BillingWrites,
}

/// Bills batches of customers in a three-stage pipeline, so that the store's reads and writes
/// overlap the engine: a loader task claims each batch with one lease statement and reads its
/// worlds, usage, stored invoices and adjustments with one query per table; the engine runs on
/// every core; a writer task writes each batch's decisions in one transaction and releases its
/// leases. Each stage is at most one batch ahead of the next.
///
/// Every batch bills at one instant, the clock's `now` when the run starts; leases are taken and
/// extended from the real time at each claim (`Billing::lease_clock`), never from `now`.
async fn run_batches(
    billing: &Billing,
    workspace: &WorkspaceId,
    batches: Vec<Vec<Customer>>,
) -> Result<RunReport, RunBillingError> {
    let settings = &billing.settings;
    let now = billing.clock.now();
    let meters = meter_specs(billing, workspace).await?;
    let workspace_settings = workspace_settings(billing, workspace).await?;
    let (loaded_sender, mut loaded) =
        tokio::sync::mpsc::channel::<Result<LoadedBatch, RunBillingError>>(1);
    let loader = tokio::spawn({
        let (billing, settings, workspace) = (billing.clone(), settings.clone(), workspace.clone());
        async move {
            let mut catalog = RunCatalog {
                meters: meters.into(),
                settings: workspace_settings,
                versions: BTreeMap::new(),
            };
            let mut batches = batches.into_iter();
            loop {
                let group: Vec<Vec<Customer>> = batches.by_ref().take(BATCHES_PER_CLAIM).collect();
                if group.is_empty() {
                    break;
                }
                let held = match claim(&billing, &settings, &workspace, &group).await {
                    Ok(held) => held,
                    Err(error) => {
                        let _ = loaded_sender.send(Err(error)).await;
                        break;
                    }
                };
                let mut group = group.into_iter();
                let mut stopped = false;
                for batch in group.by_ref() {
                    let result = crate::load::load_batch(
                        &billing,
                        &workspace,
                        batch,
                        &held,
                        &mut catalog,
                        now,
                    )
                    .await;
                    let failed = result.is_err();
                    if let Err(unsent) = loaded_sender.send(result).await {
                        // The run stopped: this batch's leases go back with the rest below.
                        if let Ok(batch) = unsent.0 {
                            release_quietly(&billing, &workspace, &batch.held, &settings.node)
                                .await;
                        }
                        stopped = true;
                        break;
                    }
                    if failed {
                        stopped = true;
                        break;
                    }
                }
                if stopped {
                    // The group's batches not handed over: their leases go back at once.
                    let unused: Vec<CustomerId> = group
                        .flatten()
                        .filter(|customer| held.contains(customer.id.as_str()))
                        .map(|customer| customer.id)
                        .collect();
                    release_quietly(&billing, &workspace, &unused, &settings.node).await;
                    break;
                }
            }
        }
    });
    let (planned_sender, mut planned) = tokio::sync::mpsc::channel::<PlannedBatch>(1);
    let writer = tokio::spawn({
        let (billing, settings, workspace) = (billing.clone(), settings.clone(), workspace.clone());
        async move {
            let mut report = RunReport::default();
            let mut first_error = None;
            while let Some(batch) = planned.recv().await {
                let leases = HeldLeases {
                    customer_ids: &batch.held,
                    holder: &settings.node,
                };
                match write_batch(&billing, &workspace, batch.writes, batch.report, leases).await {
                    Ok(written) => report.add(written),
                    Err(error) => {
                        first_error.get_or_insert(error);
                        // Released after an error too: the next run retries at once instead
                        // of after expiry.
                        if let Err(error) = billing
                            .store
                            .release_billing_leases(&workspace, &batch.held, &settings.node)
                            .await
                        {
                            tracing::error!(
                                error.message = %error,
                                "could not release billing leases"
                            );
                        }
                    }
                }
            }
            first_error.map_or(Ok(report), Err)
        }
    });

    let mut skipped = 0;
    let mut unchanged = 0;
    let mut unreadable = 0;
    let mut engine_error = None;
    while let Some(batch) = loaded.recv().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                engine_error = Some(error);
                break;
            }
        };
        skipped += batch.skipped;
        unchanged += batch.unchanged;
        unreadable += batch.failed;
        let held = batch.held;
        let seen = batch.seen;
        let planned = match run_engine(batch.inputs, settings, now).await {
            Ok((report, mut writes)) => {
                writes.seen = seen;
                PlannedBatch {
                    held,
                    report,
                    writes,
                }
            }
            Err(error) => {
                // Nothing to write; the writer still releases the batch's leases.
                engine_error = Some(error);
                PlannedBatch {
                    held,
                    report: RunReport::default(),
                    writes: BillingWrites::default(),
                }
            }
        };
        if planned_sender.send(planned).await.is_err() || engine_error.is_some() {
            break;
        }
    }
    drop(loaded);
    drop(planned_sender);
    let written = writer.await.map_err(RunBillingError::Task)?;
    loader.await.map_err(RunBillingError::Task)?;
    if let Some(error) = engine_error {
        return Err(error);
    }
    let mut report = written?;
    report.skipped += skipped;
    report.unchanged += unchanged;
    report.failed += unreadable;
    Ok(report)
}

/// Batches whose leases the loader takes in one transaction: on SQLite every write waits for
/// the writer task's transaction, so the loader claims once per group instead of once per batch.
const BATCHES_PER_CLAIM: usize = 4;

/// Claims every customer of `group` in one lease transaction; returns those held.
///
/// A lease is taken, and another holder's found expired, on the real time, not on the instant
/// the run bills at: a run billing at a past `--now` would hold its customers for as long as
/// reruns at that instant are made, and one billing at a future `--now` would hold them from
/// every present run until that date (or take over leases live nodes still hold).
async fn claim(
    billing: &Billing,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    group: &[Vec<Customer>],
) -> Result<HashSet<CustomerId>, RunBillingError> {
    let claimed_at = billing.lease_clock.now();
    let until = claimed_at
        .checked_add(settings.lease_duration)
        .map_err(|error| {
            RunBillingError::Inconsistent(Inconsistency::OutOfRange(error.to_string()))
        })?;
    let ids: Vec<CustomerId> = group.iter().flatten().map(|c| c.id.clone()).collect();
    Ok(billing
        .store
        .acquire_billing_leases(workspace, &ids, &settings.node, claimed_at, until)
        .await
        .map_err(RunBillingError::store)?
        .into_iter()
        .collect())
}

/// Gives leases back after the run stopped; a failure is logged (the leases expire anyway).
async fn release_quietly(
    billing: &Billing,
    workspace: &WorkspaceId,
    customer_ids: &[CustomerId],
    node: &str,
) {
    if let Err(error) = billing
        .store
        .release_billing_leases(workspace, customer_ids, node)
        .await
    {
        tracing::error!(error.message = %error, "could not release billing leases");
    }
}

/// Writes a planned batch in one transaction, releasing its `leases` in it, and completes its
/// report with what was written.
async fn write_batch(
    billing: &Billing,
    workspace: &WorkspaceId,
    writes: BillingWrites,
    mut report: RunReport,
    leases: HeldLeases<'_>,
) -> Result<RunReport, RunBillingError> {
    if writes.drafts.is_empty()
        && writes.finalize.is_empty()
        && writes.adjustments.is_empty()
        && writes.credits.is_empty()
        && writes.states.is_empty()
        && writes.seen.is_empty()
    {
        billing
            .store
            .release_billing_leases(workspace, leases.customer_ids, leases.holder)
            .await
            .map_err(RunBillingError::store)?;
        return Ok(report);
    }
    let written = billing
        .store
        .write_billing_batch(workspace, &writes, Some(leases))
        .await
        .map_err(RunBillingError::store)?;
    report.drafted = written.drafted;
    report.credit_notes = written.credit_notes;
    for number in written.numbers.into_iter().flatten() {
        report.finalized += 1;
        if report.numbers.len() < REPORTED_NUMBERS_MAX {
            report.numbers.push(number);
        }
    }
    Ok(report)
}

/// Runs the engine and plans the writes of every customer of a batch, on one thread per core. A customer whose engine run fails (an engine error on its data) is
/// logged and counted, and does not hold up the others' invoices; the next run retries it.
async fn run_engine(
    inputs: Vec<CustomerInput>,
    settings: &BillingSettings,
    now: Timestamp,
) -> Result<(RunReport, BillingWrites), RunBillingError> {
    let workers = engine_workers();
    let share = inputs.len().div_ceil(workers.max(1)).max(1);
    let mut inputs = inputs.into_iter();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let part: Vec<CustomerInput> = inputs.by_ref().take(share).collect();
        let settings = settings.clone();
        // Pure CPU work, off the async workers; a panic in the engine fails this run, not the
        // node.
        tasks.push(tokio::task::spawn_blocking(move || {
            part.into_iter()
                .map(|input| {
                    let id = input.world.customer.customer_id.clone();
                    (id, plan_customer(input, &settings, now))
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut report = RunReport::default();
    let mut writes = BillingWrites::default();
    for task in tasks {
        let plans = task.await.map_err(RunBillingError::Task)?;
        for (customer_id, plan) in plans {
            match plan {
                Ok(plan) => {
                    report.customers += 1;
                    report.from_checkpoint += u64::from(plan.from_checkpoint);
                    report.adjustments += u64::try_from(plan.adjustments.len()).unwrap_or(0);
                    writes.drafts.extend(plan.drafts);
                    writes.finalize.extend(plan.finalize);
                    writes.adjustments.extend(plan.adjustments);
                    writes.credits.extend(plan.credits);
                    writes.states.push(plan.state);
                }
                Err(error) => {
                    error.log_for_customer(&customer_id);
                    report.failed += 1;
                }
            }
        }
    }
    Ok((report, writes))
}

/// Every event of `subjects` up to and including `now`, from the beginning: a gauge's level at a
/// period's start is its last value before it.
async fn load_events(
    billing: &Billing,
    workspace: &WorkspaceId,
    subjects: &[String],
    now: Timestamp,
) -> Result<Vec<UsageEvent>, RunBillingError> {
    billing
        .store
        .usage_events(workspace, subjects, Timestamp::MIN, load::usage_end(now))
        .await
        .map_err(RunBillingError::store)
}

/// The engine's answer for one customer at `now`, with the customer's pending late-usage
/// adjustments passed as a run passes them ([`pending_adjustments`] over the stored invoices and
/// adjustments), so that the upcoming invoice shows the adjustment lines, and their tax, that
/// the next run would bill on it.
pub(crate) async fn preview_customer(
    billing: &Billing,
    workspace: &WorkspaceId,
    world: &CustomerWorld,
    now: Timestamp,
) -> Result<Preview, RunBillingError> {
    let events = load_events(billing, workspace, &world.subjects(), now).await?;
    let customer_ids = [world.customer.customer_id.clone()];
    let invoices = billing
        .store
        .invoice_summaries_of_customers(workspace, &customer_ids)
        .await
        .map_err(RunBillingError::store)?;
    let invoice_keys: Vec<String> = world.invoice_keys().map(str::to_owned).collect();
    let adjustments = load::adjustments_by_key(billing, workspace, &invoice_keys).await?;
    let balances = load::credit_balances(billing, workspace, &adjustments).await?;
    let pending = pending_adjustments(world, &invoices, &adjustments);
    let input = world
        .world(now, events, pending)
        .map_err(|source| RunBillingError::World {
            customer_id: world.customer.customer_id.clone().into(),
            source,
        })?;
    // Pure CPU work, off the async workers; a panic in the engine fails this call, not the node.
    // The adjustments a run would credit instead are left out, as the run leaves them out.
    tokio::task::spawn_blocking(move || {
        let mut input = input;
        preview_with_credits(
            &mut input,
            None,
            &adjustments,
            &balances,
            now,
            Upcoming::AsIfIssued,
        )
        .map(|(preview, _)| preview)
    })
    .await
    .map_err(RunBillingError::Task)?
}
