//! [`AppState`]: what every handler can reach.

use std::sync::Arc;

use billow_billing::clock::{Clock, SystemClock};
use billow_billing::payment::{ManualProvider, PaymentProvider};
use billow_billing::{Billing, BillingSettings};
use billow_store::Store;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// Where "now" comes from: the system clock, or a `ManualClock` in tests. The billing
    /// application reads the same clock.
    pub clock: Arc<dyn Clock>,
    /// The billing application (runs, upcoming invoices, finalization) over the same store and
    /// clock.
    pub billing: Billing,
    /// Who collects invoices' money.
    pub payments: Arc<dyn PaymentProvider>,
    /// Group-commits ingested usage events (routes/events).
    pub events: billow_store::EventWriter,
    /// Rendered finalized invoices (routes/invoices).
    pub invoice_cache: Arc<crate::invoice_cache::InvoiceCache>,
    /// Whether writes fail for lack of disk space, for `/readyz` ([`crate::storage`]).
    pub storage: Arc<crate::storage::health::StorageHealth>,
    /// Which platform API profiles the router serves ([`crate::profiles`]).
    pub profiles: crate::profiles::Profiles,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self {
            events: billow_store::EventWriter::new(store.clone()),
            billing: Billing::new(store.clone()),
            store,
            clock: Arc::new(SystemClock),
            payments: Arc::new(ManualProvider::default()),
            invoice_cache: Arc::default(),
            storage: Arc::default(),
            profiles: crate::profiles::Profiles::all(),
        }
    }

    /// The same state serving the platform API profiles `profiles`.
    pub fn with_profiles(self, profiles: crate::profiles::Profiles) -> Self {
        Self { profiles, ..self }
    }

    /// The same state reading time from `clock`, billing included; leases keep theirs.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self {
            billing: self.billing.with_clock(Arc::clone(&clock)),
            clock,
            ..self
        }
    }

    /// The same state measuring billing leases on `lease_clock` (the system's by default).
    pub fn with_lease_clock(self, lease_clock: Arc<dyn Clock>) -> Self {
        Self {
            billing: self.billing.with_lease_clock(lease_clock),
            ..self
        }
    }

    /// The same state with other billing settings (and the manual provider naming their bank
    /// account).
    pub fn with_billing(self, settings: BillingSettings) -> Self {
        let payments = ManualProvider {
            bank_account: settings.bank_account.clone(),
        };
        Self {
            billing: self.billing.with_settings(settings),
            payments: Arc::new(payments),
            ..self
        }
    }
}
