//! `POST /api/v1/billing-runs`: runs billing now for the caller's workspace (or one customer),
//! as the scheduler does on its interval.

mod wire;

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::state::AppState;
use wire::{BillingRunBody, CreateBillingRun};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(create_billing_run))
}

/// Runs billing now: drafts due invoices, finalizes those past the grace period, records late
/// usage. The body may name one `customer_id`; `{}` runs the whole workspace.
#[utoipa::path(post, path = "/api/v1/billing-runs", request_body(content = CreateBillingRun, content_type = "application/json", description = "What to bill: `{}` for the whole workspace"),
    tag = "billing",
    responses(
        (status = 201, description = "What the run did", body = BillingRunBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field in the body", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_billing_run(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<CreateBillingRun>,
) -> Result<(StatusCode, ApiJson<BillingRunBody>), ApiError> {
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
        ApiJson(BillingRunBody {
            id: billow_store::new_id("run"),
            now: state.clock.now().into(),
            report: report.into(),
        }),
    ))
}
