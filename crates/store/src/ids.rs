//! New entity ids: a prefix naming the entity, then a time-ordered UUIDv7 in Crockford base32.
//!
//! Time-ordered ids keep B-tree inserts at the right edge of the index (DESIGN.md §6 measures
//! random keys at a tenth of the write rate), and the prefix tells a reader what an id names
//! (`cus_…` is a customer, `inv_…` an invoice), as Stripe's ids do.
//!
//! Each entity's ids have their own type ([`CustomerId`], [`SubscriptionId`], ...), so that one
//! kind of id cannot be passed where another is expected. They hold the id's text unchecked (ids
//! come from request paths and rows, and are not validated, as before they had types), read as
//! `&str` (`Deref`, `Borrow`, `AsRef`), and are written as plain text: in JSON
//! (`serde(transparent)`) and in SQL (`sqlx(transparent)`).

use uuid::Uuid;

/// Declares an id newtype per `(type, prefix, entity)`, with what every id type has (see the
/// module's documentation).
macro_rules! id_types {
    ($($(#[$attribute:meta])* $name:ident = $prefix:literal, $entity:literal;)*) => {$(
        #[doc = concat!("A ", $entity, "'s id: `", $prefix, "_…` when billow made it.")]
        ///
        /// Any text converts into one unchecked (`From<&str>`, `From<String>`); it reads as
        /// `&str` and is written as plain text in JSON and SQL.
        $(#[$attribute])*
        #[derive(
            Clone,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of the ids billow makes for this entity.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the prefix and a time-ordered suffix ([`new_id`]).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(new_id(Self::PREFIX))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(id: &String) -> Self {
                Self(id.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    )*};
}

id_types! {
    CustomerId = "cus", "customer";
    ProjectId = "prj", "customer's project";
    SubscriptionId = "sub", "subscription";
    PlanId = "plan", "plan";
    PlanVersionId = "pv", "plan version";
    MeterId = "mtr", "meter";
    TaxRateId = "tax", "tax rate";
    InvoiceId = "inv", "invoice";
    CreditNoteId = "cn", "credit note";
    AdjustmentId = "adj", "late-usage adjustment";
    ResourceId = "res", "billed resource";
}

/// Crockford's base32 alphabet (<https://www.crockford.com/base32.html>), lowercase: no `i`, `l`,
/// `o` or `u`, so ids survive being read aloud or retyped.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 128 bits in 5-bit digits: 25 full digits and a leading one that holds the top 3 bits.
pub const ID_SUFFIX_LENGTH: usize = 26;

/// A new id: `prefix`, an underscore, and 26 characters of a UUIDv7 in lowercase Crockford
/// base32.
///
/// Ids made later sort after ids made earlier, as text, within a process (the UUIDv7 counter
/// keeps ids made in the same millisecond in order) and across processes to the millisecond.
///
/// ```
/// let id = billow_store::ids::new_id("cus");
/// assert!(id.starts_with("cus_"));
/// assert_eq!(id.len(), "cus_".len() + 26);
/// ```
///
/// # Panics
///
/// When `prefix` is empty or not lowercase ASCII letters: prefixes are constants in the code.
pub fn new_id(prefix: &str) -> String {
    assert!(
        !prefix.is_empty() && prefix.bytes().all(|byte| byte.is_ascii_lowercase()),
        "an id prefix is lowercase ASCII letters, not {prefix:?}"
    );
    let mut id = String::with_capacity(prefix.len() + 1 + ID_SUFFIX_LENGTH);
    id.push_str(prefix);
    id.push('_');
    id.push_str(&encode(Uuid::now_v7().as_u128()));
    id
}

/// `value` as 26 base32 digits, most significant first, so that text order is numeric order.
fn encode(value: u128) -> String {
    (0..ID_SUFFIX_LENGTH)
        .rev()
        .map(|digit| {
            let index = (value >> (digit * 5)) & 0x1f;
            char::from(ALPHABET[usize::try_from(index).unwrap_or_default()])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_the_prefix_and_26_crockford_characters() {
        let id = new_id("cus");

        let suffix = id.strip_prefix("cus_").unwrap();
        assert_eq!(suffix.len(), ID_SUFFIX_LENGTH);
        assert!(suffix.bytes().all(|byte| ALPHABET.contains(&byte)), "{id}");
    }

    #[test]
    fn ids_made_later_sort_after_ids_made_earlier() {
        let ids: Vec<String> = (0..1_000).map(|_| new_id("evt")).collect();

        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn encoding_keeps_numeric_order_and_bounds() {
        assert_eq!(encode(0), "0".repeat(26));
        assert_eq!(encode(u128::MAX), format!("7{}", "z".repeat(25)));
        assert!(encode(31) < encode(32));
    }

    #[test]
    fn a_typed_id_has_its_prefix_and_reads_as_its_text() {
        let id = CustomerId::new();
        assert!(id.starts_with("cus_"), "{id}");
        assert_eq!(id.len(), "cus_".len() + ID_SUFFIX_LENGTH);

        let id = SubscriptionId::from("sub_1");
        assert_eq!(id, "sub_1");
        assert_eq!(id.as_str(), "sub_1");
        assert_eq!(id.to_string(), "sub_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"sub_1\"");
        assert_eq!(
            serde_json::from_str::<SubscriptionId>("\"sub_1\"").unwrap(),
            id
        );

        let ids: std::collections::HashSet<CustomerId> = ["cus_1".into()].into();
        assert!(ids.contains("cus_1"));
    }

    #[test]
    #[should_panic(expected = "lowercase ASCII letters")]
    fn a_malformed_prefix_is_a_programming_error() {
        new_id("Cus");
    }
}
