//! Resources as stored: decimals as text, instants as microseconds, the quantity changes and
//! dimensions as JSON text; and their mapping to and from [`ResourceRecord`].

use std::collections::BTreeMap;

use billow_core::scenario::QuantityChange;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ResourceRecord;
use crate::billing::sql::{from_micros, to_micros, BillingStoreError};

/// The columns after `workspace_id`, in the order of [`ResourceRow`].
pub(super) const RESOURCE_COLUMNS: &str = "id, customer_id, project_id, plan_id, plan_version_id, \
     quantity, quantity_changes, created_at, deleted_at, kind, name, dimensions, external_id, \
     inserted_at";

/// A resource as stored.
#[derive(sqlx::FromRow)]
pub(super) struct ResourceRow {
    pub(super) id: String,
    pub(super) customer_id: String,
    pub(super) project_id: Option<String>,
    pub(super) plan_id: String,
    pub(super) plan_version_id: String,
    /// Decimal text.
    pub(super) quantity: String,
    /// JSON text: an array of [`StoredQuantityChange`].
    pub(super) quantity_changes: String,
    pub(super) created_at: i64,
    pub(super) deleted_at: Option<i64>,
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    /// JSON text: an object of strings.
    pub(super) dimensions: String,
    pub(super) external_id: Option<String>,
    pub(super) inserted_at: i64,
}

/// A quantity change in the `quantity_changes` column: the instant as RFC 3339 text, the
/// quantity as decimal text, so the JSON holds no binary float.
#[derive(Serialize, Deserialize)]
struct StoredQuantityChange {
    at: Timestamp,
    quantity: String,
}

/// Binds a [`ResourceRow`]'s columns, in [`RESOURCE_COLUMNS`] order, after the workspace id.
macro_rules! bind_resource {
    ($query:expr, $workspace:expr, $row:expr) => {
        $query
            .bind($workspace.as_str())
            .bind(&$row.id)
            .bind(&$row.customer_id)
            .bind(&$row.project_id)
            .bind(&$row.plan_id)
            .bind(&$row.plan_version_id)
            .bind(&$row.quantity)
            .bind(&$row.quantity_changes)
            .bind($row.created_at)
            .bind($row.deleted_at)
            .bind(&$row.kind)
            .bind(&$row.name)
            .bind(&$row.dimensions)
            .bind(&$row.external_id)
            .bind($row.inserted_at)
    };
}
pub(super) use bind_resource;

impl ResourceRow {
    pub(super) fn from_record(record: &ResourceRecord) -> Self {
        Self {
            id: record.id.clone().into(),
            customer_id: record.customer_id.clone().into(),
            project_id: record.project_id.clone().map(Into::into),
            plan_id: record.plan_id.clone().into(),
            plan_version_id: record.plan_version_id.clone().into(),
            quantity: record.quantity.to_string(),
            quantity_changes: quantity_changes_json(&record.quantity_changes),
            created_at: to_micros(record.created_at),
            deleted_at: record.deleted_at.map(to_micros),
            kind: record.kind.clone(),
            name: record.name.clone(),
            dimensions: to_json(&record.dimensions),
            external_id: record.external_id.clone(),
            inserted_at: to_micros(record.inserted_at),
        }
    }

    /// Reads a row back, checking it: the database is not trusted to hold only what this code
    /// wrote, and a resource that breaks its rules would fail a billing run later, far from
    /// here.
    pub(super) fn into_record(self) -> Result<ResourceRecord, BillingStoreError> {
        let corrupt = |column| BillingStoreError::CorruptRow { column };
        let quantity =
            decimal(&self.quantity).ok_or_else(|| corrupt("billed_resources.quantity"))?;
        let changes: Vec<StoredQuantityChange> = serde_json::from_str(&self.quantity_changes)
            .map_err(|_| corrupt("billed_resources.quantity_changes"))?;
        let quantity_changes = changes
            .into_iter()
            .map(|change| {
                Ok(QuantityChange {
                    at: change.at,
                    quantity: decimal(&change.quantity)
                        .ok_or_else(|| corrupt("billed_resources.quantity_changes"))?,
                })
            })
            .collect::<Result<Vec<_>, BillingStoreError>>()?;
        let dimensions: BTreeMap<String, String> = serde_json::from_str(&self.dimensions)
            .map_err(|_| corrupt("billed_resources.dimensions"))?;
        let record = ResourceRecord {
            id: self.id.into(),
            customer_id: self.customer_id.into(),
            project_id: self.project_id.map(Into::into),
            plan_id: self.plan_id.into(),
            plan_version_id: self.plan_version_id.into(),
            quantity,
            quantity_changes,
            created_at: from_micros(self.created_at)?,
            deleted_at: self.deleted_at.map(from_micros).transpose()?,
            kind: self.kind,
            name: self.name,
            dimensions,
            external_id: self.external_id,
            inserted_at: from_micros(self.inserted_at)?,
        };
        record
            .check()
            .map_err(|_| corrupt("billed_resources.quantity_changes"))?;
        Ok(record)
    }
}

/// The `quantity_changes` column of `changes`.
pub(super) fn quantity_changes_json(changes: &[QuantityChange]) -> String {
    let stored: Vec<StoredQuantityChange> = changes
        .iter()
        .map(|change| StoredQuantityChange {
            at: change.at,
            quantity: change.quantity.to_string(),
        })
        .collect();
    to_json(&stored)
}

fn decimal(text: &str) -> Option<Decimal> {
    billow_core::decimal::parse_decimal(text)
}

fn to_json(value: &impl Serialize) -> String {
    match serde_json::to_string(value) {
        Ok(json) => json,
        Err(error) => unreachable!("strings, decimals as text and instants serialize: {error}"),
    }
}
