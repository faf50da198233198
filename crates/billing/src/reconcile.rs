//! What a billing run writes for one customer, decided against what is stored: each invoice the
//! engine issued is drafted, finalized (numbered, with its due date) or, already final, compared
//! for late usage; and the stored forms the engine and the store exchange (an issued invoice's
//! record, the pending adjustments as the engine takes them). docs/billing-runs.md.

use std::collections::HashMap;

use billow_core::invoice::{Invoice, InvoiceLine};
use billow_core::late_usage::late_usage_adjustment;
use billow_core::scenario::{
    AdjustmentSpec, ChangeSpec, Checkpoint, IssuedInvoice, Preview, World,
};
use billow_core::Money;
use billow_store::billing::{
    AdjustmentCredit, AdjustmentRecord, BillingStateRecord, Finalization, Finalized, InvoiceSummary,
};
use billow_store::invoices::{InvoiceRecord, InvoiceScope, InvoiceStatus};
use billow_store::{AdjustmentId, InvoiceId, WorkspaceId};
use jiff::{SignedDuration, Timestamp};

use crate::load::CustomerInput;
use crate::preview::{preview_with_credits, Upcoming};
use crate::world::{net_days_of, workspace_settings, CustomerWorld};
use crate::BillingSettings;
use crate::{Billing, Inconsistency, RunBillingError};

/// What one customer's run writes.
pub(crate) struct CustomerPlan {
    pub(crate) drafts: Vec<InvoiceRecord<String>>,
    pub(crate) finalize: Vec<Finalization>,
    pub(crate) adjustments: Vec<AdjustmentRecord>,
    pub(crate) credits: Vec<AdjustmentCredit>,
    pub(crate) state: BillingStateRecord,
    /// Started at the stored checkpoint.
    pub(crate) from_checkpoint: bool,
}

/// Runs the engine for one customer and decides, against what is stored, what to write: each
/// invoice the engine issued (at or before now), keyed by (subscription, issued_at), in time
/// order, is drafted, finalized, or (already final) compared for late usage.
pub(crate) fn plan_customer(
    input: CustomerInput,
    settings: &BillingSettings,
    now: Timestamp,
) -> Result<CustomerPlan, RunBillingError> {
    let CustomerInput {
        world,
        world_version,
        checkpoint,
        usage,
        invoices,
        mut adjustments,
        balances,
        fingerprint,
    } = input;
    let mut events = Vec::new();
    for part in usage {
        events.extend(part.into_events().map_err(RunBillingError::store)?);
    }
    // Parts of different reads: in time order again (stable, so events of one instant keep
    // their stored order).
    events.sort_by_key(|event| event.time);
    let events = match &checkpoint {
        Some(checkpoint) => checkpoint.events_with(events),
        None => events,
    };
    let customer_id = world.customer.customer_id.as_str();
    let pending = pending_adjustments(&world, &invoices, &adjustments);
    let mut input = world
        .world(now, events, pending)
        .map_err(|source| RunBillingError::World {
            customer_id: customer_id.to_owned(),
            source,
        })?;
    let (preview, credits) = preview_with_credits(
        &mut input,
        checkpoint.as_ref(),
        &adjustments,
        &balances,
        now,
        Upcoming::Ignored,
    )?;
    if !credits.is_empty() {
        for credit in &credits {
            let settled = adjustments
                .values_mut()
                .flatten()
                .find(|a| a.id == credit.adjustment_id);
            if let Some(adjustment) = settled {
                adjustment.applied_invoice_id = Some(credit.source_invoice_id.clone());
            }
        }
    }
    let stored: HashMap<(&str, Timestamp), &InvoiceSummary> = invoices
        .iter()
        .map(|invoice| ((invoice.invoice_key.as_str(), invoice.issued_at), invoice))
        .collect();
    let mut plan = CustomerPlan {
        drafts: Vec::new(),
        finalize: Vec::new(),
        adjustments: Vec::new(),
        credits,
        from_checkpoint: checkpoint.is_some(),
        state: BillingStateRecord {
            customer_id: customer_id.into(),
            computed_at: now,
            next_due_at: preview.next_invoice_at,
            fingerprint,
            checkpoint: None,
            world_version,
            seen_version: world_version,
            billed_through: preview
                .invoices
                .iter()
                .map(|issued| issued.invoice.issued_at)
                .chain(checkpoint.as_ref().map(|c| c.through))
                .max(),
        },
    };
    // Whether each issued invoice is final once this run's writes are done.
    let mut finals: Vec<(Timestamp, bool)> = Vec::with_capacity(preview.invoices.len());
    for issued in &preview.invoices {
        let known = adjustments.entry(issued.key.clone()).or_default();
        let key = (issued.key.as_str(), issued.invoice.issued_at);
        match stored.get(&key) {
            Some(invoice) if invoice.status != InvoiceStatus::Draft => {
                finals.push((issued.invoice.issued_at, true));
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
                finals.push((issued.invoice.issued_at, due_final));
                if due_final {
                    let applied = billed_adjustments(&issued.invoice.lines, known);
                    record.status = InvoiceStatus::Open;
                    record.finalized_at = Some(now);
                    record.due_at = Some(due_at(now, world.net_days));
                    // Taken by this invoice (if its write finds it already final, they stay
                    // pending in the store for the next run).
                    for adjustment in known.iter_mut().filter(|a| applied.contains(&a.id)) {
                        adjustment.applied_invoice_id = Some(record.id.clone());
                    }
                    plan.finalize.push(Finalization {
                        invoice: record,
                        replaces_draft: draft.is_some(),
                        applied_adjustment_ids: applied,
                    });
                } else {
                    // A draft is due for finalizing when its grace period ends.
                    let finalizes_at = issued
                        .invoice
                        .issued_at
                        .checked_add(settings.grace_period)
                        .unwrap_or(now);
                    plan.state.next_due_at = Some(
                        plan.state
                            .next_due_at
                            .map_or(finalizes_at, |due| due.min(finalizes_at)),
                    );
                    plan.drafts.push(record);
                }
            }
        }
    }
    plan.state.checkpoint = next_checkpoint(&preview, &input, checkpoint, &finals);
    // An event before where the next computation reads usage from changes what a run writes
    // too (a gauge's level in a gap between periods).
    if let Some(next) = &plan.state.checkpoint {
        plan.state.billed_through = plan.state.billed_through.max(Some(next.usage_from));
    }
    Ok(plan)
}

/// Where the customer's next computation may start: after the last instant at and before which
/// every invoice is final once this run's writes are done (a draft stops it), or where this one
/// started when no later invoice became final.
fn next_checkpoint(
    preview: &Preview,
    world: &World,
    started: Option<Checkpoint>,
    finals: &[(Timestamp, bool)],
) -> Option<Checkpoint> {
    let first_open = finals
        .iter()
        .filter(|(_, is_final)| !is_final)
        .map(|(at, _)| *at)
        .min();
    let final_through = finals
        .iter()
        .filter(|(at, _)| first_open.is_none_or(|open| *at < open))
        .map(|(at, _)| *at)
        .max();
    match final_through {
        Some(through) if started.as_ref().is_none_or(|c| c.through < through) => {
            preview.checkpoint_through(world, through).or(started)
        }
        _ => started,
    }
}

/// The adjustment to record when the engine's amount before tax for a finalized invoice moved
/// (its own lines: subtotal + discount + credit, without the adjustment lines it billed): the
/// difference not yet accounted for by earlier adjustments, as core decides it
/// ([`late_usage_adjustment`]). Tax is left to the invoice that bills it.
fn late_usage(
    finalized: &InvoiceSummary,
    issued: &IssuedInvoice,
    known: &[AdjustmentRecord],
    now: Timestamp,
) -> Option<AdjustmentRecord> {
    let currency = issued.invoice.currency;
    if currency != finalized.currency {
        // The customer's currency changed since: amounts in two currencies do not subtract.
        tracing::warn!(
            invoice_id = %finalized.id,
            "the customer's currency changed since the invoice was finalized; no adjustment"
        );
        return None;
    }
    let adjusted = known
        .iter()
        .filter(|a| a.source_invoice_id == finalized.id)
        .map(|a| Money::from_minor(a.amount_minor, currency));
    let finalized_net = Money::from_minor(finalized.amount_before_tax_minor, currency);
    let difference = match late_usage_adjustment(&issued.invoice, finalized_net, adjusted) {
        Ok(Some(difference)) => difference.amount_minor(),
        Ok(None) => return None,
        Err(error) => {
            tracing::warn!(
                invoice_id = %finalized.id,
                error.message = %error,
                "the late-usage difference cannot be computed; no adjustment"
            );
            return None;
        }
    };
    tracing::info!(
        invoice_id = %finalized.id,
        difference_minor = difference,
        "late usage changed a finalized invoice; the difference goes on the next invoice"
    );
    Some(AdjustmentRecord {
        id: AdjustmentId::new(),
        invoice_key: finalized.invoice_key.clone(),
        source_invoice_id: finalized.id.clone(),
        amount_minor: difference,
        applied_invoice_id: None,
        created_at: now,
    })
}

/// Finalizes the draft `record`, marking applied the pending adjustments its lines bill (the
/// engine put them there when it drafted it); the number given, or `None` when another run
/// finalized it first.
async fn finalize(
    billing: &Billing,
    workspace: &WorkspaceId,
    mut record: InvoiceRecord,
    known: &mut [AdjustmentRecord],
    now: Timestamp,
) -> Result<Option<i64>, RunBillingError> {
    let lines: Vec<InvoiceLine> =
        serde_json::from_value(record.lines.clone()).map_err(RunBillingError::store)?;
    let applied = billed_adjustments(&lines, known);
    record.status = InvoiceStatus::Open;
    record.finalized_at = Some(now);
    record.due_at = Some(due_at(
        now,
        net_days(billing, workspace, &record.customer_id).await?,
    ));
    let finalized = billing
        .store
        .finalize_invoice(workspace, &record, &applied)
        .await
        .map_err(RunBillingError::store)?;
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

/// A customer's payment terms: its own net days, or the workspace's.
async fn net_days(
    billing: &Billing,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<u16, RunBillingError> {
    let (customer, settings) = tokio::try_join!(
        async {
            billing
                .store
                .customer(workspace, customer_id)
                .await
                .map_err(RunBillingError::store)
        },
        workspace_settings(billing, workspace),
    )?;
    let customer = customer.ok_or_else(|| {
        RunBillingError::Inconsistent(Inconsistency::UnknownCustomer(customer_id.to_owned()))
    })?;
    Ok(net_days_of(&customer, &settings))
}

/// When an invoice finalized at `finalized_at` is due: `net_days` whole days later.
pub fn due_at(finalized_at: Timestamp, net_days: u16) -> Timestamp {
    finalized_at
        .checked_add(SignedDuration::from_hours(24 * i64::from(net_days)))
        .unwrap_or(finalized_at)
}

/// The ids of the pending adjustments that `lines` bill (each line's `trace.adjustment`).
fn billed_adjustments(lines: &[InvoiceLine], known: &[AdjustmentRecord]) -> Vec<AdjustmentId> {
    lines
        .iter()
        .filter_map(|line| line.trace.adjustment.as_deref())
        .filter(|key| {
            known
                .iter()
                .any(|a| a.id == *key && a.applied_invoice_id.is_none())
        })
        .map(AdjustmentId::from)
        .collect()
}

/// Finalizes a stored draft now (`POST /api/v1/invoices/{id}/finalize`).
///
/// # Errors
/// When the store fails. `None` when another run or request finalized it first.
pub(crate) async fn finalize_draft(
    billing: &Billing,
    workspace: &WorkspaceId,
    draft: InvoiceRecord,
) -> Result<Option<i64>, RunBillingError> {
    let mut known = billing
        .store
        .adjustments(workspace, &draft.invoice_key)
        .await
        .map_err(RunBillingError::store)?;
    finalize(billing, workspace, draft, &mut known, billing.clock.now()).await
}

/// The customer's pending adjustments as the engine takes them: each billed on its
/// subscription's first invoice issued at or after the later of when it was recorded and just
/// after the subscription's last finalized invoice (so never on an invoice already final), or
/// on a standalone invoice when the subscription has no such invoice.
pub(crate) fn pending_adjustments(
    world: &CustomerWorld,
    invoices: &[InvoiceSummary],
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
) -> Vec<AdjustmentSpec> {
    let currency = world.customer.currency;
    let mut specs = Vec::new();
    for (key, known) in adjustments {
        let finalized = invoices.iter().filter(|invoice| {
            &invoice.invoice_key == key && invoice.status != InvoiceStatus::Draft
        });
        let after_final = finalized
            .map(|invoice| invoice.issued_at)
            .max()
            .and_then(|last| last.checked_add(SignedDuration::from_micros(1)).ok());
        for adjustment in known.iter().filter(|a| a.applied_invoice_id.is_none()) {
            let source = invoices
                .iter()
                .find(|invoice| invoice.id == adjustment.source_invoice_id);
            let label = source.and_then(|invoice| invoice.number).map_or_else(
                || adjustment.source_invoice_id.to_string(),
                |n| format!("#{n}"),
            );
            let period = source.map_or(
                billow_core::Period {
                    start: adjustment.created_at,
                    end: adjustment.created_at,
                },
                |invoice| billow_core::Period {
                    start: invoice.period_start,
                    end: invoice.period_end,
                },
            );
            specs.push(AdjustmentSpec {
                key: adjustment.id.clone().into(),
                subscription: key.clone(),
                amount: Money::from_minor(adjustment.amount_minor, currency).to_decimal(),
                description: format!("Late usage for invoice {label}"),
                period,
                at: after_final.map_or(adjustment.created_at, |after| {
                    after.max(adjustment.created_at)
                }),
            });
        }
    }
    // The map's order is arbitrary; the engine's lines follow this order.
    specs.sort_by(|a, b| a.key.cmp(&b.key));
    specs
}

/// The stored form of an invoice the engine issued, as a draft.
pub(crate) fn record_of(
    world: &CustomerWorld,
    customer_id: &str,
    issued: &IssuedInvoice,
    now: Timestamp,
) -> Result<InvoiceRecord<String>, RunBillingError> {
    let invoice: &Invoice = &issued.invoice;
    let (scope, plan_version_id) = match issued.scope {
        billow_core::scenario::InvoiceScope::Subscription => {
            let (subscription, changes) = world
                .subscriptions
                .iter()
                .find(|(s, _)| s.id == issued.key)
                .ok_or_else(|| {
                    RunBillingError::Inconsistent(Inconsistency::UnknownSubscription(
                        issued.key.clone(),
                    ))
                })?;
            (
                InvoiceScope::Subscription,
                version_at(subscription, changes, invoice.issued_at),
            )
        }
        // The customer's invoice bills several plans: each line names its product.
        billow_core::scenario::InvoiceScope::Customer => (InvoiceScope::Customer, String::new()),
    };
    let to_text = |text: Result<String, serde_json::Error>| text.map_err(RunBillingError::store);
    Ok(InvoiceRecord {
        id: InvoiceId::new(),
        number: None,
        customer_id: customer_id.into(),
        invoice_key: issued.key.clone(),
        scope,
        subscriptions: issued
            .subscriptions
            .clone()
            .into_iter()
            .map(Into::into)
            .collect(),
        plan_version_id: plan_version_id.into(),
        reason: issued.reason,
        issued_at: invoice.issued_at,
        period_start: invoice.period.start,
        period_end: invoice.period.end,
        status: InvoiceStatus::Draft,
        currency: invoice.currency,
        rounding: invoice.rounding,
        total_minor: invoice.totals.total.amount_minor(),
        amount_before_tax_minor: invoice.net_before_tax_minor(),
        lines: to_text(serde_json::to_string(&invoice.lines))?,
        totals: to_text(serde_json::to_string(&invoice.totals))?,
        credit_usage: to_text(serde_json::to_string(&invoice.credit_usage))?,
        created_at: now,
        finalized_at: None,
        due_at: None,
        credited_minor: 0,
        updated_at: now,
    })
}

/// The plan version in effect at `instant`: the subscription's first, or that of the last plan
/// change made at or before it.
fn version_at(
    subscription: &billow_store::subscriptions::SubscriptionRecord,
    changes: &[ChangeSpec],
    instant: Timestamp,
) -> String {
    changes
        .iter()
        .rev()
        .filter(|change| change.at <= instant)
        .find_map(|change| change.plan.clone())
        .unwrap_or_else(|| subscription.spec.plan.clone())
}
