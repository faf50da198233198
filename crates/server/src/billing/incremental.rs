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
//! - no event of the customer's subjects was ingested since a minute before the stored instant
//!   (an event is visible a little after its `ingested_at`; a minute is ample, and an event seen
//!   twice only costs a computation).
//!
//! Each condition only ever errs towards computing a customer again, which changes nothing when
//! nothing changed: the engine is deterministic, and a run's writes are idempotent.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use billow_store::billing::{AdjustmentRecord, BillingStateRecord};
use billow_store::WorkspaceId;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::scenario::CustomerWorld;
use crate::error::ApiError;
use crate::startup::AppState;

/// How long before the stored instant a run looks for newly ingested events: an event becomes
/// visible a little after its `ingested_at` (its transaction's commit).
const INGESTION_VISIBILITY: SignedDuration = SignedDuration::from_secs(60);

/// Whether a run at `now` must compute a customer whatever else holds: something is due, or
/// `now` is before the instant the state was computed at (a run with an earlier `--now`).
pub(super) fn is_due(known: &BillingStateRecord, now: Timestamp) -> bool {
    now < known.computed_at || known.next_due_at.is_some_and(|due| now >= due)
}

/// A digest of what a run reads for a customer but its usage and its stored invoices: its world
/// (as the scenario document the API validates, with its resources and payment terms) and the
/// adjustments of its invoice keys.
pub(super) fn fingerprint(
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

/// The customers of `worlds` a run can leave alone: each has a stored state in `states` (those
/// with nothing due), the same fingerprint, no pending adjustment, and no event ingested since.
pub(super) async fn quiet_customers(
    state: &AppState,
    workspace: &WorkspaceId,
    worlds: &[(CustomerWorld, String)],
    states: &HashMap<String, BillingStateRecord>,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
) -> Result<HashSet<String>, ApiError> {
    let unchanged: Vec<(&CustomerWorld, &BillingStateRecord)> = worlds
        .iter()
        .filter_map(|(world, fingerprint)| {
            let known = states.get(&world.customer.customer_id)?;
            let pending = world.invoice_keys().any(|key| {
                adjustments
                    .get(key)
                    .is_some_and(|all| all.iter().any(|a| a.applied_invoice_id.is_none()))
            });
            (known.fingerprint == *fingerprint && !pending).then_some((world, known))
        })
        .collect();
    let Some(since) = unchanged.iter().map(|(_, known)| known.computed_at).min() else {
        return Ok(HashSet::new());
    };
    let subjects: Vec<String> = unchanged
        .iter()
        .flat_map(|(world, _)| world.subjects())
        .collect();
    let since = since
        .checked_sub(INGESTION_VISIBILITY)
        .unwrap_or(Timestamp::MIN);
    let fresh: HashSet<String> = state
        .store
        .usage_events_ingested_after(workspace, &subjects, since)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|event| event.subject)
        .collect();
    Ok(unchanged
        .into_iter()
        .filter(|(world, _)| !world.subjects().iter().any(|s| fresh.contains(s)))
        .map(|(world, _)| world.customer.customer_id.clone())
        .collect())
}
