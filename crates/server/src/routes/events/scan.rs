//! The usual batch, read without serde: a JSON array of event objects whose member names and
//! attribute values are strings without escapes, each attribute once, as metering agents send
//! them. [`batch`] reads such a body in one pass over its bytes (in `perf` profiles of
//! `billow bench ingest`, reading batches fell from 32 % of the samples to 16–20 %), and checks
//! each event with the same
//! [`check_event`]. It answers `None` on anything else, valid JSON or not (an escape in an
//! attribute, an attribute given twice or not as a string, a nesting deeper than 64, bad JSON),
//! and the caller then reads the body with serde_json, which decides: so this reader needs to
//! be exact only for what it accepts, and a test compares the two on random bodies.

use std::borrow::Cow;

use billow_store::NewEvent;

use super::cloud_event::{check_event, EventError, EventFields, Field};

/// Deepest nesting of arrays and objects inside `data` or an unknown member that [`batch`]
/// reads; deeper ones go to serde_json (whose own limit is 128).
const DEPTH_MAX: usize = 64;

/// Each event's outcome, in order, when `json` is a usual batch; `None` otherwise.
pub(super) fn batch(json: &[u8]) -> Option<Vec<Result<NewEvent, Vec<EventError>>>> {
    let text = std::str::from_utf8(json).ok()?;
    let mut scanner = Scanner { text, at: 0 };
    scanner.skip_whitespace();
    scanner.expect(b'[')?;
    // Room for a typical batch at once, instead of growing by doubling.
    let mut outcomes = Vec::with_capacity(1_024);
    scanner.skip_whitespace();
    if !scanner.eat(b']') {
        loop {
            scanner.skip_whitespace();
            let fields = scanner.event()?;
            let index = outcomes.len();
            outcomes.push(check_event(&fields, index));
            scanner.skip_whitespace();
            if scanner.eat(b',') {
                continue;
            }
            scanner.expect(b']')?;
            break;
        }
    }
    scanner.skip_whitespace();
    (scanner.at == text.len()).then_some(outcomes)
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// One event object; `None` when it is not a usual one.
    fn event(&mut self) -> Option<EventFields<'a>> {
        self.expect(b'{')?;
        let mut fields = EventFields::default();
        let mut data_seen = false;
        self.skip_whitespace();
        if self.eat(b'}') {
            return Some(fields);
        }
        // After a member: the next one, or the end of the object.
        macro_rules! continue_after_value {
            () => {{
                self.skip_whitespace();
                if self.eat(b',') {
                    continue;
                }
                self.expect(b'}')?;
                return Some(fields);
            }};
        }
        loop {
            self.skip_whitespace();
            let name = self.plain_string()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            let slot = match name {
                "specversion" => &mut fields.specversion,
                "id" => &mut fields.id,
                "source" => &mut fields.source,
                "type" => &mut fields.event_type,
                "subject" => &mut fields.subject,
                "time" => &mut fields.time,
                "datacontenttype" => &mut fields.datacontenttype,
                "data" => {
                    if std::mem::replace(&mut data_seen, true) {
                        return None;
                    }
                    let start = self.at;
                    self.value(0)?;
                    let data = &self.text[start..self.at];
                    // `null` is no data, as serde reads an `Option`.
                    fields.data = (data != "null").then_some(data);
                    continue_after_value!();
                }
                _ => {
                    self.value(0)?;
                    continue_after_value!();
                }
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(Field::Text(Cow::Borrowed(self.plain_string()?)));
            continue_after_value!();
        }
    }

    /// A string without escapes or control characters, borrowed from the text.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0x00..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let text = &self.text[start..self.at];
        self.at += 1;
        Some(text)
    }

    /// Any JSON value, checked and skipped; `depth` arrays and objects around it.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => {
                if depth >= DEPTH_MAX {
                    return None;
                }
                self.at += 1;
                self.skip_whitespace();
                if self.eat(b'}') {
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    self.string()?;
                    self.skip_whitespace();
                    self.expect(b':')?;
                    self.skip_whitespace();
                    self.value(depth + 1)?;
                    self.skip_whitespace();
                    if self.eat(b',') {
                        continue;
                    }
                    return self.expect(b'}');
                }
            }
            b'[' => {
                if depth >= DEPTH_MAX {
                    return None;
                }
                self.at += 1;
                self.skip_whitespace();
                if self.eat(b']') {
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    self.value(depth + 1)?;
                    self.skip_whitespace();
                    if self.eat(b',') {
                        continue;
                    }
                    return self.expect(b']');
                }
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let found = self.text.as_bytes()[self.at..].starts_with(word.as_bytes());
        found.then(|| self.at += word.len())
    }

    /// A string, escapes included (`\uXXXX` needs four hex digits; which code point it names is
    /// not checked, as serde_json does not check it for a value it skips).
    fn string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    self.at += 1;
                    match *bytes.get(self.at)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = bytes.get(self.at + 1..self.at + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => self.at += 1,
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.at_least_one_digit()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::routes::events::cloud_event::parse_batch_with_serde;

    /// What a metering agent sends: the reader takes it, and reads what serde reads.
    #[test]
    fn a_usual_batch_is_read_as_serde_reads_it() {
        let body = br#" [ {"specversion":"1.0","id":"0b5e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "source":"agent-1","type":"cpu","subject":"cus_7","time":"2026-11-01T12:00:00.125Z",
            "data":{"cores":2,"project":"prj_1","ratio":-1.5e-3,"tags":["a\"b",null,true]}},
          {"id":"e2","source":"agent-1","type":"cpu","subject":"cus_8","specversion":"1.0",
           "time":"2026-11-01T12:00:00Z","data":null,"x-ext":{"deep":[[[]]]}},
          {"id":"","source":"agent-1","type":"cpu","subject":"cus_8","specversion":"0.3",
           "time":"yesterday","data":"text"} ] "#;

        let scanned = batch(body).expect("a usual batch");

        assert_eq!(Some(scanned.clone()), parse_batch_with_serde(body));
        assert_eq!(scanned.len(), 3);
        let first = scanned[0].as_ref().unwrap();
        assert_eq!(first.id, "0b5e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(
            first.data.as_deref(),
            Some(r#"{"cores":2,"project":"prj_1","ratio":-1.5e-3,"tags":["a\"b",null,true]}"#)
        );
        assert_eq!(scanned[1].as_ref().unwrap().data, None);
        let fields: Vec<&str> = scanned[2]
            .as_ref()
            .unwrap_err()
            .iter()
            .map(|error| error.field)
            .collect();
        assert_eq!(fields, ["specversion", "id", "time", "data"]);
        assert_eq!(batch(b"[]"), Some(Vec::new()));
    }

    /// Valid JSON the reader leaves to serde, and JSON it must not take.
    #[test]
    fn anything_unusual_is_left_to_serde() {
        let unusual = [
            r#"[{"id":"a\u0062"}]"#,
            r#"[{"\u0069d":"a"}]"#,
            r#"[{"id":"a","id":"b"}]"#,
            r#"[{"data":{},"data":{}}]"#,
            r#"[{"id":7}]"#,
            r#"[{"id":null}]"#,
            r#"[1]"#,
            r#"{"id":"a"}"#,
            r#"[{"id":"a"},]"#,
            r#"[{"id":"a",}]"#,
            r#"[{"data":01}]"#,
            r#"[{"data":1.}]"#,
            r#"[{"data":-}]"#,
            r#"[{"data":.5}]"#,
            r#"[{"data":1e}]"#,
            r#"[{"data":"\x"}]"#,
            r#"[{"data":"\u12G4"}]"#,
            "[{\"data\":\"\u{1}\"}]",
            r#"[{"data":tru}]"#,
            r#"[{"data":{"a"}}]"#,
            r#"[{"data":[1 2]}]"#,
            r#"[{"id":"a"}] x"#,
            r#"[{"id":"a"}"#,
        ];
        for body in unusual {
            assert_eq!(batch(body.as_bytes()), None, "{body}");
        }
        let deep = format!(r#"[{{"data":{}{}}}]"#, "[".repeat(70), "]".repeat(70));
        assert_eq!(batch(deep.as_bytes()), None);
        assert!(parse_batch_with_serde(deep.as_bytes()).is_some());
    }

    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            prop::sample::select(vec![
                "0",
                "-0",
                "12",
                "01",
                "1.",
                "1.5",
                "-",
                "1e5",
                "1E+5",
                "1e",
                ".5",
                "+1",
                "1.5e-3",
                "123456789012345678901234567890",
                "1e400",
                "00",
                "-01",
                "2e-0",
            ])
            .prop_map(str::to_owned),
            json_string(),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((json_string(), inner), 0..4).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(name, value)| format!("{name}:{value}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn json_string() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "cus_1", "é", "\\n", "\\\"", "\\u00e9", "\\u12G4", "\\x", "\u{1}", " ", "/",
                "\\/",
            ]),
            0..4,
        )
        .prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    fn member() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            8 => prop::sample::select(vec![
                "\"specversion\"", "\"id\"", "\"source\"", "\"type\"", "\"subject\"",
                "\"time\"", "\"datacontenttype\"", "\"data\"", "\"other\"", "\"\\u0069d\"",
            ])
            .prop_map(str::to_owned),
            1 => json_string(),
        ];
        let value = prop_oneof![
            6 => prop::sample::select(vec![
                "\"1.0\"", "\"e1\"", "\"agent\"", "\"cpu\"", "\"cus_1\"",
                "\"2026-11-01T12:00:00Z\"", "\"2026-02-30T12:00:00Z\"", "\"application/json\"",
                "\"\"",
            ])
            .prop_map(str::to_owned),
            1 => json_value(),
        ];
        (
            name,
            value,
            prop::sample::select(vec!["", " ", "\n\t", "\r"]),
        )
            .prop_map(|(name, value, space)| format!("{space}{name}{space}:{space}{value}{space}"))
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let event = prop::collection::vec(member(), 0..6)
            .prop_map(|members| format!("{{{}}}", members.join(",")));
        let batch = prop::collection::vec(event, 0..4)
            .prop_map(|events| format!(" [{}] ", events.join(",")).into_bytes());
        // A byte changed, taken out or put in, at random, now and then.
        (batch, any::<prop::sample::Index>(), any::<u8>(), 0..6_u8).prop_map(
            |(mut body, at, byte, change)| {
                let at = at.index(body.len());
                match change {
                    0 => body[at] = byte,
                    1 => {
                        body.remove(at);
                    }
                    2 => body.insert(at, byte),
                    _ => {}
                }
                body
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        /// Whatever the reader takes, serde reads the same way.
        #[test]
        fn what_the_reader_takes_serde_reads_alike(body in body()) {
            if let Some(scanned) = batch(&body) {
                prop_assert_eq!(Some(scanned), parse_batch_with_serde(&body));
            }
        }
    }
}
