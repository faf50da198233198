//! Probes for orchestrators: liveness (`/healthz`) and readiness (`/readyz`).

use axum::extract::State;

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up and serving HTTP. Touches nothing else, so that a slow database does not get
/// a healthy node restarted.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The node can serve requests: its database answers, and its writes have not just failed for lack
/// of disk space (`crate::storage`).
#[tracing::instrument(skip_all)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.storage.check(state.clock.now())?;
    state
        .store
        .ping()
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok("ok")
}
