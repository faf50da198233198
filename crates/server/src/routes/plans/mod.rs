//! `/api/v1/plans`: versioned plans. A plan is created at version 1; `PUT` adds a version and
//! makes it the one new subscriptions get. Existing subscriptions and their invoices keep the
//! version they use.

mod wire;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_core::scenario::PlanSpec;
use billow_core::Currency;
use billow_store::catalog::{PlanRecord, PlanVersionRecord};
use billow_store::{PlanId, PlanVersionId, WorkspaceId};
use serde_json::{json, Map, Value};
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::routes::shared::{object, store_error};
use crate::state::AppState;
use crate::validation::{validate_document, validation_document};
use crate::wire::Page;
use wire::PlanBody;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_plan, list_plans))
        .routes(routes!(get_plan, update_plan))
}

/// Checks a plan spec with the core against the workspace's meters; returns its key.
///
/// A stored plan names the currency of every price, on the plan (`currency`, the default of its
/// prices) or on each price: a scenario file's plan may leave it to the file's one currency,
/// but a workspace bills customers in many, and a price without one would bill 9.99 EUR to a
/// JPY customer as 10 yen.
async fn validate_plan(
    state: &AppState,
    workspace: &WorkspaceId,
    spec: &Value,
) -> Result<PlanSpec, ApiError> {
    if let Some(field) = price_without_currency(spec) {
        return Err(ApiError::invalid(
            field,
            "every price needs a currency (ISO 4217, such as EUR): set the plan's `currency`, the default of its prices, or a `currency` on each price",
        ));
    }
    let meters: Vec<billow_core::Meter> = state
        .store
        .meters(workspace)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|meter| meter.spec)
        .collect();
    let mut members = Map::new();
    members.insert("plans".into(), json!([spec]));
    // The document's own currency is no price's: each price names one, and its amounts are
    // checked in it.
    let currency = Currency::from_code("USD").map_err(ApiError::internal)?;
    let mut scenario =
        validate_document(&validation_document(currency, &meters, members), "plans[0]")?;
    Ok(scenario.plans.swap_remove(0))
}

/// The field to name when a plan leaves a price without a currency: `currency` for a plan
/// without one, when a price has none either. `None` when every price has one, or when the
/// spec is not shaped like a plan (the core names what is wrong with it then).
fn price_without_currency(spec: &Value) -> Option<&'static str> {
    if spec
        .get("currency")
        .is_some_and(|currency| !currency.is_null())
    {
        return None;
    }
    let prices = spec.get("prices")?.as_array()?;
    prices
        .iter()
        .any(|price| price.get("currency").is_none_or(Value::is_null))
        .then_some("currency")
}

/// `plan` as the API shows it, with its versions.
async fn plan_body(
    state: &AppState,
    workspace: &WorkspaceId,
    plan: PlanRecord,
) -> Result<PlanBody, ApiError> {
    let versions = state
        .store
        .plan_versions(workspace, &plan.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(PlanBody::new(plan, versions))
}

/// Creates a plan: `key`, `name`, `cadence`, `currency`, `prices`, `phases`, `minimum_amount`,
/// as the scenario format writes a plan. Every price needs a currency: the plan's `currency`, or
/// its own; a plan priced in several currencies has one price per key and currency.
#[utoipa::path(
    post,
    path = "/api/v1/plans",
    tag = "plans",
    request_body(content = billow_core::scenario::PlanSpec, content_type = "application/json", description = "The plan, checked by the billing core against the workspace's meters"),
    responses(
        (status = 201, description = "The plan at version 1", body = PlanBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The workspace has a plan with this key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: a price without a currency, a meter the workspace does not have, …", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_plan(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<PlanBody>), ApiError> {
    let spec = validate_plan(&state, &auth.workspace_id, &Value::Object(object(body)?)).await?;
    let key = spec.key.clone();
    let now = state.clock.now();
    let plan = PlanRecord {
        id: PlanId::new(),
        key: key.clone(),
        current_version_id: PlanVersionId::new(),
        created_at: now,
    };
    let version = PlanVersionRecord {
        id: plan.current_version_id.clone(),
        plan_id: plan.id.clone(),
        version: 1,
        spec,
        created_at: now,
    };
    state
        .store
        .insert_plan(&auth.workspace_id, &plan, &version)
        .await
        .map_err(store_error("plan", &key))?;
    let shown = plan_body(&state, &auth.workspace_id, plan).await?;
    Ok((StatusCode::CREATED, ApiJson(shown)))
}

/// Lists the workspace's plans, oldest first, all in one page.
#[utoipa::path(
    get,
    path = "/api/v1/plans",
    tag = "plans",
    responses(
        (status = 200, description = "Every plan of the workspace (`has_more` is false)", body = Page<PlanBody>),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_plans(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
) -> Result<ApiJson<Page<PlanBody>>, ApiError> {
    let plans = state
        .store
        .plans(&auth.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    let mut data = Vec::with_capacity(plans.len());
    for plan in plans {
        data.push(plan_body(&state, &auth.workspace_id, plan).await?);
    }
    Ok(ApiJson(Page::whole(data)))
}

pub(crate) async fn find_plan(
    state: &AppState,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<PlanRecord, ApiError> {
    state
        .store
        .plan(workspace, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound {
            resource: "plan",
            id: id.to_owned(),
        })
}

/// One plan (by id or key), with its current version and the list of its versions.
#[utoipa::path(
    get,
    path = "/api/v1/plans/{id}",
    tag = "plans",
    params(("id" = String, Path, description = "The plan's id (`plan_…`) or key")),
    responses(
        (status = 200, description = "The plan", body = PlanBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No plan of the workspace has this id or key", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get_plan(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
) -> Result<ApiJson<PlanBody>, ApiError> {
    let plan = find_plan(&state, &auth.workspace_id, &id).await?;
    Ok(ApiJson(plan_body(&state, &auth.workspace_id, plan).await?))
}

/// Edits a plan: the body is the whole new plan; it becomes a new version. The key cannot change.
#[utoipa::path(
    put,
    path = "/api/v1/plans/{id}",
    tag = "plans",
    params(("id" = String, Path, description = "The plan's id (`plan_…`) or key")),
    request_body(content = billow_core::scenario::PlanSpec, content_type = "application/json", description = "The whole new plan; `key` may be left out (it cannot change)"),
    responses(
        (status = 200, description = "The plan at its new version", body = PlanBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No plan of the workspace has this id or key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, among them a `key` other than the plan's", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn update_plan(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<ApiJson<PlanBody>, ApiError> {
    let plan = find_plan(&state, &auth.workspace_id, &id).await?;
    let mut spec = object(body)?;
    match spec.get("key") {
        None => {
            spec.insert("key".into(), Value::String(plan.key.clone()));
        }
        Some(Value::String(key)) if *key == plan.key => {}
        Some(_) => return Err(ApiError::invalid("key", "a plan's key cannot change")),
    }
    let spec = validate_plan(&state, &auth.workspace_id, &Value::Object(spec)).await?;
    let version_id = PlanVersionId::new();
    state
        .store
        .add_plan_version(
            &auth.workspace_id,
            &plan.id,
            &version_id,
            &spec,
            state.clock.now(),
        )
        .await
        .map_err(store_error("plan", &id))?;
    let plan = find_plan(&state, &auth.workspace_id, &plan.id).await?;
    Ok(ApiJson(plan_body(&state, &auth.workspace_id, plan).await?))
}
