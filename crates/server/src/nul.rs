//! U+0000 (NUL) is refused in every text billow takes from outside: event attributes and data
//! (`routes/events/cloud_event.rs`), JSON bodies ([`crate::json::parse_json`]), path parameters
//! and query values ([`refuse_nul_in_path_and_query`]).
//!
//! PostgreSQL cannot store U+0000 in `text` or `jsonb` (SQLSTATE 22021 / 22P05), while SQLite can:
//! accepting it would make the two backends disagree, and a stored NUL would fail every later
//! statement that reads or moves that row (an event's subject broke compaction). So it is refused
//! where a request enters, with a 422 naming the field, on both backends alike; nothing below the
//! edge ever sees one.

use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// Why a text with U+0000 is refused, as a problem's `reason`.
pub const NUL_REASON: &str = "must not contain U+0000 (NUL)";

/// Whether the JSON text `json` has a `\u0000` escape: the only way a valid JSON text can carry
/// U+0000 (a raw control character in a string is not JSON). Exact for valid JSON, where every
/// backslash starts an escape; a cheap pass over the bytes, so that bodies without one (nearly
/// all) are not walked value by value.
pub fn has_nul_escape(json: &[u8]) -> bool {
    let mut at = 0;
    while let Some(offset) = json[at..].iter().position(|&byte| byte == b'\\') {
        let escape = at + offset;
        if json.get(escape + 1..escape + 6) == Some(b"u0000") {
            return true;
        }
        // The escaped character (`\\` included) cannot start another escape.
        at = escape + 2;
        if at >= json.len() {
            return false;
        }
    }
    false
}

/// The JSON path (as `serde_path_to_error` writes it: `a.b[1].c`) of the first string or member
/// name of `value` that contains U+0000; the root when `value` is such a string.
pub fn nul_path(value: &Value) -> Option<String> {
    fn join(parent: &str, name: &str) -> String {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    }
    fn walk(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(text) if text.contains('\0') => Some(path.to_owned()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(index, item)| walk(item, &format!("{path}[{index}]"))),
            Value::Object(members) => members.iter().find_map(|(name, member)| {
                if name.contains('\0') {
                    // The name itself, written so that the problem stays readable.
                    Some(join(path, &name.replace('\0', "\\u0000")))
                } else {
                    walk(member, &join(path, name))
                }
            }),
            _ => None,
        }
    }
    walk(value, "").map(|path| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path
        }
    })
}

/// Middleware on every `/api/v1` route: a 422 naming each path parameter or query parameter whose
/// (percent-decoded) value or name contains U+0000, before the handler runs, so that no handler
/// can forget the check. It runs after routing (`route_layer`), where the path's parameters have
/// their names.
pub async fn refuse_nul_in_path_and_query(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut errors = Vec::new();
    // A path that does not decode is left to the handler's own extractor, which refuses it.
    if let Ok(parameters) = RawPathParams::from_request_parts(&mut parts, &()).await {
        for (name, value) in &parameters {
            if value.contains('\0') {
                errors.push(FieldError::new(name, NUL_REASON));
            }
        }
    }
    if let Some(query) = parts.uri.query() {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name.contains('\0') || value.contains('\0') {
                errors.push(FieldError::new(name.replace('\0', "\\u0000"), NUL_REASON));
            }
        }
    }
    if !errors.is_empty() {
        return ApiError::Validation(errors).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_escape_of_u0000_is_a_nul() {
        assert!(has_nul_escape(br#"{"a":"x\u0000"}"#));
        assert!(has_nul_escape(br#"{"a\u0000":1}"#));
        assert!(has_nul_escape(br#"["\\\u0000"]"#));
        assert!(has_nul_escape(br#"["\u00001"]"#));
        // An escaped backslash followed by the letters u0000 is six characters of text.
        assert!(!has_nul_escape(br#"["\\u0000"]"#));
        assert!(!has_nul_escape(br#"["\u0001", "\u1000", "\\"]"#));
        assert!(!has_nul_escape(b"\\"));
    }

    #[test]
    fn the_path_names_the_string_or_the_member_name() {
        let value = json!({"a": {"b": ["ok", "x\u{0}"]}});
        assert_eq!(nul_path(&value).as_deref(), Some("a.b[1]"));

        let value = json!({"metadata": {"k\u{0}": "v"}});
        assert_eq!(nul_path(&value).as_deref(), Some("metadata.k\\u0000"));

        assert_eq!(nul_path(&json!("\u{0}")).as_deref(), Some("body"));
        assert_eq!(nul_path(&json!([{"a": "\u{0}"}])).as_deref(), Some("[0].a"));
        assert_eq!(nul_path(&json!({"a": "\\u0000"})), None);
    }
}
