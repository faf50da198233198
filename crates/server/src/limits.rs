//! Explicit limits on what a request may ask for (TIGER_STYLE: bound everything).
//!
//! - Bodies: at most [`BODY_LENGTH_MAX_BYTES`]; larger ones get a 413 problem, whether the handler
//!   reads the body through [`crate::json::ApiJson`], axum's extractors, or not at all (a declared
//!   `Content-Length` over the limit is refused before the handler runs).
//! - Pages: [`PageLimit`] is at most [`PAGE_LIMIT_MAX`] items, 422 above.

use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, PROBLEM_JSON};

/// The largest request body accepted: 10 MiB, room for an ingestion batch of 10,000 events.
pub const BODY_LENGTH_MAX_BYTES: usize = 10 * 1024 * 1024;
/// The most items a list returns in one page.
pub const PAGE_LIMIT_MAX: u32 = 100;
/// The number of items a list returns when the request does not say.
pub const PAGE_LIMIT_DEFAULT: u32 = 10;

/// axum's own body limit, which its body extractors (`Bytes`, `Json`, …) enforce while reading a
/// body sent without a `Content-Length` (chunked).
pub fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(BODY_LENGTH_MAX_BYTES)
}

/// Middleware: refuses a declared `Content-Length` over the limit before the handler runs, and
/// turns any plain-text 413 that an extractor answered (a chunked body over the limit) into the
/// problem format.
pub async fn limit_body_length(request: Request, next: Next) -> Response {
    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > BODY_LENGTH_MAX_BYTES as u64) {
        return payload_too_large();
    }
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value == PROBLEM_JSON);
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return payload_too_large();
    }
    response
}

fn payload_too_large() -> Response {
    ApiError::PayloadTooLarge {
        limit_bytes: BODY_LENGTH_MAX_BYTES,
    }
    .into_response()
}

/// A checked page size: 1 to [`PAGE_LIMIT_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimit(u32);

impl PageLimit {
    /// Checks the `limit` query parameter; absent means [`PAGE_LIMIT_DEFAULT`].
    ///
    /// # Errors
    ///
    /// A 422 naming `limit` when it is 0 or over [`PAGE_LIMIT_MAX`].
    pub fn parse(limit: Option<u32>) -> Result<Self, ApiError> {
        match limit {
            None => Ok(Self(PAGE_LIMIT_DEFAULT)),
            Some(limit @ 1..=PAGE_LIMIT_MAX) => Ok(Self(limit)),
            Some(_) => Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {PAGE_LIMIT_MAX}"),
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(PAGE_LIMIT_DEFAULT)
    }
}

/// The cursor parameters of a native list: `?limit=…&starting_after=…` (Stripe's names). Other
/// query parameters are left to the handler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: PageLimit,
    /// The id of the last item of the previous page: `next_cursor` of that page.
    pub starting_after: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawPageQuery {
    limit: Option<String>,
    starting_after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(raw) = Query::<RawPageQuery>::try_from_uri(&parts.uri)
            .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
        let limit = raw
            .limit
            .map(|limit| {
                limit.parse::<u32>().map_err(|_| {
                    ApiError::invalid("limit", format!("must be between 1 and {PAGE_LIMIT_MAX}"))
                })
            })
            .transpose()?;
        let starting_after = raw.starting_after.filter(|cursor| !cursor.is_empty());
        Ok(Self {
            limit: PageLimit::parse(limit)?,
            starting_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_limit_is_between_1_and_100_and_defaults_to_10() {
        assert_eq!(PageLimit::parse(None).unwrap().get(), 10);
        assert_eq!(PageLimit::parse(Some(100)).unwrap().get(), 100);
        assert!(PageLimit::parse(Some(0)).is_err());
        assert!(PageLimit::parse(Some(101)).is_err());
    }
}
