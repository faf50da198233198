//! A billing run for one customer: claim it with a lease, run the engine over its stored world,
//! and reconcile what the engine issues with what is stored (docs/billing-runs.md).
//!
//! - An invoice due (issued at or before now) but still inside the grace period is stored as a
//!   draft, and redrafted by every run while late usage may change it.
//! - Past the grace period it is finalized: numbered, opened, `PaymentPending`, immutable.
//! - A finalized invoice that the engine now computes differently (usage that arrived after it
//!   was finalized) gets an adjustment: the difference, billed as a line of the subscription's
//!   next finalized invoice.

use std::collections::{BTreeMap, HashMap};

use billow_core::invoice::{Invoice, InvoiceLine, LineKind, LineTrace};
use billow_core::scenario::{IssuedInvoice, Preview};
use billow_core::{Money, UsageEvent};
use billow_store::billing::{
    AdjustmentRecord, BillingWrites, Finalization, Finalized, InvoiceSummary,
};
use billow_store::invoices::{InvoiceRecord, InvoiceStatus};
use billow_store::{new_id, Customer, WorkspaceId};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::scenario::{
    meter_specs, scenario_error, workspace_rounding, CustomerWorld, ParsedCatalog,
};
use crate::error::ApiError;
use crate::startup::AppState;

/// How billing runs behave.
#[derive(Clone, Debug)]
pub struct BillingSettings {
    /// How long a due invoice stays a draft, open to late usage, before it is finalized.
    pub grace_period: SignedDuration,
    /// How long a run holds its claim on a customer; a run that dies is taken over after it.
    pub lease_duration: SignedDuration,
    /// How often the scheduler inside `serve` runs; `None`: no scheduler.
    pub interval: Option<std::time::Duration>,
    /// This process's name in leases.
    pub node: String,
    /// The bank account the manual payment provider's instructions name.
    pub bank_account: String,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            grace_period: SignedDuration::from_hours(1),
            lease_duration: SignedDuration::from_secs(60),
            interval: Some(std::time::Duration::from_secs(60)),
            node: new_id("node"),
            bank_account: super::payment::ManualProvider::default().bank_account,
        }
    }
}

/// What one run did, per customer and in sum.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub customers: u64,
    /// Customers another run held a lease on.
    pub skipped: u64,
    /// Customers whose run failed (logged; retried by the next run).
    pub failed: u64,
    pub drafted: u64,
    pub finalized: u64,
    pub adjustments: u64,
    /// The first numbers given, in order (at most 100; `finalized` counts
    /// them all).
    pub numbers: Vec<i64>,
}

/// How many customers a run claims, reads and writes at once: one lease statement, one query
/// per table and one write transaction per batch.
const CUSTOMERS_PER_BATCH: usize = 1_000;

/// Most invoice numbers a [`RunReport`] lists, so that a large run's report stays small.
pub const REPORTED_NUMBERS_MAX: usize = 100;

/// Customers per page when a run reads the workspace's customers.
const CUSTOMER_PAGE: u32 = 10_000;

impl RunReport {
    pub(crate) fn add(&mut self, other: RunReport) {
        self.customers += other.customers;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.drafted += other.drafted;
        self.finalized += other.finalized;
        self.adjustments += other.adjustments;
        let room = REPORTED_NUMBERS_MAX.saturating_sub(self.numbers.len());
        self.numbers.extend(other.numbers.into_iter().take(room));
    }
}

/// What a run keeps from one batch to the next: the workspace's meters, the plan versions read
/// so far, and each engine worker's parsed plans.
struct RunContext {
    meters: Vec<Value>,
    /// The workspace's rounding mode, read once per run.
    rounding: billow_core::RoundingMode,
    versions: BTreeMap<String, billow_store::catalog::PlanVersionRecord>,
    workers: Vec<ParsedCatalog>,
}

impl RunContext {
    async fn load(state: &AppState, workspace: &WorkspaceId) -> Result<Self, ApiError> {
        Ok(Self {
            meters: meter_specs(state, workspace).await?,
            rounding: workspace_rounding(state, workspace).await?,
            versions: BTreeMap::new(),
            workers: (0..engine_workers())
                .map(|_| ParsedCatalog::default())
                .collect(),
        })
    }
}

/// Engine threads per batch: one per core.
fn engine_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs billing for every customer of the workspace that has a subscription.
pub(crate) async fn run_workspace(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
) -> Result<RunReport, ApiError> {
    let billed = state
        .store
        .billed_customers(workspace)
        .await
        .map_err(ApiError::internal)?;
    // Read after the billed list, so every billed customer is among them (customers are never
    // deleted).
    let mut customers = all_customers(state, workspace).await?;
    let mut context = RunContext::load(state, workspace).await?;
    let mut report = RunReport::default();
    for batch in billed.chunks(CUSTOMERS_PER_BATCH) {
        let batch: Vec<Customer> = batch.iter().filter_map(|id| customers.remove(id)).collect();
        report.add(run_batch(state, settings, workspace, batch, &mut context).await?);
    }
    Ok(report)
}

/// Every customer of the workspace, by id.
async fn all_customers(
    state: &AppState,
    workspace: &WorkspaceId,
) -> Result<HashMap<String, Customer>, ApiError> {
    let mut all = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .customers(workspace, CUSTOMER_PAGE, after.as_deref())
            .await
            .map_err(ApiError::internal)?;
        after = page.items.last().map(|customer| customer.id.clone());
        all.extend(
            page.items
                .into_iter()
                .map(|customer| (customer.id.clone(), customer)),
        );
        if !page.has_more || after.is_none() {
            return Ok(all);
        }
    }
}

/// Runs billing for one customer, if no other run holds it.
pub(crate) async fn run_customer(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<RunReport, ApiError> {
    let Some(customer) = state
        .store
        .customer(workspace, customer_id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(RunReport::default());
    };
    let mut context = RunContext::load(state, workspace).await?;
    run_batch(state, settings, workspace, vec![customer], &mut context).await
}

/// One customer's part of a batch, as the engine workers take it.
struct CustomerInput {
    world: CustomerWorld,
    events: Vec<UsageEvent>,
    invoices: Vec<InvoiceSummary>,
    adjustments: HashMap<String, Vec<AdjustmentRecord>>,
}

/// Bills a batch of customers: claims them with one lease statement, reads their worlds, usage,
/// stored invoices and adjustments with one query per table, runs the engine on every core, and
/// writes what it decided in one transaction; then releases the leases.
async fn run_batch(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    customers: Vec<Customer>,
    context: &mut RunContext,
) -> Result<RunReport, ApiError> {
    let now = state.clock.now();
    let until = now
        .checked_add(settings.lease_duration)
        .map_err(ApiError::internal)?;
    let ids: Vec<String> = customers.iter().map(|c| c.id.clone()).collect();
    let held = state
        .store
        .acquire_billing_leases(workspace, &ids, &settings.node, now, until)
        .await
        .map_err(ApiError::internal)?;
    let mut report = RunReport {
        skipped: u64::try_from(ids.len() - held.len()).unwrap_or(u64::MAX),
        ..RunReport::default()
    };
    if held.is_empty() {
        return Ok(report);
    }
    let holding: std::collections::HashSet<&str> = held.iter().map(String::as_str).collect();
    let claimed: Vec<Customer> = customers
        .into_iter()
        .filter(|customer| holding.contains(customer.id.as_str()))
        .collect();
    let outcome = bill_claimed(state, settings, workspace, claimed, context, now).await;
    // Released after an error too: the next run retries at once instead of after expiry.
    state
        .store
        .release_billing_leases(workspace, &held, &settings.node)
        .await
        .map_err(ApiError::internal)?;
    report.add(outcome?);
    Ok(report)
}

async fn bill_claimed(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    claimed: Vec<Customer>,
    context: &mut RunContext,
    now: Timestamp,
) -> Result<RunReport, ApiError> {
    let ids: Vec<String> = claimed.iter().map(|c| c.id.clone()).collect();
    let worlds = CustomerWorld::load_many(
        state,
        workspace,
        claimed,
        &context.meters,
        context.rounding,
        &mut context.versions,
    )
    .await?;
    let events = batch_events(state, workspace, &worlds, now).await?;
    let mut invoices: HashMap<String, Vec<InvoiceSummary>> = HashMap::new();
    for summary in state
        .store
        .invoice_summaries_of_customers(workspace, &ids)
        .await
        .map_err(ApiError::internal)?
    {
        invoices
            .entry(summary.customer_id.clone())
            .or_default()
            .push(summary);
    }
    let subscription_ids: Vec<String> = worlds
        .iter()
        .flat_map(|world| world.subscriptions.iter().map(|(s, _)| s.id.clone()))
        .collect();
    let mut adjustments: HashMap<String, Vec<AdjustmentRecord>> = HashMap::new();
    for adjustment in state
        .store
        .adjustments_of_subscriptions(workspace, &subscription_ids)
        .await
        .map_err(ApiError::internal)?
    {
        adjustments
            .entry(adjustment.subscription_id.clone())
            .or_default()
            .push(adjustment);
    }
    let inputs: Vec<CustomerInput> = worlds
        .into_iter()
        .zip(events)
        .map(|(world, events)| {
            let invoices = invoices
                .remove(&world.customer.customer_id)
                .unwrap_or_default();
            let adjustments = world
                .subscriptions
                .iter()
                .map(|(s, _)| (s.id.clone(), adjustments.remove(&s.id).unwrap_or_default()))
                .collect();
            CustomerInput {
                world,
                events,
                invoices,
                adjustments,
            }
        })
        .collect();

    let plans = run_engine(inputs, context, settings, now).await?;
    let mut report = RunReport::default();
    let mut writes = BillingWrites::default();
    for (customer_id, plan) in plans {
        match plan {
            Ok(plan) => {
                report.customers += 1;
                report.adjustments += u64::try_from(plan.adjustments.len()).unwrap_or(0);
                writes.drafts.extend(plan.drafts);
                writes.finalize.extend(plan.finalize);
                writes.adjustments.extend(plan.adjustments);
            }
            Err(error) => {
                // One customer's failure (an engine error on its data) must not hold up the
                // others' invoices: it is logged, counted, and retried by the next run.
                failed(&customer_id, &error);
                report.failed += 1;
            }
        }
    }
    if writes.drafts.is_empty() && writes.finalize.is_empty() && writes.adjustments.is_empty() {
        return Ok(report);
    }
    let written = state
        .store
        .write_billing_batch(workspace, &writes)
        .await
        .map_err(ApiError::internal)?;
    report.drafted = written.drafted;
    for number in written.numbers.into_iter().flatten() {
        report.finalized += 1;
        if report.numbers.len() < REPORTED_NUMBERS_MAX {
            report.numbers.push(number);
        }
    }
    Ok(report)
}

/// Runs the engine and plans the writes of every customer, on [`engine_workers`] threads; each
/// customer's result by id, in the order given.
async fn run_engine(
    inputs: Vec<CustomerInput>,
    context: &mut RunContext,
    settings: &BillingSettings,
    now: Timestamp,
) -> Result<Vec<(String, Result<CustomerPlan, ApiError>)>, ApiError> {
    let workers = std::mem::take(&mut context.workers);
    let share = inputs.len().div_ceil(workers.len().max(1)).max(1);
    let mut inputs = inputs.into_iter();
    let mut tasks = Vec::new();
    for mut parsed in workers {
        let part: Vec<CustomerInput> = inputs.by_ref().take(share).collect();
        let settings = settings.clone();
        // Pure CPU work, off the async workers; a panic in the engine fails this run, not the
        // node.
        tasks.push(tokio::task::spawn_blocking(move || {
            let plans: Vec<_> = part
                .into_iter()
                .map(|input| {
                    let id = input.world.customer.customer_id.clone();
                    (id, plan_customer(input, &mut parsed, &settings, now))
                })
                .collect();
            (plans, parsed)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let (plans, parsed) = task.await.map_err(ApiError::internal)?;
        context.workers.push(parsed);
        all.extend(plans);
    }
    Ok(all)
}

fn failed(customer_id: &str, error: &ApiError) {
    tracing::error!(
        customer_id = %customer_id,
        error.message = %error,
        error.cause_chain = ?error,
        "billing run failed for a customer"
    );
}

/// The usage of each customer of `worlds` up to `now`, in one query, split by customer in the
/// store's order.
async fn batch_events(
    state: &AppState,
    workspace: &WorkspaceId,
    worlds: &[CustomerWorld],
    now: Timestamp,
) -> Result<Vec<Vec<UsageEvent>>, ApiError> {
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (index, world) in worlds.iter().enumerate() {
        for subject in world.subjects() {
            owner.insert(subject, index);
        }
    }
    let mut split = vec![Vec::new(); worlds.len()];
    if owner.is_empty() {
        return Ok(split);
    }
    let subjects: Vec<String> = owner.keys().cloned().collect();
    let events = load_events(state, workspace, &subjects, now).await?;
    for event in events {
        if let Some(&index) = owner.get(&event.subject) {
            split[index].push(event);
        }
    }
    Ok(split)
}

/// Every event of `subjects` up to and including `now`, from the beginning: a gauge's level at a
/// period's start is its last value before it.
async fn load_events(
    state: &AppState,
    workspace: &WorkspaceId,
    subjects: &[String],
    now: Timestamp,
) -> Result<Vec<UsageEvent>, ApiError> {
    let to = now
        .checked_add(SignedDuration::from_micros(1))
        .unwrap_or(now);
    state
        .store
        .usage_events(workspace, subjects, Timestamp::MIN, to)
        .await
        .map_err(ApiError::internal)
}

/// The engine's answer for one customer at `now`.
pub(crate) async fn preview_customer(
    state: &AppState,
    workspace: &WorkspaceId,
    world: &CustomerWorld,
    now: Timestamp,
) -> Result<Preview, ApiError> {
    let events = load_events(state, workspace, &world.subjects(), now).await?;
    let scenario = world
        .scenario(&mut ParsedCatalog::default(), now, events)
        .map_err(|error| scenario_error(&error, ""))?;
    // Pure CPU work, off the async workers; a panic in the engine fails this call, not the node.
    tokio::task::spawn_blocking(move || billow_core::scenario::preview(&scenario))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// What one customer's run writes.
struct CustomerPlan {
    drafts: Vec<InvoiceRecord>,
    finalize: Vec<Finalization>,
    adjustments: Vec<AdjustmentRecord>,
}

/// Runs the engine for one customer and decides, against what is stored, what to write: each
/// invoice the engine issued (at or before now), keyed by (subscription, issued_at), in time
/// order, is drafted, finalized, or (already final) compared for late usage.
fn plan_customer(
    input: CustomerInput,
    parsed: &mut ParsedCatalog,
    settings: &BillingSettings,
    now: Timestamp,
) -> Result<CustomerPlan, ApiError> {
    let CustomerInput {
        world,
        events,
        invoices,
        mut adjustments,
    } = input;
    let customer_id = world.customer.customer_id.as_str();
    let scenario = world
        .scenario(parsed, now, events)
        .map_err(|error| scenario_error(&error, ""))?;
    let preview = billow_core::scenario::preview(&scenario).map_err(ApiError::internal)?;
    let stored: HashMap<(&str, Timestamp), &InvoiceSummary> = invoices
        .iter()
        .map(|invoice| {
            (
                (invoice.subscription_id.as_str(), invoice.issued_at),
                invoice,
            )
        })
        .collect();
    let sources: HashMap<&str, AdjustmentSource> = invoices
        .iter()
        .map(|invoice| (invoice.id.as_str(), AdjustmentSource::of_summary(invoice)))
        .collect();
    let mut plan = CustomerPlan {
        drafts: Vec::new(),
        finalize: Vec::new(),
        adjustments: Vec::new(),
    };
    for issued in &preview.invoices {
        let known = adjustments.entry(issued.subscription.clone()).or_default();
        let key = (issued.subscription.as_str(), issued.invoice.issued_at);
        match stored.get(&key) {
            Some(invoice) if invoice.status != InvoiceStatus::Draft => {
                if let Some(adjustment) = late_usage(invoice, issued, known, now) {
                    known.push(adjustment.clone());
                    plan.adjustments.push(adjustment);
                }
            }
            draft => {
                let due_final = issued
                    .invoice
                    .issued_at
                    .checked_add(settings.grace_period)
                    .is_ok_and(|end| end <= now);
                let mut record = record_of(&world, customer_id, issued, now)?;
                if let Some(draft) = draft {
                    // The draft's id stays the invoice's id: clients may have seen it.
                    record.id.clone_from(&draft.id);
                }
                if due_final {
                    let pending: Vec<AdjustmentRecord> = known
                        .iter()
                        .filter(|a| a.applied_invoice_id.is_none())
                        .cloned()
                        .collect();
                    if !pending.is_empty() {
                        add_adjustment_lines(&mut record, &pending, &sources)?;
                    }
                    record.status = InvoiceStatus::Open;
                    record.finalized_at = Some(now);
                    // Taken by this invoice (if its write finds it already final, they stay
                    // pending in the store for the next run).
                    for adjustment in known.iter_mut().filter(|a| a.applied_invoice_id.is_none()) {
                        adjustment.applied_invoice_id = Some(record.id.clone());
                    }
                    plan.finalize.push(Finalization {
                        invoice: record,
                        replaces_draft: draft.is_some(),
                        applied_adjustment_ids: pending.into_iter().map(|a| a.id).collect(),
                    });
                } else {
                    plan.drafts.push(record);
                }
            }
        }
    }
    Ok(plan)
}

/// The adjustment to record when the engine's total for a finalized invoice moved: the
/// difference not yet accounted for by earlier adjustments.
fn late_usage(
    finalized: &InvoiceSummary,
    issued: &IssuedInvoice,
    known: &[AdjustmentRecord],
    now: Timestamp,
) -> Option<AdjustmentRecord> {
    let adjusted: i64 = known
        .iter()
        .filter(|a| a.source_invoice_id == finalized.id)
        .map(|a| a.amount_minor)
        .sum();
    if issued.invoice.currency.code() != finalized.currency {
        // The customer's currency changed since: amounts in two currencies do not subtract.
        tracing::warn!(
            invoice_id = %finalized.id,
            "the customer's currency changed since the invoice was finalized; no adjustment"
        );
        return None;
    }
    let computed = issued.invoice.totals.total.amount_minor();
    let difference = computed - finalized.computed_total_minor - adjusted;
    if difference == 0 {
        return None;
    }
    tracing::info!(
        invoice_id = %finalized.id,
        difference_minor = difference,
        "late usage changed a finalized invoice; the difference goes on the next invoice"
    );
    Some(AdjustmentRecord {
        id: new_id("adj"),
        subscription_id: finalized.subscription_id.clone(),
        source_invoice_id: finalized.id.clone(),
        amount_minor: difference,
        applied_invoice_id: None,
        created_at: now,
    })
}

/// Finalizes `record` with the subscription's pending adjustments as lines; the number given,
/// or `None` when another run finalized it first.
async fn finalize(
    state: &AppState,
    workspace: &WorkspaceId,
    mut record: InvoiceRecord,
    known: &mut [AdjustmentRecord],
    now: Timestamp,
) -> Result<Option<i64>, ApiError> {
    let pending: Vec<AdjustmentRecord> = known
        .iter()
        .filter(|a| a.applied_invoice_id.is_none())
        .cloned()
        .collect();
    if !pending.is_empty() {
        let mut sources = HashMap::new();
        for adjustment in &pending {
            if let Some(source) = state
                .store
                .invoice(workspace, &adjustment.source_invoice_id)
                .await
                .map_err(ApiError::internal)?
            {
                sources.insert(
                    adjustment.source_invoice_id.as_str(),
                    AdjustmentSource::of_record(&source),
                );
            }
        }
        add_adjustment_lines(&mut record, &pending, &sources)?;
    }
    record.status = InvoiceStatus::Open;
    record.finalized_at = Some(now);
    let applied: Vec<String> = pending.into_iter().map(|a| a.id).collect();
    let finalized = state
        .store
        .finalize_invoice(workspace, &record, &applied)
        .await
        .map_err(ApiError::internal)?;
    Ok(match finalized {
        Finalized::Numbered(number) => {
            for adjustment in known.iter_mut().filter(|a| applied.contains(&a.id)) {
                adjustment.applied_invoice_id = Some(record.id.clone());
            }
            Some(number)
        }
        Finalized::AlreadyFinal => None,
    })
}

/// Finalizes a stored draft now (`POST /api/v1/invoices/{id}/finalize`).
///
/// # Errors
/// A 409 when another run or request finalized it first.
pub(crate) async fn finalize_draft(
    state: &AppState,
    workspace: &WorkspaceId,
    draft: InvoiceRecord,
) -> Result<i64, ApiError> {
    let id = draft.id.clone();
    let mut known = state
        .store
        .adjustments(workspace, &draft.subscription_id)
        .await
        .map_err(ApiError::internal)?;
    finalize(state, workspace, draft, &mut known, state.clock.now())
        .await?
        .ok_or_else(|| {
            crate::billing::api::store_error("invoice", &id)(
                billow_store::BillingStoreError::Immutable,
            )
        })
}

/// What an adjustment line says of the invoice whose total moved.
struct AdjustmentSource {
    /// `#12`, or the id of an invoice without a number.
    label: String,
    period: billow_core::Period,
}

impl AdjustmentSource {
    fn of_summary(invoice: &InvoiceSummary) -> Self {
        Self::new(
            &invoice.id,
            invoice.number,
            invoice.period_start,
            invoice.period_end,
        )
    }

    fn of_record(invoice: &InvoiceRecord) -> Self {
        Self::new(
            &invoice.id,
            invoice.number,
            invoice.period_start,
            invoice.period_end,
        )
    }

    fn new(id: &str, number: Option<i64>, start: Timestamp, end: Timestamp) -> Self {
        Self {
            label: number.map_or_else(|| id.to_owned(), |n| format!("#{n}")),
            period: billow_core::Period { start, end },
        }
    }
}

/// Adds one `adjustment` line per pending adjustment and updates the totals: the difference is
/// the change of the earlier invoice's total, tax included, so it counts in the subtotal and the
/// total (subtotal + discount + credit + tax = total still holds).
fn add_adjustment_lines(
    record: &mut InvoiceRecord,
    pending: &[AdjustmentRecord],
    sources: &HashMap<&str, AdjustmentSource>,
) -> Result<(), ApiError> {
    let currency =
        billow_core::Currency::from_code(&record.currency).map_err(ApiError::internal)?;
    let mut lines: Vec<InvoiceLine> =
        serde_json::from_value(record.lines.clone()).map_err(ApiError::internal)?;
    let mut totals: billow_core::invoice::InvoiceTotals =
        serde_json::from_value(record.totals.clone()).map_err(ApiError::internal)?;
    for adjustment in pending {
        let amount = Money::from_minor(adjustment.amount_minor, currency);
        let (label, period) = match sources.get(adjustment.source_invoice_id.as_str()) {
            Some(source) => (source.label.clone(), source.period),
            None => (
                adjustment.source_invoice_id.clone(),
                lines.first().map_or(
                    billow_core::Period {
                        start: record.period_start,
                        end: record.period_end,
                    },
                    |line| line.period,
                ),
            ),
        };
        lines.push(InvoiceLine {
            number: u32::try_from(lines.len() + 1).map_err(ApiError::internal)?,
            kind: LineKind::Adjustment,
            description: format!("Late usage for invoice {label}, tax included"),
            price: None,
            meter: None,
            project: None,
            period,
            quantity: Decimal::ONE,
            amount,
            trace: LineTrace {
                unrounded_amount: amount.to_decimal(),
                note: Some(format!(
                    "usage received after invoice {label} was finalized changed its total by {amount}"
                )),
                ..LineTrace::default()
            },
        });
        let add = |money: Money| money.checked_add(amount).map_err(ApiError::internal);
        totals.subtotal = add(totals.subtotal)?;
        totals.total = add(totals.total)?;
        let by_kind = totals
            .by_kind
            .entry(LineKind::Adjustment)
            .or_insert_with(|| Money::zero(currency));
        *by_kind = add(*by_kind)?;
    }
    let sum = lines.iter().try_fold(Money::zero(currency), |sum, line| {
        sum.checked_add(line.amount)
    });
    assert_eq!(sum.ok(), Some(totals.total), "invoice total = Σ lines");
    record.total_minor = totals.total.amount_minor();
    record.lines = serde_json::to_value(&lines).map_err(ApiError::internal)?;
    record.totals = serde_json::to_value(&totals).map_err(ApiError::internal)?;
    Ok(())
}

/// The stored form of an invoice the engine issued, as a draft.
pub(crate) fn record_of(
    world: &CustomerWorld,
    customer_id: &str,
    issued: &IssuedInvoice,
    now: Timestamp,
) -> Result<InvoiceRecord, ApiError> {
    let invoice: &Invoice = &issued.invoice;
    let (subscription, changes) = world
        .subscriptions
        .iter()
        .find(|(s, _)| s.id == issued.subscription)
        .ok_or_else(|| ApiError::internal(UnknownSubscription(issued.subscription.clone())))?;
    let to_json = |value: Result<Value, serde_json::Error>| value.map_err(ApiError::internal);
    Ok(InvoiceRecord {
        id: new_id("inv"),
        number: None,
        customer_id: customer_id.to_owned(),
        subscription_id: subscription.id.clone(),
        plan_version_id: version_at(subscription, changes, invoice.issued_at),
        reason: to_json(serde_json::to_value(issued.reason))?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        issued_at: invoice.issued_at,
        period_start: invoice.period.start,
        period_end: invoice.period.end,
        status: InvoiceStatus::Draft,
        currency: invoice.currency.code().to_owned(),
        rounding: to_json(serde_json::to_value(invoice.rounding))?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        total_minor: invoice.totals.total.amount_minor(),
        computed_total_minor: invoice.totals.total.amount_minor(),
        lines: to_json(serde_json::to_value(&invoice.lines))?,
        totals: to_json(serde_json::to_value(&invoice.totals))?,
        credit_usage: to_json(serde_json::to_value(&invoice.credit_usage))?,
        created_at: now,
        finalized_at: None,
    })
}

/// The plan version in effect at `instant`: the subscription's first, or that of the last plan
/// change made at or before it.
fn version_at(
    subscription: &billow_store::subscriptions::SubscriptionRecord,
    changes: &[Value],
    instant: Timestamp,
) -> String {
    let first = subscription.spec["plan"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    changes
        .iter()
        .rev()
        .filter(|change| {
            change["at"]
                .as_str()
                .and_then(|at| at.parse::<Timestamp>().ok())
                .is_some_and(|at| at <= instant)
        })
        .find_map(|change| change["plan"].as_str())
        .map_or(first, str::to_owned)
}

#[derive(Debug, thiserror::Error)]
#[error("the engine issued an invoice for the unknown subscription {0}")]
struct UnknownSubscription(String);

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_invoice() -> Invoice {
        let text = r#"{"billow_scenario": 1, "name": "t", "currency": "EUR",
            "now": "2024-02-01T00:00:00Z", "customer": {"id": "c", "tax": {"name": "VAT", "rate_percent": "19"}},
            "plans": [{"key": "p", "cadence": "monthly", "prices": [
                {"key": "seat", "description": "Seats", "pricing": {"model": "per_unit", "unit_amount": "10"}}]}],
            "subscriptions": [{"id": "s", "plan": "p", "start": "2024-01-01T00:00:00Z"}]}"#;
        let scenario = billow_core::scenario::Scenario::from_json(text).unwrap();
        let preview = billow_core::scenario::preview(&scenario).unwrap();
        preview.invoices[1].invoice.clone()
    }

    fn record(invoice: &Invoice) -> InvoiceRecord {
        InvoiceRecord {
            id: "inv_2".into(),
            number: None,
            customer_id: "c".into(),
            subscription_id: "s".into(),
            plan_version_id: "pv".into(),
            reason: "period_end".into(),
            issued_at: invoice.issued_at,
            period_start: invoice.period.start,
            period_end: invoice.period.end,
            status: InvoiceStatus::Draft,
            currency: "EUR".into(),
            rounding: "half_up".into(),
            total_minor: invoice.totals.total.amount_minor(),
            computed_total_minor: invoice.totals.total.amount_minor(),
            lines: serde_json::to_value(&invoice.lines).unwrap(),
            totals: serde_json::to_value(&invoice.totals).unwrap(),
            credit_usage: serde_json::json!([]),
            created_at: invoice.issued_at,
            finalized_at: None,
        }
    }

    #[test]
    fn an_adjustment_is_a_line_and_moves_the_subtotal_and_total_only() {
        let invoice = engine_invoice();
        let mut stored = record(&invoice);
        let source = InvoiceRecord {
            id: "inv_1".into(),
            number: Some(1),
            ..record(&invoice)
        };
        let adjustment = AdjustmentRecord {
            id: "adj_1".into(),
            subscription_id: "s".into(),
            source_invoice_id: "inv_1".into(),
            amount_minor: 119,
            applied_invoice_id: None,
            created_at: invoice.issued_at,
        };
        let sources = HashMap::from([("inv_1", AdjustmentSource::of_record(&source))]);

        add_adjustment_lines(&mut stored, &[adjustment], &sources).unwrap();

        // 10.00 seat + 1.90 VAT = 11.90, plus 1.19 of late usage (tax included).
        assert_eq!(stored.total_minor, 1190 + 119);
        assert_eq!(stored.computed_total_minor, 1190);
        let lines: Vec<InvoiceLine> = serde_json::from_value(stored.lines).unwrap();
        let last = lines.last().unwrap();
        assert_eq!(last.kind, LineKind::Adjustment);
        assert_eq!(last.number, u32::try_from(lines.len()).unwrap());
        assert_eq!(last.description, "Late usage for invoice #1, tax included");
        let totals: billow_core::invoice::InvoiceTotals =
            serde_json::from_value(stored.totals).unwrap();
        assert_eq!(totals.subtotal.amount_minor(), 1000 + 119);
        assert_eq!(totals.tax.amount_minor(), 190);
        assert_eq!(totals.by_kind[&LineKind::Adjustment].amount_minor(), 119);
    }
}
