//! `POST /api/v1/events`: usage ingestion (DESIGN.md §4, docs/ingestion.md).
//!
//! Three body shapes, told apart by `Content-Type`:
//! - `application/cloudevents+json`: one event (CloudEvents structured mode);
//! - `application/cloudevents-batch+json`: an array of events (CloudEvents batch mode);
//! - `application/json`: an array of events (or one event).
//!
//! Each event is checked on its own ([`cloud_event`]); the valid ones are stored, exactly once per
//! (source, id), through the group-committing [`billow_store::EventWriter`], and the answer, 202,
//! comes after the durable commit with how many were accepted, how many were duplicates, and
//! which were refused and why. When no event is valid the answer is a 422 problem with the same
//! error list.
//!
//! Events of the types `billow.resource.created`, `billow.resource.quantity` and
//! `billow.resource.deleted` also create, change and delete billed resources
//! (`crate::routes::resources::events`), before the request's events are stored.

pub mod cloud_event;
mod scan;
mod wire;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use billow_store::{NewEvent, WorkspaceId};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa_axum::routes;

use self::cloud_event::{parse_batch, parse_event, EventError, EventFields};
use self::wire::{EventBatch, IngestProblem, JsonEvents};
use crate::auth::WorkspaceAuth;
use crate::error::{ApiError, Problem, PROBLEM_JSON};
use crate::openapi::ApiRouter;
use crate::routes::resources::events::apply_resource_events;
use crate::state::AppState;

/// Most events in one request. A larger batch is refused whole with 413.
pub const EVENTS_PER_REQUEST_MAX: usize = 10_000;

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
const JSON: &str = "application/json";

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(ingest_events))
}

/// What became of the events of a request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// Events stored by this request.
    pub accepted: u64,
    /// Valid events whose (source, id) was already stored, or came earlier in the request:
    /// skipped, not an error (a client's retry).
    pub duplicates: u64,
    /// Invalid events, not stored: their index in the request, the attribute and why.
    pub errors: Vec<EventError>,
}

/// Ingests usage events.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body(
        description = "One CloudEvent (`application/cloudevents+json`) or an array of them \
                       (`application/cloudevents-batch+json` or `application/json`), at most \
                       10,000 per request.",
        content(
            (EventFields = "application/cloudevents+json"),
            (EventBatch = "application/cloudevents-batch+json"),
            (JsonEvents = "application/json"),
        ),
    ),
    responses(
        (status = 202, description = "Stored durably (valid events), with the invalid ones listed", body = IngestResponse),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid workspace key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too many events or too large a body", body = EventsProblem, content_type = "application/problem+json"),
        (status = 415, description = "Another content type", body = EventsProblem, content_type = "application/problem+json"),
        (status = 422, description = "No event is valid (`errors` names each by index), or the body's shape does not match its content type", body = IngestProblem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id))]
pub(crate) async fn ingest_events(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, IngestError> {
    let outcomes = read_events(&headers, &body)?;
    if outcomes.is_empty() {
        return Err(IngestError::NoValidEvent(Vec::new()));
    }
    let response = store_events(&state, &auth.workspace_id, outcomes).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(response)).into_response())
}

/// What checking one event of a request gave: the event to store, or why it is invalid.
pub(crate) type EventOutcome = Result<NewEvent, Vec<EventError>>;

/// The events of a request's body, each checked on its own, in order: the one reading of an
/// ingestion body, shared by `POST /api/v1/events` and the profiles that ingest.
///
/// # Errors
/// An unsupported content type, more than [`EVENTS_PER_REQUEST_MAX`] events, a body that is not
/// JSON or whose shape does not match its content type.
pub(crate) fn read_events(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<EventOutcome>, IngestError> {
    let mode = BodyMode::of(headers)?;
    // An array of well-formed event objects is read in one pass; anything else (including every
    // error) event by event, so that each problem is named.
    let one_pass = match mode {
        BodyMode::Structured => None,
        BodyMode::Batch | BodyMode::Json => parse_batch(body),
    };
    match one_pass {
        Some(outcomes) if outcomes.len() > EVENTS_PER_REQUEST_MAX => {
            Err(IngestError::TooManyEvents {
                count: outcomes.len(),
            })
        }
        Some(outcomes) => Ok(outcomes),
        None => Ok(raw_events(headers, body)?
            .iter()
            .enumerate()
            .map(|(index, raw)| parse_event(raw.get(), index))
            .collect()),
    }
}

/// The JSON text of each event of a request's body, checked as JSON but not yet as events, for a
/// caller that reads some of them again ([`read_events`] has checked the body's shape).
///
/// # Errors
/// As [`read_events`].
pub(crate) fn raw_events<'b>(
    headers: &HeaderMap,
    body: &'b [u8],
) -> Result<Vec<&'b RawValue>, IngestError> {
    split_events(body, BodyMode::of(headers)?)
}

/// Whether the request's body carries a batch (`application/cloudevents-batch+json`).
pub(crate) fn is_batch(headers: &HeaderMap) -> bool {
    matches!(BodyMode::of(headers), Ok(BodyMode::Batch))
}

/// Stores the valid events of `outcomes` for `workspace_id`, exactly once per (source, id),
/// through the group-committing writer, after applying the events that create, change or delete
/// billed resources: what became of them, with the invalid events listed.
///
/// # Errors
/// [`IngestError::NoValidEvent`] when no event is valid; a failed write.
pub(crate) async fn store_events(
    state: &AppState,
    workspace_id: &WorkspaceId,
    outcomes: Vec<EventOutcome>,
) -> Result<IngestResponse, IngestError> {
    let mut events = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(event) => events.push((index, event)),
            Err(event_errors) => errors.extend(event_errors),
        }
    }
    // Events that create, change or delete billed resources are applied first; the refused
    // ones are listed with the invalid events and not stored.
    let (events, refused) = apply_resource_events(state, workspace_id, events)
        .await
        .map_err(IngestError::Api)?;
    if !refused.is_empty() {
        errors.extend(refused);
        errors.sort_by_key(|error| error.index);
    }
    if events.is_empty() {
        return Err(IngestError::NoValidEvent(errors));
    }
    let ingested_at = state.clock.now();
    let outcome = state
        .events
        .write(workspace_id.clone(), events, ingested_at)
        .await
        .map_err(|error| IngestError::Api(ApiError::internal(error)))?;
    Ok(IngestResponse {
        accepted: outcome.inserted,
        duplicates: outcome.duplicates,
        errors,
    })
}

/// How the body carries its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyMode {
    /// One event object.
    Structured,
    /// An array of events.
    Batch,
    /// An array of events, or one event.
    Json,
}

impl BodyMode {
    fn of(headers: &HeaderMap) -> Result<Self, IngestError> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            STRUCTURED => Ok(Self::Structured),
            BATCH => Ok(Self::Batch),
            JSON => Ok(Self::Json),
            _ => Err(IngestError::UnsupportedMediaType {
                content_type: content_type.to_owned(),
            }),
        }
    }
}

/// The JSON text of each event of the body, checked as JSON but not yet as events.
fn split_events(body: &[u8], mode: BodyMode) -> Result<Vec<&RawValue>, IngestError> {
    let malformed = |error: serde_json::Error| {
        IngestError::Api(ApiError::MalformedJson {
            detail: format!("The body is not valid JSON: {error}."),
        })
    };
    let top: &RawValue = serde_json::from_slice(body).map_err(malformed)?;
    let is_array = top.get().starts_with('[');
    match (mode, is_array) {
        (BodyMode::Structured, true) => Err(IngestError::Api(ApiError::invalid(
            "",
            "application/cloudevents+json carries one event; send an array as \
             application/cloudevents-batch+json",
        ))),
        (BodyMode::Batch, false) => Err(IngestError::Api(ApiError::invalid(
            "",
            "application/cloudevents-batch+json carries an array of events",
        ))),
        (_, false) => Ok(vec![top]),
        (_, true) => {
            // Counted before each event is parsed: a huge batch costs one scan, not a parse.
            let events: Vec<&RawValue> = serde_json::from_str(top.get()).map_err(malformed)?;
            if events.len() > EVENTS_PER_REQUEST_MAX {
                return Err(IngestError::TooManyEvents {
                    count: events.len(),
                });
            }
            Ok(events)
        }
    }
}

/// Why a request stored nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    #[error("unsupported content type {content_type:?}")]
    UnsupportedMediaType { content_type: String },
    #[error("{count} events in one request")]
    TooManyEvents { count: usize },
    #[error("no valid event")]
    NoValidEvent(Vec<EventError>),
    #[error(transparent)]
    Api(ApiError),
}

/// A problem (RFC 9457) of the ingestion route, whose `errors` name events by their index.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventsProblem {
    /// A URI that identifies the problem type (`urn:billow:problem:<slug>`).
    #[serde(rename = "type")]
    problem_type: &'static str,
    /// A short summary of the problem type.
    title: &'static str,
    /// The HTTP status code.
    status: u16,
    /// What went wrong, for a human reader.
    detail: String,
    /// For a 422: every invalid event attribute, by the event's index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<EventError>,
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, problem_type, title, detail, errors) = match self {
            Self::Api(error) => return error.into_response(),
            Self::UnsupportedMediaType { content_type } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "urn:billow:problem:unsupported-media-type",
                "Unsupported media type",
                format!(
                    "Events are sent as {STRUCTURED}, {BATCH} or {JSON}, not {content_type:?}."
                ),
                Vec::new(),
            ),
            Self::TooManyEvents { count } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "urn:billow:problem:too-many-events",
                "Too many events",
                format!(
                    "The request has {count} events; send at most {EVENTS_PER_REQUEST_MAX} per \
                     request."
                ),
                Vec::new(),
            ),
            Self::NoValidEvent(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:billow:problem:validation",
                "Invalid request",
                if errors.is_empty() {
                    "The request has no events.".to_owned()
                } else {
                    "No event of the request is valid; see errors.".to_owned()
                },
                errors,
            ),
        };
        let problem = EventsProblem {
            problem_type,
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let content_type = [(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))];
        (status, content_type, axum::Json(problem)).into_response()
    }
}
