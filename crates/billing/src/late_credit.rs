//! Negative late usage becomes a credit note of the invoice whose usage went down when the
//! subscription has no further invoice, or when billing it on the next invoice would make that
//! invoice's total negative (docs/billing-runs.md, "Late usage").
//!
//! The engine bills a pending adjustment of such a subscription on a standalone invoice (reason
//! `late_usage`). A negative one would make that an invoice with a negative total, which no
//! payment provider collects; Stripe Billing and Lago correct a finalized invoice downwards with a
//! credit note against it, and so does billow. The engine still decides the amounts: a run reads
//! the adjustment's line and the tax the engine allocated to it
//! ([`CreditAmounts::of_negative_adjustment`]), taxes it as the corrected invoice was
//! ([`CreditAmounts::taxed_as`]), then runs the engine again without the credited
//! adjustments, so that a standalone invoice bills only the positive ones (or is not issued).

use std::collections::HashMap;

use crate::RunBillingError;
use billow_core::credit_note::{AppliedTax, CreditAmounts, LeftToCredit};
use billow_core::invoice::{Invoice, InvoiceLine, LineKind};
use billow_core::scenario::{InvoiceReason, IssuedInvoice};
use billow_store::billing::{AdjustmentCredit, AdjustmentRecord};
use billow_store::invoices::{CreditBalance, CreditNoteRecord};
use billow_store::{CreditNoteId, InvoiceId};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};

/// Why a billing run writes a credit note, as the note's `reason` says it.
const LATE_USAGE_REASON: &str = "Usage reported after finalization lowered this invoice";

/// The credits that settle the pending negative adjustments the engine put on the standalone
/// invoices of `preview`, or on an invoice whose total they make negative, one credit note per
/// adjustment against its source invoice. (A negative adjustment that the next invoice absorbs
/// stays a line of it, as Stripe Billing nets a correction on the next invoice.)
///
/// A credit note never credits more than is left to credit on its invoice (`balances`, by
/// invoice id: the invoice's total less its credit notes, zero for a void invoice), a running
/// balance core keeps ([`LeftToCredit::credit`]). When the correction is more than that, what is
/// left is credited, the tax keeping its share ([`CreditAmounts::capped`]), and the rest of the correction is dropped: the customer cannot be
/// owed more on an invoice than the invoice charged, and a negative balance carried to no invoice
/// would never be settled. When nothing is left, the adjustment is settled without a credit note.
/// Either way the adjustment's whole difference stays recorded against its source invoice, so no
/// later run records it again.
///
/// # Errors
/// An internal error when the engine's invoice is inconsistent (a positive tax on a negative
/// line, another currency).
pub(crate) fn plan_credits<'p>(
    invoices: impl Iterator<Item = &'p IssuedInvoice>,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
    balances: &HashMap<InvoiceId, CreditBalance>,
    now: Timestamp,
) -> Result<Vec<AdjustmentCredit>, RunBillingError> {
    let mut left: HashMap<&str, LeftToCredit> = balances
        .iter()
        .map(|(id, balance)| (id.as_str(), balance.left_to_credit()))
        .collect();
    let mut credits = Vec::new();
    // No invoice is issued with a negative total: no payment provider collects one, and a
    // negative balance carried to no invoice would never be settled.
    let crediting = invoices.filter(|issued| {
        issued.reason == InvoiceReason::LateUsage || issued.invoice.totals.total.amount_minor() < 0
    });
    for issued in crediting {
        let invoice = &issued.invoice;
        for line in &invoice.lines {
            let Some(key) = line.trace.adjustment.as_deref() else {
                continue;
            };
            let Some(amounts) = CreditAmounts::of_negative_adjustment(invoice, line.number)
                .map_err(RunBillingError::store)?
            else {
                continue;
            };
            let Some(adjustment) = adjustments
                .get(&issued.key)
                .and_then(|known| known.iter().find(|a| a.id == key))
                .filter(|a| a.applied_invoice_id.is_none())
            else {
                continue;
            };
            let source = adjustment.source_invoice_id.as_str();
            // Taxed as the corrected invoice was: the engine taxed the line at the
            // customer's rate of today, which may differ from the invoice's.
            let applied = balances
                .get(source)
                .map_or(AppliedTax::Unrecorded, |balance| {
                    applied_tax(&balance.lines)
                });
            let amounts = amounts
                .taxed_as(&applied, invoice.rounding)
                .map_err(RunBillingError::store)?;
            // Core caps the credit at what is left and takes it off the running balance.
            let capped = left
                .entry(source)
                .or_insert(LeftToCredit::NOTHING)
                .credit(amounts, invoice.rounding)
                .map_err(RunBillingError::store)?;
            if capped != amounts {
                tracing::warn!(
                    invoice_id = %source,
                    adjustment_id = %adjustment.id,
                    correction_minor = amounts.total().amount_minor(),
                    credited_minor = capped.total().amount_minor(),
                    "negative late usage exceeds what is left to credit on the invoice; \
                     only what is left is credited"
                );
            }
            let note = (capped.total().amount_minor() > 0).then(|| CreditNoteRecord {
                id: CreditNoteId::new(),
                invoice_id: source.into(),
                total_minor: capped.total().amount_minor(),
                lines: note_lines(invoice, line, &capped, &applied),
                reason: Some(LATE_USAGE_REASON.to_owned()),
                created_at: now,
            });
            credits.push(AdjustmentCredit {
                adjustment_id: adjustment.id.clone(),
                source_invoice_id: source.into(),
                note,
            });
        }
    }
    Ok(credits)
}

/// The tax a stored invoice applied, from its lines; [`AppliedTax::Unrecorded`] when they do not
/// read as the core's lines (the engine's tax is kept then).
fn applied_tax(lines: &Value) -> AppliedTax {
    match Vec::<InvoiceLine>::deserialize(lines) {
        Ok(lines) => AppliedTax::of(&lines),
        Err(_) => AppliedTax::Unrecorded,
    }
}

/// A late-usage credit note's lines: the correction before tax (the engine's line, negated,
/// naming the adjustment), and its tax, named as the corrected invoice's rate (`applied`) or,
/// when that invoice did not record it, as the engine's tax line, when there is any.
fn note_lines(
    invoice: &Invoice,
    line: &InvoiceLine,
    credit: &CreditAmounts,
    applied: &AppliedTax,
) -> Value {
    let mut lines = vec![json!({
        "kind": LineKind::Adjustment,
        "description": line.description,
        "amount": credit.net(),
        "period": line.period,
        "adjustment": line.trace.adjustment,
    })];
    if credit.tax().amount_minor() != 0 {
        let description = match applied {
            AppliedTax::Rate(rate) => rate.line_description(),
            AppliedTax::Untaxed | AppliedTax::Unrecorded => invoice
                .lines
                .iter()
                .find(|tax| {
                    tax.kind == LineKind::Tax
                        && tax
                            .trace
                            .allocations
                            .iter()
                            .any(|allocation| allocation.line == line.number)
                })
                .map_or_else(|| "Tax".to_owned(), |tax| tax.description.clone()),
        };
        lines.push(json!({
            "kind": LineKind::Tax,
            "description": description,
            "amount": credit.tax(),
        }));
    }
    Value::Array(lines)
}
