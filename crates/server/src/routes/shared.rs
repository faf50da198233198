//! What the billing routes share: store errors as problems, new ids, the customer guard.

use billow_store::BillingStoreError;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::{ApiError, ConflictProblem};

/// A billing store error as the problem a client gets, `resource`/`id` naming what was asked for.
pub(crate) fn store_error(
    resource: &'static str,
    id: &str,
) -> impl FnOnce(BillingStoreError) -> ApiError {
    let id = id.to_owned();
    move |error| {
        match error {
        BillingStoreError::Duplicate => ApiError::Conflict {
            problem: ConflictProblem::AlreadyExists,
            detail: format!("A {resource} with this key already exists."),
        },
        BillingStoreError::NotFound => ApiError::NotFound { resource, id },
        BillingStoreError::Immutable => ApiError::Conflict {
            problem: ConflictProblem::InvalidState,
            detail: format!("The {resource} {id} is finalized or in a state that does not allow this."),
        },
        BillingStoreError::Transition { from, to } => ApiError::Conflict {
            problem: ConflictProblem::InvalidState,
            detail: format!(
                "The payment of {resource} {id} is {from}: it cannot become {to}."
            ),
        },
        BillingStoreError::Exceeds {
            requested_minor,
            available_minor,
        } => ApiError::invalid(
            "lines",
            format!(
                "credits {requested_minor} minor units, but only {available_minor} are left to credit on the invoice"
            ),
        ),
        other => ApiError::internal(other),
    }
    }
}

/// The body as a JSON object, or a 422.
pub(crate) fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::invalid(".", "the body must be a JSON object")),
    }
}

/// Takes the string member `field` out of `object`: required, non-empty.
pub(crate) fn take_string(
    object: &mut Map<String, Value>,
    field: &str,
) -> Result<String, ApiError> {
    match object.remove(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(_) => Err(ApiError::invalid(field, "must be a non-empty string")),
        None => Err(ApiError::invalid(field, "is required")),
    }
}

/// A 404 unless the caller may read the customer's data (a customer token reads only its own).
pub(crate) fn guard_customer(principal: &Principal, customer_id: &str) -> Result<(), ApiError> {
    if principal.can_read_customer(customer_id) {
        Ok(())
    } else {
        Err(ApiError::NotFound {
            resource: "customer",
            id: customer_id.to_owned(),
        })
    }
}

/// The customer a list is about: the one asked for (`customer_id`), or the one a customer token
/// is for. A customer token asking for another customer's list gets a 404, as that customer's
/// own routes answer it, never its own data instead.
pub(crate) fn listed_customer(
    principal: &Principal,
    asked: Option<String>,
) -> Result<Option<String>, ApiError> {
    match (asked, principal.customer_id()) {
        (Some(asked), _) => {
            guard_customer(principal, &asked)?;
            Ok(Some(asked))
        }
        (None, own) => Ok(own.map(str::to_owned)),
    }
}
