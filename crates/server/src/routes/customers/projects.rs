//! `/api/v1/customers/{id}/projects`: a customer's cost-center tree.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_store::{Project, ProjectId, StoreCustomerError, PROJECTS_PER_CUSTOMER_MAX};

use super::readable_customer;
use super::wire::{Checks, CreateProject, ProjectBody};
use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::Page;

/// Create a project under a customer, optionally under another of its projects.
#[utoipa::path(
    post,
    path = "/api/v1/customers/{id}/projects",
    tag = "customers",
    params(
        ("id" = String, Path, description = "The customer's id (`cus_…`)"),
    ),
    request_body = CreateProject,
    responses(
        (status = 201, description = "The project", body = ProjectBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, customer_id = %customer_id))]
pub(crate) async fn create_project(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, ApiJson<ProjectBody>), ApiError> {
    let workspace_id = &auth.workspace_id;
    let principal = Principal::Workspace {
        workspace_id: workspace_id.clone(),
    };
    let customer = readable_customer(&state, &principal, &customer_id).await?;
    let mut checks = Checks::default();
    let name = checks.text("name", &body.name);
    if let Some(parent_id) = &body.parent_id {
        let parent = state
            .store
            .project(workspace_id, parent_id)
            .await
            .map_err(ApiError::internal)?;
        if parent.is_none_or(|parent| parent.customer_id != customer.id) {
            checks.fail("parent_id", "no project of this customer has this id");
        }
    }
    let existing = state
        .store
        .projects(workspace_id, &customer.id)
        .await
        .map_err(ApiError::internal)?;
    if existing.len() >= usize::try_from(PROJECTS_PER_CUSTOMER_MAX).unwrap_or(usize::MAX) {
        checks.fail(
            "customer",
            format!("a customer has at most {PROJECTS_PER_CUSTOMER_MAX} projects"),
        );
    }
    if !checks.errors.is_empty() {
        return Err(ApiError::Validation(checks.errors));
    }
    let project = Project {
        id: ProjectId::new(),
        customer_id: customer.id,
        parent_id: body.parent_id.map(Into::into),
        name,
    };
    state
        .store
        .insert_project(workspace_id, &project, state.clock.now())
        .await
        .map_err(|error| match error {
            StoreCustomerError::UnknownParent => {
                ApiError::invalid("parent_id", "no project of this customer has this id")
            }
            error => ApiError::internal(error),
        })?;
    Ok((StatusCode::CREATED, ApiJson(project.into())))
}

/// List a customer's projects. A customer token may list only its own customer's.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}/projects",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    responses(
        (status = 200, description = "Every project of the customer, oldest first (`has_more` is false); `parent_id` links them into a tree", body = Page<ProjectBody>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace (or for this token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %principal.workspace_id(), customer_id = %customer_id))]
pub(crate) async fn list_projects(
    principal: Principal,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<ApiJson<Page<ProjectBody>>, ApiError> {
    let customer = readable_customer(&state, &principal, &customer_id).await?;
    let projects = state
        .store
        .projects(principal.workspace_id(), &customer.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(Page::whole(
        projects.into_iter().map(ProjectBody::from).collect(),
    )))
}
