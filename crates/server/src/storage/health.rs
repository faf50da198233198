//! [`StorageHealth`]: until when the database is taken to be out of space.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use crate::error::{ApiError, STORAGE_FULL_RETRY_AFTER_SECONDS};

/// Until when the database is taken to be out of space.
#[derive(Debug, Default)]
pub struct StorageHealth {
    full_until: Mutex<Option<Timestamp>>,
}

impl StorageHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Timestamp>> {
        self.full_until
            .lock()
            .expect("never poisoned: no code panics under it")
    }

    /// A write failed for lack of space at `now`.
    pub(crate) fn write_failed(&self, now: Timestamp) {
        let hold = SignedDuration::from_secs(
            i64::try_from(STORAGE_FULL_RETRY_AFTER_SECONDS).expect("a small constant"),
        );
        *self.lock() = Some(now.saturating_add(hold).expect("a duration, not a span"));
    }

    /// A write succeeded: there is space again.
    pub(crate) fn write_succeeded(&self) {
        *self.lock() = None;
    }

    /// `Err` with a 503 `storage-full` while a recent write failed for lack of space.
    ///
    /// # Errors
    ///
    /// [`ApiError::StorageFull`] until the state ends.
    pub fn check(&self, now: Timestamp) -> Result<(), ApiError> {
        match *self.lock() {
            Some(until) if now < until => Err(ApiError::StorageFull(None)),
            _ => Ok(()),
        }
    }
}
