//! An event's `data` object read back from its stored JSON text.
//!
//! Billing reads millions of events, and parsing their `data` with serde is most of the cost of
//! decoding one. Usage data is nearly always a flat object of strings and numbers
//! (`{"cores":2,"project":"prj_1"}`), so [`parse_data`] reads that shape directly, with no
//! visitor machinery, and hands anything else to `serde_json`: nested values, escapes in strings,
//! anything unusual. The fast path gives exactly what `serde_json` gives for the texts it accepts
//! (numbers stay their exact text under `arbitrary_precision`; a repeated key keeps its first
//! position and its last value), which a property test checks.

use serde_json::{Map, Number, Value};

use super::DecodeChunkError;

/// The `data` object stored as `text` (non-empty).
pub(crate) fn parse_data(text: &str) -> Result<Map<String, Value>, DecodeChunkError> {
    if let Some(map) = flat_object(text) {
        return Ok(map);
    }
    if text.trim_start().starts_with('{') {
        // Straight into the map: no `Value` around it to unwrap.
        serde_json::from_str::<Map<String, Value>>(text).map_err(DecodeChunkError::Data)
    } else {
        Err(DecodeChunkError::DataNotAnObject)
    }
}

/// `text` as a flat object of strings without escapes, numbers, booleans and nulls, or `None`
/// when it is anything else (then `serde_json` decides).
fn flat_object(text: &str) -> Option<Map<String, Value>> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    // Room for every member at once (a comma inside a string only over-counts): the map's two
    // tables are allocated once instead of grown.
    let members = 1 + bytes.iter().filter(|&&byte| byte == b',').count();
    let mut map = Map::with_capacity(members);
    if bytes.get(at) == Some(&b'}') {
        return (skip_space(bytes, at + 1) == bytes.len()).then_some(map);
    }
    loop {
        let (key, next) = plain_string(text, at)?;
        at = skip_space(bytes, next);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(bytes, at + 1);
        let (value, next) = scalar(text, at)?;
        map.insert(key.to_owned(), value);
        at = skip_space(bytes, next);
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(b'}') => return (skip_space(bytes, at + 1) == bytes.len()).then_some(map),
            _ => return None,
        }
    }
}

/// The index of the first byte at or after `at` that is not JSON whitespace.
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The string starting with the quote at `at`, when it has no escape and no control character,
/// and the index after its closing quote.
fn plain_string(text: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let length = bytes[start..]
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
    let end = start + length;
    // A quote ends the string; a backslash or a control character leaves it to serde_json.
    (bytes[end] == b'"').then(|| (&text[start..end], end + 1))
}

/// The string, number, boolean or null at `at`, and the index after it.
fn scalar(text: &str, at: usize) -> Option<(Value, usize)> {
    let bytes = text.as_bytes();
    match *bytes.get(at)? {
        b'"' => plain_string(text, at).map(|(text, next)| (Value::String(text.to_owned()), next)),
        b't' => literal(bytes, at, b"true", Value::Bool(true)),
        b'f' => literal(bytes, at, b"false", Value::Bool(false)),
        b'n' => literal(bytes, at, b"null", Value::Null),
        b'-' | b'0'..=b'9' => {
            let length = bytes[at..]
                .iter()
                .position(|byte| !matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .unwrap_or(bytes.len() - at);
            let end = at + length;
            let digits = &text[at..end];
            // A plain integer (no sign, no leading zero: JSON allows none) is the text `u64`
            // prints; anything else goes through Number's own parser, which checks the grammar
            // and keeps the exact text.
            let plain = digits.len() < 20
                && (digits == "0" || !digits.starts_with('0'))
                && digits.bytes().all(|byte| byte.is_ascii_digit());
            let number = if plain {
                Number::from(digits.parse::<u64>().ok()?)
            } else {
                digits.parse::<Number>().ok()?
            };
            Some((Value::Number(number), end))
        }
        _ => None,
    }
}

fn literal(bytes: &[u8], at: usize, word: &[u8], value: Value) -> Option<(Value, usize)> {
    bytes[at..]
        .starts_with(word)
        .then(|| (value, at + word.len()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde(text: &str) -> Option<Map<String, Value>> {
        serde_json::from_str::<Map<String, Value>>(text).ok()
    }

    #[test]
    fn flat_usage_data_is_read_without_serde() {
        let map = flat_object(r#" { "cores" : 2.50 , "project":"prj_1", "on": true, "x": null } "#)
            .unwrap();
        assert_eq!(map["cores"].to_string(), "2.50", "the number's exact text");
        assert_eq!(map["project"], "prj_1");
        assert_eq!(map["on"], true);
        assert!(map["x"].is_null());
        assert_eq!(flat_object("{}").unwrap().len(), 0);
    }

    #[test]
    fn anything_else_is_left_to_serde_json() {
        for text in [
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":"x\"y"}"#,
            r#"{"a\n":1}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1-2}"#,
            r#"{"a":tru}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            "[1]",
            "",
        ] {
            assert_eq!(flat_object(text), None, "{text}");
        }
        assert_eq!(parse_data(r#"{"a":"x\"y"}"#).unwrap()["a"], "x\"y");
        assert!(matches!(
            parse_data("[1]"),
            Err(DecodeChunkError::DataNotAnObject)
        ));
        assert!(matches!(
            parse_data(r#"{"a":1,}"#),
            Err(DecodeChunkError::Data(_))
        ));
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_its_last_value() {
        let text = r#"{"a":1,"b":2,"a":3}"#;
        let map = flat_object(text).unwrap();
        assert_eq!(map, serde(text).unwrap());
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(map["a"].to_string(), "3");
    }

    fn scalar_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            "[-+.eE0-9]{1,8}",
            "-?0[0-9]{0,3}",
            "[0-9]{18,21}",
            "\"[a-zA-Z0-9_ é€\\\\\"\u{1}]{0,12}\"",
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
            Just("{}".to_owned()),
            Just("[]".to_owned()),
        ]
    }

    fn object_text() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(("[a-z\\\\\"]{0,6}", scalar_text(), "[ \t\n]{0,2}"), 0..6),
            prop_oneof![Just(""), Just(","), Just(" x"), Just("}")],
        )
            .prop_map(|(members, tail)| {
                let body: Vec<String> = members
                    .iter()
                    .map(|(key, value, space)| format!("{space}\"{key}\"{space}:{value}{space}"))
                    .collect();
                format!("{{{}}}{tail}", body.join(","))
            })
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_serde_json(text in object_text()) {
            if let Some(fast) = flat_object(&text) {
                let slow = serde(&text);
                prop_assert_eq!(Some(&fast), slow.as_ref());
                // Same numbers to the character, same key order.
                prop_assert_eq!(
                    serde_json::to_string(&fast).unwrap(),
                    serde_json::to_string(&slow.unwrap()).unwrap()
                );
            }
            let parsed = parse_data(&text).ok();
            prop_assert_eq!(parsed, serde(&text));
        }
    }
}
