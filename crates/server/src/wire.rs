//! What every native response shares: the list envelope ([`Page`]) and how an instant is
//! written ([`Instant`]).
//!
//! Decisions (issue "hardening", A11):
//!
//! - Every native list answers `{"data": [...], "has_more": bool, "next_cursor": string|null}`,
//!   also lists that are never cut into pages (`has_more` is then `false`), so a client reads
//!   every list the same way. `next_cursor` is what the next request passes as `starting_after`.
//! - Every instant in a native response is RFC 3339 in UTC with exactly six fractional digits,
//!   `2026-11-01T00:00:00.000000Z`: microseconds are what both backends keep (PostgreSQL's
//!   `timestamptz`), so a value read back never shows more precision than was stored, and one
//!   fixed width sorts as text. Requests may send any RFC 3339 precision.

pub mod invoice;

use std::borrow::Cow;

use jiff::fmt::temporal::DateTimePrinter;
use jiff::Timestamp;
use serde::{Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// One page of a native list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page, in the list's order.
    pub data: Vec<T>,
    /// Whether items follow this page.
    pub has_more: bool,
    /// Pass as `starting_after` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that is never cut into pages: everything, nothing after it.
    pub fn whole(data: Vec<T>) -> Self {
        Self {
            data,
            has_more: false,
            next_cursor: None,
        }
    }

    /// A page of at most `limit` items fetched one past the limit: when `fetched` holds more
    /// than `limit`, the extra item is dropped and the page's last item gives the cursor.
    pub fn from_one_past(mut fetched: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let has_more = fetched.len() > limit;
        fetched.truncate(limit);
        let next_cursor = if has_more {
            fetched.last().map(cursor)
        } else {
            None
        };
        Self {
            data: fetched,
            has_more,
            next_cursor,
        }
    }
    /// The same page with each item turned into what a response shows of it.
    pub fn map<U>(self, show: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(show).collect(),
            has_more: self.has_more,
            next_cursor: self.next_cursor,
        }
    }

    /// [`Page::map`] with a conversion that may fail: the first failure is the answer.
    ///
    /// # Errors
    ///
    /// The first error of `show`.
    pub fn try_map<U, E>(self, show: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            data: self.data.into_iter().map(show).collect::<Result<_, _>>()?,
            has_more: self.has_more,
            next_cursor: self.next_cursor,
        })
    }
}

/// An instant as a native response writes it: RFC 3339, UTC, six fractional digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub Timestamp);

const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(6));

impl Instant {
    /// The text a response carries.
    pub fn text(self) -> String {
        PRINTER.timestamp_to_string(&self.0)
    }
}

impl From<Timestamp> for Instant {
    fn from(instant: Timestamp) -> Self {
        Self(instant)
    }
}

impl std::fmt::Display for Instant {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.text())
    }
}

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl PartialSchema for Instant {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "An instant, RFC 3339 in UTC with six fractional digits (microseconds).",
            ))
            .examples(["2026-11-01T00:00:00.000000Z"])
            .into()
    }
}

impl ToSchema for Instant {
    fn name() -> Cow<'static, str> {
        "Instant".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_has_six_fractional_digits_whatever_it_holds() {
        let whole: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
        let nanos: Timestamp = "2026-11-01T01:02:03.123456789+01:00".parse().unwrap();
        assert_eq!(Instant(whole).text(), "2026-11-01T00:00:00.000000Z");
        assert_eq!(Instant(nanos).text(), "2026-11-01T00:02:03.123456Z");
        assert_eq!(
            serde_json::to_string(&Instant(whole)).unwrap(),
            "\"2026-11-01T00:00:00.000000Z\""
        );
    }

    #[test]
    fn a_page_fetched_one_past_its_limit_knows_what_follows() {
        let page = Page::from_one_past(vec![1, 2, 3], 2, ToString::to_string);
        assert_eq!(page.data, [1, 2]);
        assert!(page.has_more);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = Page::from_one_past(vec![1, 2], 2, ToString::to_string);
        assert!(!last.has_more);
        assert_eq!(last.next_cursor, None);
    }
}
