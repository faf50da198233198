//! [`is_storage_full`]: whether a failed write failed for lack of disk space, which the server
//! answers differently from any other failure (503 with `Retry-After`, and not ready).

use std::error::Error;
use std::io::ErrorKind;
use std::sync::Arc;

/// SQLite's result code for "database or disk is full" (`SQLITE_FULL`).
const SQLITE_FULL: &str = "13";
/// PostgreSQL's SQLSTATE `disk_full`.
const POSTGRES_DISK_FULL: &str = "53100";

/// Whether `error`, or an error it was caused by, says that the database could not write for
/// lack of disk space: SQLite's `SQLITE_FULL`, PostgreSQL's SQLSTATE 53100, or an I/O error of
/// kind [`ErrorKind::StorageFull`]. Such a failure ends by itself once space is freed, unlike
/// a bug or a broken database.
pub fn is_storage_full(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let full = if let Some(error) = error.downcast_ref::<sqlx::Error>() {
            is_sqlx_storage_full(error)
        } else if let Some(error) = error.downcast_ref::<Arc<sqlx::Error>>() {
            // What a group commit shares among its callers (`InsertEventsError`).
            is_sqlx_storage_full(error)
        } else if let Some(error) = error.downcast_ref::<std::io::Error>() {
            error.kind() == ErrorKind::StorageFull
        } else {
            false
        };
        if full {
            return true;
        }
        next = error.source();
    }
    false
}

fn is_sqlx_storage_full(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => {
            matches!(
                error.code().as_deref(),
                Some(SQLITE_FULL | POSTGRES_DISK_FULL)
            )
        }
        sqlx::Error::Io(error) => error.kind() == ErrorKind::StorageFull,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A database error with a given code, as a driver reports it.
    #[derive(Debug, thiserror::Error)]
    #[error("code {0}")]
    struct Coded(&'static str);

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "an error"
        }

        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }

        fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
            self
        }

        fn as_error_mut(&mut self) -> &mut (dyn Error + Send + Sync + 'static) {
            self
        }

        fn into_error(self: Box<Self>) -> Box<dyn Error + Send + Sync + 'static> {
            self
        }

        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    /// An error of the store's own, caused by `source`.
    #[derive(Debug, thiserror::Error)]
    #[error("could not store it")]
    struct Wrapped(#[source] Arc<sqlx::Error>);

    fn database(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Coded(code)))
    }

    #[test]
    fn sqlite_full_and_postgres_disk_full_are_storage_full_wherever_in_the_chain() {
        assert!(is_storage_full(&database("13")));
        assert!(is_storage_full(&database("53100")));
        assert!(is_storage_full(&Wrapped(Arc::new(database("53100")))));
        let io = std::io::Error::from(ErrorKind::StorageFull);
        assert!(is_storage_full(&sqlx::Error::Io(io)));
    }

    #[test]
    fn other_failures_are_not() {
        // 23505: unique violation; 53200: out of memory; 2067: SQLite's unique constraint.
        for code in ["23505", "53200", "2067", "1"] {
            assert!(!is_storage_full(&database(code)), "{code}");
        }
        assert!(!is_storage_full(&sqlx::Error::PoolTimedOut));
        assert!(!is_storage_full(&Wrapped(Arc::new(
            sqlx::Error::RowNotFound
        ))));
    }
}
