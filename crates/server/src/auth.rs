//! Who is calling: Bearer credentials turned into a [`Principal`], and the extractors handlers use.
//!
//! - `Authorization: Bearer bk_…`: a workspace API key, [`Principal::Workspace`].
//! - `Authorization: Bearer bct_…`: a customer-scoped token, [`Principal::Customer`]; it may read
//!   only its own customer's data.
//!
//! [`require_principal`] runs in front of every `/api/v1` route: a missing, unknown, revoked or
//! expired credential is a 401 problem before any handler runs, so a route cannot be left open by
//! forgetting an extractor. Handlers then take [`WorkspaceAuth`] (workspace keys only: a customer
//! token gets 403) or [`Principal`] (either, and the handler checks the customer with
//! [`Principal::can_read_customer`], answering 404 for another customer's resources).
//!
//! Secrets are never compared or logged: the presented value is hashed and looked up by hash
//! (see `billow_store::CredentialHash`).

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use billow_store::{CredentialHash, CredentialKind, Store, WorkspaceId};

use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a request, established from its Bearer credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A workspace API key: everything in the workspace.
    Workspace { workspace_id: WorkspaceId },
    /// A customer-scoped token: only that customer's data, read-only.
    Customer {
        workspace_id: WorkspaceId,
        customer_id: String,
    },
}

impl Principal {
    /// The workspace every query of this request is scoped to.
    pub fn workspace_id(&self) -> &WorkspaceId {
        match self {
            Self::Workspace { workspace_id } | Self::Customer { workspace_id, .. } => workspace_id,
        }
    }

    /// Whether this caller may see the customer `customer_id` (of its own workspace): a workspace
    /// key sees every customer, a customer token only its own.
    pub fn can_read_customer(&self, customer_id: &str) -> bool {
        match self {
            Self::Workspace { .. } => true,
            Self::Customer {
                customer_id: own, ..
            } => own == customer_id,
        }
    }

    /// The customer a customer token is limited to, or `None` for a workspace key.
    pub fn customer_id(&self) -> Option<&str> {
        match self {
            Self::Workspace { .. } => None,
            Self::Customer { customer_id, .. } => Some(customer_id),
        }
    }
}

/// A request made with a workspace API key. A customer token is refused with 403.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceAuth {
    pub workspace_id: WorkspaceId,
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Set by `require_principal` when the route is behind it; resolved here otherwise.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let state = AppState::from_ref(state);
        let principal = authenticate(&state, parts).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

impl<S> FromRequestParts<S> for WorkspaceAuth
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Workspace { workspace_id } => Ok(Self { workspace_id }),
            Principal::Customer { .. } => Err(ApiError::Forbidden),
        }
    }
}

/// Middleware: refuses a request without a valid credential with 401, and keeps the
/// [`Principal`] in the request's extensions for the extractors and the idempotency layer.
pub async fn require_principal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let principal = authenticate(&state, &parts).await?;
    parts.extensions.insert(principal);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Middleware of the platform profiles' routes: keeps a valid credential's [`Principal`] in the
/// request's extensions (for the idempotency layer and the handlers' extractors), and lets a
/// request without one through: each profile answers its 401 in its platform's shape.
pub async fn resolve_principal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Ok(principal) = authenticate(&state, &parts).await {
        parts.extensions.insert(principal);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Says, once at start, how to make the first API key when there is none: without one, every
/// `/api/v1` request is refused.
pub async fn log_when_no_api_key_exists(store: &Store) {
    match store.any_api_key_exists().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "no API key exists yet: create one with `billow keys create --workspace NAME` \
             (same --data or DATABASE_URL as serve); every /api/v1 request needs one"
        ),
        Err(error) => tracing::warn!(
            error.message = %error,
            error.cause_chain = ?error,
            "could not tell whether an API key exists"
        ),
    }
}

/// The principal of the request's Bearer credential.
async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let secret = bearer_secret(parts).ok_or(ApiError::Unauthenticated)?;
    let hash = CredentialHash::of(secret);
    let store = &state.store;
    let principal = match CredentialKind::of_secret(secret) {
        Some(CredentialKind::ApiKey) => store
            .api_key_workspace(&hash)
            .await
            .map_err(ApiError::internal)?
            .map(|workspace_id| Principal::Workspace { workspace_id }),
        Some(CredentialKind::CustomerToken) => store
            .customer_token_owner(&hash, state.clock.now())
            .await
            .map_err(ApiError::internal)?
            .map(|owner| Principal::Customer {
                workspace_id: owner.workspace_id,
                customer_id: owner.customer_id.into(),
            }),
        None => None,
    };
    principal.ok_or(ApiError::Unauthenticated)
}

/// The credential of an `Authorization: Bearer <secret>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_secret(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;

    fn parts_with(authorization: Option<&str>) -> Parts {
        let mut builder = HttpRequest::builder().uri("/api/v1/customers");
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_bearer_secret_is_read_with_any_scheme_case() {
        assert_eq!(
            bearer_secret(&parts_with(Some("Bearer bk_1"))),
            Some("bk_1")
        );
        assert_eq!(
            bearer_secret(&parts_with(Some("bearer  bk_1 "))),
            Some("bk_1")
        );
    }

    #[test]
    fn other_schemes_and_empty_secrets_are_no_credential() {
        assert_eq!(bearer_secret(&parts_with(None)), None);
        assert_eq!(bearer_secret(&parts_with(Some("Basic YTpi"))), None);
        assert_eq!(bearer_secret(&parts_with(Some("Bearer "))), None);
        assert_eq!(bearer_secret(&parts_with(Some("Bearer"))), None);
    }

    #[test]
    fn a_customer_principal_reads_only_its_own_customer() {
        let workspace_id = WorkspaceId::parse("ws_a").unwrap();
        let customer = Principal::Customer {
            workspace_id: workspace_id.clone(),
            customer_id: "cus_1".into(),
        };
        let workspace = Principal::Workspace { workspace_id };

        assert!(customer.can_read_customer("cus_1"));
        assert!(!customer.can_read_customer("cus_2"));
        assert!(workspace.can_read_customer("cus_2"));
    }
}
