//! Whether the database can write, as `/readyz` reports it: not while writes fail for lack of
//! disk space.
//!
//! A write that fails with SQLite's `SQLITE_FULL` or PostgreSQL's SQLSTATE 53100 is answered
//! 503 `storage-full` with `Retry-After` ([`crate::ApiError::StorageFull`]), and marks the response with
//! `WriteFailedForSpace`; `track_storage` sees the mark and makes `/readyz` answer 503 for
//! `STORAGE_FULL_RETRY_AFTER_SECONDS` (30 s), so that a load balancer sends requests elsewhere. It
//! recovers by itself: the next successful write clears the state at once, and without one it
//! ends after that time (then a write that fails again sets it again). No probe write is made:
//! a small write can succeed in space SQLite already holds while real ones fail.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::WriteFailedForSpace;
use crate::state::AppState;

pub mod health;

pub use health::StorageHealth;

/// Middleware: records writes that failed for lack of space, and writes that succeeded.
pub(crate) async fn track_storage(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if response.extensions().get::<WriteFailedForSpace>().is_some() {
        state.storage.write_failed(state.clock.now());
    } else if writes && response.status().is_success() {
        state.storage.write_succeeded();
    }
    response
}
