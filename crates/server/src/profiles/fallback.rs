//! The router's fallback, which serves a profile's path written in another case.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::akkeris;
use crate::state::AppState;

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
