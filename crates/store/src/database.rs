//! Which database a [`Store`](crate::Store) opens: [`Database`], parsed once at the edge.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// The database behind a [`Store`](crate::Store).
#[derive(Clone, Debug)]
pub enum Database {
    /// An SQLite file, created on first open: the embedded default, nothing to install.
    Sqlite {
        /// The data file. Its `-wal` and `-shm` companions live beside it.
        path: PathBuf,
    },
    /// A PostgreSQL server: the production backend, shared by any number of billow nodes.
    Postgres(PostgresUrl),
}

impl Database {
    /// An SQLite database in the file at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self::Sqlite { path: path.into() }
    }

    /// Parses a `postgres://` or `postgresql://` URL, such as the value of `DATABASE_URL`.
    ///
    /// # Errors
    ///
    /// [`ParseDatabaseUrlError`] when the URL names another scheme or is malformed.
    pub fn from_url(url: &str) -> Result<Self, ParseDatabaseUrlError> {
        url.parse().map(Self::Postgres)
    }
}

impl fmt::Display for Database {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => write!(formatter, "sqlite:{}", path.display()),
            Self::Postgres(url) => fmt::Display::fmt(url, formatter),
        }
    }
}

/// A PostgreSQL connection URL, checked when parsed.
///
/// `Debug` and `Display` never show the password, so the value can be logged and can appear in
/// error messages.
#[derive(Clone)]
pub struct PostgresUrl {
    // Boxed: the options are large, and errors carry this type.
    options: Box<PgConnectOptions>,
}

impl PostgresUrl {
    /// The same server and credentials, connected to the database `name` instead.
    ///
    /// Tests use it to open the fresh database they created through an admin connection.
    pub fn with_database_name(&self, name: &str) -> Self {
        Self {
            options: Box::new(self.options.as_ref().clone().database(name)),
        }
    }

    /// The name of the database this URL connects to, when it names one.
    pub fn database_name(&self) -> Option<&str> {
        self.options.get_database()
    }

    pub(crate) fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }
}

impl FromStr for PostgresUrl {
    type Err = ParseDatabaseUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ParseDatabaseUrlError::UnsupportedScheme);
        }
        let options = PgConnectOptions::from_str(url).map_err(ParseDatabaseUrlError::Malformed)?;
        Ok(Self {
            options: Box::new(options),
        })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = &self.options;
        write!(
            formatter,
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        )
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The derived Debug of `PgConnectOptions` prints the password.
        formatter
            .debug_tuple("PostgresUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// Why a database URL was refused.
///
/// The URL itself is not kept: it may carry a password.
#[derive(Debug, thiserror::Error)]
pub enum ParseDatabaseUrlError {
    /// Only PostgreSQL is selected by URL; SQLite is selected by a file path.
    #[error("the database URL must start with postgres:// or postgresql://")]
    UnsupportedScheme,
    /// The URL has the right scheme but could not be parsed.
    #[error("the PostgreSQL URL is malformed")]
    Malformed(#[source] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_accepted_with_either_scheme() {
        for url in [
            "postgres://billow@db:5433/billing",
            "postgresql://billow@db/billing",
        ] {
            assert!(matches!(Database::from_url(url), Ok(Database::Postgres(_))));
        }
    }

    #[test]
    fn libpq_tls_parameters_are_accepted_and_an_unknown_sslmode_refused() {
        for url in [
            "postgres://billow@db/billing?sslmode=require",
            "postgres://billow@db/billing?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            "postgres://billow@db/billing?sslmode=disable",
        ] {
            assert!(Database::from_url(url).is_ok(), "{url}");
        }
        assert!(matches!(
            Database::from_url("postgres://billow@db/billing?sslmode=always"),
            Err(ParseDatabaseUrlError::Malformed(_))
        ));
    }

    #[test]
    fn another_scheme_is_refused() {
        for url in ["sqlite:billow.db", "mysql://root@db/billing", "billow.db"] {
            assert!(matches!(
                Database::from_url(url),
                Err(ParseDatabaseUrlError::UnsupportedScheme)
            ));
        }
    }

    #[test]
    fn the_password_never_appears_in_display_or_debug() {
        let url: PostgresUrl = "postgres://billow:hunter2@db:5433/billing".parse().unwrap();
        let shown = format!("{url} {url:?} {:?}", Database::Postgres(url.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://billow@db:5433/billing"),
            "{shown}"
        );
    }

    #[test]
    fn with_database_name_keeps_the_server_and_changes_the_database() {
        let url: PostgresUrl = "postgres://billow@db:5433/postgres".parse().unwrap();
        let fresh = url.with_database_name("billow_test_1");
        assert_eq!(fresh.to_string(), "postgres://billow@db:5433/billow_test_1");
    }
}
