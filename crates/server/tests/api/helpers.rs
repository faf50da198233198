//! Arrange helpers shared by the API tests.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use billow_server::{router, AppState, Application, Settings};
use billow_store::{Database, Store};
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
        let directory = tempfile::tempdir().unwrap();
        let settings = Settings {
            bind: "127.0.0.1:0".parse().unwrap(),
            database: Database::sqlite(directory.path().join("billow.db")),
        };
        let application = Application::build(settings).await.unwrap();
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
