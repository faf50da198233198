//! One suite, run against both backends: each check is an `async fn(Store)`, called once with a
//! fresh SQLite file and once with a fresh PostgreSQL database.

#[macro_use]
mod support;

use billow_store::{
    Database, InsertWorkspaceError, PostgresUrl, Store, Workspace, WorkspaceId, WorkspaceName,
};
use sqlx::Connection;
use support::{postgres_admin_url, unique_name};

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
async fn opening_sqlite_creates_the_file_and_its_directory_in_wal_mode_with_16_kib_pages() {
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
    let (page_size,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(page_size, 16 * 1024);
    let (table_count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE name = 'workspaces'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(table_count, 1);
}
