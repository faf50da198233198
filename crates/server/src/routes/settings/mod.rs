//! `/api/v1/workspace/settings`: the workspace's billing settings: `rounding`, how
//! every invoice computed after a change (drafts, upcoming invoices, previews, billing runs)
//! rounds amounts to the minor unit. A finalized invoice keeps the rounding it was computed
//! with (its `rounding`), so changing the setting never changes it; and `net_days`, the
//! payment terms of customers that set none (an invoice is due `net_days` after it is
//! finalized; one finalized before a change keeps its due date).
//!
//! Workspace keys only: a customer token is refused with 403, as on every workspace route.

use axum::extract::State;
use billow_core::RoundingMode;
use billow_store::billing::WorkspaceSettings;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::state::AppState;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// How amounts are rounded to the currency's minor unit, line by line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Rounding {
    /// Ties away from zero: 0.125 → 0.13 (the default).
    HalfUp,
    /// Ties to the even neighbour (banker's rounding): 0.125 → 0.12.
    HalfEven,
}

impl From<RoundingMode> for Rounding {
    fn from(rounding: RoundingMode) -> Self {
        match rounding {
            RoundingMode::HalfUp => Rounding::HalfUp,
            RoundingMode::HalfEven => Rounding::HalfEven,
        }
    }
}

/// The workspace's billing settings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SettingsBody {
    /// How invoices computed from now on are rounded.
    rounding: Rounding,
    /// Payment terms: days from an invoice's finalization to its due date (`due_at`), for
    /// customers that set none of their own. 30 by default.
    net_days: u16,
    /// When the settings last changed (RFC 3339); null while they are the defaults.
    #[schema(value_type = Option<String>, format = DateTime)]
    updated_at: Option<String>,
}

impl From<WorkspaceSettings> for SettingsBody {
    fn from(settings: WorkspaceSettings) -> Self {
        Self {
            rounding: settings.rounding.into(),
            net_days: settings.net_days,
            updated_at: settings.updated_at.map(|at| at.to_string()),
        }
    }
}

/// `PATCH /api/v1/workspace/settings`: the settings to change; absent ones stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSettings {
    /// `half_up` or `half_even`. Read as any JSON value and checked here: serde_json refuses a
    /// non-string enum value as a syntax error (400), where this is a 422 naming the field.
    #[schema(value_type = Option<Rounding>)]
    rounding: Option<Value>,
    /// Days from an invoice's finalization to its due date, 0 to 365. Invoices finalized
    /// before keep their due dates.
    #[schema(value_type = Option<u16>, minimum = 0, maximum = 365)]
    net_days: Option<Value>,
}

impl UpdateSettings {
    fn net_days(&self) -> Result<Option<u16>, ApiError> {
        let Some(value) = &self.net_days else {
            return Ok(None);
        };
        match value.as_u64().and_then(|days| u16::try_from(days).ok()) {
            Some(days) if days <= 365 => Ok(Some(days)),
            _ => Err(ApiError::invalid(
                "net_days",
                format!("must be a whole number of days from 0 to 365, not {value}"),
            )),
        }
    }

    fn rounding(&self) -> Result<Option<RoundingMode>, ApiError> {
        let Some(value) = &self.rounding else {
            return Ok(None);
        };
        match value.as_str() {
            Some("half_up") => Ok(Some(RoundingMode::HalfUp)),
            Some("half_even") => Ok(Some(RoundingMode::HalfEven)),
            _ => Err(ApiError::invalid(
                "rounding",
                format!("must be \"half_up\" or \"half_even\", not {value}"),
            )),
        }
    }
}

/// The workspace's billing settings.
#[utoipa::path(get, path = "/api/v1/workspace/settings", tag = "billing",
    responses((status = 200, description = "The settings", body = SettingsBody),
        (status = 403, description = "A customer token", body = crate::error::Problem, content_type = "application/problem+json")))]
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
        (status = 403, description = "A customer token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field (`rounding`, `net_days`)", body = crate::error::Problem, content_type = "application/problem+json")))]
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
