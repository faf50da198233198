//! billow's billing application: what turns stored customers, catalog and usage into invoices,
//! between the billing core (`billow-core`, which decides every amount) and the store
//! (`billow-store`, which keeps the records). The HTTP service and the CLI both drive it; neither
//! is needed to run it.
//!
//! - [`Billing`] is what the application works with: the store, the clock a run bills at, the
//!   clock leases are measured on, and the [`BillingSettings`].
//! - [`run_billing`] and [`Billing::run_workspace`] run billing (`billow invoice run`, the
//!   scheduler of [`schedule`], `POST /api/v1/billing-runs`) and answer a [`RunReport`];
//!   [`Billing::upcoming_invoices`] previews a customer's next invoices.
//! - [`world::CustomerWorld`] is the engine's input for one customer, loaded from its records;
//!   [`payment`] says how an invoice is paid.
//! - Every failure is a [`RunBillingError`].
//!
//! The design, what a run reads and writes and why it is incremental, is in
//! `docs/billing-runs.md`.
//!
//! ```
//! use billow_billing::clock::ManualClock;
//! use billow_billing::{run_billing, Billing};
//! use billow_store::{Database, Store};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = tempfile::tempdir()?;
//! let store = Store::open(&Database::sqlite(directory.path().join("billow.db"))).await?;
//! store.migrate().await?;
//! let billing = Billing::new(store)
//!     .with_clock(std::sync::Arc::new(ManualClock::new("2025-02-01T00:00:00Z".parse()?)));
//! let report = run_billing(&billing, None).await?;
//! assert_eq!(report.finalized, 0);
//! # Ok(())
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
//! ```

pub mod clock;
mod error;
mod incremental;
mod late_credit;
mod load;
pub mod payment;
mod preview;
mod reconcile;
mod report;
mod run;
mod settings;
pub mod world;

use std::sync::Arc;

use billow_store::{Store, WorkspaceId};

pub use error::{Inconsistency, RunBillingError};
pub use reconcile::due_at;
pub use report::{RunReport, REPORTED_NUMBERS_MAX};
pub use settings::{BillingSettings, CUSTOMERS_PER_BATCH};

use crate::clock::{Clock, SystemClock};

/// The billing application: the store it reads and writes, the clocks, its settings. Cheap to
/// clone (every member is shared).
#[derive(Clone, Debug)]
pub struct Billing {
    pub store: Store,
    /// Where "now" comes from: the system clock, or a `ManualClock` in tests; the instant a
    /// billing run bills at (`billow invoice run --now` sets it).
    pub clock: Arc<dyn Clock>,
    /// The real time, which billing leases are taken and compared on: a lease lasts its
    /// duration of real time whatever instant a run bills at, so a run killed while billing at
    /// a past or future `--now` holds its customers no longer than that (docs/billing-runs.md).
    pub lease_clock: Arc<dyn Clock>,
    /// Grace period, lease length, batch size and scheduler interval of billing runs.
    pub settings: Arc<BillingSettings>,
}

impl Billing {
    /// Billing over `store` on the system's clock with the default settings.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            clock: Arc::new(SystemClock),
            lease_clock: Arc::new(SystemClock),
            settings: Arc::default(),
        }
    }

    /// The same application billing at the time `clock` reads; leases keep theirs.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The same application measuring billing leases on `lease_clock`.
    #[must_use]
    pub fn with_lease_clock(self, lease_clock: Arc<dyn Clock>) -> Self {
        Self {
            lease_clock,
            ..self
        }
    }

    /// The same application with other settings.
    #[must_use]
    pub fn with_settings(self, settings: BillingSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            ..self
        }
    }

    /// Runs billing for the workspace's customers that may have something to bill (see
    /// `run::run_workspace`).
    ///
    /// # Errors
    /// When the store fails or a task of the run fails; a customer whose world the engine
    /// rejects is logged and counted as `failed`, and the others are billed.
    pub async fn run_workspace(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<RunReport, RunBillingError> {
        run::run_workspace(self, workspace).await
    }

    /// Runs billing for one customer, if no other run holds it; an unknown customer runs
    /// nothing.
    ///
    /// # Errors
    /// As [`Billing::run_workspace`].
    pub async fn run_customer(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<RunReport, RunBillingError> {
        run::run_customer(self, workspace, customer_id).await
    }

    /// The customer's upcoming invoices at the clock's now, with the late-usage adjustments the
    /// next run would bill; `None` when the customer does not exist.
    ///
    /// # Errors
    /// When the store fails or the engine rejects the customer's stored world
    /// ([`RunBillingError::World`]).
    pub async fn upcoming_invoices(
        &self,
        workspace: &WorkspaceId,
        customer_id: &str,
    ) -> Result<Option<billow_core::scenario::Preview>, RunBillingError> {
        let Some(world) = world::CustomerWorld::load(self, workspace, customer_id).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        run::preview_customer(self, workspace, &world, now)
            .await
            .map(Some)
    }

    /// The engine's answer for `world` at `now`, as [`Billing::upcoming_invoices`] gives it.
    ///
    /// # Errors
    /// As [`Billing::upcoming_invoices`].
    pub async fn preview(
        &self,
        workspace: &WorkspaceId,
        world: &world::CustomerWorld,
        now: jiff::Timestamp,
    ) -> Result<billow_core::scenario::Preview, RunBillingError> {
        run::preview_customer(self, workspace, world, now).await
    }

    /// Finalizes one stored draft invoice now (`POST /api/v1/invoices/{id}/finalize`), as a
    /// run past its grace period would: a number, a due date, the late adjustments it bills
    /// marked applied. The number given, or `None` when another run or request finalized it
    /// first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn finalize_draft(
        &self,
        workspace: &WorkspaceId,
        draft: billow_store::invoices::InvoiceRecord,
    ) -> Result<Option<i64>, RunBillingError> {
        reconcile::finalize_draft(self, workspace, draft).await
    }
}

/// Runs billing for every workspace with subscriptions, every `interval`, until the task is
/// aborted. A failed run is logged and retried at the next tick; the leases it held expire.
pub async fn schedule(billing: Billing, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once: skip it, so that a start is not a run.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = run_billing(&billing, None).await {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "billing run failed");
        }
    }
}

/// One billing run at the clock's now, over `workspace` or every workspace with subscriptions
/// (what `billow invoice run` and the scheduler do).
///
/// # Errors
/// When the store fails or a task of the run fails: the first workspace's error, after every
/// workspace had its run.
pub async fn run_billing(
    billing: &Billing,
    workspace: Option<&WorkspaceId>,
) -> Result<RunReport, RunBillingError> {
    let workspaces = match workspace {
        Some(workspace) => vec![workspace.clone()],
        None => billing
            .store
            .billed_workspaces()
            .await
            .map_err(RunBillingError::store)?,
    };
    let mut report = RunReport::default();
    let mut first_error = None;
    for workspace in workspaces {
        // A workspace whose run fails does not hold up the others: logged, and the first
        // error is returned once every workspace had its run.
        match billing.run_workspace(&workspace).await {
            Ok(one) => {
                tracing::info!(
                    workspace_id = %workspace,
                    finalized = one.finalized,
                    drafted = one.drafted,
                    skipped = one.skipped,
                    failed = one.failed,
                    "billing run"
                );
                report.add(one);
            }
            Err(error) => {
                tracing::error!(
                    workspace_id = %workspace,
                    error.message = %error,
                    error.cause_chain = ?error,
                    "billing run failed for a workspace"
                );
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(report), Err)
}
