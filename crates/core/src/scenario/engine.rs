//! The scenario engine: turns subscriptions, their changes and usage into the invoices billow
//! would issue up to "now".
//!
//! Two passes. The first walks each subscription's timeline and lays out what every invoice must
//! contain (pending items: which price, which quantity or events, which service period, which
//! proration). The second takes the invoices in time order, rates each item (consuming meter-unit
//! credits, which depends on what earlier invoices consumed), trues up minimum commitments, applies
//! customer discounts and money credits, and assembles the invoice.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::checkpoint::{BucketId, Checkpoint};
use super::rating_state::RatingState;
use super::{
    AdjustmentSpec, Alignment, BillingTiming, ChangePolicy, ChangeSpec, DiscountDuration,
    Invoicing, PhaseKind, PlanSpec, PriceSpec, ResourceSpec, SubscriptionSpec, World,
};
use crate::aggregation::{AggregateError, Aggregation, UsageEvent};
use crate::credit::{self, CreditUsageReport};
use crate::invoice::{
    assemble_invoice, AppliedDiscount, AssembleInvoiceError, Charge, DiscountValue, Invoice,
    InvoiceInput, LineKind, LineResource, LineSource, LineTrace, ProrationTrace,
};
use crate::money::Money;
use crate::period::{proration_factor, BillingCalendar, Cadence, CalendarError, Period};
use crate::price::{PriceModel, RatePriceError};

/// Why an invoice was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvoiceReason {
    /// The subscription started (charges billed in advance).
    SubscriptionStart,
    /// A billing period ended.
    PeriodEnd,
    /// The plan changed at once.
    PlanChange,
    /// The subscription was canceled.
    Cancellation,
    /// Standalone: adjustments of a subscription that has no further invoice (it ended).
    LateUsage,
    /// Not issued: the open period as if it closed "now".
    Upcoming,
}

/// Whom an invoice bills: one subscription, or the customer as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvoiceScope {
    /// One subscription's invoice (per-subscription invoicing).
    Subscription,
    /// The customer's invoice for a period: its subscriptions (when consolidated) and its billed
    /// resources.
    Customer,
}

/// An invoice of the preview, with what it bills.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedInvoice {
    /// The invoice's key: the subscription's id for a subscription's invoice, the customer's id
    /// for the customer's. With the issue instant it names the invoice: a billing run stores one
    /// invoice per (key, issued_at).
    pub key: String,
    /// Whom it bills.
    pub scope: InvoiceScope,
    /// The subscriptions it has lines of, in order.
    pub subscriptions: Vec<String>,
    /// Why it was issued.
    pub reason: InvoiceReason,
    /// The invoice.
    #[serde(flatten)]
    pub invoice: Invoice,
}

/// The engine's answer for a world: what `billow preview` prints after the scenario's name.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The world's present.
    pub now: Timestamp,
    /// Invoices issued at or before "now", in time order.
    pub invoices: Vec<IssuedInvoice>,
    /// The open periods of active subscriptions, as if they closed "now".
    pub upcoming: Vec<IssuedInvoice>,
    /// The earliest instant after "now" at which, with nothing else changing, an invoice may
    /// be issued (a period's end, a subscription's or a plan's start, a resource's deletion):
    /// until then a billing run has nothing new to issue. `None` when nothing is ever issued
    /// again. It may come earlier than the invoice it announces (a change that lands on the
    /// period's invoice), never later.
    pub next_invoice_at: Option<Timestamp>,
    /// Where a later run on the same world may start the engine: one after the last invoice of
    /// each issue instant, in time order (none for a scenario that issued nothing).
    #[serde(skip)]
    pub checkpoints: Vec<Checkpoint>,
}

impl Preview {
    /// The latest checkpoint at or before `through`, with the gauge events it carries found in
    /// `scenario`'s events (those this preview was run on).
    #[must_use]
    pub fn checkpoint_through(&self, scenario: &World, through: Timestamp) -> Option<Checkpoint> {
        let checkpoint = self
            .checkpoints
            .iter()
            .rev()
            .find(|checkpoint| checkpoint.through <= through)?;
        Some(Checkpoint {
            carried: Checkpoint::carried_events(scenario, checkpoint.usage_from),
            ..checkpoint.clone()
        })
    }
}

/// Why a scenario could not be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunScenarioError {
    /// Calendar arithmetic failed.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    /// A meter could not aggregate the events.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// A price could not rate a quantity.
    #[error("price `{price}`: {source}")]
    Rate {
        /// The price key.
        price: String,
        /// The cause.
        source: RatePriceError,
    },
    /// Assembly failed.
    #[error(transparent)]
    Assemble(#[from] AssembleInvoiceError),
}

/// Runs a (validated) scenario.
///
/// # Errors
/// [`RunScenarioError`] when a calendar, aggregation or rating fails on the scenario's data.
pub fn preview(scenario: &World) -> Result<Preview, RunScenarioError> {
    preview_from(scenario, None)
}

/// Runs a (validated) scenario from a checkpoint of an earlier run on the same world: only the
/// invoices issued after `from.through` are rated and returned (the upcoming ones too), starting
/// from the state the checkpoint holds. `scenario.events` need only hold the events from
/// `from.usage_from` on and those it carries ([`Checkpoint::events_with`]).
///
/// # Errors
/// [`RunScenarioError`] when a calendar, aggregation or rating fails on the scenario's data.
pub fn preview_from(
    scenario: &World,
    from: Option<&Checkpoint>,
) -> Result<Preview, RunScenarioError> {
    let resource_timelines: Vec<SubscriptionSpec> =
        scenario.resources.iter().map(resource_timeline).collect();
    let engine = Engine::new(scenario, &resource_timelines);
    let mut pending = Vec::new();
    let mut next_invoice_at = None;
    for (order, timeline) in engine.timelines.iter().enumerate() {
        engine.lay_out(order, timeline, &mut pending, &mut next_invoice_at)?;
    }
    let mut pending = engine.group(pending)?;
    attach_adjustments(scenario, &mut pending);
    let (mut issued, upcoming): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|p| p.reason != InvoiceReason::Upcoming);
    let mut state = match from {
        Some(checkpoint) => {
            issued.retain(|invoice| invoice.at > checkpoint.through);
            RatingState::restore(scenario, &checkpoint.state)
        }
        None => RatingState::new(scenario),
    };
    let ahead = Ahead::of(scenario.now, &issued, &upcoming);
    let mut invoices = Vec::new();
    let mut checkpoints = Vec::new();
    let count = issued.len();
    for (index, invoice) in issued.into_iter().enumerate() {
        let at = invoice.at;
        invoices.push(engine.issue(invoice, &mut state, true)?);
        let last_at_instant = invoices.len() == count || ahead.at[index + 1] > at;
        if last_at_instant {
            state.forget_ended(at);
            checkpoints.push(Checkpoint {
                through: at,
                usage_from: ahead.usage_from(index),
                carried: Vec::new(),
                state: state.snapshot(scenario, at),
            });
        }
    }
    let mut upcoming_invoices = Vec::new();
    for invoice in upcoming {
        let mut scratch = state.clone();
        upcoming_invoices.push(engine.issue(invoice, &mut scratch, false)?);
    }
    Ok(Preview {
        now: scenario.now,
        invoices,
        upcoming: upcoming_invoices,
        next_invoice_at,
        checkpoints,
    })
}

/// Where the invoices still to issue read usage from, at each point of the issue order: the
/// earliest start of their periods and of their items' service periods.
struct Ahead {
    /// Each issued invoice's instant.
    at: Vec<Timestamp>,
    /// Per issued invoice: the earliest start that it, the issued invoices after it and the
    /// upcoming ones read, never after now (a suffix minimum, so that each checkpoint's
    /// `usage_from` is found at once, not by a scan of what is left: a world with thousands of
    /// periods costs linear time, not quadratic).
    reads_from: Vec<Timestamp>,
    /// The same for the upcoming invoices alone.
    after_last: Timestamp,
}

impl Ahead {
    fn of(now: Timestamp, issued: &[PendingInvoice<'_>], upcoming: &[PendingInvoice<'_>]) -> Ahead {
        let start_of = |invoice: &PendingInvoice<'_>| {
            invoice
                .items
                .iter()
                .filter_map(|item| match item {
                    Pending::Priced(item) => Some(item.service.start),
                    Pending::TrueUp { service, .. } => Some(service.start),
                    Pending::Adjustment(_) => None,
                })
                .fold(invoice.period.start, Timestamp::min)
        };
        let after_last = upcoming.iter().map(start_of).fold(now, Timestamp::min);
        let mut reads_from: Vec<Timestamp> = issued.iter().map(start_of).collect();
        let mut earliest = after_last;
        for start in reads_from.iter_mut().rev() {
            earliest = earliest.min(*start);
            *start = earliest;
        }
        Ahead {
            at: issued.iter().map(|invoice| invoice.at).collect(),
            reads_from,
            after_last,
        }
    }

    /// Where the invoices after the `index`-th issued one read usage from (never after now).
    fn usage_from(&self, index: usize) -> Timestamp {
        self.reads_from
            .get(index + 1)
            .copied()
            .unwrap_or(self.after_last)
    }
}

/// The timeline of a billed resource: a subscription to its plan from its creation to its
/// deletion, on the customer's billing cycle, whose quantity changes as the resource's does.
fn resource_timeline(resource: &ResourceSpec) -> SubscriptionSpec {
    let change = |at: Timestamp| ChangeSpec {
        at,
        quantity: None,
        plan: None,
        cancel: None,
        policy: None,
        invoice_now: false,
    };
    let mut changes: Vec<ChangeSpec> = resource
        .quantity_changes
        .iter()
        .map(|q| ChangeSpec {
            quantity: Some(q.quantity),
            ..change(q.at)
        })
        .collect();
    if let Some(deleted_at) = resource.deleted_at {
        changes.push(ChangeSpec {
            cancel: Some(ChangePolicy::Immediate),
            ..change(deleted_at)
        });
    }
    SubscriptionSpec {
        id: resource.id.clone(),
        plan: resource.plan.clone(),
        start: resource.created_at,
        quantity: resource.quantity,
        alignment: Alignment::CycleDay,
        project: resource.project.clone(),
        changes,
    }
}

/// Puts each adjustment on the first invoice (issued or upcoming) of its key at or after its
/// `at`; the adjustments of a key without one go on a standalone invoice issued at the earliest
/// of their `at`s. `pending` is in time order, and stays so.
fn attach_adjustments<'a>(scenario: &'a World, pending: &mut Vec<PendingInvoice<'a>>) {
    let mut standalone: BTreeMap<&'a str, PendingInvoice<'a>> = BTreeMap::new();
    for adjustment in &scenario.adjustments {
        let key = adjustment.subscription.as_str();
        if let Some(invoice) = pending
            .iter_mut()
            .find(|invoice| invoice.key == key && invoice.at >= adjustment.at)
        {
            invoice.items.push(Pending::Adjustment(adjustment));
            continue;
        }
        let (order, scope) = match scenario.subscriptions.iter().position(|s| s.id == key) {
            Some(order) => (order, InvoiceScope::Subscription),
            None => (0, InvoiceScope::Customer),
        };
        let invoice = standalone.entry(key).or_insert_with(|| PendingInvoice {
            order,
            key,
            scope,
            at: adjustment.at,
            reason: InvoiceReason::LateUsage,
            period: adjustment.period,
            movable: false,
            items: Vec::new(),
        });
        invoice.at = invoice.at.min(adjustment.at);
        invoice.period = Period {
            start: invoice.period.start.min(adjustment.period.start),
            end: invoice.period.end.max(adjustment.period.end),
        };
        invoice.items.push(Pending::Adjustment(adjustment));
    }
    if standalone.is_empty() {
        return;
    }
    for mut invoice in standalone.into_values() {
        if invoice.at > scenario.now {
            invoice.reason = InvoiceReason::Upcoming;
        }
        pending.push(invoice);
    }
    pending.sort_by_key(|invoice| (invoice.at, invoice.order));
}

/// One stretch of a subscription on one plan.
struct Epoch<'a> {
    plan: &'a PlanSpec,
    start: Timestamp,
    end: Option<Timestamp>,
    end_reason: InvoiceReason,
    /// The change that started it asked to be invoiced at once.
    start_at_once: bool,
    /// The change that ended it asked to be invoiced at once.
    end_at_once: bool,
    /// Its periods are the customer's cycle's (a subscription aligned to the cycle day, on its
    /// first plan's cadence).
    on_customer_cycle: bool,
    calendar: BillingCalendar,
    /// (instant, quantity), the first at `start`.
    quantities: Vec<(Timestamp, Decimal)>,
}

impl Epoch<'_> {
    fn quantity_at(&self, instant: Timestamp) -> Decimal {
        self.quantities
            .iter()
            .rev()
            .find(|(at, _)| *at <= instant)
            .map_or(Decimal::ZERO, |(_, q)| *q)
    }
}

/// A bucket of amounts that a minimum commitment is compared with.

#[derive(Clone)]
enum Pending<'a> {
    Priced(Box<PricedItem<'a>>),
    /// A scenario adjustment, billed as it is.
    Adjustment(&'a AdjustmentSpec),
    TrueUp {
        /// The bucket compared with the minimum, then every bucket the true-up itself counts in.
        buckets: [BucketId; 2],
        minimum: Decimal,
        description: String,
        service: Period,
        /// The end of the period its buckets count in.
        period_end: Timestamp,
    },
}

#[derive(Clone)]
struct PricedItem<'a> {
    /// The timeline (subscription or resource) it bills, by its order.
    order: usize,
    /// The key of the plan whose price it is: the line's product when the price names none.
    plan: &'a str,
    price: &'a PriceSpec,
    kind: LineKind,
    description: String,
    quantity: Decimal,
    usage: Option<UsageInput>,
    service: Period,
    proration: Option<ProrationTrace>,
    negate: bool,
    phase: Option<PhaseKind>,
    phase_percent_off: Option<Decimal>,
    buckets: [BucketId; 2],
    /// The end of the period its buckets count in: a checkpoint keeps them until it passes.
    period_end: Timestamp,
    note: Option<String>,
}

#[derive(Clone)]
struct UsageInput {
    project: Option<String>,
    transactions: Vec<Decimal>,
}

struct PendingInvoice<'a> {
    order: usize,
    /// Before grouping, the timeline's id; after it, the invoice's key.
    key: &'a str,
    scope: InvoiceScope,
    at: Timestamp,
    reason: InvoiceReason,
    period: Period,
    /// May move to the end of the customer's period: laid out by an epoch that follows the
    /// customer's cycle, and not by a change that asked to be invoiced at once.
    movable: bool,
    items: Vec<Pending<'a>>,
}

struct Engine<'a> {
    scenario: &'a World,
    time_zone: TimeZone,
    /// The subscriptions, then the resources' timelines: a timeline's order is its index.
    timelines: Vec<&'a SubscriptionSpec>,
}

impl<'a> Engine<'a> {
    fn new(scenario: &'a World, resource_timelines: &'a [SubscriptionSpec]) -> Engine<'a> {
        Engine {
            scenario,
            time_zone: scenario.time_zone(),
            timelines: scenario
                .subscriptions
                .iter()
                .chain(resource_timelines)
                .collect(),
        }
    }

    /// The billed resource of a timeline, when it is one.
    fn resource(&self, order: usize) -> Option<&'a ResourceSpec> {
        order
            .checked_sub(self.scenario.subscriptions.len())
            .map(|index| &self.scenario.resources[index])
    }

    /// What a line of timeline `order` bills: its subscription or resource, and its product.
    fn source(&self, order: usize, plan: &str, price: Option<&PriceSpec>) -> LineSource {
        let product = Some(
            price
                .and_then(|p| p.product.clone())
                .unwrap_or_else(|| plan.to_owned()),
        );
        match self.resource(order) {
            Some(resource) => LineSource {
                subscription: None,
                resource: Some(Box::new(LineResource {
                    id: resource.id.clone(),
                    kind: resource.kind.clone(),
                    name: resource.name.clone(),
                    created_at: resource.created_at,
                    deleted_at: resource.deleted_at,
                    dimensions: resource.dimensions.clone(),
                })),
                product,
            },
            None => LineSource {
                subscription: Some(self.timelines[order].id.clone()),
                resource: None,
                product,
            },
        }
    }

    /// The customer's own billing cycle: monthly, on its cycle day, in its time zone.
    fn customer_cycle(&self) -> Result<BillingCalendar, CalendarError> {
        self.calendar(Cadence::Monthly, Alignment::CycleDay, self.scenario.now)
    }

    /// Whether an epoch's invoices, other than those a change asked for at once, go on the
    /// customer's invoice of the period: every resource's, and a consolidated customer's
    /// subscription's while it bills monthly on the customer's cycle (its plan of the time).
    fn follows_customer_cycle(&self, order: usize, epoch: &Epoch<'_>) -> bool {
        self.resource(order).is_some()
            || (self.scenario.customer.invoicing == Invoicing::Consolidated
                && epoch.on_customer_cycle
                && epoch.plan.cadence == Cadence::Monthly)
    }

    /// Gives every laid-out invoice its key and merges those that share one at one instant.
    ///
    /// A consolidated customer's invoices all have the customer's key, so subscriptions whose
    /// periods end at the same instant share an invoice; a resource's always have it. An
    /// invoice of a timeline that follows the customer's cycle, at an instant inside a period
    /// (a change's, a resource's creation or deletion), moves to the period's end: onto the
    /// period's invoice, or onto the upcoming invoice when that end is after "now". A
    /// subscription's start and a change asked for at once keep their own invoice.
    fn group(
        &self,
        laid_out: Vec<PendingInvoice<'a>>,
    ) -> Result<Vec<PendingInvoice<'a>>, CalendarError> {
        let now = self.scenario.now;
        let cycle = self.customer_cycle()?;
        let customer_key = self.scenario.customer.id.as_str();
        let mut grouped: BTreeMap<(Timestamp, bool, &'a str), PendingInvoice<'a>> = BTreeMap::new();
        for mut invoice in laid_out {
            let resource = self.resource(invoice.order).is_some();
            let customer_scope =
                resource || self.scenario.customer.invoicing == Invoicing::Consolidated;
            if customer_scope {
                invoice.key = customer_key;
                invoice.scope = InvoiceScope::Customer;
            }
            let movable = invoice.movable
                && invoice.reason != InvoiceReason::Upcoming
                && (resource || invoice.reason != InvoiceReason::SubscriptionStart);
            if movable {
                let containing = cycle.period_containing(invoice.at)?;
                if containing.start != invoice.at {
                    invoice.reason = InvoiceReason::PeriodEnd;
                    if containing.end <= now {
                        invoice.at = containing.end;
                        invoice.period = containing;
                    } else {
                        invoice.at = now;
                        invoice.reason = InvoiceReason::Upcoming;
                        invoice.period = Period {
                            start: containing.start,
                            end: now,
                        };
                    }
                }
            }
            let upcoming = invoice.reason == InvoiceReason::Upcoming;
            match grouped.entry((invoice.at, upcoming, invoice.key)) {
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(invoice);
                }
                std::collections::btree_map::Entry::Occupied(mut entry) => {
                    let merged = entry.get_mut();
                    merged.order = merged.order.min(invoice.order);
                    merged.period = Period {
                        start: merged.period.start.min(invoice.period.start),
                        end: merged.period.end.max(invoice.period.end),
                    };
                    if invoice.reason == InvoiceReason::PeriodEnd
                        || merged.reason == InvoiceReason::PeriodEnd
                    {
                        merged.reason = InvoiceReason::PeriodEnd;
                    }
                    merged.items.extend(invoice.items);
                }
            }
        }
        let mut invoices: Vec<PendingInvoice<'a>> = grouped.into_values().collect();
        invoices.sort_by_key(|invoice| (invoice.at, invoice.order));
        Ok(invoices)
    }

    /// The prices of `plan` that bill this customer: those in its currency, with their indexes
    /// in the plan. Validation made sure there is one for each of the plan's keys.
    fn prices(&self, plan: &'a PlanSpec) -> impl Iterator<Item = (usize, &'a PriceSpec)> {
        plan.prices_in(self.scenario.currency, self.scenario.currency)
    }

    fn plan(&self, key: &str) -> &'a PlanSpec {
        self.scenario
            .plans
            .iter()
            .find(|plan| plan.key == key)
            .expect("validated plan key")
    }

    fn calendar(
        &self,
        cadence: Cadence,
        alignment: Alignment,
        start: Timestamp,
    ) -> Result<BillingCalendar, CalendarError> {
        let local = start.to_zoned(self.time_zone.clone()).date();
        let (anchor, day) = match (alignment, cadence) {
            (_, Cadence::Daily) => (local, 1),
            (Alignment::Calendar, Cadence::Weekly) => {
                let back = i64::from(local.weekday().to_monday_zero_offset());
                (
                    local
                        .checked_sub(back.days())
                        .map_err(|_| CalendarError::OutOfRange)?,
                    1,
                )
            }
            (_, Cadence::Weekly) => (local, 1),
            (Alignment::Calendar, _) => (
                Date::new(local.year(), 1, 1).map_err(|_| CalendarError::OutOfRange)?,
                1,
            ),
            (Alignment::Anniversary, _) => (local, local.day()),
            (Alignment::CycleDay, _) => (local, self.scenario.customer.billing_cycle_day),
        };
        BillingCalendar::new(cadence, anchor, day, self.time_zone.clone())
    }

    /// Splits a subscription into epochs (one per plan) from its changes.
    fn epochs(&self, subscription: &'a SubscriptionSpec) -> Result<Vec<Epoch<'a>>, CalendarError> {
        let plan = self.plan(&subscription.plan);
        let mut current = Epoch {
            plan,
            start: subscription.start,
            end: None,
            end_reason: InvoiceReason::PeriodEnd,
            start_at_once: false,
            end_at_once: false,
            on_customer_cycle: subscription.alignment == Alignment::CycleDay,
            calendar: self.calendar(plan.cadence, subscription.alignment, subscription.start)?,
            quantities: vec![(subscription.start, subscription.quantity)],
        };
        let mut epochs = Vec::new();
        for change in &subscription.changes {
            let at = change.at.max(current.start);
            if let Some(quantity) = change.quantity {
                current.quantities.push((at, quantity));
            } else if let Some(policy) = change.cancel {
                current.end = Some(self.effective(&current, at, policy)?);
                current.end_reason = InvoiceReason::Cancellation;
                current.end_at_once = change.invoice_now;
                break;
            } else if let Some(plan_key) = &change.plan {
                let effective = self.effective(
                    &current,
                    at,
                    change.policy.unwrap_or(ChangePolicy::Immediate),
                )?;
                let plan = self.plan(plan_key);
                let same_cadence = plan.cadence == current.plan.cadence;
                let calendar = if same_cadence {
                    current.calendar.clone()
                } else {
                    self.calendar(plan.cadence, Alignment::Anniversary, effective)?
                };
                let quantity = current.quantity_at(effective);
                current.end = Some(effective);
                current.end_reason = InvoiceReason::PlanChange;
                current.end_at_once = change.invoice_now;
                let next = Epoch {
                    plan,
                    start: effective,
                    end: None,
                    end_reason: InvoiceReason::PeriodEnd,
                    start_at_once: change.invoice_now,
                    end_at_once: false,
                    on_customer_cycle: same_cadence && current.on_customer_cycle,
                    calendar,
                    quantities: vec![(effective, quantity)],
                };
                epochs.push(std::mem::replace(&mut current, next));
            }
        }
        epochs.push(current);
        Ok(epochs)
    }

    fn effective(
        &self,
        epoch: &Epoch<'_>,
        at: Timestamp,
        policy: ChangePolicy,
    ) -> Result<Timestamp, CalendarError> {
        Ok(match policy {
            ChangePolicy::Immediate => at,
            ChangePolicy::EndOfTerm => epoch.calendar.period_containing(at)?.end,
        })
    }

    /// Lays out every invoice of one subscription up to "now", and its upcoming invoice.
    fn lay_out(
        &self,
        order: usize,
        subscription: &'a SubscriptionSpec,
        out: &mut Vec<PendingInvoice<'a>>,
        next: &mut Option<Timestamp>,
    ) -> Result<(), RunScenarioError> {
        let now = self.scenario.now;
        // The earliest instant after now at which this timeline issues something.
        let mut later = |at: Timestamp| {
            if at > now {
                *next = Some(next.map_or(at, |known| known.min(at)));
            }
        };
        // A resource's usage is the events naming it; a subscription's, the events naming it or
        // the customer.
        let customer_events = self.resource(order).is_none();
        // In time order (those at one instant in input order, as a meter takes them), so that
        // each period reads its own slice.
        let mut events: Vec<&'a UsageEvent> = self
            .scenario
            .events
            .iter()
            .filter(|e| {
                e.subject == subscription.id
                    || (customer_events && e.subject == self.scenario.customer.id)
            })
            .collect();
        events.sort_by_key(|e| e.time);
        let mut invoices: BTreeMap<Timestamp, PendingInvoice<'a>> = BTreeMap::new();
        let mut add = |at: Timestamp,
                       reason: InvoiceReason,
                       period: Period,
                       movable: bool,
                       items: Vec<Pending<'a>>| {
            if items.is_empty() {
                return;
            }
            let entry = invoices.entry(at).or_insert_with(|| PendingInvoice {
                order,
                key: &subscription.id,
                scope: InvoiceScope::Subscription,
                at,
                reason,
                period,
                movable,
                items: Vec::new(),
            });
            if reason != InvoiceReason::PeriodEnd {
                entry.reason = reason;
            }
            entry.movable &= movable;
            entry.items.extend(items);
        };
        let epochs = self.epochs(subscription)?;
        for (epoch_index, epoch) in epochs.iter().enumerate() {
            if epoch.start > now {
                later(epoch.start);
                break;
            }
            let follows_cycle = self.follows_customer_cycle(order, epoch);
            let first = epoch.calendar.index_containing(epoch.start)?;
            let mut index = first;
            loop {
                let containing = epoch.calendar.period(index)?;
                let service_end = epoch
                    .end
                    .map_or(containing.end, |end| end.min(containing.end));
                let service = Period {
                    start: containing.start.max(epoch.start),
                    end: service_end,
                };
                if service.start >= service.end || service.start > now {
                    later(service.start);
                    break;
                }
                let context = PeriodContext {
                    order,
                    epoch_index,
                    epoch,
                    index,
                    period_number: index - first,
                    containing,
                    service,
                    events: &events,
                };
                let start_reason = if service.start == subscription.start {
                    InvoiceReason::SubscriptionStart
                } else if epoch_index > 0 && service.start == epoch.start {
                    InvoiceReason::PlanChange
                } else {
                    InvoiceReason::PeriodEnd
                };
                let start_at_once =
                    epoch_index > 0 && service.start == epoch.start && epoch.start_at_once;
                let start_movable = follows_cycle && !start_at_once;
                add(
                    service.start,
                    start_reason,
                    containing,
                    start_movable,
                    self.advance_items(&context)?,
                );
                if service.end <= now {
                    let ends_epoch = epoch.end == Some(service.end);
                    let reason = if ends_epoch {
                        epoch.end_reason
                    } else {
                        InvoiceReason::PeriodEnd
                    };
                    add(
                        service.end,
                        reason,
                        containing,
                        follows_cycle && !(ends_epoch && epoch.end_at_once),
                        self.arrears_items(&context, true)?,
                    );
                } else {
                    later(service.end);
                    let open = Period {
                        start: service.start,
                        end: now,
                    };
                    let context = PeriodContext {
                        service: open,
                        ..context
                    };
                    let items = self.arrears_items(&context, false)?;
                    out.push(PendingInvoice {
                        order,
                        key: &subscription.id,
                        scope: InvoiceScope::Subscription,
                        at: now,
                        reason: InvoiceReason::Upcoming,
                        period: open,
                        movable: false,
                        items,
                    });
                    break;
                }
                if service.end < containing.end {
                    break;
                }
                index += 1;
            }
        }
        out.extend(invoices.into_values().filter(|invoice| invoice.at <= now));
        Ok(())
    }

    fn phase(&self, plan: &PlanSpec, period_number: i64) -> (Option<PhaseKind>, Option<Decimal>) {
        let mut from = 0_i64;
        for phase in &plan.phases {
            match phase.periods {
                Some(periods) if period_number >= from + i64::from(periods) => {
                    from += i64::from(periods)
                }
                _ => return (Some(phase.kind), phase.percent_off),
            }
        }
        (None, None)
    }

    fn timing(price: &PriceSpec) -> BillingTiming {
        if price.meter.is_some() {
            BillingTiming::InArrears
        } else {
            price.billing.unwrap_or(BillingTiming::InAdvance)
        }
    }

    fn recurring_item(
        &self,
        context: &PeriodContext<'_, 'a>,
        price: &'a PriceSpec,
        price_index: usize,
        quantity: Decimal,
        interval: Period,
    ) -> Result<PricedItem<'a>, CalendarError> {
        let flat = matches!(price.pricing, PriceModel::Flat { .. });
        let kind = if flat {
            LineKind::Fixed
        } else {
            LineKind::Recurring
        };
        // A flat fee is one fee whatever the subscription's quantity.
        let quantity = if flat { Decimal::ONE } else { quantity };
        let proration = if price.prorate && interval != context.containing {
            let factor = proration_factor(
                interval,
                context.containing,
                price.proration_unit,
                &self.time_zone,
            )?;
            Some(ProrationTrace {
                factor,
                factor_decimal: factor.to_decimal().round_dp(10),
                interval,
                containing: context.containing,
            })
        } else {
            None
        };
        let (phase, phase_percent_off) = self.phase(context.epoch.plan, context.period_number);
        Ok(PricedItem {
            order: context.order,
            plan: &context.epoch.plan.key,
            price,
            kind,
            description: price
                .description
                .clone()
                .unwrap_or_else(|| price.key.clone()),
            quantity,
            usage: None,
            service: interval,
            proration,
            negate: false,
            phase,
            phase_percent_off,
            buckets: context.buckets(price_index),
            period_end: context.containing.end,
            note: None,
        })
    }

    fn advance_items(
        &self,
        context: &PeriodContext<'_, 'a>,
    ) -> Result<Vec<Pending<'a>>, CalendarError> {
        let interval = Period {
            start: context.service.start,
            end: context.containing.end,
        };
        let quantity = context.epoch.quantity_at(interval.start);
        let mut items = Vec::new();
        for (price_index, price) in self.prices(context.epoch.plan) {
            if Self::timing(price) == BillingTiming::InAdvance {
                let item = self.recurring_item(context, price, price_index, quantity, interval)?;
                items.push(Pending::Priced(Box::new(item)));
            }
        }
        Ok(items)
    }

    fn arrears_items(
        &self,
        context: &PeriodContext<'_, 'a>,
        closes: bool,
    ) -> Result<Vec<Pending<'a>>, RunScenarioError> {
        let epoch = context.epoch;
        let service = context.service;
        let changes: Vec<(Timestamp, Decimal, Decimal)> = epoch
            .quantities
            .windows(2)
            .filter(|pair| service.start < pair[1].0 && pair[1].0 < service.end)
            .map(|pair| (pair[1].0, pair[0].1, pair[1].1))
            .collect();
        let mut items = Vec::new();
        for (price_index, price) in self.prices(epoch.plan) {
            match (Self::timing(price), &price.meter) {
                (_, Some(meter)) => {
                    items.extend(self.usage_items(context, price, price_index, meter)?)
                }
                (BillingTiming::InArrears, None) => {
                    let mut cuts: Vec<Timestamp> = vec![service.start];
                    cuts.extend(changes.iter().map(|change| change.0));
                    cuts.push(service.end);
                    let segments: Vec<Period> = if price.prorate {
                        cuts.windows(2)
                            .map(|w| Period {
                                start: w[0],
                                end: w[1],
                            })
                            .collect()
                    } else {
                        vec![service]
                    };
                    for segment in segments {
                        let quantity = epoch.quantity_at(if price.prorate {
                            segment.start
                        } else {
                            service.end
                        });
                        let mut item =
                            self.recurring_item(context, price, price_index, quantity, segment)?;
                        if !price.prorate {
                            item.proration = None;
                        }
                        items.push(Pending::Priced(Box::new(item)));
                    }
                }
                (BillingTiming::InAdvance, None) if price.prorate => {
                    let rest = |from: Timestamp| Period {
                        start: from,
                        end: context.containing.end,
                    };
                    let flat = matches!(price.pricing, PriceModel::Flat { .. });
                    for (at, old, new) in changes.iter().filter(|_| !flat) {
                        let mut unused =
                            self.recurring_item(context, price, price_index, *old, rest(*at))?;
                        unused.negate = true;
                        unused.kind = LineKind::Adjustment;
                        unused.description = format!("Unused time on {}", unused.description);
                        let mut remaining =
                            self.recurring_item(context, price, price_index, *new, rest(*at))?;
                        remaining.description =
                            format!("Remaining time on {}", remaining.description);
                        items.push(Pending::Priced(Box::new(unused)));
                        items.push(Pending::Priced(Box::new(remaining)));
                    }
                    if closes
                        && epoch.end == Some(service.end)
                        && service.end < context.containing.end
                    {
                        let mut unused = self.recurring_item(
                            context,
                            price,
                            price_index,
                            epoch.quantity_at(service.end),
                            rest(service.end),
                        )?;
                        unused.negate = true;
                        unused.kind = LineKind::Adjustment;
                        unused.description = format!("Unused time on {}", unused.description);
                        items.push(Pending::Priced(Box::new(unused)));
                    }
                }
                (BillingTiming::InAdvance, None) => {}
            }
        }
        if closes && self.phase(epoch.plan, context.period_number).0 != Some(PhaseKind::Trial) {
            let share = proration_factor(
                service,
                context.containing,
                crate::period::ProrationUnit::Second,
                &self.time_zone,
            )?;
            for (price_index, price) in self.prices(epoch.plan) {
                if let Some(minimum) = price.minimum_amount {
                    let description = format!(
                        "Minimum commitment true-up: {}",
                        price.description.as_deref().unwrap_or(&price.key)
                    );
                    items.push(Pending::TrueUp {
                        buckets: context.buckets(price_index),
                        minimum: share.apply(minimum),
                        description,
                        service,
                        period_end: context.containing.end,
                    });
                }
            }
            if let Some(minimum) = epoch.plan.minimum_amount {
                let description = format!(
                    "Minimum commitment true-up: {}",
                    epoch.plan.name.as_deref().unwrap_or(&epoch.plan.key)
                );
                let plan_bucket = context.buckets(0)[1];
                items.push(Pending::TrueUp {
                    buckets: [plan_bucket, plan_bucket],
                    minimum: share.apply(minimum),
                    description,
                    service,
                    period_end: context.containing.end,
                });
            }
        }
        Ok(items)
    }

    fn usage_items(
        &self,
        context: &PeriodContext<'_, 'a>,
        price: &'a PriceSpec,
        price_index: usize,
        meter_key: &str,
    ) -> Result<Vec<Pending<'a>>, RunScenarioError> {
        let meter = self
            .scenario
            .meters
            .iter()
            .find(|m| m.key == meter_key)
            .expect("validated meter key");
        // The period's events; a gauge integrated over time also reads its level before.
        let first = if meter.aggregation == Aggregation::TimeWeightedSum {
            0
        } else {
            context
                .events
                .partition_point(|e| e.time < context.service.start)
        };
        let end = context
            .events
            .partition_point(|e| e.time < context.service.end);
        let events = &context.events[first..end.max(first)];
        let mut groups = meter.aggregate(events.iter().copied(), context.service)?;
        if groups.is_empty() {
            // No events: still a line when the price charges something at zero usage (a
            // graduated price's first-tier flat fee).
            let at_zero = price.pricing.rate(Decimal::ZERO, &[]).map_err(|source| {
                RunScenarioError::Rate {
                    price: price.key.clone(),
                    source,
                }
            })?;
            if !at_zero.amount.is_zero() {
                groups.push(crate::aggregation::GroupQuantity {
                    group: Vec::new(),
                    quantity: Decimal::ZERO,
                    event_count: 0,
                });
            }
        }
        let (phase, phase_percent_off) = self.phase(context.epoch.plan, context.period_number);
        let mut items = Vec::new();
        for group in groups {
            let transactions = if price.pricing.is_percentage() {
                let mut members: Vec<&UsageEvent> = events
                    .iter()
                    .copied()
                    .filter(|e| {
                        meter.selects(e)
                            && context.service.contains(e.time)
                            && meter.group_of(e) == group.group
                    })
                    .collect();
                members.sort_by_key(|e| e.time);
                let property = meter.value_property.as_deref().unwrap_or_default();
                members
                    .iter()
                    .map(|e| {
                        e.data
                            .get(property)
                            .and_then(crate::RawMember::decimal)
                            .ok_or_else(|| AggregateError::NonNumericValue {
                                meter: meter.key.clone(),
                                event_id: e.id.clone(),
                                property: property.to_owned(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                Vec::new()
            };
            let labels: Vec<&str> = group
                .group
                .iter()
                .map(|(_, value)| value.as_str())
                .filter(|v| !v.is_empty())
                .collect();
            let base = price
                .description
                .clone()
                .unwrap_or_else(|| price.key.clone());
            let description = if labels.is_empty() {
                base
            } else {
                format!("{base} ({})", labels.join(", "))
            };
            let project = group
                .group
                .iter()
                .find(|(dimension, _)| dimension == "project")
                .map(|(_, value)| value.clone())
                .filter(|v| !v.is_empty());
            items.push(Pending::Priced(Box::new(PricedItem {
                order: context.order,
                plan: &context.epoch.plan.key,
                price,
                kind: LineKind::Usage,
                description,
                quantity: group.quantity,
                usage: Some(UsageInput {
                    project,
                    transactions,
                }),
                service: context.service,
                proration: None,
                negate: false,
                phase,
                phase_percent_off,
                buckets: context.buckets(price_index),
                period_end: context.containing.end,
                note: None,
            })));
        }
        Ok(items)
    }

    /// Rates the items of one invoice and assembles it.
    fn issue(
        &self,
        pending: PendingInvoice<'a>,
        state: &mut RatingState,
        issued: bool,
    ) -> Result<IssuedInvoice, RunScenarioError> {
        let mut charges: Vec<Charge> = Vec::with_capacity(pending.items.len());
        let mut reports: BTreeMap<String, CreditTally> = BTreeMap::new();
        for item in pending.items {
            match item {
                Pending::Priced(item) => {
                    self.rate_item(*item, state, &mut charges, &mut reports)?
                }
                Pending::Adjustment(adjustment) => charges.push(Charge {
                    kind: LineKind::Adjustment,
                    description: adjustment.description.clone(),
                    price: None,
                    meter: None,
                    project: None,
                    period: adjustment.period,
                    quantity: Decimal::ONE,
                    amount: adjustment.amount,
                    target: None,
                    source: LineSource::default(),
                    trace: LineTrace {
                        adjustment: Some(adjustment.key.clone()),
                        ..LineTrace::default()
                    },
                }),
                Pending::TrueUp {
                    buckets,
                    minimum,
                    description,
                    service,
                    period_end,
                } => {
                    let billed = state.buckets.get(&buckets[0]).copied().unwrap_or_default();
                    if minimum > billed {
                        // A price's true-up is part of what its plan billed in the period.
                        let mut counted = buckets.to_vec();
                        counted.dedup();
                        for bucket in counted {
                            *state.buckets.entry(bucket).or_default() += minimum - billed;
                            state.bucket_ends.insert(bucket, period_end);
                        }
                        let order = buckets[0].0;
                        let plan = &self.timelines[order].plan;
                        charges.push(Charge {
                            kind: LineKind::Adjustment,
                            description,
                            price: None,
                            meter: None,
                            project: self.timelines[order].project.clone(),
                            period: service,
                            quantity: Decimal::ONE,
                            amount: minimum - billed,
                            target: None,
                            source: self.source(order, plan, None),
                            trace: LineTrace {
                                note: Some(format!(
                                    "minimum {minimum} for the period, billed {billed}"
                                )),
                                ..LineTrace::default()
                            },
                        });
                    }
                }
            }
        }
        // Adjustments are net of discounts already: an invoice of adjustments alone uses none.
        let has_charges = charges.iter().any(|c| {
            c.kind.is_charge() && c.amount > Decimal::ZERO && c.trace.adjustment.is_none()
        });
        let mut discounts = Vec::new();
        for (index, discount) in self.scenario.discounts.iter().enumerate() {
            let limit = match discount.duration {
                DiscountDuration::Once => 1,
                DiscountDuration::Repeating { invoices } => invoices,
                DiscountDuration::Forever => u32::MAX,
            };
            if discount.start > pending.at || state.discount_uses[index] >= limit || !has_charges {
                continue;
            }
            let value = match (discount.percent_off, discount.amount_off) {
                (Some(percent), _) => DiscountValue::PercentOff(percent),
                (None, Some(amount)) => DiscountValue::AmountOff(
                    Money::from_exact_decimal(amount, self.scenario.currency)
                        .map_err(AssembleInvoiceError::from)?,
                ),
                (None, None) => continue,
            };
            if issued {
                state.discount_uses[index] += 1;
            }
            discounts.push(AppliedDiscount {
                key: discount.key.clone(),
                value,
            });
        }
        let input = InvoiceInput {
            currency: self.scenario.currency,
            rounding: self.scenario.rounding,
            issued_at: pending.at,
            period: pending.period,
            charges,
            discounts: &discounts,
            tax: self.scenario.customer.tax.as_ref(),
            credit_reports: reports
                .into_iter()
                .map(|(meter, tally)| {
                    CreditUsageReport::new(
                        &meter,
                        tally.allocated,
                        tally.used,
                        &tally.consumed,
                        tally.limit_percent,
                    )
                })
                .collect(),
        };
        let invoice = assemble_invoice(input, &mut state.money_grants)?;
        let mut subscriptions: Vec<String> = Vec::new();
        if pending.scope == InvoiceScope::Subscription {
            subscriptions.push(pending.key.to_owned());
        }
        for line in &invoice.lines {
            if let Some(subscription) = &line.subscription {
                if !subscriptions.contains(subscription) {
                    subscriptions.push(subscription.clone());
                }
            }
        }
        Ok(IssuedInvoice {
            key: pending.key.to_owned(),
            scope: pending.scope,
            subscriptions,
            reason: pending.reason,
            invoice,
        })
    }

    fn rate_item(
        &self,
        item: PricedItem<'a>,
        state: &mut RatingState,
        charges: &mut Vec<Charge>,
        reports: &mut BTreeMap<String, CreditTally>,
    ) -> Result<(), RunScenarioError> {
        let price = item.price;
        let mut quantity = item.quantity;
        let mut trace = LineTrace::default();
        let transactions = item
            .usage
            .as_ref()
            .map(|u| u.transactions.as_slice())
            .unwrap_or_default();
        let trial = item.phase == Some(PhaseKind::Trial);
        if let (Some(meter), false, false) = (&price.meter, price.pricing.is_percentage(), trial) {
            let allocated = credit::available(&state.unit_grants, Some(meter), item.service);
            if !allocated.is_zero() || price.overage_limit_percent.is_some() {
                let consumed =
                    credit::consume(&mut state.unit_grants, Some(meter), item.service, quantity);
                let used: Decimal = consumed.iter().map(|c| c.amount).sum();
                // Groups of one meter share one report: allocated as seen by the first group.
                let entry = reports.entry(meter.clone()).or_insert_with(|| CreditTally {
                    allocated,
                    limit_percent: price.overage_limit_percent,
                    ..CreditTally::default()
                });
                entry.used += quantity;
                entry.consumed.extend(consumed.iter().cloned());
                trace.quantity_before_grants = Some(quantity);
                trace.grants = consumed;
                quantity -= used;
            }
        }
        let rating = price
            .pricing
            .rate(quantity, transactions)
            .map_err(|source| RunScenarioError::Rate {
                price: price.key.clone(),
                source,
            })?;
        let mut amount = rating.amount;
        trace.steps = rating.steps;
        if let Some(proration) = item.proration {
            amount = proration.factor.apply(amount);
            trace.proration = Some(Box::new(proration));
        }
        if item.negate {
            amount = -amount;
        }
        if trial {
            amount = Decimal::ZERO;
            trace.note = Some("trial: not charged".to_owned());
        } else if let Some(note) = item.note {
            trace.note = Some(note);
        }
        for bucket in item.buckets {
            *state.buckets.entry(bucket).or_default() += amount;
            state.bucket_ends.insert(bucket, item.period_end);
        }
        let project = item
            .usage
            .and_then(|u| u.project)
            .or_else(|| self.timelines[item.order].project.clone());
        let source = self.source(item.order, item.plan, Some(price));
        let charge_index = charges.len();
        let period = item.service;
        charges.push(Charge {
            kind: item.kind,
            description: item.description.clone(),
            price: Some(price.key.clone()),
            meter: price.meter.clone(),
            project: project.clone(),
            period,
            quantity,
            amount,
            target: None,
            source: source.clone(),
            trace,
        });
        if let (Some(PhaseKind::Discount), Some(percent)) = (item.phase, item.phase_percent_off) {
            let off = amount * percent / Decimal::ONE_HUNDRED;
            for bucket in item.buckets {
                *state.buckets.entry(bucket).or_default() -= off;
            }
            charges.push(Charge {
                kind: LineKind::Discount,
                description: format!("{percent}% off {} (discount phase)", item.description),
                price: Some(price.key.clone()),
                meter: None,
                project,
                period,
                quantity: Decimal::ONE,
                amount: -off,
                target: Some(charge_index),
                source,
                trace: LineTrace::default(),
            });
        }
        Ok(())
    }
}

#[derive(Default)]
struct CreditTally {
    allocated: Decimal,
    used: Decimal,
    consumed: Vec<crate::credit::GrantConsumption>,
    limit_percent: Option<Decimal>,
}

struct PeriodContext<'c, 'a> {
    order: usize,
    epoch_index: usize,
    epoch: &'c Epoch<'a>,
    index: i64,
    period_number: i64,
    containing: Period,
    service: Period,
    events: &'c [&'a UsageEvent],
}

impl PeriodContext<'_, '_> {
    fn buckets(&self, price_index: usize) -> [BucketId; 2] {
        [
            (self.order, self.epoch_index, self.index, Some(price_index)),
            (self.order, self.epoch_index, self.index, None),
        ]
    }
}
