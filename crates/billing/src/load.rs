//! What a billing run reads for a batch of claimed customers (docs/billing-runs.md, "One run,
//! in batches" and "Incremental runs"): one query per table for the whole batch, and of each
//! customer's usage only what the engine needs.
//!
//! A customer's stored billing state decides how much of its usage is read:
//!
//! - nothing due and nothing new (`incremental::examine`): none, and the engine does not
//!   run for it;
//! - something due, and a checkpoint still valid (the fingerprint of its world is the one it was
//!   made with, and no event arrived late for a period it covers): the events from the
//!   checkpoint's `usage_from` on, about one period's;
//! - otherwise (a first run, a changed world, a late event): its whole history.
//!
//! The due customers' usage is read before their worlds are (it is most of a batch's reading),
//! from where their checkpoints say; a customer whose checkpoint turns out not to hold once its
//! world is read has the rest of its history read in a second query.

use std::collections::{BTreeMap, HashMap, HashSet};

use billow_core::scenario::Checkpoint;
use billow_store::billing::{AdjustmentRecord, BillingStateRecord, InvoiceSummary};
use billow_store::invoices::CreditBalance;
use billow_store::subscriptions::SubscriptionRecord;
use billow_store::{
    Customer, CustomerId, InvoiceId, PlanVersionId, SubjectsUsage, UsageChunks, WorkspaceId,
};
use jiff::{SignedDuration, Timestamp};

use crate::incremental;
use crate::world::CustomerWorld;
use crate::{Billing, RunBillingError};

/// One customer's part of a batch, as the engine workers take it.
pub(crate) struct CustomerInput {
    pub(crate) world: CustomerWorld,
    /// The version of its world when its billing state was read (0: none).
    pub(crate) world_version: i64,
    /// Where the engine starts: the stored checkpoint when it holds, else the beginning.
    pub(crate) checkpoint: Option<Checkpoint>,
    /// Its usage as stored, in parts (from the checkpoint's `usage_from` on, or all of it):
    /// decoded by the engine worker that bills it.
    pub(crate) usage: Vec<SubjectsUsage>,
    pub(crate) invoices: Vec<InvoiceSummary>,
    pub(crate) adjustments: HashMap<String, Vec<AdjustmentRecord>>,
    /// What is left to credit on the source invoices of its pending negative adjustments, by
    /// invoice id (read only for those).
    pub(crate) balances: HashMap<InvoiceId, CreditBalance>,
    /// The digest of its inputs but usage, stored with its billing state.
    pub(crate) fingerprint: String,
}

/// What the loader keeps from one batch to the next: the workspace's meters and settings
/// (read once per run) and the plan versions read so far.
pub(crate) struct RunCatalog {
    pub(crate) meters: std::sync::Arc<[billow_core::Meter]>,
    pub(crate) settings: billow_store::billing::WorkspaceSettings,
    pub(crate) versions:
        BTreeMap<PlanVersionId, std::sync::Arc<billow_store::catalog::PlanVersionRecord>>,
}

/// A claimed batch, read and ready for the engine.
pub(crate) struct LoadedBatch {
    /// The customers whose leases this run holds: released after the batch is written.
    pub(crate) held: Vec<CustomerId>,
    pub(crate) skipped: u64,
    /// Customers with nothing due and nothing new: not computed.
    pub(crate) unchanged: u64,
    /// Those of them whose world version moved, with the version read: written as seen.
    pub(crate) seen: Vec<(CustomerId, i64)>,
    /// Customers whose stored records cannot be read: logged, their leases released, retried
    /// by the next run.
    pub(crate) failed: u64,
    pub(crate) inputs: Vec<CustomerInput>,
}

/// Reads what the engine needs for the customers of a batch whose leases are `held`. On an
/// error the batch's leases are released before it is returned.
pub(crate) async fn load_batch(
    billing: &Billing,
    workspace: &WorkspaceId,
    customers: Vec<Customer>,
    held: &HashSet<CustomerId>,
    catalog: &mut RunCatalog,
    now: Timestamp,
) -> Result<LoadedBatch, RunBillingError> {
    let total = customers.len();
    let claimed: Vec<Customer> = customers
        .into_iter()
        .filter(|customer| held.contains(customer.id.as_str()))
        .collect();
    let skipped = u64::try_from(total - claimed.len()).unwrap_or(u64::MAX);
    let ids: Vec<CustomerId> = claimed.iter().map(|c| c.id.clone()).collect();
    let error = match load_claimed(billing, workspace, claimed, catalog, now).await {
        Ok((inputs, unchanged, seen)) => {
            return Ok(LoadedBatch {
                held: ids,
                skipped,
                unchanged,
                seen,
                failed: 0,
                inputs,
            })
        }
        Err(error) if error.is_unreadable_record() => error,
        Err(error) => {
            release(billing, workspace, &ids).await?;
            return Err(error);
        }
    };
    // A record of one of them cannot be read (a buggy version or a hand edit wrote it): each
    // customer is read again alone, so that only those whose records are unreadable wait for a
    // repair, and the others are billed. Rare, so the customers are read again rather than
    // kept, which would cost every batch a copy.
    tracing::warn!(error.message = %error, "a batch's records cannot all be read; reading its customers one by one");
    let customers = match billing.store.customers_with_ids(workspace, &ids).await {
        Ok(customers) => customers,
        Err(error) => {
            release(billing, workspace, &ids).await?;
            return Err(RunBillingError::store(error));
        }
    };
    let mut batch = LoadedBatch {
        held: Vec::with_capacity(ids.len()),
        skipped,
        unchanged: 0,
        seen: Vec::new(),
        failed: 0,
        inputs: Vec::new(),
    };
    for customer in customers {
        let id = customer.id.clone();
        match load_claimed(billing, workspace, vec![customer], catalog, now).await {
            Ok((inputs, unchanged, seen)) => {
                batch.held.push(id);
                batch.unchanged += unchanged;
                batch.seen.extend(seen);
                batch.inputs.extend(inputs);
            }
            Err(error) if error.is_unreadable_record() => {
                error.log_for_customer(&id);
                batch.failed += 1;
                release(billing, workspace, &[id]).await?;
            }
            Err(error) => {
                release(billing, workspace, &ids).await?;
                return Err(error);
            }
        }
    }
    Ok(batch)
}

/// Gives this run's leases on `customer_ids` back.
async fn release(
    billing: &Billing,
    workspace: &WorkspaceId,
    customer_ids: &[CustomerId],
) -> Result<(), RunBillingError> {
    billing
        .store
        .release_billing_leases(workspace, customer_ids, &billing.settings.node)
        .await
        .map_err(RunBillingError::store)
}

/// Reads the worlds, usage, stored invoices and adjustments of claimed customers, one query per
/// table; returns the engine's inputs, how many customers were left alone, and those of them
/// whose world version moved (with the version read).
async fn load_claimed(
    billing: &Billing,
    workspace: &WorkspaceId,
    claimed: Vec<Customer>,
    catalog: &mut RunCatalog,
    now: Timestamp,
) -> Result<(Vec<CustomerInput>, u64, Vec<(CustomerId, i64)>), RunBillingError> {
    if claimed.is_empty() {
        return Ok((Vec::new(), 0, Vec::new()));
    }
    let ids: Vec<CustomerId> = claimed.iter().map(|c| c.id.clone()).collect();
    // The subscriptions and billing states first: with them every subject of the batch, which
    // customers have something due and where their usage starts are known.
    let subscriptions = billing
        .store
        .subscriptions_of_customers(workspace, &ids)
        .await
        .map_err(RunBillingError::store)?;
    let mut by_customer: HashMap<&str, Vec<&SubscriptionRecord>> = HashMap::new();
    for subscription in &subscriptions {
        by_customer
            .entry(subscription.customer_id.as_str())
            .or_default()
            .push(subscription);
    }
    let mut states: HashMap<CustomerId, BillingStateRecord> = billing
        .store
        .billing_states(workspace, &ids)
        .await
        .map_err(RunBillingError::store)?
        .into_iter()
        .map(|known| (known.customer_id.clone(), known))
        .collect();
    let due: HashSet<CustomerId> = ids
        .iter()
        .filter(|id| {
            states
                .get(*id)
                .is_none_or(|known| incremental::is_due(known, now))
        })
        .cloned()
        .collect();
    // The usage of the customers with something due, from their checkpoints' `usage_from`.
    let mut first_from: HashMap<CustomerId, Timestamp> = HashMap::new();
    let first_reads: Vec<(Vec<String>, Timestamp)> = claimed
        .iter()
        .filter(|customer| due.contains(&customer.id))
        .map(|customer| {
            let theirs = by_customer.remove(customer.id.as_str()).unwrap_or_default();
            let from = usage_start(states.get(&customer.id), now);
            first_from.insert(customer.id.clone(), from);
            (CustomerWorld::subjects_of(customer, &theirs), from)
        })
        .collect();
    // The stored invoices only of those: a customer left alone needs none. A customer that
    // starts from its checkpoint needs only those from the checkpoint on (the engine issues no
    // earlier one); when all of the batch's may, only those are read, and a customer that does
    // not (its checkpoint does not hold, or a pending adjustment names an older invoice) has
    // the rest read below.
    let due_ids: Vec<CustomerId> = ids.iter().filter(|id| due.contains(*id)).cloned().collect();
    let summaries_since: Option<Timestamp> = due_ids
        .iter()
        .map(|id| usable_checkpoint(states.get(id), now).map(|checkpoint| checkpoint.through))
        .min()
        .flatten();
    // Invoice keys: each subscription's, and each customer's (its own invoices).
    let invoice_keys: Vec<String> = subscriptions
        .iter()
        .map(|s| s.id.to_string())
        .chain(ids.iter().map(CustomerId::to_string))
        .collect();
    let (worlds, first_usage, summaries, mut adjustments) = tokio::try_join!(
        CustomerWorld::load_many_with(
            billing,
            workspace,
            claimed,
            subscriptions,
            &catalog.meters,
            catalog.settings,
            &mut catalog.versions,
        ),
        read_usage(billing, workspace, first_reads, now),
        async {
            billing
                .store
                .invoice_summaries_since(workspace, &due_ids, summaries_since)
                .await
                .map_err(RunBillingError::store)
        },
        adjustments_by_key(billing, workspace, &invoice_keys),
    )?;
    let mut summaries = summaries;
    let mut balances = credit_balances(billing, workspace, &adjustments).await?;
    let mut worlds: Vec<(CustomerWorld, String)> = worlds
        .into_iter()
        .map(|world| {
            let fingerprint = incremental::fingerprint(&world, &adjustments);
            (world, fingerprint)
        })
        .collect();
    let found =
        incremental::examine(billing, workspace, &worlds, &states, &due, &adjustments).await?;
    let unchanged = u64::try_from(found.quiet.len()).unwrap_or(u64::MAX);
    let seen: Vec<(CustomerId, i64)> = found
        .quiet
        .iter()
        .filter_map(|id| {
            let known = states.get(id)?;
            (known.world_version > known.seen_version).then(|| (id.clone(), known.world_version))
        })
        .collect();
    worlds.retain(|(world, _)| !found.quiet.contains(&world.customer.customer_id));
    // Where each computed customer starts: its checkpoint when it holds, else the beginning.
    let mut checkpoints: HashMap<CustomerId, Checkpoint> = HashMap::new();
    let mut versions: HashMap<CustomerId, i64> = HashMap::new();
    for (world, fingerprint) in &worlds {
        let id = &world.customer.customer_id;
        if let Some(known) = states.remove(id) {
            versions.insert(id.clone(), known.world_version);
            let holds = due.contains(id)
                && known.fingerprint == *fingerprint
                && !found.late.contains(id)
                && usable_checkpoint(Some(&known), now).is_some();
            if let (true, Some(checkpoint)) = (holds, known.checkpoint) {
                checkpoints.insert(id.clone(), checkpoint);
            }
        }
    }
    // Second reads: the whole history of those computed without a checkpoint but not read so
    // (something new without anything due, or a checkpoint that does not hold), and the usage of
    // the due customers' billed resources (a resource's events name it, and its id is known
    // only once the world is read).
    let mut whole: HashSet<CustomerId> = HashSet::new();
    let second_reads: Vec<(Vec<String>, Timestamp)> = worlds
        .iter()
        .filter_map(|(world, _)| {
            let id = &world.customer.customer_id;
            let resources =
                || -> Vec<String> { world.resources.iter().map(|r| r.id.clone()).collect() };
            if let Some(checkpoint) = checkpoints.get(id) {
                let resources = resources();
                return (!resources.is_empty()).then_some((resources, checkpoint.usage_from));
            }
            if first_from.get(id) == Some(&Timestamp::MIN) {
                let resources = resources();
                return (!resources.is_empty()).then_some((resources, Timestamp::MIN));
            }
            whole.insert(id.clone());
            Some((world.subjects(), Timestamp::MIN))
        })
        .collect();
    let recomputed: Vec<CustomerId> = worlds
        .iter()
        .filter(|(world, _)| {
            let id = &world.customer.customer_id;
            !due.contains(id)
                || (summaries_since.is_some()
                    && (!checkpoints.contains_key(id)
                        || incremental::has_pending(world, &adjustments)))
        })
        .map(|(world, _)| world.customer.customer_id.clone())
        .collect();
    let (second_usage, more_summaries) =
        tokio::try_join!(read_usage(billing, workspace, second_reads, now), async {
            if recomputed.is_empty() {
                return Ok(Vec::new());
            }
            billing
                .store
                .invoice_summaries_of_customers(workspace, &recomputed)
                .await
                .map_err(RunBillingError::store)
        })?;
    summaries.extend(more_summaries);
    let mut first_usage = first_usage;
    let mut second_usage = second_usage;
    let mut invoices: HashMap<CustomerId, Vec<InvoiceSummary>> = HashMap::new();
    let mut read: HashSet<InvoiceId> = HashSet::new();
    for summary in summaries {
        // A customer read again from the beginning has its recent invoices twice.
        if read.insert(summary.id.clone()) {
            invoices
                .entry(summary.customer_id.clone())
                .or_default()
                .push(summary);
        }
    }
    let inputs = worlds
        .into_iter()
        .map(|(world, fingerprint)| {
            let id = world.customer.customer_id.clone();
            let subjects = world.subjects();
            let first: Vec<_> = first_usage
                .iter_mut()
                .map(|read| read.take(&subjects))
                .collect();
            let second = second_usage.iter_mut().map(|read| read.take(&subjects));
            // A customer read again from the beginning drops what its first read held.
            let usage = if whole.contains(&id) {
                second.collect()
            } else {
                first.into_iter().chain(second).collect()
            };
            let invoices = invoices.remove(&id).unwrap_or_default();
            let adjustments: HashMap<String, Vec<AdjustmentRecord>> = world
                .invoice_keys()
                .map(|key| {
                    let known = adjustments.remove(key).unwrap_or_default();
                    (key.to_owned(), known)
                })
                .collect();
            let balances = adjustments
                .values()
                .flatten()
                .filter_map(|a| balances.remove_entry(&a.source_invoice_id))
                .collect();
            CustomerInput {
                world_version: versions.get(&id).copied().unwrap_or(0),
                checkpoint: checkpoints.remove(&id),
                world,
                usage,
                invoices,
                adjustments,
                balances,
                fingerprint,
            }
        })
        .collect();
    Ok((inputs, unchanged, seen))
}

/// The stored checkpoint a run at `now` may start from: none for a run at an earlier instant
/// than the state's (`--now` in the past), which may compare invoices the checkpoint is past.
fn usable_checkpoint(known: Option<&BillingStateRecord>, now: Timestamp) -> Option<&Checkpoint> {
    known
        .filter(|known| now >= known.computed_at)
        .and_then(|known| known.checkpoint.as_ref())
        .filter(|checkpoint| checkpoint.through <= now)
}

/// Where a due customer's usage is read from: its checkpoint's `usage_from`, or the beginning.
fn usage_start(known: Option<&BillingStateRecord>, now: Timestamp) -> Timestamp {
    usable_checkpoint(known, now).map_or(Timestamp::MIN, |checkpoint| checkpoint.usage_from)
}

/// Reads the stored usage of several customers' subjects, each from its own instant, up to
/// `now`: in two queries of half of them each (sorted by where they start, each query from its
/// earliest), run at once on two connections: the reads' CPU (SQLite's and the rows' transfer)
/// then runs on both cores. A customer may get some events before its instant; the engine reads
/// only the periods it bills.
async fn read_usage(
    billing: &Billing,
    workspace: &WorkspaceId,
    mut reads: Vec<(Vec<String>, Timestamp)>,
    now: Timestamp,
) -> Result<Vec<UsageChunks>, RunBillingError> {
    if reads.is_empty() {
        return Ok(Vec::new());
    }
    reads.sort_by_key(|(_, from)| *from);
    let later = reads.split_off(reads.len().div_ceil(2));
    let halves = [reads, later];
    let [first, second] = halves.map(|half| {
        let from = half.first().map_or(Timestamp::MIN, |(_, from)| *from);
        let subjects: Vec<String> = half
            .into_iter()
            .flat_map(|(subjects, _)| subjects)
            .collect();
        (subjects, from)
    });
    let (one, two) = tokio::try_join!(
        subjects_usage(billing, workspace, &first.0, first.1, now),
        subjects_usage(billing, workspace, &second.0, second.1, now),
    )?;
    Ok(vec![one, two])
}

/// The stored usage of `subjects` from `from` up to `now`, not decoded yet.
async fn subjects_usage(
    billing: &Billing,
    workspace: &WorkspaceId,
    subjects: &[String],
    from: Timestamp,
    now: Timestamp,
) -> Result<UsageChunks, RunBillingError> {
    billing
        .store
        .usage_chunks(workspace, subjects, from, usage_end(now))
        .await
        .map_err(RunBillingError::store)
}

/// The end (exclusive) of the usage a run at `now` bills: every event up to and including `now`.
pub(crate) fn usage_end(now: Timestamp) -> Timestamp {
    now.checked_add(SignedDuration::from_micros(1))
        .unwrap_or(now)
}

/// The stored late-usage adjustments of `invoice_keys`, by invoice key.
pub(crate) async fn adjustments_by_key(
    billing: &Billing,
    workspace: &WorkspaceId,
    invoice_keys: &[String],
) -> Result<HashMap<String, Vec<AdjustmentRecord>>, RunBillingError> {
    let mut adjustments: HashMap<String, Vec<AdjustmentRecord>> = HashMap::new();
    for adjustment in billing
        .store
        .adjustments_of_keys(workspace, invoice_keys)
        .await
        .map_err(RunBillingError::store)?
    {
        adjustments
            .entry(adjustment.invoice_key.clone())
            .or_default()
            .push(adjustment);
    }
    Ok(adjustments)
}

/// What is left to credit on the source invoices of the pending negative adjustments among
/// `adjustments`, by invoice id: what a negative adjustment of a subscription with no further
/// invoice may credit. No query when there is none (the usual run).
pub(crate) async fn credit_balances(
    billing: &Billing,
    workspace: &WorkspaceId,
    adjustments: &HashMap<String, Vec<AdjustmentRecord>>,
) -> Result<HashMap<InvoiceId, CreditBalance>, RunBillingError> {
    let mut sources: Vec<InvoiceId> = adjustments
        .values()
        .flatten()
        .filter(|a| a.applied_invoice_id.is_none() && a.amount_minor < 0)
        .map(|a| a.source_invoice_id.clone())
        .collect();
    if sources.is_empty() {
        return Ok(HashMap::new());
    }
    sources.sort_unstable();
    sources.dedup();
    Ok(billing
        .store
        .credit_balances(workspace, &sources)
        .await
        .map_err(RunBillingError::store)?
        .into_iter()
        .map(|balance| (balance.invoice_id.clone(), balance))
        .collect())
}
