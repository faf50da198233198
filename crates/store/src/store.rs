//! [`Store`]: a pool of connections to SQLite or PostgreSQL, its migrations and its health check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::database::{Database, PostgresUrl};
use crate::events::activity::WriterActivity;
use crate::events::state::EventsState;
use crate::keys::cache::CredentialCache;

/// Migrations are compiled into the binary, one folder per backend: the SQL dialects differ.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a caller waits for a free connection before the store reports an error. Bounded so
/// that `/readyz` answers while the database is down instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an SQLite connection waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; a few connections serve concurrent readers under WAL.
const SQLITE_CONNECTIONS_MAX: u32 = 8;
/// How often the SQLite checkpointer runs (see `spawn_checkpointer`).
const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// Rounds the checkpointer skips, at most, while the event writer is saturated (2 s).
const SQLITE_CHECKPOINT_DEFERRED_MAX: u32 = 10;
/// WAL pages after which a commit checkpoints by itself (the checkpointer normally does it):
/// 512 MiB of pages of a new file's size, beyond what the checkpointer lets grow when it defers
/// (about 200 MiB in 2 s of the fastest ingestion).
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 512 * 1024 * 1024 / SQLITE_PAGE_SIZE;
/// The WAL file is cut back to this size when a checkpoint lets it start over, after it has
/// grown during a burst.
const SQLITE_WAL_SIZE_LIMIT_BYTES: u32 = 64 * 1024 * 1024;
/// Each SQLite connection's page cache, in KiB (see `open_sqlite`).
const SQLITE_CACHE_KIB: u32 = 16 * 1024;
/// The page size of a new SQLite file ([`open_sqlite`]).
const SQLITE_PAGE_SIZE: u32 = 16 * 1024;
/// Per billow node; the server's `max_connections` bounds the sum over nodes.
const POSTGRES_CONNECTIONS_MAX: u32 = 16;

/// billow's persistence: cheap to clone, every clone shares one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) backend: Backend,
    pub(crate) events: EventsState,
    /// Recently authenticated credentials.
    pub(crate) credentials: CredentialCache,
    /// SQLite: stops the background checkpointer when the last clone is dropped.
    _checkpointer: Option<std::sync::Arc<StopOnDrop>>,
}

/// Tells a background task to stop when dropped.
#[derive(Debug)]
struct StopOnDrop(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

/// Two typed pools behind an enum, rather than `sqlx::AnyPool`.
///
/// Most queries are one SQL text for both backends (the convention in `crate::sql`), expanded
/// once per typed pool by `with_pool!`; the typed pools keep each backend's full type support,
/// which the `Any` driver narrows, for the queries that do differ (the usage events' write path),
/// and SQLite's connection options (WAL, `synchronous`, foreign keys, busy timeout) are set as
/// typed options on every connection rather than as URL parameters.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens a pool to `database`. An SQLite file and its parent directories are created when
    /// absent; a PostgreSQL server must be reachable, as one connection is made at once.
    ///
    /// # Errors
    ///
    /// [`OpenStoreError`] when the directory cannot be created or the database cannot be opened.
    #[tracing::instrument(skip_all, fields(database = %database))]
    pub async fn open(database: &Database) -> Result<Self, OpenStoreError> {
        let events = EventsState::default();
        let (backend, checkpointer) = match database {
            Database::Sqlite { path } => {
                let pool = open_sqlite(path).await?;
                let activity = events.writer_activity.clone();
                let checkpointer = spawn_checkpointer(pool.clone(), activity);
                (Backend::Sqlite(pool), Some(checkpointer))
            }
            Database::Postgres(url) => (Backend::Postgres(open_postgres(url).await?), None),
        };
        Ok(Self {
            _checkpointer: checkpointer,
            backend,
            events,
            credentials: CredentialCache::default(),
        })
    }

    /// Applies the migrations this database has not seen yet. Safe to run on every start and from
    /// several nodes at once: sqlx takes a database lock while it migrates.
    ///
    /// # Errors
    ///
    /// [`MigrateStoreError`] when a migration fails or the database has migrations this binary
    /// does not know (it is older than the schema).
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), MigrateStoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => match SQLITE_MIGRATOR.run(pool).await {
                Ok(()) => crate::events::sqlite::delete_abandoned_pending_chunks(pool)
                    .await
                    .map_err(MigrateError::Execute),
                Err(error) => Err(error),
            },
            Backend::Postgres(pool) => POSTGRES_MIGRATOR.run(pool).await,
        }
        .map_err(MigrateStoreError)
    }

    /// Runs a trivial query, to tell whether the database answers.
    ///
    /// # Errors
    ///
    /// [`PingStoreError`] when no connection can be had or the query fails.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), PingStoreError> {
        const QUERY: &str = "SELECT 1";
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::query(QUERY).execute(pool).await.map(drop),
            Backend::Postgres(pool) => sqlx::query(QUERY).execute(pool).await.map(drop),
        }
        .map_err(PingStoreError)
    }

    /// Closes every connection, waiting for those in use to be returned. Later calls on any
    /// clone of this store fail.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => {
                crate::events::sqlite::close_writer(&self.events.sqlite_keys).await;
                pool.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

async fn open_sqlite(path: &Path) -> Result<SqlitePool, OpenStoreError> {
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        // Blocking, but once per process and before anything else is served.
        std::fs::create_dir_all(directory).map_err(|source| OpenStoreError::CreateDirectory {
            path: directory.to_path_buf(),
            source,
        })?;
    }
    // FULL on every connection: each commit syncs the WAL before it returns, so nothing billow
    // reports (a number given, an invoice finalized, a payment or credit note recorded, an event
    // accepted, an API write answered) is lost to a power cut. NORMAL syncs only at checkpoints
    // and would lose the commits of up to the last checkpoint interval, which for a billing run
    // means numbers already reported being issued again (docs/billing-runs.md, "Durable before
    // reported"; crates/cli/tests/power_cut.rs). One connection setting rather than FULL only
    // for the billing writes: every write billow acknowledges should survive, and a second pool
    // or a per-transaction PRAGMA would be easy to bypass. The cost is one WAL fsync per write
    // transaction (about 0.4 ms here, plus writing out what it wrote); billing runs commit once
    // per batch of 1,000 customers, and `billow bench billing-run --subscriptions 20000` took
    // about 10 % longer than with NORMAL (docs/billing-runs.md has the figures).
    // See https://sqlite.org/pragma.html#pragma_synchronous.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // 16 KiB pages for a new file (an existing one keeps the size it was made with): event
        // chunks are BLOBs of tens to hundreds of KiB, written once and read whole, and every
        // page of one is a WAL frame of its own, a write call, and a link of an overflow chain
        // that deleting the chunk walks. Ingestion ran ~10 % faster than with SQLite's 4 KiB
        // (alternating runs of `billow bench ingest`); 64 KiB gained nothing more.
        .page_size(SQLITE_PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        // A page cache of 16 MiB (the default is 2 MiB): a billing run's write transaction
        // (about 4 MiB of invoices per batch) fits in it instead of spilling pages to the WAL
        // before its commit, and the indexes' inner pages stay cached between transactions.
        // Pages are allocated as they are used, so an idle connection holds none.
        .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
        // Statement journals (a multi-row INSERT with ON CONFLICT keeps one, to undo itself)
        // and temporary b-trees in memory, not in temporary files.
        .pragma("temp_store", "memory")
        // The store's checkpointer moves the WAL into the database file in the background
        // (`spawn_checkpointer`); a commit checkpoints itself only when the WAL has grown past
        // this many pages (512 MiB in a new file), should the checkpointer fall behind.
        .pragma(
            "wal_autocheckpoint",
            SQLITE_AUTOCHECKPOINT_PAGES.to_string(),
        )
        .pragma(
            "journal_size_limit",
            SQLITE_WAL_SIZE_LIMIT_BYTES.to_string(),
        );
    SqlitePoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS_MAX)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| OpenStoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })
}

/// Starts the task that checkpoints the WAL of `pool`'s database every
/// [`SQLITE_CHECKPOINT_INTERVAL`], until the returned guard is dropped or the pool is closed.
///
/// With SQLite's default, the commit that takes the WAL past 1,000 pages (4 MiB) copies the WAL
/// into the database file and syncs it before it returns: every large write transaction (a
/// billing batch's invoices, a burst of ingested chunks) paid for a checkpoint on the one write
/// path. A PASSIVE checkpoint on another connection does the same work beside the writer: it
/// takes no lock that writers or readers wait for, and copies what no reader still needs.
///
/// While the event writer is saturated (a burst of ingestion), the checkpointer skips up to
/// [`SQLITE_CHECKPOINT_DEFERRED_MAX`] rounds in a row: a checkpoint writes every page of the WAL a
/// second time, on the disk the writer's commits wait for (ingestion wrote ~250 MB/s there, near
/// the disk's ~360 MB/s, BENCHMARKS.md). The WAL grows meanwhile (by about 200 MiB in 2 s at
/// the fastest) and is cut back to [`SQLITE_WAL_SIZE_LIMIT_BYTES`] when it starts over.
fn spawn_checkpointer(
    pool: SqlitePool,
    activity: std::sync::Arc<WriterActivity>,
) -> std::sync::Arc<StopOnDrop> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut deferred = 0;
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(SQLITE_CHECKPOINT_INTERVAL) => {}
            }
            if pool.is_closed() {
                break;
            }
            if activity.saturated() && deferred < SQLITE_CHECKPOINT_DEFERRED_MAX {
                deferred += 1;
                continue;
            }
            deferred = 0;
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // A busy database or a closing pool: the next round (or a commit) catches up.
                tracing::debug!(error.message = %error, "WAL checkpoint did not run");
            }
        }
    });
    std::sync::Arc::new(StopOnDrop(stop))
}

async fn open_postgres(url: &PostgresUrl) -> Result<PgPool, OpenStoreError> {
    let connect_error = |source| OpenStoreError::Postgres {
        url: url.clone(),
        source,
    };
    // One direct connection first: a pool retries until its acquire timeout and then reports
    // only that it timed out, hiding why (connection refused, unknown database, bad password).
    let mut probe = url
        .connect_options()
        .connect()
        .await
        .map_err(connect_error)?;
    crate::durability::warn_when_commits_are_asynchronous(&mut probe).await;
    probe.close().await.map_err(connect_error)?;
    PgPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS_MAX)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|connection, _| {
            Box::pin(crate::durability::keep_commits_synchronous(connection))
        })
        .connect_with(url.connect_options().clone())
        .await
        .map_err(connect_error)
}

/// Why [`Store::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The directory that should hold the SQLite file could not be created.
    #[error("could not create the directory {}", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite file could not be opened or configured.
    #[error("could not open the SQLite database {}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// The PostgreSQL server could not be reached or refused the connection.
    #[error("could not connect to PostgreSQL at {url}")]
    Postgres {
        url: PostgresUrl,
        #[source]
        source: sqlx::Error,
    },
}

/// Why [`Store::migrate`] failed.
#[derive(Debug, thiserror::Error)]
#[error("could not migrate the database")]
pub struct MigrateStoreError(#[source] MigrateError);

/// Why [`Store::ping`] failed.
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer")]
pub struct PingStoreError(#[source] sqlx::Error);

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_store(directory: &std::path::Path) -> Store {
        Store::open(&Database::sqlite(directory.join("billow.db")))
            .await
            .unwrap()
    }

    /// The size of the database file, which grows only when a checkpoint copies pages into it.
    fn database_bytes(directory: &std::path::Path) -> u64 {
        std::fs::metadata(directory.join("billow.db"))
            .unwrap()
            .len()
    }

    /// While the event writer is saturated the checkpointer skips its rounds, but not for more
    /// than [`SQLITE_CHECKPOINT_DEFERRED_MAX`] in a row.
    #[tokio::test]
    async fn the_checkpointer_defers_to_a_saturated_writer_for_a_while() {
        let directory = tempfile::tempdir().unwrap();
        let store = sqlite_store(directory.path()).await;
        store.events.writer_activity.set_busy(true);
        store.migrate().await.unwrap();
        let before = database_bytes(directory.path());

        tokio::time::sleep(SQLITE_CHECKPOINT_INTERVAL * 4).await;
        let while_deferring = database_bytes(directory.path());
        tokio::time::sleep(SQLITE_CHECKPOINT_INTERVAL * (SQLITE_CHECKPOINT_DEFERRED_MAX + 2)).await;
        let after_the_longest_deferral = database_bytes(directory.path());

        assert_eq!(while_deferring, before, "no checkpoint while saturated");
        assert!(
            after_the_longest_deferral > before,
            "a checkpoint after {SQLITE_CHECKPOINT_DEFERRED_MAX} rounds skipped: {after_the_longest_deferral} bytes"
        );
    }

    /// A writer that is not saturated has the WAL checkpointed on the next round.
    #[tokio::test]
    async fn the_checkpointer_runs_when_the_writer_is_not_saturated() {
        let directory = tempfile::tempdir().unwrap();
        let store = sqlite_store(directory.path()).await;
        store.migrate().await.unwrap();
        let before = database_bytes(directory.path());

        tokio::time::sleep(SQLITE_CHECKPOINT_INTERVAL * 3).await;

        assert!(database_bytes(directory.path()) > before, "checkpointed");
    }
}
