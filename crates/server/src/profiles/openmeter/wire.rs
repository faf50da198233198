//! OpenMeter's wire types: its `Meter`, `MeterQueryResult` and `MeterQueryRow`, its CloudEvent
//! as its ingestion takes it, and its problem details.

use std::collections::BTreeMap;

use billow_core::windowed::WindowQuantity;
use billow_core::{Aggregation, WindowSize};
use billow_store::catalog::MeterRecord;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Number;
use utoipa::ToSchema;

use crate::routes::events::cloud_event::{EventData, SpecVersion};

/// A meter as OpenMeter lists it: a billow meter, its key as the slug.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenMeterMeter)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Meter {
    /// billow's meter id (`mtr_…`).
    pub id: String,
    /// The meter's key.
    pub slug: String,
    /// The meter's key: billow meters have no display name, and OpenMeter defaults the name to
    /// the slug.
    pub name: String,
    /// How values aggregate: OpenMeter's names, and billow's `TIME_WEIGHTED_SUM` (a gauge
    /// integrated over time), which OpenMeter does not have.
    #[schema(value_type = AggregationName)]
    pub aggregation: Aggregation,
    /// The CloudEvents `type` the meter counts.
    pub event_type: String,
    /// The JSONPath of the value in `data` (`$.tokens`); absent for COUNT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_property: Option<String>,
    /// Each group-by dimension by its name (billow's dimension as the meter declares it) and its
    /// JSONPath in `data`; absent when the meter has none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub group_by: BTreeMap<String, String>,
    /// When the meter was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the meter last changed: billow meters do not change, so when it was made.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// OpenMeter's aggregation names, as billow's meters have them.
#[derive(Serialize, ToSchema)]
#[schema(as = OpenMeterAggregation)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)] // Only the OpenAPI document reads it.
pub(crate) enum AggregationName {
    Sum,
    Count,
    UniqueCount,
    Min,
    Max,
    Latest,
    TimeWeightedSum,
}

/// A data path as a JSONPath: `tokens` and `$.tokens` are both `$.tokens`.
fn json_path(path: &str) -> String {
    if path.starts_with('$') {
        path.to_owned()
    } else {
        format!("$.{path}")
    }
}

impl From<&MeterRecord> for Meter {
    fn from(record: &MeterRecord) -> Self {
        let spec = &record.spec;
        Self {
            id: record.id.to_string(),
            slug: record.key.clone(),
            name: record.key.clone(),
            aggregation: spec.aggregation,
            event_type: spec.event_type.clone(),
            value_property: match spec.aggregation {
                Aggregation::Count => None,
                _ => spec.value_property.as_deref().map(json_path),
            },
            group_by: spec
                .group_by
                .iter()
                .map(|dimension| (dimension.clone(), json_path(dimension)))
                .collect(),
            created_at: record.created_at,
            updated_at: record.created_at,
        }
    }
}

/// OpenMeter's window sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = OpenMeterWindowSize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "MINUTE" => Self::Minute,
            "HOUR" => Self::Hour,
            "DAY" => Self::Day,
            "MONTH" => Self::Month,
            _ => return None,
        })
    }

    pub fn size(self) -> WindowSize {
        match self {
            Self::Minute => WindowSize::Minute,
            Self::Hour => WindowSize::Hour,
            Self::Day => WindowSize::Day,
            Self::Month => WindowSize::Month,
        }
    }
}

/// The answer to a meter query.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenMeterQueryResult)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryResult {
    /// The query's `from`, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// The query's `to`, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    /// The query's `windowSize`, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_size: Option<Window>,
    /// One row per window, subject and group that has a quantity; empty when none has.
    pub data: Vec<QueryRow>,
}

/// One aggregate of a meter query.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenMeterQueryRow)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryRow {
    /// The meter's aggregate, an exact decimal written as a JSON number.
    #[schema(value_type = f64)]
    pub value: Number,
    /// The window's start (without `windowSize`: the query's `from`, or the minute of the
    /// first event counted).
    #[schema(value_type = String, format = DateTime)]
    pub window_start: Timestamp,
    /// The window's end (without `windowSize`: the query's `to`, or the end of the minute of
    /// the last event counted).
    #[schema(value_type = String, format = DateTime)]
    pub window_end: Timestamp,
    /// The events' subject, when the query groups or filters by subject; `null` otherwise.
    #[schema(required = true)]
    pub subject: Option<String>,
    /// The value of each dimension the query groups by (`null` when the events lack it).
    pub group_by: BTreeMap<String, Option<String>>,
    /// The customer's billow id, when the query names customers (`filterCustomerId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// A decimal as an exact JSON number, without trailing zeros.
fn number(value: Decimal) -> Number {
    // A decimal's text is always a JSON number (digits, an optional sign and point).
    value
        .normalize()
        .to_string()
        .parse()
        .unwrap_or_else(|_| Number::from(0))
}

impl QueryRow {
    /// The row of `quantity`. Without windows, a bound the query left open is the minute of the
    /// first or last event counted, as OpenMeter reports it.
    pub fn new(
        quantity: WindowQuantity,
        windowed: bool,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Self {
        let minute = |instant: Timestamp| {
            WindowSize::Minute
                .window_containing(instant, &TimeZone::UTC)
                .ok()
        };
        let (mut start, mut end) = (quantity.window.start, quantity.window.end);
        if !windowed {
            let span = quantity.event_span;
            if from.is_none() {
                if let Some(first) = span.and_then(|(first, _)| minute(first)) {
                    start = first.start;
                }
            }
            if to.is_none() {
                if let Some(last) = span.and_then(|(_, last)| minute(last)) {
                    end = last.end;
                }
            }
        }
        Self {
            value: number(quantity.quantity),
            window_start: start,
            window_end: end,
            subject: quantity.subject,
            group_by: quantity
                .group
                .into_iter()
                .map(|(name, value)| (name, Some(value).filter(|value| !value.is_empty())))
                .collect(),
            customer_id: None,
        }
    }
}

/// OpenMeter's problem details (RFC 7807), as its API writes them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenMeterProblem)]
pub(crate) struct Problem {
    /// `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    /// The status's reason phrase (`Bad Request`).
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, naming the parameter or the event's index and attribute.
    pub detail: String,
}

/// A CloudEvent as OpenMeter's ingestion takes it: billow's event, whose `time` may be left out
/// (the event is then timed when it arrives).
#[derive(Serialize, ToSchema)]
#[schema(as = OpenMeterEvent)]
#[allow(dead_code)] // Only the OpenAPI document reads it.
pub(crate) struct Event {
    /// Unique per `source`: an event whose (`source`, `id`) was stored before is skipped.
    #[schema(min_length = 1)]
    id: String,
    /// Who produced the event.
    #[schema(min_length = 1)]
    source: String,
    /// `1.0`.
    #[schema(value_type = SpecVersion)]
    specversion: String,
    /// What happened: the meters whose `eventType` it is count it.
    #[serde(rename = "type")]
    #[schema(min_length = 1)]
    event_type: String,
    /// Whose usage it is: a customer's external id (or billow id, or a subject a customer
    /// claims).
    #[schema(min_length = 1)]
    subject: String,
    /// When it happened, RFC 3339; when absent or `null`, the instant billow receives it.
    #[schema(format = DateTime)]
    time: Option<String>,
    /// A JSON media type when given.
    datacontenttype: Option<String>,
    /// Identifies the schema `data` adheres to; not read.
    dataschema: Option<String>,
    #[schema(value_type = Option<EventData>)]
    data: Option<serde_json::Value>,
}

/// The body of `application/json`: one event or a batch.
#[derive(Serialize, ToSchema)]
#[schema(as = OpenMeterIngestEventsBody)]
#[serde(untagged)]
#[allow(dead_code)] // Only the OpenAPI document reads it.
pub(crate) enum IngestEventsBody {
    Event(Box<Event>),
    Events(Vec<Event>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_json_paths_and_numbers_are_exact() {
        assert_eq!(json_path("tokens"), "$.tokens");
        assert_eq!(json_path("$.usage.cores"), "$.usage.cores");
        assert_eq!(number("12.50".parse().unwrap()).to_string(), "12.5");
        assert_eq!(number("100".parse().unwrap()).to_string(), "100");
        assert_eq!(Window::parse("DAY"), Some(Window::Day));
        assert_eq!(Window::parse("day"), None);
    }
}
