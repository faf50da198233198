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
use billow_store::billing::{AdjustmentRecord, Finalized};
use billow_store::invoices::{InvoiceFilter, InvoiceRecord, InvoiceStatus};
use billow_store::{new_id, WorkspaceId};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use super::scenario::{scenario_error, CustomerWorld};
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

/// How many customers a run claims and loads usage for at once.
const CUSTOMERS_PER_BATCH: usize = 100;

/// Most invoice numbers a [`RunReport`] lists, so that a large run's report stays small.
pub const REPORTED_NUMBERS_MAX: usize = 100;

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

/// Runs billing for every customer of the workspace that has a subscription.
pub(crate) async fn run_workspace(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
) -> Result<RunReport, ApiError> {
    let customers = state
        .store
        .billed_customers(workspace)
        .await
        .map_err(ApiError::internal)?;
    let mut report = RunReport::default();
    for batch in customers.chunks(CUSTOMERS_PER_BATCH) {
        report.add(run_batch(state, settings, workspace, batch).await?);
    }
    Ok(report)
}

/// Runs billing for one customer, if no other run holds it.
pub(crate) async fn run_customer(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<RunReport, ApiError> {
    run_batch(state, settings, workspace, &[customer_id.to_owned()]).await
}

/// Bills a batch of customers: claims each with a lease, loads their usage with one query (the
/// event store answers many subjects at the cost of one), then reconciles each customer and
/// releases its lease.
async fn run_batch(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    customer_ids: &[String],
) -> Result<RunReport, ApiError> {
    let now = state.clock.now();
    let until = now
        .checked_add(settings.lease_duration)
        .map_err(ApiError::internal)?;
    let mut report = RunReport::default();
    let mut claimed = Vec::with_capacity(customer_ids.len());
    for customer_id in customer_ids {
        let held = state
            .store
            .acquire_billing_lease(workspace, customer_id, &settings.node, now, until)
            .await
            .map_err(ApiError::internal)?;
        if !held {
            report.skipped += 1;
            continue;
        }
        match CustomerWorld::load(state, workspace, customer_id).await {
            Ok(Some(world)) => claimed.push(world),
            Ok(None) => release(state, settings, workspace, customer_id).await?,
            Err(error) => {
                failed(customer_id, &error);
                report.failed += 1;
                release(state, settings, workspace, customer_id).await?;
            }
        }
    }
    let events = match batch_events(state, workspace, &claimed, now).await {
        Ok(events) => events,
        Err(error) => {
            for world in &claimed {
                release(state, settings, workspace, &world.customer.customer_id).await?;
            }
            return Err(error);
        }
    };
    for (world, events) in claimed.into_iter().zip(events) {
        let customer_id = world.customer.customer_id.clone();
        // One customer's failure (a store error, an engine error on its data) must not hold up
        // the others' invoices: it is logged, counted, and retried by the next run.
        match reconcile_customer(state, settings, workspace, world, events, now).await {
            Ok(one) => report.add(one),
            Err(error) => {
                failed(&customer_id, &error);
                report.failed += 1;
            }
        }
        // Released even after an error: the next run retries at once instead of after expiry.
        release(state, settings, workspace, &customer_id).await?;
    }
    Ok(report)
}

fn failed(customer_id: &str, error: &ApiError) {
    tracing::error!(
        customer_id = %customer_id,
        error.message = %error,
        error.cause_chain = ?error,
        "billing run failed for a customer"
    );
}

async fn release(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<(), ApiError> {
    state
        .store
        .release_billing_lease(workspace, customer_id, &settings.node)
        .await
        .map_err(ApiError::internal)
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
    preview_with_events(world, now, events).await
}

async fn preview_with_events(
    world: &CustomerWorld,
    now: Timestamp,
    events: Vec<UsageEvent>,
) -> Result<Preview, ApiError> {
    let scenario = world
        .scenario(now, events)
        .map_err(|error| scenario_error(&error, ""))?;
    // Pure CPU work, off the async workers; a panic in the engine fails this run, not the node.
    tokio::task::spawn_blocking(move || billow_core::scenario::preview(&scenario))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn reconcile_customer(
    state: &AppState,
    settings: &BillingSettings,
    workspace: &WorkspaceId,
    world: CustomerWorld,
    events: Vec<UsageEvent>,
    now: Timestamp,
) -> Result<RunReport, ApiError> {
    let customer_id = world.customer.customer_id.as_str();
    let preview = preview_with_events(&world, now, events).await?;
    let stored = stored_invoices(state, workspace, customer_id).await?;
    let mut report = RunReport {
        customers: 1,
        ..RunReport::default()
    };
    // Each subscription's adjustments, loaded once per run and kept in step with what it writes.
    let mut adjustments: HashMap<String, Vec<AdjustmentRecord>> = HashMap::new();
    for issued in preview.invoices {
        let key = (issued.subscription.clone(), issued.invoice.issued_at);
        if !adjustments.contains_key(&issued.subscription) {
            let loaded = state
                .store
                .adjustments(workspace, &issued.subscription)
                .await
                .map_err(ApiError::internal)?;
            adjustments.insert(issued.subscription.clone(), loaded);
        }
        let known = adjustments
            .get_mut(&issued.subscription)
            .expect("loaded just above");
        match stored.get(&key) {
            Some(invoice) if invoice.status != InvoiceStatus::Draft => {
                if detect_late_usage(state, workspace, invoice, &issued, known, now).await? {
                    report.adjustments += 1;
                }
            }
            _ => {
                let due_final = issued
                    .invoice
                    .issued_at
                    .checked_add(settings.grace_period)
                    .is_ok_and(|end| end <= now);
                let mut record = record_of(&world, customer_id, &issued, now)?;
                if let Some(draft) = stored.get(&key) {
                    // The draft's id stays the invoice's id: clients may have seen it.
                    record.id.clone_from(&draft.id);
                }
                if due_final {
                    if let Some(number) = finalize(state, workspace, record, known, now).await? {
                        report.finalized += 1;
                        if report.numbers.len() < REPORTED_NUMBERS_MAX {
                            report.numbers.push(number);
                        }
                    }
                } else if state
                    .store
                    .upsert_draft_invoice(workspace, &record)
                    .await
                    .map_err(ApiError::internal)?
                {
                    report.drafted += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Every stored invoice of the customer, by (subscription, issued_at).
async fn stored_invoices(
    state: &AppState,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<HashMap<(String, Timestamp), InvoiceRecord>, ApiError> {
    let mut all = HashMap::new();
    let mut filter = InvoiceFilter {
        customer_id: Some(customer_id.to_owned()),
        limit: billow_store::invoices::INVOICE_PAGE_LIMIT_MAX,
        ..InvoiceFilter::default()
    };
    loop {
        let page = state
            .store
            .invoices(workspace, &filter)
            .await
            .map_err(ApiError::internal)?;
        let Some(last) = page.last() else { break };
        filter.before_id = Some(last.id.clone());
        for invoice in page {
            all.insert(
                (invoice.subscription_id.clone(), invoice.issued_at),
                invoice,
            );
        }
    }
    Ok(all)
}

/// Records an adjustment when the engine's total for a finalized invoice moved; returns whether
/// it did.
async fn detect_late_usage(
    state: &AppState,
    workspace: &WorkspaceId,
    finalized: &InvoiceRecord,
    issued: &IssuedInvoice,
    known: &mut Vec<AdjustmentRecord>,
    now: Timestamp,
) -> Result<bool, ApiError> {
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
        return Ok(false);
    }
    let computed = issued.invoice.totals.total.amount_minor();
    let difference = computed - finalized.computed_total_minor - adjusted;
    if difference == 0 {
        return Ok(false);
    }
    let adjustment = AdjustmentRecord {
        id: new_id("adj"),
        subscription_id: finalized.subscription_id.clone(),
        source_invoice_id: finalized.id.clone(),
        amount_minor: difference,
        applied_invoice_id: None,
        created_at: now,
    };
    state
        .store
        .insert_adjustment(workspace, &adjustment)
        .await
        .map_err(ApiError::internal)?;
    known.push(adjustment);
    tracing::info!(
        invoice_id = %finalized.id,
        difference_minor = difference,
        "late usage changed a finalized invoice; the difference goes on the next invoice"
    );
    Ok(true)
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
        let mut numbers = BTreeMap::new();
        for adjustment in &pending {
            let source = state
                .store
                .invoice(workspace, &adjustment.source_invoice_id)
                .await
                .map_err(ApiError::internal)?;
            numbers.insert(adjustment.id.clone(), source);
        }
        add_adjustment_lines(&mut record, &pending, &numbers)?;
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

/// Adds one `adjustment` line per pending adjustment and updates the totals: the difference is
/// the change of the earlier invoice's total, tax included, so it counts in the subtotal and the
/// total (subtotal + discount + credit + tax = total still holds).
fn add_adjustment_lines(
    record: &mut InvoiceRecord,
    pending: &[AdjustmentRecord],
    sources: &BTreeMap<String, Option<InvoiceRecord>>,
) -> Result<(), ApiError> {
    let currency =
        billow_core::Currency::from_code(&record.currency).map_err(ApiError::internal)?;
    let mut lines: Vec<InvoiceLine> =
        serde_json::from_value(record.lines.clone()).map_err(ApiError::internal)?;
    let mut totals: billow_core::invoice::InvoiceTotals =
        serde_json::from_value(record.totals.clone()).map_err(ApiError::internal)?;
    for adjustment in pending {
        let amount = Money::from_minor(adjustment.amount_minor, currency);
        let source = sources.get(&adjustment.id).cloned().flatten();
        let (label, period) = match &source {
            Some(source) => (
                source
                    .number
                    .map_or_else(|| source.id.clone(), |n| format!("#{n}")),
                billow_core::Period {
                    start: source.period_start,
                    end: source.period_end,
                },
            ),
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
        let sources = BTreeMap::from([("adj_1".to_owned(), Some(source))]);

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
