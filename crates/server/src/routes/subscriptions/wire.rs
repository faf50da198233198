//! Subscriptions as the API shows them: the stored subscription with its changes, and what a
//! previewed change would bill. Every member is written out, so that the document describes
//! exactly what is sent.

use billow_core::scenario::{Alignment, ChangePolicy, ChangeSpec};
use billow_core::schema::DecimalText;
use billow_store::subscriptions::{
    SubscriptionChangeRecord, SubscriptionRecord, SubscriptionStatus,
};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::wire::invoice::ComputedInvoice;
use crate::wire::Instant;

/// Whether a subscription bills on.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StatusBody {
    Active,
    /// A cancellation is recorded, effective at once or at the end of the period.
    Canceled,
}

impl From<SubscriptionStatus> for StatusBody {
    fn from(status: SubscriptionStatus) -> Self {
        match status {
            SubscriptionStatus::Active => Self::Active,
            SubscriptionStatus::Canceled => Self::Canceled,
        }
    }
}

/// A customer's subscription to a plan version, with its dated changes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriptionBody {
    #[schema(example = "sub_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    pub plan_id: String,
    /// The plan version it bills now (after its plan changes).
    pub plan_version_id: String,
    pub status: StatusBody,
    pub created_at: Instant,
    /// Its changes, in the order they were made.
    pub changes: Vec<ChangeBody>,
    /// The plan version it started on.
    pub plan: String,
    /// When it started.
    pub start: Instant,
    /// Seats, instances: multiplies the plan's recurring prices.
    #[schema(value_type = DecimalText)]
    pub quantity: Decimal,
    pub alignment: Alignment,
    /// The project its lines count under; absent when it names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

impl SubscriptionBody {
    /// `subscription` with its stored `changes`.
    pub(crate) fn new(
        subscription: SubscriptionRecord,
        changes: Vec<SubscriptionChangeRecord>,
    ) -> Self {
        let spec = subscription.spec;
        Self {
            id: subscription.id.into(),
            customer_id: subscription.customer_id.into(),
            plan_id: subscription.plan_id.into(),
            plan_version_id: subscription.plan_version_id.into(),
            status: subscription.status.into(),
            created_at: subscription.created_at.into(),
            changes: changes
                .into_iter()
                .map(|change| ChangeBody::from(change.spec))
                .collect(),
            plan: spec.plan,
            start: spec.start.into(),
            quantity: spec.quantity,
            alignment: spec.alignment,
            project: spec.project,
        }
    }
}

/// A dated change of a subscription: one of `quantity`, `plan` and `cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangeBody {
    /// When it is made.
    pub at: Instant,
    /// A new quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DecimalText>)]
    pub quantity: Option<Decimal>,
    /// The plan version it changes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// A cancellation, at once or at the end of the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel: Option<ChangePolicy>,
    /// When a plan change takes effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<ChangePolicy>,
    /// Whether its prorations are billed at once on an invoice of their own.
    pub invoice_now: bool,
}

impl From<ChangeSpec> for ChangeBody {
    fn from(change: ChangeSpec) -> Self {
        Self {
            at: change.at.into(),
            quantity: change.quantity,
            plan: change.plan,
            cancel: change.cancel,
            policy: change.policy,
            invoice_now: change.invoice_now,
        }
    }
}

/// What a change would bill: the change as it would be stored, and the first invoices of the
/// subscription whose amounts it alters.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewBody {
    pub change: ChangeBody,
    /// At most two invoices, in time order; future usage is taken as none.
    pub invoices: Vec<ComputedInvoice>,
}
