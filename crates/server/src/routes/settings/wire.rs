//! The bodies of `/api/v1/workspace/settings`, as the handlers parse and write them and as
//! `/api/v1/openapi.json` documents them.

use billow_core::RoundingMode;
use billow_store::billing::WorkspaceSettings;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::wire::Instant;

/// The workspace's billing settings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SettingsBody {
    /// How invoices computed from now on are rounded.
    pub rounding: RoundingMode,
    /// Payment terms: days from an invoice's finalization to its due date (`due_at`), for
    /// customers that set none of their own. 30 by default.
    pub net_days: u16,
    /// When the settings last changed; `null` while they are the defaults.
    pub updated_at: Option<Instant>,
}

impl From<WorkspaceSettings> for SettingsBody {
    fn from(settings: WorkspaceSettings) -> Self {
        let WorkspaceSettings {
            rounding,
            net_days,
            updated_at,
        } = settings;
        Self {
            rounding,
            net_days,
            updated_at: updated_at.map(Instant::from),
        }
    }
}

/// `PATCH /api/v1/workspace/settings`: the settings to change; absent ones stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSettings {
    /// `half_up` or `half_even`. Read as any JSON value and checked here: serde_json refuses a
    /// non-string enum value as a syntax error (400), where this is a 422 naming the field.
    #[schema(value_type = Option<RoundingMode>)]
    rounding: Option<Value>,
    /// Days from an invoice's finalization to its due date, 0 to 365. Invoices finalized
    /// before keep their due dates.
    #[schema(value_type = Option<u16>, minimum = 0, maximum = 365)]
    net_days: Option<Value>,
}

impl UpdateSettings {
    pub(super) fn net_days(&self) -> Result<Option<u16>, ApiError> {
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

    pub(super) fn rounding(&self) -> Result<Option<RoundingMode>, ApiError> {
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
