//! The accept loop of `billow serve`, with the limits a reverse proxy's operator expects
//! ([`ConnectionLimits`]): how long a connection may sit idle between requests, how long a
//! request's head and body may take to arrive, and how many connections are open at once.
//!
//! axum's own `serve` has none of these: idle, slow-header and slow-body connections stayed open
//! indefinitely, and a few hundred idle sockets used up the process's file descriptors. Here each
//! connection is served by hyper's HTTP/1 server under a watcher that closes it once
//! - no request is in flight and no byte came for [`ConnectionLimits::idle_timeout`], or
//! - the first byte of a request came [`ConnectionLimits::header_read_timeout`] ago and its head is
//!   still incomplete (a slow or stalled client);
//!
//! and a request's body must arrive whole within [`ConnectionLimits::body_read_timeout`] of its
//! head, else the answer is a 408 problem and the connection is closed ([`limit_body_time`]).
//! Past [`ConnectionLimits::connections_max`] open connections, no more are accepted until one
//! closes: new ones wait in the kernel's listen backlog (and are refused by the kernel once the
//! backlog is full), so the limit never costs a file descriptor.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, CONNECTION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::error::ApiError;

/// Timeouts and the connection limit of the HTTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a connection may wait for a request, with none in flight, before it is closed.
    /// Longer than the usual idle timeout of a proxy's upstream connections (60 s), so that the
    /// proxy, not billow, closes a kept-alive connection, and never one it is about to reuse.
    pub idle_timeout: Duration,
    /// How long a request's head (request line and headers) may take from its first byte.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive whole, from its head.
    pub body_read_timeout: Duration,
    /// The most connections open at once.
    pub connections_max: usize,
}

impl Default for ConnectionLimits {
    /// 75 s idle (nginx's `keepalive_timeout`), 30 s for a head (hyper's default), 60 s for a body
    /// of up to 10 MiB (nginx's `client_body_timeout`, here for the whole body), and 512
    /// connections: well inside the usual limit of 1,024 file descriptors, with room for the
    /// database's.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(75),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            connections_max: 512,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then stops accepting,
/// lets the requests in flight finish, and returns once every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    assert!(limits.connections_max > 0, "at least one connection");
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    // Tells the connections to finish their request in flight and close.
    let (stop, stopped) = watch::channel(false);
    // Each connection holds a receiver: the sender is closed once all have ended.
    let (all_closed, open) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let connection = Connection {
                    app: app.clone(),
                    limits,
                    stopped: stopped.clone(),
                    _open: open.clone(),
                    _slot: slot,
                };
                tokio::spawn(connection.serve(stream));
            }
            // The peer gave up before it was accepted: nothing to do.
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                // Out of file descriptors (EMFILE) or another resource: retrying at once would
                // spin; the connections that close meanwhile make room.
                tracing::error!(error.message = %error, "could not accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    all_closed.closed().await;
}

fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// One accepted connection and what it holds until it closes.
struct Connection {
    app: Router,
    limits: ConnectionLimits,
    stopped: watch::Receiver<bool>,
    /// Dropped when the connection ends, for [`serve`] to know.
    _open: watch::Receiver<()>,
    /// One of the [`ConnectionLimits::connections_max`] slots.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(WatchedStream {
            inner: stream,
            activity: activity.clone(),
        });
        let service = {
            let activity = activity.clone();
            let app = self.app.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let in_flight = InFlight::start(activity.clone());
                let app = app.clone();
                async move {
                    let response = app.oneshot(request.map(Body::new)).await?;
                    // In flight until hyper has taken the whole body and drops it.
                    let response = response.map(|body| {
                        Body::new(body.map_frame(move |frame| {
                            let _in_flight = &in_flight;
                            frame
                        }))
                    });
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let mut connection = std::pin::pin!(connection);
        let mut stopping = false;
        loop {
            // Created before the deadline is read, so that no change in between is missed.
            let changed = activity.changed.notified();
            let deadline = activity.deadline(&self.limits);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(error.message = %error, "connection ended with an error");
                    }
                    return;
                }
                () = sleep_until(deadline) => {
                    if activity.deadline(&self.limits).is_some_and(|at| at <= Instant::now()) {
                        // Dropping the connection closes its socket: nothing is in flight.
                        tracing::debug!("closing an idle or slow connection");
                        return;
                    }
                }
                () = changed => {}
                _ = self.stopped.changed(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What a connection is doing, for its watcher.
struct Activity {
    state: Mutex<ActivityState>,
    /// Told when a deadline may have moved earlier: a request ended, or a request's first byte came.
    changed: Notify,
}

struct ActivityState {
    /// Requests whose response has not been wholly handed to hyper.
    in_flight: usize,
    /// Since when no request is in flight.
    idle_since: Instant,
    /// When the first byte of the next request came, if it did.
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state
            .lock()
            .expect("never poisoned: no code panics under it")
    }

    /// When the connection is to be closed if nothing changes; `None` while a request is in
    /// flight (its body has its own deadline, [`limit_body_time`]).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.head_started {
            Some(started) => started + limits.header_read_timeout,
            None => state.idle_since + limits.idle_timeout,
        })
    }

    /// Bytes came from the client.
    fn bytes_read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }
}

/// A request in flight, from its complete head until its response body is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        {
            let mut state = activity.lock();
            state.in_flight += 1;
            state.head_started = None;
        }
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.lock();
            state.in_flight -= 1;
            if state.in_flight == 0 {
                state.idle_since = Instant::now();
                state.head_started = None;
            }
        }
        self.0.changed.notify_one();
    }
}

/// The client's socket, telling its [`Activity`] when bytes come.
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            this.activity.bytes_read();
        }
        poll
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

/// The body of a request whose time ran out ([`limit_body_time`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {timeout_seconds} s")]
struct BodyTimedOut {
    timeout_seconds: u64,
}

/// Middleware: the request's body must arrive whole within `timeout` of its head. When it does
/// not, the handler reads an error, and the answer is a 408 problem that closes the connection
/// (what is left of the body is never read).
pub(crate) async fn limit_body_time(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    // A body known to be empty (most GETs) has nothing to wait for.
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let deadline = Instant::now() + timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = {
        let timed_out = timed_out.clone();
        request.map(|body| {
            let chunks = body.into_data_stream();
            let limited = futures_util::stream::unfold(Some(chunks), move |chunks| {
                let timed_out = timed_out.clone();
                async move {
                    let mut chunks = chunks?;
                    match tokio::time::timeout_at(deadline, chunks.next()).await {
                        Ok(Some(chunk)) => {
                            Some((chunk.map_err(axum::BoxError::from), Some(chunks)))
                        }
                        Ok(None) => None,
                        Err(_elapsed) => {
                            timed_out.store(true, Ordering::Release);
                            let error = BodyTimedOut {
                                timeout_seconds: timeout.as_secs(),
                            };
                            Some((Err::<Bytes, _>(axum::BoxError::from(error)), None))
                        }
                    }
                }
            });
            Body::from_stream(limited)
        })
    };
    let response = next.run(request).await;
    if !timed_out.load(Ordering::Acquire) {
        return response;
    }
    let mut response = ApiError::RequestTimeout {
        timeout_seconds: timeout.as_secs(),
    }
    .into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
