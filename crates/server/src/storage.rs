//! Whether the database can write, as `/readyz` reports it: not while writes fail for lack of
//! disk space.
//!
//! A write that fails with SQLite's `SQLITE_FULL` or PostgreSQL's SQLSTATE 53100 is answered
//! 503 `storage-full` with `Retry-After` ([`ApiError::StorageFull`]), and marks the response with
//! `WriteFailedForSpace`; `track_storage` sees the mark and makes `/readyz` answer 503 for
//! `STORAGE_FULL_RETRY_AFTER_SECONDS` (30 s), so that a load balancer sends requests elsewhere. It
//! recovers by itself: the next successful write clears the state at once, and without one it
//! ends after that time (then a write that fails again sets it again). No probe write is made:
//! a small write can succeed in space SQLite already holds while real ones fail.

use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};

use crate::error::{ApiError, STORAGE_FULL_RETRY_AFTER_SECONDS};
use crate::state::AppState;

/// Marks a response whose request failed to write for lack of disk space.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteFailedForSpace;

/// Until when the database is taken to be out of space.
#[derive(Debug, Default)]
pub struct StorageHealth {
    full_until: Mutex<Option<Timestamp>>,
}

impl StorageHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Timestamp>> {
        self.full_until
            .lock()
            .expect("never poisoned: no code panics under it")
    }

    /// A write failed for lack of space at `now`.
    fn write_failed(&self, now: Timestamp) {
        let hold = SignedDuration::from_secs(
            i64::try_from(STORAGE_FULL_RETRY_AFTER_SECONDS).expect("a small constant"),
        );
        *self.lock() = Some(now.saturating_add(hold).expect("a duration, not a span"));
    }

    /// A write succeeded: there is space again.
    fn write_succeeded(&self) {
        *self.lock() = None;
    }

    /// `Err` with a 503 `storage-full` while a recent write failed for lack of space.
    ///
    /// # Errors
    ///
    /// [`ApiError::StorageFull`] until the state ends.
    pub fn check(&self, now: Timestamp) -> Result<(), ApiError> {
        match *self.lock() {
            Some(until) if now < until => Err(ApiError::StorageFull(None)),
            _ => Ok(()),
        }
    }
}

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
