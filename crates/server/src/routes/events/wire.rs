//! How `/api/v1/openapi.json` documents the bodies of `POST /api/v1/events`: one event
//! ([`EventFields`], the `CloudEvent` schema), a batch of them, or either as `application/json`.
//! The handler reads each event of a body as an [`EventFields`]; these describe the arrays
//! around them.

use std::borrow::Cow;

use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, OneOfBuilder};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::cloud_event::EventFields;
use super::{EventsProblem, EVENTS_PER_REQUEST_MAX};
use crate::error::Problem;

/// A batch of events (`application/cloudevents-batch+json`): 1 to 10,000 CloudEvents.
pub(crate) struct EventBatch;

impl PartialSchema for EventBatch {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(Ref::from_schema_name(EventFields::name()))
            .min_items(Some(1))
            .max_items(Some(EVENTS_PER_REQUEST_MAX))
            .description(Some(
                "1 to 10,000 events, each checked on its own: the valid ones are stored, the \
                 invalid ones listed in the answer's `errors` by their index.",
            ))
            .into()
    }
}

impl ToSchema for EventBatch {
    fn name() -> Cow<'static, str> {
        "CloudEventBatch".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EventFields::name().into_owned(), EventFields::schema()));
        <EventFields as ToSchema>::schemas(schemas);
    }
}

/// An `application/json` body of events: a batch, or one event.
pub(crate) struct JsonEvents;

impl PartialSchema for JsonEvents {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name(EventBatch::name()))
            .item(Ref::from_schema_name(EventFields::name()))
            .description(Some("A batch of events, or one event."))
            .into()
    }
}

impl ToSchema for JsonEvents {
    fn name() -> Cow<'static, str> {
        "JsonEvents".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EventBatch::name().into_owned(), EventBatch::schema()));
        EventBatch::schemas(schemas);
    }
}

/// The 422 of the ingestion route: a problem whose `errors` name events by index when no event
/// is valid, or the usual problem when the body's shape does not fit its content type.
pub(crate) struct IngestProblem;

impl PartialSchema for IngestProblem {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(EventsProblem::name()))
            .item(Ref::from_schema_name(Problem::name()))
            .into()
    }
}

impl ToSchema for IngestProblem {
    fn name() -> Cow<'static, str> {
        "IngestProblem".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((EventsProblem::name().into_owned(), EventsProblem::schema()));
        EventsProblem::schemas(schemas);
        schemas.push((Problem::name().into_owned(), Problem::schema()));
        Problem::schemas(schemas);
    }
}
