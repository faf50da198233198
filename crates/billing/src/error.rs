//! [`RunBillingError`]: how the billing application fails.

use billow_core::scenario::{RunScenarioError, ScenarioError};
use billow_store::BillingStoreError;

/// Why billing could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum RunBillingError {
    /// The store failed (a database error, a full disk, a stored value it could not read).
    #[error("the store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The billing core rejected a customer's stored world: `source` names the field as a path
    /// of the scenario document (`subscriptions[0].plan`).
    #[error("the billing core rejected the stored billing world of customer {customer_id}")]
    World {
        customer_id: String,
        #[source]
        source: ScenarioError,
    },
    /// The billing core could not run a customer's world.
    #[error("the billing core could not bill customer {customer_id}")]
    Engine {
        customer_id: String,
        #[source]
        source: RunScenarioError,
    },
    /// Stored records contradict each other.
    #[error("the stored records are inconsistent: {0}")]
    Inconsistent(Inconsistency),
    /// A task of the run panicked or was cancelled.
    #[error("a task of the billing run failed")]
    Task(#[source] tokio::task::JoinError),
}

impl RunBillingError {
    /// A store failure, its cause kept (so that a full disk is recognized as one).
    pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store(Box::new(error))
    }

    /// Logs that billing failed for one customer, which the run counts and the next run retries.
    pub(crate) fn log_for_customer(&self, customer_id: &str) {
        tracing::error!(
            customer_id = %customer_id,
            error.message = %self,
            error.cause_chain = ?self,
            "billing run failed for a customer"
        );
    }

    /// Whether a stored record could not be read as what this code writes (a corrupt column,
    /// an unreadable spec): a fault of that row, not of the store.
    pub fn is_unreadable_record(&self) -> bool {
        match self {
            Self::Store(error) => matches!(
                error.downcast_ref::<BillingStoreError>(),
                Some(
                    BillingStoreError::CorruptRow { .. } | BillingStoreError::UnreadableSpec { .. }
                )
            ),
            _ => false,
        }
    }
}

/// Records that contradict each other: a bug or a hand-edited database, never bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// A subscription or billed resource names a plan version that is not stored.
    #[error("the plan version {0} is not stored")]
    MissingPlanVersion(String),
    /// The engine issued an invoice for a key that is neither a subscription of the customer
    /// nor the customer.
    #[error("the engine issued an invoice for {0}, which is no subscription of the customer")]
    UnknownSubscription(String),
    /// An invoice names a customer that is not stored.
    #[error("the invoice's customer {0} is not stored")]
    UnknownCustomer(String),
    /// An instant out of jiff's range (a lease's expiry, a due date).
    #[error("an instant out of range: {0}")]
    OutOfRange(String),
}
