//! An event's `data`: the JSON object text as the client sent it, read member by member.
//!
//! Billing reads two or three members of every event (a value, a dimension or two) and nothing
//! else, and a run reads millions of events. Building a map per event (an allocation per key and
//! per string, a hash per key) cost more than the rest of reading the event. [`EventData`] keeps
//! the object's text in one allocation and finds a member by scanning it: for the handful of
//! members usage data has, that is a few dozen byte comparisons.
//!
//! The text is checked to be one JSON object when an `EventData` is made, so the scanner may
//! trust it. Semantics are those of a `serde_json::Map`: when a key repeats, its last value
//! counts.

use std::borrow::Cow;
use std::fmt;

use rust_decimal::Decimal;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::decimal::parse_decimal;

/// The `data` object of a usage event, kept as JSON text.
#[derive(Clone, Default)]
pub struct EventData {
    /// One JSON object, or empty for an event sent without data.
    text: Box<str>,
}

/// Why text is not event data.
#[derive(Debug, thiserror::Error)]
pub enum EventDataError {
    /// The text is not JSON.
    #[error("event data is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The text is JSON but not an object.
    #[error("event data is not a JSON object")]
    NotAnObject,
}

impl EventData {
    /// Event data from the JSON text of an object; empty (or blank) text is an empty object.
    ///
    /// # Errors
    /// [`EventDataError`] when the text is not one JSON object.
    pub fn from_json_text(text: &str) -> Result<Self, EventDataError> {
        let trimmed = text.trim_matches(is_json_whitespace);
        if trimmed.is_empty() {
            return Ok(Self::default());
        }
        if !trimmed.starts_with('{') {
            return Err(EventDataError::NotAnObject);
        }
        // Checks the whole text (strings, numbers, nesting, nothing after it) without keeping
        // anything. A flat object of plain values, what usage data nearly always is, is checked
        // by `is_flat_object`; anything else (escapes, nesting, an error to report) by serde.
        if !is_flat_object(trimmed.as_bytes()) {
            serde_json::from_str::<IgnoredAny>(trimmed).map_err(EventDataError::Json)?;
        }
        Ok(Self {
            text: trimmed.into(),
        })
    }

    /// Event data holding `map`.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        if map.is_empty() {
            return Self::default();
        }
        Self {
            text: serde_json::to_string(map)
                .expect("a JSON map always serializes")
                .into(),
        }
    }

    /// The object's JSON text; empty when the event came without data.
    pub fn as_json_text(&self) -> &str {
        &self.text
    }

    /// True when the object has no member.
    pub fn is_empty(&self) -> bool {
        self.members().next().is_none()
    }

    /// The object as a map (parsed anew on each call).
    pub fn to_map(&self) -> Map<String, Value> {
        if self.text.is_empty() {
            return Map::new();
        }
        serde_json::from_str(&self.text).expect("event data is checked to be a JSON object")
    }

    /// The value at a dotted path (`cores`, `usage.cores`, or `$.usage.cores`), as raw JSON.
    pub fn get(&self, path: &str) -> Option<RawMember<'_>> {
        let path = path.strip_prefix("$.").unwrap_or(path);
        if !path.contains('.') {
            return member(&self.text, path).map(|text| RawMember { text });
        }
        let mut parts = path.split('.');
        let mut current = member(&self.text, parts.next()?)?;
        for part in parts {
            current = member(current, part)?;
        }
        Some(RawMember { text: current })
    }

    /// The members as (raw key, raw value) texts, in written order, repeats included.
    fn members(&self) -> Members<'_> {
        Members::of(&self.text)
    }
}

impl fmt::Debug for EventData {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("EventData")
            .field(&self.as_json_text())
            .finish()
    }
}

/// Equal when the objects are equal as maps (the same text is the usual, cheap case).
impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || self.to_map() == other.to_map()
    }
}

impl Serialize for EventData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_map(&Map::deserialize(deserializer)?))
    }
}

/// One member's value, as the JSON text it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawMember<'a> {
    text: &'a str,
}

impl<'a> RawMember<'a> {
    /// The value's JSON text.
    pub fn as_json_text(self) -> &'a str {
        self.text
    }

    /// The value as a `serde_json::Value`.
    pub fn to_value(self) -> Value {
        serde_json::from_str(self.text).expect("event data is checked to be JSON")
    }

    /// The value as an exact decimal: a number as written, or a numeric string (as
    /// `decimal_from_json` reads a `serde_json::Value`); `None` for anything else.
    pub fn decimal(self) -> Option<Decimal> {
        match self.text.as_bytes().first()? {
            b'"' => parse_decimal(self.string()?.trim()),
            b'-' | b'0'..=b'9' => parse_decimal(self.text),
            _ => None,
        }
    }

    /// The value as a dimension's text: a string's own text, empty for null, the compact JSON
    /// text of anything else.
    pub fn dimension(self) -> Cow<'a, str> {
        match self.text.as_bytes().first() {
            Some(b'"') => self.string().unwrap_or_default(),
            Some(b'n') => Cow::Borrowed(""),
            Some(b'{' | b'[') => Cow::Owned(self.to_value().to_string()),
            _ => Cow::Borrowed(self.text),
        }
    }

    /// True when the value equals `expected` (numbers compare by their written text, as
    /// `serde_json::Value`s with `arbitrary_precision` do).
    pub fn equals(self, expected: &Value) -> bool {
        match (expected, self.text.as_bytes().first()) {
            (Value::String(expected), Some(b'"')) => {
                self.string().is_some_and(|text| text == expected.as_str())
            }
            (Value::String(_), _) => false,
            _ => self.to_value() == *expected,
        }
    }

    /// A string value's text, unescaped (borrowed when it has no escape); `None` when the value
    /// is not a string.
    fn string(self) -> Option<Cow<'a, str>> {
        let inner = self.text.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('\\') {
            serde_json::from_str::<String>(self.text)
                .ok()
                .map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }
}

/// The value of `key` in the object `text` (the last, if the key repeats); `None` when `text`
/// is not an object or has no such member.
fn member<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut found = None;
    for (raw_key, value) in Members::of(text) {
        if key_matches(raw_key, key) {
            found = Some(value);
        }
    }
    found
}

/// True when the raw key (its text between the quotes) names `key`. An escape makes the raw text
/// longer than what it names, so a raw key as long as `key` names it only when it is `key` and
/// holds no escape, and a shorter one never does.
fn key_matches(raw_key: &str, key: &str) -> bool {
    if raw_key.len() == key.len() {
        raw_key == key && !raw_key.contains('\\')
    } else {
        raw_key.len() > key.len()
            && raw_key.contains('\\')
            && serde_json::from_str::<String>(&format!("\"{raw_key}\""))
                .is_ok_and(|text| text == key)
    }
}

/// True when `bytes` is exactly one JSON object whose members are strings without escapes,
/// numbers, booleans or nulls (`{"count":3,"project":"prj_1"}`); false for anything else,
/// valid or not, which then goes to serde.
fn is_flat_object(bytes: &[u8]) -> bool {
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return false;
    }
    at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return skip_whitespace(bytes, at + 1) == bytes.len();
    }
    loop {
        let Some(end) = plain_string_end(bytes, at) else {
            return false;
        };
        at = skip_whitespace(bytes, end);
        if bytes.get(at) != Some(&b':') {
            return false;
        }
        at = skip_whitespace(bytes, at + 1);
        let end = match bytes.get(at) {
            Some(b'"') => plain_string_end(bytes, at),
            Some(b't') => literal_end(bytes, at, b"true"),
            Some(b'f') => literal_end(bytes, at, b"false"),
            Some(b'n') => literal_end(bytes, at, b"null"),
            Some(b'-' | b'0'..=b'9') => number_end(bytes, at),
            _ => None,
        };
        let Some(end) = end else {
            return false;
        };
        at = skip_whitespace(bytes, end);
        match bytes.get(at) {
            Some(b',') => at = skip_whitespace(bytes, at + 1),
            Some(b'}') => return skip_whitespace(bytes, at + 1) == bytes.len(),
            _ => return false,
        }
    }
}

/// The end of the string starting at `at` when it has no escape and no control character.
fn plain_string_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut end = at + 1;
    loop {
        match *bytes.get(end)? {
            b'"' => return Some(end + 1),
            b'\\' | 0..=0x1f => return None,
            _ => end += 1,
        }
    }
}

fn literal_end(bytes: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    let end = at + literal.len();
    (bytes.get(at..end)? == literal).then_some(end)
}

/// The end of the JSON number starting at `at`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(bytes: &[u8], at: usize) -> Option<usize> {
    let digits = |from: usize| {
        let mut end = from;
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        (end > from).then_some(end)
    };
    let mut end = at;
    if bytes.get(end) == Some(&b'-') {
        end += 1;
    }
    end = if bytes.get(end) == Some(&b'0') {
        end + 1
    } else {
        digits(end)?
    };
    if bytes.get(end) == Some(&b'.') {
        end = digits(end + 1)?;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        end += 1;
        if matches!(bytes.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        end = digits(end)?;
    }
    Some(end)
}

fn is_json_whitespace(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\n' | '\r')
}

/// The members of an object's text (checked JSON), as (raw key between its quotes, raw value).
/// Yields nothing when the text is not an object.
struct Members<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
}

impl<'a> Members<'a> {
    fn of(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut at = skip_whitespace(bytes, 0);
        if bytes.get(at) == Some(&b'{') {
            at += 1;
        } else {
            at = bytes.len();
        }
        Self { bytes, text, at }
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.bytes;
        let mut at = skip_whitespace(bytes, self.at);
        // Whatever happens below, a text that does not go on as an object ends the members.
        self.at = bytes.len();
        if bytes.get(at) == Some(&b',') {
            at = skip_whitespace(bytes, at + 1);
        }
        if bytes.get(at) != Some(&b'"') {
            // `}` or the end: no more members.
            return None;
        }
        let key_end = string_end(bytes, at);
        // `get` and not indexing: never a panic, even on text that is not JSON.
        let key = self.text.get(at + 1..key_end.checked_sub(1)?)?;
        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(bytes, at + 1);
        let value_end = value_end(bytes, value_start);
        let value = self.text.get(value_start..value_end)?;
        self.at = value_end;
        Some((key, value))
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the string that starts (with its quote) at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The index just past the value that starts at `start`.
fn value_end(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(b'"') => string_end(bytes, start),
        Some(b'{' | b'[') => {
            let mut depth = 0_usize;
            let mut at = start;
            while at < bytes.len() {
                match bytes[at] {
                    b'"' => {
                        at = string_end(bytes, at);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return at + 1;
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
            bytes.len()
        }
        _ => {
            // A number or a literal: up to the next delimiter.
            let mut at = start;
            while at < bytes.len()
                && !matches!(bytes[at], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                at += 1;
            }
            at
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;
    use serde_json::json;

    use super::*;
    use crate::decimal::decimal_from_json;

    fn data(text: &str) -> EventData {
        EventData::from_json_text(text).unwrap()
    }

    #[test]
    fn members_are_found_by_key_and_dotted_path() {
        let data = data(
            r#" { "cores" : 2 , "project":"prj_1", "usage": {"cpu": {"s": "1.5"}, "x": [1, {"y": "}"}]}, "n": null } "#,
        );

        assert_eq!(data.get("cores").unwrap().decimal(), Some(dec!(2)));
        assert_eq!(data.get("$.cores").unwrap().as_json_text(), "2");
        assert_eq!(data.get("project").unwrap().dimension(), "prj_1");
        assert_eq!(data.get("usage.cpu.s").unwrap().decimal(), Some(dec!(1.5)));
        assert_eq!(
            data.get("usage.x").unwrap().as_json_text(),
            r#"[1, {"y": "}"}]"#
        );
        assert_eq!(data.get("usage.x").unwrap().dimension(), r#"[1,{"y":"}"}]"#);
        assert_eq!(data.get("n").unwrap().dimension(), "");
        assert_eq!(data.get("n").unwrap().decimal(), None);
        assert!(data.get("missing").is_none());
        assert!(data.get("cores.deeper").is_none());
        assert!(data.get("project.deeper").is_none());
        assert!(!data.is_empty());
    }

    #[test]
    fn escapes_repeats_and_strings_read_as_a_map_would() {
        let data = data(r#"{"k":1,"a\"b":"x\ny","k":"7.25","t":true}"#);

        assert_eq!(data.get("k").unwrap().decimal(), Some(dec!(7.25)));
        assert_eq!(data.get("a\"b").unwrap().dimension(), "x\ny");
        assert_eq!(data.get("t").unwrap().dimension(), "true");
        assert!(data.get("t").unwrap().equals(&json!(true)));
        assert!(data.get("k").unwrap().equals(&json!("7.25")));
        assert!(!data.get("k").unwrap().equals(&json!(7.25)));
        assert_eq!(data.to_map()["k"], json!("7.25"));
    }

    #[test]
    fn only_one_json_object_is_event_data() {
        assert!(EventData::from_json_text("").unwrap().is_empty());
        assert!(EventData::from_json_text("  {} ").unwrap().is_empty());
        assert!(matches!(
            EventData::from_json_text("[1]"),
            Err(EventDataError::NotAnObject)
        ));
        assert!(matches!(
            EventData::from_json_text(r#"{"a":1} x"#),
            Err(EventDataError::Json(_))
        ));
        assert!(matches!(
            EventData::from_json_text(r#"{"a":}"#),
            Err(EventDataError::Json(_))
        ));
    }

    #[test]
    fn the_flat_check_agrees_with_serde() {
        for (text, flat) in [
            (r#"{"count":3,"project":"prj_1"}"#, true),
            (
                " { \"a\" : -0.5e+3 , \"b\":true,\"c\":false, \"d\":null, \"e\":\"\u{e9}\" } ",
                true,
            ),
            (r#"{"a":0,"b":10.25,"c":1E9}"#, true),
            ("{}", true),
            (r#"{"a":01}"#, false),
            (r#"{"a":1.}"#, false),
            (r#"{"a":-}"#, false),
            (r#"{"a":1,}"#, false),
            (r#"{"a":tru}"#, false),
            ("{\"a\":\"x\ty\"}", false),
            (r#"{"a":"x\"y"}"#, false),
            (r#"{"a":{"b":1}}"#, false),
            (r#"{"a":1}}"#, false),
            (r#"{"a" 1}"#, false),
        ] {
            assert_eq!(is_flat_object(text.as_bytes()), flat, "{text}");
            let serde_object =
                serde_json::from_str::<Value>(text).is_ok_and(|value| value.is_object());
            if flat {
                assert!(serde_object, "{text}");
            }
            assert_eq!(
                EventData::from_json_text(text).is_ok(),
                serde_object,
                "{text}"
            );
        }
    }

    #[test]
    fn serde_round_trips_through_a_map() {
        let data = data(r#"{ "cores": 2.50, "p": "x" }"#);

        let text = serde_json::to_string(&data).unwrap();
        assert_eq!(text, r#"{"cores":2.50,"p":"x"}"#);
        let back: EventData = serde_json::from_str(&text).unwrap();
        assert_eq!(back, data);
        assert_eq!(back.get("cores").unwrap().decimal(), Some(dec!(2.50)));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z0-9 .\"\\\\}{\\[\\]\u{e9}\n-]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-c.\"]{1,3}", inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Text is event data exactly when serde reads it as one object, whichever check
        /// decided, and the scanner never panics, even on text that is not JSON.
        #[test]
        fn only_what_serde_reads_as_an_object_is_accepted(text in "[{}\\[\\]\":,a-c0-9.eE+\\- \\\\tnrulsf]{0,24}") {
            let serde_object = serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_object());
            let accepted = EventData::from_json_text(&text).is_ok();
            let blank = text.trim_matches(is_json_whitespace).is_empty();
            prop_assert_eq!(accepted, serde_object || blank, "{:?}", text);
            if is_flat_object(text.as_bytes()) {
                prop_assert!(serde_object, "{:?}", text);
            }
            let _ = member(&text, "a");
        }
    }

    proptest! {
        /// Every key of an object, written compactly or spaced, reads as serde's map reads it:
        /// the same value, decimal and dimension text.
        #[test]
        fn lookups_agree_with_serde(
            members in prop::collection::vec(("[a-c\"\\\\]{1,3}", json_value()), 0..6),
            spaced in any::<bool>(),
        ) {
            let map: Map<String, Value> = members.into_iter().collect();
            let text = if spaced {
                serde_json::to_string_pretty(&map).unwrap()
            } else {
                serde_json::to_string(&map).unwrap()
            };
            let data = EventData::from_json_text(&text).unwrap();
            prop_assert_eq!(data.to_map(), map.clone());
            for (key, value) in &map {
                let raw = data.get(key).unwrap();
                prop_assert_eq!(&raw.to_value(), value);
                prop_assert_eq!(raw.decimal(), decimal_from_json(value));
                prop_assert!(raw.equals(value));
                let dimension = match value {
                    Value::Null => String::new(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                prop_assert_eq!(raw.dimension().into_owned(), dimension);
            }
        }
    }
}
