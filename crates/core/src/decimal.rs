//! Exact decimals from JSON: numbers keep their written digits (serde_json's `arbitrary_precision`),
//! and strings are accepted too, so `12.50`, `"12.50"` and `1.25e1` all read as 12.50 and no value
//! ever passes through a binary float.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Reads a JSON number or numeric string as an exact `Decimal`; `None` for anything else.
pub fn decimal_from_json(value: &Value) -> Option<Decimal> {
    match value {
        // The number's text as it was written (serde_json's arbitrary_precision): exact, and no
        // allocation per value.
        Value::Number(number) => parse_decimal(number.as_str()),
        Value::String(text) => parse_decimal(text.trim()),
        _ => None,
    }
}

/// Parses decimal text, in plain or scientific notation, exactly.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text)
            .or_else(|_| Decimal::from_str(text))
            .ok()
    }
}

/// `#[serde(deserialize_with = "crate::decimal::exact")]` for a `Decimal` field.
///
/// # Errors
/// A serde error naming the value when it is not a number or numeric string.
pub fn exact<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let value = Value::deserialize(deserializer)?;
    decimal_from_json(&value).ok_or_else(|| {
        serde::de::Error::custom(format!("expected a decimal number, found {value}"))
    })
}

/// `#[serde(default, deserialize_with = "crate::decimal::exact_option")]` for an `Option<Decimal>`.
///
/// # Errors
/// A serde error naming the value when it is neither null nor a number.
pub fn exact_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    decimal_from_json(&value).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("expected a decimal number or null, found {value}"))
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_keep_their_written_digits() {
        let value: Value = serde_json::from_str("0.1").unwrap();
        assert_eq!(decimal_from_json(&value), Some(dec!(0.1)));
        let value: Value = serde_json::from_str("213.51000000000005").unwrap();
        assert_eq!(decimal_from_json(&value), Some(dec!(213.51000000000005)));
        assert_eq!(decimal_from_json(&json!("12.50")), Some(dec!(12.50)));
        assert_eq!(decimal_from_json(&json!("1.25e1")), Some(dec!(12.5)));
        assert_eq!(decimal_from_json(&json!(true)), None);
        assert_eq!(decimal_from_json(&json!("twelve")), None);
    }
}
