//! [`RunReport`]: what a billing run did.

use serde::Serialize;

/// What one run did, per customer and in sum.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub customers: u64,
    /// Customers another run held a lease on.
    pub skipped: u64,
    /// Customers with nothing due and nothing new since the run that last computed them: left
    /// alone (their usage is not read, the engine does not run for them).
    pub unchanged: u64,
    /// Customers computed from their checkpoints (the state after their last finalized
    /// invoice), reading only the usage of periods not finalized yet; among `customers`.
    pub from_checkpoint: u64,
    /// Customers whose run failed (logged; retried by the next run).
    pub failed: u64,
    pub drafted: u64,
    pub finalized: u64,
    pub adjustments: u64,
    /// Credit notes written for negative late usage of subscriptions with no further invoice.
    pub credit_notes: u64,
    /// The first numbers given, in order (at most 100; `finalized` counts
    /// them all).
    pub numbers: Vec<i64>,
}

/// Most invoice numbers a [`RunReport`] lists, so that a large run's report stays small.
pub const REPORTED_NUMBERS_MAX: usize = 100;

impl RunReport {
    pub(crate) fn add(&mut self, other: RunReport) {
        self.customers += other.customers;
        self.skipped += other.skipped;
        self.unchanged += other.unchanged;
        self.from_checkpoint += other.from_checkpoint;
        self.failed += other.failed;
        self.drafted += other.drafted;
        self.finalized += other.finalized;
        self.adjustments += other.adjustments;
        self.credit_notes += other.credit_notes;
        let room = REPORTED_NUMBERS_MAX.saturating_sub(self.numbers.len());
        self.numbers.extend(other.numbers.into_iter().take(room));
    }
}
