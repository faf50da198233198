//! Checks of what a request is about to store, with the billing core's validation: a new spec
//! is put into a scenario document ([`validation_document`]) and the core's error, a path in that
//! document, becomes a 422 naming the request's field ([`scenario_error`]).

use billow_billing::RunBillingError;
use billow_core::scenario::{Scenario, ScenarioError, World, SCENARIO_FORMAT_VERSION};
use billow_core::Currency;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, FieldError};

/// A document for checking one new spec with the core's validation: a UTC customer billed in
/// `currency`, the workspace's `meters`, and the given members.
pub(crate) fn validation_document(
    currency: Currency,
    meters: &[billow_core::Meter],
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
pub(crate) fn validate_document(document: &Value, prefix: &str) -> Result<World, ApiError> {
    Scenario::from_json(&document.to_string())
        .map(|scenario| scenario.world)
        .map_err(|error| scenario_error(&error, prefix))
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
    ApiError::Validation(vec![FieldError::new(
        field,
        crate::json::in_our_words(reason),
    )])
}

/// A spec of a request read as the billing core's type `T`; an error is a 422 naming the field.
pub(crate) fn read_spec<T: serde::de::DeserializeOwned>(spec: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(spec).map_err(|error| {
        let malformed = ScenarioError::Malformed {
            path: error.path().to_string(),
            message: error.inner().to_string(),
        };
        scenario_error(&malformed, "")
    })
}

/// A billing failure as the problem a client gets: a stored world the billing core rejects is a
/// 422 naming the field as a path of its scenario document; anything else is a 500 whose detail
/// is logged, not sent.
impl From<RunBillingError> for ApiError {
    fn from(error: RunBillingError) -> Self {
        match error {
            RunBillingError::World { source, .. } => scenario_error(&source, ""),
            other => ApiError::internal(other),
        }
    }
}

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
