//! What the billing tables' query code shares: one SQL text for both backends, instants as
//! microseconds, JSON as text, and the one error type of the billing repositories.
//!
//! The billing tables use only types both backends share (TEXT, 64-bit integers) and `$n`
//! placeholders, which SQLite reads as positional parameters too, so each query is written once;
//! [`with_pool!`] expands a body once per backend, where it is type-checked against that
//! backend's pool.

use jiff::Timestamp;
use serde_json::Value;

/// Runs `$body` with `$pool` bound to the store's typed pool, whichever backend it is.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// An instant as stored: microseconds since the Unix epoch (PostgreSQL's precision).
pub(crate) fn to_micros(instant: Timestamp) -> i64 {
    instant.as_microsecond()
}

/// A stored instant.
pub(crate) fn from_micros(micros: i64) -> Result<Timestamp, BillingStoreError> {
    Timestamp::from_microsecond(micros).map_err(|_| BillingStoreError::CorruptRow {
        column: "timestamp",
    })
}

/// A stored JSON column.
pub(crate) fn from_json(text: &str, column: &'static str) -> Result<Value, BillingStoreError> {
    serde_json::from_str(text).map_err(|_| BillingStoreError::CorruptRow { column })
}

/// True when `error` is a unique-key violation, on either backend.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|database_error| database_error.is_unique_violation())
}

/// Why a billing repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingStoreError {
    /// The row would repeat a unique key (a meter or plan key, an invoice's subscription and
    /// instant).
    #[error("a row with the same key already exists")]
    Duplicate,
    /// The row the call works on does not exist in the workspace.
    #[error("not found")]
    NotFound,
    /// The invoice is finalized: its content never changes.
    #[error("the invoice is finalized and cannot change")]
    Immutable,
    /// The change would take more than what is left (a credit note above the invoice).
    #[error("the amount {requested_minor} exceeds the {available_minor} available")]
    Exceeds {
        requested_minor: i64,
        available_minor: i64,
    },
    /// A stored column does not hold what this code writes.
    #[error("the stored column {column} is invalid")]
    CorruptRow { column: &'static str },
    /// The query failed.
    #[error("the billing query failed")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for BillingStoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unique_violation(&error) {
            Self::Duplicate
        } else {
            Self::Database(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_microseconds() {
        let instant: Timestamp = "2024-02-01T00:00:00.123456Z".parse().unwrap();
        assert_eq!(from_micros(to_micros(instant)).unwrap(), instant);
    }
}
