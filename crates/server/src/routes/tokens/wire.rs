//! The bodies of the customer-token routes, as the handlers parse and write them and as
//! `/api/v1/openapi.json` documents them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire::Instant;

/// `POST /api/v1/customers/{id}/tokens`; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerToken {
    /// 60 to 2,592,000 (30 days); 86,400 (a day) when absent.
    #[schema(minimum = 60, maximum = 2592000)]
    pub expires_in_seconds: Option<i64>,
}

/// A new token; `token` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerTokenBody {
    #[schema(example = "ctok_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    /// The secret, `bct_…`: send it as `Authorization: Bearer bct_…`.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: Instant,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerTokenSummary {
    #[schema(example = "ctok_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    /// The secret's first characters, e.g. `bct_1f0c93ab`.
    pub prefix: String,
    pub created_at: Instant,
    /// When it stops being accepted.
    pub expires_at: Instant,
}
