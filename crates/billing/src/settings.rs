//! [`BillingSettings`]: how billing runs behave.

use billow_store::new_id;
use jiff::SignedDuration;

/// How billing runs behave.
#[derive(Clone, Debug)]
pub struct BillingSettings {
    /// How long a due invoice stays a draft, open to late usage, before it is finalized.
    pub grace_period: SignedDuration,
    /// How long a run holds its claim on a customer; a run that dies is taken over after it.
    pub lease_duration: SignedDuration,
    /// How often the scheduler inside `serve` runs; `None`: no scheduler.
    pub interval: Option<std::time::Duration>,
    /// This process's name in leases.
    pub node: String,
    /// The bank account the manual payment provider's instructions name.
    pub bank_account: String,
    /// How many customers a run claims, reads and writes at once (one lease statement, one
    /// query per table and one write transaction per batch).
    pub customers_per_batch: usize,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            grace_period: SignedDuration::from_hours(1),
            lease_duration: SignedDuration::from_secs(60),
            interval: Some(std::time::Duration::from_secs(60)),
            node: new_id("node"),
            bank_account: crate::payment::ManualProvider::default().bank_account,
            customers_per_batch: CUSTOMERS_PER_BATCH,
        }
    }
}

/// The default of [`BillingSettings::customers_per_batch`].
pub const CUSTOMERS_PER_BATCH: usize = 1_000;
