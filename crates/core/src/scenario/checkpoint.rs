//! Checkpoints: where a billing run may start the engine instead of at the first period.
//!
//! The engine rates invoices in time order, and what an invoice bills depends on what earlier
//! ones consumed: meter-unit and money credits, a discount's uses, and the amounts a period's
//! minimum commitment has counted (an in-advance fee is billed at a period's start, its true-up
//! at its end, on two invoices). A [`Checkpoint`] holds exactly that state after the invoices
//! issued at or before an instant, with what the invoices after it need of the usage: the
//! earliest event time they read (`usage_from`) and, for gauges integrated over time, the last
//! event before it (the gauge's level when the next period starts).
//!
//! [`preview_from`](super::preview_from) with a checkpoint and the events from `usage_from` on
//! (plus [`Checkpoint::carried_events`] of the full history, which the checkpoint keeps) issues
//! the same invoices after `through` as [`preview`](super::preview) with every event: the
//! golden scenarios are run both ways in this module's tests. It is valid for the world it was
//! made with (subscriptions, plans, meters, grants, discounts, adjustments): a caller makes a
//! new one from the whole history when any of them changes, or when an event arrives late for a
//! period at or before `through`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::World;
use crate::aggregation::{Aggregation, UsageEvent};

/// A timeline's minimum-commitment bucket: (timeline order, epoch, period index, price index;
/// `None` for the plan's own minimum).
pub(super) type BucketId = (usize, usize, i64, Option<usize>);

/// A gauge's level is kept per (subject, meter, group).
type GaugeKey<'e> = (&'e str, &'e str, Vec<(String, String)>);

/// What billing consumed by an instant: each grant's balance, each discount's uses, and what
/// each period still open had counted towards its minimums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingSnapshot {
    /// What is left of each credit grant, by key: minor units for money grants, meter units
    /// otherwise.
    pub grants: BTreeMap<String, Decimal>,
    /// How many invoices each discount was applied to, by key.
    pub discount_uses: BTreeMap<String, u32>,
    /// What the periods that end after the checkpoint counted towards their minimums so far,
    /// with each period's end.
    pub buckets: Vec<(BucketId, Decimal, Timestamp)>,
}

/// Where the engine may start: the state after every invoice issued at or before `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every invoice issued at or before this instant is accounted for in `state`; the engine
    /// started here issues only later ones.
    pub through: Timestamp,
    /// The earliest event time the later invoices read (never after the `now` it was made at).
    pub usage_from: Timestamp,
    /// The last event before `usage_from` of each (subject, meter, group) of a gauge integrated
    /// over time: the level it holds when later periods start.
    #[serde(default)]
    pub carried: Vec<UsageEvent>,
    /// The rating state.
    pub state: RatingSnapshot,
}

impl Checkpoint {
    /// The events an engine started at this checkpoint reads: those carried, then `events`
    /// (which a caller reads from `usage_from` on), in time order, an event both carried and
    /// read only once.
    #[must_use]
    pub fn events_with(&self, events: Vec<UsageEvent>) -> Vec<UsageEvent> {
        if self.carried.is_empty() {
            return events;
        }
        let mut all: Vec<UsageEvent> = self
            .carried
            .iter()
            .filter(|carried| {
                !events
                    .iter()
                    .any(|e| e.id == carried.id && e.source == carried.source)
            })
            .cloned()
            .collect();
        all.extend(events);
        all.sort_by_key(|event| event.time);
        all
    }

    /// The gauge events of `scenario` that carry a level across `usage_from`: for every meter
    /// integrated over time, the last event before `usage_from` of each subject and group it
    /// selects. Events are taken in time order, and those at one instant in their input order.
    #[must_use]
    pub fn carried_events(scenario: &World, usage_from: Timestamp) -> Vec<UsageEvent> {
        let gauges: Vec<_> = scenario
            .meters
            .iter()
            .filter(|meter| meter.aggregation == Aggregation::TimeWeightedSum)
            .collect();
        if gauges.is_empty() {
            return Vec::new();
        }
        let mut before: Vec<(usize, &UsageEvent)> = scenario
            .events
            .iter()
            .enumerate()
            .filter(|(_, event)| event.time < usage_from)
            .collect();
        before.sort_by_key(|(index, event)| (event.time, *index));
        let mut last: BTreeMap<GaugeKey<'_>, usize> = BTreeMap::new();
        for (position, (_, event)) in before.iter().enumerate() {
            for meter in &gauges {
                if meter.selects(event) {
                    let key = (
                        event.subject.as_str(),
                        meter.key.as_str(),
                        meter.group_of(event),
                    );
                    last.insert(key, position);
                }
            }
        }
        let positions: BTreeSet<usize> = last.into_values().collect();
        positions
            .into_iter()
            .map(|position| before[position].1.clone())
            .collect()
    }
}
