//! What the billing tables' query code shares beyond the store's convention ([`crate::sql`]: one
//! SQL text for both backends, instants as microseconds, JSON as text): reading stored instants
//! and JSON, and the one error type of the billing repositories.

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use crate::sql::{is_unique_violation, to_micros, with_pool};

/// A stored instant.
pub(crate) fn from_micros(micros: i64) -> Result<Timestamp, BillingStoreError> {
    crate::sql::timestamp_from_micros(micros).map_err(|_| BillingStoreError::CorruptRow {
        column: "timestamp",
    })
}

/// A stored JSON column read as `T` (a `serde_json::Value`, or a billing core type for the
/// specs): the row boundary where stored text becomes a typed value.
pub(crate) fn from_json<T: DeserializeOwned>(
    text: &str,
    column: &'static str,
) -> Result<T, BillingStoreError> {
    serde_json::from_str(text).map_err(|_| BillingStoreError::CorruptRow { column })
}

/// A stored spec (`table`'s row `id`) read as the billing core's type `T`; an error names the
/// row and what is wrong, so that it can be found and repaired.
pub(crate) fn spec_from_json<T: DeserializeOwned>(
    text: &str,
    table: &'static str,
    id: &str,
) -> Result<T, BillingStoreError> {
    serde_json::from_str(text).map_err(|error| BillingStoreError::UnreadableSpec {
        table,
        id: id.to_owned(),
        reason: error.to_string(),
    })
}

/// A typed value as the JSON text its column stores.
///
/// # Panics
/// Never for the types stored: structs and enums whose maps have string keys always serialize.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored types serialize: their maps have string keys")
}

/// A unit enum of the billing core (`RoundingMode`, `InvoiceReason`) as the name its column
/// stores: its serde name (`half_up`, `period_end`).
pub(crate) fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => unreachable!("a unit enum serializes as its name"),
    }
}

/// The unit enum `T` its column names.
pub(crate) fn enum_from_text<T: DeserializeOwned>(
    text: &str,
    column: &'static str,
) -> Result<T, BillingStoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| BillingStoreError::CorruptRow { column })
}

/// Why a billing repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingStoreError {
    /// The row would repeat a unique key (a meter or plan key, an invoice's subscription and
    /// instant).
    #[error("a row with the same key already exists")]
    Duplicate,
    /// The row the call works on does not exist in the workspace.
    #[error("not found")]
    NotFound,
    /// The invoice is finalized: its content never changes.
    #[error("the invoice is finalized and cannot change")]
    Immutable,
    /// The change would take more than what is left (a credit note above the invoice).
    #[error("the amount {requested_minor} exceeds the {available_minor} available")]
    Exceeds {
        requested_minor: i64,
        available_minor: i64,
    },
    /// The invoice's payment cannot go from its last state to the one asked for.
    #[error("a payment in state {from} cannot become {to}")]
    Transition { from: String, to: String },
    /// A stored column does not hold what this code writes.
    #[error("the stored column {column} is invalid")]
    CorruptRow { column: &'static str },
    /// A stored spec is not one of the billing core's types (written by a buggy version, or by
    /// hand).
    #[error("the spec of {table} {id} cannot be read: {reason}")]
    UnreadableSpec {
        table: &'static str,
        id: String,
        reason: String,
    },
    /// The query failed.
    #[error("the billing query failed")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for BillingStoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unique_violation(&error) {
            Self::Duplicate
        } else {
            Self::Database(error)
        }
    }
}
