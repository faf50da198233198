//! Answers for requests no route takes, in the same problem format as every other error.

use axum::http::{Method, Uri};

use crate::error::ApiError;

pub(crate) async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound { method, uri }
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method, uri }
}
