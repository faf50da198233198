//! One suite, run against both backends: each check is an `async fn(Store)`, called once with a
//! fresh SQLite file and once with a fresh PostgreSQL database.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use billow_store::{
    Database, InsertWorkspaceError, PostgresUrl, Store, Workspace, WorkspaceId, WorkspaceName,
};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

const POSTGRES_URL_VARIABLE: &str = "BILLOW_TEST_DATABASE_URL";
const SKIP_POSTGRES_VARIABLE: &str = "BILLOW_SKIP_POSTGRES";

fn workspace(id: &str, name: &str, created_at: &str) -> Workspace {
    Workspace {
        id: WorkspaceId::parse(id).unwrap(),
        name: WorkspaceName::parse(name).unwrap(),
        created_at: created_at.parse().unwrap(),
    }
}

async fn a_migrated_store_stores_and_loads_a_workspace(store: Store) {
    let acme = workspace("ws_acme", "Acme Cloud", "2026-11-22T08:00:00.123456Z");

    store.insert_workspace(&acme).await.unwrap();

    assert_eq!(store.workspace(&acme.id).await.unwrap(), Some(acme));
    let unknown = WorkspaceId::parse("ws_unknown").unwrap();
    assert_eq!(store.workspace(&unknown).await.unwrap(), None);
}

async fn created_at_is_kept_to_the_microsecond(store: Store) {
    let precise = workspace("ws_precise", "Precise", "2026-11-22T08:00:00.123456789Z");

    store.insert_workspace(&precise).await.unwrap();

    let loaded = store.workspace(&precise.id).await.unwrap().unwrap();
    assert_eq!(
        loaded.created_at,
        "2026-11-22T08:00:00.123456Z".parse().unwrap()
    );
}

async fn a_taken_id_or_name_is_a_typed_error(store: Store) {
    let acme = workspace("ws_acme", "Acme Cloud", "2026-11-22T08:00:00Z");
    store.insert_workspace(&acme).await.unwrap();

    let same_name = workspace("ws_other", "Acme Cloud", "2026-11-22T09:00:00Z");
    let same_id = workspace("ws_acme", "Other Cloud", "2026-11-22T09:00:00Z");

    assert!(matches!(
        store.insert_workspace(&same_name).await,
        Err(InsertWorkspaceError::NameTaken { name }) if name == same_name.name
    ));
    assert!(matches!(
        store.insert_workspace(&same_id).await,
        Err(InsertWorkspaceError::IdTaken { id }) if id == same_id.id
    ));
}

async fn migrating_twice_changes_nothing(store: Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn a_closed_store_does_not_answer_a_ping(store: Store) {
    store.ping().await.unwrap();

    store.close().await;

    assert!(store.ping().await.is_err());
}

/// A name no other test run uses: test processes run in parallel against one server.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{count}", std::process::id())
}

/// A migrated store on a new SQLite file; the directory is removed when the guard drops.
async fn sqlite_store() -> (Store, TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let database = Database::sqlite(directory.path().join("data").join("billow.db"));
    let store = Store::open(&database).await.unwrap();
    store.migrate().await.unwrap();
    (store, directory)
}

/// The admin URL of the test server, or `None` when the PostgreSQL tests are explicitly skipped.
///
/// # Panics
///
/// When the URL is not set and skipping was not asked for: a missing server must not pass as a
/// green run.
fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(url) => Some(url),
        Err(_) if std::env::var(SKIP_POSTGRES_VARIABLE).as_deref() == Ok("1") => {
            eprintln!("skipping a PostgreSQL test: {SKIP_POSTGRES_VARIABLE}=1");
            None
        }
        Err(_) => panic!(
            "{POSTGRES_URL_VARIABLE} is not set. Point it at a PostgreSQL server whose user may \
             create databases, e.g. postgres://postgres@127.0.0.1:5432/postgres (scripts/test \
             does), or set {SKIP_POSTGRES_VARIABLE}=1 to skip the PostgreSQL tests."
        ),
    }
}

/// A new database on the test server, dropped by [`PostgresDatabase::drop_database`].
struct PostgresDatabase {
    /// As given, password included: the admin connection needs it.
    admin_url: String,
    url: PostgresUrl,
    name: String,
}

impl PostgresDatabase {
    async fn create(admin_url: String) -> Self {
        let parsed: PostgresUrl = admin_url.parse().unwrap_or_else(|error| {
            panic!("{POSTGRES_URL_VARIABLE} is not a PostgreSQL URL: {error}")
        });
        let name = unique_name("billow_test");
        let url = parsed.with_database_name(&name);
        let mut admin = admin_connection(&admin_url).await;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap_or_else(|error| panic!("could not create the database {name}: {error}"));
        Self {
            admin_url,
            url,
            name,
        }
    }

    fn database(&self) -> Database {
        Database::Postgres(self.url.clone())
    }

    async fn drop_database(self) {
        let mut admin = admin_connection(&self.admin_url).await;
        let name = &self.name;
        admin
            .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
            .await
            .unwrap_or_else(|error| panic!("could not drop the database {name}: {error}"));
    }
}

async fn admin_connection(admin_url: &str) -> PgConnection {
    PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|error| {
            panic!("could not connect to {POSTGRES_URL_VARIABLE} as admin: {error}")
        })
}

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL one.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (store, _directory) = super::sqlite_store().await;
                    super::$check(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(admin_url) = super::postgres_admin_url() else {
                        return;
                    };
                    let database = super::PostgresDatabase::create(admin_url).await;
                    let store = billow_store::Store::open(&database.database()).await.unwrap();
                    store.migrate().await.unwrap();
                    super::$check(store.clone()).await;
                    store.close().await;
                    database.drop_database().await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_migrated_store_stores_and_loads_a_workspace,
    created_at_is_kept_to_the_microsecond,
    a_taken_id_or_name_is_a_typed_error,
    migrating_twice_changes_nothing,
    a_closed_store_does_not_answer_a_ping,
);

#[tokio::test]
async fn opening_a_missing_postgres_database_says_why() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let url: PostgresUrl = admin_url.parse().unwrap();
    let missing = url.with_database_name(&unique_name("billow_missing"));

    let error = Store::open(&Database::Postgres(missing)).await.unwrap_err();

    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.contains("does not exist"), "{cause}");
}

#[tokio::test]
async fn opening_sqlite_creates_the_file_and_its_directory_in_wal_mode() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("data").join("billow.db");
    assert!(!path.exists());

    let store = Store::open(&Database::sqlite(&path)).await.unwrap();
    store.migrate().await.unwrap();

    assert!(path.exists());
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let (journal_mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(journal_mode, "wal");
    let (table_count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE name = 'workspaces'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(table_count, 1);
}
