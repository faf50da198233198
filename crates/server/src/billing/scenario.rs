//! Builds the billing core's `Scenario` for one customer from stored rows.
//!
//! The catalog and subscriptions are stored in the core's spec shapes (JSON), so a scenario is
//! assembled as a JSON document and read with `Scenario::from_json`, which also validates it and
//! names the field of any error as a path (`plans[0].prices[1].pricing`). The API edge uses the
//! same documents to validate what it is about to store ([`validate_document`]). Events are set on
//! the parsed scenario directly: they were validated when they were ingested, and serializing
//! millions of them only to parse them again would be waste.
//!
//! Scenario keys are ids: a plan's key is its *version* id (a subscription pins the version it
//! uses), a grant's or discount's key is its id.

use std::collections::BTreeMap;

use billow_core::scenario::{Scenario, ScenarioError, SCENARIO_FORMAT_VERSION};
use billow_core::{Currency, UsageEvent};
use billow_store::catalog::PlanVersionRecord;
use billow_store::subscriptions::{CustomerSpecKind, SubscriptionRecord};
use billow_store::WorkspaceId;
use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, FieldError};
use crate::startup::AppState;

/// The billing facts of one customer, as the scenario needs them.
#[derive(Clone, Debug)]
pub(crate) struct CustomerBilling {
    pub customer_id: String,
    /// Event subjects that name the customer besides its id (its external id).
    pub aliases: Vec<String>,
    pub currency: Currency,
    pub time_zone: String,
    pub billing_cycle_day: i8,
    pub tax: Option<Value>,
}

/// Everything stored about a customer's billing, loaded once per run.
#[derive(Clone, Debug)]
pub(crate) struct CustomerWorld {
    pub customer: CustomerBilling,
    pub meters: Vec<Value>,
    pub versions: BTreeMap<String, PlanVersionRecord>,
    pub subscriptions: Vec<(SubscriptionRecord, Vec<Value>)>,
    pub grants: Vec<Value>,
    pub discounts: Vec<Value>,
}

impl CustomerWorld {
    /// Loads the customer's billing facts, or `None` when the customer does not exist.
    pub async fn load(
        state: &AppState,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<Option<Self>, ApiError> {
        let Some(customer) = load_customer(state, workspace, customer_id).await? else {
            return Ok(None);
        };
        let store = &state.store;
        let meters = store
            .meters(workspace)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|meter| meter.spec)
            .collect();
        let mut versions = BTreeMap::new();
        let mut subscriptions = Vec::new();
        for subscription in store
            .subscriptions(workspace, Some(customer_id))
            .await
            .map_err(ApiError::internal)?
        {
            let changes: Vec<Value> = store
                .subscription_changes(workspace, &subscription.id)
                .await
                .map_err(ApiError::internal)?
                .into_iter()
                .map(|change| change.spec)
                .collect();
            let mut version_ids = vec![plan_of(&subscription.spec)];
            version_ids.extend(changes.iter().map(plan_of));
            for id in version_ids.into_iter().flatten() {
                if versions.contains_key(&id) {
                    continue;
                }
                let version = store
                    .plan_version(workspace, &id)
                    .await
                    .map_err(ApiError::internal)?
                    .ok_or_else(|| ApiError::internal(MissingPlanVersion(id.clone())))?;
                versions.insert(id, version);
            }
            subscriptions.push((subscription, changes));
        }
        let specs = |kind| async move {
            store
                .customer_specs(workspace, kind, Some(customer_id))
                .await
                .map_err(ApiError::internal)
        };
        let grants = specs(CustomerSpecKind::CreditGrant)
            .await?
            .into_iter()
            .map(|record| with_key(record.spec, &record.id))
            .collect();
        let discounts = specs(CustomerSpecKind::Discount)
            .await?
            .into_iter()
            .map(|record| with_key(record.spec, &record.id))
            .collect();
        Ok(Some(Self {
            customer,
            meters,
            versions,
            subscriptions,
            grants,
            discounts,
        }))
    }

    /// Every subject whose events belong to this customer.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects = vec![self.customer.customer_id.clone()];
        subjects.extend(self.customer.aliases.iter().cloned());
        subjects.extend(self.subscriptions.iter().map(|(s, _)| s.id.clone()));
        subjects
    }

    /// The scenario document at `now`, without events.
    pub fn document(&self, now: Timestamp) -> Value {
        let plans: Vec<Value> = self
            .versions
            .values()
            .map(|version| with_key(version.spec.clone(), &version.id))
            .collect();
        let subscriptions: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(subscription, changes)| {
                let mut spec = subscription.spec.clone();
                if let Some(object) = spec.as_object_mut() {
                    object.insert("changes".into(), Value::Array(changes.clone()));
                }
                spec
            })
            .collect();
        let mut customer = json!({
            "id": self.customer.customer_id,
            "time_zone": self.customer.time_zone,
            "billing_cycle_day": self.customer.billing_cycle_day,
        });
        if let (Some(tax), Some(object)) = (&self.customer.tax, customer.as_object_mut()) {
            object.insert("tax".into(), tax.clone());
        }
        json!({
            "billow_scenario": SCENARIO_FORMAT_VERSION,
            "name": self.customer.customer_id,
            "currency": self.customer.currency.code(),
            "now": now.to_string(),
            "customer": customer,
            "meters": self.meters,
            "plans": plans,
            "subscriptions": subscriptions,
            "credit_grants": self.grants,
            "discounts": self.discounts,
        })
    }

    /// The scenario at `now` with `events`, whose subjects that are aliases of the customer are
    /// rewritten to its id (the engine matches the customer by id).
    pub fn scenario(
        &self,
        now: Timestamp,
        mut events: Vec<UsageEvent>,
    ) -> Result<Scenario, ScenarioError> {
        let mut scenario = Scenario::from_json(&self.document(now).to_string())?;
        for event in &mut events {
            if self.customer.aliases.contains(&event.subject) {
                event.subject.clone_from(&self.customer.customer_id);
            }
        }
        scenario.events = events;
        Ok(scenario)
    }
}

/// Loads the customer through stream B's `Store::customer`; its external id is an alias that
/// events may name it by.
async fn load_customer(
    state: &AppState,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<Option<CustomerBilling>, ApiError> {
    let Some(customer) = state
        .store
        .customer(workspace, customer_id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(None);
    };
    let tax = state
        .store
        .customer_tax_rate(workspace, customer_id)
        .await
        .map_err(ApiError::internal)?
        .map(|rate| rate.spec);
    let aliases = std::iter::once(customer.external_id)
        .filter(|alias| !alias.is_empty() && alias != &customer.id)
        .collect();
    Ok(Some(CustomerBilling {
        customer_id: customer.id,
        aliases,
        currency: customer.currency,
        time_zone: customer.time_zone,
        billing_cycle_day: customer.billing_cycle_day,
        tax,
    }))
}

fn plan_of(spec: &Value) -> Option<String> {
    spec.get("plan")?.as_str().map(str::to_owned)
}

/// `spec` with its `key` set to `key`.
pub(crate) fn with_key(mut spec: Value, key: &str) -> Value {
    if let Some(object) = spec.as_object_mut() {
        object.insert("key".into(), Value::String(key.to_owned()));
    }
    spec
}

/// A document for checking one new spec with the core's validation: a UTC customer billed in
/// `currency`, the workspace's `meters`, and the given members.
pub(crate) fn validation_document(
    currency: Currency,
    meters: &[Value],
    members: Map<String, Value>,
) -> Value {
    let mut document = json!({
        "billow_scenario": SCENARIO_FORMAT_VERSION,
        "name": "validation",
        "currency": currency.code(),
        "now": "2000-01-01T00:00:00Z",
        "customer": {"id": "validation"},
        "meters": meters,
        "plans": [],
    });
    if let Some(object) = document.as_object_mut() {
        object.extend(members);
    }
    document
}

/// Validates `document` with the core; an error becomes a 422 whose field is the core's path with
/// `prefix` (the member the request body became, such as `plans[0]`) taken off.
pub(crate) fn validate_document(document: &Value, prefix: &str) -> Result<Scenario, ApiError> {
    Scenario::from_json(&document.to_string()).map_err(|error| scenario_error(&error, prefix))
}

/// A core validation error as a 422 naming the request's field.
pub(crate) fn scenario_error(error: &ScenarioError, prefix: &str) -> ApiError {
    let (path, reason) = match error {
        ScenarioError::Malformed { path, message } => (path, message),
        ScenarioError::Invalid { path, reason } => (path, reason),
    };
    let relative = path
        .strip_prefix(prefix)
        .map(|rest| rest.trim_start_matches('.'))
        .unwrap_or(path);
    // serde reports a missing field at its parent's path, naming the field only in the message.
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (relative, missing) {
        ("", Some(name)) => name.to_owned(),
        ("", None) => path.clone(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (relative, None) => relative.to_owned(),
    };
    // serde_json's position is in the document built here, not in the request: left out.
    let reason = reason
        .split_once(" at line ")
        .map_or(reason.as_str(), |(reason, _)| reason);
    ApiError::Validation(vec![FieldError::new(field, reason)])
}

/// A subscription names a plan version that is not stored: the rows are inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("the plan version {0} is not stored")]
struct MissingPlanVersion(String);

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::Validation(errors) => errors[0].field.clone(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_core_path_is_named_relative_to_the_request_body() {
        let invalid = ScenarioError::Invalid {
            path: "plans[0].prices[1].pricing".into(),
            reason: "bad".into(),
        };
        assert_eq!(
            field_of(scenario_error(&invalid, "plans[0]")),
            "prices[1].pricing"
        );
        let missing = ScenarioError::Malformed {
            path: "plans[0]".into(),
            message: "missing field `cadence` at line 1 column 2".into(),
        };
        assert_eq!(field_of(scenario_error(&missing, "plans[0]")), "cadence");
        let nested = ScenarioError::Malformed {
            path: "plans[0].prices[0]".into(),
            message: "missing field `pricing`".into(),
        };
        assert_eq!(
            field_of(scenario_error(&nested, "plans[0]")),
            "prices[0].pricing"
        );
    }
}
