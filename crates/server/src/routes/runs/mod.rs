//! `POST /api/v1/billing-runs`: runs billing now for the caller's workspace (or one customer),
//! as the scheduler does on its interval.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::billing::run::{run_customer, run_workspace};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::startup::AppState;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(create_billing_run))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBody {
    #[serde(default)]
    customer_id: Option<String>,
}

/// Runs billing now: drafts due invoices, finalizes those past the grace period, records late
/// usage. The body may name one `customer_id`; `{}` runs the whole workspace.
#[utoipa::path(post, path = "/api/v1/billing-runs", request_body(content = Value, content_type = "application/json", description = "A JSON object; its fields are listed in the operation's description"),
    tag = "billing",
    responses((status = 201, description = "What the run did")))]
pub(crate) async fn create_billing_run(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let report = match &body.customer_id {
        Some(customer_id) => {
            run_customer(&state, &state.billing, &auth.workspace_id, customer_id).await?
        }
        None => run_workspace(&state, &state.billing, &auth.workspace_id).await?,
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
