//! `/metrics` in Prometheus's text exposition format: requests answered by status class and the
//! time spent answering them, counted by the request middleware.
//!
//! The counters are process-wide atomics: one `billow serve` is one process, and tests read the
//! difference between two scrapes rather than absolute values.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// Requests answered, by status class (index 0 for 1xx … 4 for 5xx).
static REQUESTS_BY_CLASS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// Microseconds spent answering requests, summed.
static REQUEST_MICROSECONDS: AtomicU64 = AtomicU64::new(0);

/// Counts one answered request.
pub(crate) fn record_request(status: u16, elapsed_us: u64) {
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    REQUESTS_BY_CLASS[class].fetch_add(1, Ordering::Relaxed);
    REQUEST_MICROSECONDS.fetch_add(elapsed_us, Ordering::Relaxed);
}

/// `GET /metrics`.
pub(crate) async fn metrics() -> impl IntoResponse {
    let mut text = String::with_capacity(512);
    text.push_str("# HELP billow_http_requests_total HTTP requests answered, by status class.\n");
    text.push_str("# TYPE billow_http_requests_total counter\n");
    for (index, counter) in REQUESTS_BY_CLASS.iter().enumerate() {
        let _ = writeln!(
            text,
            "billow_http_requests_total{{class=\"{}xx\"}} {}",
            index + 1,
            counter.load(Ordering::Relaxed)
        );
    }
    text.push_str(
        "# HELP billow_http_request_duration_seconds_total Time spent answering HTTP requests.\n",
    );
    text.push_str("# TYPE billow_http_request_duration_seconds_total counter\n");
    let micros = REQUEST_MICROSECONDS.load(Ordering::Relaxed);
    let _ = writeln!(
        text,
        "billow_http_request_duration_seconds_total {}.{:06}",
        micros / 1_000_000,
        micros % 1_000_000
    );
    text.push_str("# HELP billow_build_info The running build.\n# TYPE billow_build_info gauge\n");
    let _ = writeln!(
        text,
        "billow_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
