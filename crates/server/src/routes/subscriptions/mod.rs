//! `/api/v1/subscriptions`: a customer on a plan version, with dated changes (quantity, plan,
//! cancel) and a preview of what a change would bill.
//!
//! Every new subscription or change is checked by the core on the customer's whole world (the
//! scenario a billing run would build), so an error names the request's field.

mod wire;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_billing::world::CustomerWorld;
use billow_core::scenario::ChangeSpec;
use billow_store::subscriptions::{
    SubscriptionChangeRecord, SubscriptionRecord, SubscriptionStatus,
};
use billow_store::{SubscriptionId, WorkspaceId};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::query::ApiQuery;
use crate::routes::plans::find_plan;
use crate::routes::shared::{guard_customer, listed_customer, object, store_error, take_string};
use crate::state::AppState;
use crate::validation::{read_spec, validate_document};
use crate::wire::Page;
use wire::{ChangeBody, PreviewBody, SubscriptionBody};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(change_subscription))
        .routes(routes!(preview_change))
}

async fn world(
    state: &AppState,
    workspace: &WorkspaceId,
    customer_id: &str,
) -> Result<CustomerWorld, ApiError> {
    CustomerWorld::load(&state.billing, workspace, customer_id)
        .await?
        .ok_or_else(|| ApiError::invalid("customer_id", "no customer has this id"))
}

/// `subscription` as the API shows it, with its changes.
async fn subscription_body(
    state: &AppState,
    workspace: &WorkspaceId,
    subscription: SubscriptionRecord,
) -> Result<SubscriptionBody, ApiError> {
    let changes = state
        .store
        .subscription_changes(workspace, &subscription.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(SubscriptionBody::new(subscription, changes))
}

/// Creates a subscription: `customer_id`, `plan` (id or key; its current version is used),
/// `quantity` (default 1), `start` (default now), `alignment` (`cycle_day`, `anniversary`,
/// `calendar`).
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions",
    tag = "subscriptions",
    request_body(content = crate::openapi::bodies::CreateSubscriptionBody, content_type = "application/json", description = "The subscription"),
    responses(
        (status = 201, description = "The subscription", body = SubscriptionBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: an unknown customer or plan, a plan with no price in the customer's currency, …", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_subscription(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<SubscriptionBody>), ApiError> {
    let workspace = &auth.workspace_id;
    let mut body = object(body)?;
    let customer_id = take_string(&mut body, "customer_id")?;
    let plan_ref = take_string(&mut body, "plan")?;
    let plan = find_plan(&state, workspace, &plan_ref)
        .await
        .map_err(|_| ApiError::invalid("plan", "no plan has this id or key"))?;
    let version = state
        .store
        .plan_version(workspace, &plan.current_version_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(store_inconsistent()))?;
    let id = SubscriptionId::new();
    let now = state.clock.now();
    let mut spec = Map::new();
    spec.insert("id".into(), json!(id));
    spec.insert("plan".into(), json!(version.id));
    spec.insert(
        "start".into(),
        body.remove("start")
            .unwrap_or_else(|| json!(now.to_string())),
    );
    for field in ["quantity", "alignment"] {
        if let Some(value) = body.remove(field) {
            spec.insert(field.into(), value);
        }
    }
    if let Some(field) = body.keys().next() {
        return Err(ApiError::invalid(field.clone(), "unknown field"));
    }
    let record = SubscriptionRecord {
        id: id.clone(),
        customer_id: customer_id.clone().into(),
        plan_id: plan.id.clone(),
        plan_version_id: version.id.clone(),
        status: SubscriptionStatus::Active,
        spec: read_spec(Value::Object(spec))?,
        created_at: now,
    };
    let mut world = world(&state, workspace, &customer_id).await?;
    world
        .versions
        .insert(version.id.clone(), std::sync::Arc::new(version));
    world.subscriptions.push((record.clone(), Vec::new()));
    let index = world.subscriptions.len() - 1;
    validate_document(&world.document(now), &format!("subscriptions[{index}]"))?;
    state
        .store
        .insert_subscription(workspace, &record)
        .await
        .map_err(store_error("subscription", &id))?;
    let shown = subscription_body(&state, workspace, record).await?;
    Ok((StatusCode::CREATED, ApiJson(shown)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    customer_id: Option<String>,
}

/// Lists subscriptions, of one customer when `customer_id` is given (a customer token sees only
/// its own), all in one page.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    tag = "subscriptions",
    params(("customer_id" = Option<String>, Query, description = "Only this customer's; a customer token's own customer when absent")),
    responses(
        (status = 200, description = "Every subscription asked for (`has_more` is false)", body = Page<SubscriptionBody>),
        (status = 404, description = "Another customer than a customer token's own", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter given twice", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<ApiJson<Page<SubscriptionBody>>, ApiError> {
    let customer = listed_customer(&principal, query.customer_id)?;
    let workspace = principal.workspace_id();
    let subscriptions = state
        .store
        .subscriptions(workspace, customer.as_deref())
        .await
        .map_err(ApiError::internal)?;
    let mut data = Vec::with_capacity(subscriptions.len());
    for subscription in subscriptions {
        data.push(subscription_body(&state, workspace, subscription).await?);
    }
    Ok(ApiJson(Page::whole(data)))
}

async fn find_subscription(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<SubscriptionRecord, ApiError> {
    let not_found = || ApiError::NotFound {
        resource: "subscription",
        id: id.to_owned(),
    };
    let subscription = state
        .store
        .subscription(principal.workspace_id(), id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    guard_customer(principal, &subscription.customer_id).map_err(|_| not_found())?;
    Ok(subscription)
}

/// One subscription with its changes. A customer token reads only its own customer's.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id (`sub_…`)")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionBody),
        (status = 404, description = "No such subscription in this workspace (or for this token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<SubscriptionBody>, ApiError> {
    let subscription = find_subscription(&state, &principal, &id).await?;
    Ok(ApiJson(
        subscription_body(&state, principal.workspace_id(), subscription).await?,
    ))
}

/// A change checked against the customer's world: the stored form, the world with it, and the
/// subscription's status and plan version after it.
struct CheckedChange {
    record: SubscriptionChangeRecord,
    world: CustomerWorld,
    status: SubscriptionStatus,
    plan_version_id: String,
}

async fn check_change(
    state: &AppState,
    workspace: &WorkspaceId,
    subscription: &SubscriptionRecord,
    body: Value,
) -> Result<CheckedChange, ApiError> {
    let mut body = object(body)?;
    let now = state.clock.now();
    let at = match body.remove("at") {
        None => now,
        Some(Value::String(text)) => text
            .parse::<Timestamp>()
            .map_err(|_| ApiError::invalid("at", "must be an RFC 3339 instant"))?,
        Some(_) => return Err(ApiError::invalid("at", "must be an RFC 3339 instant")),
    };
    let mut world = world(state, workspace, &subscription.customer_id).await?;
    let mut status = subscription.status;
    let mut plan_version_id = subscription.plan_version_id.clone();
    if let Some(plan_ref) = body.remove("plan") {
        let plan_ref = plan_ref
            .as_str()
            .ok_or_else(|| ApiError::invalid("plan", "must be a plan id or key"))?;
        let plan = find_plan(state, workspace, plan_ref)
            .await
            .map_err(|_| ApiError::invalid("plan", "no plan has this id or key"))?;
        let version = state
            .store
            .plan_version(workspace, &plan.current_version_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::internal(store_inconsistent()))?;
        plan_version_id.clone_from(&version.id);
        body.insert("plan".into(), json!(version.id));
        world
            .versions
            .insert(version.id.clone(), std::sync::Arc::new(version));
    }
    if body.contains_key("cancel") {
        status = SubscriptionStatus::Canceled;
    }
    body.insert("at".into(), json!(at.to_string()));
    let spec: ChangeSpec = read_spec(Value::Object(body))?;
    let index = world
        .subscriptions
        .iter()
        .position(|(s, _)| s.id == subscription.id)
        .ok_or_else(|| ApiError::internal(store_inconsistent()))?;
    let changes = &mut world.subscriptions[index].1;
    changes.push(spec.clone());
    let prefix = format!("subscriptions[{index}].changes[{}]", changes.len() - 1);
    validate_document(&world.document(now), &prefix)?;
    Ok(CheckedChange {
        record: SubscriptionChangeRecord {
            sequence: 0,
            at,
            spec,
            created_at: now,
        },
        world,
        status,
        plan_version_id: plan_version_id.into(),
    })
}

/// Changes a subscription: one of `quantity`, `plan` (with `policy` `immediate` or
/// `end_of_term`), `cancel` (`immediate` or `end_of_term`), at `at` (default now).
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/changes",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id (`sub_…`)")),
    request_body(content = crate::openapi::bodies::SubscriptionChangeBody, content_type = "application/json", description = "The change"),
    responses(
        (status = 201, description = "The subscription after the change", body = SubscriptionBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: not exactly one of `quantity`, `plan` and `cancel`, an unknown plan, a change the billing core refuses", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn change_subscription(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<SubscriptionBody>), ApiError> {
    let principal = Principal::Workspace {
        workspace_id: auth.workspace_id.clone(),
    };
    let subscription = find_subscription(&state, &principal, &id).await?;
    let checked = check_change(&state, &auth.workspace_id, &subscription, body).await?;
    state
        .store
        .add_subscription_change(
            &auth.workspace_id,
            &id,
            &checked.record,
            checked.status,
            &checked.plan_version_id,
        )
        .await
        .map_err(store_error("subscription", &id))?;
    let subscription = find_subscription(&state, &principal, &id).await?;
    let shown = subscription_body(&state, &auth.workspace_id, subscription).await?;
    Ok((StatusCode::CREATED, ApiJson(shown)))
}

/// How many of the invoices a change alters a preview shows: the one at the change (a plan
/// change or cancellation) and the next (its prorations), or the next two.
const PREVIEW_INVOICES_MAX: usize = 2;

/// What a change would bill, without making it: the engine runs on a copy of the customer's
/// world with the change, and on the world as it is, up to a year after the change; the first
/// invoices of the subscription whose amounts the change alters are returned (future usage is
/// taken as none).
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions/{id}/preview-change",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription's id (`sub_…`)")),
    request_body(content = crate::openapi::bodies::SubscriptionChangeBody, content_type = "application/json", description = "The change to preview"),
    responses(
        (status = 200, description = "The change and the invoices it would produce", body = PreviewBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, as for a change", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn preview_change(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<ApiJson<PreviewBody>, ApiError> {
    let principal = Principal::Workspace {
        workspace_id: auth.workspace_id.clone(),
    };
    let subscription = find_subscription(&state, &principal, &id).await?;
    let current = world(&state, &auth.workspace_id, &subscription.customer_id).await?;
    let checked = check_change(&state, &auth.workspace_id, &subscription, body).await?;
    let at = checked.record.at;
    let horizon = state
        .clock
        .now()
        .max(at)
        .checked_add(jiff::SignedDuration::from_hours(24 * 367))
        .map_err(ApiError::internal)?;
    let with_change = state
        .billing
        .preview(&auth.workspace_id, &checked.world, horizon)
        .await?;
    let without = state
        .billing
        .preview(&auth.workspace_id, &current, horizon)
        .await?;
    let unchanged = |invoice: &billow_core::scenario::IssuedInvoice| {
        without
            .invoices
            .iter()
            .any(|other| other.key == invoice.key && other.invoice == invoice.invoice)
    };
    let invoices: Vec<crate::wire::invoice::ComputedInvoice> = with_change
        .invoices
        .into_iter()
        .filter(|invoice| {
            invoice.subscriptions.contains(&id)
                && invoice.invoice.issued_at >= at
                && !unchanged(invoice)
        })
        .take(PREVIEW_INVOICES_MAX)
        .map(crate::wire::invoice::ComputedInvoice::from)
        .collect();
    Ok(ApiJson(PreviewBody {
        change: ChangeBody::from(checked.record.spec),
        invoices,
    }))
}

/// A row names another row that is not stored.
fn store_inconsistent() -> std::io::Error {
    std::io::Error::other("the stored billing rows are inconsistent")
}
