//! [`ApiError`]: every error the API returns, rendered as RFC 9457 `application/problem+json`.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use billow_store::PingStoreError;
use serde::Serialize;

/// The media type of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered to an API client.
///
/// Each variant has a stable problem `type`, which clients may match on; the `detail` of a 5xx
/// never carries the underlying error, which is logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the request's path.
    #[error("no route for {method} {}", uri.path())]
    RouteNotFound { method: Method, uri: Uri },
    /// A route matches the path but not the method.
    #[error("{method} is not allowed on {}", uri.path())]
    MethodNotAllowed { method: Method, uri: Uri },
    /// The database does not answer.
    #[error("the store is unavailable")]
    StoreUnavailable(#[source] PingStoreError),
}

/// A problem details object (RFC 9457 §3.1).
#[derive(Debug, Serialize)]
pub struct Problem {
    /// A URI that identifies the problem type. billow's are `urn:billow:problem:<slug>`:
    /// absolute, stable, and not meant to be dereferenced (RFC 9457 §3.1.1).
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    /// A short summary of the problem type, the same for every occurrence.
    pub title: &'static str,
    /// The HTTP status code of this occurrence.
    pub status: u16,
    /// What went wrong in this occurrence, for a human reader.
    pub detail: String,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The problem details sent to the client.
    pub fn to_problem(&self) -> Problem {
        let (problem_type, title) = match self {
            Self::RouteNotFound { .. } => ("urn:billow:problem:not-found", "Not found"),
            Self::MethodNotAllowed { .. } => (
                "urn:billow:problem:method-not-allowed",
                "Method not allowed",
            ),
            Self::StoreUnavailable(_) => {
                ("urn:billow:problem:store-unavailable", "Store unavailable")
            }
        };
        let detail = match self {
            Self::RouteNotFound { method, uri } => {
                format!("No route matches {method} {}.", uri.path())
            }
            Self::MethodNotAllowed { method, uri } => {
                format!("{} does not accept {method}.", uri.path())
            }
            Self::StoreUnavailable(_) => "The database does not answer; see the server log.".into(),
        };
        Problem {
            problem_type,
            title,
            status: self.status().as_u16(),
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error.message = %self, error.cause_chain = ?self, "request failed");
        }
        let body = match serde_json::to_vec(&self.to_problem()) {
            Ok(body) => body,
            Err(error) => unreachable!("a Problem always serializes: {error}"),
        };
        let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))];
        (status, content_type, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_not_found_names_the_method_and_path_but_not_the_query() {
        let error = ApiError::RouteNotFound {
            method: Method::GET,
            uri: "/nowhere?token=secret".parse().unwrap(),
        };

        let problem = error.to_problem();

        assert_eq!(problem.status, 404);
        assert_eq!(problem.problem_type, "urn:billow:problem:not-found");
        assert_eq!(problem.detail, "No route matches GET /nowhere.");
    }
}
