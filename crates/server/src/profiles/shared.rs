//! What the profiles share: errors in each platform's shape, the customer a path names, the
//! router type that carries OpenAPI paths.

use std::marker::PhantomData;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use billow_store::Customer;
use jiff::fmt::temporal::DateTimePrinter;
use jiff::Timestamp;
use serde_json::Value;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// A profile's routes with their OpenAPI paths: they join the native API's document (under a
/// tag of the profile's name), without its layers (auth, idempotency) and its problem bodies.
pub(crate) type ProfileRouter = utoipa_axum::router::OpenApiRouter<AppState>;

/// JavaScript's `Date.prototype.toISOString`, which the platforms' Node.js services write:
/// UTC with milliseconds (`2017-02-01T00:00:00.000Z`).
pub(crate) fn javascript_iso(instant: Timestamp) -> String {
    const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(3));
    PRINTER.timestamp_to_string(&instant)
}

/// How a platform writes an error body.
pub(crate) trait ErrorShape {
    /// The body of an error answered with `status`, saying `message`.
    fn body(status: StatusCode, message: &str) -> Value;

    /// The whole answer: [`ErrorShape::body`] as JSON, unless the platform answers otherwise
    /// (Akkeris writes the message alone, as text).
    fn response(status: StatusCode, message: &str) -> Response {
        (status, axum::Json(Self::body(status, message))).into_response()
    }
}

/// An error of a profile's route, answered in the profile's shape `S`. Made from the native
/// [`ApiError`]: the same statuses, the same logging of server errors (whose cause is never
/// sent), another body.
pub(crate) struct ProfileError<S> {
    status: StatusCode,
    message: String,
    shape: PhantomData<S>,
}

impl<S> ProfileError<S> {
    /// An error with its own status and message.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            shape: PhantomData,
        }
    }
}

impl<S> From<ApiError> for ProfileError<S> {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        if status.is_server_error() {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "request failed");
        }
        Self::new(status, error.to_problem().detail)
    }
}

impl<S: ErrorShape> IntoResponse for ProfileError<S> {
    fn into_response(self) -> Response {
        let mut response = S::response(self.status, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"billow\""),
            );
        }
        response
    }
}

/// The customer a profile's path names, by billow's id (`cus_…`) or by its external id, if the
/// caller may read it; a 404 naming `resource` otherwise (also for another customer's token, so
/// that ids cannot be probed).
pub(crate) async fn named_customer(
    state: &AppState,
    principal: &Principal,
    resource: &'static str,
    id: &str,
) -> Result<Customer, ApiError> {
    let not_found = || ApiError::NotFound {
        resource,
        id: id.to_owned(),
    };
    // No stored id or external id holds U+0000 (the native API refuses it); PostgreSQL would
    // refuse the query.
    if id.contains('\0') {
        return Err(not_found());
    }
    let workspace = principal.workspace_id();
    let by_id = state
        .store
        .customer(workspace, id)
        .await
        .map_err(ApiError::internal)?;
    let customer = match by_id {
        Some(customer) => Some(customer),
        None => state
            .store
            .customer_by_external_id(workspace, id)
            .await
            .map_err(ApiError::internal)?,
    };
    customer
        .filter(|customer| principal.can_read_customer(customer.id.as_str()))
        .ok_or_else(not_found)
}
