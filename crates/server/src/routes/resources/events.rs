//! Usage events that create, change and delete billed resources, applied by
//! `POST /api/v1/events` through the same store methods as the resource routes
//! (docs/resources.md, "Through usage events").
//!
//! - `billow.resource.created`: `data` = `{external_id, plan, quantity?, project_id?, kind?,
//!   name?, dimensions?}`, created at the event's `time`.
//! - `billow.resource.quantity`: `data` = `{resource_id or external_id, quantity}`, from `time`.
//! - `billow.resource.deleted`: `data` = `{resource_id or external_id}`, deleted at `time`.
//!
//! `subject` names the customer, by id or external id. Each event is applied in the order of the
//! request; a refused one is listed in the answer's `errors` (by index) and not stored, like an
//! invalid event. An applied event is stored like any other, under its (source, id).
//!
//! A platform retries a request whose answer it did not get, so applying an event twice must
//! change nothing: a creation whose `external_id` already names a resource of the customer, a
//! deletion at the instant the resource was deleted, and a quantity change equal to the last one
//! (same instant, same quantity) are taken as the retries they are. That is why a creation needs
//! an `external_id`.

use std::collections::BTreeMap;

use billow_store::resources::{ChangeResourceError, CheckResourceError, ResourceRecord};
use billow_store::{CustomerId, NewEvent, WorkspaceId};
use serde::Deserialize;
use serde_json::Value;

use super::wire::{quantity, stored_precision, CreateResource};
use crate::error::ApiError;
use crate::routes::customers::Checks;
use crate::routes::events::cloud_event::EventError;
use crate::state::AppState;

/// The prefix of the event types this module applies.
pub(crate) const RESOURCE_EVENT_PREFIX: &str = "billow.resource.";

/// What a resource event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Created,
    Quantity,
    Deleted,
}

impl Lifecycle {
    fn of(event_type: &str) -> Option<Self> {
        match event_type.strip_prefix(RESOURCE_EVENT_PREFIX)? {
            "created" => Some(Self::Created),
            "quantity" => Some(Self::Quantity),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// The `data` of a resource event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceEventData {
    resource_id: Option<String>,
    external_id: Option<String>,
    plan: Option<String>,
    quantity: Option<Value>,
    project_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
}

/// Why one event was not applied: its attribute and the reason, or an error of the server.
enum Refusal {
    Fields(Vec<(&'static str, String)>),
    Internal(ApiError),
}

impl Refusal {
    fn of(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Fields(vec![(field, reason.into())])
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Validation(errors) => Self::Fields(
                errors
                    .into_iter()
                    .map(|error| ("data", format!("{}: {}", error.field, error.reason)))
                    .collect(),
            ),
            ApiError::Taken { field, detail } => {
                Self::Fields(vec![("data", format!("{field}: {detail}"))])
            }
            other => Self::Internal(other),
        }
    }
}

/// Applies the resource events of `events` (each with its index in the request), in order.
/// Returns the events to store (every other event, and the resource events applied) and the
/// refused ones' errors.
///
/// # Errors
/// When the store fails: nothing of the request is stored then, and the resource events applied
/// before are taken as retries when the client sends the request again.
pub(crate) async fn apply_resource_events(
    state: &AppState,
    workspace: &WorkspaceId,
    events: Vec<(usize, NewEvent)>,
) -> Result<(Vec<NewEvent>, Vec<EventError>), ApiError> {
    let mut kept = Vec::with_capacity(events.len());
    let mut errors = Vec::new();
    for (index, event) in events {
        if !event.event_type.starts_with(RESOURCE_EVENT_PREFIX) {
            kept.push(event);
            continue;
        }
        match apply(state, workspace, &event).await {
            Ok(()) => kept.push(event),
            Err(Refusal::Fields(fields)) => {
                errors.extend(fields.into_iter().map(|(field, reason)| EventError {
                    index,
                    field,
                    reason,
                }));
            }
            Err(Refusal::Internal(error)) => return Err(error),
        }
    }
    Ok((kept, errors))
}

async fn apply(state: &AppState, workspace: &WorkspaceId, event: &NewEvent) -> Result<(), Refusal> {
    let lifecycle = Lifecycle::of(&event.event_type).ok_or_else(|| {
        Refusal::of(
            "type",
            format!(
                "the resource event types are {RESOURCE_EVENT_PREFIX}created, \
                 {RESOURCE_EVENT_PREFIX}quantity and {RESOURCE_EVENT_PREFIX}deleted"
            ),
        )
    })?;
    let data: ResourceEventData = match &event.data {
        None => ResourceEventData::default(),
        Some(text) => {
            serde_json::from_str(text).map_err(|error| Refusal::of("data", format!("{error}")))?
        }
    };
    let customer_id = customer_of(state, workspace, &event.subject).await?;
    let at = stored_precision(event.time);
    match lifecycle {
        Lifecycle::Created => create(state, workspace, customer_id, at, data).await,
        Lifecycle::Quantity => {
            let resource = resource_of(state, workspace, &customer_id, &data).await?;
            let mut checks = Checks::default();
            let Some(value) = &data.quantity else {
                return Err(Refusal::of("data", "quantity: is required"));
            };
            let new_quantity = quantity(&mut checks, "quantity", value);
            if let Some(error) = checks.errors.pop() {
                return Err(Refusal::of("data", format!("quantity: {}", error.reason)));
            }
            // A change already recorded (a batch sent again) is taken as done.
            if resource
                .quantity_changes
                .iter()
                .any(|change| change.at == at && change.quantity == new_quantity)
            {
                return Ok(());
            }
            let changed = state
                .store
                .change_resource_quantity(workspace, &resource.id, at, new_quantity)
                .await;
            changed.map(drop).map_err(refusal)
        }
        Lifecycle::Deleted => {
            let resource = resource_of(state, workspace, &customer_id, &data).await?;
            if resource.deleted_at == Some(at) {
                return Ok(());
            }
            let deleted = state
                .store
                .delete_resource(workspace, &resource.id, at)
                .await;
            deleted.map(drop).map_err(refusal)
        }
    }
}

async fn create(
    state: &AppState,
    workspace: &WorkspaceId,
    customer_id: CustomerId,
    at: jiff::Timestamp,
    data: ResourceEventData,
) -> Result<(), Refusal> {
    if data.resource_id.is_some() {
        return Err(Refusal::of(
            "data",
            "resource_id: billow makes a new resource's id; name it by external_id",
        ));
    }
    let Some(external_id) = data.external_id else {
        return Err(Refusal::of(
            "data",
            "external_id: is required, so that a retried event is recognized",
        ));
    };
    let existing = state
        .store
        .resource_by_external_id(workspace, &external_id)
        .await
        .map_err(|error| Refusal::Internal(ApiError::internal(error)))?;
    if let Some(existing) = existing {
        if existing.customer_id == customer_id {
            return Ok(());
        }
        return Err(Refusal::of(
            "data",
            "external_id: names a resource of another customer",
        ));
    }
    let Some(plan) = data.plan else {
        return Err(Refusal::of("data", "plan: is required"));
    };
    let body = CreateResource {
        customer_id: customer_id.into(),
        plan,
        quantity: data.quantity,
        project_id: data.project_id,
        kind: data.kind,
        name: data.name,
        dimensions: data.dimensions,
        external_id: Some(external_id),
        created_at: Some(at),
        deleted_at: None,
    };
    super::insert_new_resource(state, workspace, body).await?;
    Ok(())
}

/// The customer `subject` names, by id or external id.
async fn customer_of(
    state: &AppState,
    workspace: &WorkspaceId,
    subject: &str,
) -> Result<CustomerId, Refusal> {
    let internal = |error| Refusal::Internal(ApiError::internal(error));
    if let Some(customer) = state
        .store
        .customer(workspace, subject)
        .await
        .map_err(internal)?
    {
        return Ok(customer.id);
    }
    let by_external_id = state
        .store
        .customer_by_external_id(workspace, subject)
        .await
        .map_err(internal)?;
    by_external_id.map(|customer| customer.id).ok_or_else(|| {
        Refusal::of(
            "subject",
            "no customer of this workspace has this id or external id",
        )
    })
}

/// The resource `data` names (by `resource_id` or `external_id`), which must be the customer's.
async fn resource_of(
    state: &AppState,
    workspace: &WorkspaceId,
    customer_id: &str,
    data: &ResourceEventData,
) -> Result<ResourceRecord, Refusal> {
    let internal = |error| Refusal::Internal(ApiError::internal(error));
    let found = match (&data.resource_id, &data.external_id) {
        (Some(id), None) => state
            .store
            .resource(workspace, id)
            .await
            .map_err(internal)?,
        (None, Some(external_id)) => state
            .store
            .resource_by_external_id(workspace, external_id)
            .await
            .map_err(internal)?,
        _ => {
            return Err(Refusal::of(
                "data",
                "names the resource by exactly one of resource_id and external_id",
            ))
        }
    };
    let resource = found.ok_or_else(|| {
        Refusal::of(
            "data",
            "no resource of this workspace has this id or external id",
        )
    })?;
    if resource.customer_id != customer_id {
        return Err(Refusal::of(
            "subject",
            "the resource belongs to another customer",
        ));
    }
    Ok(resource)
}

/// A refused change as the event's error: the instant is the event's `time`, the rest `data`.
fn refusal(error: ChangeResourceError) -> Refusal {
    match error {
        ChangeResourceError::NotFound => {
            Refusal::of("data", "no resource of this workspace has this id")
        }
        ChangeResourceError::Refused(error) => {
            let field = match error {
                CheckResourceError::DeletedBeforeCreated { .. }
                | CheckResourceError::DeletedBeforeLastChange { .. }
                | CheckResourceError::ChangeBeforeCreated { .. }
                | CheckResourceError::ChangeBeforeLastChange { .. }
                | CheckResourceError::ChangeAfterDeleted { .. } => "time",
                CheckResourceError::NegativeQuantity { .. }
                | CheckResourceError::AlreadyDeleted { .. }
                | CheckResourceError::TooManyChanges { .. } => "data",
            };
            Refusal::of(field, error.to_string())
        }
        ChangeResourceError::Store(error) => Refusal::Internal(ApiError::internal(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_lifecycle_types_are_resource_events() {
        assert_eq!(
            Lifecycle::of("billow.resource.created"),
            Some(Lifecycle::Created)
        );
        assert_eq!(
            Lifecycle::of("billow.resource.quantity"),
            Some(Lifecycle::Quantity)
        );
        assert_eq!(
            Lifecycle::of("billow.resource.deleted"),
            Some(Lifecycle::Deleted)
        );
        assert_eq!(Lifecycle::of("billow.resource.moved"), None);
        assert_eq!(Lifecycle::of("api.request"), None);
    }
}
