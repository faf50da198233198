//! [`Clock`]: where billing reads the present. The billing core never reads time (STYLE.md,
//! "Time"); billing runs and payment states take it from the [`Clock`] of [`crate::Billing`], so
//! tests and `billow invoice run --now` can set it with a [`ManualClock`]. Billing leases take
//! theirs from its `lease_clock`, the system's: they measure real time even when a run bills at
//! another instant.

use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// The source of "now".
pub trait Clock: fmt::Debug + Send + Sync {
    /// The present instant.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is set or advanced: for tests.
///
/// ```
/// use billow_billing::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap());
/// clock.advance(jiff::SignedDuration::from_hours(24));
/// assert_eq!(clock.now().to_string(), "2024-01-02T00:00:00Z");
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock that reads `now` until changed. Clones share the same time.
    pub fn new(now: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Sets the present.
    pub fn set(&self, now: Timestamp) {
        *self.lock() = now;
    }

    /// Moves the present forward (or back, with a negative duration).
    ///
    /// # Panics
    /// When the result is outside jiff's range of instants.
    pub fn advance(&self, duration: SignedDuration) {
        let mut now = self.lock();
        *now = now
            .checked_add(duration)
            .expect("a test clock stays within jiff's range");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A panic while the lock was held cannot leave a Timestamp half-written.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_of_a_manual_clock_share_its_time() {
        let clock = ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap());
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());

        clock.set("2024-03-01T00:00:00Z".parse().unwrap());

        assert_eq!(shared.now().to_string(), "2024-03-01T00:00:00Z");
    }
}
