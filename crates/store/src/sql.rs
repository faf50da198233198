//! The storage convention every table follows, and what the query code shares because of it.
//!
//! The tables use only types both backends share (TEXT, 64-bit integers, bytes) and `$n`
//! placeholders, which SQLite reads as positional parameters too (a number may repeat), so each
//! query is written once; [`with_pool!`] expands a body once per backend, where it is
//! type-checked against that backend's pool. Instants are microseconds since the Unix epoch
//! (PostgreSQL's precision), JSON is text.
//!
//! What the dialects really differ in stays here and small: how a violated unique key is named
//! ([`violated_unique_key`]).

use jiff::Timestamp;

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

/// An instant as stored: microseconds since the Unix epoch, finer digits dropped.
pub(crate) fn to_micros(instant: Timestamp) -> i64 {
    instant.as_microsecond()
}

/// A stored instant.
///
/// # Errors
///
/// When `micros` is outside the range of [`Timestamp`]: the row was not written by this code.
pub(crate) fn timestamp_from_micros(micros: i64) -> Result<Timestamp, jiff::Error> {
    Timestamp::from_microsecond(micros)
}

/// True when `error` is a unique-key violation, on either backend.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|database_error| database_error.is_unique_violation())
}

/// A unique key as each backend names it when a write violates it.
pub(crate) struct UniqueKeyName {
    /// PostgreSQL's name for it: the constraint named in the migration.
    pub(crate) constraint: &'static str,
    /// SQLite's: the columns its message lists, e.g. `customers.workspace_id,
    /// customers.external_id`.
    pub(crate) columns: &'static str,
}

/// Which of `keys` the unique violation `error` names; `None` when `error` is another error or
/// names another key.
pub(crate) fn violated_unique_key<K: Copy>(
    error: &sqlx::Error,
    keys: &[(UniqueKeyName, K)],
) -> Option<K> {
    let database_error = error.as_database_error()?;
    if !database_error.is_unique_violation() {
        return None;
    }
    // PostgreSQL reports the constraint's name. SQLite reports none, only the key's columns:
    // "UNIQUE constraint failed: workspaces.name" (https://sqlite.org/rescode.html#constraint_unique).
    let is_named = |name: &UniqueKeyName| match database_error.constraint() {
        Some(constraint) => constraint == name.constraint,
        None => {
            database_error
                .message()
                .strip_prefix("UNIQUE constraint failed: ")
                == Some(name.columns)
        }
    };
    keys.iter()
        .find(|(name, _)| is_named(name))
        .map(|&(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_microseconds() {
        let instant: Timestamp = "2024-02-01T00:00:00.123456Z".parse().unwrap();
        assert_eq!(timestamp_from_micros(to_micros(instant)).unwrap(), instant);
    }

    #[test]
    fn digits_finer_than_a_microsecond_are_dropped() {
        let instant: Timestamp = "2026-11-22T08:00:00.123456789Z".parse().unwrap();
        let stored = timestamp_from_micros(to_micros(instant)).unwrap();
        assert_eq!(stored, "2026-11-22T08:00:00.123456Z".parse().unwrap());
    }
}
