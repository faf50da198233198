//! [`ResourceRecord`] and the rules of a resource's lifetime, as pure functions: what the store
//! checks before it writes a resource, and after it reads one.

use std::collections::BTreeMap;

use billow_core::scenario::{QuantityChange, ResourceSpec};
use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::ids::{CustomerId, PlanId, PlanVersionId, ProjectId, ResourceId};

/// The most quantity changes one resource keeps. A resource whose quantity moves more often than
/// that (autoscaling by the minute) is a gauge: a meter with `TIME_WEIGHTED_SUM` bills it from
/// usage events without a row rewrite per change.
pub const QUANTITY_CHANGES_PER_RESOURCE_MAX: usize = 1_000;

/// A stored billed resource: a priced thing a platform runs for a customer from `created_at` to
/// `deleted_at` (an add-on or a dyno of an app, a VM, a cluster).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceRecord {
    /// `res_…`.
    pub id: ResourceId,
    pub customer_id: CustomerId,
    /// A project of the same customer.
    pub project_id: Option<ProjectId>,
    pub plan_id: PlanId,
    /// The plan's version current when the resource was created: what prices it for its whole
    /// life, as a subscription keeps the version it started on.
    pub plan_version_id: PlanVersionId,
    /// The quantity at creation.
    pub quantity: Decimal,
    /// Later quantities, in time order, each effective from its instant.
    pub quantity_changes: Vec<QuantityChange>,
    pub created_at: Timestamp,
    /// When it stopped existing; `None` while it runs.
    pub deleted_at: Option<Timestamp>,
    /// Its type, as a platform groups lines (`addon`, `dyno`, `vm`, `cluster`).
    pub kind: Option<String>,
    /// A name to show (an app's, a cluster's).
    pub name: Option<String>,
    /// What a platform groups by (`app`, `space`, `organization`).
    pub dimensions: BTreeMap<String, String>,
    /// The platform's own id for it; unique in the workspace when given.
    pub external_id: Option<String>,
    /// When billow stored it (`created_at` is when the platform says it began to exist).
    pub inserted_at: Timestamp,
}

/// Why a resource's lifetime or quantities are not valid, or why a change of them is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckResourceError {
    /// A quantity below zero.
    #[error("the quantity {quantity} is below zero")]
    NegativeQuantity { quantity: Decimal },
    /// A deletion before the creation.
    #[error("deleted at {deleted_at}, before it was created ({created_at})")]
    DeletedBeforeCreated {
        created_at: Timestamp,
        deleted_at: Timestamp,
    },
    /// A deletion before the last quantity change, which would leave the change outside the
    /// resource's lifetime.
    #[error("deleted at {deleted_at}, before its last quantity change ({last_change_at})")]
    DeletedBeforeLastChange {
        deleted_at: Timestamp,
        last_change_at: Timestamp,
    },
    /// A second deletion.
    #[error("already deleted at {deleted_at}")]
    AlreadyDeleted { deleted_at: Timestamp },
    /// A quantity change before the creation.
    #[error("a quantity change at {at}, before the resource was created ({created_at})")]
    ChangeBeforeCreated {
        at: Timestamp,
        created_at: Timestamp,
    },
    /// A quantity change before the previous one: changes are kept in time order.
    #[error("a quantity change at {at}, before the last change ({last_change_at})")]
    ChangeBeforeLastChange {
        at: Timestamp,
        last_change_at: Timestamp,
    },
    /// A quantity change after the deletion.
    #[error("a quantity change at {at}, after the resource was deleted ({deleted_at})")]
    ChangeAfterDeleted {
        at: Timestamp,
        deleted_at: Timestamp,
    },
    /// More quantity changes than [`QUANTITY_CHANGES_PER_RESOURCE_MAX`].
    #[error("a resource keeps at most {max} quantity changes")]
    TooManyChanges { max: usize },
}

impl ResourceRecord {
    /// The resource as the billing core prices it: its plan key is the pinned plan version (the
    /// live engine's plan keys are version ids), its project the project id.
    pub fn to_spec(&self) -> ResourceSpec {
        ResourceSpec {
            id: self.id.clone().into(),
            plan: self.plan_version_id.clone().into(),
            quantity: self.quantity,
            created_at: self.created_at,
            deleted_at: self.deleted_at,
            quantity_changes: self.quantity_changes.clone(),
            project: self.project_id.clone().map(Into::into),
            kind: self.kind.clone(),
            name: self.name.clone(),
            dimensions: self.dimensions.clone(),
        }
    }

    /// The quantity in effect after every change: the last change's, or the quantity at
    /// creation.
    pub fn current_quantity(&self) -> Decimal {
        self.quantity_changes
            .last()
            .map_or(self.quantity, |change| change.quantity)
    }

    /// The instant of the last quantity change, or `None` when the quantity never changed.
    pub fn last_change_at(&self) -> Option<Timestamp> {
        self.quantity_changes.last().map(|change| change.at)
    }

    /// Whether the resource exists at `at`: its lifetime is `[created_at, deleted_at)`.
    pub fn is_alive_at(&self, at: Timestamp) -> bool {
        self.created_at <= at && self.deleted_at.is_none_or(|deleted_at| at < deleted_at)
    }

    /// Checks every rule of a resource: quantities zero or more, changes in time order within
    /// `[created_at, deleted_at]`, at most [`QUANTITY_CHANGES_PER_RESOURCE_MAX`] of them, and
    /// a deletion at or after the creation and the last change. The billing core checks the
    /// same of a `ResourceSpec`; checking here keeps a stored row valid for it.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(&self) -> Result<(), CheckResourceError> {
        non_negative(self.quantity)?;
        if self.quantity_changes.len() > QUANTITY_CHANGES_PER_RESOURCE_MAX {
            return Err(CheckResourceError::TooManyChanges {
                max: QUANTITY_CHANGES_PER_RESOURCE_MAX,
            });
        }
        let mut last_change_at: Option<Timestamp> = None;
        for change in &self.quantity_changes {
            check_change_at(self.created_at, None, last_change_at, change.at)?;
            non_negative(change.quantity)?;
            last_change_at = Some(change.at);
        }
        if let Some(deleted_at) = self.deleted_at {
            check_deleted_at(self.created_at, last_change_at, deleted_at)?;
        }
        Ok(())
    }

    /// Appends a quantity change at `at`, after checking it: `at` within the resource's
    /// lifetime and not before the last change, `quantity` zero or more, room for one more
    /// change. The record is unchanged when the change is refused.
    ///
    /// # Errors
    /// Why the change is refused.
    pub fn change_quantity(
        &mut self,
        at: Timestamp,
        quantity: Decimal,
    ) -> Result<(), CheckResourceError> {
        non_negative(quantity)?;
        check_change_at(self.created_at, self.deleted_at, self.last_change_at(), at)?;
        if self.quantity_changes.len() >= QUANTITY_CHANGES_PER_RESOURCE_MAX {
            return Err(CheckResourceError::TooManyChanges {
                max: QUANTITY_CHANGES_PER_RESOURCE_MAX,
            });
        }
        self.quantity_changes.push(QuantityChange { at, quantity });
        Ok(())
    }

    /// Records the deletion at `deleted_at`, after checking it: a resource is deleted once, not
    /// before it was created nor before its last quantity change. The record is unchanged when
    /// the deletion is refused.
    ///
    /// # Errors
    /// Why the deletion is refused.
    pub fn delete(&mut self, deleted_at: Timestamp) -> Result<(), CheckResourceError> {
        if let Some(deleted_at) = self.deleted_at {
            return Err(CheckResourceError::AlreadyDeleted { deleted_at });
        }
        check_deleted_at(self.created_at, self.last_change_at(), deleted_at)?;
        self.deleted_at = Some(deleted_at);
        Ok(())
    }
}

fn non_negative(quantity: Decimal) -> Result<(), CheckResourceError> {
    if quantity < Decimal::ZERO {
        return Err(CheckResourceError::NegativeQuantity { quantity });
    }
    Ok(())
}

/// A change at `at` may follow the creation and the last change (at the same instant too: the
/// later one wins) and may not follow the deletion.
fn check_change_at(
    created_at: Timestamp,
    deleted_at: Option<Timestamp>,
    last_change_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<(), CheckResourceError> {
    if at < created_at {
        return Err(CheckResourceError::ChangeBeforeCreated { at, created_at });
    }
    if let Some(last_change_at) = last_change_at.filter(|last| at < *last) {
        return Err(CheckResourceError::ChangeBeforeLastChange { at, last_change_at });
    }
    if let Some(deleted_at) = deleted_at.filter(|deleted_at| at > *deleted_at) {
        return Err(CheckResourceError::ChangeAfterDeleted { at, deleted_at });
    }
    Ok(())
}

fn check_deleted_at(
    created_at: Timestamp,
    last_change_at: Option<Timestamp>,
    deleted_at: Timestamp,
) -> Result<(), CheckResourceError> {
    if deleted_at < created_at {
        return Err(CheckResourceError::DeletedBeforeCreated {
            created_at,
            deleted_at,
        });
    }
    if let Some(last_change_at) = last_change_at.filter(|last| deleted_at < *last) {
        return Err(CheckResourceError::DeletedBeforeLastChange {
            deleted_at,
            last_change_at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn dyno() -> ResourceRecord {
        ResourceRecord {
            id: "res_1".into(),
            customer_id: "cus_1".into(),
            project_id: Some("prj_1".into()),
            plan_id: "plan_1".into(),
            plan_version_id: "pv_1".into(),
            quantity: Decimal::ONE,
            quantity_changes: Vec::new(),
            created_at: at("2017-01-10T00:00:00Z"),
            deleted_at: None,
            kind: Some("dyno".into()),
            name: Some("web".into()),
            dimensions: BTreeMap::from([("app".into(), "api".into())]),
            external_id: Some("dyno-7".into()),
            inserted_at: at("2017-01-10T00:00:01Z"),
        }
    }

    #[test]
    fn the_spec_names_the_plan_version_and_the_project() {
        let mut resource = dyno();
        resource
            .change_quantity(at("2017-01-20T00:00:00Z"), Decimal::TWO)
            .unwrap();

        let spec = resource.to_spec();

        assert_eq!(spec.plan, "pv_1");
        assert_eq!(spec.project.as_deref(), Some("prj_1"));
        assert_eq!(spec.quantity, Decimal::ONE);
        assert_eq!(spec.quantity_changes.len(), 1);
        assert_eq!(spec.dimensions["app"], "api");
        assert_eq!(resource.current_quantity(), Decimal::TWO);
    }

    #[test]
    fn a_change_is_refused_before_creation_before_the_last_change_and_after_deletion() {
        let mut resource = dyno();
        resource
            .change_quantity(at("2017-01-20T00:00:00Z"), Decimal::TWO)
            .unwrap();
        resource.delete(at("2017-01-25T00:00:00Z")).unwrap();
        let before = resource.clone();

        let early = resource.change_quantity(at("2017-01-09T00:00:00Z"), Decimal::ONE);
        let out_of_order = resource.change_quantity(at("2017-01-19T00:00:00Z"), Decimal::ONE);
        let late = resource.change_quantity(at("2017-01-25T00:00:01Z"), Decimal::ONE);
        let negative = resource.change_quantity(at("2017-01-21T00:00:00Z"), Decimal::NEGATIVE_ONE);

        assert!(matches!(
            early,
            Err(CheckResourceError::ChangeBeforeCreated { .. })
        ));
        assert!(matches!(
            out_of_order,
            Err(CheckResourceError::ChangeBeforeLastChange { .. })
        ));
        assert!(matches!(
            late,
            Err(CheckResourceError::ChangeAfterDeleted { .. })
        ));
        assert!(matches!(
            negative,
            Err(CheckResourceError::NegativeQuantity { .. })
        ));
        assert_eq!(resource, before);
        // At the deletion's instant, or the last change's, is still within the lifetime.
        resource
            .change_quantity(at("2017-01-25T00:00:00Z"), Decimal::ZERO)
            .unwrap();
        assert_eq!(resource.check(), Ok(()));
    }

    #[test]
    fn a_deletion_is_refused_twice_before_creation_and_before_the_last_change() {
        let mut resource = dyno();
        resource
            .change_quantity(at("2017-01-20T00:00:00Z"), Decimal::TWO)
            .unwrap();

        let early = resource.clone().delete(at("2017-01-09T00:00:00Z"));
        let before_change = resource.clone().delete(at("2017-01-19T00:00:00Z"));
        resource.delete(at("2017-01-20T00:00:00Z")).unwrap();
        let again = resource.delete(at("2017-01-30T00:00:00Z"));

        assert!(matches!(
            early,
            Err(CheckResourceError::DeletedBeforeCreated { .. })
        ));
        assert!(matches!(
            before_change,
            Err(CheckResourceError::DeletedBeforeLastChange { .. })
        ));
        assert_eq!(
            again,
            Err(CheckResourceError::AlreadyDeleted {
                deleted_at: at("2017-01-20T00:00:00Z")
            })
        );
    }

    #[test]
    fn a_resource_is_alive_from_its_creation_until_its_deletion_excluded() {
        let mut resource = dyno();
        resource.delete(at("2017-01-25T00:00:00Z")).unwrap();

        assert!(!resource.is_alive_at(at("2017-01-09T23:59:59Z")));
        assert!(resource.is_alive_at(at("2017-01-10T00:00:00Z")));
        assert!(resource.is_alive_at(at("2017-01-24T23:59:59Z")));
        assert!(!resource.is_alive_at(at("2017-01-25T00:00:00Z")));
    }

    #[test]
    fn check_refuses_a_record_deleted_before_it_was_created() {
        let mut resource = dyno();
        resource.deleted_at = Some(at("2017-01-01T00:00:00Z"));

        assert!(matches!(
            resource.check(),
            Err(CheckResourceError::DeletedBeforeCreated { .. })
        ));
    }

    #[test]
    fn a_resource_keeps_at_most_a_thousand_quantity_changes() {
        let mut resource = dyno();
        let at = resource.created_at;
        for _ in 0..QUANTITY_CHANGES_PER_RESOURCE_MAX {
            resource.change_quantity(at, Decimal::TWO).unwrap();
        }

        let one_more = resource.change_quantity(at, Decimal::ONE);

        assert_eq!(
            one_more,
            Err(CheckResourceError::TooManyChanges {
                max: QUANTITY_CHANGES_PER_RESOURCE_MAX
            })
        );
        assert_eq!(resource.quantity_changes.len(), 1_000);
        assert_eq!(resource.check(), Ok(()));
    }

    #[test]
    fn negative_zero_is_zero() {
        let mut resource = dyno();
        resource.quantity = Decimal::from_str_exact("-0").unwrap();

        assert_eq!(resource.check(), Ok(()));
    }
}
