//! [`ApiError`]: every error the API returns, rendered as RFC 9457 `application/problem+json`.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use billow_store::PingStoreError;
use serde::Serialize;

/// The media type of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `Retry-After` of a 503 `storage-full`, and how long `/readyz` reports not-ready after a
/// write failed for lack of space unless a write succeeds first ([`crate::storage`]).
pub const STORAGE_FULL_RETRY_AFTER_SECONDS: u64 = 30;

/// An error answered to an API client.
///
/// Each variant has a stable problem `type`, which clients may match on; the `detail` of a 5xx
/// never carries the underlying error, which is logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the request's path.
    #[error("no route for {method} {}", uri.path())]
    RouteNotFound { method: Method, uri: Uri },
    /// A route matches the path but not the method.
    #[error("{method} is not allowed on {}", uri.path())]
    MethodNotAllowed { method: Method, uri: Uri },
    /// The database does not answer.
    #[error("the store is unavailable")]
    StoreUnavailable(#[source] PingStoreError),
    /// No credential, or one that is unknown, revoked or expired.
    #[error("no valid credential")]
    Unauthenticated,
    /// A valid credential that may not use this route: a customer token on a workspace route.
    #[error("the credential may not use this route")]
    Forbidden,
    /// The resource does not exist, or belongs to another workspace or customer: the two are not
    /// told apart, so that ids of other tenants cannot be probed.
    #[error("no {resource} {id}")]
    NotFound { resource: &'static str, id: String },
    /// The body is not JSON, or not JSON of the declared media type.
    #[error("the body is not valid JSON")]
    MalformedJson { detail: String },
    /// The body is JSON but some fields are missing or invalid.
    #[error("{} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// The request conflicts with the state of a resource (e.g. a unique field is taken).
    #[error("conflict: {detail}")]
    Conflict {
        problem: ConflictProblem,
        detail: String,
    },
    /// A field's value must be unique in the workspace and is taken (a coupon's code): a 409
    /// `already-exists` that names the field.
    #[error("{field} is taken: {detail}")]
    Taken { field: &'static str, detail: String },
    /// The body is larger than the server accepts.
    #[error("the body exceeds {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// A JSON route was sent a body of another media type.
    #[error("the body's media type {content_type} is not JSON")]
    UnsupportedMediaType { content_type: String },
    /// The request's body did not arrive within the server's time for it.
    #[error("the body did not arrive within {timeout_seconds} s")]
    RequestTimeout { timeout_seconds: u64 },
    /// The `Idempotency-Key` was used before with another request.
    #[error("the idempotency key was used with another request")]
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is still being processed.
    #[error("a request with the same idempotency key is in flight")]
    IdempotencyKeyInFlight,
    /// The database cannot write for lack of disk space (SQLite's `SQLITE_FULL`, PostgreSQL's
    /// SQLSTATE 53100): a 503 with `Retry-After`, since it ends once space is freed. The cause
    /// is that of a failed write; `None` when `/readyz` reports the state ([`crate::storage`]).
    #[error("the database is out of disk space")]
    StorageFull(#[source] Option<Box<dyn std::error::Error + Send + Sync>>),
    /// Anything else that went wrong on the server's side; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which kind of conflict a [`ApiError::Conflict`] is, each with its own stable problem type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictProblem {
    /// Another resource already has a value that must be unique (`urn:billow:problem:already-exists`).
    AlreadyExists,
    /// The resource is in a state that does not allow the operation (`urn:billow:problem:invalid-state`).
    InvalidState,
}

/// One invalid input field of a 422 problem: `field` is a JSON path such as `address.country` or
/// `tax_ids[1].value`, or a query parameter name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, reason)])
    }

    /// A 500 whose cause is logged; a 503 [`ApiError::StorageFull`] when the cause is a write
    /// that failed for lack of disk space.
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        if billow_store::is_storage_full(&error) {
            return Self::StorageFull(Some(Box::new(error)));
        }
        Self::Internal(Box::new(error))
    }
}

/// A problem details object (RFC 9457 §3.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI that identifies the problem type. billow's are `urn:billow:problem:<slug>`:
    /// absolute, stable, and not meant to be dereferenced (RFC 9457 §3.1.1).
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    /// A short summary of the problem type, the same for every occurrence.
    pub title: &'static str,
    /// The HTTP status code of this occurrence.
    pub status: u16,
    /// What went wrong in this occurrence, for a human reader.
    pub detail: String,
    /// For validation problems: every invalid field, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) | Self::StorageFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MalformedJson { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } | Self::Taken { .. } | Self::IdempotencyKeyInFlight => {
                StatusCode::CONFLICT
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem details sent to the client.
    pub fn to_problem(&self) -> Problem {
        let (problem_type, title) = match self {
            Self::RouteNotFound { .. } => ("urn:billow:problem:not-found", "Not found"),
            Self::MethodNotAllowed { .. } => (
                "urn:billow:problem:method-not-allowed",
                "Method not allowed",
            ),
            Self::StoreUnavailable(_) => {
                ("urn:billow:problem:store-unavailable", "Store unavailable")
            }
            Self::Unauthenticated => ("urn:billow:problem:unauthenticated", "Unauthenticated"),
            Self::Forbidden => ("urn:billow:problem:forbidden", "Forbidden"),
            Self::NotFound { .. } => ("urn:billow:problem:not-found", "Not found"),
            Self::MalformedJson { .. } => ("urn:billow:problem:malformed-json", "Malformed JSON"),
            Self::Validation(_) => ("urn:billow:problem:validation", "Invalid request"),
            Self::Conflict {
                problem: ConflictProblem::AlreadyExists,
                ..
            }
            | Self::Taken { .. } => ("urn:billow:problem:already-exists", "Already exists"),
            Self::Conflict {
                problem: ConflictProblem::InvalidState,
                ..
            } => ("urn:billow:problem:invalid-state", "Invalid state"),
            Self::PayloadTooLarge { .. } => {
                ("urn:billow:problem:payload-too-large", "Payload too large")
            }
            Self::RequestTimeout { .. } => {
                ("urn:billow:problem:request-timeout", "Request timeout")
            }
            Self::UnsupportedMediaType { .. } => (
                "urn:billow:problem:unsupported-media-type",
                "Unsupported media type",
            ),
            Self::IdempotencyKeyReused => (
                "urn:billow:problem:idempotency-key-reused",
                "Idempotency key reused",
            ),
            Self::IdempotencyKeyInFlight => (
                "urn:billow:problem:idempotency-key-in-flight",
                "Idempotency key in flight",
            ),
            Self::StorageFull(_) => ("urn:billow:problem:storage-full", "Storage full"),
            Self::Internal(_) => ("urn:billow:problem:internal", "Internal error"),
        };
        let detail = match self {
            Self::RouteNotFound { method, uri } => {
                format!("No route matches {method} {}.", uri.path())
            }
            Self::MethodNotAllowed { method, uri } => {
                format!("{} does not accept {method}.", uri.path())
            }
            Self::StoreUnavailable(_) => "The database does not answer; see the server log.".into(),
            Self::Unauthenticated => "Send a valid key as `Authorization: Bearer bk_…` (or a \
                                      customer token, `Bearer bct_…`)."
                .into(),
            Self::Forbidden => "This route needs a workspace API key.".into(),
            Self::NotFound { resource, id } => format!("No {resource} has the id {id}."),
            Self::MalformedJson { detail } => detail.clone(),
            Self::Validation(errors) => match errors.as_slice() {
                [only] => format!("{}: {}", only.field, only.reason),
                _ => format!("{} fields are invalid; see errors.", errors.len()),
            },
            Self::Conflict { detail, .. } | Self::Taken { detail, .. } => detail.clone(),
            Self::PayloadTooLarge { limit_bytes } => {
                format!("The body exceeds the limit of {limit_bytes} bytes.")
            }
            Self::UnsupportedMediaType { content_type } => format!(
                "The body is {content_type}; this route takes JSON (`Content-Type: \
                 application/json`)."
            ),
            Self::RequestTimeout { timeout_seconds } => format!(
                "The body did not arrive within {timeout_seconds} s of the request's head; send it \
                 faster, or in smaller requests."
            ),
            Self::IdempotencyKeyReused => "This Idempotency-Key was already used with another \
                                           request (method, path or body); use a new key."
                .into(),
            Self::IdempotencyKeyInFlight => "A request with this Idempotency-Key is still being \
                                             processed; retry later."
                .into(),
            Self::StorageFull(_) => format!(
                "The database cannot write for lack of disk space; retry after \
                 {STORAGE_FULL_RETRY_AFTER_SECONDS} s."
            ),
            Self::Internal(_) => "Something went wrong on the server; see the server log.".into(),
        };
        let errors = match self {
            Self::Validation(errors) => errors.clone(),
            Self::Taken { field, .. } => vec![FieldError::new(
                *field,
                "is taken by another resource of this workspace",
            )],
            _ => Vec::new(),
        };
        Problem {
            problem_type,
            title,
            status: self.status().as_u16(),
            detail,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // `/readyz` repeating the state is not a failure of its own.
        if status.is_server_error() && !matches!(self, Self::StorageFull(None)) {
            tracing::error!(error.message = %self, error.cause_chain = ?self, "request failed");
        }
        let body = match serde_json::to_vec(&self.to_problem()) {
            Ok(body) => body,
            Err(error) => unreachable!("a Problem always serializes: {error}"),
        };
        let content_type = HeaderValue::from_static(PROBLEM_JSON);
        let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if let Self::StorageFull(failed_write) = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(STORAGE_FULL_RETRY_AFTER_SECONDS),
            );
            if failed_write.is_some() {
                // For crate::storage::track_storage, which makes /readyz report it.
                response.extensions_mut().insert(WriteFailedForSpace);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"billow\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_not_found_names_the_method_and_path_but_not_the_query() {
        let error = ApiError::RouteNotFound {
            method: Method::GET,
            uri: "/nowhere?token=secret".parse().unwrap(),
        };

        let problem = error.to_problem();

        assert_eq!(problem.status, 404);
        assert_eq!(problem.problem_type, "urn:billow:problem:not-found");
        assert_eq!(problem.detail, "No route matches GET /nowhere.");
    }
}

/// Marks a response whose request failed to write for lack of disk space, for
/// `crate::storage::track_storage`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteFailedForSpace;
