//! The platform API profiles: the billing APIs of the platforms billow serves, path for path
//! and field for field (`docs/profiles/`), so that a console written against one of them works
//! against billow by changing its base URL.
//!
//! Each profile is a folder with its routes and its wire types: a mapping from the domain (the
//! store's customers, invoices, payments; amounts as the core computed them) to the platform's
//! shapes, with no billing logic and no queries of its own beyond what the store offers. What a
//! profile needs that the domain does not hold is added to the domain (a customer's `owner`, an
//! invoice's `updated_at`), never computed or made up in the profile.
//!
//! What the profiles share: the Bearer credential of the native API (a workspace key sees every
//! customer of its workspace, a customer token only its own customer, and gets the platform's
//! not-found for any other), customers named by billow's id or by their external id (the id the
//! platform knows), and errors written in each platform's own shape ([`ErrorShape`]).

pub(crate) mod akkeris;
pub(crate) mod emcp;

use std::marker::PhantomData;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use billow_store::Customer;
use jiff::fmt::temporal::DateTimePrinter;
use jiff::Timestamp;
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Which profiles `billow serve` answers; all by default. A profile switched off answers 404 on
/// its paths, as any unknown path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profiles {
    /// Enclaive EMCP: `/api/teams/{id}/last-invoice`, `/api/teams/{id}/billing-history`.
    pub emcp: bool,
    /// Akkeris: `/account/invoices`, `/organizations/{org}/invoices`, `/spaces/{space}/invoices`
    /// (and the seed's singular forms), each with `/{invoice_id}`.
    pub akkeris: bool,
}

impl Default for Profiles {
    fn default() -> Self {
        Self::all()
    }
}

impl Profiles {
    /// Every profile on.
    pub const fn all() -> Self {
        Self {
            emcp: true,
            akkeris: true,
        }
    }

    /// Every profile off: the native API alone.
    pub const fn none() -> Self {
        Self {
            emcp: false,
            akkeris: false,
        }
    }

    /// The profiles' names, as `--profiles` takes them.
    pub const NAMES: [&'static str; 2] = ["emcp", "akkeris"];

    /// The profiles a comma-separated list names (`emcp,akkeris`; `all`; `none`).
    ///
    /// # Errors
    /// The first name that is no profile's.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut profiles = Self::none();
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "all" => profiles = Self::all(),
                "none" => profiles = Self::none(),
                "emcp" => profiles.emcp = true,
                "akkeris" => profiles.akkeris = true,
                other => {
                    return Err(format!(
                        "no profile is named {other:?}; the profiles are {} (or all, none)",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(profiles)
    }
}

/// The routes of the profiles `profiles` switches on.
pub(crate) fn router(profiles: Profiles) -> Router<AppState> {
    let mut router = Router::new();
    if profiles.emcp {
        router = router.merge(emcp::router());
    }
    if profiles.akkeris {
        router = router.merge(akkeris::router());
    }
    router
}

/// What answers a request no route takes: a profile's path written in another case (Akkeris
/// matches its paths case-insensitively: `/Account/Invoices` is `/account/invoices`), served by
/// that profile's routes; otherwise the native 404. Requests written as routed never come here,
/// so folding costs nothing to them.
pub(crate) async fn unrouted(State(state): State<AppState>, mut request: Request) -> Response {
    if state.profiles.akkeris {
        if let Some(folded) = akkeris::fold_case(request.uri()) {
            *request.uri_mut() = folded;
            let routes = akkeris::router().with_state(state);
            return match routes.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
    }
    crate::routes::fallback::route_not_found(request.method().clone(), request.uri().clone())
        .await
        .into_response()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_names_switches_profiles_on() {
        assert_eq!(Profiles::parse("emcp,akkeris").unwrap(), Profiles::all());
        assert_eq!(
            Profiles::parse("akkeris").unwrap(),
            Profiles {
                emcp: false,
                akkeris: true
            }
        );
        assert_eq!(Profiles::parse("none").unwrap(), Profiles::none());
        assert_eq!(Profiles::parse("").unwrap(), Profiles::none());
        assert_eq!(Profiles::parse(" all ").unwrap(), Profiles::all());
        let error = Profiles::parse("emcp,stripe").unwrap_err();
        assert!(error.contains("\"stripe\""), "{error}");
    }
}
