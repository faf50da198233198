//! Billed resources on the wire: the request bodies, checked field by field into store values
//! (every invalid field listed in one 422 `validation`), and the resource as the API shows it.

use std::collections::BTreeMap;

use billow_core::decimal::decimal_from_json;
use billow_core::schema::DecimalText;
use billow_store::resources::{CheckResourceError, ResourceRecord};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ConflictProblem};
use crate::routes::customers::Checks;
use crate::wire::Instant;

/// The most dimensions one resource carries.
pub(crate) const DIMENSIONS_MAX: usize = 32;
/// The longest dimension name, in characters (values follow `Checks::text`: 1 to 255).
pub(crate) const DIMENSION_KEY_LENGTH_MAX: usize = 64;

/// `POST /api/v1/resources`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateResource {
    /// The customer it is billed to (`cus_…`).
    #[schema(example = "cus_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub customer_id: String,
    /// The plan that prices it, by id or key. The plan's current version is kept with the
    /// resource: a later edit of the plan does not reprice it.
    #[schema(example = "addon-postgres-standard")]
    pub plan: String,
    /// Instances or units, zero or more; 1 when absent.
    #[schema(value_type = Option<DecimalText>)]
    pub quantity: Option<Value>,
    /// A project of the same customer (`prj_…`).
    pub project_id: Option<String>,
    /// Its type, as the platform groups lines: `addon`, `dyno`, `vm`, `cluster`, …
    #[schema(example = "addon")]
    pub kind: Option<String>,
    /// A name to show: the app's, the cluster's.
    #[schema(example = "api-postgres")]
    pub name: Option<String>,
    /// What the platform groups by, names to values (at most 32).
    #[schema(example = json!({"app": "api", "space": "default", "organization": "acme"}))]
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// The platform's own id for it, unique in the workspace.
    #[schema(example = "addon-4a2f")]
    pub external_id: Option<String>,
    /// When it began to exist (RFC 3339); now when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
    /// When it stopped existing (RFC 3339), for a resource recorded after the fact; not before
    /// `created_at`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Timestamp>,
}

/// `POST /api/v1/resources/{id}/quantity`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeQuantity {
    /// The new quantity, zero or more.
    #[schema(value_type = DecimalText)]
    pub quantity: Value,
    /// From when (RFC 3339): not before the resource's creation or its last change, not after
    /// its deletion; now when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<Timestamp>,
}

/// `POST /api/v1/resources/{id}/delete`; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteResource {
    /// When it stopped existing (RFC 3339): not before its creation or its last quantity
    /// change; now when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Timestamp>,
}

/// A dated quantity of a resource.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QuantityChangeBody {
    pub at: Instant,
    #[schema(value_type = DecimalText)]
    pub quantity: String,
}

/// A billed resource as the API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResourceBody {
    #[schema(example = "res_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    pub project_id: Option<String>,
    pub plan_id: String,
    /// The plan version that prices it for its whole life.
    pub plan_version_id: String,
    /// The quantity at creation.
    #[schema(value_type = DecimalText)]
    pub quantity: String,
    /// The quantity after every change.
    #[schema(value_type = DecimalText)]
    pub current_quantity: String,
    /// Later quantities, in time order.
    pub quantity_changes: Vec<QuantityChangeBody>,
    pub created_at: Instant,
    /// `null` while it exists.
    pub deleted_at: Option<Instant>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub dimensions: BTreeMap<String, String>,
    pub external_id: Option<String>,
}

impl From<ResourceRecord> for ResourceBody {
    fn from(resource: ResourceRecord) -> Self {
        Self {
            current_quantity: resource.current_quantity().to_string(),
            id: resource.id.into(),
            customer_id: resource.customer_id.into(),
            project_id: resource.project_id.map(Into::into),
            plan_id: resource.plan_id.into(),
            plan_version_id: resource.plan_version_id.into(),
            quantity: resource.quantity.to_string(),
            quantity_changes: resource
                .quantity_changes
                .into_iter()
                .map(|change| QuantityChangeBody {
                    at: change.at.into(),
                    quantity: change.quantity.to_string(),
                })
                .collect(),
            created_at: resource.created_at.into(),
            deleted_at: resource.deleted_at.map(Instant::from),
            kind: resource.kind,
            name: resource.name,
            dimensions: resource.dimensions,
            external_id: resource.external_id,
        }
    }
}

/// The display fields of a create body, checked.
pub(crate) struct DisplayFields {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub dimensions: BTreeMap<String, String>,
}

impl CreateResource {
    /// Checks the fields that need no lookup: text lengths, dimensions, the quantity.
    pub(crate) fn check_fields(&self, checks: &mut Checks) -> (Decimal, DisplayFields) {
        let quantity = match &self.quantity {
            None | Some(Value::Null) => Decimal::ONE,
            Some(value) => quantity(checks, "quantity", value),
        };
        let mut text = |field: &str, value: &Option<String>| {
            value.as_ref().map(|value| checks.text(field, value))
        };
        let kind = text("kind", &self.kind);
        let name = text("name", &self.name);
        let external_id = text("external_id", &self.external_id);
        let dimensions = dimensions(checks, &self.dimensions);
        let fields = DisplayFields {
            kind,
            name,
            external_id,
            dimensions,
        };
        (quantity, fields)
    }
}

/// A quantity: a decimal (string or number) of zero or more.
pub(crate) fn quantity(checks: &mut Checks, field: &str, value: &Value) -> Decimal {
    match decimal_from_json(value) {
        None => {
            checks.fail(
                field,
                "must be a decimal number, as a string such as \"2.5\" or a number",
            );
            Decimal::ZERO
        }
        Some(quantity) if quantity < Decimal::ZERO => {
            checks.fail(field, "must be zero or more");
            Decimal::ZERO
        }
        Some(quantity) => quantity,
    }
}

fn dimensions(checks: &mut Checks, given: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    if given.len() > DIMENSIONS_MAX {
        checks.fail(
            "dimensions",
            format!("must have at most {DIMENSIONS_MAX} entries"),
        );
    }
    for (key, value) in given {
        let key_ok = (1..=DIMENSION_KEY_LENGTH_MAX).contains(&key.chars().count())
            && !key.chars().any(|c| c.is_control() || c.is_whitespace());
        if !key_ok {
            checks.fail(
                format!("dimensions.{key}"),
                format!(
                    "a dimension's name has 1 to {DIMENSION_KEY_LENGTH_MAX} characters, without \
                     spaces or control characters"
                ),
            );
        }
        checks.text(&format!("dimensions.{key}"), value);
    }
    given.clone()
}

pub(crate) use crate::json::parse_optional;

/// A refused change or deletion as the problem a client gets: the field of the request it is
/// about, or a 409 when the resource's state is what refuses it.
pub(crate) fn refusal(id: &str, error: &CheckResourceError) -> ApiError {
    let reason = error.to_string();
    match error {
        CheckResourceError::NegativeQuantity { .. } => ApiError::invalid("quantity", reason),
        CheckResourceError::DeletedBeforeCreated { .. }
        | CheckResourceError::DeletedBeforeLastChange { .. } => {
            ApiError::invalid("deleted_at", reason)
        }
        CheckResourceError::ChangeBeforeCreated { .. }
        | CheckResourceError::ChangeBeforeLastChange { .. }
        | CheckResourceError::ChangeAfterDeleted { .. } => ApiError::invalid("at", reason),
        CheckResourceError::AlreadyDeleted { deleted_at } => ApiError::Conflict {
            problem: ConflictProblem::InvalidState,
            detail: format!("The resource {id} was already deleted at {deleted_at}."),
        },
        CheckResourceError::TooManyChanges { max } => ApiError::Conflict {
            problem: ConflictProblem::InvalidState,
            detail: format!(
                "The resource {id} has {max} quantity changes, the most a resource keeps; bill \
                 a quantity that changes this often as usage of a gauge meter."
            ),
        },
    }
}

/// `instant` to the microsecond, as the store keeps it, so that a response shows what a later
/// read returns.
pub(crate) fn stored_precision(instant: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(instant.as_microsecond()).unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_delete_body_deletes_now() {
        let body: DeleteResource = parse_optional(b" ").unwrap();

        assert_eq!(body.deleted_at, None);
    }

    #[test]
    fn a_quantity_is_a_decimal_of_zero_or_more_written_either_way() {
        let mut checks = Checks::default();

        assert_eq!(
            quantity(&mut checks, "quantity", &Value::from("2.50")).to_string(),
            "2.50"
        );
        assert_eq!(
            quantity(&mut checks, "quantity", &serde_json::json!(3)),
            Decimal::from(3)
        );
        assert!(checks.errors.is_empty());
        quantity(&mut checks, "quantity", &Value::from("-1"));
        quantity(&mut checks, "quantity", &Value::from("two"));
        assert_eq!(checks.errors.len(), 2);
        assert!(checks.errors.iter().all(|error| error.field == "quantity"));
    }

    #[test]
    fn a_dimension_with_a_long_or_blank_name_is_named() {
        let mut checks = Checks::default();
        let given = BTreeMap::from([
            ("x".repeat(65), "a".to_owned()),
            ("app".to_owned(), String::new()),
        ]);

        dimensions(&mut checks, &given);

        let fields: Vec<&str> = checks.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "dimensions.app".to_owned(),
                format!("dimensions.{}", "x".repeat(65))
            ]
        );
    }
}
