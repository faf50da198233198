//! A workspace's billing settings (`workspace_settings`, 0008): how its invoices are rounded.
//! A workspace without a row bills with the defaults.

use billow_core::RoundingMode;
use jiff::Timestamp;

use super::sql::{from_micros, to_micros, with_pool, BillingStoreError};
use crate::store::Store;
use crate::workspaces::WorkspaceId;

/// What a workspace has chosen for its billing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkspaceSettings {
    /// How every invoice computed from now on rounds to the minor unit.
    pub rounding: RoundingMode,
    /// Payment terms: days from an invoice's finalization to its due date, for customers that
    /// set none of their own.
    pub net_days: u16,
    /// When the settings last changed; `None` while they are the defaults.
    pub updated_at: Option<Timestamp>,
}

/// The payment terms of a workspace that chose none: Stripe's default for invoices it sends.
pub const DEFAULT_NET_DAYS: u16 = 30;

impl Default for WorkspaceSettings {
    fn default() -> Self {
        Self {
            rounding: RoundingMode::default(),
            net_days: DEFAULT_NET_DAYS,
            updated_at: None,
        }
    }
}

/// The stored text of a rounding mode (the core's serde name).
fn rounding_text(rounding: RoundingMode) -> &'static str {
    match rounding {
        RoundingMode::HalfUp => "half_up",
        RoundingMode::HalfEven => "half_even",
    }
}

fn rounding_of(text: &str) -> Result<RoundingMode, BillingStoreError> {
    match text {
        "half_up" => Ok(RoundingMode::HalfUp),
        "half_even" => Ok(RoundingMode::HalfEven),
        _ => Err(BillingStoreError::CorruptRow {
            column: "workspace_settings.rounding",
        }),
    }
}

impl Store {
    /// The workspace's billing settings, the defaults when it never changed them.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace))]
    pub async fn workspace_settings(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<WorkspaceSettings, BillingStoreError> {
        const SQL: &str =
            "SELECT rounding, updated_at, net_days FROM workspace_settings WHERE workspace_id = $1";
        let row: Option<(String, i64, i64)> = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .fetch_optional(pool)
            .await)?;
        match row {
            None => Ok(WorkspaceSettings::default()),
            Some((rounding, updated_at, net_days)) => Ok(WorkspaceSettings {
                rounding: rounding_of(&rounding)?,
                net_days: u16::try_from(net_days).map_err(|_| BillingStoreError::CorruptRow {
                    column: "workspace_settings.net_days",
                })?,
                updated_at: Some(from_micros(updated_at)?),
            }),
        }
    }

    /// Sets the workspace's rounding mode at `now`; returns the settings as stored.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace))]
    pub async fn set_workspace_rounding(
        &self,
        workspace: &WorkspaceId,
        rounding: RoundingMode,
        now: Timestamp,
    ) -> Result<WorkspaceSettings, BillingStoreError> {
        // One statement: the rounding is set and the other settings read back as they are, so
        // that a concurrent change of them is never written over.
        const SQL: &str = "INSERT INTO workspace_settings (workspace_id, rounding, updated_at) \
                           VALUES ($1, $2, $3) ON CONFLICT (workspace_id) DO UPDATE \
                           SET rounding = excluded.rounding, updated_at = excluded.updated_at \
                           RETURNING net_days";
        let (net_days,): (i64,) = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(rounding_text(rounding))
            .bind(to_micros(now))
            .fetch_one(pool)
            .await)?;
        Ok(WorkspaceSettings {
            rounding,
            net_days: u16::try_from(net_days).map_err(|_| BillingStoreError::CorruptRow {
                column: "workspace_settings.net_days",
            })?,
            updated_at: Some(from_micros(to_micros(now))?),
        })
    }

    /// Sets the workspace's payment terms (days from finalization to an invoice's due date)
    /// at `now`; returns the settings as stored.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace))]
    pub async fn set_workspace_net_days(
        &self,
        workspace: &WorkspaceId,
        net_days: u16,
        now: Timestamp,
    ) -> Result<WorkspaceSettings, BillingStoreError> {
        // One statement, as for the rounding: the rounding is read back as it is.
        // A workspace without settings yet gets the default rounding beside its terms.
        const SQL: &str = "INSERT INTO workspace_settings (workspace_id, rounding, net_days, \
                           updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id) DO UPDATE \
                           SET net_days = excluded.net_days, updated_at = excluded.updated_at \
                           RETURNING rounding";
        let (rounding,): (String,) = with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace.as_str())
            .bind(rounding_text(RoundingMode::default()))
            .bind(i64::from(net_days))
            .bind(to_micros(now))
            .fetch_one(pool)
            .await)?;
        Ok(WorkspaceSettings {
            rounding: rounding_of(&rounding)?,
            net_days,
            updated_at: Some(from_micros(to_micros(now))?),
        })
    }
}
