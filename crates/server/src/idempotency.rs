//! `Idempotency-Key` on every `/api/v1` POST, with Stripe's semantics
//! (<https://docs.stripe.com/api/idempotent_requests>):
//!
//! - the first response to a key is stored and answered again to every retry with the same key,
//!   with the header `Idempotent-Replayed: true`;
//! - the same key with another request (method, path, body or caller) is a 422 problem
//!   `idempotency-key-reused`. A JSON body is compared as the handler reads it, not byte for
//!   byte: other whitespace or another order of an object's members is the same request (as
//!   Stripe compares parameters); a number is compared as written (`5.0` is not `5.00`);
//! - while the first request runs, a retry gets a 409 problem `idempotency-key-in-flight`;
//! - keys are kept [`KEY_LIFETIME`] (24 hours) from their first use.
//!
//! Departure from Stripe, on purpose: 5xx responses and rejections before the work started (400,
//! 413, 422) are not stored, so a retry after a transient failure or a fixed body runs for real.
//!
//! [`idempotent_post`] is middleware in front of every `/api/v1` route (`crate::startup::router`),
//! behind authentication: handlers get idempotency without code of their own.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use billow_store::{IdempotencyBegin, IdempotencyWindow, StoredResponse};
use jiff::SignedDuration;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::limits::BODY_LENGTH_MAX_BYTES;
use crate::state::AppState;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header on a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// How long a key is remembered from its first use (Stripe: at least 24 hours).
pub const KEY_LIFETIME: SignedDuration = SignedDuration::from_hours(24);
/// A claim never completed this long after it was made belongs to a request whose process died:
/// the next request with the key takes it over.
pub const CLAIM_STALE_AFTER: SignedDuration = SignedDuration::from_mins(5);
/// The longest key accepted (Stripe's limit).
pub const KEY_LENGTH_MAX: usize = 255;
/// Response headers not stored: they describe one transmission, not the response.
const UNSTORED_HEADERS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

/// Middleware: runs a POST with an `Idempotency-Key` once per key and answers retries from the
/// stored response. Other requests pass through untouched.
pub async fn idempotent_post(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    let Some(principal) = request.extensions().get::<Principal>().cloned() else {
        // Not behind authentication: nothing to scope the key to.
        return next.run(request).await;
    };
    match run_once(&state, &principal, &key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run_once(
    state: &AppState,
    principal: &Principal,
    key: &HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = parse_key(key).map_err(IntoResponse::into_response)?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LENGTH_MAX_BYTES)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge {
                limit_bytes: BODY_LENGTH_MAX_BYTES,
            }
            .into_response()
        })?;
    let fingerprint = fingerprint(
        principal,
        &parts.method,
        parts.uri.path(),
        parts.uri.query(),
        &body,
    );
    let workspace_id = principal.workspace_id();
    let now = state.clock.now();
    let window = IdempotencyWindow {
        now,
        expired_before: now - KEY_LIFETIME,
        stale_before: now - CLAIM_STALE_AFTER,
    };
    let begin = state
        .store
        .begin_idempotent_request(workspace_id, key, &fingerprint, window)
        .await
        .map_err(|error| ApiError::internal(error).into_response())?;
    match begin {
        IdempotencyBegin::Started => purge_expired_keys_now_and_then(state),
        IdempotencyBegin::InFlight => return Err(ApiError::IdempotencyKeyInFlight.into_response()),
        IdempotencyBegin::Mismatch => return Err(ApiError::IdempotencyKeyReused.into_response()),
        IdempotencyBegin::Completed(stored) => return Ok(replay(stored)),
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (response_parts, response_body) = response.into_parts();
    // Our own handlers' responses: bounded by what they build.
    let response_body = match axum::body::to_bytes(response_body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => {
            release(state, principal, key).await;
            return Err(ApiError::internal(error).into_response());
        }
    };
    let status = response_parts.status;
    if is_stored(status) {
        let stored = StoredResponse {
            status: status.as_u16(),
            headers: stored_headers(&response_parts.headers),
            body: response_body.to_vec(),
        };
        if let Err(error) = state
            .store
            .complete_idempotent_request(workspace_id, key, &stored)
            .await
        {
            // The work is done; answer it. The claim goes stale and a retry runs again.
            tracing::error!(error.message = %error, error.cause_chain = ?error, "could not store an idempotent response");
        }
    } else {
        release(state, principal, key).await;
    }
    Ok(Response::from_parts(
        response_parts,
        Body::from(response_body),
    ))
}

/// How often a node deletes the expired keys of every workspace. Expired keys are also replaced
/// one by one when reused; this bounds the table for keys never used again.
const PURGE_INTERVAL: SignedDuration = SignedDuration::from_hours(1);

/// When this process last started a purge, as Unix seconds of the app clock (0: never).
static LAST_PURGE_SECONDS: AtomicI64 = AtomicI64::new(0);

/// Starts, in the background, a purge of expired keys when the last one is an hour old. Piggybacks
/// on requests so that it needs no scheduler of its own; a purge running on several nodes at
/// once is harmless.
fn purge_expired_keys_now_and_then(state: &AppState) {
    let now = state.clock.now();
    let last = LAST_PURGE_SECONDS.load(Ordering::Relaxed);
    let due = now.as_second() - last >= PURGE_INTERVAL.as_secs();
    if !due
        || LAST_PURGE_SECONDS
            .compare_exchange(last, now.as_second(), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        match store
            .delete_expired_idempotency_keys(now - KEY_LIFETIME)
            .await
        {
            Ok(deleted) => tracing::debug!(deleted, "expired idempotency keys deleted"),
            Err(error) => tracing::warn!(
                error.message = %error,
                error.cause_chain = ?error,
                "could not delete expired idempotency keys"
            ),
        }
    });
}

async fn release(state: &AppState, principal: &Principal, key: &str) {
    if let Err(error) = state
        .store
        .abandon_idempotent_request(principal.workspace_id(), key)
        .await
    {
        tracing::error!(error.message = %error, error.cause_chain = ?error, "could not release an idempotency key");
    }
}

/// Whether a response is the outcome of the work (stored) or a rejection before it or a failure
/// (not stored, so a retry runs again).
fn is_stored(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::BAD_REQUEST
        || status == StatusCode::PAYLOAD_TOO_LARGE
        || status == StatusCode::UNPROCESSABLE_ENTITY
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || status == StatusCode::TOO_MANY_REQUESTS)
}

/// A key is 1 to 255 visible ASCII characters.
fn parse_key(value: &HeaderValue) -> Result<&str, ApiError> {
    let key = value
        .to_str()
        .ok()
        .filter(|key| !key.is_empty() && key.len() <= KEY_LENGTH_MAX)
        .filter(|key| key.bytes().all(|byte| byte.is_ascii_graphic()));
    key.ok_or_else(|| {
        ApiError::invalid(
            "Idempotency-Key",
            format!("must be 1 to {KEY_LENGTH_MAX} visible ASCII characters"),
        )
    })
}

/// Hex SHA-256 over who asked and what: the caller, the method, the path and query, the body
/// ([`canonical_body`]). Fields are separated by a newline, which none of the first four can
/// contain.
fn fingerprint(
    principal: &Principal,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &Bytes,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(principal.customer_id().unwrap_or("*").as_bytes());
    hasher.update(b"\n");
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(query.unwrap_or_default().as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_body(body));
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A body as the handler reads it: JSON as its value, written without whitespace and with each
/// object's members in key order (a member given twice counts once, the last, as the handler
/// takes it); anything else byte for byte (the handler refuses it, and a refusal is not stored).
fn canonical_body(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            let mut text = String::with_capacity(body.len());
            write_canonical(&value, &mut text);
            text.into_bytes()
        }
        Err(_) => body.to_vec(),
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(members) => {
            let mut members: Vec<(&String, &Value)> = members.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (name, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn stored_headers(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !UNSTORED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(stored.body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use billow_store::WorkspaceId;

    fn workspace() -> Principal {
        Principal::Workspace {
            workspace_id: WorkspaceId::parse("ws_a").unwrap(),
        }
    }

    #[test]
    fn the_fingerprint_changes_with_the_body_the_path_and_the_caller() {
        let body = Bytes::from_static(b"{}");
        let base = fingerprint(
            &workspace(),
            &Method::POST,
            "/api/v1/customers",
            None,
            &body,
        );

        assert_eq!(
            base,
            fingerprint(
                &workspace(),
                &Method::POST,
                "/api/v1/customers",
                None,
                &body
            )
        );
        // The same JSON written otherwise is the same request; another value is not.
        let same = |text: &'static str| {
            fingerprint(
                &workspace(),
                &Method::POST,
                "/api/v1/customers",
                None,
                &Bytes::from_static(text.as_bytes()),
            )
        };
        assert_eq!(base, same("{ }"));
        assert_eq!(
            same(r#"{"name": "Acme", "tags": [1, {"b": 2, "a": 1}]}"#),
            same(r#"{"tags":[1,{"a":1,"b":2}],"name":"Acme"}"#)
        );
        assert_ne!(same(r#"{"name": "Acme"}"#), same(r#"{"name": "Acme Inc"}"#));
        assert_ne!(same(r#"{"tags": [1, 2]}"#), same(r#"{"tags": [2, 1]}"#));
        assert_ne!(same(r#"{"amount": 5.0}"#), same(r#"{"amount": 5.00}"#));
        assert_ne!(same("not json"), same("not  json"));
        assert_ne!(
            base,
            fingerprint(&workspace(), &Method::POST, "/api/v1/meters", None, &body)
        );
        let customer = Principal::Customer {
            workspace_id: WorkspaceId::parse("ws_a").unwrap(),
            customer_id: "cus_1".into(),
        };
        assert_ne!(
            base,
            fingerprint(&customer, &Method::POST, "/api/v1/customers", None, &body)
        );
    }

    #[test]
    fn a_key_is_1_to_255_visible_ascii_characters() {
        assert!(parse_key(&HeaderValue::from_static("8e03978e-40d5-43e8")).is_ok());
        assert!(parse_key(&HeaderValue::from_static("")).is_err());
        assert!(parse_key(&HeaderValue::from_static("a b")).is_err());
        assert!(parse_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_err());
    }

    #[test]
    fn failures_and_rejections_before_the_work_are_not_stored() {
        assert!(is_stored(StatusCode::CREATED));
        assert!(is_stored(StatusCode::NOT_FOUND));
        assert!(is_stored(StatusCode::CONFLICT));
        assert!(!is_stored(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!is_stored(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
