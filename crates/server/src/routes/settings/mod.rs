//! `/api/v1/workspace/settings`: the workspace's billing settings: `rounding`, how
//! every invoice computed after a change (drafts, upcoming invoices, previews, billing runs)
//! rounds amounts to the minor unit. A finalized invoice keeps the rounding it was computed
//! with (its `rounding`), so changing the setting never changes it; and `net_days`, the
//! payment terms of customers that set none (an invoice is due `net_days` after it is
//! finalized; one finalized before a change keeps its due date).
//!
//! Workspace keys only: a customer token is refused with 403, as on every workspace route.

mod wire;

use axum::extract::State;
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::state::AppState;
use wire::{SettingsBody, UpdateSettings};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// The workspace's billing settings.
#[utoipa::path(get, path = "/api/v1/workspace/settings", tag = "billing",
    responses((status = 200, description = "The settings", body = SettingsBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id))]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
) -> Result<ApiJson<SettingsBody>, ApiError> {
    let settings = state
        .store
        .workspace_settings(&auth.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(settings.into()))
}

/// Changes the workspace's billing settings. They apply to every invoice computed afterwards;
/// finalized invoices never change.
#[utoipa::path(patch, path = "/api/v1/workspace/settings", tag = "billing",
    request_body(content = UpdateSettings, content_type = "application/json", description = "The settings to change"),
    responses((status = 200, description = "The settings", body = SettingsBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (`rounding`, `net_days`)", body = Problem, content_type = "application/problem+json")))]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id))]
pub(crate) async fn update_settings(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<UpdateSettings>,
) -> Result<ApiJson<SettingsBody>, ApiError> {
    let store = &state.store;
    // Both checked before either is written: a request is applied whole or not at all.
    let net_days = body.net_days()?;
    let rounding = body.rounding()?;
    if let Some(days) = net_days {
        store
            .set_workspace_net_days(&auth.workspace_id, days, state.clock.now())
            .await
            .map_err(ApiError::internal)?;
    }
    let settings = match rounding {
        Some(rounding) => store
            .set_workspace_rounding(&auth.workspace_id, rounding, state.clock.now())
            .await
            .map_err(ApiError::internal)?,
        None => store
            .workspace_settings(&auth.workspace_id)
            .await
            .map_err(ApiError::internal)?,
    };
    Ok(ApiJson(settings.into()))
}
