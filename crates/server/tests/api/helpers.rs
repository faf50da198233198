//! Arrange helpers shared by the API tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use billow_billing::clock::{Clock, ManualClock};
use billow_server::{router, AppState, Application, ConnectionLimits, Settings};
use billow_store::{Database, PostgresUrl, Store, WorkspaceId, WorkspaceName};
use jiff::Timestamp;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// The largest response body a test reads.
const BODY_LENGTH_MAX: usize = 1024 * 1024;

/// A migrated store on a new SQLite file, removed when the directory guard drops.
pub async fn sqlite_store() -> (Store, TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let store = Store::open(&Database::sqlite(directory.path().join("billow.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, directory)
}

/// The router over a fresh store.
pub async fn test_router() -> (Router, Store, TempDir) {
    let (store, directory) = sqlite_store().await;
    (router(AppState::new(store.clone())), store, directory)
}

/// A response, its body read whole.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map(|value| value.to_str().unwrap())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Calls `router` once, without a socket.
pub async fn send(router: Router, method: Method, path: &str) -> TestResponse {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), BODY_LENGTH_MAX)
        .await
        .unwrap();
    TestResponse {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The application served on port 0 in a background task.
pub struct TestApp {
    pub address: SocketAddr,
    pub directory: TempDir,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    /// Builds the application with default settings but port 0 and a data file in a new directory.
    pub async fn spawn() -> Self {
        Self::spawn_with_limits(ConnectionLimits::default()).await
    }

    /// [`TestApp::spawn`], serving connections within `limits`.
    pub async fn spawn_with_limits(limits: ConnectionLimits) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let settings = Settings {
            bind: "127.0.0.1:0".parse().unwrap(),
            database: Database::sqlite(directory.path().join("billow.db")),
        };
        let application = Application::build(settings)
            .await
            .unwrap()
            .with_connection_limits(limits);
        let address = application.address();
        assert_ne!(application.port(), 0);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until(async {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        Self {
            address,
            directory,
            shutdown,
            server,
        }
    }

    /// The secret of a new API key of a new workspace, made in the served database.
    pub async fn api_key(&self) -> String {
        let database = Database::sqlite(self.directory.path().join("billow.db"));
        let store = Store::open(&database).await.unwrap();
        let now: Timestamp = TEST_START.parse().unwrap();
        let name = WorkspaceName::parse("Acme").unwrap();
        let workspace = store.workspace_named_or_created(&name, now).await.unwrap();
        let (_, secret) = store.create_api_key(&workspace.id, now).await.unwrap();
        store.close().await;
        secret.expose().to_owned()
    }

    /// Asks the server to stop and waits until it has.
    pub async fn stop(self) {
        self.shutdown.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

/// Sends `GET path` as raw HTTP/1.1 and returns the whole response as text.
pub async fn raw_get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Which database a [`TestApi`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const POSTGRES_URL_VARIABLE: &str = "BILLOW_TEST_DATABASE_URL";
const SKIP_POSTGRES_VARIABLE: &str = "BILLOW_SKIP_POSTGRES";

/// What keeps a test's database alive, and removes it at the end.
enum DatabaseGuard {
    // Held only to remove the directory when dropped.
    Sqlite(#[allow(dead_code)] TempDir),
    Postgres { admin_url: String, name: String },
}

/// The router over a fresh, migrated database of either backend, with a settable clock: the
/// spawn helper of the access, customer, idempotency and OpenAPI tests.
pub struct TestApi {
    pub router: Router,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    guard: DatabaseGuard,
}

/// Where the test clock starts.
pub const TEST_START: &str = "2026-11-22T08:00:00Z";

impl TestApi {
    /// A fresh database on `backend`, or `None` when PostgreSQL tests are skipped on purpose
    /// (`BILLOW_SKIP_POSTGRES=1`).
    ///
    /// # Panics
    ///
    /// When `BILLOW_TEST_DATABASE_URL` is unset and skipping was not asked for: a missing server
    /// must not pass as a green run.
    pub async fn new(backend: Backend) -> Option<Self> {
        let (database, guard) = match backend {
            Backend::Sqlite => {
                let directory = tempfile::tempdir().unwrap();
                let database = Database::sqlite(directory.path().join("billow.db"));
                (database, DatabaseGuard::Sqlite(directory))
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = unique_database_name();
                let parsed: PostgresUrl = admin_url.parse().unwrap();
                let mut admin = PgConnection::connect(&admin_url).await.unwrap();
                admin
                    .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                    .await
                    .unwrap();
                let database = Database::Postgres(parsed.with_database_name(&name));
                (database, DatabaseGuard::Postgres { admin_url, name })
            }
        };
        let store = Store::open(&database).await.unwrap();
        store.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new(TEST_START.parse().unwrap()));
        let state = AppState::new(store.clone()).with_clock(clock.clone());
        Some(Self {
            router: router(state),
            store,
            clock,
            guard,
        })
    }

    /// Closes the store and drops a PostgreSQL test database (an SQLite one goes with its
    /// directory).
    pub async fn finish(self) {
        self.store.close().await;
        if let DatabaseGuard::Postgres { admin_url, name } = self.guard {
            let mut admin = PgConnection::connect(&admin_url).await.unwrap();
            admin
                .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
                .await
                .unwrap();
        }
    }

    /// A workspace named `name` (created when absent) and the secret of a new API key for it.
    pub async fn workspace_key(&self, name: &str) -> (WorkspaceId, String) {
        let now: Timestamp = TEST_START.parse().unwrap();
        let workspace = self
            .store
            .workspace_named_or_created(&WorkspaceName::parse(name).unwrap(), now)
            .await
            .unwrap();
        let (_, secret) = self.store.create_api_key(&workspace.id, now).await.unwrap();
        (workspace.id, secret.expose().to_owned())
    }

    /// A new API key of `workspace_id`: its id and its secret.
    pub async fn api_key(&self, workspace_id: &WorkspaceId) -> (String, String) {
        let (key, secret) = self
            .store
            .create_api_key(workspace_id, self.clock.now())
            .await
            .unwrap();
        (key.id, secret.expose().to_owned())
    }

    /// Sends `method path` with `key` as Bearer credential and `body` as JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let body = body.map(|body| body.to_string());
        self.call_raw(method, path, key, &[], body).await
    }

    /// Sends `method path` with `key`, extra `headers` and a raw `body`.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, Body::from);
        self.send(request.body(body).unwrap()).await
    }

    /// Sends `request` through the router, without a socket.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_request(self.router.clone(), request).await
    }

    /// Every path the axum router holds, read from its `Debug` output (axum has no public route
    /// listing; the paths appear there exactly as registered, in quotes).
    pub fn routed_paths(&self) -> std::collections::BTreeSet<String> {
        let debug = format!("{:?}", self.router);
        let mut paths = std::collections::BTreeSet::new();
        let mut rest = debug.as_str();
        while let Some(start) = rest.find("\"/") {
            let after_quote = &rest[start + 1..];
            let end = after_quote.find('"').unwrap();
            paths.insert(after_quote[..end].to_owned());
            rest = &after_quote[end..];
        }
        assert!(
            paths.contains("/healthz") && paths.iter().any(|path| path.starts_with("/api/v1/")),
            "the router's Debug output no longer shows its paths: {paths:?}"
        );
        paths
    }

    /// `path` with every `{parameter}` segment replaced by `value`.
    pub fn concrete_path(path: &str, value: &str) -> String {
        path.split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    value
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `POST /api/v1/customers` with `body`; panics unless it answers 201. Returns the customer.
    pub async fn create_customer(&self, key: &str, body: Value) -> Value {
        let response = self
            .call(Method::POST, "/api/v1/customers", Some(key), Some(body))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.json()
    }
}

/// Calls `router` once with `request`, without a socket, and reads the whole response.
pub async fn send_request(router: Router, request: Request<Body>) -> TestResponse {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), BODY_LENGTH_MAX)
        .await
        .unwrap();
    TestResponse {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The admin URL of the test server, or `None` when the PostgreSQL tests are skipped on purpose.
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

/// A database name no other test (or test process) uses.
fn unique_database_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("billow_api_{}_{nanos}_{count}", std::process::id())
}

/// Runs each `async fn(&TestApi)` as two tests, on a fresh SQLite database and on a fresh
/// PostgreSQL one: `on_both_backends!(a_check, another_check);`.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let api = $crate::helpers::TestApi::new($crate::helpers::Backend::Sqlite)
                        .await
                        .unwrap();
                    super::$check(&api).await;
                    api.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(api) =
                        $crate::helpers::TestApi::new($crate::helpers::Backend::Postgres).await
                    else {
                        return;
                    };
                    super::$check(&api).await;
                    api.finish().await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;
