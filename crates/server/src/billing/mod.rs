//! Billing inside the server: the engine's glue ([`scenario`]), billing runs ([`run`]), the
//! scheduler that starts them as time passes, and payment providers ([`payment`]).
//!
//! The billing core's scenario engine is the one place that decides invoices; this module only
//! feeds it stored rows and stores what it answers (docs/billing-runs.md).

pub(crate) mod api;
mod incremental;
mod late_credit;
mod load;
pub(crate) mod payment;
pub(crate) mod reconcile;
pub(crate) mod run;
pub(crate) mod scenario;

pub use run::{BillingSettings, RunReport};

/// The customer's upcoming invoices at the state's clock, as
/// `GET /api/v1/customers/{id}/invoices/upcoming` answers them; `None` when the customer does not
/// exist.
///
/// # Errors
/// When the store fails or the engine rejects the customer's stored world.
pub async fn upcoming_invoices(
    state: &AppState,
    workspace: &billow_store::WorkspaceId,
    customer_id: &str,
) -> Result<Option<billow_core::scenario::Preview>, crate::error::ApiError> {
    let Some(world) = scenario::CustomerWorld::load(state, workspace, customer_id).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    run::preview_customer(state, workspace, &world, now)
        .await
        .map(Some)
}

use crate::startup::AppState;

/// Runs billing for every workspace with subscriptions, every `interval`, until the task is
/// aborted. A failed run is logged and retried at the next tick; the leases it held expire.
pub(crate) async fn schedule(state: AppState, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once: skip it, so that a start is not a run.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = run_all(&state).await {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "billing run failed");
        }
    }
}

/// One run over every workspace with subscriptions.
pub(crate) async fn run_all(state: &AppState) -> Result<RunReport, crate::error::ApiError> {
    run_billing(state, None).await
}

/// One billing run at the state's clock, over `workspace` or every workspace with
/// subscriptions (what `billow invoice run` and the scheduler do).
///
/// # Errors
/// When the store fails or the engine rejects a customer's stored world.
pub async fn run_billing(
    state: &AppState,
    workspace: Option<&billow_store::WorkspaceId>,
) -> Result<RunReport, crate::error::ApiError> {
    let workspaces = match workspace {
        Some(workspace) => vec![workspace.clone()],
        None => state
            .store
            .billed_workspaces()
            .await
            .map_err(crate::error::ApiError::internal)?,
    };
    let mut report = RunReport::default();
    for workspace in workspaces {
        let one = run::run_workspace(state, &state.billing, &workspace).await?;
        tracing::info!(
            workspace_id = %workspace,
            finalized = one.finalized,
            drafted = one.drafted,
            skipped = one.skipped,
            "billing run"
        );
        report.add(one);
    }
    Ok(report)
}
