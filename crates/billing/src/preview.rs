//! The engine's answer for one customer, with the late adjustments that become credit notes
//! taken out ([`preview_with_credits`]): what a run plans from and what the upcoming invoice
//! shows.

use std::collections::{HashMap, HashSet};

use billow_core::scenario::{preview_from, Checkpoint, Preview, World};
use billow_store::billing::{AdjustmentCredit, AdjustmentRecord};
use billow_store::invoices::CreditBalance;
use billow_store::InvoiceId;
use jiff::Timestamp;

use crate::RunBillingError;

/// The engine's answer for a customer's world, started at `from` when given, and the
/// negative late adjustments that are credit notes of their source invoices instead of lines of
/// it ([`plan_credits`]): the engine runs again without them, so that a standalone invoice
/// bills only the positive ones (or is not issued) and the next invoice does not go negative. A
/// run writes both; the upcoming invoice shows the first. Rare, so the second run costs little.
/// `world` is left as the engine last ran it.
///
/// [`plan_credits`]: crate::late_credit::plan_credits
pub(crate) fn preview_with_credits(
    world: &mut World,
    from: Option<&Checkpoint>,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
    balances: &HashMap<InvoiceId, CreditBalance>,
    now: Timestamp,
    upcoming: Upcoming,
) -> Result<(Preview, Vec<AdjustmentCredit>), RunBillingError> {
    let preview = preview_from(world, from).map_err(|source| RunBillingError::Engine {
        customer_id: world.customer.id.clone(),
        source,
    })?;
    let invoices = match upcoming {
        Upcoming::Ignored => preview.invoices.iter().chain(&[]),
        Upcoming::AsIfIssued => preview.invoices.iter().chain(&preview.upcoming),
    };
    let credits = crate::late_credit::plan_credits(invoices, adjustments, balances, now)?;
    if credits.is_empty() {
        return Ok((preview, credits));
    }
    let credited: HashSet<&str> = credits.iter().map(|c| c.adjustment_id.as_str()).collect();
    world
        .adjustments
        .retain(|adjustment| !credited.contains(adjustment.key.as_str()));
    let preview = preview_from(world, from).map_err(|source| RunBillingError::Engine {
        customer_id: world.customer.id.clone(),
        source,
    })?;
    Ok((preview, credits))
}

/// Whether [`preview_with_credits`] treats the upcoming invoices as issued: the upcoming-invoice
/// preview shows them as a run would bill them if their periods closed now.
#[derive(Clone, Copy)]
pub(crate) enum Upcoming {
    Ignored,
    AsIfIssued,
}
