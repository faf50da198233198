//! [`ApiJson`]: a JSON body extractor whose rejections are problems like every other error.
//!
//! axum's own `Json` answers plain text. This one answers 400 `malformed-json` when the body is
//! not JSON, and 422 `validation` naming the field (as a JSON path, e.g. `address.country`) when
//! the JSON does not fit the expected shape, so clients get one error format everywhere
//! (STYLE.md, "Errors"; axum `examples/error-handling`). A string or member name holding U+0000
//! is refused anywhere in the body, with a 422 naming it ([`crate::nul`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::error::Category;

use crate::error::{ApiError, FieldError};
use crate::nul::{has_nul_escape, nul_path, NUL_REASON};

/// A request body parsed from JSON, or a response body written as JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        refuse_other_media_types(request.headers())?;
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status().as_u16() {
                    413 => ApiError::PayloadTooLarge {
                        limit_bytes: crate::limits::BODY_LENGTH_MAX_BYTES,
                    },
                    _ => ApiError::MalformedJson {
                        detail: rejection.body_text(),
                    },
                })?;
        parse_json(&bytes).map(Self)
    }
}

/// A JSON route takes a body without a `Content-Type` (as today's clients send it) or with a JSON
/// media type (`application/json`, or any `application/…+json`); any other is a 415 problem.
fn refuse_other_media_types(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let media_type = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            content_type: if text.is_empty() {
                "of no media type".to_owned()
            } else {
                text.chars().take(100).collect()
            },
        })
    }
}

/// A body that may be empty: an empty (or blank) body is `T::default()`; anything else is parsed
/// with [`parse_json`], so an unknown field is still refused.
///
/// # Errors
/// As [`parse_json`]: 400 for malformed JSON, 422 naming the field for a wrong shape.
pub(crate) fn parse_optional<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// Parses `bytes` as a `T`, telling malformed JSON (400) from a JSON value of the wrong shape (422).
///
/// # Errors
///
/// [`ApiError::MalformedJson`] or [`ApiError::Validation`] with the path of the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, over the whole body: a missing field must not hide trailing garbage.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|error| malformed(&error))?;
    refuse_nul(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Data => {
                let reason = data_reason(&inner);
                let field = field_of(&path, &reason);
                ApiError::Validation(vec![FieldError::new(field, reason)])
            }
            Category::Syntax | Category::Eof | Category::Io => malformed(&inner),
        }
    })?;
    // Trailing characters after the value: `{"a": 1} x`.
    deserializer.end().map_err(|error| malformed(&error))?;
    Ok(value)
}

/// A 422 naming the first string or member name of the (valid JSON) body that holds U+0000,
/// wherever it is, a field the handler reads or not ([`crate::nul`]).
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if !has_nul_escape(bytes) {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| malformed(&error))?;
    match nul_path(&value) {
        Some(field) => Err(ApiError::invalid(field, NUL_REASON)),
        None => Ok(()),
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::MalformedJson {
        detail: format!("The body is not valid JSON: {error}."),
    }
}

/// The JSON path of the field a data error is about. A missing field is reported by serde at its
/// parent's path, with the field's name only in the message.
fn field_of(path: &str, reason: &str) -> String {
    let parent = if path == "." { "" } else { path };
    // An unknown field is already in the path; a missing one only in the message.
    let missing = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match missing {
        Some(name) if parent.is_empty() => name.to_owned(),
        Some(name) => format!("{parent}.{name}"),
        // The body itself has the wrong type (a string where an object belongs).
        None if parent.is_empty() => "body".to_owned(),
        None => parent.to_owned(),
    }
}

/// serde's message without the " at line 1 column 42" suffix, which names a place in the body
/// rather than the field.
fn data_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(position) => &message[..position],
        None => message.as_str(),
    };
    in_our_words(message)
}

/// serde's wording of a value of the wrong shape, in the project's: what the field must be, in
/// JSON's terms (`must be a JSON object, found an array`), not in Rust's (`invalid length 0,
/// expected struct CreateCustomer with 9 elements`). Other messages (a missing or unknown field,
/// a reason of billow's own) are kept.
pub(crate) fn in_our_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid length ") {
        if let Some((_, expected)) = rest.split_once(", expected ") {
            return format!("must be {}, found an array", json_kind(expected));
        }
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "must be {}, found {}",
                json_kind(expected),
                found_kind(found)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "must be {}, found {}",
                json_kind(expected),
                found_kind(found)
            );
        }
    }
    message.to_owned()
}

/// What serde expected, as a JSON value.
fn json_kind(expected: &str) -> String {
    let expected = expected.trim();
    if expected.starts_with("struct ") || expected.starts_with("a map") {
        return "a JSON object".to_owned();
    }
    if expected.starts_with("a sequence") || expected.starts_with("tuple") {
        return "a JSON array".to_owned();
    }
    if let Some(integer) = [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ]
    .iter()
    .find(|name| expected == **name)
    {
        return if integer.starts_with('u') {
            "a whole number, not negative".to_owned()
        } else {
            "a whole number".to_owned()
        };
    }
    match expected {
        "a boolean" => "true or false".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        other => other.to_owned(),
    }
}

/// What serde found, as a JSON value.
fn found_kind(found: &str) -> String {
    match found {
        "sequence" => "an array".to_owned(),
        "map" => "an object".to_owned(),
        "unit value" | "null" => "null".to_owned(),
        other => other.to_owned(),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wire {
        name: String,
        address: Option<Address>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Address {
        country: String,
    }

    #[test]
    fn a_missing_field_is_named_with_its_parent_path() {
        let error = parse_json::<Wire>(br#"{"name": "a", "address": {}}"#).unwrap_err();

        let ApiError::Validation(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors[0].field, "address.country");
        assert_eq!(errors[0].reason, "missing field `country`");
    }

    #[test]
    fn a_body_of_the_wrong_type_is_named_body() {
        let error = parse_json::<Wire>(br#""a string""#).unwrap_err();

        let ApiError::Validation(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors[0].field, "body");
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_named_in_json_s_terms_not_rust_s() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Counted {
            limit: u32,
            on: bool,
        }
        let reason = |body: &[u8]| match parse_json::<Counted>(body).unwrap_err() {
            ApiError::Validation(errors) => errors[0].reason.clone(),
            other => panic!("{other:?}"),
        };

        assert_eq!(reason(b"[]"), "must be a JSON object, found an array");
        assert_eq!(
            reason(br#"{"limit": "ten", "on": true}"#),
            r#"must be a whole number, not negative, found string "ten""#
        );
        assert_eq!(
            reason(br#"{"limit": -1, "on": true}"#),
            "must be a whole number, not negative, found integer `-1`"
        );
        assert_eq!(
            reason(br#"{"limit": 1, "on": "yes"}"#),
            r#"must be true or false, found string "yes""#
        );
        for reason in [reason(b"[]"), reason(br#"{"limit": 1, "on": []}"#)] {
            assert!(
                !reason.contains("struct") && !reason.contains("sequence"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_syntax_error_is_malformed_json() {
        let error = parse_json::<Wire>(br#"{"name": "#).unwrap_err();

        assert!(matches!(error, ApiError::MalformedJson { .. }), "{error:?}");
    }

    #[test]
    fn trailing_garbage_is_malformed_json() {
        let error = parse_json::<Wire>(br#"{"name": "a"} x"#).unwrap_err();

        assert!(matches!(error, ApiError::MalformedJson { .. }), "{error:?}");
    }

    #[test]
    fn a_nul_anywhere_in_the_body_is_a_422_naming_it() {
        for (body, field) in [
            (&br#"{"name": "a\u0000"}"#[..], "name"),
            (
                br#"{"name": "a", "address": {"country": "\u0000"}}"#,
                "address.country",
            ),
            (
                br#"{"name": "a", "unknown": ["x", "\u0000"]}"#,
                "unknown[1]",
            ),
        ] {
            let error = parse_json::<Wire>(body).unwrap_err();

            let ApiError::Validation(errors) = error else {
                panic!("{error:?}")
            };
            assert_eq!(errors, [FieldError::new(field, NUL_REASON)]);
        }
        assert!(parse_json::<Wire>(br#"{"name": "a\\u0000"}"#).is_ok());
    }

    #[test]
    fn a_wrong_type_names_the_nested_field() {
        let error = parse_json::<Wire>(br#"{"name": "a", "address": {"country": 7}}"#).unwrap_err();

        let ApiError::Validation(errors) = error else {
            panic!("{error:?}")
        };
        assert_eq!(errors[0].field, "address.country");
        assert_eq!(errors[0].reason, "must be a string, found integer `7`");
    }
}
