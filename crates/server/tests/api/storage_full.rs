//! A full disk: writes answer 503 `storage-full` with `Retry-After`, `/readyz` answers 503 while
//! they fail, and both recover by themselves once space is freed. On SQLite, on a small tmpfs
//! (mounting needs root; the test says so and does nothing otherwise).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use billow_billing::clock::ManualClock;
use billow_server::{router, AppState, PROBLEM_JSON};
use billow_store::{Database, Store, WorkspaceName};
use jiff::SignedDuration;
use serde_json::json;
use tempfile::TempDir;

use crate::helpers::{send_request, TestResponse, TEST_START};

/// A tmpfs of a few MiB mounted on a new directory, unmounted when dropped.
struct SmallFilesystem {
    directory: TempDir,
}

impl SmallFilesystem {
    /// `None`, with a message, when this process may not mount (not root, or no CAP_SYS_ADMIN).
    fn mount(size_mib: u32) -> Option<Self> {
        let directory = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(directory.path())
            .status();
        match mounted {
            Ok(status) if status.success() => Some(Self { directory }),
            outcome => {
                eprintln!(
                    "skipping the full-disk test: cannot mount a tmpfs ({outcome:?}); it needs \
                     root or CAP_SYS_ADMIN"
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.directory.path()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        // Lazy: the store's files may still be open when a failed assertion unwinds.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Writes `path` until the filesystem has no space left.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0xA5_u8; 64 * 1024];
    loop {
        if let Err(error) = file.write_all(&block).and_then(|()| file.sync_all()) {
            assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
            return;
        }
    }
}

/// A batch of 1,000 events of about 1 KiB each, ids starting at `first`.
fn batch(first: usize) -> String {
    let padding = "x".repeat(1_000);
    let events: Vec<_> = (first..first + 1_000)
        .map(|id| {
            json!({"specversion": "1.0", "id": id.to_string(), "source": "s", "type": "cpu",
                   "subject": "cus_1", "time": "2026-11-02T10:00:00Z",
                   "data": {"cores": 1, "padding": padding}})
        })
        .collect();
    serde_json::to_string(&events).unwrap()
}

struct Api {
    router: axum::Router,
    clock: Arc<ManualClock>,
    key: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<String>) -> TestResponse {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.key));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, Body::from);
        send_request(self.router.clone(), request.body(body).unwrap()).await
    }

    async fn post_events(&self, first: usize) -> TestResponse {
        self.call(Method::POST, "/api/v1/events", Some(batch(first)))
            .await
    }

    async fn readyz(&self) -> TestResponse {
        self.call(Method::GET, "/readyz", None).await
    }
}

fn assert_storage_full(response: &TestResponse) {
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
    assert_eq!(response.content_type(), PROBLEM_JSON);
    assert_eq!(response.json()["type"], "urn:billow:problem:storage-full");
    assert_eq!(response.headers["retry-after"], "30");
}

#[tokio::test]
async fn a_full_disk_is_a_503_with_retry_after_and_not_ready_until_space_is_freed() {
    let Some(filesystem) = SmallFilesystem::mount(16) else {
        return;
    };
    let database = Database::sqlite(filesystem.path().join("billow.db"));
    let store = Store::open(&database).await.unwrap();
    store.migrate().await.unwrap();
    let now = TEST_START.parse().unwrap();
    let name = WorkspaceName::parse("Acme").unwrap();
    let workspace = store.workspace_named_or_created(&name, now).await.unwrap();
    let (_, secret) = store.create_api_key(&workspace.id, now).await.unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let api = Api {
        router: router(AppState::new(store.clone()).with_clock(clock.clone())),
        clock,
        key: secret.expose().to_owned(),
    };
    assert_eq!(api.post_events(0).await.status, StatusCode::ACCEPTED);
    let filler: PathBuf = filesystem.path().join("filler");
    fill(&filler);

    // SQLite may first fill space it already holds: write until a batch needs more.
    let mut first_failure = None;
    for attempt in 1..=50 {
        let response = api.post_events(attempt * 1_000).await;
        if response.status != StatusCode::ACCEPTED {
            first_failure = Some(response);
            break;
        }
    }
    let failure = first_failure.expect("a write fails on a full disk");
    let not_ready = api.readyz().await;
    api.clock.advance(SignedDuration::from_secs(31));
    let ready_after_the_wait = api.readyz().await;
    let still_full = api.post_events(100_000).await;
    let not_ready_again = api.readyz().await;
    std::fs::remove_file(&filler).unwrap();
    let with_space = api.post_events(200_000).await;
    let ready = api.readyz().await;

    assert_storage_full(&failure);
    assert_storage_full(&not_ready);
    assert_eq!(ready_after_the_wait.status, StatusCode::OK);
    assert_storage_full(&still_full);
    assert_storage_full(&not_ready_again);
    assert_eq!(
        with_space.status,
        StatusCode::ACCEPTED,
        "{}",
        with_space.body
    );
    assert_eq!(with_space.json()["accepted"], 1_000);
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    store.close().await;
}
