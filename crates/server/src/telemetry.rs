//! A span around every request, so that whatever a handler logs names the request it served.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub(crate) async fn request_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        crate::metrics::record_request(response.status().as_u16(), elapsed_us);
        // Debug, not info: probes hit /healthz every few seconds.
        tracing::debug!(status = response.status().as_u16(), elapsed_us, "answered");
        response
    }
    .instrument(span)
    .await
}
