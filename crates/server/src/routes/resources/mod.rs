//! `/api/v1/resources`: billed resources, priced things a platform runs for a customer from one
//! instant to another (an add-on or a dyno of an app, a VM, a cluster; docs/resources.md).
//!
//! Workspace keys create resources, change their quantity and delete them; a customer token
//! may read its own customer's resources only (404 for any other, 403 for the writes). A
//! deletion is `POST /api/v1/resources/{id}/delete`, like the other state changes of the API
//! (`/coupons/{code}/archive`, `/invoices/{id}/void`), so that it takes a JSON body with its
//! instant and an `Idempotency-Key`: a retry with the key gets the first answer again, and a
//! second deletion without one is a 409 naming the resource.

pub(crate) mod events;
mod wire;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use billow_core::scenario::PlanNotPricedError;
use billow_core::Currency;
use billow_store::catalog::PlanRecord;
use billow_store::resources::{ChangeResourceError, InsertResourceError, ResourceRecord};
use billow_store::{PlanId, PlanVersionId, ResourceId, WorkspaceId};
use jiff::Timestamp;
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::limits::PageQuery;
use crate::openapi::ApiRouter;
use crate::routes::customers::Checks;
use crate::state::AppState;
use crate::wire::Page;
use wire::{
    parse_optional, quantity, refusal, stored_precision, ChangeQuantity, CreateResource,
    DeleteResource, ResourceBody,
};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_resource, list_resources))
        .routes(routes!(get_resource))
        .routes(routes!(change_quantity))
        .routes(routes!(delete_resource))
}

/// Create a billed resource.
#[utoipa::path(
    post,
    path = "/api/v1/resources",
    tag = "resources",
    request_body = CreateResource,
    responses(
        (status = 201, description = "The resource", body = ResourceBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The external id is taken (field `external_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: an unknown customer, plan or project, a plan with no price in the customer's currency, a project of another customer, a negative quantity, a deletion before the creation, text too long", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id))]
pub(crate) async fn create_resource(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateResource>,
) -> Result<(StatusCode, ApiJson<ResourceBody>), ApiError> {
    let record = insert_new_resource(&state, &auth.workspace_id, body).await?;
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// Checks a new resource (every invalid field listed in one 422) and stores it: what
/// `POST /api/v1/resources` and a `billow.resource.created` event share.
pub(crate) async fn insert_new_resource(
    state: &AppState,
    workspace: &WorkspaceId,
    body: CreateResource,
) -> Result<ResourceRecord, ApiError> {
    let now = stored_precision(state.clock.now());
    let mut checks = Checks::default();
    let (quantity, display) = body.check_fields(&mut checks);
    let created_at = body.created_at.map_or(now, stored_precision);
    let deleted_at = body.deleted_at.map(stored_precision);
    if let Some(deleted_at) = deleted_at.filter(|deleted_at| *deleted_at < created_at) {
        checks.fail(
            "deleted_at",
            format!("{deleted_at} is before the resource was created ({created_at})"),
        );
    }
    let plan = check_references(state, workspace, &body, &mut checks).await?;
    let Some((plan_id, plan_version_id)) = plan.filter(|_| checks.errors.is_empty()) else {
        return Err(ApiError::Validation(checks.errors));
    };
    let record = ResourceRecord {
        id: ResourceId::new(),
        customer_id: body.customer_id.into(),
        project_id: body.project_id.map(Into::into),
        plan_id,
        plan_version_id,
        quantity,
        quantity_changes: Vec::new(),
        created_at,
        deleted_at,
        kind: display.kind,
        name: display.name,
        dimensions: display.dimensions,
        external_id: display.external_id,
        inserted_at: now,
    };
    state
        .store
        .insert_resource(workspace, &record)
        .await
        .map_err(|error| insert_error(error, &record))?;
    Ok(record)
}

/// Checks that the customer, the plan and the project exist, and that the project is the
/// customer's, listing each failure in `checks`. Returns the plan's id and current version.
async fn check_references(
    state: &AppState,
    workspace: &WorkspaceId,
    body: &CreateResource,
    checks: &mut Checks,
) -> Result<Option<(PlanId, PlanVersionId)>, ApiError> {
    let store = &state.store;
    let customer = store
        .customer(workspace, &body.customer_id)
        .await
        .map_err(ApiError::internal)?;
    if customer.is_none() {
        checks.fail("customer_id", "no customer of this workspace has this id");
    }
    let plan = store
        .plan(workspace, &body.plan)
        .await
        .map_err(ApiError::internal)?;
    match (&plan, &customer) {
        (None, _) => checks.fail("plan", "no plan of this workspace has this id or key"),
        (Some(plan), Some(customer)) => {
            if let Err(error) = priced_in(state, workspace, plan, customer.currency).await? {
                checks.fail("plan", error.to_string());
            }
        }
        (Some(_), None) => {}
    }
    if let Some(project_id) = &body.project_id {
        let project = store
            .project(workspace, project_id)
            .await
            .map_err(ApiError::internal)?;
        match project {
            None => checks.fail("project_id", "no project of this workspace has this id"),
            // A project of another customer; said only of a known customer, since an unknown
            // one is the error to fix first.
            Some(project) if customer.is_some() && project.customer_id != body.customer_id => {
                checks.fail(
                    "project_id",
                    format!(
                        "the project belongs to another customer ({}), not to {}",
                        project.customer_id, body.customer_id
                    ),
                )
            }
            Some(_) => {}
        }
    }
    Ok(plan.map(|plan| (plan.id, plan.current_version_id)))
}

/// Whether the current version of `plan` can bill a customer in `currency`: a resource is billed
/// only with its plan's prices in its customer's currency. A stored price that names no currency
/// (neither its own nor its plan's) is in the customer's, as the billing run reads it.
async fn priced_in(
    state: &AppState,
    workspace: &WorkspaceId,
    plan: &PlanRecord,
    currency: Currency,
) -> Result<Result<(), PlanNotPricedError>, ApiError> {
    let version = state
        .store
        .plan_version(workspace, &plan.current_version_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::internal(MissingPlanVersion(plan.current_version_id.clone().into()))
        })?;
    Ok(version.spec.check_priced_in(currency, currency))
}

/// A plan's current version is not stored: the rows are inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("the plan version {0} is not stored")]
struct MissingPlanVersion(String);

fn insert_error(error: InsertResourceError, record: &ResourceRecord) -> ApiError {
    match error {
        InsertResourceError::Invalid(error) => refusal(&record.id, &error),
        InsertResourceError::ExternalIdTaken => ApiError::Taken {
            field: "external_id",
            detail: format!(
                "A resource with the external_id {:?} already exists in this workspace.",
                record.external_id.as_deref().unwrap_or_default()
            ),
        },
        // Checked just before; only a concurrent change of the customer's projects gets here.
        InsertResourceError::UnknownCustomerOrProject => {
            ApiError::invalid("project_id", "no project of this customer has this id")
        }
        error => ApiError::internal(error),
    }
}

/// The filters of `GET /api/v1/resources` beside the page parameters.
#[derive(serde::Deserialize)]
struct ResourceFilter {
    customer_id: Option<String>,
    alive_at: Option<String>,
}

/// List a customer's resources, oldest first. A customer token lists its own customer's.
#[utoipa::path(
    get,
    path = "/api/v1/resources",
    tag = "resources",
    params(
        ("customer_id" = Option<String>, Query, description = "Whose resources: required with a workspace key; a customer token's own customer when absent"),
        ("alive_at" = Option<String>, Query, description = "Only those that exist at this RFC 3339 instant (created at or before it, not deleted at or before it); write `Z` or percent-encode the `+` of an offset"),
        ("limit" = Option<u32>, Query, description = "1 to 100; 10 when absent", minimum = 1, maximum = 100),
        ("starting_after" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page of resources", body = Page<ResourceBody>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Another customer than a customer token's own", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No or an unknown `customer_id`, an invalid `alive_at` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %principal.workspace_id()))]
pub(crate) async fn list_resources(
    principal: Principal,
    State(state): State<AppState>,
    page: PageQuery,
    uri: Uri,
) -> Result<ApiJson<Page<ResourceBody>>, ApiError> {
    let Query(filter) = Query::<ResourceFilter>::try_from_uri(&uri)
        .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let workspace = principal.workspace_id();
    let customer_id = match (filter.customer_id, principal.customer_id()) {
        (Some(asked), _) if !principal.can_read_customer(&asked) => {
            return Err(crate::routes::customers::not_found(&asked));
        }
        (Some(asked), _) => asked,
        (None, Some(own)) => own.to_owned(),
        (None, None) => return Err(ApiError::invalid("customer_id", "is required")),
    };
    let alive_at = filter
        .alive_at
        .map(|text| {
            text.parse::<Timestamp>()
                .map_err(|_| ApiError::invalid("alive_at", "must be an RFC 3339 instant"))
        })
        .transpose()?;
    let customer = state
        .store
        .customer(workspace, &customer_id)
        .await
        .map_err(ApiError::internal)?;
    if customer.is_none() {
        return Err(ApiError::invalid(
            "customer_id",
            "no customer of this workspace has this id",
        ));
    }
    let page = state
        .store
        .resources(
            workspace,
            &customer_id,
            alive_at,
            page.limit.get(),
            page.starting_after.as_deref(),
        )
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = page
        .has_more
        .then(|| page.items.last().map(|resource| resource.id.clone()))
        .flatten();
    Ok(ApiJson(Page {
        data: page.items.into_iter().map(ResourceBody::from).collect(),
        has_more: page.has_more,
        next_cursor: next_cursor.map(Into::into),
    }))
}

/// The resource `id` if `principal` may read it; 404 otherwise, whether it exists for another
/// customer or not at all.
async fn readable_resource(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<ResourceRecord, ApiError> {
    state
        .store
        .resource(principal.workspace_id(), id)
        .await
        .map_err(ApiError::internal)?
        .filter(|resource| principal.can_read_customer(&resource.customer_id))
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        resource: "resource",
        id: id.to_owned(),
    }
}

/// Get a resource. A customer token may get only its own customer's.
#[utoipa::path(
    get,
    path = "/api/v1/resources/{id}",
    tag = "resources",
    params(("id" = String, Path, description = "The resource's id (`res_…`)")),
    responses(
        (status = 200, description = "The resource", body = ResourceBody),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource in this workspace (or for this token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %principal.workspace_id(), resource_id = %id))]
pub(crate) async fn get_resource(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ApiJson<ResourceBody>, ApiError> {
    let resource = readable_resource(&state, &principal, &id).await?;
    Ok(ApiJson(resource.into()))
}

/// Change a resource's quantity from an instant on. The resource is billed at each quantity for
/// the time it held it.
#[utoipa::path(
    post,
    path = "/api/v1/resources/{id}/quantity",
    tag = "resources",
    params(("id" = String, Path, description = "The resource's id (`res_…`)")),
    request_body = ChangeQuantity,
    responses(
        (status = 200, description = "The resource after the change", body = ResourceBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The resource keeps no more quantity changes", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A negative `quantity`, or an `at` before the creation or the last change or after the deletion", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, resource_id = %id))]
pub(crate) async fn change_quantity(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChangeQuantity>,
) -> Result<ApiJson<ResourceBody>, ApiError> {
    let mut checks = Checks::default();
    let new_quantity = quantity(&mut checks, "quantity", &body.quantity);
    if !checks.errors.is_empty() {
        return Err(ApiError::Validation(checks.errors));
    }
    let at = stored_precision(body.at.unwrap_or_else(|| state.clock.now()));
    let resource = state
        .store
        .change_resource_quantity(&auth.workspace_id, &id, at, new_quantity)
        .await
        .map_err(|error| change_error(error, &id))?;
    Ok(ApiJson(resource.into()))
}

/// Delete a resource: it stops being billed at `deleted_at`. The body may be empty (deleted
/// now). A second deletion is a 409; a retry with the first request's `Idempotency-Key` gets
/// the first answer again.
#[utoipa::path(
    post,
    path = "/api/v1/resources/{id}/delete",
    tag = "resources",
    params(("id" = String, Path, description = "The resource's id (`res_…`)")),
    request_body(content = Option<DeleteResource>, content_type = "application/json", description = "Optional: when it stopped existing"),
    responses(
        (status = 200, description = "The deleted resource", body = ResourceBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A `deleted_at` before the creation or the last quantity change", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, resource_id = %id))]
pub(crate) async fn delete_resource(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<ApiJson<ResourceBody>, ApiError> {
    let DeleteResource { deleted_at } = parse_optional(&body)?;
    let deleted_at = stored_precision(deleted_at.unwrap_or_else(|| state.clock.now()));
    let resource = state
        .store
        .delete_resource(&auth.workspace_id, &id, deleted_at)
        .await
        .map_err(|error| change_error(error, &id))?;
    Ok(ApiJson(resource.into()))
}

fn change_error(error: ChangeResourceError, id: &str) -> ApiError {
    match error {
        ChangeResourceError::NotFound => not_found(id),
        ChangeResourceError::Refused(error) => refusal(id, &error),
        ChangeResourceError::Store(error) => ApiError::internal(error),
    }
}
