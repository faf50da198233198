//! A meter as the API shows it: its id and creation instant beside the meter's spec, each
//! member written out so that the document describes exactly what is sent.

use std::collections::BTreeMap;

use billow_core::aggregation::{Aggregation, TimeUnit};
use billow_store::catalog::MeterRecord;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::wire::Instant;

/// A meter: how usage events of one type become a quantity.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MeterBody {
    #[schema(example = "mtr_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// The meter's key, which prices name; unique in the workspace.
    #[schema(example = "cpu_core_hours")]
    pub key: String,
    /// The CloudEvents `type` it counts.
    #[schema(example = "compute.usage")]
    pub event_type: String,
    pub aggregation: Aggregation,
    /// Where the value is in an event's `data`; absent for `COUNT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_property: Option<String>,
    /// The `data` fields whose values split the quantity into groups; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// The `data` fields an event must carry with exactly these values to count; absent when
    /// none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Value>,
    /// The time unit of a `TIME_WEIGHTED_SUM`.
    pub time_unit: TimeUnit,
    pub created_at: Instant,
}

impl From<MeterRecord> for MeterBody {
    fn from(meter: MeterRecord) -> Self {
        let spec = meter.spec;
        Self {
            id: meter.id.into(),
            key: spec.key,
            event_type: spec.event_type,
            aggregation: spec.aggregation,
            value_property: spec.value_property,
            group_by: spec.group_by,
            filters: spec.filters,
            time_unit: spec.time_unit,
            created_at: meter.created_at.into(),
        }
    }
}
