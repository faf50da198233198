//! U+0000 (NUL) is refused in every text billow takes from outside, starting with event
//! attributes and data.
//!
//! PostgreSQL cannot store U+0000 in `text` or `jsonb` (SQLSTATE 22021 / 22P05), while SQLite can:
//! accepting it would make the two backends disagree, and a stored NUL would fail every later
//! statement that reads or moves that row (an event's subject broke compaction). So it is refused
//! where a request enters, with a 422 naming the field, on both backends alike; nothing below the
//! edge ever sees one.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
