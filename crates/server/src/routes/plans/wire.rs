//! A plan as the API shows it: its id, key and versions, and its current version's spec with
//! each member written out, so that the document describes exactly what is sent.

use billow_core::period::Cadence;
use billow_core::scenario::{PhaseSpec, PriceSpec};
use billow_core::schema::DecimalText;
use billow_core::Currency;
use billow_store::catalog::{PlanRecord, PlanVersionRecord};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::wire::Instant;

/// A versioned plan.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlanBody {
    #[schema(example = "plan_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// Unique in the workspace; a plan is addressed by its id or its key.
    #[schema(example = "team")]
    pub key: String,
    pub created_at: Instant,
    /// The version new subscriptions and resources get.
    pub current_version: Option<PlanVersionBody>,
    /// Every version, oldest first.
    pub versions: Vec<PlanVersionSummary>,
}

impl PlanBody {
    /// `plan` with its `versions` (every stored version of it, in order).
    pub(crate) fn new(plan: PlanRecord, versions: Vec<PlanVersionRecord>) -> Self {
        let summaries = versions.iter().map(PlanVersionSummary::from).collect();
        let current_version = versions
            .into_iter()
            .find(|version| version.id == plan.current_version_id)
            .map(PlanVersionBody::from);
        Self {
            id: plan.id.into(),
            key: plan.key,
            created_at: plan.created_at.into(),
            current_version,
            versions: summaries,
        }
    }
}

/// A version of a plan in the plan's list of versions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlanVersionSummary {
    #[schema(example = "pv_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// 1 for the plan as created, one more per edit.
    #[schema(minimum = 1)]
    pub version: i64,
    pub created_at: Instant,
}

impl From<&PlanVersionRecord> for PlanVersionSummary {
    fn from(version: &PlanVersionRecord) -> Self {
        Self {
            id: version.id.clone().into(),
            version: version.version,
            created_at: version.created_at.into(),
        }
    }
}

/// A version of a plan: its id, number and instant, and the plan as it was written.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlanVersionBody {
    #[schema(example = "pv_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    /// 1 for the plan as created, one more per edit.
    #[schema(minimum = 1)]
    pub version: i64,
    pub created_at: Instant,
    /// The plan's key.
    #[schema(example = "team")]
    pub key: String,
    /// Its name; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub cadence: Cadence,
    /// The currency (ISO 4217) of its prices that name none; absent when every price names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "EUR")]
    pub currency: Option<Currency>,
    pub prices: Vec<PriceSpec>,
    /// Phases in order; absent when the plan has none (it is evergreen from the start).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseSpec>,
    /// The least the plan bills per period; absent when it has no minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DecimalText>)]
    pub minimum_amount: Option<Decimal>,
}

impl From<PlanVersionRecord> for PlanVersionBody {
    fn from(version: PlanVersionRecord) -> Self {
        let spec = version.spec;
        Self {
            id: version.id.into(),
            version: version.version,
            created_at: version.created_at.into(),
            key: spec.key,
            name: spec.name,
            cadence: spec.cadence,
            currency: spec.currency,
            prices: spec.prices,
            phases: spec.phases,
            minimum_amount: spec.minimum_amount,
        }
    }
}
