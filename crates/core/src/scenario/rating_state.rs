//! What the engine carries from invoice to invoice while it rates them in time order: grant
//! balances, discount uses and what each period counted towards its minimums; and the
//! [`RatingSnapshot`] a checkpoint keeps of it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;

use super::checkpoint::{BucketId, RatingSnapshot};
use super::World;
use crate::credit::{self, GrantBalance};
use crate::money::Money;

#[derive(Clone)]
pub(super) struct RatingState {
    pub(super) unit_grants: Vec<GrantBalance>,
    pub(super) money_grants: Vec<GrantBalance>,
    pub(super) discount_uses: Vec<u32>,
    pub(super) buckets: BTreeMap<BucketId, Decimal>,
    /// The end of each bucket's period.
    pub(super) bucket_ends: BTreeMap<BucketId, Timestamp>,
}

impl RatingState {
    /// Forgets the minimum buckets of the periods that ended at or before `through`, once every
    /// invoice issued at or before it is issued: a period's true-up is issued at its end at the
    /// latest, so they are never read again (a checkpoint leaves them out for the same reason).
    /// Without this, every period ever rated would stay, and each checkpoint's snapshot would
    /// scan them all.
    pub(super) fn forget_ended(&mut self, through: Timestamp) {
        self.bucket_ends.retain(|_, end| *end > through);
        let ends = &self.bucket_ends;
        self.buckets.retain(|id, _| ends.contains_key(id));
    }

    /// The state to keep at a checkpoint after the invoices issued at or before `through`: the
    /// minimum buckets of periods that end after it only (a period's true-up is issued at its
    /// end at the latest).
    pub(super) fn snapshot(&self, scenario: &World, through: Timestamp) -> RatingSnapshot {
        RatingSnapshot {
            grants: self
                .unit_grants
                .iter()
                .chain(&self.money_grants)
                .map(|balance| (balance.grant.key.clone(), balance.remaining))
                .collect(),
            discount_uses: scenario
                .discounts
                .iter()
                .zip(&self.discount_uses)
                .map(|(discount, uses)| (discount.key.clone(), *uses))
                .collect(),
            buckets: self
                .buckets
                .iter()
                .filter_map(|(id, amount)| {
                    let end = *self.bucket_ends.get(id)?;
                    (end > through).then_some((*id, *amount, end))
                })
                .collect(),
        }
    }

    /// The state a checkpoint kept, on the scenario's grants and discounts (one the checkpoint
    /// does not name starts afresh).
    pub(super) fn restore(scenario: &World, snapshot: &RatingSnapshot) -> RatingState {
        let mut state = RatingState::new(scenario);
        for balance in state.unit_grants.iter_mut().chain(&mut state.money_grants) {
            if let Some(remaining) = snapshot.grants.get(&balance.grant.key) {
                balance.remaining = *remaining;
            }
        }
        for (uses, discount) in state.discount_uses.iter_mut().zip(&scenario.discounts) {
            if let Some(known) = snapshot.discount_uses.get(&discount.key) {
                *uses = *known;
            }
        }
        for (id, amount, end) in &snapshot.buckets {
            state.buckets.insert(*id, *amount);
            state.bucket_ends.insert(*id, *end);
        }
        state
    }

    pub(super) fn new(scenario: &World) -> RatingState {
        let mut unit_grants = Vec::new();
        let mut money_grants = Vec::new();
        for grant in &scenario.credit_grants {
            let (list, remaining) = match grant.meter {
                Some(_) => (&mut unit_grants, grant.amount),
                None => {
                    let minor = Money::from_exact_decimal(grant.amount, scenario.currency)
                        .map_or(0, Money::amount_minor);
                    (&mut money_grants, Decimal::from(minor))
                }
            };
            list.push(GrantBalance {
                grant: grant.clone(),
                remaining,
            });
        }
        credit::sort_in_burn_order(&mut unit_grants);
        credit::sort_in_burn_order(&mut money_grants);
        RatingState {
            unit_grants,
            money_grants,
            discount_uses: vec![0; scenario.discounts.len()],
            buckets: BTreeMap::new(),
            bucket_ends: BTreeMap::new(),
        }
    }
}
