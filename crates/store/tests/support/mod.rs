//! What every storage test binary shares: a fresh SQLite store, a fresh PostgreSQL database on
//! the test server (`BILLOW_TEST_DATABASE_URL`), and `on_both_backends!`, which runs each check
//! once on each. Each test binary declares `#[macro_use] mod support;`.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use billow_core::Currency;
use billow_store::{Address, Customer, Database, PostgresUrl, Store, TaxId};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

pub const POSTGRES_URL_VARIABLE: &str = "BILLOW_TEST_DATABASE_URL";
pub const SKIP_POSTGRES_VARIABLE: &str = "BILLOW_SKIP_POSTGRES";

/// A name no other test run uses: test processes run in parallel against one server.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{count}", std::process::id())
}

/// A customer with every field set: email, address, a tax id, a currency with no minor unit and
/// the last possible billing-cycle day.
pub fn customer(id: &str, external_id: &str, parent_id: Option<&str>) -> Customer {
    Customer {
        id: id.into(),
        external_id: external_id.to_owned(),
        name: "Team 42".to_owned(),
        email: Some("billing@team42.example".to_owned()),
        address: Some(Address {
            line1: Some("Hauptstr. 1".to_owned()),
            country: Some("DE".to_owned()),
            ..Address::default()
        }),
        tax_ids: vec![TaxId {
            kind: "eu_vat".to_owned(),
            value: "DE123456789".to_owned(),
        }],
        currency: Currency::from_code("JPY").unwrap(),
        time_zone: "Asia/Tokyo".to_owned(),
        billing_cycle_day: 31,
        parent_id: parent_id.map(str::to_owned).map(Into::into),
        invoicing: billow_core::scenario::Invoicing::Consolidated,
        net_days: Some(14),
        owner: None,
    }
}

/// A migrated store on a new SQLite file; the directory is removed when the guard drops.
pub async fn sqlite_store() -> (Store, TempDir) {
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
pub fn postgres_admin_url() -> Option<String> {
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
pub struct PostgresDatabase {
    /// As given, password included: the admin connection needs it.
    admin_url: String,
    url: PostgresUrl,
    name: String,
}

impl PostgresDatabase {
    pub async fn create(admin_url: String) -> Self {
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

    pub fn database(&self) -> Database {
        Database::Postgres(self.url.clone())
    }

    /// A direct connection to this database, for what a test does below the `Store`.
    pub async fn connect(&self) -> PgConnection {
        let options = PgConnectOptions::from_str(&self.admin_url)
            .unwrap()
            .database(&self.name);
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|error| panic!("could not connect to {}: {error}", self.name))
    }

    pub async fn drop_database(self) {
        let mut admin = admin_connection(&self.admin_url).await;
        let name = &self.name;
        admin
            .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
            .await
            .unwrap_or_else(|error| panic!("could not drop the database {name}: {error}"));
    }
}

pub async fn admin_connection(admin_url: &str) -> PgConnection {
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
                    let (store, _directory) = crate::support::sqlite_store().await;
                    super::$check(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(admin_url) = crate::support::postgres_admin_url() else {
                        return;
                    };
                    let database = crate::support::PostgresDatabase::create(admin_url).await;
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
