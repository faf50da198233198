//! Durable before reported: a commit billow makes is on disk before anything reports it (an
//! invoice number, a finalized invoice, a payment, a credit note, an accepted event).
//!
//! - SQLite: every connection of the pool runs with `synchronous=FULL` (set in `crate::store`),
//!   so each commit syncs the WAL before it returns.
//! - PostgreSQL: a commit waits for its WAL flush unless `synchronous_commit` is `off`, which
//!   billow never sets and, when the server, database or role makes it the default, raises to
//!   `on` on each of its connections ([`keep_commits_synchronous`]). Stronger settings
//!   (`remote_write`, `remote_apply`, and `on` with synchronous standbys) are kept as they are.
//!
//! docs/billing-runs.md ("Durable before reported") says why; `crates/cli/tests/power_cut.rs`
//! cuts the power under a real run on SQLite.

use sqlx::PgConnection;

/// Raises this connection's `synchronous_commit` to `on` when it is `off`, in one round trip
/// made once per new connection. `local` is durable on the server itself and is kept.
///
/// # Errors
/// When the statement fails.
pub(crate) async fn keep_commits_synchronous(
    connection: &mut PgConnection,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'on', false) \
         WHERE current_setting('synchronous_commit') = 'off'",
    )
    .fetch_optional(connection)
    .await
    .map(drop)
}

/// Logs a warning when the server's default would make commits asynchronous: billow overrides
/// it on its own connections, and the operator should know that it does.
pub(crate) async fn warn_when_commits_are_asynchronous(connection: &mut PgConnection) {
    match sqlx::query_as::<_, (String,)>("SHOW synchronous_commit")
        .fetch_one(connection)
        .await
    {
        Ok((setting,)) if setting == "off" => tracing::warn!(
            "PostgreSQL's synchronous_commit defaults to off here; billow sets it to on for its \
             own connections, so that what it reports survives a crash of the server"
        ),
        Ok(_) => {}
        Err(error) => {
            tracing::debug!(error.message = %error, "could not read synchronous_commit");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use sqlx::{Connection, Executor};

    use crate::store::Backend;
    use crate::{Database, PostgresUrl, Store};

    /// Connections held at once from the pool: each is a distinct connection, set up on its own.
    const CONNECTIONS_CHECKED: usize = 3;

    #[tokio::test]
    async fn every_sqlite_connection_syncs_each_commit() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(&Database::sqlite(directory.path().join("billow.db")))
            .await
            .unwrap();
        let Backend::Sqlite(pool) = &store.backend else {
            unreachable!("an SQLite store")
        };

        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS_CHECKED {
            connections.push(pool.acquire().await.unwrap());
        }
        for connection in &mut connections {
            let (synchronous,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            // 2 is FULL (https://sqlite.org/pragma.html#pragma_synchronous).
            assert_eq!(synchronous, 2);
        }
        drop(connections);
        store.close().await;
    }

    /// The PostgreSQL test server's admin URL, or `None` when its tests are skipped on purpose.
    fn postgres_admin_url() -> Option<String> {
        match std::env::var("BILLOW_TEST_DATABASE_URL") {
            Ok(url) => Some(url),
            Err(_) if std::env::var("BILLOW_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("skipping a PostgreSQL test: BILLOW_SKIP_POSTGRES=1");
                None
            }
            Err(_) => panic!(
                "BILLOW_TEST_DATABASE_URL is not set; point it at a PostgreSQL server \
                 (scripts/test does), or set BILLOW_SKIP_POSTGRES=1"
            ),
        }
    }

    /// `SHOW synchronous_commit` on connections of billow's own pool, on a new database whose
    /// default setting is `database_default` (the server's when `None`).
    async fn pool_settings(database_default: Option<&str>) -> Option<Vec<String>> {
        let admin_url = postgres_admin_url()?;
        let name = format!(
            "billow_durability_{}_{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap();
        if let Some(default) = database_default {
            admin
                .execute(
                    format!(r#"ALTER DATABASE "{name}" SET synchronous_commit = {default}"#)
                        .as_str(),
                )
                .await
                .unwrap();
        }
        let url: PostgresUrl = admin_url.parse().unwrap();
        let store = Store::open(&Database::Postgres(url.with_database_name(&name)))
            .await
            .unwrap();
        let Backend::Postgres(pool) = &store.backend else {
            unreachable!("a PostgreSQL store")
        };
        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS_CHECKED {
            connections.push(pool.acquire().await.unwrap());
        }
        let mut settings = Vec::new();
        for connection in &mut connections {
            let (setting,): (String,) = sqlx::query_as("SHOW synchronous_commit")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            settings.push(setting);
        }
        drop(connections);
        store.close().await;
        admin
            .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
            .await
            .unwrap();
        Some(settings)
    }

    #[tokio::test]
    async fn billow_keeps_postgres_commits_synchronous() {
        let Some(settings) = pool_settings(None).await else {
            return;
        };
        assert_eq!(settings, vec!["on"; CONNECTIONS_CHECKED]);
    }

    #[tokio::test]
    async fn billow_raises_a_default_of_off_to_on_on_its_connections() {
        let Some(settings) = pool_settings(Some("off")).await else {
            return;
        };
        assert_eq!(settings, vec!["on"; CONNECTIONS_CHECKED]);
    }

    #[tokio::test]
    async fn billow_keeps_a_default_that_is_durable_on_the_server() {
        let Some(settings) = pool_settings(Some("local")).await else {
            return;
        };
        assert_eq!(settings, vec!["local"; CONNECTIONS_CHECKED]);
    }

    /// Every `.rs` file under `directory`, and every `.sql` file.
    fn source_files(directory: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                source_files(&path, found);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "rs" || extension == "sql")
            {
                found.push(path);
            }
        }
    }

    /// Whether `text` sets `synchronous_commit` to `off`, in any of the forms SQL or sqlx's
    /// connect options take: `SET synchronous_commit = off`, `… TO 'off'`,
    /// `set_config('synchronous_commit', 'off', …)`, `("synchronous_commit", "off")`,
    /// `-c synchronous_commit=off` in a URL's options.
    fn turns_synchronous_commit_off(text: &str) -> bool {
        let squeezed: String = text
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '\'' | '"' | '`'))
            .collect();
        squeezed
            .match_indices("synchronous_commit")
            .any(|(at, name)| {
                let after = &squeezed[at + name.len()..];
                ["=off", "tooff", ",off", "%3doff"]
                    .iter()
                    .any(|assignment| after.starts_with(assignment))
            })
    }

    #[test]
    fn the_check_finds_each_way_of_turning_synchronous_commit_off() {
        for text in [
            "SET synchronous_commit = off",
            "SET LOCAL synchronous_commit TO 'off'",
            "SELECT set_config('synchronous_commit', 'off', true)",
            r#".options([("synchronous_commit", "off")])"#,
            "postgres://h/db?options=-c%20synchronous_commit%3Doff",
        ] {
            assert!(turns_synchronous_commit_off(text), "{text}");
        }
        for text in [
            "SELECT set_config('synchronous_commit', 'on', false) \
             WHERE current_setting('synchronous_commit') = 'off'",
            "SHOW synchronous_commit",
        ] {
            assert!(!turns_synchronous_commit_off(text), "{text}");
        }
    }

    /// No code that billow ships (each crate's `src`, before its tests, and the migrations)
    /// turns `synchronous_commit` off.
    #[test]
    fn no_billow_source_turns_synchronous_commit_off() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(crates).unwrap() {
            let crate_directory = entry.unwrap().path();
            for shipped in ["src", "migrations"] {
                let directory = crate_directory.join(shipped);
                if directory.is_dir() {
                    source_files(&directory, &mut files);
                }
            }
        }
        assert!(
            files.iter().any(|file| file.ends_with("durability.rs")),
            "the scan reads the crates' sources: {files:?}"
        );
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Test modules (at the end of a file, by convention) may turn it off on purpose.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
            assert!(
                !turns_synchronous_commit_off(shipped),
                "{} turns synchronous_commit off: commits billow reports would not be durable",
                file.display()
            );
        }
    }
}
