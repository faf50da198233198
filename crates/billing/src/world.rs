//! [`CustomerWorld`]: everything stored about one customer's billing, as the billing core's
//! types, and the engine's input built from it ([`CustomerWorld::world`]).
//!
//! The store's records carry the core's specs, typed at the row boundary, so a world is
//! assembled without parsing; it is validated as `Scenario::from_json` validates a document,
//! which names the field of any error as a path (`plans[0].prices[1].pricing`). Events are set on
//! the scenario after validation: they were validated when they were ingested.
//!
//! Scenario keys are ids: a plan's key is its *version* id (a subscription pins the version it
//! uses), a grant's or discount's key is its id.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use billow_core::credit::CreditGrant;
use billow_core::invoice::TaxRate;
use billow_core::scenario::{
    AdjustmentSpec, ChangeSpec, CustomerSpec, DiscountSpec, Invoicing, ResourceSpec, ScenarioError,
    World, SCENARIO_FORMAT_VERSION,
};
use billow_core::{Currency, Meter, RoundingMode, UsageEvent};
use billow_store::billing::WorkspaceSettings;
use billow_store::catalog::PlanVersionRecord;
use billow_store::subscriptions::{CustomerSpecRecord, SubscriptionRecord};
use billow_store::{Customer, CustomerId, PlanVersionId, SubscriptionId, WorkspaceId};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::{Billing, Inconsistency, RunBillingError};

/// The billing facts of one customer, as the scenario needs them.
#[derive(Clone, Debug)]
pub struct CustomerBilling {
    pub customer_id: CustomerId,
    /// Event subjects that name the customer besides its id (its external id).
    pub aliases: Vec<String>,
    pub currency: Currency,
    pub time_zone: String,
    pub billing_cycle_day: i8,
    pub tax: Option<TaxRate>,
    pub invoicing: Invoicing,
}

/// Everything stored about a customer's billing, loaded once per run.
#[derive(Clone, Debug)]
pub struct CustomerWorld {
    pub customer: CustomerBilling,
    /// The workspace's meters, shared by every customer of a run.
    pub meters: Arc<[Meter]>,
    /// The plan versions the subscriptions use, shared with the run's cache.
    pub versions: BTreeMap<PlanVersionId, Arc<PlanVersionRecord>>,
    pub subscriptions: Vec<(SubscriptionRecord, Vec<ChangeSpec>)>,
    /// Its billed resources, their plans keyed by version id (in `versions`).
    pub resources: Vec<ResourceSpec>,
    pub grants: Vec<CreditGrant>,
    pub discounts: Vec<DiscountSpec>,
    /// The workspace's rounding mode (its settings, read once per run).
    pub rounding: RoundingMode,
    /// Its payment terms: days from finalization to the due date (its own, or the
    /// workspace's).
    pub net_days: u16,
}

impl CustomerWorld {
    /// Loads the customer's billing facts, or `None` when the customer does not exist.
    pub async fn load(
        billing: &Billing,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<Option<Self>, RunBillingError> {
        let Some(customer) = billing
            .store
            .customer(workspace, customer_id)
            .await
            .map_err(RunBillingError::store)?
        else {
            return Ok(None);
        };
        let meters = meter_specs(billing, workspace).await?.into();
        let settings = workspace_settings(billing, workspace).await?;
        let mut versions = BTreeMap::new();
        Ok(Self::load_many(
            billing,
            workspace,
            vec![customer],
            &meters,
            settings,
            &mut versions,
        )
        .await?
        .pop())
    }

    /// Loads the billing facts of many customers with one query per table (a billing run's
    /// batch). `meters` and `rounding` are the workspace's; `versions` caches the plan versions
    /// read so far (a run reads each once).
    pub async fn load_many(
        billing: &Billing,
        workspace: &WorkspaceId,
        customers: Vec<Customer>,
        meters: &Arc<[Meter]>,
        settings: WorkspaceSettings,
        versions: &mut BTreeMap<PlanVersionId, Arc<PlanVersionRecord>>,
    ) -> Result<Vec<Self>, RunBillingError> {
        let ids: Vec<CustomerId> = customers.iter().map(|c| c.id.clone()).collect();
        let subscriptions = billing
            .store
            .subscriptions_of_customers(workspace, &ids)
            .await
            .map_err(RunBillingError::store)?;
        Self::load_many_with(
            billing,
            workspace,
            customers,
            subscriptions,
            meters,
            settings,
            versions,
        )
        .await
    }

    /// [`CustomerWorld::load_many`] with the customers' `subscriptions` already read (every one
    /// of theirs, as `subscriptions_of_customers` returns them).
    pub async fn load_many_with(
        billing: &Billing,
        workspace: &WorkspaceId,
        customers: Vec<Customer>,
        subscriptions: Vec<SubscriptionRecord>,
        meters: &Arc<[Meter]>,
        settings: WorkspaceSettings,
        versions: &mut BTreeMap<PlanVersionId, Arc<PlanVersionRecord>>,
    ) -> Result<Vec<Self>, RunBillingError> {
        let store = &billing.store;
        let internal = RunBillingError::store;
        let ids: Vec<CustomerId> = customers.iter().map(|c| c.id.clone()).collect();
        let subscription_ids: Vec<SubscriptionId> =
            subscriptions.iter().map(|s| s.id.clone()).collect();
        let mut changes: HashMap<SubscriptionId, Vec<ChangeSpec>> = HashMap::new();
        for (subscription_id, change) in store
            .changes_of_subscriptions(workspace, &subscription_ids)
            .await
            .map_err(internal)?
        {
            changes
                .entry(subscription_id)
                .or_default()
                .push(change.spec);
        }
        let mut resources_of: HashMap<CustomerId, Vec<ResourceSpec>> = HashMap::new();
        let mut missing: Vec<PlanVersionId> = Vec::new();
        for resource in store
            .resources_of_customers(workspace, &ids)
            .await
            .map_err(internal)?
        {
            if !versions.contains_key(&resource.plan_version_id)
                && !missing.contains(&resource.plan_version_id)
            {
                missing.push(resource.plan_version_id.clone());
            }
            resources_of
                .entry(resource.customer_id.clone())
                .or_default()
                .push(resource.to_spec());
        }
        for subscription in &subscriptions {
            let changed = changes.get(&subscription.id).map_or(&[][..], Vec::as_slice);
            for id in plans_of(subscription, changed) {
                if !versions.contains_key(&id) && !missing.contains(&id) {
                    missing.push(id);
                }
            }
        }
        if !missing.is_empty() {
            for version in store
                .plan_versions_by_id(workspace, &missing)
                .await
                .map_err(internal)?
            {
                versions.insert(version.id.clone(), Arc::new(version));
            }
        }
        let mut taxes: HashMap<CustomerId, TaxRate> = store
            .tax_rates_of_customers(workspace, &ids)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(customer_id, rate)| (customer_id, rate.spec))
            .collect();
        let mut grants = by_customer(
            store
                .customer_specs_of_customers::<CreditGrant>(workspace, &ids)
                .await
                .map_err(internal)?,
            |grant, id| grant.key.clone_from(id),
        );
        let mut discounts = by_customer(
            store
                .customer_specs_of_customers::<DiscountSpec>(workspace, &ids)
                .await
                .map_err(internal)?,
            |discount, id| discount.key.clone_from(id),
        );
        let mut subscriptions_of: HashMap<CustomerId, Vec<(SubscriptionRecord, Vec<ChangeSpec>)>> =
            HashMap::new();
        for subscription in subscriptions {
            let changed = changes.remove(&subscription.id).unwrap_or_default();
            subscriptions_of
                .entry(subscription.customer_id.clone())
                .or_default()
                .push((subscription, changed));
        }
        customers
            .into_iter()
            .map(|customer| {
                let subscriptions = subscriptions_of.remove(&customer.id).unwrap_or_default();
                let resources = resources_of.remove(&customer.id).unwrap_or_default();
                let mut used = BTreeMap::new();
                for resource in &resources {
                    let version = versions.get(resource.plan.as_str()).ok_or_else(|| {
                        RunBillingError::Inconsistent(Inconsistency::MissingPlanVersion(
                            resource.plan.clone(),
                        ))
                    })?;
                    used.insert(resource.plan.as_str().into(), Arc::clone(version));
                }
                for (subscription, changed) in &subscriptions {
                    for id in plans_of(subscription, changed) {
                        let version = versions.get(&id).ok_or_else(|| {
                            RunBillingError::Inconsistent(Inconsistency::MissingPlanVersion(
                                id.to_string(),
                            ))
                        })?;
                        used.insert(id, Arc::clone(version));
                    }
                }
                let aliases = aliases_of(&customer);
                let net_days = net_days_of(&customer, &settings);
                Ok(Self {
                    customer: CustomerBilling {
                        tax: taxes.remove(&customer.id),
                        customer_id: customer.id.clone(),
                        aliases,
                        currency: customer.currency,
                        time_zone: customer.time_zone,
                        billing_cycle_day: customer.billing_cycle_day,
                        invoicing: customer.invoicing,
                    },
                    meters: Arc::clone(meters),
                    versions: used,
                    grants: grants.remove(&customer.id).unwrap_or_default(),
                    discounts: discounts.remove(&customer.id).unwrap_or_default(),
                    subscriptions,
                    resources,
                    rounding: settings.rounding,
                    net_days,
                })
            })
            .collect()
    }

    /// Every subject whose events belong to `customer` with `subscriptions`: what
    /// [`CustomerWorld::subjects`] gives for its world.
    pub fn subjects_of(customer: &Customer, subscriptions: &[&SubscriptionRecord]) -> Vec<String> {
        subject_list(
            &customer.id,
            &aliases_of(customer),
            subscriptions.iter().copied(),
        )
    }

    /// Every subject whose events belong to this customer.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects = subject_list(
            &self.customer.customer_id,
            &self.customer.aliases,
            self.subscriptions.iter().map(|(s, _)| s),
        );
        subjects.extend(self.resources.iter().map(|r| r.id.clone()));
        subjects
    }

    /// The keys the customer's invoices may have: each subscription's id (its own invoices),
    /// and the customer's id (the customer's invoice of a period).
    pub fn invoice_keys(&self) -> impl Iterator<Item = &str> {
        self.subscriptions
            .iter()
            .map(|(s, _)| s.id.as_str())
            .chain(std::iter::once(self.customer.customer_id.as_str()))
    }

    /// The scenario document at `now`, without events: the file format's serialization of the
    /// world (what the API validates a new spec in, and what a run's fingerprint digests).
    pub fn document(&self, now: Timestamp) -> Value {
        let subscriptions: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(subscription, changes)| {
                let mut spec = json!(subscription.spec);
                if let Some(object) = spec.as_object_mut() {
                    object.insert("changes".into(), json!(changes));
                }
                spec
            })
            .collect();
        let mut customer = json!({
            "id": self.customer.customer_id,
            "time_zone": self.customer.time_zone,
            "billing_cycle_day": self.customer.billing_cycle_day,
            "invoicing": self.customer.invoicing,
        });
        if let (Some(tax), Some(object)) = (&self.customer.tax, customer.as_object_mut()) {
            object.insert("tax".into(), json!(tax));
        }
        json!({
            "billow_scenario": SCENARIO_FORMAT_VERSION,
            "name": self.customer.customer_id,
            "currency": self.customer.currency.code(),
            "rounding": self.rounding,
            "now": now.to_string(),
            "customer": customer,
            "meters": &*self.meters,
            "plans": self.plans().collect::<Vec<_>>(),
            "subscriptions": subscriptions,
            "credit_grants": self.grants,
            "discounts": self.discounts,
        })
    }

    /// The plans of the world, each keyed by its version id (a subscription pins the version it
    /// uses).
    fn plans(&self) -> impl Iterator<Item = billow_core::scenario::PlanSpec> + '_ {
        self.versions.values().map(|version| {
            let mut plan = version.spec.clone();
            plan.key = version.id.to_string();
            plan
        })
    }

    /// The engine's input at `now` with `events`, whose subjects that are aliases of the
    /// customer are rewritten to its id (the engine matches the customer by id), and
    /// `adjustments` (pending late-usage differences, checked by the core like the rest).
    ///
    /// Built from the stored specs directly and validated as `Scenario::from_json` validates a
    /// document's world; the events were validated when they were ingested and are set after
    /// validation.
    ///
    /// # Errors
    /// When the core rejects the world (a path names the field).
    pub fn world(
        &self,
        now: Timestamp,
        mut events: Vec<UsageEvent>,
        adjustments: Vec<AdjustmentSpec>,
    ) -> Result<World, ScenarioError> {
        let subscriptions = self
            .subscriptions
            .iter()
            .map(|(subscription, changes)| {
                let mut spec = subscription.spec.clone();
                spec.changes.clone_from(changes);
                spec
            })
            .collect();
        let mut world = World {
            currency: self.customer.currency,
            rounding: self.rounding,
            now,
            customer: CustomerSpec {
                id: self.customer.customer_id.to_string(),
                time_zone: self.customer.time_zone.clone(),
                billing_cycle_day: self.customer.billing_cycle_day,
                tax: self.customer.tax.clone(),
                invoicing: self.customer.invoicing,
            },
            meters: self.meters.to_vec(),
            plans: self.plans().collect(),
            subscriptions,
            credit_grants: self.grants.clone(),
            discounts: self.discounts.clone(),
            events: Vec::new(),
            resources: self.resources.clone(),
            adjustments,
        };
        world.validate()?;
        for event in &mut events {
            if self.customer.aliases.contains(&event.subject) {
                event.subject = self.customer.customer_id.to_string();
            }
        }
        world.events = events;
        Ok(world)
    }
}

/// A customer's payment terms: its own net days, or the workspace's.
pub fn net_days_of(customer: &Customer, settings: &WorkspaceSettings) -> u16 {
    customer.net_days.unwrap_or(settings.net_days)
}

/// The workspace's billing settings (`/api/v1/workspace/settings`).
pub async fn workspace_settings(
    billing: &Billing,
    workspace: &WorkspaceId,
) -> Result<WorkspaceSettings, RunBillingError> {
    billing
        .store
        .workspace_settings(workspace)
        .await
        .map_err(RunBillingError::store)
}

/// The workspace's meters.
pub async fn meter_specs(
    billing: &Billing,
    workspace: &WorkspaceId,
) -> Result<Vec<Meter>, RunBillingError> {
    Ok(billing
        .store
        .meters(workspace)
        .await
        .map_err(RunBillingError::store)?
        .into_iter()
        .map(|meter| meter.spec)
        .collect())
}

/// The plan versions a subscription uses: the one it started on and those its changes move to.
fn plans_of(subscription: &SubscriptionRecord, changes: &[ChangeSpec]) -> Vec<PlanVersionId> {
    std::iter::once(subscription.spec.plan.as_str().into())
        .chain(
            changes
                .iter()
                .filter_map(|change| change.plan.as_deref().map(Into::into)),
        )
        .collect()
}

/// Credit grants or discounts by customer, each given its id as key by `keyed`.
fn by_customer<T>(
    records: Vec<CustomerSpecRecord<T>>,
    keyed: impl Fn(&mut T, &String),
) -> HashMap<CustomerId, Vec<T>> {
    let mut by_customer: HashMap<CustomerId, Vec<T>> = HashMap::new();
    for mut record in records {
        keyed(&mut record.spec, &record.id);
        by_customer
            .entry(record.customer_id)
            .or_default()
            .push(record.spec);
    }
    by_customer
}

/// `spec` with its `key` set to `key`.
pub fn with_key(mut spec: Value, key: &str) -> Value {
    if let Some(object) = spec.as_object_mut() {
        object.insert("key".into(), Value::String(key.to_owned()));
    }
    spec
}

/// A customer's subjects: its id, its aliases, its subscriptions' ids. The one definition behind
/// [`CustomerWorld::subjects`] (what the engine takes) and [`CustomerWorld::subjects_of`] (what a
/// billing run reads before the worlds are built), so the two cannot drift apart.
fn subject_list<'a>(
    customer_id: &str,
    aliases: &[String],
    subscriptions: impl Iterator<Item = &'a SubscriptionRecord>,
) -> Vec<String> {
    let mut subjects = vec![customer_id.to_owned()];
    subjects.extend(aliases.iter().cloned());
    subjects.extend(subscriptions.map(|s| s.id.to_string()));
    subjects
}

/// The other names a customer's events may carry as their subject: its external id.
fn aliases_of(customer: &Customer) -> Vec<String> {
    std::iter::once(customer.external_id.clone())
        .filter(|alias| !alias.is_empty() && alias != &customer.id)
        .collect()
}
