//! New entity ids: a prefix naming the entity, then a time-ordered UUIDv7 in Crockford base32.
//!
//! Time-ordered ids keep B-tree inserts at the right edge of the index (DESIGN.md §6 measures
//! random keys at a tenth of the write rate), and the prefix tells a reader what an id names
//! (`cus_…` is a customer, `inv_…` an invoice), as Stripe's ids do.

use uuid::Uuid;

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
    #[should_panic(expected = "lowercase ASCII letters")]
    fn a_malformed_prefix_is_a_programming_error() {
        new_id("Cus");
    }
}
