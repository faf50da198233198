//! CloudEvents 1.0 (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md) parsed
//! into the store's [`NewEvent`]: the one place where an event is checked, shared by
//! `POST /api/v1/events` and `billow ingest`.
//!
//! Each event is checked on its own, so that a batch can name every invalid event and field and
//! still store the valid ones: fields are read as "a string, or something else", never rejected
//! by the JSON parser for their type.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use billow_store::events::{EVENT_DATA_LENGTH_MAX, EVENT_TEXT_LENGTH_MAX};
use billow_store::NewEvent;
use jiff::Timestamp;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::nul::{has_nul_escape, NUL_REASON};

/// The only CloudEvents version accepted.
pub const SPEC_VERSION: &str = "1.0";

/// An attribute as sent: a string, or a value of another JSON type (an error when checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    Text(Cow<'a, str>),
    NotText,
}

impl<'a> Field<'a> {
    /// A string attribute, as a CSV column gives it.
    pub fn text(text: &'a str) -> Self {
        Self::Text(Cow::Borrowed(text))
    }
}

/// The attributes of one event, as sent. `data` is the JSON text of the `data` member.
///
/// Every attribute is read as "a string or something else" and checked by [`check_event`], so
/// that each problem is named; the OpenAPI document (`CloudEvent`) describes what that check
/// takes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(
    as = CloudEvent,
    description = "One usage event in CloudEvents 1.0 structured mode. Other attributes \
                   (CloudEvents extensions) are ignored.",
    example = json!({
        "specversion": "1.0",
        "id": "evt-2026-11-01-000001",
        "source": "//compute.example.com/hosts/h-17",
        "type": "compute.cpu.seconds",
        "subject": "cus_01jd0m7x9q3k8w2v5t6r4y1z0a",
        "time": "2026-11-01T12:00:00Z",
        "data": {"seconds": "3600", "project": "production"}
    })
)]
pub struct EventFields<'a> {
    /// The CloudEvents version: `"1.0"`.
    #[serde(borrow, default)]
    #[schema(value_type = SpecVersion, required = true)]
    pub specversion: Option<Field<'a>>,
    /// Unique per `source`: an event whose (`source`, `id`) was stored before is a duplicate,
    /// not stored again. 1 to 512 bytes.
    #[serde(borrow, default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    pub id: Option<Field<'a>>,
    /// Who produced the event (a URI reference). 1 to 512 bytes.
    #[serde(borrow, default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    pub source: Option<Field<'a>>,
    /// What happened: the meters whose `event_type` it is count it. 1 to 512 bytes.
    #[serde(rename = "type", borrow, default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    pub event_type: Option<Field<'a>>,
    /// Whose usage it is: a customer's id, or a subject a customer claims. 1 to 512 bytes.
    #[serde(borrow, default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    pub subject: Option<Field<'a>>,
    /// When it happened: RFC 3339 with an offset, at or after 1970-01-01T00:00:00Z and before
    /// 2200-01-01T00:00:00Z.
    #[serde(borrow, default)]
    #[schema(value_type = String, format = DateTime, required = true)]
    pub time: Option<Field<'a>>,
    /// The media type of `data`: a JSON one (`application/json`, `…+json`) when given.
    #[serde(borrow, default)]
    #[schema(value_type = Option<String>, example = "application/json")]
    pub datacontenttype: Option<Field<'a>>,
    /// What the event measured; absent or `null` when it carries nothing.
    // The JSON text of the member, as sent; `None` when it is absent or `null`.
    #[serde(borrow, default, deserialize_with = "raw_json")]
    #[schema(value_type = Option<EventData>)]
    pub data: Option<&'a str>,
}

/// The `specversion` of an event, as the OpenAPI document describes it: [`SPEC_VERSION`].
pub struct SpecVersion;

impl utoipa::PartialSchema for SpecVersion {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([SPEC_VERSION]))
            .into()
    }
}

impl utoipa::ToSchema for SpecVersion {}

/// The `data` of an event, as the OpenAPI document describes it: a JSON object whose members
/// meters read (a value to aggregate, group-by dimensions such as `project`), at most
/// 64 KiB of JSON, no string or member name holding U+0000.
pub struct EventData;

impl utoipa::PartialSchema for EventData {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some(
                "What the event measured: a JSON object whose members meters read (the value \
                 they aggregate, group-by dimensions such as `project`); at most 64 KiB of JSON, \
                 no string or member name holding U+0000.",
            ))
            .examples([serde_json::json!({"seconds": "3600", "project": "production"})])
            .into()
    }
}

impl utoipa::ToSchema for EventData {}

/// The text of a JSON value, checked by the parser and borrowed from the body.
fn raw_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de str>, D::Error> {
    Option::<&'de RawValue>::deserialize(deserializer).map(|raw| raw.map(RawValue::get))
}

/// One invalid field of an event: which event (its index in the batch, or its line in a file),
/// which attribute, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventError {
    pub index: usize,
    /// The CloudEvents attribute (`id`, `time`, `data`, ...), or empty when the event as a whole
    /// is wrong (not a JSON object).
    pub field: &'static str,
    pub reason: String,
}

/// Parses and checks the event whose JSON text is `json`; `index` names it in errors.
///
/// # Errors
///
/// Every invalid field, or one error for the whole event when it is not a JSON object.
pub fn parse_event(json: &str, index: usize) -> Result<NewEvent, Vec<EventError>> {
    // serde would also read a struct from an array, by position.
    if !json.trim_start().starts_with('{') {
        return Err(vec![EventError {
            index,
            field: "",
            reason: "an event is a JSON object".into(),
        }]);
    }
    match serde_json::from_str::<EventFields<'_>>(json) {
        Ok(fields) => check_event(&fields, index),
        Err(error) => Err(vec![EventError {
            index,
            field: "",
            reason: match error.classify() {
                serde_json::error::Category::Data => {
                    format!("an event is a JSON object with string attributes ({error})")
                }
                _ => format!("not JSON: {error}"),
            },
        }]),
    }
}

/// [`parse_event`], taking `time` as `now` when the event has none (absent or `null`): what
/// OpenMeter's ingestion does with an event without a time (docs/profiles/openmeter.md).
///
/// # Errors
///
/// As [`parse_event`].
pub fn parse_event_timed_now(
    json: &str,
    index: usize,
    now: Timestamp,
) -> Result<NewEvent, Vec<EventError>> {
    if !json.trim_start().starts_with('{') {
        return parse_event(json, index);
    }
    match serde_json::from_str::<EventFields<'_>>(json) {
        Ok(mut fields) => {
            if fields.time.is_none() {
                fields.time = Some(Field::Text(Cow::Owned(now.to_string())));
            }
            check_event(&fields, index)
        }
        Err(_) => parse_event(json, index),
    }
}

/// Checks the attributes of one event and turns them into a [`NewEvent`].
///
/// # Errors
///
/// Every invalid field: a required attribute missing, empty, not a string, longer than
/// [`EVENT_TEXT_LENGTH_MAX`] bytes or holding U+0000; `specversion` other than 1.0; `time` not an
/// RFC 3339 instant; `datacontenttype` not JSON; `data` not an object, larger than
/// [`EVENT_DATA_LENGTH_MAX`] or holding U+0000 in a member name or string.
pub fn check_event(fields: &EventFields<'_>, index: usize) -> Result<NewEvent, Vec<EventError>> {
    let mut errors = Vec::new();
    let mut error = |field, reason: String| {
        errors.push(EventError {
            index,
            field,
            reason,
        })
    };
    match required(fields.specversion.as_ref()) {
        Ok(version) if version == SPEC_VERSION => {}
        Ok(version) => error("specversion", format!("must be \"1.0\", not {version:?}")),
        Err(reason) => error("specversion", reason),
    }
    let mut text = |field, value: Option<&Field<'_>>| match required(value) {
        Ok(text) => Some(text.to_owned()),
        Err(reason) => {
            error(field, reason);
            None
        }
    };
    let id = text("id", fields.id.as_ref());
    let source = text("source", fields.source.as_ref());
    let event_type = text("type", fields.event_type.as_ref());
    let subject = text("subject", fields.subject.as_ref());
    let time = match required(fields.time.as_ref()) {
        Ok(time) => parse_time(time)
            .map_err(|reason| error("time", reason))
            .ok(),
        Err(reason) => {
            error("time", reason);
            None
        }
    };
    if let Some(content_type) = &fields.datacontenttype {
        if let Err(reason) = check_content_type(content_type) {
            error("datacontenttype", reason);
        }
    }
    let data = fields.data;
    if let Some(data) = data {
        if let Err(reason) = check_data(data) {
            error("data", reason);
        }
    }
    match (id, source, event_type, subject, time) {
        (Some(id), Some(source), Some(event_type), Some(subject), Some(time))
            if errors.is_empty() =>
        {
            Ok(NewEvent {
                source,
                id,
                event_type,
                subject,
                time,
                data: data.map(str::to_owned),
            })
        }
        _ => Err(errors),
    }
}

fn required<'f>(field: Option<&'f Field<'_>>) -> Result<&'f str, String> {
    match field {
        None => Err("is required".into()),
        Some(Field::NotText) => Err("must be a string".into()),
        Some(Field::Text(text)) if text.is_empty() => Err("must not be empty".into()),
        Some(Field::Text(text)) if text.len() > EVENT_TEXT_LENGTH_MAX => Err(format!(
            "has {} bytes; at most {EVENT_TEXT_LENGTH_MAX}",
            text.len()
        )),
        Some(Field::Text(text)) if text.contains('\0') => Err(NUL_REASON.into()),
        Some(Field::Text(text)) => Ok(text),
    }
}

/// RFC 3339: a date, `T`, a time and an offset (`Z` or `±hh:mm`).
fn parse_time(time: &str) -> Result<Timestamp, String> {
    let has_offset = time.ends_with(['Z', 'z'])
        || time
            .get(time.len().saturating_sub(6)..)
            .is_some_and(|tail| {
                tail.starts_with(['+', '-']) && tail.as_bytes().get(3) == Some(&b':')
            });
    if !has_offset {
        return Err("must be an RFC 3339 instant with an offset, e.g. 2026-11-01T12:00:00Z".into());
    }
    let instant = time
        .parse::<Timestamp>()
        .map_err(|_| "is not an RFC 3339 instant, e.g. 2026-11-01T12:00:00Z".to_owned())?;
    if !(EVENT_TIME_EARLIEST..EVENT_TIME_END).contains(&instant) {
        return Err(format!(
            "must be at or after {EVENT_TIME_EARLIEST} and before {EVENT_TIME_END}"
        ));
    }
    Ok(instant)
}

/// The earliest instant an event may carry: the Unix epoch, where billing worlds start too
/// (docs/scenario-format.md).
const EVENT_TIME_EARLIEST: Timestamp = Timestamp::UNIX_EPOCH;

/// The end of the instants an event may carry (exclusive): 2200-01-01T00:00:00Z. A time past
/// it is a client's bug, not usage.
const EVENT_TIME_END: Timestamp = Timestamp::constant(7_258_118_400, 0);

fn check_content_type(content_type: &Field<'_>) -> Result<(), String> {
    let Field::Text(content_type) = content_type else {
        return Err("must be a string".into());
    };
    if content_type.contains('\0') {
        return Err(NUL_REASON.into());
    }
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let is_json = essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json");
    if is_json {
        Ok(())
    } else {
        Err(format!("must be a JSON media type, not {essence:?}"))
    }
}

fn check_data(data: &str) -> Result<(), String> {
    if data.len() > EVENT_DATA_LENGTH_MAX {
        return Err(format!(
            "has {} bytes of JSON; at most {EVENT_DATA_LENGTH_MAX}",
            data.len()
        ));
    }
    // The parser has checked that it is JSON; an object is the only kind meters can read.
    if !data.starts_with('{') {
        return Err("must be a JSON object".into());
    }
    // Meters copy data's values into invoices (group-by dimensions), which PostgreSQL stores as
    // jsonb: no member name or string of it may hold U+0000 (crate::nul).
    if has_nul_escape(data.as_bytes()) {
        return Err(format!("{NUL_REASON} in any member name or string"));
    }
    Ok(())
}

/// The attributes of an event that is a JSON object whose attributes each appear once: what
/// [`parse_batch`] reads. Anything else is an error, and the caller then reads the batch event by
/// event to name each problem ([`parse_event`]).
struct ObjectFields<'a>(EventFields<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for ObjectFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectFieldsVisitor(PhantomData))
    }
}

struct ObjectFieldsVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ObjectFieldsVisitor<'a> {
    type Value = ObjectFields<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a CloudEvent object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        fn set<'a, E: de::Error>(
            slot: &mut Option<Field<'a>>,
            value: Field<'a>,
            name: &'static str,
        ) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let mut fields = EventFields::default();
        let mut data_seen = false;
        while let Some(key) = map.next_key::<Attribute>()? {
            match key {
                Attribute::SpecVersion => {
                    set(&mut fields.specversion, map.next_value()?, "specversion")?;
                }
                Attribute::Id => set(&mut fields.id, map.next_value()?, "id")?,
                Attribute::Source => set(&mut fields.source, map.next_value()?, "source")?,
                Attribute::Type => set(&mut fields.event_type, map.next_value()?, "type")?,
                Attribute::Subject => set(&mut fields.subject, map.next_value()?, "subject")?,
                Attribute::Time => set(&mut fields.time, map.next_value()?, "time")?,
                Attribute::DataContentType => set(
                    &mut fields.datacontenttype,
                    map.next_value()?,
                    "datacontenttype",
                )?,
                Attribute::Data => {
                    if std::mem::replace(&mut data_seen, true) {
                        return Err(de::Error::duplicate_field("data"));
                    }
                    fields.data = map
                        .next_value::<Option<&'de RawValue>>()?
                        .map(RawValue::get);
                }
                Attribute::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ObjectFields(fields))
    }
}

/// A member name of an event object, read without copying it.
enum Attribute {
    SpecVersion,
    Id,
    Source,
    Type,
    Subject,
    Time,
    DataContentType,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Attribute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(AttributeVisitor)
    }
}

struct AttributeVisitor;

impl Visitor<'_> for AttributeVisitor {
    type Value = Attribute;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(match name {
            "specversion" => Attribute::SpecVersion,
            "id" => Attribute::Id,
            "source" => Attribute::Source,
            "type" => Attribute::Type,
            "subject" => Attribute::Subject,
            "time" => Attribute::Time,
            "datacontenttype" => Attribute::DataContentType,
            "data" => Attribute::Data,
            _ => Attribute::Other,
        })
    }
}

/// Reads and checks a JSON array of events in one pass over its text, when every element is an
/// object whose attributes each appear once (as metering agents send them): each event's
/// outcome, in order. `None` when the text is anything else (not JSON, not an array, an element
/// that is not such an object): then read it with [`parse_event`], event by event, to name each
/// problem.
pub fn parse_batch(json: &[u8]) -> Option<Vec<Result<NewEvent, Vec<EventError>>>> {
    super::scan::batch(json).or_else(|| parse_batch_with_serde(json))
}

/// [`parse_batch`] by serde's visitors: for any batch [`super::scan::batch`] leaves to it.
pub(super) fn parse_batch_with_serde(
    json: &[u8],
) -> Option<Vec<Result<NewEvent, Vec<EventError>>>> {
    serde_json::from_slice::<CheckedBatch>(json)
        .ok()
        .map(|batch| batch.0)
}

/// The outcome of checking each event of an array, each checked as soon as it is read.
struct CheckedBatch(Vec<Result<NewEvent, Vec<EventError>>>);

impl<'de> Deserialize<'de> for CheckedBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(CheckedBatchVisitor)
    }
}

struct CheckedBatchVisitor;

impl<'de> Visitor<'de> for CheckedBatchVisitor {
    type Value = CheckedBatch;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of CloudEvent objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Room for a typical batch at once, instead of growing by doubling.
        let mut outcomes = Vec::with_capacity(1_024);
        while let Some(ObjectFields(fields)) = seq.next_element::<ObjectFields<'de>>()? {
            let index = outcomes.len();
            outcomes.push(check_event(&fields, index));
        }
        Ok(CheckedBatch(outcomes))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

/// Accepts any JSON value: strings become [`Field::Text`] (borrowed when they have no escapes),
/// anything else [`Field::NotText`].
struct FieldVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Field::Text(Cow::Owned(text)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::NotText)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::NotText)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::NotText)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::NotText)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::NotText)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::NotText)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"specversion":"1.0","id":"e1","source":"cluster-7","type":"cpu",
        "subject":"cus_1","time":"2026-11-01T12:00:00.5+01:00","data":{"cores":2}}"#;

    fn fields_of(errors: &[EventError]) -> Vec<&'static str> {
        errors.iter().map(|error| error.field).collect()
    }

    #[test]
    fn a_valid_event_keeps_its_attributes_and_data_text() {
        let event = parse_event(VALID, 0).unwrap();

        assert_eq!(event.id, "e1");
        assert_eq!(event.source, "cluster-7");
        assert_eq!(event.event_type, "cpu");
        assert_eq!(event.subject, "cus_1");
        assert_eq!(event.time, "2026-11-01T11:00:00.5Z".parse().unwrap());
        assert_eq!(event.data.as_deref(), Some(r#"{"cores":2}"#));
    }

    #[test]
    fn every_invalid_field_is_named() {
        let json = r#"{"specversion":"0.3","id":"","source":7,"subject":"s",
            "time":"2026-11-01 12:00","data":[1],"datacontenttype":"text/plain"}"#;

        let errors = parse_event(json, 4).unwrap_err();

        assert_eq!(
            fields_of(&errors),
            [
                "specversion",
                "id",
                "source",
                "type",
                "time",
                "datacontenttype",
                "data"
            ]
        );
        assert!(errors.iter().all(|error| error.index == 4));
    }

    #[test]
    fn an_instant_outside_1970_to_2200_is_refused_in_the_project_s_words() {
        for time in [
            "1969-12-31T23:59:59Z",
            "2200-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-02-30T00:00:00Z",
        ] {
            let json = VALID.replace("2026-11-01T12:00:00.5+01:00", time);
            let error = parse_event(&json, 0).unwrap_err();
            assert_eq!(fields_of(&error), ["time"], "{time}");
            let reason = format!("{error:?}");
            assert!(
                reason.contains("1970-01-01T00:00:00Z") || reason.contains("e.g. 2026-11-01"),
                "{time}: {reason}"
            );
        }
        let json = VALID.replace("2026-11-01T12:00:00.5+01:00", "1970-01-01T00:00:00Z");
        assert!(parse_event(&json, 0).is_ok());
    }

    #[test]
    fn an_instant_without_an_offset_is_refused() {
        for time in ["2026-11-01T12:00:00", "2026-11-01", "yesterday"] {
            let json = VALID.replace("2026-11-01T12:00:00.5+01:00", time);
            assert_eq!(
                fields_of(&parse_event(&json, 0).unwrap_err()),
                ["time"],
                "{time}"
            );
        }
    }

    #[test]
    fn null_data_is_no_data_and_long_attributes_are_refused() {
        let json = VALID.replace(r#"{"cores":2}"#, "null");
        assert_eq!(parse_event(&json, 0).unwrap().data, None);

        let long = "x".repeat(EVENT_TEXT_LENGTH_MAX + 1);
        let json = VALID.replace(r#""e1""#, &format!("{long:?}"));
        assert_eq!(fields_of(&parse_event(&json, 0).unwrap_err()), ["id"]);
    }

    /// Each event of `array`, read by itself.
    fn one_by_one(array: &str) -> Vec<Result<NewEvent, Vec<EventError>>> {
        let raw: Vec<&RawValue> = serde_json::from_str(array).unwrap();
        raw.iter()
            .enumerate()
            .map(|(index, raw)| parse_event(raw.get(), index))
            .collect()
    }

    #[test]
    fn a_batch_read_in_one_pass_reads_as_its_events_one_by_one() {
        let invalid = r#"{"specversion":"0.3","id":"","source":7,"subject":"s",
            "time":"2026-11-01 12:00","data":[1],"datacontenttype":"text/plain"}"#;
        let escaped = r#"{"specversion":"1.0","i\u0064":"e\"2","source":"c","type":"cpu",
            "subject":"cus_\u00e9","time":"2026-11-01T12:00:00Z","data":null,"extra":{"a":[1]}}"#;
        let array = format!("[{VALID}, {invalid}, {escaped}]");

        let batch = parse_batch(array.as_bytes()).expect("objects with single attributes");

        assert_eq!(batch, one_by_one(&array));
        assert_eq!(batch[2].as_ref().unwrap().id, "e\"2");
        assert_eq!(batch[2].as_ref().unwrap().subject, "cus_\u{e9}");
        assert_eq!(fields_of(batch[1].as_ref().unwrap_err()).len(), 7);
    }

    #[test]
    fn a_batch_with_a_non_object_or_a_repeated_attribute_is_left_to_one_by_one() {
        let repeated = VALID.replace(r#""id":"e1""#, r#""id":"e1","id":"e2""#);
        let repeated_data = VALID.replace(r#""data":{"cores":2}"#, r#""data":1,"data":{}"#);
        for array in [
            format!("[{VALID}, [1, 2]]"),
            format!("[{VALID}, 7]"),
            format!("[{repeated}]"),
            format!("[{repeated_data}]"),
            format!("[{VALID}"),
            VALID.to_owned(),
        ] {
            assert_eq!(parse_batch(array.as_bytes()), None, "{array}");
        }
        assert_eq!(parse_batch(b"[]"), Some(Vec::new()));
    }

    #[test]
    fn a_nul_in_data_is_refused_by_either_reader_and_a_spelled_one_is_not() {
        let nul = VALID.replace(r#"{"cores":2}"#, r#"{"cores":2,"tag":"a\u0000"}"#);
        let spelled = VALID.replace(r#"{"cores":2}"#, r#"{"cores":2,"tag":"a\\u0000"}"#);
        let array = format!("[{nul}, {spelled}]");

        let scanned = super::super::scan::batch(array.as_bytes()).expect("a usual batch");

        assert_eq!(scanned, one_by_one(&array));
        let errors = scanned[0].as_ref().unwrap_err();
        assert_eq!(fields_of(errors), ["data"]);
        assert!(errors[0].reason.starts_with(NUL_REASON), "{errors:?}");
        assert!(scanned[1].is_ok());
    }

    #[test]
    fn an_event_without_a_time_can_be_timed_now() {
        let now: Timestamp = "2026-11-02T08:00:00.25Z".parse().unwrap();
        for json in [
            VALID.replace(r#""time":"2026-11-01T12:00:00.5+01:00","#, ""),
            VALID.replace(r#""2026-11-01T12:00:00.5+01:00""#, "null"),
        ] {
            assert_eq!(fields_of(&parse_event(&json, 0).unwrap_err()), ["time"]);
            assert_eq!(parse_event_timed_now(&json, 0, now).unwrap().time, now);
        }
        let timed = parse_event_timed_now(VALID, 0, now).unwrap();
        assert_eq!(timed, parse_event(VALID, 0).unwrap());
        let wrong = VALID.replace(r#""2026-11-01T12:00:00.5+01:00""#, "7");
        assert_eq!(
            fields_of(&parse_event_timed_now(&wrong, 0, now).unwrap_err()),
            ["time"]
        );
    }

    #[test]
    fn something_other_than_an_object_is_one_error_for_the_event() {
        let errors = parse_event("[1, 2]", 2).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "");
        assert_eq!(errors[0].index, 2);
    }
}
