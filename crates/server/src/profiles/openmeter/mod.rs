//! OpenMeter's event API (`docs/profiles/openmeter.md`) under the path prefix `/openmeter`, so
//! that an OpenMeter client whose base URL is `http://host:port/openmeter` works unchanged:
//!
//! - `POST /openmeter/api/v1/events`: ingestion, answered 204 without a body once every event
//!   is stored (through the native ingestion's reading, checking and exactly-once writer);
//! - `GET /openmeter/api/v1/meters` and `GET /openmeter/api/v1/meters/{meterIdOrSlug}`: billow's
//!   meters in OpenMeter's shape;
//! - `GET /openmeter/api/v1/meters/{meterIdOrSlug}/query`: a meter's aggregates per window,
//!   subject and group (`billow_core::windowed`);
//! - `GET /openmeter/api/v1/meters/{meterIdOrSlug}/subjects`: the subjects of its events.
//!
//! Errors are OpenMeter's problem details. A customer token may query its own customer's usage
//! only, and is refused (403) ingestion and the meter listing, as on the native API.

mod query;
mod wire;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use billow_store::catalog::MeterRecord;
use billow_store::WorkspaceId;
use serde_json::Value;
use utoipa_axum::routes;

use super::shared::{ErrorShape, ProfileError, ProfileRouter};
use crate::auth::Principal;
use crate::error::{ApiError, PROBLEM_JSON};
use crate::routes::events::cloud_event::{parse_event_timed_now, EventError};
use crate::routes::events::{
    is_batch, raw_events, read_events, store_events, IngestError, EVENTS_PER_REQUEST_MAX,
};
use crate::state::AppState;
pub(crate) use wire::Problem as OpenMeterProblem;
use wire::{Event, IngestEventsBody, Meter};

pub(crate) fn router() -> ProfileRouter {
    ProfileRouter::new()
        .routes(routes!(ingest_events))
        .routes(routes!(list_meters))
        .routes(routes!(get_meter))
        .routes(routes!(query::query_meter))
        .routes(routes!(query::list_meter_subjects))
}

/// OpenMeter's errors: problem details with `type` `about:blank` and the status's reason as
/// `title`.
pub(crate) struct OpenMeter;

impl ErrorShape for OpenMeter {
    fn body(status: StatusCode, message: &str) -> Value {
        serde_json::to_value(wire::Problem {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: message.to_owned(),
        })
        .unwrap_or_default()
    }

    fn response(status: StatusCode, message: &str) -> Response {
        let content_type = [(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))];
        (status, content_type, Json(Self::body(status, message))).into_response()
    }
}

pub(crate) type Refused = ProfileError<OpenMeter>;

/// A 400, OpenMeter's status for every invalid request.
pub(crate) fn bad_request(detail: impl Into<String>) -> Refused {
    Refused::new(StatusCode::BAD_REQUEST, detail)
}

/// The workspace of a workspace key; a customer token is refused, as on the native API.
fn workspace_of(principal: Result<Principal, ApiError>) -> Result<WorkspaceId, Refused> {
    match principal? {
        Principal::Workspace { workspace_id } => Ok(workspace_id),
        Principal::Customer { .. } => Err(ApiError::Forbidden.into()),
    }
}

/// OpenMeter's message for invalid events: `invalid event: ` and each error by the event's
/// index and attribute (the first ten).
fn invalid_events<'e>(errors: impl IntoIterator<Item = &'e EventError>) -> Refused {
    const NAMED_MAX: usize = 10;
    let errors: Vec<&EventError> = errors.into_iter().collect();
    let mut named: Vec<String> = errors
        .iter()
        .take(NAMED_MAX)
        .map(|error| match error.field {
            "" => format!("event {}: {}", error.index, error.reason),
            field => format!("event {}: {field} {}", error.index, error.reason),
        })
        .collect();
    if errors.len() > NAMED_MAX {
        named.push(format!("and {} more", errors.len() - NAMED_MAX));
    }
    bad_request(format!("invalid event: {}", named.join("; ")))
}

/// The native ingestion's refusals, in OpenMeter's statuses: an invalid body or event is a 400.
fn refused(error: IngestError) -> Refused {
    match error {
        IngestError::UnsupportedMediaType { content_type } => Refused::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "invalid content type: {content_type:?}; events are sent as \
                 application/cloudevents+json, application/cloudevents-batch+json or \
                 application/json"
            ),
        ),
        IngestError::TooManyEvents { count } => Refused::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request has {count} events; send at most {EVENTS_PER_REQUEST_MAX} per \
                 request"
            ),
        ),
        IngestError::NoValidEvent(errors) => invalid_events(&errors),
        IngestError::Api(error @ (ApiError::MalformedJson { .. } | ApiError::Validation(_))) => {
            bad_request(format!("invalid event: {}", error.to_problem().detail))
        }
        IngestError::Api(error) => error.into(),
    }
}

/// Whether an event was refused for its `time` (which OpenMeter takes as the arrival instant
/// when absent).
fn refused_for_time(outcome: &Result<billow_store::NewEvent, Vec<EventError>>) -> bool {
    matches!(outcome, Err(errors) if errors.iter().any(|error| error.field == "time"))
}

/// Ingests an event or a batch of events (OpenMeter's `ingestEvents`).
#[utoipa::path(post, path = "/openmeter/api/v1/events", tag = "profile: OpenMeter", operation_id = "openmeter_ingest_events",
    request_body(
        description = "One CloudEvent (`application/cloudevents+json`), an array of them \
                       (`application/cloudevents-batch+json`), or either (`application/json`); \
                       at most 10,000 per request.",
        content(
            (Event = "application/cloudevents+json"),
            (Vec<Event> = "application/cloudevents-batch+json"),
            (IngestEventsBody = "application/json"),
        ),
    ),
    responses(
        (status = 204, description = "Every event is stored (or was before: an event whose (source, id) was stored is skipped)"),
        (status = 400, description = "The body is not JSON, or an event is invalid (nothing is stored)", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 413, description = "More than 10,000 events, or too large a body", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 409, description = "A request with the same `Idempotency-Key` is still being processed", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Another content type", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 422, description = "The `Idempotency-Key` is malformed, or was used before with another request", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database cannot write for lack of disk space", body = crate::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ))]
async fn ingest_events(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Refused> {
    let workspace = workspace_of(principal)?;
    let mut outcomes = read_events(&headers, &body).map_err(refused)?;
    if outcomes.is_empty() {
        // OpenMeter stores nothing and succeeds for an empty batch, and finds no event in an
        // empty `application/json` array.
        return if is_batch(&headers) {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(bad_request("invalid event: no events found"))
        };
    }
    if outcomes.iter().any(refused_for_time) {
        let now = state.clock.now();
        let raw = raw_events(&headers, &body).map_err(refused)?;
        for (index, outcome) in outcomes.iter_mut().enumerate() {
            if refused_for_time(outcome) {
                if let Some(event) = raw.get(index) {
                    *outcome = parse_event_timed_now(event.get(), index, now);
                }
            }
        }
    }
    // OpenMeter takes a request whole or not at all.
    let invalid: Vec<&EventError> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .flatten()
        .collect();
    if !invalid.is_empty() {
        return Err(invalid_events(invalid));
    }
    let stored = store_events(&state, &workspace, outcomes)
        .await
        .map_err(refused)?;
    if !stored.errors.is_empty() {
        // Only a billed-resource event can be refused here (docs/resources.md).
        return Err(invalid_events(&stored.errors));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The meter `id_or_slug` names (its id or its key) in `workspace`.
pub(crate) async fn named_meter(
    state: &AppState,
    workspace: &WorkspaceId,
    id_or_slug: &str,
) -> Result<MeterRecord, Refused> {
    let not_found = || {
        Refused::new(
            StatusCode::NOT_FOUND,
            format!("meter not found: {id_or_slug}"),
        )
    };
    // No id or key holds U+0000 (the native API refuses it); PostgreSQL would refuse the query.
    if id_or_slug.contains('\0') {
        return Err(not_found());
    }
    if let Some(meter) = state
        .store
        .meter(workspace, id_or_slug)
        .await
        .map_err(ApiError::internal)?
    {
        return Ok(meter);
    }
    state
        .store
        .meters(workspace)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|meter| meter.key == id_or_slug)
        .ok_or_else(not_found)
}

/// Lists the workspace's meters (OpenMeter's `listMeters`): all in one array, by `orderBy`
/// (`key` by default) in `order` (`ASC` by default).
#[utoipa::path(get, path = "/openmeter/api/v1/meters", tag = "profile: OpenMeter", operation_id = "openmeter_list_meters",
    params(
        ("page" = Option<u32>, Query, minimum = 1, description = "Accepted and not used: every meter is in the one page, as OpenMeter answers"),
        ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Accepted and not used, as `page`"),
        ("order" = Option<String>, Query, description = "`ASC` (the default) or `DESC`"),
        ("orderBy" = Option<String>, Query, description = "`key` (the default), `name`, `aggregation`, `createdAt` or `updatedAt`"),
        ("includeDeleted" = Option<bool>, Query, description = "Accepted: billow meters are never deleted"),
    ),
    responses(
        (status = 200, description = "The meters", body = [Meter]),
        (status = 400, description = "An invalid parameter", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = OpenMeterProblem, content_type = "application/problem+json"),
    ))]
async fn list_meters(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Meter>>, Refused> {
    let workspace = workspace_of(principal)?;
    let listing = query::Listing::parse(raw.as_deref().unwrap_or_default())?;
    let mut meters: Vec<Meter> = state
        .store
        .meters(&workspace)
        .await
        .map_err(ApiError::internal)?
        .iter()
        .map(Meter::from)
        .collect();
    listing.sort(&mut meters);
    Ok(Json(meters))
}

/// One meter, by its id or its key (OpenMeter's `getMeter`).
#[utoipa::path(get, path = "/openmeter/api/v1/meters/{meterIdOrSlug}", tag = "profile: OpenMeter", operation_id = "openmeter_get_meter",
    params(("meterIdOrSlug" = String, Path, description = "The meter's id (`mtr_…`) or key")),
    responses(
        (status = 200, description = "The meter", body = Meter),
        (status = 401, description = "No valid credential", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 404, description = "No meter has this id or key", body = OpenMeterProblem, content_type = "application/problem+json"),
    ))]
async fn get_meter(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path(id): Path<String>,
) -> Result<Json<Meter>, Refused> {
    let workspace = workspace_of(principal)?;
    let meter = named_meter(&state, &workspace, &id).await?;
    Ok(Json(Meter::from(&meter)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_openmeter_problems() {
        let body = OpenMeter::body(StatusCode::BAD_REQUEST, "invalid group by: model");
        assert_eq!(
            body,
            serde_json::json!({"type": "about:blank", "title": "Bad Request", "status": 400,
                               "detail": "invalid group by: model"})
        );
        let errors = [
            EventError {
                index: 0,
                field: "time",
                reason: "is required".into(),
            },
            EventError {
                index: 2,
                field: "",
                reason: "an event is a JSON object".into(),
            },
        ];
        let response = invalid_events(&errors).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            HeaderValue::from_static(PROBLEM_JSON)
        );
    }
}
