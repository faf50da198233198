//! `POST /api/v1/billing-runs`: runs billing now for the caller's workspace (or one customer),
//! as the scheduler does on its interval.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::state::AppState;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(create_billing_run))
}

/// `POST /api/v1/billing-runs`: `{}` runs the whole workspace, `{"customer_id": …}` one
/// customer.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBillingRun {
    /// Only this customer of the workspace (`cus_…`); absent: every customer with a
    /// subscription. An unknown id runs nothing.
    #[serde(default)]
    #[schema(example = "cus_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    customer_id: Option<String>,
}

/// Runs billing now: drafts due invoices, finalizes those past the grace period, records late
/// usage. The body may name one `customer_id`; `{}` runs the whole workspace.
#[utoipa::path(post, path = "/api/v1/billing-runs", request_body(content = CreateBillingRun, content_type = "application/json", description = "What to bill: `{}` for the whole workspace"),
    tag = "billing",
    responses((status = 201, description = "What the run did")))]
pub(crate) async fn create_billing_run(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<CreateBillingRun>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let report = match &body.customer_id {
        Some(customer_id) => {
            state
                .billing
                .run_customer(&auth.workspace_id, customer_id)
                .await?
        }
        None => state.billing.run_workspace(&auth.workspace_id).await?,
    };
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({
            "id": billow_store::new_id("run"),
            "now": state.clock.now().to_string(),
            "report": report,
        })),
    ))
}
