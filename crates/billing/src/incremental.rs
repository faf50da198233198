//! Which customers a billing run can leave alone (docs/billing-runs.md, "Incremental runs").
//!
//! After computing a customer, a run stores its billing state: the instant it billed at, the
//! earliest instant something becomes due without any change (`next_due_at`: a period's end, a
//! draft's finalization, a subscription's start), and a fingerprint of everything it read for
//! the customer but usage. A later run leaves a customer alone, reading neither its usage nor
//! running the engine, when all of these hold:
//!
//! - nothing is due: the run bills at or after the stored instant and before `next_due_at`;
//! - nothing changed: the fingerprint of what it reads now is the stored one (subscriptions and
//!   their changes, resources, grants, discounts, tax, plans, meters, settings, adjustments).
//!   Stored invoices are left out: the run writes them itself, and what others do to them
//!   (finalizing a draft, voiding, payments, credit notes) changes nothing a run would write,
//!   but through pending adjustments, which are checked apart;
//! - no pending late-usage adjustment waits (those are settled by the next computation);
//! - no event arrived that changes what a run writes: none of the customer's subjects was
//!   ingested since a minute before the stored instant with a time before `billed_through`,
//!   the latest instant the customer was invoiced at (an event is visible a little after its
//!   `ingested_at`; a minute is ample, and an event seen twice only costs a computation). An
//!   event of a period not invoiced yet changes only the upcoming invoice, which no run writes;
//!   the run that invoices the period reads it.
//!
//! A customer with something due starts the engine at its stored checkpoint (the rating state
//! after its last finalized invoice, docs/billing-runs.md) when its fingerprint is the stored
//! one and no event arrived since for a period at or before the checkpoint; otherwise it is
//! computed from its whole history, which makes a new checkpoint.
//!
//! Each condition only ever errs towards computing a customer again, which changes nothing when
//! nothing changed: the engine is deterministic, and a run's writes are idempotent.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use billow_store::billing::{AdjustmentRecord, BillingStateRecord};
use billow_store::{CustomerId, WorkspaceId};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::world::CustomerWorld;
use crate::{Billing, RunBillingError};

/// How long before the stored instant a run looks for newly ingested events: an event becomes
/// visible a little after its `ingested_at` (its transaction's commit).
pub(crate) const INGESTION_VISIBILITY: SignedDuration = SignedDuration::from_secs(60);

/// Whether a run at `now` must compute a customer whatever else holds: something is due, or
/// `now` is before the instant the state was computed at (a run with an earlier `--now`).
pub(crate) fn is_due(known: &BillingStateRecord, now: Timestamp) -> bool {
    now < known.computed_at || known.next_due_at.is_some_and(|due| now >= due)
}

/// A digest of what a run reads for a customer but its usage and its stored invoices: its world
/// (as the scenario document the API validates, with its resources and payment terms) and the
/// adjustments of its invoice keys.
pub(crate) fn fingerprint(
    world: &CustomerWorld,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(world.document(Timestamp::UNIX_EPOCH).to_string());
    // The external ids: which events are the customer's.
    hasher.update(world.customer.aliases.join("\0"));
    hasher.update(format!("{:?}", world.resources));
    hasher.update(world.net_days.to_le_bytes());
    for key in world.invoice_keys() {
        hasher.update(format!("{:?}", adjustments.get(key)));
    }
    let mut text = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Whether a late-usage adjustment of one of the customer's invoice keys waits to be billed.
pub(crate) fn has_pending(
    world: &CustomerWorld,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
) -> bool {
    world.invoice_keys().any(|key| {
        adjustments
            .get(key)
            .is_some_and(|all| all.iter().any(|a| a.applied_invoice_id.is_none()))
    })
}

/// What [`examine`] found of a batch's customers that have a stored state.
pub(crate) struct Examined {
    /// Nothing due and nothing new: left alone.
    pub(crate) quiet: HashSet<CustomerId>,
    /// Something due, but an event arrived late for a period its checkpoint covers: computed
    /// from its whole history.
    pub(crate) late: HashSet<CustomerId>,
}

/// Which customers of `worlds` a run can leave alone, and which of those with something `due`
/// cannot start from their checkpoints, in one read of the events that arrived since their
/// last computation.
///
/// A customer with nothing due is left alone when its fingerprint is the stored one, no pending
/// adjustment waits, and no event arrived (since a minute before the stored instant) for a
/// period already invoiced, draft or final (`billed_through`): an event of a period still open
/// changes only the upcoming invoice, which no run writes, and it is read when that period is
/// due. A customer with something due keeps its checkpoint when its fingerprint is the stored
/// one and no event arrived for a period at or before the checkpoint.
pub(crate) async fn examine(
    billing: &Billing,
    workspace: &WorkspaceId,
    worlds: &[(CustomerWorld, String)],
    states: &HashMap<CustomerId, BillingStateRecord>,
    due: &HashSet<CustomerId>,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
) -> Result<Examined, RunBillingError> {
    // Each customer to look at, with the instant before which a new event matters.
    let mut watched: Vec<(&CustomerWorld, &BillingStateRecord, Option<Timestamp>)> = Vec::new();
    let mut quiet = HashSet::new();
    for (world, fingerprint) in worlds {
        let id = &world.customer.customer_id;
        let Some(known) = states.get(id) else {
            continue;
        };
        if known.fingerprint != *fingerprint {
            continue;
        }
        // An event before a checkpoint's `usage_from` is read by no run that starts there (a
        // gauge's level in a gap between periods): it counts as late too.
        let reads_from = known.checkpoint.as_ref().map(|c| c.usage_from);
        if due.contains(id) {
            if let Some(checkpoint) = &known.checkpoint {
                let before = checkpoint.through.max(checkpoint.usage_from);
                watched.push((world, known, Some(before)));
            }
            continue;
        }
        if has_pending(world, adjustments) {
            continue;
        }
        match known.billed_through.max(reads_from) {
            Some(through) => watched.push((world, known, Some(through))),
            // Nothing invoiced yet: no event can change what a run writes.
            None => {
                quiet.insert(id.clone());
            }
        }
    }
    let mut late = HashSet::new();
    let since = watched.iter().map(|(_, known, _)| known.computed_at).min();
    let before = watched.iter().filter_map(|(_, _, before)| *before).max();
    if let (Some(since), Some(before)) = (since, before) {
        let since = since
            .checked_sub(INGESTION_VISIBILITY)
            .unwrap_or(Timestamp::MIN);
        let subjects: Vec<String> = watched
            .iter()
            .flat_map(|(world, _, _)| world.subjects())
            .collect();
        // The earliest late event's time per subject.
        let mut earliest: HashMap<String, Timestamp> = HashMap::new();
        for event in billing
            .store
            .late_usage_events(workspace, &subjects, since, before)
            .await
            .map_err(RunBillingError::store)?
        {
            let time = earliest.entry(event.subject).or_insert(event.time);
            *time = (*time).min(event.time);
        }
        for (world, _, before) in watched {
            let id = &world.customer.customer_id;
            let arrived = world.subjects().iter().any(|subject| {
                earliest
                    .get(subject)
                    .is_some_and(|time| before.is_some_and(|before| *time < before))
            });
            match (due.contains(id), arrived) {
                (true, true) => {
                    late.insert(id.clone());
                }
                (false, false) => {
                    quiet.insert(id.clone());
                }
                _ => {}
            }
        }
    }
    Ok(Examined { quiet, late })
}
