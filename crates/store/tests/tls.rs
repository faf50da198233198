//! PostgreSQL over TLS, as `sslmode` and `sslrootcert` in the URL ask (libpq's meanings), checked
//! from the server's side (`pg_stat_ssl`) on the connections the `Store` opened. Needs the test
//! server to have SSL on with its certificate readable here (a local Debian cluster: the
//! "snakeoil" certificate, for `localhost`); otherwise each test says so and does nothing.

// Only the connection helpers: no check here runs on both backends.
#[allow(unused_macros)]
mod support;

use std::path::PathBuf;

use billow_store::{Database, Store};
use sqlx::{Connection, Executor, PgConnection, Row};

use support::{postgres_admin_url, unique_name};

/// The test server, when it speaks TLS with a certificate this process can read.
struct TlsServer {
    admin_url: String,
    /// `user[:password]` of the admin URL.
    userinfo: String,
    port: u16,
    /// The server's certificate, which is its own root (self-signed).
    certificate: PathBuf,
}

impl TlsServer {
    async fn find() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        let ssl: String = admin.fetch_one("SHOW ssl").await.unwrap().get(0);
        let certificate: String = admin.fetch_one("SHOW ssl_cert_file").await.unwrap().get(0);
        let certificate = PathBuf::from(certificate);
        if ssl != "on" || std::fs::metadata(&certificate).is_err() {
            eprintln!(
                "skipping a TLS test: the test server has ssl={ssl}, certificate {} {}",
                certificate.display(),
                if certificate.exists() {
                    "readable"
                } else {
                    "not readable here"
                }
            );
            return None;
        }
        let rest = admin_url.split_once("://").unwrap().1;
        let (userinfo, address) = rest.rsplit_once('@').unwrap();
        let host_port = address.split('/').next().unwrap();
        let port = host_port
            .rsplit_once(':')
            .map_or(5432, |(_, port)| port.parse().unwrap());
        Some(Self {
            userinfo: userinfo.to_owned(),
            admin_url,
            port,
            certificate,
        })
    }

    /// A URL of the database `name` on `host` with the query `parameters`.
    fn url(&self, host: &str, name: &str, parameters: &str) -> Database {
        let url = format!(
            "postgres://{}@{host}:{}/{name}?{parameters}",
            self.userinfo, self.port
        );
        Database::from_url(&url).unwrap()
    }

    async fn create_database(&self) -> String {
        let name = unique_name("billow_tls");
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap();
        name
    }

    async fn drop_database(&self, name: &str) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        admin
            .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
            .await
            .unwrap();
    }

    /// Whether each connection to `name` is encrypted, as the server sees them.
    async fn encrypted(&self, name: &str) -> Vec<bool> {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query_scalar(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1",
        )
        .bind(name)
        .fetch_all(&mut admin)
        .await
        .unwrap()
    }

    /// Opens and migrates a store on `database`, and tells how its connections are encrypted.
    async fn open(&self, database: &Database, name: &str) -> Vec<bool> {
        let store = Store::open(database).await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        let encrypted = self.encrypted(name).await;
        store.close().await;
        encrypted
    }
}

#[tokio::test]
async fn sslmode_require_encrypts_every_connection_and_disable_none() {
    let Some(server) = TlsServer::find().await else {
        return;
    };
    let required = server.create_database().await;
    let disabled = server.create_database().await;

    let with_tls = server
        .open(
            &server.url("127.0.0.1", &required, "sslmode=require"),
            &required,
        )
        .await;
    let without = server
        .open(
            &server.url("127.0.0.1", &disabled, "sslmode=disable"),
            &disabled,
        )
        .await;

    assert!(
        !with_tls.is_empty() && with_tls.iter().all(|&ssl| ssl),
        "{with_tls:?}"
    );
    assert!(
        !without.is_empty() && without.iter().all(|&ssl| !ssl),
        "{without:?}"
    );
    server.drop_database(&required).await;
    server.drop_database(&disabled).await;
}

#[tokio::test]
async fn sslmode_verify_full_checks_the_certificate_and_the_host_name() {
    let Some(server) = TlsServer::find().await else {
        return;
    };
    let name = server.create_database().await;
    let root = format!("sslrootcert={}", server.certificate.display());

    // The Debian certificate names `localhost`, not the address 127.0.0.1.
    let verified = server
        .open(
            &server.url("localhost", &name, &format!("sslmode=verify-full&{root}")),
            &name,
        )
        .await;
    let wrong_host =
        Store::open(&server.url("127.0.0.1", &name, &format!("sslmode=verify-full&{root}"))).await;

    assert!(
        !verified.is_empty() && verified.iter().all(|&ssl| ssl),
        "{verified:?}"
    );
    let error = wrong_host.expect_err("a certificate for another host name is refused");
    assert!(
        format!("{:?}", error).contains("NotValidForName"),
        "{error:?}"
    );
    server.drop_database(&name).await;
}
